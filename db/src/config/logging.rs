//! Logging: `--log-format text|json` ([`LogArgs`], env `LOG_FORMAT`), the one flag every
//! binary flattens into its command line, and [`init`], the one subscriber setup.
//!
//! Logs go to stderr (stdout carries the binaries' own output, such as `listening on ADDR`);
//! `RUST_LOG` wins over each binary's default filter; colours only on a terminal. In `json`
//! each line is one object with `timestamp`, `level`, `fields` (with `message`), `target`,
//! and `span`/`spans` for the spans it happened in.

use std::io::IsTerminal as _;

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The logging flags: flatten this into a binary's flags (`#[command(flatten)]`).
#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub struct LogArgs {
    /// Log line format on stderr (RUST_LOG sets the filter).
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text,
          value_name = "FORMAT", global = true)]
    pub log_format: LogFormat,
}

/// Installs the global tracing subscriber: `format` on stderr, filtered by `RUST_LOG` or
/// else by `default_filter` (an `EnvFilter` directive such as `info`). Call once, first
/// thing in `main`; a second call leaves the first subscriber in place.
pub fn init(format: LogFormat, default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder.json().with_ansi(false).try_init(),
    };
}
