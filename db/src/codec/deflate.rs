//! Raw deflate streams (RFC 1951) as the page and blob formats store them: writing one
//! (never failing: stored blocks are the fallback) and inflating one of known size, which
//! refuses surplus data and stops a decompression bomb after one byte.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// Deflate cannot expand data by more than about 1032:1 (a 258-byte match in 2 bits).
const MAX_DEFLATE_RATIO: usize = 1032;

/// Appends a complete raw deflate stream of `data` to `out`.
pub(crate) fn deflate_into(out: &mut Vec<u8>, data: &[u8], level: u32) {
    let start = out.len();
    let mut z = Compress::new(Compression::new(level), false);
    loop {
        let done = (z.total_in() as usize).min(data.len());
        out.reserve(data.len() - done + data.len() / 64 + 64);
        match z.compress_vec(&data[done..], out, FlushCompress::Finish) {
            Ok(Status::StreamEnd) => return,
            Ok(_) => {}
            // zlib reports errors only for misuse of its stream state. Rather than
            // panic, fall back to a stream of stored blocks, which is always valid.
            Err(_) => {
                out.truncate(start);
                return stored_deflate_into(out, data);
            }
        }
    }
}

/// Appends `data` as a raw deflate stream of stored (uncompressed) blocks.
pub(super) fn stored_deflate_into(out: &mut Vec<u8>, data: &[u8]) {
    let mut blocks = data.chunks(0xFFFF).peekable();
    if blocks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xFF, 0xFF]);
    }
    while let Some(block) = blocks.next() {
        let len = block.len() as u16;
        out.push(u8::from(blocks.peek().is_none()));
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(block);
    }
}

/// How inflating a stream of known output size went wrong.
#[derive(Debug)]
pub(crate) enum InflateError {
    Truncated,
    LengthMismatch,
    Corrupt(String),
}

/// Inflates the raw deflate stream `input`, which must produce exactly `expected`
/// bytes and end exactly at the end of `input`. Produces at most `expected + 1`
/// bytes, so a bomb is stopped after one surplus byte.
pub(crate) fn inflate_exact(input: &[u8], expected: usize) -> Result<Vec<u8>, InflateError> {
    if input
        .len()
        .saturating_add(2)
        .saturating_mul(MAX_DEFLATE_RATIO)
        < expected
    {
        return Err(InflateError::Truncated); // cannot possibly hold that much
    }
    let mut out = vec![0u8; expected.checked_add(1).ok_or(InflateError::Truncated)?];
    let mut z = Decompress::new(false);
    loop {
        let (done_in, done_out) = (z.total_in() as usize, z.total_out() as usize);
        let status = z
            .decompress(
                input.get(done_in..).unwrap_or_default(),
                out.get_mut(done_out..).unwrap_or_default(),
                FlushDecompress::Finish,
            )
            .map_err(|e| InflateError::Corrupt(e.to_string()))?;
        let (now_in, now_out) = (z.total_in() as usize, z.total_out() as usize);
        if now_out > expected {
            return Err(InflateError::LengthMismatch);
        }
        match status {
            Status::StreamEnd if now_out < expected => return Err(InflateError::Truncated),
            Status::StreamEnd if now_in < input.len() => return Err(InflateError::LengthMismatch),
            Status::StreamEnd => {
                out.truncate(expected);
                return Ok(out);
            }
            _ if now_in == done_in && now_out == done_out => return Err(InflateError::Truncated),
            _ => {}
        }
    }
}
