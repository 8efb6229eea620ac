//! [`DbArgs`]: the database flags of every binary, each with its environment variable.

use super::{ConfigError, DbConfig, DbParts};
use secrecy::{ExposeSecret as _, SecretString};

/// Where the database is: flatten this into a binary's flags (`#[command(flatten)]`).
///
/// `--database-url` wins over the parts; unset parts take the defaults of [`DbParts`]. The URL
/// and the password are [`SecretString`]s: `--help` and `Debug` never show them.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct DbArgs {
    /// Full database URL (postgres://user@host:5432/simulations); wins over the DB_* parts.
    /// Never printed.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, value_name = "URL",
          value_parser = secret, global = true)]
    pub database_url: Option<SecretString>,
    /// Database host (or socket directory when it starts with /) [default: 127.0.0.1].
    #[arg(long, env = "DB_HOST", value_name = "HOST", global = true)]
    pub db_host: Option<String>,
    /// Database port [default: 5432].
    // Text, checked by `DbArgs::config`: a bad value is a configuration error like a bad host.
    #[arg(long, env = "DB_PORT", value_name = "PORT", global = true)]
    pub db_port: Option<String>,
    /// Database role [default: postgres].
    #[arg(long, env = "DB_USER", value_name = "ROLE", global = true)]
    pub db_user: Option<String>,
    /// Database password (prefer the environment variable). Never printed.
    #[arg(long, env = "DB_PASSWORD", hide_env_values = true, value_name = "PASSWORD",
          value_parser = secret, global = true)]
    pub db_password: Option<SecretString>,
    /// Database name [default: simulations].
    #[arg(long, env = "DB_NAME", value_name = "NAME", global = true)]
    pub db_name: Option<String>,
    /// Directory of the server's Unix socket; wins over --db-host.
    #[arg(long, env = "DB_SOCKET_DIR", value_name = "DIR", global = true)]
    pub db_socket_dir: Option<String>,
}

/// A clap value parser that keeps the value secret.
fn secret(s: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::from(s))
}

impl DbArgs {
    /// The connection settings: the flags, and for each flag left unset its environment
    /// variable (which clap has usually read already; this also serves `DbArgs::default()`).
    /// Empty values count as unset.
    pub fn config(&self) -> Result<DbConfig, ConfigError> {
        self.config_with(|k| std::env::var(k).ok())
    }

    /// Like [`DbArgs::config`], reading variables through `get`.
    pub(super) fn config_with(
        &self,
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<DbConfig, ConfigError> {
        let get = |k: &str| get(k).filter(|v| !v.is_empty());
        let text = |flag: &Option<String>, var: &str| {
            flag.clone().filter(|v| !v.is_empty()).or_else(|| get(var))
        };
        let secret = |flag: &Option<SecretString>, var: &str| {
            flag.as_ref()
                .map(|s| s.expose_secret().to_string())
                .filter(|v| !v.is_empty())
                .or_else(|| get(var))
        };
        if let Some(url) = secret(&self.database_url, "DATABASE_URL") {
            return DbConfig::from_url(url);
        }
        let port = match text(&self.db_port, "DB_PORT") {
            Some(p) => Some(
                p.parse::<u16>()
                    .map_err(|_| ConfigError(format!("DB_PORT {p:?} is not a port number")))?,
            ),
            None => None,
        };
        DbConfig::from_parts(&DbParts {
            host: text(&self.db_host, "DB_HOST"),
            port,
            user: text(&self.db_user, "DB_USER"),
            password: secret(&self.db_password, "DB_PASSWORD"),
            dbname: text(&self.db_name, "DB_NAME"),
            socket_dir: text(&self.db_socket_dir, "DB_SOCKET_DIR"),
        })
    }
}
