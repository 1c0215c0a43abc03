//! The gateway's side of transport compression: one compressed stream per
//! connection, flushed after every message, as the gateway sends it (the
//! client's side is `reconnect_client::compression`).

use std::fmt;

use flate2::{Compress, Compression as Level, FlushCompress, Status};

/// Output is produced at most this much at a time.
const STEP_BYTES: usize = 64 * 1024;

/// Which transport compression a client asked for, read from the `compress`
/// query parameter of its gateway URL.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Compression {
    /// Plain JSON text frames (no `compress` parameter, or one the gateway
    /// does not know).
    #[default]
    None,
    /// `compress=zlib-stream`: one zlib stream per connection.
    ZlibStream,
    /// `compress=zstd-stream`: one zstd stream per connection.
    ZstdStream,
}

impl Compression {
    /// The compression a `compress` query value asks for ([`Self::None`]
    /// for a missing or unknown value).
    #[must_use]
    pub fn from_query_value(value: Option<&str>) -> Self {
        match value {
            Some("zlib-stream") => Self::ZlibStream,
            Some("zstd-stream") => Self::ZstdStream,
            _ => Self::None,
        }
    }

    /// The value of the `compress` query parameter, if any.
    #[must_use]
    pub const fn query_value(self) -> Option<&'static str> {
        match self {
            Self::None => None,
            Self::ZlibStream => Some("zlib-stream"),
            Self::ZstdStream => Some("zstd-stream"),
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.query_value().unwrap_or("none"))
    }
}

/// Compresses the messages of one connection into binary frames.
pub struct Deflater {
    state: State,
}

enum State {
    Zlib(Box<Compress>),
    Zstd(Box<zstd::stream::raw::Encoder<'static>>),
}

impl fmt::Debug for Deflater {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
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

/// How far a flate2 counter moved in one call, as an index bounded by the
/// buffer it moved through.
fn advanced(before: u64, after: u64, len: usize) -> usize {
    usize::try_from(after.saturating_sub(before))
        .unwrap_or(usize::MAX)
        .min(len)
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
    use crate::gateway::dispatch_mix::realistic_body;

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
