//! Worker settings: every one a flag and an environment variable.

use clap::Parser;
use std::path::PathBuf;
use std::time::Duration;
use worker::handlers::HandlerKind;
use worker::settings::{
    default_concurrency, default_work_root, default_worker_id, Settings, MAX_WAIT,
};

/// The task worker: claims tasks from PostgreSQL, runs simulators, stores results.
#[derive(Debug, Clone, Parser)]
#[command(name = "worker", version, about)]
pub struct Config {
    /// PostgreSQL URL (or set DB_HOST, DB_PORT, DB_USER, DB_PASSWORD, DB_NAME, DB_SOCKET_DIR).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, value_name = "URL")]
    pub database_url: Option<String>,

    /// Tasks run at once (default: the number of cores).
    #[arg(long, env = "WORKER_CONCURRENCY", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub concurrency: Option<u32>,

    /// Name of this worker in task leases (default: host name and process id).
    #[arg(long, env = "WORKER_ID")]
    pub worker_id: Option<String>,

    /// Lease length in seconds; a heartbeat renews it every third of that.
    #[arg(long, env = "WORKER_LEASE_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(2..=3600))]
    pub lease_secs: u64,

    /// Seconds between queue polls when no notification arrives.
    #[arg(long, env = "WORKER_POLL_SECS", default_value_t = 2.0)]
    pub poll_secs: f64,

    /// Seconds that running tasks get to finish after SIGTERM before they are handed back.
    #[arg(long, env = "WORKER_GRACE_SECS", default_value_t = 10.0)]
    pub grace_secs: f64,

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
    /// The database connection: `--database-url`, or the `DB_*` variables.
    pub fn db_config(&self) -> anyhow::Result<db::DbConfig> {
        Ok(match &self.database_url {
            Some(url) if !url.is_empty() => db::DbConfig::from_url(url.clone())?,
            _ => db::DbConfig::from_env()?,
        })
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
            lease: Duration::from_secs(self.lease_secs),
            poll: secs(self.poll_secs),
            grace: secs(self.grace_secs),
            handler: self.handler.clone(),
            simulators,
        }
    }
}

/// Seconds as a duration, refusing negative or absurd values.
fn secs(v: f64) -> Duration {
    Duration::from_secs_f64(v.clamp(0.0, MAX_WAIT.as_secs_f64()))
}
