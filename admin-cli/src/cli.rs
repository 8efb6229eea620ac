//! Command-line arguments. Parsing only; the work is in `commands`.

use clap::{Args, Parser, Subcommand};
use db::enums::{AuthProvider, JobState, TaskState};
use db::simulations::SimulationRef;
use std::path::PathBuf;
use std::time::Duration;

mod values;
use values::{
    max_array_size, parse_age, parse_cluster_name, parse_finished_state, parse_host,
    parse_job_state, parse_provider, parse_ssh_user, parse_task_state, parse_work_dir,
};
pub use values::{Checked, SimulationRefParser};

/// The default of `backup --compress`: zlib level 1 (see BENCHMARKS.md, "Backup").
pub const DEFAULT_BACKUP_COMPRESSION: u8 = 1;

/// The longest `cleanup --older-than`: 1000 years of 365.25 days (`1000y`). A longer age
/// reaches before any date the database can hold; such an age is bad usage, refused before
/// any query.
pub const MAX_CLEANUP_AGE: Duration = Duration::from_secs(1000 * 31_557_600);

/// Exit codes, shown at the end of every `--help`.
pub const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  not found, rejected input, or a database error
  2  bad usage (unknown command or option, missing argument, a malformed value)

Database: --database-url or DATABASE_URL, or the parts --db-host, --db-port, --db-user,
--db-password, --db-name or DB_HOST, DB_PORT, DB_USER, DB_PASSWORD, DB_NAME (default:
postgres@127.0.0.1:5432/simulations), or --db-socket-dir or DB_SOCKET_DIR for a Unix socket.";

/// The operator's tool for the simulation platform's database.
#[derive(Debug, Parser)]
#[command(name = "admin-cli", version, about, after_help = EXIT_CODES)]
pub struct Cli {
    /// Where the database is.
    #[command(flatten)]
    pub db: db::config::DbArgs,

    /// The log format.
    #[command(flatten)]
    pub log: db::config::logging::LogArgs,

    /// Print JSON instead of an aligned table.
    #[arg(long, global = true)]
    pub json: bool,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Parses the command line; bad usage exits with code 2.
    ///
    /// Every usage line, in an error too, is the one `--help` shows (`admin-cli update-user
    /// [OPTIONS] <NAME>`). Clap's own error usage lists every argument given so far, a
    /// `--database-url` taken from `DATABASE_URL` included, so that after a conflict it read
    /// as if that flag were required.
    pub fn parse_args() -> Self {
        use clap::{CommandFactory as _, FromArgMatches as _};
        let mut cmd = Self::command();
        cmd.build();
        let mut cmd = help_usage_everywhere(cmd);
        let matches = cmd.get_matches_mut();
        Self::from_arg_matches(&matches).unwrap_or_else(|e| e.format(&mut cmd).exit())
    }
}

/// `cmd` and each of its subcommands, built, with its usage fixed to the one its `--help`
/// shows.
fn help_usage_everywhere(mut cmd: clap::Command) -> clap::Command {
    let usage = cmd.render_usage().to_string();
    let usage = usage.strip_prefix("Usage: ").unwrap_or(&usage).to_owned();
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_owned())
        .collect();
    for name in names {
        cmd = cmd.mut_subcommand(name, help_usage_everywhere);
    }
    cmd.override_usage(usage)
}

/// Every subcommand.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List users.
    #[command(after_help = EXIT_CODES)]
    ListUsers {
        /// Also show whether a password is set and how many simulations each user owns.
        #[arg(short, long)]
        verbose: bool,
    },
    /// Add a local user.
    #[command(after_help = EXIT_CODES)]
    AddUser {
        /// Login name: 1 to 255 characters, no control characters (sim-api refuses them at
        /// login), stored exactly as given.
        name: String,
        #[command(flatten)]
        password: PasswordArgs,
        /// Make the user an administrator.
        #[arg(long)]
        admin: bool,
    },
    /// Change a user's password or role. A password change revokes the user's tokens.
    #[command(after_help = EXIT_CODES)]
    UpdateUser {
        /// Login name.
        name: String,
        /// The user's auth provider.
        #[arg(long, default_value = "local", value_parser = parse_provider)]
        auth_provider: AuthProvider,
        #[command(flatten)]
        password: PasswordArgs,
        /// Remove the password: password login is disabled until a new one is set.
        #[arg(long, conflicts_with_all = ["password", "password_stdin"])]
        no_password: bool,
        /// Make the user an administrator.
        #[arg(long, conflicts_with = "no_admin")]
        admin: bool,
        /// Make the user an ordinary user.
        #[arg(long)]
        no_admin: bool,
    },
    /// Rename a user, in one transaction: refused if the new name is taken; the user's tokens
    /// are revoked (simulations, role and password stay with the user).
    #[command(after_help = EXIT_CODES)]
    RenameUser {
        /// The user's current name, exactly as stored.
        old: String,
        /// The new name: 1 to 255 characters, no control characters.
        new: String,
        /// The user's auth provider.
        #[arg(long, default_value = "local", value_parser = parse_provider)]
        auth_provider: AuthProvider,
    },
    /// Remove a user. Refused while the user owns simulations, unless --cascade.
    #[command(after_help = EXIT_CODES)]
    RemoveUser {
        /// Login name.
        name: String,
        /// The user's auth provider: local or keycloak.
        #[arg(default_value = "local", value_parser = parse_provider)]
        auth_provider: AuthProvider,
        /// Also remove every simulation the user owns.
        #[arg(long)]
        cascade: bool,
    },
    /// List tasks, by simulation and index.
    #[command(after_help = EXIT_CODES)]
    ListTasks {
        /// Only this simulation's tasks: its numeric id or its job id (UUID).
        #[arg(long, value_name = "SIMULATION", value_parser = SimulationRefParser)]
        simulation: Option<SimulationRef>,
        #[command(flatten)]
        owner: OwnerArgs,
        /// Only tasks in this state: PENDING, RUNNING, COMPLETED, FAILED or CANCELED.
        #[arg(long, value_parser = parse_task_state)]
        state: Option<TaskState>,
        /// At most this many rows.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(1..))]
        limit: Option<i64>,
    },
    /// Remove one task of one simulation (and nothing in any other simulation).
    #[command(after_help = EXIT_CODES)]
    RemoveTask {
        /// The simulation: its numeric id or its job id (UUID).
        #[arg(value_name = "SIMULATION", value_parser = SimulationRefParser)]
        simulation: SimulationRef,
        /// The task's index within that simulation (0-based).
        task_index: i32,
    },
    /// Requeue a failed task of a simulation that is still open, with a fresh attempt budget.
    #[command(after_help = EXIT_CODES)]
    RetryTask {
        /// The simulation: its numeric id or its job id (UUID).
        #[arg(value_name = "SIMULATION", value_parser = SimulationRefParser)]
        simulation: SimulationRef,
        /// The task's index within that simulation (0-based).
        task_index: i32,
    },
    /// List simulations, newest first.
    #[command(after_help = EXIT_CODES)]
    ListSimulations {
        /// Also show task progress and batch details.
        #[arg(short, long)]
        verbose: bool,
        #[command(flatten)]
        owner: OwnerArgs,
        /// Only simulations in this state: PENDING, RUNNING, MERGING, COMPLETED, FAILED or CANCELED.
        #[arg(long, value_parser = parse_job_state)]
        state: Option<JobState>,
        /// At most this many rows (default 1000).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(1..))]
        limit: Option<i64>,
    },
    /// Remove a simulation and everything under it (tasks, inputs, results, logs).
    #[command(after_help = EXIT_CODES)]
    RemoveSimulation {
        /// The simulation: its numeric id or its job id (UUID).
        #[arg(value_name = "SIMULATION", value_parser = SimulationRefParser)]
        simulation: SimulationRef,
    },
    /// Delete finished simulations (and everything under them) that ended long enough ago,
    /// in short batches. Never a pending, running or merging one. Can be interrupted
    /// (Ctrl-C stops after the batch under way) and run again.
    #[command(after_help = EXIT_CODES)]
    Cleanup {
        /// Only simulations that ended at least this long ago, e.g. 90d, 12h, 1h 30m; at
        /// most 1000y.
        #[arg(long, value_name = "AGE", value_parser = parse_age)]
        older_than: Duration,
        /// Only these finished states, comma-separated: completed, failed, canceled
        /// [default: all three].
        #[arg(long, value_name = "STATES", value_delimiter = ',', value_parser = parse_finished_state)]
        state: Vec<JobState>,
        #[command(flatten)]
        owner: OwnerArgs,
        /// Print what would be deleted, and delete nothing.
        #[arg(long)]
        dry_run: bool,
        /// Simulations deleted per transaction.
        #[arg(long, value_name = "N", default_value_t = 200, value_parser = clap::value_parser!(i64).range(1..=10_000))]
        batch_size: i64,
    },
    /// Dump the database with pg_dump (custom format) into FILE, through FILE.partial.
    #[command(after_help = EXIT_CODES)]
    Backup {
        /// Where to write the dump.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Overwrite FILE if it exists.
        #[arg(long)]
        force: bool,
        /// pg_dump's zlib level, 0 (none) to 9. Pages, inputs and logs are stored compressed
        /// already, so a higher level mostly squeezes their hex form: on 1 GB of pages, level
        /// 1 dumped in about a third of the time of pg_dump's default for a 2.6% larger file
        /// (BENCHMARKS.md).
        #[arg(long, value_name = "LEVEL", default_value_t = DEFAULT_BACKUP_COMPRESSION,
              value_parser = clap::value_parser!(u8).range(0..=9))]
        compress: u8,
    },
    /// Restore a dump into a scratch database, check its migrations, row counts and a sample
    /// of pages, inputs and logs, drop the scratch database and print a verdict.
    #[command(after_help = EXIT_CODES)]
    VerifyBackup {
        /// The dump (pg_dump custom format).
        file: PathBuf,
    },
    /// Add a SLURM cluster for batch runs.
    #[command(after_help = EXIT_CODES)]
    AddCluster(ClusterArgs),
    /// Change a cluster's settings: only the options given change.
    #[command(after_help = EXIT_CODES)]
    UpdateCluster(ClusterUpdateArgs),
    /// List clusters.
    #[command(after_help = EXIT_CODES)]
    ListClusters,
    /// Remove a cluster. Refused while simulations refer to it.
    #[command(after_help = EXIT_CODES)]
    RemoveCluster {
        /// The cluster's name.
        name: String,
    },
    /// Show, apply or revert schema migrations (under an advisory lock).
    #[command(subcommand, after_help = EXIT_CODES)]
    Migrate(MigrateCommand),
    /// Print a Mermaid erDiagram of the live schema: tables, columns, keys and relations.
    #[command(after_help = EXIT_CODES)]
    SchemaDiagram {
        /// Wrap it in the Markdown page kept as docs/schema.md.
        #[arg(long)]
        markdown: bool,
    },
    /// Run SQL and print each statement's rows, or its affected-row count.
    #[command(after_help = EXIT_CODES)]
    Sql {
        /// The SQL to run; several statements run in one transaction.
        #[arg(
            short = 'c',
            long = "command",
            value_name = "SQL",
            required_unless_present = "file",
            conflicts_with = "file",
            allow_hyphen_values = true
        )]
        command: Option<String>,
        /// Read the SQL from this file ('-' for standard input).
        #[arg(short = 'f', long = "file", value_name = "FILE")]
        file: Option<PathBuf>,
    },
    /// Print the database URL this tool uses (password redacted).
    #[command(after_help = EXIT_CODES)]
    DbUrl {
        /// Print the password too.
        #[arg(long)]
        show_password: bool,
    },
}

/// `migrate` subcommands.
#[derive(Debug, Subcommand)]
pub enum MigrateCommand {
    /// List every migration and whether it is applied.
    #[command(after_help = EXIT_CODES)]
    Status,
    /// Apply every pending migration.
    #[command(after_help = EXIT_CODES)]
    Run,
    /// Revert the most recent migrations.
    #[command(after_help = EXIT_CODES)]
    Revert {
        /// How many to revert.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
        steps: u32,
    },
    /// Revert the most recent migration and apply it again.
    #[command(after_help = EXIT_CODES)]
    Redo,
}

/// Where a password comes from.
#[derive(Debug, Args)]
pub struct PasswordArgs {
    /// The password (visible to other local users in the process list: prefer --password-stdin).
    #[arg(long, value_name = "P", conflicts_with = "password_stdin")]
    pub password: Option<String>,
    /// Read the password from the first line of standard input (no NUL byte).
    #[arg(long)]
    pub password_stdin: bool,
}

/// Owner filters.
#[derive(Debug, Args)]
pub struct OwnerArgs {
    /// Only this user's.
    #[arg(long, value_name = "U")]
    pub user: Option<String>,
    /// Only users of this auth provider: local or keycloak.
    #[arg(long, value_name = "P", value_parser = parse_provider)]
    pub auth_provider: Option<AuthProvider>,
}

/// How the batch component reaches a cluster's SLURM commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ClusterKind {
    /// On the batch component's own host.
    Local,
    /// Over SSH to the cluster's login node (--host).
    Ssh,
}

/// `add-cluster` options.
#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// Unique name: 1 to 63 of A-Z a-z 0-9 . _ -, starting with a letter or digit.
    #[arg(value_parser = Checked(parse_cluster_name))]
    pub name: String,
    /// local (SLURM commands on the batch component's host) or ssh (through --host)
    /// [default: ssh with --host, else local].
    #[arg(long, value_enum)]
    pub kind: Option<ClusterKind>,
    /// SSH host of the login node (ssh only): a DNS name or an IP address (IPv6 bare or in
    /// brackets), not starting with '-'.
    #[arg(long, value_parser = Checked(parse_host))]
    pub host: Option<String>,
    /// SSH user (ssh only): A-Z a-z 0-9 . _ -, not starting with '-'.
    #[arg(long, value_parser = Checked(parse_ssh_user))]
    pub ssh_user: Option<String>,
    /// SSH port.
    #[arg(long, default_value_t = 22, value_parser = clap::value_parser!(u16).range(1..))]
    pub ssh_port: u16,
    /// Path of the SSH private key on the batch component's host (ssh only; the key itself is
    /// never read or stored).
    #[arg(long, value_name = "PATH")]
    pub ssh_key: Option<String>,
    /// known_hosts file on the batch component's host that holds the login node's key
    /// (ssh only; default: the user's own).
    #[arg(long, value_name = "PATH")]
    pub known_hosts: Option<String>,
    /// SLURM partition (default: the cluster's default partition).
    #[arg(long)]
    pub partition: Option<String>,
    /// Directory on the cluster under which job directories are made: an absolute path.
    #[arg(long, value_name = "DIR", value_parser = Checked(parse_work_dir))]
    pub work_dir: String,
    /// An sbatch option added to every job, as --name=value from an allow-list, e.g.
    /// --sbatch-option=--time=01:00:00 (repeatable).
    #[arg(long = "sbatch-option", value_name = "OPT", allow_hyphen_values = true)]
    pub sbatch_options: Vec<String>,
    /// Most elements of one array job: a batch submission with more tasks is refused.
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = max_array_size())]
    pub max_array_size: i32,
    /// The worker binary on the cluster's nodes (a path, or a name found on their PATH).
    #[arg(long, value_name = "PATH", default_value = "worker")]
    pub worker_path: String,
    /// Keep each simulation's job directory on the cluster after it is canceled.
    #[arg(long)]
    pub keep_job_dirs: bool,
}

/// `update-cluster` options: only what is given changes.
#[derive(Debug, Args)]
pub struct ClusterUpdateArgs {
    /// The cluster's name.
    pub name: String,
    /// SSH host of the login node (makes a local cluster an ssh one): a DNS name or an IP
    /// address (IPv6 bare or in brackets), not starting with '-'.
    #[arg(long, value_parser = Checked(parse_host))]
    pub host: Option<String>,
    /// SSH user (ssh clusters only): A-Z a-z 0-9 . _ -, not starting with '-'.
    #[arg(long, value_parser = Checked(parse_ssh_user))]
    pub ssh_user: Option<String>,
    /// SSH port.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub ssh_port: Option<u16>,
    /// Path of the SSH private key on the batch component's host (ssh clusters only).
    #[arg(long, value_name = "PATH")]
    pub ssh_key: Option<String>,
    /// known_hosts file on the batch component's host (ssh clusters only).
    #[arg(long, value_name = "PATH")]
    pub known_hosts: Option<String>,
    /// SLURM partition.
    #[arg(long, conflicts_with = "no_partition")]
    pub partition: Option<String>,
    /// Use the cluster's default partition.
    #[arg(long)]
    pub no_partition: bool,
    /// Directory on the cluster under which job directories are made: an absolute path.
    #[arg(long, value_name = "DIR", value_parser = Checked(parse_work_dir))]
    pub work_dir: Option<String>,
    /// The new sbatch options added to every job, replacing the old ones (repeatable).
    #[arg(
        long = "sbatch-option",
        value_name = "OPT",
        allow_hyphen_values = true,
        conflicts_with = "clear_sbatch_options"
    )]
    pub sbatch_options: Vec<String>,
    /// Remove every sbatch option added to jobs.
    #[arg(long)]
    pub clear_sbatch_options: bool,
    /// Most elements of one array job.
    #[arg(long, value_name = "N", value_parser = max_array_size())]
    pub max_array_size: Option<i32>,
    /// The worker binary on the cluster's nodes.
    #[arg(long, value_name = "PATH")]
    pub worker_path: Option<String>,
    /// Keep job directories after a simulation is canceled: true or false.
    #[arg(long, value_name = "BOOL", value_parser = clap::value_parser!(bool))]
    pub keep_job_dirs: Option<bool>,
}
