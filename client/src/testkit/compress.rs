//! The gateway's side of transport compression: one compressed stream per
//! connection, flushed after every message, as the gateway sends it (the
//! client's side is [`crate::compression`]).

use flate2::{Compress, Compression as Level, FlushCompress, Status};

use crate::compression::{Compression, advanced};

/// Output is produced at most this much at a time.
const STEP_BYTES: usize = 64 * 1024;

/// Compresses the messages of one connection into binary frames.
pub struct Deflater {
    state: State,
}

enum State {
    Zlib(Box<Compress>),
    Zstd(Box<zstd::stream::raw::Encoder<'static>>),
}

impl std::fmt::Debug for Deflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.state {
            State::Zlib(_) => Compression::ZlibStream,
            State::Zstd(_) => Compression::ZstdStream,
        };
        f.debug_struct("Deflater")
            .field("compression", &kind)
            .finish()
    }
}

impl Deflater {
    /// A fresh stream for one connection, or `None` for
    /// [`Compression::None`] (plain text frames).
    ///
    /// # Errors
    ///
    /// zstd could not set up its encoder.
    pub fn new(compression: Compression) -> std::io::Result<Option<Self>> {
        let state = match compression {
            Compression::ZlibStream => State::Zlib(Box::new(Compress::new(Level::default(), true))),
            Compression::ZstdStream => State::Zstd(Box::new(zstd::stream::raw::Encoder::new(3)?)),
            _ => return Ok(None),
        };
        Ok(Some(Self { state }))
    }

    /// Compresses one message and flushes it: the returned bytes are one
    /// binary frame that, fed in order to the client's context, gives the
    /// message back whole.
    ///
    /// # Errors
    ///
    /// The compressor failed (it does not on valid state).
    pub fn push(&mut self, message: &str) -> std::io::Result<Vec<u8>> {
        match &mut self.state {
            State::Zlib(context) => deflate_zlib(context, message.as_bytes()),
            State::Zstd(encoder) => deflate_zstd(encoder, message.as_bytes()),
        }
    }
}

fn deflate_zlib(context: &mut Compress, mut input: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut step = vec![0_u8; STEP_BYTES];
    loop {
        let before_in = context.total_in();
        let before_out = context.total_out();
        let status = context
            .compress(input, &mut step, FlushCompress::Sync)
            .map_err(std::io::Error::other)?;
        let read = advanced(before_in, context.total_in(), input.len());
        let wrote = advanced(before_out, context.total_out(), step.len());
        input = &input[read..];
        out.extend_from_slice(&step[..wrote]);
        // The sync flush is complete once all input is in and the step was
        // not filled.
        if input.is_empty() && wrote < step.len() {
            return Ok(out);
        }
        if status == Status::BufError && read == 0 && wrote == 0 {
            return Err(std::io::Error::other("zlib made no progress"));
        }
    }
}

fn deflate_zstd(
    encoder: &mut zstd::stream::raw::Encoder<'static>,
    message: &[u8],
) -> std::io::Result<Vec<u8>> {
    use zstd::stream::raw::{InBuffer, Operation, OutBuffer};

    let mut out = Vec::new();
    let mut step = vec![0_u8; STEP_BYTES];
    let mut input = InBuffer::around(message);
    while input.pos() < message.len() {
        let mut output = OutBuffer::around(&mut step[..]);
        encoder.run(&mut input, &mut output)?;
        let wrote = output.pos();
        out.extend_from_slice(&step[..wrote]);
    }
    loop {
        let mut output = OutBuffer::around(&mut step[..]);
        let remaining = encoder.flush(&mut output)?;
        let wrote = output.pos();
        out.extend_from_slice(&step[..wrote]);
        if remaining == 0 {
            return Ok(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::gateway::dispatch_mix::realistic_body;

    /// What each compression saves on the loopback gateway's realistic
    /// dispatch mix, one stream for 5,000 dispatches (deterministic: the
    /// figure the README quotes; run with `--nocapture` to see it).
    #[test]
    fn the_realistic_mix_compresses_several_fold() {
        const NAMES: [&str; 5] = [
            "MESSAGE_CREATE",
            "TYPING_START",
            "PRESENCE_UPDATE",
            "MESSAGE_REACTION_ADD",
            "GUILD_MEMBER_UPDATE",
        ];
        for compression in [Compression::ZlibStream, Compression::ZstdStream] {
            let mut deflater = Deflater::new(compression).unwrap().unwrap();
            let (mut plain, mut wire) = (0_usize, 0_usize);
            for n in 1..=5_000_u64 {
                let name = NAMES[(n % 5) as usize];
                let payload = serde_json::json!({
                    "op": 0, "s": n, "t": name, "d": realistic_body(name, n),
                })
                .to_string();
                plain += payload.len();
                wire += deflater.push(&payload).unwrap().len();
            }
            let ratio = plain as f64 / wire as f64;
            println!(
                "{compression}: {plain} bytes of dispatches sent as {wire} ({ratio:.2}x smaller)"
            );
            assert!(ratio > 2.0, "{compression}: {ratio:.2}x");
        }
    }
}
