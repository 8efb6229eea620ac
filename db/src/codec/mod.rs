//! Lossless codec for result pages: flat arrays of `f64` (1-D or 2-D histograms).
//!
//! Values round-trip bit for bit (NaN payloads, `-0.0`, `±inf`, subnormals).
//!
//! # Stored form
//!
//! All integers are little-endian.
//!
//! | offset | size | field                                                              |
//! |--------|------|--------------------------------------------------------------------|
//! | 0      | 4    | magic `b"MCRP"`                                                    |
//! | 4      | 1    | format version, `1`                                                |
//! | 5      | 1    | layout: `0` plain, `1` shuffled, `2` sparse-shuffled               |
//! | 6      | 1    | plane mask: bit `k` set = byte plane `k` is inside the deflate stream, clear = stored raw |
//! | 7      | 4    | `count`, number of values (u32)                                    |
//! | 11     | 4    | `nonzero`, number of values whose bit pattern is not 0 (u32)        |
//! | 15     | ...  | raw planes: each plane with a clear mask bit, in ascending `k`, `n` bytes each |
//! | ...    | ...  | one raw deflate stream (RFC 1951), running to the end of the input |
//!
//! Byte plane `k` holds byte `k` (0 = least significant) of the little-endian bit
//! pattern of each stored value, in value order. The deflate stream inflates to
//! exactly the concatenation of:
//!
//! * layout 0 (plain): the `count * 8` little-endian bytes of all values; mask must be
//!   `0xFF`, `nonzero` must equal `count`, there are no raw planes and no bitmap.
//! * layout 1 (shuffled): the masked planes of all `n = count` values; `nonzero` must
//!   equal `count`.
//! * layout 2 (sparse-shuffled): a bitmap of `ceil(count / 8)` bytes (bit `i % 8` of
//!   byte `i / 8` is set when value `i` is non-zero; padding bits are 0; the number of
//!   set bits equals `nonzero`), then the masked planes of the `n = nonzero` non-zero
//!   values only. Values whose bit is clear are `+0.0` (`-0.0` counts as non-zero).
//!
//! # Why this form
//!
//! Measured on a real SHIELD-HIT12A result (21 pages of 1–32,000 values, up to 90%
//! zeros) and on a synthetic dose map (see `benches/codec.rs`):
//!
//! * Byte-shuffling separates the well-compressible sign/exponent bytes (planes 6–7)
//!   from the mantissa bytes; a bitmap keeps the zeros from being encoded eight times.
//!   The encoder uses layout 2 whenever the page has a zero and layout 1 otherwise
//!   (where an all-ones bitmap would only cost bytes). It never writes layout 0.
//! * The low mantissa bytes of noisy Monte Carlo values are essentially random
//!   (≈7.98 bits/byte): deflate cannot shrink them, and pushing them through deflate
//!   costs encode time (LZ77 match search on random data) and decode time. The encoder
//!   therefore estimates each plane's order-0 entropy (with the Miller–Madow
//!   correction plus 32 bytes for Huffman tables) and deflates the plane only if that
//!   predicts a saving of at least 2%; other planes are stored raw. On the real pages
//!   this deflates the bitmap and planes 0, 6 and 7 and gives the same size as one
//!   deflate stream over everything (within 0.4%), while encoding 2.5–3× and decoding
//!   1.3–1.7× faster. Under either, the result is 70–80% of gzip-9 of the JSON text:
//!   the random mantissa bytes dominate.
//! * Deflate level 6. With the zlib-rs backend, level 1 uses only fixed Huffman codes
//!   and expands the planes by ~5% (unlike C zlib's level 1); levels 2–5 were 0.1–0.6%
//!   larger, level 9 0.3% smaller at half the encode speed.
//!
//! Pages whose mantissa planes look uniform byte by byte but repeat exactly (not
//! Monte Carlo output) are stored less compactly than deflate could, but still losslessly.
//!
//! # Decoding safety
//!
//! The header's count is checked against the limit before anything is allocated; the
//! inflated size is fixed by the header, and inflating stops after one byte more than
//! that, so a decompression bomb costs little. Short data is [`CodecError::Truncated`],
//! surplus data (inflated or trailing) is [`CodecError::LengthMismatch`]. Decoding never
//! panics, whatever the bytes.

pub mod blob;
pub mod sums;

/// A stored blob that does not decode, as the database error naming `what` it held.
pub(crate) fn corrupt(what: &str, e: CodecError) -> crate::error::DbError {
    crate::error::DbError::Corrupt(format!("stored {what} cannot be decoded: {e}"))
}

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// Hard cap on the number of values [`decode`] will produce (16 Mi values, 128 MiB).
pub const DEFAULT_MAX_VALUES: usize = 1 << 24;

const MAGIC: [u8; 4] = *b"MCRP";
const VERSION: u8 = 1;
const HEADER_LEN: usize = 15;
const PLAIN: u8 = 0;
const SHUFFLED: u8 = 1;
const SPARSE: u8 = 2;
const LEVEL: u32 = 6;
/// Deflate cannot expand data by more than about 1032:1 (a 258-byte match in 2 bits).
const MAX_DEFLATE_RATIO: usize = 1032;

/// Why a byte string could not be decoded into a page.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// Shorter than the fixed header.
    #[error("too short: {len} bytes, the header alone takes {HEADER_LEN}")]
    TooShort {
        /// Length of the input.
        len: usize,
    },
    /// The magic bytes do not match: not an encoded page.
    #[error("bad magic bytes: not an encoded result page")]
    BadMagic,
    /// Written by a newer (or unknown) format version.
    #[error("unsupported format version {0}")]
    UnsupportedVersion(u8),
    /// Unknown layout byte.
    #[error("unknown layout {0}")]
    UnknownLayout(u8),
    /// The header's value count exceeds the caller's limit.
    #[error("too large: {count} values, the limit is {limit}")]
    TooLarge {
        /// Value count from the header.
        count: usize,
        /// The limit in force.
        limit: usize,
    },
    /// The data ends before the header's values do.
    #[error("truncated data")]
    Truncated,
    /// There is more data than the header accounts for.
    #[error("length mismatch: more data than the header accounts for")]
    LengthMismatch,
    /// The header fields or the bitmap contradict each other.
    #[error("inconsistent header: {0}")]
    Inconsistent(&'static str),
    /// The deflate stream is invalid.
    #[error("corrupt deflate data: {0}")]
    Corrupt(String),
}

/// Encodes a page losslessly; noisy Monte Carlo pages typically shrink to 15–40% of their
/// 8 bytes per value. Fails only for a page of more than `u32::MAX` values.
pub fn encode(values: &[f64]) -> Result<Vec<u8>, CodecError> {
    if u32::try_from(values.len()).is_err() {
        return Err(CodecError::TooLarge {
            count: values.len(),
            limit: u32::MAX as usize,
        });
    }
    let has_zero = values.iter().any(|v| v.to_bits() == 0);
    Ok(encode_layout(
        values,
        if has_zero { SPARSE } else { SHUFFLED },
    ))
}

/// Decodes a page of at most [`DEFAULT_MAX_VALUES`] values.
pub fn decode(bytes: &[u8]) -> Result<Vec<f64>, CodecError> {
    decode_with_limit(bytes, DEFAULT_MAX_VALUES)
}

/// Returns the number of values in an encoded page, reading only the header.
pub fn value_count(bytes: &[u8]) -> Result<usize, CodecError> {
    Ok(Header::parse(bytes)?.count)
}

/// Decodes a page, refusing (before allocating) one of more than `max_values` values.
pub fn decode_with_limit(bytes: &[u8], max_values: usize) -> Result<Vec<f64>, CodecError> {
    let h = Header::parse(bytes)?;
    // The second bound only matters where usize is 32 bits; it keeps the sizes below from overflowing.
    if h.count > max_values || h.count > usize::MAX / 16 {
        return Err(CodecError::TooLarge {
            count: h.count,
            limit: max_values,
        });
    }
    let body = bytes.get(HEADER_LEN..).unwrap_or_default();
    if h.layout == PLAIN {
        if h.mask != 0xFF || h.nonzero != h.count {
            return Err(CodecError::Inconsistent(
                "plain layout needs mask 0xFF and nonzero = count",
            ));
        }
        let raw = inflate_exact(body, h.count * 8)?;
        return Ok(raw
            .chunks_exact(8)
            .map(|c| f64::from_bits(le_u64(c)))
            .collect());
    }

    let sparse = h.layout == SPARSE;
    if (sparse && h.nonzero > h.count) || (!sparse && h.nonzero != h.count) {
        return Err(CodecError::Inconsistent(
            "nonzero count does not fit the value count",
        ));
    }
    let n = h.nonzero;
    let bitmap_len = if sparse { h.count.div_ceil(8) } else { 0 };
    let deflated_planes = h.mask.count_ones() as usize;
    let (mut raw, stream) = body
        .split_at_checked(n * (8 - deflated_planes))
        .ok_or(CodecError::Truncated)?;
    let packed = inflate_exact(stream, bitmap_len + n * deflated_planes)?;
    let (bitmap, mut inflated) = packed.split_at(bitmap_len);

    // Reassemble the bit patterns plane by plane.
    let mut bits = vec![0u64; n];
    for k in 0..8 {
        let from = if h.mask & (1 << k) != 0 {
            &mut inflated
        } else {
            &mut raw
        };
        let (plane, rest) = from.split_at_checked(n).ok_or(CodecError::Truncated)?;
        *from = rest;
        for (b, &byte) in bits.iter_mut().zip(plane) {
            *b |= u64::from(byte) << (8 * k);
        }
    }
    if !sparse {
        return Ok(bits.into_iter().map(f64::from_bits).collect());
    }

    if h.count % 8 != 0 && bitmap.last().is_some_and(|&b| b >> (h.count % 8) != 0) {
        return Err(CodecError::Inconsistent(
            "bitmap bits set past the value count",
        ));
    }
    if bitmap
        .iter()
        .map(|b| b.count_ones() as usize)
        .sum::<usize>()
        != n
    {
        return Err(CodecError::Inconsistent(
            "bitmap does not match the nonzero count",
        ));
    }
    let mut values = vec![0.0; h.count];
    let mut nonzero = bits.into_iter();
    for (chunk, &byte) in values.chunks_mut(8).zip(bitmap) {
        let mut byte = byte;
        while byte != 0 {
            let i = byte.trailing_zeros() as usize;
            if let (Some(slot), Some(b)) = (chunk.get_mut(i), nonzero.next()) {
                *slot = f64::from_bits(b);
            }
            byte &= byte - 1;
        }
    }
    Ok(values)
}

/// The fixed header, parsed and checked for magic, version and layout.
struct Header {
    layout: u8,
    mask: u8,
    count: usize,
    nonzero: usize,
}

impl Header {
    fn parse(bytes: &[u8]) -> Result<Self, CodecError> {
        let h = bytes
            .get(..HEADER_LEN)
            .ok_or(CodecError::TooShort { len: bytes.len() })?;
        if h[..4] != MAGIC {
            return Err(CodecError::BadMagic);
        }
        if h[4] != VERSION {
            return Err(CodecError::UnsupportedVersion(h[4]));
        }
        if h[5] > SPARSE {
            return Err(CodecError::UnknownLayout(h[5]));
        }
        Ok(Header {
            layout: h[5],
            mask: h[6],
            count: le_u64(&h[7..11]) as usize,
            nonzero: le_u64(&h[11..15]) as usize,
        })
    }
}

/// Encodes with the given layout (the decoder accepts all three).
fn encode_layout(values: &[f64], layout: u8) -> Vec<u8> {
    // Callers have checked that the count fits the header's u32.
    let mut bitmap = Vec::new();
    let bits: Vec<u64> = if layout == SPARSE {
        bitmap = vec![0u8; values.len().div_ceil(8)];
        for (i, v) in values.iter().enumerate() {
            bitmap[i / 8] |= u8::from(v.to_bits() != 0) << (i % 8);
        }
        values
            .iter()
            .map(|v| v.to_bits())
            .filter(|&b| b != 0)
            .collect()
    } else {
        values.iter().map(|v| v.to_bits()).collect()
    };
    let n = bits.len();

    let mut out = Vec::with_capacity(HEADER_LEN + 64 + values.len() * 8 / 2);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&[VERSION, layout, 0xFF]);
    out.extend_from_slice(&(values.len() as u32).to_le_bytes());
    out.extend_from_slice(&(n as u32).to_le_bytes());

    if layout == PLAIN {
        let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        deflate_into(&mut out, &raw, LEVEL);
        return out;
    }
    let mut packed = bitmap;
    let mut mask = 0u8;
    for k in 0..8 {
        let plane: Vec<u8> = bits.iter().map(|&b| (b >> (8 * k)) as u8).collect();
        if worth_deflating(&plane) {
            mask |= 1 << k;
            packed.extend_from_slice(&plane);
        } else {
            out.extend_from_slice(&plane);
        }
    }
    out[6] = mask;
    deflate_into(&mut out, &packed, LEVEL);
    out
}

/// Predicts whether deflate saves at least 2% on `plane`, from its order-0 entropy
/// (Miller–Madow corrected, so small uniform samples are not mistaken for skewed ones)
/// plus 32 bytes for Huffman tables.
fn worth_deflating(plane: &[u8]) -> bool {
    let mut hist = [0u32; 256];
    for &b in plane {
        hist[b as usize] += 1;
    }
    let n = plane.len() as f64;
    let (mut entropy_bits, mut distinct) = (0.0, 0.0);
    for c in hist.iter().filter(|&&c| c > 0).map(|&c| f64::from(c)) {
        entropy_bits += c * (n / c).log2();
        distinct += 1.0;
    }
    entropy_bits += (distinct - 1.0) / (2.0 * std::f64::consts::LN_2);
    entropy_bits / 8.0 + 32.0 < 0.98 * n
}

fn le_u64(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .rev()
        .fold(0, |acc, &b| acc << 8 | u64::from(b))
}

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
fn stored_deflate_into(out: &mut Vec<u8>, data: &[u8]) {
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

impl From<InflateError> for CodecError {
    fn from(e: InflateError) -> Self {
        match e {
            InflateError::Truncated => CodecError::Truncated,
            InflateError::LengthMismatch => CodecError::LengthMismatch,
            InflateError::Corrupt(msg) => CodecError::Corrupt(msg),
        }
    }
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, Rng, SeedableRng};
    use std::time::{Duration, Instant};

    fn bits(values: &[f64]) -> Vec<u64> {
        values.iter().map(|v| v.to_bits()).collect()
    }

    /// Checks the round trip through `encode` and through every layout; returns `encode`'s bytes.
    fn round_trip(values: &[f64]) -> Vec<u8> {
        let enc = encode(values).unwrap();
        assert_eq!(bits(&decode(&enc).unwrap()), bits(values));
        assert_eq!(value_count(&enc).unwrap(), values.len());
        for layout in [PLAIN, SHUFFLED, SPARSE] {
            let other = encode_layout(values, layout);
            assert_eq!(
                bits(&decode(&other).unwrap()),
                bits(values),
                "layout {layout}"
            );
        }
        enc
    }

    /// A noisy page whose first `zeros` fraction of values is exactly 0, like bins outside a beam.
    fn page(len: usize, zeros: f64, seed: u64) -> Vec<f64> {
        let mut rng = StdRng::seed_from_u64(seed);
        let first = (zeros * len as f64) as usize;
        (0..len)
            .map(|i| match i < first {
                true => 0.0,
                false => (1.0 + i as f64 / len as f64) * rng.gen_range(0.8..1.2),
            })
            .collect()
    }

    /// A header for `count` values, all of them non-zero, and planes all deflated.
    fn header(layout: u8, mask: u8, count: u32, nonzero: u32) -> Vec<u8> {
        let mut h = MAGIC.to_vec();
        h.extend_from_slice(&[VERSION, layout, mask]);
        h.extend_from_slice(&count.to_le_bytes());
        h.extend_from_slice(&nonzero.to_le_bytes());
        h
    }

    #[test]
    fn random_bit_patterns_round_trip() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut values: Vec<f64> = (0..5000).map(|_| f64::from_bits(rng.gen())).collect();
        round_trip(&values);
        for v in values.iter_mut().step_by(3) {
            *v = 0.0;
        }
        round_trip(&values);
        let finite: Vec<f64> = (0..5000).map(|_| rng.gen_range(-1e6..1e6)).collect();
        round_trip(&finite);
    }

    #[test]
    fn special_values_are_bit_exact() {
        let specials = [
            f64::NAN,
            -f64::NAN,
            f64::from_bits(0x7FF0_0000_0000_0001), // signalling NaN, non-canonical payload
            f64::from_bits(0xFFF8_DEAD_BEEF_0042), // negative quiet NaN with a payload
            f64::INFINITY,
            f64::NEG_INFINITY,
            -0.0,
            0.0,
            f64::from_bits(1), // smallest subnormal
            -f64::MIN_POSITIVE / 3.0,
            f64::MIN_POSITIVE,
            f64::MAX,
            f64::MIN,
            f64::EPSILON,
        ];
        round_trip(&specials);
        let nonzero: Vec<f64> = specials
            .iter()
            .copied()
            .filter(|v| v.to_bits() != 0)
            .collect();
        assert_eq!(encode(&nonzero).unwrap()[5], SHUFFLED, "-0.0 is not a zero");
        let mut mixed = page(3000, 0.5, 2);
        for (i, v) in specials.iter().enumerate() {
            mixed[i * 200] = *v;
        }
        round_trip(&mixed);
    }

    #[test]
    fn empty_page() {
        let enc = round_trip(&[]);
        assert!(enc.len() <= HEADER_LEN + 2, "{} bytes", enc.len());
        assert!(decode(&enc).unwrap().is_empty());
    }

    #[test]
    fn single_value() {
        for v in [1.5, 0.0, -0.0, f64::from_bits(0x7FF4_0000_0000_0000)] {
            let enc = round_trip(&[v]);
            assert!(enc.len() <= HEADER_LEN + 10, "{} bytes", enc.len());
        }
    }

    #[test]
    fn all_zeros() {
        let zeros = vec![0.0; 100_000];
        let enc = round_trip(&zeros);
        assert_eq!(enc[5], SPARSE);
        assert!(enc.len() < 100, "{} bytes", enc.len());
    }

    #[test]
    fn dense_page() {
        let values = page(32_000, 0.0, 3);
        let enc = round_trip(&values);
        assert_eq!(enc[5], SHUFFLED);
        assert!(enc.len() < values.len() * 8 * 9 / 10, "{} bytes", enc.len());
    }

    #[test]
    fn sparse_page() {
        let values = page(32_000, 0.65, 4);
        let enc = round_trip(&values);
        assert_eq!(enc[5], SPARSE);
        let nonzero: Vec<f64> = values.iter().copied().filter(|&v| v != 0.0).collect();
        let zeros_cost = enc.len() - encode(&nonzero).unwrap().len();
        assert!(zeros_cost < 100, "the zeros cost {zeros_cost} bytes");
        assert!(enc.len() < encode_layout(&values, PLAIN).len());
        assert!(enc.len() < encode_layout(&values, SHUFFLED).len());
    }

    /// A raw deflate stream of `mib` MiB of zeros, ~1 KB per MiB. One MiB is deflated
    /// ending in a full flush (byte-aligned, no back-references into earlier data), so
    /// copies of it chain into one valid stream, closed by an empty final block.
    fn zeros_stream(mib: usize) -> Vec<u8> {
        let mut z = Compress::new(Compression::best(), false);
        let mut chunk = Vec::with_capacity(1 << 16);
        z.compress_vec(&vec![0; 1 << 20], &mut chunk, FlushCompress::Full)
            .unwrap();
        assert_eq!(z.total_in(), 1 << 20);
        let mut stream = chunk.repeat(mib);
        stream.extend_from_slice(&[0x03, 0x00]);
        stream
    }

    #[test]
    fn decompression_bomb_stops_early() {
        let small = zeros_stream(3);
        assert_eq!(inflate_exact(&small, 3 << 20).unwrap(), vec![0; 3 << 20]);
        let stream = zeros_stream(1024); // 1 GiB of zeros
        assert!(stream.len() < 2 << 20, "{} bytes", stream.len());
        for (layout, mask) in [
            (PLAIN, 0xFF),
            (SHUFFLED, 0xFF),
            (SPARSE, 0xFF),
            (SPARSE, 0x80),
        ] {
            let mut data = header(layout, mask, 1000, 1000);
            if mask == 0x80 {
                data.extend_from_slice(&[1; 7000]); // raw planes 0..=6
            }
            data.extend_from_slice(&stream);
            let start = Instant::now();
            let err = decode(&data).unwrap_err();
            assert!(matches!(err, CodecError::LengthMismatch), "{err}");
            assert!(
                start.elapsed() < Duration::from_millis(500),
                "{:?}",
                start.elapsed()
            );
        }
    }

    #[test]
    fn count_above_limit_is_refused_before_allocating() {
        let data = header(SPARSE, 0xFF, u32::MAX, 0);
        let err = decode(&data).unwrap_err();
        assert!(
            matches!(err, CodecError::TooLarge { count, limit } if count == u32::MAX as usize && limit == DEFAULT_MAX_VALUES)
        );
        let enc = encode(&page(1000, 0.3, 5)).unwrap();
        assert!(matches!(
            decode_with_limit(&enc, 999),
            Err(CodecError::TooLarge {
                count: 1000,
                limit: 999
            })
        ));
        assert_eq!(decode_with_limit(&enc, 1000).unwrap().len(), 1000);
        // Within the limit, but far more than a 2-byte deflate stream can hold: refused before inflating.
        let mut data = header(
            PLAIN,
            0xFF,
            DEFAULT_MAX_VALUES as u32,
            DEFAULT_MAX_VALUES as u32,
        );
        data.extend_from_slice(&[3, 0]);
        assert!(matches!(decode(&data), Err(CodecError::Truncated)));
    }

    #[test]
    fn every_truncation_is_an_error() {
        for values in [
            page(2000, 0.6, 6),
            page(1000, 0.0, 7),
            vec![],
            vec![0.0; 100],
        ] {
            let enc = encode(&values).unwrap();
            for len in 0..enc.len() {
                assert!(
                    decode(&enc[..len]).is_err(),
                    "prefix of {len}/{} bytes decoded",
                    enc.len()
                );
            }
        }
        assert!(matches!(decode(&[]), Err(CodecError::TooShort { len: 0 })));
    }

    #[test]
    fn wrong_counts_are_errors() {
        let mut values = page(4000, 0.5, 8); // a multiple of 8, last value non-zero
        let sparse = encode(&values).unwrap();
        values.iter_mut().for_each(|v| *v += 1.0);
        let dense = encode(&values).unwrap();
        for enc in [sparse, dense] {
            for field in [7, 11] {
                for delta in [-8i64, -1, 1, 8] {
                    let mut bad = enc.clone();
                    let old = le_u64(&bad[field..field + 4]) as i64;
                    bad[field..field + 4].copy_from_slice(&((old + delta) as u32).to_le_bytes());
                    assert!(
                        decode(&bad).is_err(),
                        "layout {} field {field} delta {delta}",
                        enc[5]
                    );
                }
            }
        }
    }

    #[test]
    fn trailing_bytes_are_a_length_mismatch() {
        let mut enc = encode(&page(500, 0.5, 9)).unwrap();
        enc.push(0);
        assert!(matches!(decode(&enc), Err(CodecError::LengthMismatch)));
    }

    #[test]
    fn bad_headers_are_named() {
        let enc = encode(&page(100, 0.5, 10)).unwrap();
        let with = |i: usize, b: u8| {
            let mut bad = enc.clone();
            bad[i] = b;
            decode(&bad).unwrap_err()
        };
        assert!(matches!(
            decode(&enc[..14]),
            Err(CodecError::TooShort { len: 14 })
        ));
        assert!(matches!(with(0, b'X'), CodecError::BadMagic));
        assert!(matches!(with(4, 2), CodecError::UnsupportedVersion(2)));
        assert!(matches!(with(5, 3), CodecError::UnknownLayout(3)));
        assert!(matches!(with(5, PLAIN), CodecError::Inconsistent(_)));
        assert!(matches!(value_count(&enc), Ok(100)));
        let msg = decode_with_limit(&enc, 10).unwrap_err().to_string();
        assert_eq!(msg, "too large: 100 values, the limit is 10");
    }

    #[test]
    fn random_garbage_never_panics() {
        let mut rng = StdRng::seed_from_u64(11);
        for i in 0..4000 {
            let len = rng.gen_range(0..300);
            let mut data: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            if i % 2 == 0 && len >= HEADER_LEN {
                // A plausible header, so the body gets parsed too.
                let count = rng.gen_range(0..2000u32);
                let h = header(
                    rng.gen_range(0..3),
                    rng.gen(),
                    count,
                    rng.gen_range(0..=count),
                );
                data[..HEADER_LEN].copy_from_slice(&h);
            }
            if let Ok(values) = decode(&data) {
                assert_eq!(values.len(), value_count(&data).unwrap());
            }
        }
    }

    #[test]
    fn single_byte_corruptions_never_panic() {
        let mut rng = StdRng::seed_from_u64(12);
        for values in [page(600, 0.6, 13), page(600, 0.0, 14)] {
            let enc = encode(&values).unwrap();
            for _ in 0..2000 {
                let mut bad = enc.clone();
                let at = rng.gen_range(0..bad.len());
                bad[at] ^= rng.gen_range(1..=255u8);
                if let Ok(decoded) = decode(&bad) {
                    assert_eq!(decoded.len(), value_count(&bad).unwrap());
                    if at >= HEADER_LEN {
                        assert_eq!(decoded.len(), values.len());
                    }
                }
            }
        }
    }

    #[test]
    fn stored_fallback_is_a_valid_stream() {
        for len in [0, 1, 0xFFFF, 0x10000, 200_000] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            let mut stream = Vec::new();
            stored_deflate_into(&mut stream, &data);
            assert_eq!(inflate_exact(&stream, len).unwrap(), data);
        }
    }
}
