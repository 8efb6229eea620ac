//! Round trips through every layout, and refusal of damaged or hostile input.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::codec::deflate::{inflate_exact, stored_deflate_into};
use flate2::{Compress, Compression, FlushCompress};
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
