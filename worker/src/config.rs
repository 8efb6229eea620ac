//! Worker settings: every one a flag and an environment variable.

use clap::Parser;
use db::config::{format_duration, parse_duration, DbArgs};
use std::path::PathBuf;
use std::time::Duration;
use worker::handlers::HandlerKind;
use worker::settings::{
    default_concurrency, default_work_root, default_worker_id, Settings, DEFAULT_GRACE,
    DEFAULT_LEASE, DEFAULT_POLL, MAX_LEASE, MAX_WAIT, MIN_LEASE,
};

/// The task worker: claims tasks from PostgreSQL, runs simulators, stores results.
#[derive(Debug, Clone, Parser)]
#[command(name = "worker", version, about)]
pub struct Config {
    /// The database connection.
    #[command(flatten)]
    pub db: DbArgs,

    /// Tasks run at once (default: the number of cores).
    #[arg(long, env = "WORKER_CONCURRENCY", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub concurrency: Option<u32>,

    /// Name of this worker in task leases (default: host name and process id).
    #[arg(long, env = "WORKER_ID")]
    pub worker_id: Option<String>,

    /// Lease length (2s to 1h); a heartbeat renews it every third of that.
    #[arg(long, env = "WORKER_LEASE", value_name = "DURATION",
          default_value_t = Dur(DEFAULT_LEASE), value_parser = parse_lease)]
    pub lease: Dur,

    /// Time between queue polls when no notification arrives.
    #[arg(long, env = "WORKER_POLL", value_name = "DURATION",
          default_value_t = Dur(DEFAULT_POLL), value_parser = duration)]
    pub poll: Dur,

    /// Time running tasks get to finish after SIGTERM before they are handed back.
    #[arg(long, env = "WORKER_GRACE", value_name = "DURATION",
          default_value_t = Dur(DEFAULT_GRACE), value_parser = duration)]
    pub grace: Dur,

    /// What runs a task: `simulators` (the real ones), or `noop` / `sleep:MS` for benchmarks
    /// and tests of the queue itself, or `panic` for tests of the worker's panic guard.
    #[arg(long, env = "WORKER_HANDLER", default_value = "simulators", value_parser = parse_handler)]
    pub handler: HandlerKind,

    /// SHIELD-HIT12A executable (tasks of type shieldhit fail without it).
    #[arg(long, env = "SHIELDHIT_PATH", value_name = "PATH")]
    pub shieldhit: Option<PathBuf>,

    /// pymchelper's convertmc (2.9.6 is tested), which turns SHIELD-HIT12A's .bdo and FLUKA's
    /// _fort.NN files into JSON.
    #[arg(
        long,
        env = "CONVERTMC_PATH",
        value_name = "PATH",
        default_value = "convertmc"
    )]
    pub convertmc: PathBuf,

    /// The `topas` executable (run as `topas MAIN.txt`); without it, TOPAS tasks fail saying
    /// so.
    #[arg(long, env = "TOPAS_PATH", value_name = "PATH")]
    pub topas: Option<PathBuf>,

    /// FLUKA's `rfluka` script (run as `rfluka -M 1 DIR/NAME.inp`); without it, FLUKA tasks
    /// fail saying so.
    #[arg(long, env = "FLUKA_PATH", value_name = "PATH")]
    pub fluka: Option<PathBuf>,

    /// Directory under which each task attempt gets a private work directory.
    #[arg(long, env = "WORKER_WORK_ROOT", value_name = "DIR")]
    pub work_root: Option<PathBuf>,

    /// Keep work directories after runs (for debugging).
    #[arg(long, env = "WORKER_KEEP_WORKDIRS")]
    pub keep_workdirs: bool,
}

fn parse_handler(s: &str) -> Result<HandlerKind, String> {
    match s {
        "simulators" => Ok(HandlerKind::Simulators),
        "noop" => Ok(HandlerKind::Noop),
        "panic" => Ok(HandlerKind::Panic),
        _ => match s.strip_prefix("sleep:").map(str::parse::<u64>) {
            Some(Ok(ms)) => Ok(HandlerKind::Sleep(Duration::from_millis(ms))),
            _ => Err("expected simulators, noop, sleep:MILLISECONDS or panic".into()),
        },
    }
}

impl Config {
    /// The database connection: `--database-url`, or the `--db-*` flags and `DB_*`
    /// variables.
    pub fn db_config(&self) -> anyhow::Result<db::DbConfig> {
        Ok(self.db.config()?)
    }

    /// The settings these flags make.
    pub fn settings(&self) -> Settings {
        let mut simulators = worker::simulators::Settings::new(
            self.work_root.clone().unwrap_or_else(default_work_root),
        );
        simulators.shieldhit = self.shieldhit.clone();
        simulators.convertmc = Some(self.convertmc.clone());
        simulators.topas = self.topas.clone();
        simulators.fluka = self.fluka.clone();
        simulators.keep_workdirs = self.keep_workdirs;
        Settings {
            worker_id: self.worker_id.clone().unwrap_or_else(default_worker_id),
            concurrency: self
                .concurrency
                .map_or_else(default_concurrency, |c| c as usize),
            lease: self.lease.0,
            poll: self.poll.0.min(MAX_WAIT),
            grace: self.grace.0.min(MAX_WAIT),
            handler: self.handler.clone(),
            simulators,
        }
    }
}

/// A duration on the command line: written as [`parse_duration`] reads it (`30s`, `500ms`, a
/// bare number of seconds), shown as [`format_duration`] writes it (for the defaults).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dur(pub Duration);

impl std::fmt::Display for Dur {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&format_duration(self.0))
    }
}

/// Any duration.
fn duration(s: &str) -> Result<Dur, String> {
    parse_duration(s).map(Dur)
}

/// A lease length: a duration from [`MIN_LEASE`] to [`MAX_LEASE`].
fn parse_lease(s: &str) -> Result<Dur, String> {
    let d = parse_duration(s)?;
    if (MIN_LEASE..=MAX_LEASE).contains(&d) {
        Ok(Dur(d))
    } else {
        Err(format!(
            "a lease of {} is outside {} to {}",
            format_duration(d),
            format_duration(MIN_LEASE),
            format_duration(MAX_LEASE)
        ))
    }
}
