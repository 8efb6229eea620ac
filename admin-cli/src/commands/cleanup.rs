//! cleanup: delete finished simulations that ended long enough ago, in short batches.

use super::Ctx;
use crate::output::{opt_time, safe, write_json, Table};
use anyhow::{bail, Result};
use db::enums::AuthProvider;
use db::simulations::{CleanupFilter, CleanupRow};
use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What a cleanup did, or would do (`--json`).
#[derive(Debug, Default, Serialize)]
struct Summary {
    /// Nothing was deleted.
    dry_run: bool,
    /// Simulations deleted (or that would be).
    simulations: u64,
    /// Stored bytes freed (or that would be).
    bytes: u64,
    /// Stopped by Ctrl-C before the end.
    interrupted: bool,
}

impl Summary {
    fn add(&mut self, rows: &[CleanupRow]) {
        self.simulations += rows.len() as u64;
        self.bytes += rows.iter().map(|r| r.bytes.max(0) as u64).sum::<u64>();
    }

    fn line(&self) -> String {
        let (verb, freed) = if self.dry_run {
            ("would delete", "would free")
        } else {
            ("deleted", "freed")
        };
        format!(
            "{verb} {} finished simulation(s); {freed} {} ({} bytes)",
            self.simulations,
            HumanBytes(self.bytes),
            self.bytes
        )
    }
}

/// Set once Ctrl-C is pressed: the loop stops after the batch under way.
fn interrupt_flag() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let set = flag.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            set.store(true, Ordering::SeqCst);
        }
    });
    flag
}

/// A progress bar on a terminal (standard error), hidden otherwise.
fn progress(total: u64, dry_run: bool) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    let template = if dry_run {
        "[{elapsed_precise}] {bar:30} {pos}/{len} simulations checked, {msg}"
    } else {
        "[{elapsed_precise}] {bar:30} {pos}/{len} simulations deleted, {msg}"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(250));
    bar
}

/// `cleanup --older-than AGE [--state S,...] [--user U] [--auth-provider P] [--dry-run]`.
pub async fn run(
    ctx: &mut Ctx<'_>,
    filter: CleanupFilter,
    dry_run: bool,
    batch_size: i64,
) -> Result<()> {
    let mut conn = ctx.conn().await?;
    if let Some(name) = &filter.username {
        // A name that matches nobody is a mistake worth saying, not an empty cleanup.
        let providers = match filter.auth_provider {
            Some(p) => vec![p],
            None => AuthProvider::ALL.to_vec(),
        };
        let mut found = false;
        for p in &providers {
            match db::users::get(&mut conn, name, *p).await {
                Ok(_) => found = true,
                Err(db::DbError::NotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if !found {
            let of = filter
                .auth_provider
                .map_or_else(String::new, |p| format!(" ({p})"));
            bail!("user {name:?}{of} not found");
        }
    }
    let stop = interrupt_flag();
    let total = db::simulations::cleanup_count(&mut conn, &filter).await?;
    let bar = progress(total.max(0) as u64, dry_run);
    let mut summary = Summary {
        dry_run,
        ..Summary::default()
    };
    let mut listed: Vec<CleanupRow> = Vec::new();
    let mut after = 0i64;
    loop {
        if stop.load(Ordering::SeqCst) {
            summary.interrupted = true;
            break;
        }
        let (rows, last) = if dry_run {
            let rows =
                db::simulations::cleanup_candidates(&mut conn, &filter, after, batch_size).await?;
            let last = rows.last().map(|r| r.id);
            (rows, last)
        } else {
            let b = db::simulations::cleanup_batch(&mut conn, &filter, after, batch_size).await?;
            (b.deleted, b.last_id)
        };
        let Some(last) = last else { break };
        after = last;
        summary.add(&rows);
        bar.set_position(summary.simulations.min(total.max(0) as u64));
        let freed = if dry_run { "would free" } else { "freed" };
        bar.set_message(format!("{} {freed}", HumanBytes(summary.bytes)));
        if dry_run {
            listed.extend(rows);
        }
    }
    bar.finish_and_clear();

    if ctx.json {
        if dry_run {
            #[derive(Serialize)]
            struct DryRun<'a> {
                #[serde(flatten)]
                summary: &'a Summary,
                candidates: &'a [CleanupRow],
            }
            write_json(
                &mut ctx.out,
                &DryRun {
                    summary: &summary,
                    candidates: &listed,
                },
            )?;
        } else {
            write_json(&mut ctx.out, &summary)?;
        }
    } else {
        if dry_run {
            let mut t = Table::new(["ID", "JOB_ID", "USER", "STATE", "ENDED", "BYTES"]);
            for r in &listed {
                t.row(vec![
                    r.id.to_string(),
                    r.job_id.to_string(),
                    format!("{}/{}", safe(&r.username), r.auth_provider),
                    r.job_state.to_string(),
                    opt_time(&r.end_time),
                    r.bytes.to_string(),
                ]);
            }
            t.write(&mut ctx.out)?;
        }
        writeln!(ctx.out, "{}", summary.line())?;
    }
    if summary.interrupted {
        ctx.out.flush()?;
        bail!(
            "interrupted: {}; run the same command again to go on",
            summary.line()
        );
    }
    Ok(())
}
