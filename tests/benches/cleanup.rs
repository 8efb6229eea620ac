//! `admin-cli cleanup` of 10,000 finished simulations with everything under them, against a
//! plain `DELETE FROM simulations WHERE id BETWEEN …` of the same number of simulations of
//! the same content (its cascades delete the rest), in the same run.
//!
//! The content is made the product's way once: a builtin simulation of 4 tasks with its
//! compressed editor input is created (`db::simulations::create_with_tasks`), its tasks are
//! claimed (`db::queue::claim`), each stores a stdout log (`db::logs::store`) and completes
//! with builtin-shaped pages (`db::merge::complete_with_results`: depth dose and fluences of
//! 400 bins, a 400×50 dose map, Monte Carlo noise); the last completion merges them into final
//! pages with errors (`pages`, encoded with the page codec). That simulation is then copied
//! row for row in SQL (every table under it; fresh ids and job ids; every timestamp moved 100
//! days back), so each copy is what the product stores for such a run, ended 100 days ago.
//! The template itself ended now and is never taken.
//!
//! Each round copies it anew, runs `VACUUM ANALYZE` and `CHECKPOINT`, then times either the
//! real `admin-cli cleanup --older-than 90d` (default `--batch-size`) or the baseline (`psql
//! -c DELETE …`, one statement), as whole processes. Rounds alternate which goes first.
//!
//! Needs PostgreSQL at `TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/
//! postgres`; a database is created and dropped), `psql`, and `admin-cli` built with the
//! same profile (`tests::bin_path`; `SIM_BIN_DIR` names another folder):
//!
//! ```text
//! cargo build --release -p admin-cli && cargo bench -p tests --bench cleanup [-- SIMULATIONS]
//! ```
//!
//! `SIMULATIONS` defaults to 10,000, `BENCH_ROUNDS` to 2 (each round times both). Without
//! `--bench` on its command line (`cargo test --all-targets`), it only makes a smoke run of
//! 20 simulations. It prints figures and never fails on time.

mod support;
// The bench's root is this file, so its own module sits beside it under cleanup/.
#[path = "cleanup/template.rs"]
mod template;

use anyhow::{bail, ensure, Context as _, Result};
use db::testing::TestDb;
use db::DbConfig;
use std::process::Command;
use std::time::{Duration, Instant};
use template::{template, NTASKS};

/// The age of the copies; the cleanup takes what ended more than 90 days ago.
const AGE: &str = "100 days";

/// The first row of `sql`'s first statement.
async fn row(config: &DbConfig, sql: &str) -> Result<Vec<Option<String>>> {
    let out = db::sql::run(config, sql).await?;
    match out.into_iter().next() {
        Some(db::sql::StatementOutput::Rows { rows, .. }) => {
            Ok(rows.into_iter().next().unwrap_or_default())
        }
        _ => bail!("no rows from {sql}"),
    }
}

/// The first value of `sql`'s first row.
async fn scalar(config: &DbConfig, sql: &str) -> Result<String> {
    row(config, sql)
        .await?
        .into_iter()
        .next()
        .flatten()
        .with_context(|| format!("no value from {sql}"))
}

/// A column of a table: name and type.
struct Column {
    name: String,
    timestamp: bool,
}

async fn columns(config: &DbConfig, table: &str) -> Result<Vec<Column>> {
    let out = db::sql::run(
        config,
        &format!(
            "SELECT column_name, data_type FROM information_schema.columns
             WHERE table_schema = 'public' AND table_name = '{table}' ORDER BY ordinal_position"
        ),
    )
    .await?;
    let Some(db::sql::StatementOutput::Rows { rows, .. }) = out.into_iter().next() else {
        bail!("no columns for {table}");
    };
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            let mut r = r.into_iter();
            let name = r.next().flatten()?;
            let ty = r.next().flatten()?;
            Some(Column {
                name,
                timestamp: ty.starts_with("timestamp"),
            })
        })
        .collect())
}

/// `INSERT INTO table (…) SELECT … FROM from`: every column of `x` (the source row) as is,
/// except those in `set` (column, expression), `id` (left to its default unless set), and
/// timestamps (moved back by `AGE`).
async fn copy_sql(
    config: &DbConfig,
    table: &str,
    from: &str,
    set: &[(&str, &str)],
) -> Result<String> {
    let (mut names, mut exprs) = (Vec::new(), Vec::new());
    for c in columns(config, table).await? {
        let expr = match set.iter().find(|(n, _)| *n == c.name) {
            Some((_, e)) => (*e).to_owned(),
            None if c.name == "id" => continue,
            None if c.timestamp => format!("x.{} - interval '{AGE}'", c.name),
            None => format!("x.{}", c.name),
        };
        names.push(c.name);
        exprs.push(expr);
    }
    Ok(format!(
        "INSERT INTO {table} ({}) SELECT {} FROM {from};",
        names.join(", "),
        exprs.join(", ")
    ))
}

/// One table's copy: (table, the rows to copy, the columns given new values).
type Copy<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);

/// The SQL that copies simulation `tpl` and everything under it `n` times (one transaction);
/// the copies' ids are `lo..=hi` of the temporary table `sim_map`.
async fn copies_sql(config: &DbConfig, tpl: i64, n: usize) -> Result<String> {
    let seq = |t: &str| format!("nextval(pg_get_serial_sequence('{t}', 'id'))");
    let mut sql = format!(
        "BEGIN;
         CREATE TEMP TABLE sim_map ON COMMIT DROP AS
           SELECT g AS n, {} AS new_id FROM generate_series(1, {n}) g ORDER BY g;
         CREATE TEMP TABLE task_map ON COMMIT DROP AS
           SELECT m.new_id AS sim_id, t.id AS old_id, {} AS new_id
           FROM sim_map m CROSS JOIN tasks t WHERE t.simulation_id = {tpl} ORDER BY m.n, t.task_index;
         CREATE TEMP TABLE est_map ON COMMIT DROP AS
           SELECT m.new_id AS sim_id, e.id AS old_id, {} AS new_id
           FROM sim_map m CROSS JOIN estimators e WHERE e.simulation_id = {tpl} ORDER BY m.n, e.id;
         ",
        seq("simulations"),
        seq("tasks"),
        seq("estimators")
    );
    let id_title = "x.title || ' #' || m.n".to_owned();
    let sim_join = format!("sim_map m JOIN simulations x ON x.id = {tpl} ORDER BY m.n");
    let inputs_join = format!("sim_map m JOIN inputs x ON x.simulation_id = {tpl} ORDER BY m.n");
    let logfiles_join = format!(
        "sim_map s JOIN logfiles x ON x.simulation_id = {tpl}
         LEFT JOIN task_map m ON m.old_id = x.task_id AND m.sim_id = s.new_id ORDER BY s.n, x.id"
    );
    // Each table, parents first.
    let copies: [Copy<'_>; 6] = [
        (
            "simulations",
            &sim_join,
            &[
                ("id", "m.new_id"),
                ("job_id", "gen_random_uuid()"),
                ("title", &id_title),
            ],
        ),
        ("inputs", &inputs_join, &[("simulation_id", "m.new_id")]),
        (
            "tasks",
            "task_map m JOIN tasks x ON x.id = m.old_id ORDER BY m.new_id",
            &[("id", "m.new_id"), ("simulation_id", "m.sim_id")],
        ),
        (
            "logfiles",
            &logfiles_join,
            &[("simulation_id", "s.new_id"), ("task_id", "m.new_id")],
        ),
        (
            "estimators",
            "est_map m JOIN estimators x ON x.id = m.old_id ORDER BY m.new_id",
            &[("id", "m.new_id"), ("simulation_id", "m.sim_id")],
        ),
        (
            "pages",
            "est_map m JOIN pages x ON x.estimator_id = m.old_id ORDER BY m.new_id, x.page_number",
            &[("estimator_id", "m.new_id")],
        ),
    ];
    for (table, from, set) in copies {
        sql += &copy_sql(config, table, from, set).await?;
    }
    sql += "COMMIT;";
    Ok(sql)
}

/// Rows of each table under the simulations `ids` (a SQL condition on a simulation id,
/// written with `SIM` for the column).
async fn rows_under(config: &DbConfig, ids: &str) -> Result<Vec<(String, i64)>> {
    // Each table, the rows it counts from, and its simulation id column there.
    const TABLES: [(&str, &str, &str); 6] = [
        ("simulations", "simulations", "id"),
        ("tasks", "tasks", "simulation_id"),
        ("inputs", "inputs", "simulation_id"),
        ("logfiles", "logfiles", "simulation_id"),
        ("estimators", "estimators", "simulation_id"),
        (
            "pages",
            "pages p JOIN estimators e ON e.id = p.estimator_id",
            "e.simulation_id",
        ),
    ];
    let mut out = Vec::new();
    for (table, from, column) in TABLES {
        let sql = format!(
            "SELECT count(*) FROM {from} WHERE {}",
            ids.replace("SIM", column)
        );
        out.push((table.to_owned(), scalar(config, &sql).await?.parse()?));
    }
    Ok(out)
}

/// Copies the template `n` times, vacuums, analyzes and checkpoints: the copies' id range.
async fn seed(config: &DbConfig, tpl: i64, n: usize) -> Result<(i64, i64, Duration)> {
    let t0 = Instant::now();
    db::sql::run(config, &copies_sql(config, tpl, n).await?).await?;
    let took = t0.elapsed();
    db::sql::run(config, "VACUUM ANALYZE").await?;
    db::sql::run(config, "CHECKPOINT").await?;
    let r = row(
        config,
        &format!("SELECT min(id), max(id), count(*) FROM simulations WHERE id <> {tpl}"),
    )
    .await?;
    let get = |i: usize| -> Result<i64> {
        Ok(r.get(i).cloned().flatten().context("no copies")?.parse()?)
    };
    let (lo, hi, count) = (get(0)?, get(1)?, get(2)?);
    ensure!(
        count == n as i64 && hi - lo + 1 == count,
        "copies {lo}..={hi}: {count} rows"
    );
    Ok((lo, hi, took))
}

/// What one timed deletion did.
struct Timed {
    seconds: f64,
    line: String,
}

/// The real `admin-cli cleanup --older-than 90d`, as a whole process.
fn product(url: &str, n: usize) -> Result<Timed> {
    let t0 = Instant::now();
    let out = tests::command("admin-cli")
        .args(["--database-url", url, "cleanup", "--older-than", "90d"])
        .output()?;
    let seconds = t0.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    ensure!(
        out.status.success(),
        "admin-cli cleanup failed: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(
        stdout.starts_with(&format!("deleted {n} finished")),
        "admin-cli cleanup: {stdout}"
    );
    Ok(Timed {
        seconds,
        line: stdout,
    })
}

/// The baseline: one `DELETE` of the same simulations by `psql`, as a whole process.
fn baseline(url: &str, lo: i64, hi: i64, n: usize) -> Result<Timed> {
    let t0 = Instant::now();
    let out = Command::new("psql")
        .args(["-X", "-v", "ON_ERROR_STOP=1", "-d", url, "-c"])
        .arg(format!(
            "DELETE FROM simulations WHERE id BETWEEN {lo} AND {hi}"
        ))
        .output()
        .context("cannot run psql")?;
    let seconds = t0.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    ensure!(
        out.status.success() && stdout == format!("DELETE {n}"),
        "psql: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(Timed {
        seconds,
        line: stdout,
    })
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = support::BenchArgs::parse()?;
    let n: usize = args.size("SIMULATIONS", 10_000, 20)?;
    let rounds = args.rounds;
    let db = TestDb::new().await;
    let config = db.config().clone();
    let url = config.url_with_password().to_owned();
    let t0 = Instant::now();
    let tpl = template(&db).await?;
    println!("cleanup: {n} finished simulations of {NTASKS} tasks each, {rounds} round(s)");
    println!(
        "  template made the product's way in {:.2} s; per simulation:",
        t0.elapsed().as_secs_f64()
    );
    let under = rows_under(&config, &format!("SIM = {tpl}")).await?;
    let per_sim: i64 = under.iter().map(|(_, c)| c).sum();
    println!(
        "    rows: {} ({per_sim} in all)",
        under
            .iter()
            .map(|(t, c)| format!("{t} {c}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let bytes = scalar(
        &config,
        &format!(
            "SELECT (SELECT sum(pg_column_size(values_data) + coalesce(pg_column_size(errors_data), 0))
                     FROM pages p JOIN estimators e ON e.id = p.estimator_id WHERE e.simulation_id = {tpl})
                  + (SELECT coalesce(sum(pg_column_size(data)), 0) FROM inputs WHERE simulation_id = {tpl})
                  + (SELECT coalesce(sum(pg_column_size(data)), 0) FROM logfiles WHERE simulation_id = {tpl})"
        ),
    )
    .await?;
    println!("    stored bytes of pages, input and logs: {bytes}");

    let (mut ours, mut base) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        for is_product in support::order(round) {
            let (lo, hi, took) = seed(&config, tpl, n).await?;
            let size = scalar(
                &config,
                "SELECT pg_size_pretty(pg_database_size(current_database()))",
            )
            .await?;
            let timed = if is_product {
                product(&url, n)?
            } else {
                baseline(&url, lo, hi, n)?
            };
            let left = scalar(
                &config,
                &format!("SELECT count(*) FROM simulations WHERE id <> {tpl}"),
            )
            .await?;
            ensure!(left == "0", "{left} copies left after the deletion");
            let orphans = scalar(
                &config,
                &format!(
                    "SELECT (SELECT count(*) FROM tasks WHERE simulation_id <> {tpl})
                          + (SELECT count(*) FROM logfiles WHERE simulation_id <> {tpl})
                          + (SELECT count(*) FROM pages p JOIN estimators e ON e.id = p.estimator_id
                             WHERE e.simulation_id <> {tpl})"
                ),
            )
            .await?;
            ensure!(
                orphans == "0",
                "{orphans} rows left under deleted simulations"
            );
            let what = if is_product {
                "admin-cli cleanup"
            } else {
                "psql DELETE (baseline)"
            };
            println!(
                "  round {}: seeded {n} copies in {:.1} s (database {size}); {what}: {:.2} s, \
                 {:.0} simulations/s, {:.0} rows/s  [{}]",
                round + 1,
                took.as_secs_f64(),
                timed.seconds,
                n as f64 / timed.seconds,
                (n as f64 * per_sim as f64) / timed.seconds,
                timed.line
            );
            if is_product {
                ours.push(timed.seconds);
            } else {
                base.push(timed.seconds);
            }
            db::sql::run(&config, "VACUUM").await?;
        }
    }
    let (o, b) = (
        ours.iter().sum::<f64>() / ours.len() as f64,
        base.iter().sum::<f64>() / base.len() as f64,
    );
    println!(
        "  mean: admin-cli cleanup {o:.2} s ({:.0} simulations/s), DELETE {b:.2} s ({:.0} simulations/s)",
        n as f64 / o,
        n as f64 / b
    );
    println!("  ratio (cleanup time / DELETE time): {:.2}x", o / b);
    Ok(())
}
