//! The template simulation of the cleanup bench, made the product's way: a builtin
//! simulation of 4 tasks with its editor input, a stdout log per task, and builtin-shaped
//! pages merged into final pages with errors.

use crate::scalar;
use crate::support::Noise;
use anyhow::{ensure, Result};
use db::enums::SimType;
use db::results::{PageMeta, TaskPage};
use db::testing::TestDb;

/// The tasks of the template simulation.
pub const NTASKS: i32 = 4;

/// One axis as the builtin engine describes it (`engine::Axis`, serialized).
fn axis(name: &str, bins: u32, max: f64) -> serde_json::Value {
    serde_json::json!({"name": name, "unit": "cm", "bins": bins, "min": 0.0, "max": max})
}

/// One task's pages, shaped like the builtin engine's default scoring (400 z bins over 20 cm,
/// 50 r bins over 5 cm): Bragg-like depth dose, a z×r dose map, fluences; relative noise
/// like a Monte Carlo run's, exact zeros beyond the range and outside the beam.
fn task_pages(rng: &mut Noise) -> Vec<TaskPage> {
    let (nz, nr, depth, radius) = (400u32, 50u32, 20.0, 5.0);
    let range = 15.75;
    let dose = |z: f64| -> f64 {
        if z > range + 1.0 {
            return 0.0;
        }
        let plateau = (0.4 + 0.4 * (z / range).powi(2)) * 0.5 * (1.0 - ((z - range) / 0.3).tanh());
        plateau + 3.0 * (-0.5 * ((z - range) / 0.3).powi(2)).exp()
    };
    let mut noisy = |x: f64, hits: f64| -> f64 {
        if x <= 0.0 {
            0.0
        } else {
            (x * (1.0 + rng.gauss() / (hits * x).sqrt())).max(0.0)
        }
    };
    let zc = |iz: u32| (f64::from(iz) + 0.5) * depth / f64::from(nz);
    let depth_dose: Vec<f64> = (0..nz).map(|iz| noisy(dose(zc(iz)), 5e4)).collect();
    let mut dose_rz = Vec::with_capacity((nz * nr) as usize);
    for iz in 0..nz {
        for ir in 0..nr {
            let r = (f64::from(ir) + 0.5) * radius / f64::from(nr);
            let sigma = 0.4 + 0.3 * zc(iz) / range;
            let x = if r > 4.0 * sigma {
                0.0
            } else {
                dose(zc(iz)) * (-0.5 * (r / sigma).powi(2)).exp()
            };
            dose_rz.push(noisy(x, 2e3));
        }
    }
    let fluence: Vec<f64> = (0..nz)
        .map(|iz| {
            noisy(
                if zc(iz) < range {
                    1.0 - 0.2 * zc(iz) / range
                } else {
                    0.0
                },
                5e4,
            )
        })
        .collect();
    let secondary: Vec<f64> = (0..nz)
        .map(|iz| noisy(0.02 * (1.0 - (-zc(iz)).exp()) * dose(zc(iz)), 1e3))
        .collect();
    let z = axis("z", nz, depth);
    let page =
        |estimator: &str, name: &str, axes: Vec<serde_json::Value>, unit: &str, values| TaskPage {
            estimator: estimator.to_owned(),
            page_number: 0,
            meta: PageMeta {
                name: name.to_owned(),
                dimension: axes.len() as i16,
                axes: serde_json::Value::Array(axes),
                value_name: name.to_owned(),
                value_unit: unit.to_owned(),
                metadata: serde_json::json!({}),
                estimator_metadata: serde_json::json!({"simulator": "builtin"}),
            },
            aggregation: db::aggregation::Aggregation::Mean,
            values,
        };
    vec![
        page(
            "depth_dose",
            "dose",
            vec![z.clone()],
            "MeV/g/primary",
            depth_dose,
        ),
        page(
            "dose_rz",
            "dose",
            vec![z.clone(), axis("r", nr, radius)],
            "MeV/g/primary",
            dose_rz,
        ),
        page(
            "fluence",
            "fluence",
            vec![z.clone()],
            "cm^-2/primary",
            fluence,
        ),
        page(
            "secondary_fluence",
            "fluence",
            vec![z],
            "cm^-2/primary",
            secondary,
        ),
    ]
}

/// A task's stdout as the worker stores it: the builtin engine's progress lines.
fn stdout_log(task: i32, primaries: i64) -> String {
    let mut log =
        format!("builtin engine: {primaries} primaries, seed {task}, 150 MeV protons in water\n");
    for pct in (5..=100).step_by(5) {
        log.push_str(&format!(
            "progress: {} / {primaries} primaries ({pct}%), {:.1} s elapsed\n",
            primaries * pct / 100,
            f64::from(pct as i32) * 0.21
        ));
    }
    log.push_str(&format!(
        "done: {primaries} primaries in 21.04 s ({} primaries/s)\n",
        primaries * 100 / 2104
    ));
    log
}

/// Makes the template simulation the product's way; returns its id.
pub async fn template(db: &TestDb) -> Result<i64> {
    let mut conn = db.conn().await;
    let owner = db::testing::user(&mut conn, "bench").await;
    let mut new = db::testing::new_simulation(owner, SimType::Builtin, NTASKS, 4_000_000);
    new.title = "150 MeV protons in water".into();
    let editor = serde_json::json!({
        "beam": {"particle": "proton", "energy_mev": 150.0, "energy_spread_mev": 1.5,
                 "sigma_cm": 0.3},
        "phantom": {"material": "water", "radius_cm": 5.0, "depth_cm": 20.0},
        "scoring": {"z_bins": 400, "r_bins": 50},
        "physics": {"step_cm": 0.05, "nuclear": true, "straggling": true},
        "seed": 42
    });
    let (sim, tasks) = crate::support::create_and_claim(&mut conn, &new, editor).await?;
    let mut rng = Noise::new(0x5eed);
    for t in &tasks {
        let log = stdout_log(t.task_index, t.requested_primaries);
        db::logs::store(
            &mut conn,
            t.simulation_id,
            Some(t.id),
            "stdout",
            log.as_bytes(),
        )
        .await?;
        let pages = task_pages(&mut rng);
        db::merge::complete_with_results(
            &mut conn,
            &t.lease("bench"),
            t.requested_primaries,
            &pages,
        )
        .await?;
    }
    let state = scalar(
        db.config(),
        &format!("SELECT job_state FROM simulations WHERE id = {}", sim.id),
    )
    .await?;
    ensure!(state == "COMPLETED", "the template simulation is {state}");
    Ok(sim.id)
}
