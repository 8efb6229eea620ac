//! Command-line flags and environment variables of `sim-api`.

use db::config::{format_duration, parse_duration};
use std::net::SocketAddr;
use std::time::Duration;

/// The default of `--listen`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:50051";
/// The default of `--max-ntasks`.
pub const DEFAULT_MAX_NTASKS: i32 = 64;
/// The default of `--max-primaries`: 10^12 primaries per simulation, in all (a 64-task
/// simulation at this limit runs about 1.6·10^10 primaries per task).
pub const DEFAULT_MAX_PRIMARIES: i64 = 1_000_000_000_000;
/// The default of `--max-input-bytes`: 10 MiB.
pub const DEFAULT_MAX_INPUT_BYTES: usize = 10 << 20;
/// The default of `--max-input-files`.
pub const DEFAULT_MAX_INPUT_FILES: usize = 64;
/// The default of `--max-request-bytes`: 16 MiB.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 16 << 20;
/// The smallest `--max-request-bytes`: a Login or Refresh request must fit, whatever the
/// limit.
pub const MIN_REQUEST_BYTES: usize = 4096;
/// The default of `--access-token-ttl`: 15 minutes.
pub const DEFAULT_ACCESS_TOKEN_TTL: Duration = Duration::from_secs(15 * 60);
/// The default of `--refresh-token-ttl`: 7 days.
pub const DEFAULT_REFRESH_TOKEN_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// The default of `--token-cache`: 5 seconds.
pub const DEFAULT_TOKEN_CACHE_TTL: Duration = Duration::from_secs(5);
/// The default of `--status-cache`: 1 second.
pub const DEFAULT_STATUS_CACHE_TTL: Duration = Duration::from_secs(1);

/// `sim-api` settings; every flag can also come from the named environment variable.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "sim-api", version, about = "The gRPC simulation API server.")]
pub struct Config {
    /// `probe`: check a running server's health instead of serving.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Address to listen on; port 0 picks a free port (the bound address is printed as
    /// `listening on ADDR`).
    #[arg(long, env = "SIM_API_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,

    /// Where the database is.
    #[command(flatten)]
    pub db: db::config::DbArgs,
    /// The log format.
    #[command(flatten)]
    pub log: db::config::logging::LogArgs,
    /// The metrics endpoint.
    #[command(flatten)]
    pub metrics: db::config::MetricsArgs,
    /// Most database connections (1 to 1000).
    #[arg(long, env = "SIM_API_DB_POOL_SIZE", default_value_t = db::config::DEFAULT_DB_POOL_SIZE,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub db_pool_size: u32,

    /// Most tasks one simulation may have (at least 1).
    #[arg(long, env = "SIM_API_MAX_NTASKS", default_value_t = DEFAULT_MAX_NTASKS,
          value_parser = clap::value_parser!(i32).range(1..))]
    pub max_ntasks: i32,
    /// Most primaries one simulation may have in all (1 to 9223372036854775807); a larger
    /// `primaries` is refused with INVALID_ARGUMENT naming this limit.
    #[arg(long, env = "SIM_API_MAX_PRIMARIES", default_value_t = DEFAULT_MAX_PRIMARIES,
          value_parser = clap::value_parser!(i64).range(1..))]
    pub max_primaries: i64,
    /// Most bytes of input (editor JSON, or all files together) per simulation (at least 1).
    #[arg(long, env = "SIM_API_MAX_INPUT_BYTES", default_value_t = DEFAULT_MAX_INPUT_BYTES,
          value_parser = at_least(1))]
    pub max_input_bytes: usize,
    /// Most input files per simulation (at least 1).
    #[arg(long, env = "SIM_API_MAX_INPUT_FILES", default_value_t = DEFAULT_MAX_INPUT_FILES,
          value_parser = at_least(1))]
    pub max_input_files: usize,
    /// Most bytes of one decoded request message.
    #[arg(long, env = "SIM_API_MAX_REQUEST_BYTES", default_value_t = DEFAULT_MAX_REQUEST_BYTES,
          value_parser = at_least(MIN_REQUEST_BYTES as u64))]
    pub max_request_bytes: usize,
    /// Access-token lifetime (a duration: 15m, 900s, 1h 30m; a bare number is seconds; at
    /// least 1s).
    #[arg(long, env = "SIM_API_ACCESS_TOKEN_TTL", value_name = "DURATION",
          default_value = format_duration(DEFAULT_ACCESS_TOKEN_TTL), value_parser = lifetime)]
    pub access_token_ttl: Duration,
    /// Refresh-token lifetime (a duration; at least 1s).
    #[arg(long, env = "SIM_API_REFRESH_TOKEN_TTL", value_name = "DURATION",
          default_value = format_duration(DEFAULT_REFRESH_TOKEN_TTL), value_parser = lifetime)]
    pub refresh_token_ttl: Duration,
    /// How long a checked access token is remembered in this process (a duration; 0 turns
    /// the cache off). Revocations reach every server at once through a database
    /// notification, whatever this is; it bounds staleness only if notifications are lost.
    #[arg(long, env = "SIM_API_TOKEN_CACHE", value_name = "DURATION",
          default_value = format_duration(DEFAULT_TOKEN_CACHE_TTL), value_parser = parse_duration)]
    pub token_cache: Duration,
    /// How long a `Get` answer may be reused in this process (a duration; 0 turns the cache
    /// off). A simulation's entry is dropped as soon as a change to it is announced
    /// on the database's `sim_events` channel; this bounds changes nothing announces.
    #[arg(long, env = "SIM_API_STATUS_CACHE", value_name = "DURATION",
          default_value = format_duration(DEFAULT_STATUS_CACHE_TTL), value_parser = parse_duration)]
    pub status_cache: Duration,

    /// Another origin whose browser pages may call the API over grpc-web (CORS), e.g.
    /// `https://ui.example.org`, or `*` for any; repeatable or comma-separated. Default: none,
    /// so that only pages of the API's own origin can call it.
    #[arg(long = "cors-allow-origin", env = "SIM_API_CORS_ALLOW_ORIGINS", value_name = "ORIGIN",
          value_delimiter = ',', value_parser = crate::cors::parse_origin)]
    pub cors_allow_origins: Vec<String>,

    /// OIDC: the expected `iss` of ID tokens (e.g. `https://kc.example/realms/sim`). OIDC
    /// login is enabled when this and --oidc-audience are set. Without --oidc-jwks, the
    /// signing keys come from the `jwks_uri` of `ISSUER/.well-known/openid-configuration`.
    #[arg(long, env = "SIM_API_OIDC_ISSUER")]
    pub oidc_issuer: Option<String>,
    /// OIDC: the expected `aud` (the client id).
    #[arg(long, env = "SIM_API_OIDC_AUDIENCE")]
    pub oidc_audience: Option<String>,
    /// OIDC: the signing keys, as a JWKS file path or an http:// or https:// URL; when
    /// unset, OIDC discovery from the issuer finds them.
    #[arg(long, env = "SIM_API_OIDC_JWKS")]
    pub oidc_jwks: Option<String>,
    /// OIDC: a PEM file of CA certificates trusted for https (discovery and JWKS) besides the
    /// built-in Mozilla roots, e.g. a private CA of the identity provider.
    #[arg(long, env = "SIM_API_OIDC_CA_FILE")]
    pub oidc_ca_file: Option<std::path::PathBuf>,
    /// OIDC: clock-skew leeway for `exp` and `nbf` (a duration; whole seconds count).
    #[arg(long, env = "SIM_API_OIDC_LEEWAY", value_name = "DURATION",
          default_value = format_duration(crate::oidc::DEFAULT_LEEWAY), value_parser = parse_duration)]
    pub oidc_leeway: Duration,
}

/// What `sim-api` does instead of serving.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Ask a running sim-api for its gRPC health (grpc.health.v1, the whole server): exit
    /// code 0 when it is SERVING, 1 otherwise. For container health checks; no database.
    Probe(ProbeArgs),
}

/// `sim-api probe` settings.
#[derive(Debug, Clone, clap::Args)]
pub struct ProbeArgs {
    /// The server (http://host:port).
    #[arg(value_name = "URL", default_value = "http://127.0.0.1:50051")]
    pub url: String,
    /// How long to wait for the answer (a duration).
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub timeout: Duration,
}

impl Config {
    /// The database settings: --database-url, or else the DB_* parts.
    pub fn db_config(&self) -> Result<db::DbConfig, db::config::ConfigError> {
        self.db.config()
    }

    /// The OIDC settings: `None` when none of --oidc-issuer, --oidc-audience, --oidc-jwks
    /// and --oidc-ca-file is set; an error when the issuer or the audience is missing, or
    /// when the JWKS location is unusable. Without --oidc-jwks the keys are discovered.
    pub fn oidc(&self) -> Result<Option<crate::oidc::OidcSettings>, crate::oidc::OidcError> {
        let set = |v: &Option<String>| v.clone().filter(|s| !s.trim().is_empty());
        let jwks = set(&self.oidc_jwks);
        let parts = (set(&self.oidc_issuer), set(&self.oidc_audience));
        let (issuer, audience) = match parts {
            (None, None) if jwks.is_none() && self.oidc_ca_file.is_none() => return Ok(None),
            (Some(i), Some(a)) => (i, a),
            _ => {
                return Err(crate::oidc::OidcError::Config(
                    "--oidc-issuer and --oidc-audience must be set together (with --oidc-jwks \
                     or --oidc-ca-file only beside them)"
                        .into(),
                ))
            }
        };
        let source = match jwks {
            Some(j) => j.trim().parse()?,
            None => crate::oidc::JwksSource::Discovery,
        };
        Ok(Some(crate::oidc::OidcSettings {
            leeway: self.oidc_leeway,
            ca_file: self.oidc_ca_file.clone(),
            ..crate::oidc::OidcSettings::new(issuer, audience, source)
        }))
    }

    /// The limits the services enforce.
    pub fn limits(&self) -> Limits {
        Limits {
            max_ntasks: self.max_ntasks,
            max_primaries: self.max_primaries,
            max_input_bytes: self.max_input_bytes,
            max_input_files: self.max_input_files,
            max_request_bytes: self.max_request_bytes,
            access_token_ttl: self.access_token_ttl,
            refresh_token_ttl: self.refresh_token_ttl,
            token_cache_ttl: self.token_cache,
            status_cache_ttl: self.status_cache,
        }
    }
}

/// Limits and token lifetimes.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Most tasks per simulation.
    pub max_ntasks: i32,
    /// Most primaries per simulation, in all.
    pub max_primaries: i64,
    /// Most input bytes per simulation.
    pub max_input_bytes: usize,
    /// Most input files per simulation.
    pub max_input_files: usize,
    /// Most bytes of one decoded request.
    pub max_request_bytes: usize,
    /// Access-token lifetime.
    pub access_token_ttl: Duration,
    /// Refresh-token lifetime.
    pub refresh_token_ttl: Duration,
    /// How long a checked access token is cached in memory (zero: never); see
    /// [`crate::token_cache`].
    pub token_cache_ttl: Duration,
    /// How long a `Get` answer may be reused (zero: never); see [`crate::status_cache`].
    pub status_cache_ttl: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_ntasks: DEFAULT_MAX_NTASKS,
            max_primaries: DEFAULT_MAX_PRIMARIES,
            max_input_bytes: DEFAULT_MAX_INPUT_BYTES,
            max_input_files: DEFAULT_MAX_INPUT_FILES,
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            access_token_ttl: DEFAULT_ACCESS_TOKEN_TTL,
            refresh_token_ttl: DEFAULT_REFRESH_TOKEN_TTL,
            token_cache_ttl: DEFAULT_TOKEN_CACHE_TTL,
            status_cache_ttl: DEFAULT_STATUS_CACHE_TTL,
        }
    }
}

/// A clap parser of a count (`usize`) of at least `min`.
fn at_least(min: u64) -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::<usize>::new().range(min..)
}

/// A token lifetime: a duration of at least one second (a shorter one would expire before
/// a client could use it).
fn lifetime(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < Duration::from_secs(1) {
        return Err(format!(
            "a token lifetime of {} is shorter than 1s",
            format_duration(d)
        ));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    fn parse(args: &[&str]) -> Result<Config, clap::Error> {
        Config::try_parse_from(std::iter::once("sim-api").chain(args.iter().copied()))
    }

    #[test]
    fn the_flag_defaults_are_the_limits_defaults() {
        let limits = parse(&[]).unwrap().limits();
        let default = Limits::default();
        assert_eq!(format!("{limits:?}"), format!("{default:?}"));
        assert_eq!(parse(&[]).unwrap().oidc_leeway, crate::oidc::DEFAULT_LEEWAY);
    }

    #[test]
    fn durations_carry_their_unit() {
        let c = parse(&[
            "--access-token-ttl",
            "1h 30m",
            "--refresh-token-ttl",
            "2d",
            "--token-cache",
            "0",
            "--status-cache",
            "250ms",
            "--oidc-leeway",
            "45",
        ])
        .unwrap();
        let limits = c.limits();
        assert_eq!(limits.access_token_ttl, Duration::from_secs(90 * 60));
        assert_eq!(limits.refresh_token_ttl, Duration::from_secs(2 * 24 * 3600));
        assert_eq!(limits.token_cache_ttl, Duration::ZERO);
        assert_eq!(limits.status_cache_ttl, Duration::from_millis(250));
        assert_eq!(c.oidc_leeway, Duration::from_secs(45));
        let e = parse(&["--token-cache", "5 parsecs"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("--token-cache") && e.contains("e.g. 30s"), "{e}");
    }

    /// Settings that would make the server unusable are refused at start-up (a usage error,
    /// exit code 2), each message naming its flag; the limits themselves are accepted.
    #[test]
    fn unusable_limits_are_usage_errors() {
        for (flag, value) in [
            ("--db-pool-size", "0"),
            ("--max-ntasks", "0"),
            ("--max-input-bytes", "0"),
            ("--max-input-files", "0"),
            ("--max-request-bytes", "10"),
            ("--access-token-ttl", "0"),
            ("--refresh-token-ttl", "500ms"),
        ] {
            let e = parse(&[flag, value]).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{flag} {value}");
            assert!(e.to_string().contains(flag), "{flag}: {e}");
        }
        let min = MIN_REQUEST_BYTES.to_string();
        for ok in [
            ["--db-pool-size", "1"],
            ["--max-ntasks", "1"],
            ["--max-request-bytes", min.as_str()],
            ["--access-token-ttl", "1s"],
        ] {
            parse(&ok).unwrap();
        }
    }
}
