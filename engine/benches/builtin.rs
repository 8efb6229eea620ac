//! Benchmark of the builtin simulator: primaries per second on one thread at 150 MeV with
//! the default scoring (target ≥ 80 000), R80 against NIST PSTAR at 70, 150 and 230 MeV, and
//! the comparison with a real SHIELD-HIT12A v1.0.1 run of 150 MeV protons in water
//! (`../shared/data/yaptide/json_with_results.json`, input `shieldhit_json_payload_files.json`;
//! skipped when the file is not there): plateau dose in 1-cm means from 1 to 12 cm, energy
//! deposited in the cylinder, R80, peak depth and lateral σ at 5, 10 and 14 cm, each beside
//! the reference value, the target, and the reference's own noise (the spread of the same
//! figure over 16 runs of ours with the reference's 9,996 primaries).
//!
//! Run with `cargo bench -p engine --bench builtin`. Optional arguments: the number of
//! primaries per timed run (default 200 000) and of timed runs (default 5; the median is
//! reported). As a same-run baseline for this machine's speed it also times the raw
//! Gaussian generator the transport uses, and prints the ratio.
//!
//! In a debug build (as `cargo test --all-targets` makes it) it only does a quick smoke run.

use engine::{run, BuiltinInput, Control};
#[path = "builtin/reference.rs"]
mod reference;
use std::hint::black_box;
use std::time::Instant;

/// Required throughput, primaries per second per core.
const TARGET: f64 = 80_000.0;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let smoke = cfg!(debug_assertions);
    let default_primaries = if smoke { 2_000 } else { 200_000 };
    let primaries: u64 = args
        .first()
        .and_then(|a| a.parse().ok())
        .unwrap_or(default_primaries)
        .max(1);
    let default_repeats = if smoke { 1 } else { 5 };
    let repeats: usize = args
        .get(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default_repeats)
        .max(1);
    let r80_primaries: u64 = if smoke { 2_000 } else { 100_000 };
    let baseline_deviates: u64 = if smoke { 100_000 } else { 20_000_000 };

    // Throughput at 150 MeV with the default scoring (400 z bins × 50 r bins).
    let input = match BuiltinInput::from_json(r#"{"beam": {"energy_mev": 150.0}}"#) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("bench input refused: {e}");
            std::process::exit(2);
        }
    };
    let mut rates = Vec::new();
    let mut baselines = Vec::new();
    for k in 0..repeats {
        let seed = engine::task_seed(2024, k as u32);
        let t = Instant::now();
        let result = run(&input, primaries, seed, &mut |_| Control::Continue);
        let dt = t.elapsed().as_secs_f64();
        if let Err(e) = black_box(result) {
            eprintln!("run failed: {e}");
            std::process::exit(2);
        }
        rates.push(primaries as f64 / dt);

        // Baseline: Gaussian deviates per second from the same generator.
        let n = baseline_deviates;
        let mut rng = engine::Rng::new(seed);
        let t = Instant::now();
        let mut acc = 0.0;
        for _ in 0..n {
            acc += rng.gaussian();
        }
        black_box(acc);
        baselines.push(n as f64 / t.elapsed().as_secs_f64());
    }
    let rate = median(rates.clone());
    let baseline = median(baselines);
    println!("builtin simulator benchmark (one thread)");
    println!(
        "  150 MeV, default scoring, {primaries} primaries × {repeats} runs: {}",
        rates
            .iter()
            .map(|r| format!("{r:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "  median: {rate:.0} primaries/s (target ≥ {TARGET:.0}): {}",
        if smoke {
            "smoke run (debug build), no verdict"
        } else if rate >= TARGET {
            "MET"
        } else {
            "NOT MET"
        }
    );
    println!(
        "  baseline: {:.1} M Gaussian deviates/s; ratio {:.2} primaries per 1000 deviates",
        baseline / 1e6,
        rate / baseline * 1000.0
    );

    // R80 against PSTAR (0.2 mm bins).
    println!("  R80 vs NIST PSTAR CSDA range ({r80_primaries} primaries, 0.2 mm z bins):");
    for e in [70.0, 150.0, 230.0] {
        let json = format!(r#"{{"beam": {{"energy_mev": {e}}}, "scoring": {{"z_bins": 2000}}}}"#);
        let input = match BuiltinInput::from_json(&json) {
            Ok(i) => i,
            Err(err) => {
                eprintln!("bench input refused: {err}");
                std::process::exit(2);
            }
        };
        let est = match run(&input, r80_primaries, 7, &mut |_| Control::Continue) {
            Ok(est) => est,
            Err(err) => {
                eprintln!("run failed: {err}");
                std::process::exit(2);
            }
        };
        let r80 = est
            .iter()
            .find(|x| x.name == "depth_dose")
            .and_then(|x| x.pages.first())
            .and_then(engine::r80_cm);
        let pstar = engine::pstar_csda_range_cm(e);
        match (r80, pstar) {
            (Some(r80), Some(p)) => {
                let dev = (r80 / p - 1.0) * 100.0;
                println!(
                    "    {e:>5} MeV: R80 {r80:.3} cm, PSTAR {p:.3} cm, {dev:+.2}% ({})",
                    if dev.abs() <= 2.0 {
                        "within 2%"
                    } else {
                        "OUTSIDE 2%"
                    }
                );
            }
            _ => println!("    {e:>5} MeV: no R80"),
        }
    }

    reference::compare_with_reference(if smoke { 2_000 } else { 500_000 }, smoke);
}
