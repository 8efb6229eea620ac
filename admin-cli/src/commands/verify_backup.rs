//! verify-backup: restore a dump into a scratch database, check its migrations, row counts
//! and a decoded sample of pages, inputs and logs, drop the scratch database, print a verdict.

use super::backup::{find_tool, last_error, pg_command, pg_env, shown};
use super::Ctx;
use crate::output::write_json;
use anyhow::{bail, Context as _, Result};
use db::DbConfig;
use serde::Serialize;
use std::path::Path;
use std::process::Stdio;

/// How the dump is restored into the scratch database: as one transaction that stops at the
/// first error, owned by and granted to no one in particular, never asking for a password.
const RESTORE_ARGS: [&str; 5] = [
    "--no-owner",
    "--no-privileges",
    "--exit-on-error",
    "--no-password",
    "--single-transaction",
];

/// Rows of each kind decoded by `verify-backup`.
const SAMPLE: usize = 100;

/// One table's row count in the restored copy (and in the configured database, if reachable).
#[derive(Debug, Serialize)]
struct TableCount {
    table: String,
    restored: i64,
    source: Option<i64>,
}

/// Decoded and failed rows of one kind.
#[derive(Debug, Default, Serialize)]
struct Sample {
    decoded: usize,
    failed: Vec<String>,
}

impl Sample {
    /// Counts row `id` as decoded, or as failed.
    fn record(&mut self, id: String, ok: bool) {
        if ok {
            self.decoded += 1;
        } else {
            self.failed.push(id);
        }
    }

    /// Up to `limit` rows of `table` (by id), their `data` column decoded by `decode`.
    async fn of_column(
        scratch: &DbConfig,
        table: &str,
        limit: usize,
        decode: impl Fn(&[u8]) -> bool,
    ) -> Result<Self> {
        let mut sample = Self::default();
        let sql = format!("SELECT id, data FROM {table} ORDER BY id LIMIT {limit}");
        for row in rows(scratch, &sql).await? {
            let id = row.first().cloned().flatten().unwrap_or_default();
            let data = row.get(1).cloned().flatten();
            let ok = data.as_deref().and_then(unhex).is_some_and(|b| decode(&b));
            sample.record(id, ok);
        }
        Ok(sample)
    }
}

/// Everything verify-backup found (`--json`).
#[derive(Debug, Default, Serialize)]
struct Report {
    /// "ok", "failed" or "not restorable".
    verdict: String,
    problems: Vec<String>,
    /// The scratch database restored into (dropped again), if one was made.
    scratch_database: Option<String>,
    migrations_applied: usize,
    migrations_known: usize,
    tables: Vec<TableCount>,
    pages: Sample,
    inputs: Sample,
    logs: Sample,
}

/// A scratch database name: `sim_verify_` and 16 random hex digits.
fn scratch_name() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    format!("sim_verify_{:016x}", h.finish())
}

/// Runs SQL and returns the first statement's rows.
async fn rows(config: &DbConfig, sql: &str) -> Result<Vec<Vec<Option<String>>>> {
    let out = db::sql::run(config, sql).await?;
    Ok(match out.into_iter().next() {
        Some(db::sql::StatementOutput::Rows { rows, .. }) => rows,
        _ => Vec::new(),
    })
}

/// A bytea in PostgreSQL's hex text form.
fn unhex(text: &str) -> Option<Vec<u8>> {
    let hex = text.strip_prefix("\\x")?;
    if hex.len() % 2 != 0 {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Runs pg_restore with `args`, then `file`: its standard output, or (`Err`) the last line
/// of its error report when it fails.
async fn pg_restore(
    restore: &Path,
    env: &[(&'static str, String)],
    args: impl IntoIterator<Item = &str>,
    file: &Path,
) -> Result<Result<Vec<u8>, String>> {
    let out = pg_command(restore, env)
        .args(args)
        .arg(file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .await
        .context("cannot run pg_restore")?;
    Ok(if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(last_error(&out.stderr, env))
    })
}

/// `verify-backup FILE`.
pub async fn verify(ctx: &mut Ctx<'_>, file: &Path) -> Result<()> {
    let meta = std::fs::metadata(file).with_context(|| format!("cannot read {}", shown(file)))?;
    if !meta.is_file() {
        bail!("{} is not a file", shown(file));
    }
    let env = pg_env(&ctx.config)?;
    let restore = find_tool("pg_restore")?;
    let mut report = Report::default();

    // The table of contents: a file pg_restore cannot list is no dump at all.
    let listed = match pg_restore(&restore, &env, ["--list"], file).await? {
        Ok(listed) => listed,
        Err(why) => {
            report.problems.push(format!(
                "pg_restore cannot read its table of contents: {why}"
            ));
            return finish(ctx, report, "not restorable");
        }
    };
    let toc = String::from_utf8_lossy(&listed).into_owned();
    let dumped_db = toc
        .lines()
        .find_map(|l| l.trim_start_matches(';').trim().strip_prefix("dbname: "))
        .map(str::to_string);
    let mut tables: Vec<String> = toc
        .lines()
        .filter(|l| !l.starts_with(';'))
        .filter_map(|l| {
            // "123; 0 16400 TABLE DATA public users postgres"
            let (_, rest) = l.split_once(" TABLE DATA ")?;
            let mut words = rest.split_whitespace();
            let schema = words.next()?;
            let table = words.next()?;
            (schema == "public").then(|| table.to_string())
        })
        .collect();
    tables.sort();

    let scratch = scratch_name();
    rows(&ctx.config, &format!("CREATE DATABASE \"{scratch}\""))
        .await
        .context("cannot create a scratch database to restore into")?;
    report.scratch_database = Some(scratch.clone());
    let scratch_config = ctx.config.with_dbname(&scratch);
    let checked = check_restored(
        &ctx.config,
        &scratch_config,
        &scratch,
        &restore,
        &env,
        file,
        &tables,
        dumped_db.as_deref(),
        &mut report,
    )
    .await;
    let dropped = rows(
        &ctx.config,
        &format!("DROP DATABASE IF EXISTS \"{scratch}\" WITH (FORCE)"),
    )
    .await;
    let verdict = match checked {
        Ok(true) if report.problems.is_empty() => "ok",
        Ok(true) => "failed",
        Ok(false) => "not restorable",
        Err(e) => {
            report.problems.push(format!("{e:#}"));
            "failed"
        }
    };
    if let Err(e) = dropped {
        report.problems.push(format!(
            "the scratch database {scratch} could not be dropped: {e:#}"
        ));
    }
    finish(ctx, report, verdict)
}

/// Restores into the scratch database and checks it; false when the restore failed.
#[allow(clippy::too_many_arguments)]
async fn check_restored(
    source: &DbConfig,
    scratch: &DbConfig,
    scratch_name: &str,
    restore: &Path,
    env: &[(&'static str, String)],
    file: &Path,
    tables: &[String],
    dumped_db: Option<&str>,
    report: &mut Report,
) -> Result<bool> {
    let mut env = env.to_vec();
    env.retain(|(k, _)| *k != "PGDATABASE");
    env.push(("PGDATABASE", scratch_name.to_string()));
    let dbname = format!("--dbname={scratch_name}");
    let args = RESTORE_ARGS.into_iter().chain([dbname.as_str()]);
    if let Err(why) = pg_restore(restore, &env, args, file).await? {
        report.problems.push(format!("pg_restore failed: {why}"));
        return Ok(false);
    }

    // Migrations.
    let mut conn = db::connect(scratch).await?;
    let applied = db::migrate::applied_versions(&mut conn).await?;
    drop(conn);
    let known: Vec<String> = db::migrate::known_migrations()?
        .into_iter()
        .map(|(v, _)| v)
        .collect();
    report.migrations_applied = applied.len();
    report.migrations_known = known.len();
    let missing: Vec<&str> = known
        .iter()
        .filter(|v| !applied.contains(v))
        .map(String::as_str)
        .collect();
    let unknown: Vec<&str> = applied
        .iter()
        .filter(|v| !known.contains(v))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        report.problems.push(format!(
            "migrations this binary has but the dump lacks: {}",
            missing.join(", ")
        ));
    }
    if !unknown.is_empty() {
        report.problems.push(format!(
            "migrations in the dump this binary does not know: {}",
            unknown.join(", ")
        ));
    }

    // Row counts: the TOC names the tables with data (it holds no counts), so count the
    // restored copy, and the configured database when it is the one the dump came from.
    let same_source = dumped_db.is_some_and(|d| d == source.dbname());
    for table in tables {
        let quoted = format!("\"{}\"", table.replace('"', "\"\""));
        let sql = format!("SELECT count(*) FROM {quoted}");
        let restored = rows(scratch, &sql)
            .await
            .ok()
            .and_then(|r| r.first()?.first()?.as_deref()?.parse::<i64>().ok());
        let Some(restored) = restored else {
            report.problems.push(format!(
                "table {} is in the table of contents but cannot be counted in the restored copy",
                crate::output::safe(table)
            ));
            continue;
        };
        let source = if same_source {
            rows(source, &sql)
                .await
                .ok()
                .and_then(|r| r.first()?.first()?.as_deref()?.parse::<i64>().ok())
        } else {
            None
        };
        report.tables.push(TableCount {
            table: table.clone(),
            restored,
            source,
        });
    }

    // A sample of stored blobs, decoded with the codec.
    let limit = SAMPLE;
    for row in rows(
        scratch,
        &format!("SELECT id, values_data, errors_data FROM pages ORDER BY id LIMIT {limit}"),
    )
    .await?
    {
        let id = row.first().cloned().flatten().unwrap_or_default();
        let values = row.get(1).cloned().flatten();
        let errors = row.get(2).cloned().flatten();
        let ok = values
            .as_deref()
            .and_then(unhex)
            .is_some_and(|b| db::codec::decode(&b).is_ok())
            && errors
                .as_deref()
                .is_none_or(|e| unhex(e).is_some_and(|b| db::codec::decode(&b).is_ok()));
        report.pages.record(id, ok);
    }
    report.inputs = Sample::of_column(scratch, "inputs", limit, |b| {
        db::inputs::SimulationInput::decode(b).is_ok()
    })
    .await?;
    report.logs = Sample::of_column(scratch, "logfiles", limit, |b| {
        db::blob::decompress(b, db::blob::DEFAULT_MAX_LEN).is_ok()
    })
    .await?;
    for (what, sample) in [
        ("pages", &report.pages),
        ("inputs", &report.inputs),
        ("logfiles", &report.logs),
    ] {
        if !sample.failed.is_empty() {
            let problem = format!(
                "{} of {what} cannot be decoded (ids {})",
                sample.failed.len(),
                sample.failed.join(", ")
            );
            report.problems.push(problem);
        }
    }
    Ok(true)
}

/// Prints the report and its verdict; an error (exit code 1) unless the verdict is ok.
fn finish(ctx: &mut Ctx<'_>, mut report: Report, verdict: &str) -> Result<()> {
    report.verdict = verdict.to_string();
    if ctx.json {
        write_json(&mut ctx.out, &report)?;
    } else {
        if verdict != "not restorable" {
            writeln!(
                ctx.out,
                "migrations: {} applied, {} known to this binary",
                report.migrations_applied, report.migrations_known
            )?;
            let mut t = crate::output::Table::new(["TABLE", "ROWS", "SOURCE_ROWS"]);
            for c in &report.tables {
                t.row(vec![
                    crate::output::safe(&c.table),
                    c.restored.to_string(),
                    c.source.map_or_else(|| "-".to_string(), |n| n.to_string()),
                ]);
            }
            t.write(&mut ctx.out)?;
            for c in &report.tables {
                if let Some(n) = c.source.filter(|n| *n != c.restored) {
                    writeln!(
                        ctx.out,
                        "note: {} has {n} row(s) in the configured database, {} in the dump \
                         (changed since the backup?)",
                        crate::output::safe(&c.table),
                        c.restored
                    )?;
                }
            }
            writeln!(
                ctx.out,
                "decoded: {} page(s), {} input(s), {} log(s) (a sample of up to {SAMPLE} each)",
                report.pages.decoded, report.inputs.decoded, report.logs.decoded
            )?;
        }
        if let Some(name) = &report.scratch_database {
            writeln!(ctx.out, "restored into scratch database {name} (dropped)")?;
        }
        for p in &report.problems {
            writeln!(ctx.out, "problem: {p}")?;
        }
        writeln!(ctx.out, "verdict: {verdict}")?;
    }
    match verdict {
        "ok" => Ok(()),
        "not restorable" => {
            ctx.out.flush()?;
            bail!(
                "backup not restorable: {}",
                report.problems.first().map_or("", String::as_str)
            )
        }
        _ => {
            ctx.out.flush()?;
            bail!("backup failed verification: {}", report.problems.join("; "))
        }
    }
}
