//! Worker settings: every one a flag and an environment variable.

use clap::{Args, Parser, Subcommand};
use db::config::{format_duration, parse_duration, DbArgs};
use std::path::PathBuf;
use std::time::Duration;
use worker::handlers::HandlerKind;
use worker::settings::{
    default_concurrency, default_work_root, default_worker_id, Settings, DEFAULT_GRACE,
    DEFAULT_LEASE, DEFAULT_POLL, MAX_LEASE, MAX_WAIT, MIN_LEASE,
};

/// The task worker: claims tasks from PostgreSQL, runs simulators, stores results.
///
/// Without a subcommand it runs the queue's tasks; `worker batch` drives batch simulations
/// on SLURM clusters, and `worker element` runs one SLURM array element on a node.
#[derive(Debug, Clone, Parser)]
#[command(name = "worker", version, about, long_about = None)]
pub struct Config {
    /// What to run (default: the queue's tasks).
    #[command(subcommand)]
    pub command: Option<Command>,

    /// The database connection.
    #[command(flatten)]
    pub db: DbArgs,

    /// The log format (every mode).
    #[command(flatten)]
    pub log: db::config::logging::LogArgs,

    /// The metrics endpoint (queue mode).
    #[command(flatten)]
    pub metrics: db::config::MetricsArgs,

    /// Tasks run at once (default: the number of cores).
    #[arg(long, env = "WORKER_CONCURRENCY", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub concurrency: Option<u32>,

    /// Name of this worker in task leases (default: host name and process id).
    #[arg(long, env = "WORKER_ID")]
    pub worker_id: Option<String>,

    /// Lease length (2s to 1h); a heartbeat renews it every third of that.
    #[arg(long, env = "WORKER_LEASE", value_name = "DURATION",
          default_value = format_duration(DEFAULT_LEASE), value_parser = parse_lease)]
    pub lease: Duration,

    /// Time between queue polls when no notification arrives.
    #[arg(long, env = "WORKER_POLL", value_name = "DURATION",
          default_value = format_duration(DEFAULT_POLL), value_parser = parse_duration)]
    pub poll: Duration,

    /// Time running tasks get to finish after SIGTERM before they are handed back.
    #[arg(long, env = "WORKER_GRACE", value_name = "DURATION",
          default_value = format_duration(DEFAULT_GRACE), value_parser = parse_duration)]
    pub grace: Duration,

    /// What runs a task: `simulators` (the real ones), or `noop` / `sleep:MS` for benchmarks
    /// and tests of the queue itself, or `panic` for tests of the worker's panic guard.
    #[arg(long, env = "WORKER_HANDLER", default_value = "simulators", value_parser = parse_handler)]
    pub handler: HandlerKind,

    /// The simulator programs.
    #[command(flatten)]
    pub simulators: SimulatorArgs,

    /// Directory under which each task attempt gets a private work directory [default:
    /// sim-worker under the system's temporary directory, $TMPDIR or /tmp].
    #[arg(long, env = "WORKER_WORK_ROOT", value_name = "DIR")]
    pub work_root: Option<PathBuf>,

    /// Keep work directories after runs (for debugging).
    #[arg(long, env = "WORKER_KEEP_WORKDIRS")]
    pub keep_workdirs: bool,
}

/// Where the external simulator programs are (on this host, or on a cluster node for
/// `worker element`).
#[derive(Debug, Clone, Args)]
pub struct SimulatorArgs {
    /// SHIELD-HIT12A executable; without it, this worker claims no SHIELD-HIT12A task (they
    /// wait for a worker that has it).
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

    /// The `topas` executable (run as `topas MAIN.txt`); without it, this worker claims no
    /// TOPAS task (they wait for a worker that has it).
    #[arg(long, env = "TOPAS_PATH", value_name = "PATH")]
    pub topas: Option<PathBuf>,

    /// FLUKA's `rfluka` script (run as `rfluka -M 1 DIR/NAME.inp`); without it, this worker
    /// claims no FLUKA task (they wait for a worker that has it).
    #[arg(long, env = "FLUKA_PATH", value_name = "PATH")]
    pub fluka: Option<PathBuf>,
}

impl SimulatorArgs {
    /// The simulator settings these flags make, with work directories under `work_root`.
    pub fn settings(
        &self,
        work_root: PathBuf,
        keep_workdirs: bool,
    ) -> worker::simulators::Settings {
        let mut s = worker::simulators::Settings::new(work_root);
        s.shieldhit = self.shieldhit.clone();
        s.convertmc = Some(self.convertmc.clone());
        s.topas = self.topas.clone();
        s.fluka = self.fluka.clone();
        s.keep_workdirs = keep_workdirs;
        s
    }
}

/// The worker's modes besides running the queue.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Drive batch simulations on SLURM clusters (admin-cli add-cluster): stage each one's
    /// job directory, submit one array job (one element per task) and a collect job, poll
    /// every cluster with one squeue per interval, merge finished elements, cancel and clean
    /// up.
    Batch(BatchArgs),
    /// Run one array element of a batch simulation (element.sh runs this on a cluster node;
    /// no database): reads the job directory, runs the task, writes element-INDEX/result.
    Element(ElementArgs),
    /// Check a worker's health endpoint (GET URL, normally the /healthz of its
    /// --metrics-listen): exit code 0 when it answers 2xx, 1 otherwise. For container
    /// health checks; no database.
    Probe(ProbeArgs),
}

/// `worker probe` settings.
#[derive(Debug, Clone, Args)]
pub struct ProbeArgs {
    /// The URL to GET (plain http://).
    #[arg(value_name = "URL", default_value = "http://127.0.0.1:9464/healthz")]
    pub url: String,
    /// How long to wait for the answer.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub timeout: Duration,
}

/// `worker batch` settings.
#[derive(Debug, Clone, Args)]
pub struct BatchArgs {
    /// The database connection.
    #[command(flatten)]
    pub db: DbArgs,

    /// The metrics endpoint (the pool, the queue and health; no batch figures of its own).
    #[command(flatten)]
    pub metrics: db::config::MetricsArgs,

    /// A cluster to drive, by name (repeatable, or comma-separated); every cluster when left
    /// out.
    #[arg(
        long = "cluster",
        env = "BATCH_CLUSTERS",
        value_name = "NAME",
        value_delimiter = ','
    )]
    pub clusters: Vec<String>,

    /// Time between polls of each cluster (one squeue call covers all its jobs).
    #[arg(long, env = "BATCH_POLL", value_name = "DURATION",
          default_value = "10s", value_parser = parse_duration)]
    pub poll: Duration,

    /// How long this component's hold on a simulation lasts unless renewed (by every poll);
    /// another component takes over a crashed one's simulations after it. Default: three
    /// polls, at least 30s.
    #[arg(long, env = "BATCH_LEASE", value_name = "DURATION", value_parser = parse_lease)]
    pub lease: Option<Duration>,

    /// Name of this component in leases (default: batch-HOST-PID).
    #[arg(long, env = "BATCH_ID")]
    pub batch_id: Option<String>,

    /// Directory for the SSH control sockets, one per SSH cluster (default: a private
    /// directory under the system's temporary directory).
    #[arg(long, env = "BATCH_CONTROL_DIR", value_name = "DIR")]
    pub control_dir: Option<PathBuf>,
}

impl BatchArgs {
    /// The batch component's settings.
    pub fn settings(&self) -> worker::batch::BatchSettings {
        let owner = self
            .batch_id
            .clone()
            .unwrap_or_else(|| format!("batch-{}", default_worker_id()));
        worker::batch::BatchSettings {
            control_dir: self.control_dir.clone().unwrap_or_else(|| {
                std::env::temp_dir().join(format!("sim-batch-{}", std::process::id()))
            }),
            owner,
            poll: self.poll,
            lease: self.lease.map_or_else(
                || worker::batch::BatchSettings::lease_for(self.poll),
                |l| l.max(self.poll * 2),
            ),
            clusters: self.clusters.clone(),
        }
    }
}

/// `worker element` settings.
#[derive(Debug, Clone, Args)]
pub struct ElementArgs {
    /// The simulation's job directory, as the batch component staged it.
    #[arg(long, value_name = "DIR")]
    pub job_dir: PathBuf,

    /// The element's index (SLURM_ARRAY_TASK_ID), which is its task's index.
    #[arg(long, value_parser = clap::value_parser!(i32).range(0..))]
    pub index: i32,

    /// The simulator programs on this node.
    #[command(flatten)]
    pub simulators: SimulatorArgs,
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
        let simulators = self.simulators.settings(
            self.work_root.clone().unwrap_or_else(default_work_root),
            self.keep_workdirs,
        );
        Settings {
            worker_id: self.worker_id.clone().unwrap_or_else(default_worker_id),
            concurrency: self
                .concurrency
                .map_or_else(default_concurrency, |c| c as usize),
            lease: self.lease,
            poll: self.poll.min(MAX_WAIT),
            grace: self.grace.min(MAX_WAIT),
            handler: self.handler.clone(),
            simulators,
        }
    }
}

/// A lease length: a duration from [`MIN_LEASE`] to [`MAX_LEASE`].
fn parse_lease(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if (MIN_LEASE..=MAX_LEASE).contains(&d) {
        Ok(d)
    } else {
        Err(format!(
            "a lease of {} is outside {} to {}",
            format_duration(d),
            format_duration(MIN_LEASE),
            format_duration(MAX_LEASE)
        ))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use clap::CommandFactory as _;

    /// clap's own checks of the whole command line (unique argument names, valid defaults),
    /// every subcommand included; they run on first use, so a clash would fail at start-up.
    #[test]
    fn the_command_line_is_well_formed() {
        Config::command().debug_assert();
    }

    #[test]
    fn metrics_are_off_unless_asked() {
        let c = Config::try_parse_from(["worker"]).unwrap();
        assert_eq!(c.metrics.addr(), None);
        let c = Config::try_parse_from(["worker", "--metrics-listen", "127.0.0.1:0"]).unwrap();
        assert!(c.metrics.addr().is_some());
        let c = Config::try_parse_from(["worker", "batch", "--metrics-listen", "off"]).unwrap();
        match c.command {
            Some(Command::Batch(b)) => assert_eq!(b.metrics.addr(), None),
            other => panic!("{other:?}"),
        }
    }
}
