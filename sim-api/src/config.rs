//! Command-line flags and environment variables of `sim-api`.

use std::net::SocketAddr;
use std::time::Duration;

/// The default of `--max-primaries`: 10^12 primaries per simulation, in all (a 64-task
/// simulation at this limit runs about 1.6·10^10 primaries per task).
pub const DEFAULT_MAX_PRIMARIES: i64 = 1_000_000_000_000;

/// `sim-api` settings; every flag can also come from the named environment variable.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "sim-api", version, about = "The gRPC simulation API server.")]
pub struct Config {
    /// Address to listen on; port 0 picks a free port (the bound address is printed as
    /// `listening on ADDR`).
    #[arg(long, env = "SIM_API_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,

    /// Where the database is.
    #[command(flatten)]
    pub db: db::config::DbArgs,
    /// Most database connections.
    #[arg(long, env = "SIM_API_DB_POOL_SIZE", default_value_t = db::config::DEFAULT_DB_POOL_SIZE)]
    pub db_pool_size: u32,

    /// Most tasks one simulation may have.
    #[arg(long, env = "SIM_API_MAX_NTASKS", default_value_t = 64)]
    pub max_ntasks: i32,
    /// Most primaries one simulation may have in all (1 to 9223372036854775807); a larger
    /// `primaries` is refused with INVALID_ARGUMENT naming this limit.
    #[arg(long, env = "SIM_API_MAX_PRIMARIES", default_value_t = DEFAULT_MAX_PRIMARIES,
          value_parser = clap::value_parser!(i64).range(1..))]
    pub max_primaries: i64,
    /// Most bytes of input (editor JSON, or all files together) per simulation.
    #[arg(long, env = "SIM_API_MAX_INPUT_BYTES", default_value_t = 10 << 20)]
    pub max_input_bytes: usize,
    /// Most input files per simulation.
    #[arg(long, env = "SIM_API_MAX_INPUT_FILES", default_value_t = 64)]
    pub max_input_files: usize,
    /// Most bytes of one decoded request message.
    #[arg(long, env = "SIM_API_MAX_REQUEST_BYTES", default_value_t = 16 << 20)]
    pub max_request_bytes: usize,
    /// Access-token lifetime in seconds.
    #[arg(long, env = "SIM_API_ACCESS_TOKEN_TTL_S", default_value_t = 15 * 60)]
    pub access_token_ttl_s: u64,
    /// Refresh-token lifetime in seconds.
    #[arg(long, env = "SIM_API_REFRESH_TOKEN_TTL_S", default_value_t = 7 * 24 * 3600)]
    pub refresh_token_ttl_s: u64,
    /// How long a checked access token is remembered in this process, in milliseconds (0
    /// turns the cache off). Revocations reach every server at once through a database
    /// notification, whatever this is; it bounds staleness only if notifications are lost.
    #[arg(long, env = "SIM_API_TOKEN_CACHE_MS", default_value_t = 5000)]
    pub token_cache_ms: u64,
    /// How long a `Get` answer may be reused in this process, in milliseconds (0 turns the
    /// cache off). A simulation's entry is dropped as soon as a change to it is announced
    /// on the database's `sim_events` channel; this bounds changes nothing announces.
    #[arg(long, env = "SIM_API_STATUS_CACHE_MS", default_value_t = 1000)]
    pub status_cache_ms: u64,

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
    /// OIDC: clock-skew leeway in seconds for `exp` and `nbf`.
    #[arg(long, env = "SIM_API_OIDC_LEEWAY_S", default_value_t = 30)]
    pub oidc_leeway_s: u64,
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
            leeway: Duration::from_secs(self.oidc_leeway_s),
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
            access_token_ttl: Duration::from_secs(self.access_token_ttl_s),
            refresh_token_ttl: Duration::from_secs(self.refresh_token_ttl_s),
            token_cache_ttl: Duration::from_millis(self.token_cache_ms),
            status_cache_ttl: Duration::from_millis(self.status_cache_ms),
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
            max_ntasks: 64,
            max_primaries: DEFAULT_MAX_PRIMARIES,
            max_input_bytes: 10 << 20,
            max_input_files: 64,
            max_request_bytes: 16 << 20,
            access_token_ttl: Duration::from_secs(15 * 60),
            refresh_token_ttl: Duration::from_secs(7 * 24 * 3600),
            token_cache_ttl: Duration::from_secs(5),
            status_cache_ttl: Duration::from_secs(1),
        }
    }
}
