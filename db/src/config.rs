//! Database connection settings: `DATABASE_URL`, or its parts, or a Unix socket directory.
//!
//! The password never leaves this module in clear text except through
//! [`DbConfig::url_with_password`]; `Display` and `Debug` redact it.

use std::fmt;

/// Where and how to connect to PostgreSQL.
#[derive(Clone, PartialEq, Eq)]
pub struct DbConfig {
    url: String,
}

/// An invalid database configuration.
#[derive(Debug, thiserror::Error)]
#[error("invalid database configuration: {0}")]
pub struct ConfigError(pub String);

/// The environment variables [`DbConfig::from_env`] reads, in documentation order.
pub const ENV_VARS: &[&str] = &[
    "DATABASE_URL",
    "DB_HOST",
    "DB_PORT",
    "DB_USER",
    "DB_PASSWORD",
    "DB_NAME",
    "DB_SOCKET_DIR",
];

/// The separate parts of a connection; unset parts take libpq-like defaults.
#[derive(Clone, Default)]
pub struct DbParts {
    /// Host name or IP address; a value starting with `/` is a socket directory.
    pub host: Option<String>,
    /// TCP port (default 5432).
    pub port: Option<u16>,
    /// Role name (default `postgres`).
    pub user: Option<String>,
    /// Password, if the server asks for one.
    pub password: Option<String>,
    /// Database name (default `simulations`).
    pub dbname: Option<String>,
    /// Directory holding the server's Unix socket; wins over `host`.
    pub socket_dir: Option<String>,
}

impl DbConfig {
    /// Uses a full `postgres://` URL as given.
    pub fn from_url(url: impl Into<String>) -> Result<Self, ConfigError> {
        let url = url.into();
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(ConfigError(
                "DATABASE_URL must start with postgres:// or postgresql://".into(),
            ));
        }
        Ok(Self { url })
    }

    /// Builds a URL from separate parts, percent-encoding each of them.
    pub fn from_parts(parts: &DbParts) -> Result<Self, ConfigError> {
        let user = parts.user.as_deref().unwrap_or("postgres");
        let dbname = parts.dbname.as_deref().unwrap_or("simulations");
        let port = parts.port.unwrap_or(5432);
        let socket = parts
            .socket_dir
            .as_deref()
            .or(parts.host.as_deref().filter(|h| h.starts_with('/')));
        let mut url = format!("postgres://{}", encode(user));
        if let Some(pw) = &parts.password {
            url.push(':');
            url.push_str(&encode(pw));
        }
        url.push('@');
        match socket {
            Some(dir) => {
                url.push_str(&format!(
                    "/{}?host={}&port={port}",
                    encode(dbname),
                    encode(dir)
                ));
            }
            None => {
                let host = parts.host.as_deref().unwrap_or("127.0.0.1");
                if host.is_empty()
                    || host.contains(['/', '@', '?', '#', ' ', '[', ']']) && !host.starts_with('[')
                {
                    return Err(ConfigError(format!("DB_HOST {host:?} is not a host name")));
                }
                if host.contains(':') && !host.starts_with('[') {
                    // An IPv6 address goes in brackets in a URL.
                    url.push_str(&format!("[{host}]:{port}/{}", encode(dbname)));
                } else {
                    url.push_str(&format!("{host}:{port}/{}", encode(dbname)));
                }
            }
        }
        Ok(Self { url })
    }

    /// Reads `DATABASE_URL`, or else `DB_HOST`, `DB_PORT`, `DB_USER`, `DB_PASSWORD`,
    /// `DB_NAME` and `DB_SOCKET_DIR`.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
    }

    /// Like [`DbConfig::from_env`], reading variables through `get` (for tests and flags).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        if let Some(url) = get("DATABASE_URL") {
            return Self::from_url(url);
        }
        let port = match get("DB_PORT") {
            Some(p) => Some(
                p.parse::<u16>()
                    .map_err(|_| ConfigError(format!("DB_PORT {p:?} is not a port number")))?,
            ),
            None => None,
        };
        Self::from_parts(&DbParts {
            host: get("DB_HOST"),
            port,
            user: get("DB_USER"),
            password: get("DB_PASSWORD"),
            dbname: get("DB_NAME"),
            socket_dir: get("DB_SOCKET_DIR"),
        })
    }

    /// The connection URL including the password: pass it to a driver, never print it.
    pub fn url_with_password(&self) -> &str {
        &self.url
    }

    /// The connection URL with any password replaced by `***`.
    pub fn redacted_url(&self) -> String {
        redact(&self.url)
    }

    /// The same server and credentials, but another database name.
    pub fn with_dbname(&self, dbname: &str) -> Self {
        let (before_query, query) = match self.url.split_once('?') {
            Some((a, q)) => (a, Some(q)),
            None => (self.url.as_str(), None),
        };
        let scheme_end = before_query.find("://").map_or(0, |i| i + 3);
        let base = match before_query[scheme_end..].find('/') {
            Some(i) => &before_query[..scheme_end + i],
            None => before_query,
        };
        let mut url = format!("{base}/{}", encode(dbname));
        if let Some(q) = query {
            url.push('?');
            url.push_str(q);
        }
        Self { url }
    }

    /// The database name in the URL, decoded (empty when the URL names none).
    pub fn dbname(&self) -> String {
        let before_query = self.url.split('?').next().unwrap_or("");
        let scheme_end = before_query.find("://").map_or(0, |i| i + 3);
        before_query[scheme_end..]
            .split_once('/')
            .map(|(_, db)| decode(db))
            .unwrap_or_default()
    }
}

impl fmt::Display for DbConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted_url())
    }
}

impl fmt::Debug for DbConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DbConfig")
            .field("url", &self.redacted_url())
            .finish()
    }
}

/// Replaces the password in a `postgres://user:password@host/…` URL, and any `password=`
/// query parameter, with `***`.
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
                            out.push_str(":***");
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
        let params: Vec<String> = q
            .split('&')
            .map(|p| match p.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                _ => p.to_string(),
            })
            .collect();
        out.push_str(&params.join("&"));
    }
    out
}

fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn decode(s: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).map(|d| d as u8)
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn url_wins_over_parts() {
        let c = DbConfig::from_lookup(lookup(&[
            ("DATABASE_URL", "postgres://a:secret@h:1/d"),
            ("DB_HOST", "other"),
        ]))
        .unwrap();
        assert_eq!(c.url_with_password(), "postgres://a:secret@h:1/d");
        assert_eq!(c.to_string(), "postgres://a:***@h:1/d");
        assert!(!format!("{c:?}").contains("secret"));
    }

    #[test]
    fn parts_are_encoded_and_redacted() {
        let c = DbConfig::from_lookup(lookup(&[
            ("DB_HOST", "db.example"),
            ("DB_PORT", "6543"),
            ("DB_USER", "sim"),
            ("DB_PASSWORD", "p@ss:w/rd"),
            ("DB_NAME", "sims"),
        ]))
        .unwrap();
        assert_eq!(
            c.url_with_password(),
            "postgres://sim:p%40ss%3Aw%2Frd@db.example:6543/sims"
        );
        assert_eq!(c.to_string(), "postgres://sim:***@db.example:6543/sims");
        assert_eq!(c.dbname(), "sims");
    }

    #[test]
    fn socket_dir_goes_to_the_host_parameter() {
        let c = DbConfig::from_lookup(lookup(&[("DB_SOCKET_DIR", "/var/run/postgresql")])).unwrap();
        assert_eq!(
            c.url_with_password(),
            "postgres://postgres@/simulations?host=%2Fvar%2Frun%2Fpostgresql&port=5432"
        );
        assert_eq!(c.dbname(), "simulations");
    }

    #[test]
    fn bad_port_and_scheme_are_rejected() {
        assert!(DbConfig::from_lookup(lookup(&[("DB_PORT", "x")])).is_err());
        assert!(DbConfig::from_url("mysql://x").is_err());
    }

    #[test]
    fn query_password_is_redacted() {
        assert_eq!(
            redact("postgres://u@h/d?password=hunter2&sslmode=disable"),
            "postgres://u@h/d?password=***&sslmode=disable"
        );
        assert_eq!(redact("postgres://h/d"), "postgres://h/d");
    }

    #[test]
    fn with_dbname_keeps_server_and_query() {
        let c = DbConfig::from_url("postgres://u:p@h:5/old?host=%2Ftmp").unwrap();
        assert_eq!(
            c.with_dbname("new db").url_with_password(),
            "postgres://u:p@h:5/new%20db?host=%2Ftmp"
        );
        let bare = DbConfig::from_url("postgres://u@h").unwrap();
        assert_eq!(
            bare.with_dbname("x").url_with_password(),
            "postgres://u@h/x"
        );
    }
}
