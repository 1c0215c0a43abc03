//! Transport compression: `compress=zlib-stream` and `compress=zstd-stream`.
//!
//! With transport compression the gateway sends every payload as binary
//! frames cut from **one compressed stream per connection**: the context
//! carries over from one message to the next, so it must be new for every
//! connection (libraries have shipped corrupt-stream bugs by reusing it
//! across a reconnect) and must see every frame in order.
//!
//! - **zlib-stream**: one zlib stream; a message ends where the data ends
//!   with the sync-flush marker `00 00 ff ff`, and may span several frames.
//! - **zstd-stream**: one zstd stream; the server flushes after each
//!   message, so every frame decompresses to exactly one whole payload.
//!
//! Untrusted input is bounded: a message that inflates past the limit, or
//! compressed input that piles up without ever finishing a message, ends
//! the connection with [`InflateError::TooLarge`] rather than growing
//! memory (a decompression bomb is a few kilobytes that inflate to
//! gigabytes).

use std::fmt;

use flate2::{Decompress, FlushDecompress, Status};

/// The marker zlib's sync flush leaves at the end of each message.
const ZLIB_SYNC_FLUSH: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Output is produced at most this much at a time, so a bomb is caught
/// after one step past the limit, never after it has filled memory.
const STEP_BYTES: usize = 64 * 1024;

/// Which transport compression the client asks the gateway for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Compression {
    /// Plain JSON text frames (no `compress` parameter).
    #[default]
    None,
    /// `compress=zlib-stream`: one zlib stream per connection.
    ZlibStream,
    /// `compress=zstd-stream`: one zstd stream per connection.
    ZstdStream,
}

impl Compression {
    /// The value of the gateway URL's `compress` query parameter, if any.
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

/// Why a compressed frame could not be read. Each ends its connection:
/// the stream's context is lost, so nothing after it can be read either.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum InflateError {
    /// A binary frame arrived on a connection without compression.
    #[error("a binary frame on a connection without transport compression")]
    NotCompressed,
    /// The compressed stream is corrupt.
    #[error("corrupt {compression} stream: {detail}")]
    Corrupt {
        /// The stream's kind.
        compression: Compression,
        /// What the decompressor said.
        detail: String,
    },
    /// A message inflated, or its compressed frames piled up, past the
    /// limit.
    #[error("a {compression} message grew past the {limit}-byte limit")]
    TooLarge {
        /// The stream's kind.
        compression: Compression,
        /// The limit, in bytes.
        limit: usize,
    },
    /// A message inflated to bytes that are not UTF-8 text.
    #[error("a {compression} message is not UTF-8 text")]
    NotText {
        /// The stream's kind.
        compression: Compression,
    },
}

/// Per-connection decompression state: create one for each new connection,
/// feed it every binary frame in order.
pub struct Inflater {
    compression: Compression,
    limit: usize,
    state: State,
}

enum State {
    None,
    Zlib {
        context: Box<Decompress>,
        /// Frames of a message whose end marker has not come yet.
        pending: Vec<u8>,
    },
    Zstd(Box<zstd::stream::raw::Decoder<'static>>),
}

impl fmt::Debug for Inflater {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inflater")
            .field("compression", &self.compression)
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl Inflater {
    /// A fresh context for one connection; no message (nor its compressed
    /// frames) may exceed `limit` bytes.
    ///
    /// # Errors
    ///
    /// zstd could not allocate its decoder.
    pub fn new(compression: Compression, limit: usize) -> Result<Self, InflateError> {
        let state = match compression {
            Compression::None => State::None,
            Compression::ZlibStream => State::Zlib {
                context: Box::new(Decompress::new(true)),
                pending: Vec::new(),
            },
            Compression::ZstdStream => State::Zstd(Box::new(
                zstd::stream::raw::Decoder::new().map_err(|e| InflateError::Corrupt {
                    compression,
                    detail: e.to_string(),
                })?,
            )),
        };
        Ok(Self {
            compression,
            limit,
            state,
        })
    }

    /// The kind of stream this context reads.
    #[must_use]
    pub const fn compression(&self) -> Compression {
        self.compression
    }

    /// Feeds one binary frame. Returns the payload it completes, or `None`
    /// when a zlib message continues in the next frame.
    ///
    /// # Errors
    ///
    /// See [`InflateError`]; after an error the context is unusable and the
    /// connection must end.
    pub fn push(&mut self, frame: &[u8]) -> Result<Option<String>, InflateError> {
        let compression = self.compression;
        let limit = self.limit;
        let bytes = match &mut self.state {
            State::None => return Err(InflateError::NotCompressed),
            State::Zlib { context, pending } => {
                if pending.len().saturating_add(frame.len()) > limit {
                    return Err(InflateError::TooLarge { compression, limit });
                }
                pending.extend_from_slice(frame);
                if !pending.ends_with(&ZLIB_SYNC_FLUSH) {
                    return Ok(None);
                }
                let input = std::mem::take(pending);
                inflate_zlib(context, &input, compression, limit)?
            }
            State::Zstd(decoder) => inflate_zstd(decoder, frame, compression, limit)?,
        };
        String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| InflateError::NotText { compression })
    }
}

fn inflate_zlib(
    context: &mut Decompress,
    mut input: &[u8],
    compression: Compression,
    limit: usize,
) -> Result<Vec<u8>, InflateError> {
    let corrupt = |detail: String| InflateError::Corrupt {
        compression,
        detail,
    };
    let mut out = Vec::new();
    let mut step = vec![0_u8; STEP_BYTES];
    loop {
        let before_in = context.total_in();
        let before_out = context.total_out();
        let status = context
            .decompress(input, &mut step, FlushDecompress::Sync)
            .map_err(|e| corrupt(e.to_string()))?;
        let read = advanced(before_in, context.total_in(), input.len());
        let wrote = advanced(before_out, context.total_out(), step.len());
        input = &input[read..];
        out.extend_from_slice(&step[..wrote]);
        if out.len() > limit {
            return Err(InflateError::TooLarge { compression, limit });
        }
        // Done when the input is consumed and the step had room to spare
        // (nothing more is held inside the context), or the stream ended.
        if status == Status::StreamEnd || (input.is_empty() && wrote < step.len()) {
            return Ok(out);
        }
        if read == 0 && wrote == 0 {
            return Err(corrupt("the stream stopped making progress".into()));
        }
    }
}

/// How far a zlib counter moved during one call (`before` to `after`), as
/// an index into a buffer of `len` bytes: never past its end.
fn advanced(before: u64, after: u64, len: usize) -> usize {
    usize::try_from(after.saturating_sub(before))
        .unwrap_or(usize::MAX)
        .min(len)
}

fn inflate_zstd(
    decoder: &mut zstd::stream::raw::Decoder<'static>,
    frame: &[u8],
    compression: Compression,
    limit: usize,
) -> Result<Vec<u8>, InflateError> {
    use zstd::stream::raw::{InBuffer, Operation, OutBuffer};

    let mut out: Vec<u8> = Vec::new();
    let mut input = InBuffer::around(frame);
    let mut step = vec![0_u8; STEP_BYTES];
    loop {
        let mut output = OutBuffer::around(&mut step[..]);
        let before = input.pos();
        decoder
            .run(&mut input, &mut output)
            .map_err(|e| InflateError::Corrupt {
                compression,
                detail: e.to_string(),
            })?;
        let wrote = output.pos();
        out.extend_from_slice(&step[..wrote]);
        if out.len() > limit {
            return Err(InflateError::TooLarge { compression, limit });
        }
        // Done when the frame is consumed and the decoder had room to
        // spare (nothing more is buffered inside it).
        if input.pos() == frame.len() && wrote < step.len() {
            return Ok(out);
        }
        if input.pos() == before && wrote == 0 {
            return Err(InflateError::Corrupt {
                compression,
                detail: "the stream stopped making progress".into(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reconnect_testkit::compress::{self, Deflater};

    /// The gateway's side of `compression`, from the testkit (which has its
    /// own `Compression`, read from the same query value).
    fn deflater(compression: Compression) -> Deflater {
        let theirs = compress::Compression::from_query_value(compression.query_value());
        Deflater::new(theirs).unwrap().unwrap()
    }

    fn round_trip(compression: Compression) {
        let mut deflater = deflater(compression);
        let mut inflater = Inflater::new(compression, 1 << 20).unwrap();
        for i in 0..50 {
            let message = format!(r#"{{"op":0,"s":{i},"t":"MESSAGE_CREATE","d":{{"n":{i}}}}}"#);
            let frame = deflater.push(&message).unwrap();
            assert_eq!(inflater.push(&frame).unwrap().as_deref(), Some(&*message));
        }
    }

    #[test]
    fn messages_round_trip_through_one_context() {
        round_trip(Compression::ZlibStream);
        round_trip(Compression::ZstdStream);
    }

    #[test]
    fn a_zlib_message_may_span_frames() {
        let mut deflater = deflater(Compression::ZlibStream);
        let mut inflater = Inflater::new(Compression::ZlibStream, 1 << 20).unwrap();
        let message = "x".repeat(10_000);
        let frame = deflater.push(&message).unwrap();
        let (head, tail) = frame.split_at(frame.len() / 2);
        assert_eq!(inflater.push(head).unwrap(), None);
        assert_eq!(inflater.push(tail).unwrap().as_deref(), Some(&*message));
    }

    #[test]
    fn a_fresh_context_cannot_read_the_middle_of_an_old_stream() {
        for compression in [Compression::ZlibStream, Compression::ZstdStream] {
            let mut deflater = deflater(compression);
            let _first = deflater.push(r#"{"op":10,"d":{"heartbeat_interval":41250}}"#);
            let second = deflater.push(r#"{"op":11}"#).unwrap();
            let mut fresh = Inflater::new(compression, 1 << 20).unwrap();
            assert!(
                matches!(fresh.push(&second), Err(InflateError::Corrupt { .. })),
                "{compression}"
            );
        }
    }

    #[test]
    fn a_decompression_bomb_is_refused_at_the_limit() {
        for compression in [Compression::ZlibStream, Compression::ZstdStream] {
            let mut deflater = deflater(compression);
            // 64 MiB of zeros compress to a few tens of kilobytes.
            let bomb = deflater.push(&"\0".repeat(64 << 20)).unwrap();
            assert!(bomb.len() < 1 << 20, "{compression}: {}", bomb.len());
            let mut inflater = Inflater::new(compression, 1 << 20).unwrap();
            assert_eq!(
                inflater.push(&bomb),
                Err(InflateError::TooLarge {
                    compression,
                    limit: 1 << 20
                })
            );
        }
    }

    #[test]
    fn unfinished_zlib_input_cannot_pile_up() {
        let mut inflater = Inflater::new(Compression::ZlibStream, 1_000).unwrap();
        assert_eq!(inflater.push(&[0x78; 600]).unwrap(), None);
        assert!(matches!(
            inflater.push(&[0x78; 600]),
            Err(InflateError::TooLarge { .. })
        ));
    }

    #[test]
    fn garbage_is_an_error_never_a_panic() {
        for compression in [Compression::ZlibStream, Compression::ZstdStream] {
            for frame in [
                &b""[..],
                b"\x00\x00\xff\xff",
                b"not compressed at all\x00\x00\xff\xff",
                b"\x28\xb5\x2f\xfd\xff\xff\xff\xff",
            ] {
                let mut inflater = Inflater::new(compression, 1 << 20).unwrap();
                let _ = inflater.push(frame);
            }
        }
        let mut plain = Inflater::new(Compression::None, 1 << 20).unwrap();
        assert_eq!(plain.push(b"x"), Err(InflateError::NotCompressed));
    }

    #[test]
    fn the_query_names_the_stream() {
        assert_eq!(Compression::None.query_value(), None);
        assert_eq!(Compression::ZlibStream.query_value(), Some("zlib-stream"));
        assert_eq!(Compression::ZstdStream.query_value(), Some("zstd-stream"));
    }
}
