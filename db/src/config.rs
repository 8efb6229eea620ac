//! Database connection settings: `DATABASE_URL`, or its parts, or a Unix socket directory;
//! [`DbArgs`], the one set of database flags every binary flattens into its command line;
//! [`parse_duration`], the one syntax for durations on command lines; and [`MetricsArgs`], the
//! metrics endpoint's flag.
//!
//! The connection URL is held as a [`SecretString`]: it leaves this module in clear text only
//! through [`DbConfig::url_with_password`], where a connection is made; `Display` and `Debug`
//! redact it.

mod args;
mod duration;
pub mod logging;
mod metrics;
#[cfg(test)]
mod tests;

pub use args::DbArgs;
pub use duration::{format_duration, parse_duration};
pub use metrics::MetricsArgs;

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use secrecy::{ExposeSecret as _, SecretString};
use std::fmt;
use url::Url;

/// The host used when neither `DB_HOST` nor `DB_SOCKET_DIR` is set.
pub const DEFAULT_DB_HOST: &str = "127.0.0.1";
/// The port used when `DB_PORT` is not set.
pub const DEFAULT_DB_PORT: u16 = 5432;
/// The role used when `DB_USER` is not set.
pub const DEFAULT_DB_USER: &str = "postgres";
/// The database name used when `DB_NAME` is not set.
pub const DEFAULT_DB_NAME: &str = "simulations";
/// The default size of a connection pool (see [`crate::PoolOptions`]).
pub const DEFAULT_DB_POOL_SIZE: u32 = 16;

/// What replaces a password in printed URLs.
const REDACTED: &str = "***";

/// Everything but the unreserved characters of RFC 3986: a socket directory as a host, or a
/// database name outside a parsed URL.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Where and how to connect to PostgreSQL.
#[derive(Clone)]
pub struct DbConfig {
    url: SecretString,
    redacted: String,
}

/// An invalid database configuration.
#[derive(Debug, thiserror::Error)]
#[error("invalid database configuration: {0}")]
pub struct ConfigError(pub String);

/// The environment variables [`DbConfig::from_env`] (and [`DbArgs`]) read, in documentation
/// order.
pub const ENV_VARS: &[&str] = &[
    "DATABASE_URL",
    "DB_HOST",
    "DB_PORT",
    "DB_USER",
    "DB_PASSWORD",
    "DB_NAME",
    "DB_SOCKET_DIR",
];

/// The separate parts of a connection; unset parts take libpq-like defaults
/// ([`DEFAULT_DB_HOST`], [`DEFAULT_DB_PORT`], [`DEFAULT_DB_USER`], [`DEFAULT_DB_NAME`]).
#[derive(Clone, Default)]
pub struct DbParts {
    /// Host name or IP address; a value starting with `/` is a socket directory.
    pub host: Option<String>,
    /// TCP port.
    pub port: Option<u16>,
    /// Role name.
    pub user: Option<String>,
    /// Password, if the server asks for one.
    pub password: Option<String>,
    /// Database name.
    pub dbname: Option<String>,
    /// Directory holding the server's Unix socket; wins over `host`.
    pub socket_dir: Option<String>,
}

impl DbConfig {
    /// Uses a full `postgres://` URL as given (libpq forms the `url` crate cannot parse, such
    /// as several hosts, are passed through untouched).
    pub fn from_url(url: impl Into<String>) -> Result<Self, ConfigError> {
        let url = url.into();
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(ConfigError(
                "DATABASE_URL must start with postgres:// or postgresql://".into(),
            ));
        }
        Ok(Self::new(url))
    }

    /// Builds a URL from separate parts with the `url` crate, which percent-encodes each of
    /// them. A socket directory becomes the percent-encoded host (`postgres://u@%2Frun:5432/d`),
    /// the form libpq and tokio-postgres read as a Unix socket.
    pub fn from_parts(parts: &DbParts) -> Result<Self, ConfigError> {
        let socket = parts
            .socket_dir
            .as_deref()
            .or(parts.host.as_deref().filter(|h| h.starts_with('/')));
        let host = match socket {
            Some(dir) => utf8_percent_encode(dir, COMPONENT).to_string(),
            None => {
                let host = parts.host.as_deref().unwrap_or(DEFAULT_DB_HOST);
                if host.contains(':') && !host.starts_with('[') {
                    // An IPv6 address goes in brackets in a URL.
                    format!("[{host}]")
                } else {
                    host.to_string()
                }
            }
        };
        let not_a_host = || ConfigError(format!("DB_HOST {host:?} is not a host name"));
        if host.is_empty() {
            return Err(not_a_host());
        }
        let mut url = Url::parse("postgres://localhost").map_err(|e| ConfigError(e.to_string()))?;
        url.set_host(Some(&host)).map_err(|_| not_a_host())?;
        let unusable = |what: &str| ConfigError(format!("cannot put the {what} in a URL"));
        url.set_port(Some(parts.port.unwrap_or(DEFAULT_DB_PORT)))
            .map_err(|()| unusable("port"))?;
        url.set_username(parts.user.as_deref().unwrap_or(DEFAULT_DB_USER))
            .map_err(|()| unusable("user"))?;
        url.set_password(parts.password.as_deref())
            .map_err(|()| unusable("password"))?;
        url.path_segments_mut()
            .map_err(|()| unusable("database name"))?
            .push(parts.dbname.as_deref().unwrap_or(DEFAULT_DB_NAME));
        Ok(Self::new(url.into()))
    }

    /// Reads `DATABASE_URL`, or else `DB_HOST`, `DB_PORT`, `DB_USER`, `DB_PASSWORD`,
    /// `DB_NAME` and `DB_SOCKET_DIR` (empty values count as unset).
    pub fn from_env() -> Result<Self, ConfigError> {
        DbArgs::default().config()
    }

    /// Like [`DbConfig::from_env`], reading variables through `get` (for tests and flags).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        DbArgs::default().config_with(get)
    }

    fn new(url: String) -> Self {
        let redacted = match Url::parse(&url) {
            Ok(parsed) => redact_parsed(parsed),
            Err(_) => redact(&url),
        };
        Self {
            url: url.into(),
            redacted,
        }
    }

    /// The connection URL including the password: pass it to a driver, never print it.
    pub fn url_with_password(&self) -> &str {
        self.url.expose_secret()
    }

    /// The connection URL with any password replaced by `***`.
    pub fn redacted_url(&self) -> String {
        self.redacted.clone()
    }

    /// The same server and credentials, but another database name.
    pub fn with_dbname(&self, dbname: &str) -> Self {
        let url = self.url_with_password();
        if let Ok(mut parsed) = Url::parse(url) {
            let replaced = parsed
                .path_segments_mut()
                .map(|mut path| {
                    path.clear().push(dbname);
                })
                .is_ok();
            if replaced {
                return Self::new(parsed.into());
            }
        }
        // A URL only libpq reads (several hosts): replace the path after the authority.
        let (before_query, query) = match url.split_once('?') {
            Some((a, q)) => (a, Some(q)),
            None => (url, None),
        };
        let scheme_end = before_query.find("://").map_or(0, |i| i + 3);
        let base = match before_query[scheme_end..].find('/') {
            Some(i) => &before_query[..scheme_end + i],
            None => before_query,
        };
        let mut out = format!("{base}/{}", utf8_percent_encode(dbname, COMPONENT));
        if let Some(q) = query {
            out.push('?');
            out.push_str(q);
        }
        Self::new(out)
    }

    /// The same settings, with `application_name` set to `name` (what `pg_stat_activity`
    /// shows for the connections), unless the URL sets one already.
    pub fn with_application_name(&self, name: &str) -> Self {
        let url = self.url_with_password();
        if url.contains("application_name=") {
            return self.clone();
        }
        if let Ok(mut parsed) = Url::parse(url) {
            parsed
                .query_pairs_mut()
                .append_pair("application_name", name);
            return Self::new(parsed.into());
        }
        let sep = if url.contains('?') { '&' } else { '?' };
        let value = utf8_percent_encode(name, COMPONENT);
        Self::new(format!("{url}{sep}application_name={value}"))
    }

    /// The database name in the URL, decoded (empty when the URL names none).
    pub fn dbname(&self) -> String {
        let url = self.url_with_password();
        let path = match Url::parse(url) {
            Ok(parsed) => parsed.path().trim_start_matches('/').to_string(),
            Err(_) => {
                let before_query = url.split('?').next().unwrap_or("");
                let scheme_end = before_query.find("://").map_or(0, |i| i + 3);
                before_query[scheme_end..]
                    .split_once('/')
                    .map(|(_, db)| db.to_string())
                    .unwrap_or_default()
            }
        };
        percent_decode_str(&path).decode_utf8_lossy().into_owned()
    }
}

impl PartialEq for DbConfig {
    fn eq(&self, other: &Self) -> bool {
        self.url_with_password() == other.url_with_password()
    }
}

impl Eq for DbConfig {}

impl fmt::Display for DbConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted)
    }
}

impl fmt::Debug for DbConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DbConfig")
            .field("url", &self.redacted)
            .finish()
    }
}

/// A parsed URL with its password, and any `password` query parameter, replaced by `***`.
fn redact_parsed(mut url: Url) -> String {
    if url.password().is_some() {
        // Cannot fail: a URL with a password has a host.
        let _ = url.set_password(Some(REDACTED));
    }
    if let Some(query) = url.query() {
        let query = redact_query(query);
        url.set_query(Some(&query));
    }
    url.into()
}

/// A query string with the value of any `password` parameter replaced by `***`.
fn redact_query(query: &str) -> String {
    query
        .split('&')
        .map(|p| match p.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}={REDACTED}"),
            _ => p.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Replaces the password in a `postgres://user:password@host/…` URL, and any `password=`
/// query parameter, with `***`. For free text that may quote a URL (a driver's error
/// message) or a URL the `url` crate cannot parse; a [`DbConfig`] redacts its own URL.
pub fn redact(url: &str) -> String {
    let (main, query) = match url.split_once('?') {
        Some((m, q)) => (m, Some(q)),
        None => (url, None),
    };
    let mut out = String::with_capacity(url.len());
    match main.find("://") {
        Some(i) => {
            let (scheme, rest) = main.split_at(i + 3);
            out.push_str(scheme);
            // The userinfo ends at the last '@' before the first '/' of the path.
            let authority_end = rest.find('/').unwrap_or(rest.len());
            let (authority, path) = rest.split_at(authority_end);
            match authority.rfind('@') {
                Some(at) => {
                    let userinfo = &authority[..at];
                    match userinfo.split_once(':') {
                        Some((user, _)) => {
                            out.push_str(user);
                            out.push(':');
                            out.push_str(REDACTED);
                        }
                        None => out.push_str(userinfo),
                    }
                    out.push_str(&authority[at..]);
                }
                None => out.push_str(authority),
            }
            out.push_str(path);
        }
        None => out.push_str(main),
    }
    if let Some(q) = query {
        out.push('?');
        out.push_str(&redact_query(q));
    }
    out
}
