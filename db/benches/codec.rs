//! Speed and size of the result-page codec (`cargo bench -p db --bench codec`), against
//! plain flate2 and gzip-9 JSON, on a synthetic dose map and, if present, on yaptide's
//! real result file `../shared/data/yaptide/json_with_results.json`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use db::codec;
use flate2::read::DeflateDecoder;
use flate2::write::{DeflateEncoder, GzEncoder};
use flate2::Compression;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::hint::black_box;
use std::io::{Read, Write};
use std::time::Instant;

const DECODE_TARGET: f64 = 500.0; // MB/s
const ENCODE_TARGET: f64 = 100.0; // MB/s
const SIZE_TARGET: f64 = 40.0; // % of gzip-9 JSON
const RUNS: usize = 201;

/// Median wall time of `f` in seconds, over `RUNS` runs after a few warm-up runs.
fn median_secs<T>(mut f: impl FnMut() -> T) -> f64 {
    for _ in 0..5 {
        black_box(f());
    }
    let mut times: Vec<f64> = (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            black_box(f());
            start.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[RUNS / 2]
}

fn deflate(raw: &[u8], level: Compression) -> Vec<u8> {
    let mut e = DeflateEncoder::new(Vec::with_capacity(raw.len()), level);
    e.write_all(raw).unwrap();
    e.finish().unwrap()
}

fn inflate(stream: &[u8], len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    DeflateDecoder::new(stream).read_to_end(&mut out).unwrap();
    out
}

fn gzip9(bytes: &[u8]) -> usize {
    let mut e = GzEncoder::new(Vec::new(), Compression::best());
    e.write_all(bytes).unwrap();
    e.finish().unwrap().len()
}

fn le_bytes(values: &[f64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn check(label: &str, value: f64, target: f64, at_least: bool) -> String {
    let met = if at_least {
        value >= target
    } else {
        value <= target
    };
    let cmp = if at_least { "≥" } else { "≤" };
    format!(
        "  {label:<28} {value:>8.1}  target {cmp} {target}  {}",
        if met { "MET" } else { "NOT MET" }
    )
}

/// Encode/decode speeds in MB/s (1e6 bytes of f64 input) of the codec and of plain
/// flate2 on the raw bytes; prints a table and returns (encode, decode, size) of the codec.
fn speed_report(values: &[f64]) -> (f64, f64, usize) {
    let mb = values.len() as f64 * 8.0 / 1e6;
    let encoded = codec::encode(values).expect("page fits the header");
    let decoded = codec::decode(&encoded).unwrap();
    assert!(decoded
        .iter()
        .zip(values)
        .all(|(a, b)| a.to_bits() == b.to_bits()));
    let enc = mb / median_secs(|| codec::encode(values).expect("page fits the header"));
    let dec = mb / median_secs(|| codec::decode(&encoded).unwrap());
    println!(
        "  {:<22} {:>9} {:>12} {:>12}",
        "", "bytes", "encode MB/s", "decode MB/s"
    );
    println!(
        "  {:<22} {:>9} {enc:>12.0} {dec:>12.0}",
        format!("codec (layout {})", encoded[5]),
        encoded.len()
    );
    let raw = le_bytes(values);
    for (name, level) in [
        ("flate2 level 6, raw", Compression::default()),
        ("flate2 level 1, raw", Compression::fast()),
    ] {
        let stream = deflate(&raw, level);
        let b_enc = mb / median_secs(|| deflate(&raw, level));
        let b_dec = mb / median_secs(|| inflate(&stream, raw.len()));
        println!(
            "  {name:<22} {:>9} {b_enc:>12.0} {b_dec:>12.0}",
            stream.len()
        );
        println!(
            "  {:<22} {:>8.1}% {:>11.1}× {:>11.1}×",
            "  codec relative",
            100.0 * encoded.len() as f64 / stream.len() as f64,
            enc / b_enc,
            dec / b_dec
        );
    }
    (enc, dec, encoded.len())
}

/// A 2-D dose map, `rows` lateral (y) × `cols` depth (z) bins, row-major: a Bragg-like
/// depth curve times a Gaussian lateral profile, with Monte Carlo noise from Poisson
/// hit counts (exact zeros where no particle scored) and a continuous per-hit spread.
fn synthetic_page(rows: usize, cols: usize, seed: u64) -> Vec<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    let (depth, width) = (20.0, 8.0); // cm
    let range = 0.75 * depth; // Bragg peak position
    let straggling = 0.3; // cm
    let hits_on_axis = 1000.0; // expected hits per bin at the entrance, on the axis
    let dose = |z: f64| {
        let plateau =
            (0.4 + 0.4 * (z / range).powi(2)) * 0.5 * (1.0 - ((z - range) / straggling).tanh());
        let peak = 3.0 * (-0.5 * ((z - range) / straggling).powi(2)).exp();
        if z > range + 5.0 * straggling {
            0.0
        } else {
            plateau + peak
        }
    };
    let gauss = move |rng: &mut StdRng| {
        let (u, v): (f64, f64) = (rng.gen_range(f64::EPSILON..1.0), rng.gen());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    };
    let mut values = Vec::with_capacity(rows * cols);
    for r in 0..rows {
        let y = (r as f64 + 0.5) / rows as f64 * width - width / 2.0;
        for c in 0..cols {
            let z = (c as f64 + 0.5) / cols as f64 * depth;
            let sigma_y = 0.4 + 0.3 * z / range;
            let expected = dose(z) * (-0.5 * (y / sigma_y).powi(2)).exp();
            let lambda = hits_on_axis * expected;
            // Poisson hit count: exact for small means, normal approximation above.
            let hits = if lambda < 30.0 {
                let (limit, mut k, mut p) = ((-lambda).exp(), 0u32, 1.0);
                loop {
                    p *= rng.gen::<f64>();
                    if p <= limit {
                        break k;
                    }
                    k += 1;
                }
            } else {
                (lambda + lambda.sqrt() * gauss(&mut rng)).round().max(0.0) as u32
            };
            values.push(if hits == 0 {
                0.0
            } else {
                let spread = 1.0 + 0.3 * gauss(&mut rng) / f64::from(hits).sqrt();
                expected * f64::from(hits) / lambda * spread.max(0.05)
            });
        }
    }
    values
}

fn zeros_percent(values: &[f64]) -> f64 {
    100.0 * values.iter().filter(|v| v.to_bits() == 0).count() as f64 / values.len() as f64
}

fn main() {
    println!("Result-page codec bench: single thread, median of {RUNS} runs; MB = 1e6 bytes of f64 input.\n");

    let values = synthetic_page(80, 400, 42);
    println!(
        "Synthetic dose map 80 (y) × 400 (z) = {} values ({} bytes of f64), {:.1}% exact zeros",
        values.len(),
        values.len() * 8,
        zeros_percent(&values)
    );
    let (enc, dec, size) = speed_report(&values);
    let json_gz = gzip9(&serde_json::to_vec(&values).unwrap());
    let size_pct = 100.0 * size as f64 / json_gz as f64;
    println!("  gzip-9 of compact JSON: {json_gz} bytes; codec = {size_pct:.1}% of it");
    println!("Targets:");
    print_targets(dec, enc, size_pct);

    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/data/yaptide/json_with_results.json"
    );
    println!("\nReal result file {path}:");
    let Ok(text) = std::fs::read(path) else {
        println!("  absent; skipped.");
        return;
    };
    let doc: serde_json::Value = serde_json::from_slice(&text).unwrap();
    let (mut ours_total, mut json_total, mut pages) = (0, 0, 0);
    let mut largest: Vec<f64> = Vec::new();
    println!(
        "  {:<14} {:>4} {:>7} {:>7} {:>9} {:>12} {:>7}",
        "estimator", "page", "values", "zeros", "codec B", "gzip-9 JSON", "ratio"
    );
    for estimator in doc["estimators"].as_array().unwrap() {
        for page in estimator["pages"].as_array().unwrap() {
            let json_values = &page["data"]["values"];
            let values: Vec<f64> = json_values
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            // yaptide's own compact JSON of the array (integers such as 0 stay "0").
            let json_gz = gzip9(&serde_json::to_vec(json_values).unwrap());
            let ours = codec::encode(&values).expect("page fits the header").len();
            (ours_total, json_total, pages) = (ours_total + ours, json_total + json_gz, pages + 1);
            if values.len() >= 100 {
                println!(
                    "  {:<14} {:>4} {:>7} {:>6.1}% {ours:>9} {json_gz:>12} {:>6.1}%",
                    estimator["name"].as_str().unwrap_or("?"),
                    page["metadata"]["page_number"].as_str().unwrap_or("?"),
                    values.len(),
                    zeros_percent(&values),
                    100.0 * ours as f64 / json_gz as f64
                );
            }
            if values.len() > largest.len() {
                largest = values;
            }
        }
    }
    let total_pct = 100.0 * ours_total as f64 / json_total as f64;
    println!(
        "  {:<14} {pages:>4} pages {:>15} {ours_total:>9} {json_total:>12} {total_pct:>6.1}%",
        "total", ""
    );
    println!(
        "Largest page ({} values, {:.1}% zeros):",
        largest.len(),
        zeros_percent(&largest)
    );
    let (enc, dec, _) = speed_report(&largest);
    println!("Targets (largest page; size over all pages):");
    print_targets(dec, enc, total_pct);
}

/// Prints the three targets' checks: decode and encode speed (MB/s) and size (% of gzip-9 JSON).
fn print_targets(dec: f64, enc: f64, size_pct: f64) {
    println!("{}", check("decode MB/s", dec, DECODE_TARGET, true));
    println!("{}", check("encode MB/s", enc, ENCODE_TARGET, true));
    println!(
        "{}",
        check("size, % of gzip-9 JSON", size_pct, SIZE_TARGET, false)
    );
}
