//! The result-page format (`MCRP`): lossless for flat arrays of `f64` (1-D or 2-D histograms).
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

use super::deflate::{deflate_into, inflate_exact};
use super::header::{format_error_from_shared, le_u64, split_header};

/// Hard cap on the number of values [`decode`] will produce (16 Mi values, 128 MiB).
pub const DEFAULT_MAX_VALUES: usize = 1 << 24;

const MAGIC: [u8; 4] = *b"MCRP";
const VERSION: u8 = 1;
const HEADER_LEN: usize = 15;
const PLAIN: u8 = 0;
const SHUFFLED: u8 = 1;
const SPARSE: u8 = 2;
const LEVEL: u32 = 6;

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

/// Whether `bytes` start with a page's magic bytes (whatever follows them).
pub(crate) fn has_magic(bytes: &[u8]) -> bool {
    bytes.starts_with(&MAGIC)
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
        let h = split_header(bytes, MAGIC, VERSION, HEADER_LEN)?;
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

format_error_from_shared!(CodecError);

#[cfg(test)]
mod tests;
