//! `admin-cli backup --out F` and `admin-cli verify-backup F` of a database of ~1 GB of
//! result pages, against `pg_dump -Fc` and a bare `pg_restore` of it into a scratch database,
//! in the same run.
//!
//! The database is filled the product's way where it is cheap and in the product's stored
//! shape where it is not: each simulation is created with its compressed editor input
//! (`db::simulations::create_with_tasks`), its 4 tasks are claimed and completed
//! (`db::queue::claim`, `db::queue::complete`), each with a stdout log (`db::logs::store`),
//! and its final pages are inserted with the statement `write_final_pages` uses: 2
//! estimators of 4 pages of 80×400 values each, values and errors encoded with the page codec
//! (`db::codec::encode`). The values are random full-precision doubles, so the stored bytea
//! is as incompressible as real Monte Carlo output at its worst (about 7 bytes per value).
//! Simulations are added until the pages hold the requested size.
//!
//! Each round times, as whole processes: `admin-cli backup --out F` then `admin-cli
//! verify-backup F` (restore into a scratch database, checks, drop); and the baseline
//! `pg_dump --format=custom --file=F2` then `CREATE DATABASE` + `pg_restore --no-owner
//! --no-privileges --exit-on-error --single-transaction` (the flags verify-backup uses) +
//! `DROP DATABASE`. Rounds alternate which goes first; dumps go to `/var/tmp` and are removed.
//!
//! Needs PostgreSQL at `TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/
//! postgres`; a database is created and dropped), `psql`, `pg_dump` and `pg_restore` on PATH,
//! and `admin-cli` built with the same profile (`tests::bin_path`; `SIM_BIN_DIR` names
//! another folder); about 4 times the size free under `/var/tmp` and PostgreSQL's data:
//!
//! ```text
//! cargo build --release -p admin-cli && cargo bench -p tests --bench backup [-- MB]
//! ```
//!
//! `MB` (stored page bytes, 10^6) defaults to 1024, `BENCH_ROUNDS` to 2 (each round times
//! both). Without `--bench` on its command line (`cargo test --all-targets`), it only makes a
//! smoke run of 2 MB. It prints figures and never fails on time.

mod support;

use anyhow::{bail, ensure, Context as _, Result};
use db::aggregation::Aggregation;
use db::enums::SimType;
use db::testing::TestDb;
use db::DbConfig;
use diesel::sql_types::{Array, BigInt, Jsonb, Text};
use diesel_async::RunQueryDsl;
use std::path::Path;
use std::process::Command;
use std::time::Instant;
use support::{BenchArgs, Noise};

/// Pages per estimator, estimators per simulation, and each page's grid.
const PAGES: i32 = 4;
const ESTIMATORS: [&str; 2] = ["dose_xz", "dose_yz"];
const ROWS: usize = 80;
const COLS: usize = 400;

/// Tasks per simulation.
const NTASKS: i32 = 4;

/// The baseline's scratch database, dropped on drop if it is still there.
struct ScratchDb {
    server: DbConfig,
    name: String,
}

impl Drop for ScratchDb {
    fn drop(&mut self) {
        let _ = psql(
            &self.server,
            &format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name),
        );
    }
}

/// Runs one statement with `psql` against `config`'s database; its output.
fn psql(config: &DbConfig, sql: &str) -> Result<String> {
    let out = Command::new("psql")
        .args([
            "-X",
            "-At",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            config.url_with_password(),
            "-c",
            sql,
        ])
        .output()
        .context("cannot run psql")?;
    ensure!(
        out.status.success(),
        "psql -c {sql}: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// One simulation, finished, with its pages: the stored bytes of its pages.
async fn simulation(conn: &mut db::Conn, owner: i64, rng: &mut Noise, n: usize) -> Result<i64> {
    let mut new = db::testing::new_simulation(owner, SimType::Builtin, NTASKS, 4_000_000);
    new.title = format!("dose maps #{n}");
    let editor = serde_json::json!({
        "beam": {"particle": "proton", "energy_mev": 150.0, "sigma_cm": 0.3},
        "phantom": {"material": "water", "radius_cm": 5.0, "depth_cm": 20.0},
        "scoring": {"z_bins": COLS, "r_bins": ROWS},
        "seed": n
    });
    let (sim, tasks) = support::create_and_claim(conn, &new, editor).await?;
    for t in &tasks {
        let log = format!(
            "builtin engine: {} primaries, seed {n}\ndone: {} primaries in 20.4 s\n",
            t.requested_primaries, t.requested_primaries
        );
        db::logs::store(conn, sim.id, Some(t.id), "stdout", log.as_bytes()).await?;
        db::queue::complete(conn, &t.lease("bench"), t.requested_primaries).await?;
    }

    // The final pages, as `db::results::write_final_pages` stores them.
    #[derive(diesel::QueryableByName)]
    struct Est {
        #[diesel(sql_type = BigInt)]
        id: i64,
    }
    let meta = vec![serde_json::json!({"simulator": "builtin"}); ESTIMATORS.len()];
    let ests: Vec<Est> = diesel::sql_query(
        "INSERT INTO estimators (simulation_id, name, metadata)
         SELECT $1, u.name, u.meta FROM unnest($2::text[], $3::jsonb[]) AS u(name, meta)
         RETURNING id",
    )
    .bind::<BigInt, _>(sim.id)
    .bind::<Array<Text>, _>(ESTIMATORS.as_slice())
    .bind::<Array<Jsonb>, _>(&meta)
    .load(conn)
    .await?;
    let axes = serde_json::json!([
        {"name": "x", "unit": "cm", "bins": ROWS, "min": -2.0, "max": 2.0},
        {"name": "z", "unit": "cm", "bins": COLS, "min": 0.0, "max": 20.0}
    ]);
    let meta = db::results::PageMeta {
        name: "dose".into(),
        dimension: 2,
        axes,
        value_name: "dose".into(),
        value_unit: "MeV/g/primary".into(),
        metadata: serde_json::json!({}),
        ..Default::default()
    };
    // Pages as a merge of 10 tasks of 10^6 primaries would leave them.
    let combined = db::results::Combined {
        aggregation: Aggregation::Mean,
        tasks_merged: Some(10),
        primaries: Some(10_000_000),
    };
    let mut rows = db::results::PageRows::default();
    for e in &ests {
        for page in 0..PAGES {
            let v: Vec<f64> = (0..ROWS * COLS).map(|_| rng.unit() * 1e-3).collect();
            let s: Vec<f64> = v.iter().map(|x| x * 0.05 * rng.unit()).collect();
            rows.push(e.id, page, meta.clone(), combined, &v, Some(&s))?;
        }
    }
    let bytes = rows.encoded_bytes();
    rows.insert(conn).await?;
    Ok(bytes as i64)
}

/// Runs `cmd` to the end; its stdout, and the seconds it took. Fails unless it succeeds.
fn timed(what: &str, cmd: &mut Command) -> Result<(String, f64)> {
    let t0 = Instant::now();
    let out = cmd.output().with_context(|| format!("cannot run {what}"))?;
    let seconds = t0.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!(
            "{what} failed: {}\n{}",
            stdout.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok((stdout, seconds))
}

fn file_size(path: &Path) -> Result<u64> {
    Ok(std::fs::metadata(path)
        .with_context(|| format!("no dump at {}", path.display()))?
        .len())
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

/// One round's figures for one side: (dump seconds, restore-and-check seconds, dump bytes).
type Side = (f64, f64, u64);

/// `admin-cli backup` then `admin-cli verify-backup`.
fn product(url: &str, dir: &Path) -> Result<Side> {
    let file = dir.join("admin-cli.dump");
    let (_, backup) = timed(
        "admin-cli backup",
        tests::command("admin-cli")
            .args(["--database-url", url, "backup", "--out"])
            .arg(&file),
    )?;
    let bytes = file_size(&file)?;
    let (report, verify) = timed(
        "admin-cli verify-backup",
        tests::command("admin-cli")
            .args(["--database-url", url, "verify-backup"])
            .arg(&file),
    )?;
    ensure!(
        report.contains("verdict: ok"),
        "verify-backup said:\n{report}"
    );
    std::fs::remove_file(&file)?;
    Ok((backup, verify, bytes))
}

/// `pg_dump -Fc` then `CREATE DATABASE`, `pg_restore` into it, `DROP DATABASE`.
fn baseline(config: &DbConfig, scratch: &ScratchDb, dir: &Path) -> Result<Side> {
    let file = dir.join("pg_dump.dump");
    let (_, dump) = timed(
        "pg_dump",
        Command::new("pg_dump")
            .args([
                "--format=custom",
                "--no-password",
                "-d",
                config.url_with_password(),
            ])
            .arg(format!("--file={}", file.display())),
    )?;
    let bytes = file_size(&file)?;
    let t0 = Instant::now();
    psql(
        &scratch.server,
        &format!("CREATE DATABASE \"{}\"", scratch.name),
    )?;
    timed(
        "pg_restore",
        Command::new("pg_restore")
            .args([
                "--no-owner",
                "--no-privileges",
                "--exit-on-error",
                "--no-password",
                "--single-transaction",
                "-d",
                config.with_dbname(&scratch.name).url_with_password(),
            ])
            .arg(&file),
    )?;
    psql(
        &scratch.server,
        &format!("DROP DATABASE \"{}\" WITH (FORCE)", scratch.name),
    )?;
    let restore = t0.elapsed().as_secs_f64();
    std::fs::remove_file(&file)?;
    Ok((dump, restore, bytes))
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = BenchArgs::parse()?;
    let target_mb: f64 = args.size("MB", 1024.0, 2.0)?;
    let rounds = args.rounds;
    // Under /var/tmp: the dumps are large, and /tmp may be a small tmpfs.
    let dir = tempfile::Builder::new()
        .prefix("sim-backup-bench-")
        .tempdir_in("/var/tmp")?;
    let db = TestDb::new().await;
    let config = db.config().clone();
    let url = config.url_with_password().to_owned();
    let scratch = ScratchDb {
        server: db::testing::server_config(),
        name: format!("{}_restore", db.name()),
    };

    let t0 = Instant::now();
    let mut conn = db.conn().await;
    let owner = db::testing::user(&mut conn, "bench").await;
    let mut rng = Noise::new(0x0bac_c0de);
    let (mut stored, mut sims) = (0i64, 0usize);
    while (stored as f64) < target_mb * 1e6 {
        stored += simulation(&mut conn, owner, &mut rng, sims).await?;
        sims += 1;
    }
    drop(conn);
    psql(&config, "VACUUM ANALYZE")?;
    let seeded = t0.elapsed().as_secs_f64();
    let pages_bytes: i64 = psql(
        &config,
        "SELECT sum(pg_column_size(values_data) + coalesce(pg_column_size(errors_data), 0)) FROM pages",
    )?
    .parse()?;
    let db_bytes: u64 = psql(&config, "SELECT pg_database_size(current_database())")?.parse()?;
    println!(
        "backup: {sims} finished simulations, {} pages of {ROWS}x{COLS} values (values and errors)",
        psql(&config, "SELECT count(*) FROM pages")?
    );
    println!(
        "  seeded in {seeded:.1} s: pages store {:.1} MB ({:.2} bytes per value), database {:.1} MB",
        mb(pages_bytes as u64),
        pages_bytes as f64 / (psql(&config, "SELECT sum(value_count) * 2 FROM pages")?.parse::<f64>()?),
        mb(db_bytes)
    );

    let (mut ours, mut base): (Vec<Side>, Vec<Side>) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        for is_product in support::order(round) {
            psql(&config, "CHECKPOINT")?;
            if is_product {
                let s = product(&url, dir.path())?;
                println!(
                    "  round {}: admin-cli backup {:.2} s ({:.1} MB dump), verify-backup {:.2} s; total {:.2} s",
                    round + 1,
                    s.0,
                    mb(s.2),
                    s.1,
                    s.0 + s.1
                );
                ours.push(s);
            } else {
                let s = baseline(&config, &scratch, dir.path())?;
                println!(
                    "  round {}: pg_dump -Fc {:.2} s ({:.1} MB dump), create + pg_restore + drop {:.2} s; total {:.2} s (baseline)",
                    round + 1,
                    s.0,
                    mb(s.2),
                    s.1,
                    s.0 + s.1
                );
                base.push(s);
            }
        }
    }
    let mean = |v: &[Side], f: fn(&Side) -> f64| v.iter().map(f).sum::<f64>() / v.len() as f64;
    let (od, ov) = (mean(&ours, |s| s.0), mean(&ours, |s| s.1));
    let (bd, bv) = (mean(&base, |s| s.0), mean(&base, |s| s.1));
    println!(
        "  mean: backup {od:.2} s vs pg_dump {bd:.2} s: {:.2}x",
        od / bd
    );
    println!(
        "        verify-backup {ov:.2} s vs restore {bv:.2} s: {:.2}x",
        ov / bv
    );
    println!(
        "        backup + verify-backup {:.2} s vs pg_dump + restore {:.2} s: {:.2}x",
        od + ov,
        bd + bv,
        (od + ov) / (bd + bv)
    );
    Ok(())
}
