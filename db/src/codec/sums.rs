//! The merge's running sums (`merge_accumulators.sum_nx`, `sum_nx2`, and the per-task parts
//! of concatenated pages in `task_results`): the `MACC` format, and reading sums written by
//! the page codec before it. Every length is checked; bad bytes are a
//! [`DbError::Corrupt`], never a panic.
//!
//! The running sums are intermediate (never served, deleted by the final merge) and are
//! rewritten by every fold, so they are stored in a form that costs no more than a copy to
//! read and write rather than with the page codec: the codec's deflate would cost more per
//! fold than the write it saves.

use super::corrupt;
use crate::error::{DbError, DbResult};

/// Magic bytes of stored running sums.
const SUMS_MAGIC: [u8; 4] = *b"MACC";
/// Every value stored, 8 little-endian bytes each.
const SUMS_DENSE: u8 = 0;
/// A bitmap of the non-zero values, then the non-zero values only.
const SUMS_SPARSE: u8 = 1;
/// Magic, layout byte, value count (u32).
const SUMS_HEADER: usize = 9;

/// Encodes a running sum for `merge_accumulators`: the 4-byte magic `MACC`, a layout byte,
/// the value count (u32, little-endian), then either every value as 8 little-endian bytes
/// (layout 0, dense) or, when that saves space, a bitmap of `ceil(count / 8)` bytes (bit
/// `i % 8` of byte `i / 8` set when value `i` is not `+0.0`) followed by the non-zero values
/// only (layout 1, sparse). No compression: both directions run at memory speed, and the
/// sparse layout still keeps the beam-free zeros of a dose map out of the row.
pub(crate) fn encode_sums(values: &[f64]) -> DbResult<Vec<u8>> {
    let count = u32::try_from(values.len())
        .map_err(|_| DbError::Invalid(format!("a page of {} values is too large", values.len())))?;
    let zeros = values.iter().filter(|v| v.to_bits() == 0).count();
    let sparse = zeros * 64 > values.len();
    let bitmap_len = if sparse { values.len().div_ceil(8) } else { 0 };
    let stored = if sparse {
        values.len() - zeros
    } else {
        values.len()
    };
    let mut out = vec![0u8; SUMS_HEADER + bitmap_len + stored * 8];
    let (header, body) = out.split_at_mut(SUMS_HEADER);
    header[..4].copy_from_slice(&SUMS_MAGIC);
    header[4] = if sparse { SUMS_SPARSE } else { SUMS_DENSE };
    header[5..].copy_from_slice(&count.to_le_bytes());
    let (bitmap, body) = body.split_at_mut(bitmap_len);
    let mut slots = body.chunks_exact_mut(8);
    if sparse {
        // Per group of eight: the bitmap byte without branches, then one step per set bit.
        for (byte, chunk) in bitmap.iter_mut().zip(values.chunks(8)) {
            for (i, v) in chunk.iter().enumerate() {
                *byte |= u8::from(v.to_bits() != 0) << i;
            }
            let mut bits = *byte;
            while bits != 0 {
                let i = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                if let (Some(slot), Some(v)) = (slots.next(), chunk.get(i)) {
                    slot.copy_from_slice(&v.to_le_bytes());
                }
            }
        }
    } else {
        for (slot, v) in slots.zip(values) {
            slot.copy_from_slice(&v.to_le_bytes());
        }
    }
    Ok(out)
}

/// Decodes what [`encode_sums`] wrote (or, for sums written before it, the page codec).
/// Every length is checked against the header; bad bytes are an error, never a panic.
pub(crate) fn decode_sums(bytes: &[u8]) -> DbResult<Vec<f64>> {
    let mut out = vec![0.0; stored_count(bytes)?];
    apply_sums(bytes, &mut out, |slot, v| *slot = v)?;
    Ok(out)
}

/// Adds stored sums into `out`, which must have as many values.
pub(crate) fn add_sums(bytes: &[u8], out: &mut [f64]) -> DbResult<()> {
    apply_sums(bytes, out, |slot, v| *slot += v)
}

/// The value count in stored sums' header.
pub(crate) fn stored_count(bytes: &[u8]) -> DbResult<usize> {
    if super::page::has_magic(bytes) {
        return super::value_count(bytes).map_err(|e| corrupt("sums", e));
    }
    let header = bytes
        .get(..SUMS_HEADER)
        .ok_or_else(|| corrupt_sums(format!("{} bytes, shorter than the header", bytes.len())))?;
    if header[..4] != SUMS_MAGIC {
        return Err(corrupt_sums("bad magic bytes".into()));
    }
    let count = u32::from_le_bytes([header[5], header[6], header[7], header[8]]) as usize;
    if count > super::DEFAULT_MAX_VALUES {
        return Err(corrupt_sums(format!("{count} values, more than the limit")));
    }
    Ok(count)
}

fn corrupt_sums(why: String) -> DbError {
    DbError::Corrupt(format!("stored sums are corrupt: {why}"))
}

/// Calls `f(slot, value)` for every stored value (the non-zero ones, for the sparse layout)
/// after checking the whole layout against `out`'s length.
fn apply_sums(bytes: &[u8], out: &mut [f64], f: impl Fn(&mut f64, f64)) -> DbResult<()> {
    let count = stored_count(bytes)?;
    if count != out.len() {
        return Err(corrupt_sums(format!(
            "{count} values where the page has {}",
            out.len()
        )));
    }
    if super::page::has_magic(bytes) {
        let values = super::decode(bytes).map_err(|e| corrupt("sums", e))?;
        for (slot, v) in out.iter_mut().zip(values) {
            f(slot, v);
        }
        return Ok(());
    }
    let (header, body) = bytes
        .split_at_checked(SUMS_HEADER)
        .ok_or_else(|| corrupt_sums("shorter than the header".into()))?;
    let value = |c: &[u8]| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
    match header[4] {
        SUMS_DENSE => {
            if body.len() % 8 != 0 || body.len() / 8 != count {
                return Err(corrupt_sums(format!(
                    "{} bytes of values for {count} values",
                    body.len()
                )));
            }
            for (slot, c) in out.iter_mut().zip(body.chunks_exact(8)) {
                f(slot, value(c));
            }
            Ok(())
        }
        SUMS_SPARSE => {
            let (bitmap, values) = body
                .split_at_checked(count.div_ceil(8))
                .ok_or_else(|| corrupt_sums("the bitmap is truncated".into()))?;
            let nonzero: usize = bitmap.iter().map(|b| b.count_ones() as usize).sum();
            let padding = match (bitmap.last(), count % 8) {
                (Some(&last), bits @ 1..) => last >> bits,
                _ => 0,
            };
            if padding != 0 || values.len() % 8 != 0 || values.len() / 8 != nonzero {
                return Err(corrupt_sums(format!(
                    "{} bytes of values for {nonzero} non-zero values",
                    values.len()
                )));
            }
            let mut stored = values.chunks_exact(8);
            for (chunk, &byte) in out.chunks_mut(8).zip(bitmap) {
                let mut bits = byte;
                while bits != 0 {
                    let i = bits.trailing_zeros() as usize;
                    bits &= bits - 1;
                    if let (Some(slot), Some(c)) = (chunk.get_mut(i), stored.next()) {
                        f(slot, value(c));
                    }
                }
            }
            Ok(())
        }
        other => Err(corrupt_sums(format!("unknown layout {other}"))),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn bits(v: &[f64]) -> Vec<u64> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    #[test]
    fn sums_round_trip_bit_for_bit_in_both_layouts() {
        let dense: Vec<f64> = (1..=1000).map(|i| f64::from(i) * 1.000_000_1e-7).collect();
        let mut sparse = dense.clone();
        for v in sparse.iter_mut().step_by(3) {
            *v = 0.0;
        }
        let special = vec![
            -0.0,
            f64::NAN,
            f64::INFINITY,
            f64::MIN_POSITIVE / 4.0,
            0.0,
            1.5,
        ];
        for values in [dense, sparse, special, vec![], vec![0.0; 17], vec![2.5]] {
            let bytes = encode_sums(&values).unwrap();
            assert_eq!(bits(&decode_sums(&bytes).unwrap()), bits(&values));
        }
    }

    #[test]
    fn sums_pick_the_smaller_layout() {
        let dense = encode_sums(&[1.0; 100]).unwrap();
        assert_eq!((dense[4], dense.len()), (SUMS_DENSE, SUMS_HEADER + 800));
        let mut mostly_zero = vec![0.0; 100];
        mostly_zero[7] = 3.0;
        let sparse = encode_sums(&mostly_zero).unwrap();
        assert_eq!(
            (sparse[4], sparse.len()),
            (SUMS_SPARSE, SUMS_HEADER + 13 + 8)
        );
    }

    #[test]
    fn stored_sums_add_into_a_page_of_their_length_only() {
        let mut sums = vec![1.0, 0.0, 0.5, 0.0];
        let stored = encode_sums(&[0.0, 2.0, 0.25, 0.0]).unwrap();
        add_sums(&stored, &mut sums).unwrap();
        assert_eq!(sums, [1.0, 2.0, 0.75, 0.0]);
        let legacy = super::super::encode(&[1.0, 1.0, 1.0, 1.0]).unwrap();
        add_sums(&legacy, &mut sums).unwrap();
        assert_eq!(sums, [2.0, 3.0, 1.75, 1.0]);
        for bytes in [stored, legacy] {
            match add_sums(&bytes, &mut [0.0; 3]) {
                Err(DbError::Corrupt(m)) => {
                    assert!(m.contains("4 values where the page has 3"), "{m}")
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn sums_written_by_the_page_codec_are_still_read() {
        let values = vec![0.0, 1.25, 0.0, -3.5];
        let legacy = super::super::encode(&values).unwrap();
        assert_eq!(bits(&decode_sums(&legacy).unwrap()), bits(&values));
    }

    #[test]
    fn corrupt_sums_are_an_error_not_a_panic() {
        let dense = encode_sums(&[1.0, 2.0, 3.0]).unwrap();
        let mut values = vec![0.0; 20];
        values[3] = 1.0;
        values[19] = 2.0;
        let sparse = encode_sums(&values).unwrap();
        assert_eq!(sparse[4], SUMS_SPARSE);
        let mut cases: Vec<Vec<u8>> = vec![
            Vec::new(),
            b"MACC".to_vec(),
            dense[..dense.len() - 1].to_vec(), // not a multiple of 8
            dense[..dense.len() - 8].to_vec(), // one value short of the count
            [dense.clone(), vec![0; 8]].concat(), // one value too many
            sparse[..sparse.len() - 8].to_vec(),
            [sparse.clone(), vec![0; 8]].concat(),
            sparse[..SUMS_HEADER + 1].to_vec(), // bitmap cut short
        ];
        let mut bad_magic = dense.clone();
        bad_magic[0] = b'X';
        cases.push(bad_magic);
        let mut bad_layout = dense.clone();
        bad_layout[4] = 9;
        cases.push(bad_layout);
        let mut huge = dense.clone();
        huge[5..9].copy_from_slice(&u32::MAX.to_le_bytes());
        cases.push(huge);
        let mut padding = sparse.clone();
        padding[SUMS_HEADER + 2] |= 0x80; // a bit past value 19
        cases.push(padding);
        let mut extra_bit = sparse.clone();
        extra_bit[SUMS_HEADER] |= 0x01; // claims one more value than stored
        cases.push(extra_bit);
        for (i, bytes) in cases.iter().enumerate() {
            match decode_sums(bytes) {
                Err(DbError::Corrupt(m)) => assert!(m.contains("stored sums"), "case {i}: {m}"),
                other => panic!("case {i}: {other:?}"),
            }
        }
    }
}
