//! Compression for opaque byte blobs (simulation inputs, log files).
//!
//! # Stored form
//!
//! | offset | size | field                                          |
//! |--------|------|------------------------------------------------|
//! | 0      | 4    | magic `b"MCBL"`                                |
//! | 4      | 1    | format version, `1`                            |
//! | 5      | 8    | original length in bytes (u64, little-endian)  |
//! | 13     | ...  | one raw deflate stream (RFC 1951, level 6), running to the end |
//!
//! Decompression has the same safety properties as [`crate::codec`]: the length is
//! checked against the caller's limit before allocating, inflating stops one byte past
//! the stated length, and no input makes it panic.

use super::deflate::{deflate_into, inflate_exact};
use super::header::{format_error_from_shared, le_u64, split_header};

/// Default cap on the decompressed size accepted by [`decompress`] callers (64 MiB).
pub const DEFAULT_MAX_LEN: usize = 64 << 20;

const MAGIC: [u8; 4] = *b"MCBL";
const VERSION: u8 = 1;
const HEADER_LEN: usize = 13;
const LEVEL: u32 = 6;

/// Why a byte string could not be decompressed into a blob.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// Shorter than the fixed header.
    #[error("too short: {len} bytes, the header alone takes {HEADER_LEN}")]
    TooShort {
        /// Length of the input.
        len: usize,
    },
    /// The magic bytes do not match: not a compressed blob.
    #[error("bad magic bytes: not a compressed blob")]
    BadMagic,
    /// Written by a newer (or unknown) format version.
    #[error("unsupported format version {0}")]
    UnsupportedVersion(u8),
    /// The stated length exceeds the caller's limit.
    #[error("too large: {len} bytes, the limit is {limit}")]
    TooLarge {
        /// Length from the header.
        len: u64,
        /// The limit in force.
        limit: usize,
    },
    /// The data ends before the stated length is reached.
    #[error("truncated data")]
    Truncated,
    /// There is more data than the header states.
    #[error("length mismatch: more data than the header states")]
    LengthMismatch,
    /// The deflate stream is invalid.
    #[error("corrupt deflate data: {0}")]
    Corrupt(String),
}

format_error_from_shared!(BlobError);

/// Compresses `data` (header plus deflate at level 6). Never fails.
pub fn compress(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + 64 + data.len() / 3);
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.extend_from_slice(&(data.len() as u64).to_le_bytes());
    deflate_into(&mut out, data, LEVEL);
    out
}

/// Decompresses a blob, refusing (before allocating) one longer than `max_len` bytes.
pub fn decompress(bytes: &[u8], max_len: usize) -> Result<Vec<u8>, BlobError> {
    let header = split_header(bytes, MAGIC, VERSION, HEADER_LEN)?;
    let len = le_u64(&header[5..]);
    let len_usize =
        usize::try_from(len)
            .ok()
            .filter(|&l| l <= max_len)
            .ok_or(BlobError::TooLarge {
                len,
                limit: max_len,
            })?;
    Ok(inflate_exact(&bytes[HEADER_LEN..], len_usize)?)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use flate2::{Compress, Compression, FlushCompress};
    use rand::{rngs::StdRng, Rng, SeedableRng};
    use std::time::{Duration, Instant};

    fn samples() -> Vec<Vec<u8>> {
        let text = "JPART0 25 ! proton\nTMAX0 150.0 0.0\nNSTAT 10000 0\n".repeat(200);
        let mut rng = StdRng::seed_from_u64(1);
        let binary: Vec<u8> = (0..50_000).map(|_| rng.gen()).collect();
        vec![Vec::new(), b"x".to_vec(), text.into_bytes(), binary]
    }

    #[test]
    fn round_trips() {
        for data in samples() {
            let packed = compress(&data);
            assert_eq!(decompress(&packed, DEFAULT_MAX_LEN).unwrap(), data);
            assert_eq!(decompress(&packed, data.len()).unwrap(), data);
        }
        let text = &samples()[2];
        assert!(compress(text).len() < text.len() / 20);
    }

    #[test]
    fn bomb_stops_early() {
        // 1 GiB of zeros: a 1 MiB chunk ending in a full flush (byte-aligned, no
        // references into earlier data), repeated, then an empty final block.
        let mut z = Compress::new(Compression::best(), false);
        let mut chunk = Vec::with_capacity(1 << 16);
        z.compress_vec(&vec![0; 1 << 20], &mut chunk, FlushCompress::Full)
            .unwrap();
        let mut data = MAGIC.to_vec();
        data.push(VERSION);
        data.extend_from_slice(&1000u64.to_le_bytes());
        data.extend_from_slice(&chunk.repeat(1024));
        data.extend_from_slice(&[0x03, 0x00]);
        let start = Instant::now();
        assert!(matches!(
            decompress(&data, DEFAULT_MAX_LEN),
            Err(BlobError::LengthMismatch)
        ));
        assert!(start.elapsed() < Duration::from_millis(500));
    }

    #[test]
    fn every_truncation_is_an_error() {
        for data in samples() {
            let packed = compress(&data);
            for len in 0..packed.len() {
                assert!(
                    decompress(&packed[..len], DEFAULT_MAX_LEN).is_err(),
                    "prefix {len}"
                );
            }
        }
    }

    #[test]
    fn over_limit_is_refused_before_allocating() {
        let text = &samples()[2];
        let packed = compress(text);
        let err = decompress(&packed, text.len() - 1).unwrap_err();
        assert!(matches!(err, BlobError::TooLarge { len, .. } if len == text.len() as u64));
        let mut huge = packed.clone();
        huge[5..13].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(
            decompress(&huge, usize::MAX),
            Err(BlobError::TooLarge { .. } | BlobError::Truncated)
        ));
    }

    #[test]
    fn bad_input_is_named_and_never_panics() {
        let packed = compress(b"hello, hello, hello");
        let mut bad = packed.clone();
        bad[0] = b'X';
        assert!(matches!(decompress(&bad, 100), Err(BlobError::BadMagic)));
        bad = packed.clone();
        bad[4] = 9;
        assert!(matches!(
            decompress(&bad, 100),
            Err(BlobError::UnsupportedVersion(9))
        ));
        bad = packed.clone();
        bad.push(0);
        assert!(matches!(
            decompress(&bad, 100),
            Err(BlobError::LengthMismatch)
        ));
        assert!(matches!(
            decompress(&[], 100),
            Err(BlobError::TooShort { len: 0 })
        ));
        let mut rng = StdRng::seed_from_u64(2);
        for _ in 0..3000 {
            let mut bad = packed.clone();
            let at = rng.gen_range(0..bad.len());
            bad[at] ^= rng.gen_range(1..=255u8);
            if let Ok(out) = decompress(&bad, 1000) {
                assert!(out.len() <= 1000);
            }
        }
    }
}
