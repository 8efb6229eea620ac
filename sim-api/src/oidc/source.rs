//! Where the signing keys come from, and how a URL is shown (never with credentials).

use super::OidcError;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// Where the JWKS comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    /// A local file, read again on reload.
    File(PathBuf),
    /// An `http://` or `https://` URL, fetched again on reload.
    Url(hyper::Uri),
    /// The `jwks_uri` of the issuer's discovery document
    /// (`{issuer}/.well-known/openid-configuration`), both fetched again on reload.
    Discovery,
}

impl JwksSource {
    /// Whether the keys come over the network (a failure at start is then only logged).
    pub fn is_remote(&self) -> bool {
        !matches!(self, Self::File(_))
    }
}

impl FromStr for JwksSource {
    type Err = OidcError;

    /// A file path, or an `http://` or `https://` URL; other schemes are refused.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            Err(OidcError::Config("the JWKS location is empty".into()))
        } else if is_http_url(s) {
            Ok(Self::Url(parse_http_url(s, "JWKS URL")?))
        } else if s.contains("://") {
            Err(OidcError::Config(
                "the JWKS location must be a file path or an http:// or https:// URL".into(),
            ))
        } else {
            Ok(Self::File(PathBuf::from(s)))
        }
    }
}

impl fmt::Display for JwksSource {
    /// The path, or the URL without user information or query.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(p) => write!(f, "{}", p.display()),
            Self::Url(u) => write!(f, "{}", shown(u)),
            Self::Discovery => write!(f, "the issuer's discovery document"),
        }
    }
}

fn is_http_url(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

/// Parses an `http://` or `https://` URL with a host; `what` names it in errors.
pub(super) fn parse_http_url(s: &str, what: &str) -> Result<hyper::Uri, OidcError> {
    if !is_http_url(s) {
        return Err(OidcError::Config(format!(
            "the {what} must be an http:// or https:// URL"
        )));
    }
    let uri: hyper::Uri = s
        .parse()
        .map_err(|_| OidcError::Config(format!("the {what} is not a valid URL")))?;
    if uri.host().is_none_or(str::is_empty) {
        return Err(OidcError::Config(format!("the {what} has no host")));
    }
    Ok(uri)
}

/// The discovery document's URL for `issuer` (OpenID Connect Discovery 1.0, section 4).
pub(super) fn discovery_url(issuer: &str) -> Result<hyper::Uri, OidcError> {
    parse_http_url(
        &format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        ),
        "issuer (needed for OIDC discovery when --oidc-jwks is not set)",
    )
}

/// `scheme://host[:port]/path`: no user information, no query.
pub(super) fn shown(u: &hyper::Uri) -> String {
    let scheme = u.scheme_str().unwrap_or("http");
    let mut s = format!("{scheme}://{}", u.host().unwrap_or_default());
    if let Some(port) = u.port_u16() {
        s.push_str(&format!(":{port}"));
    }
    s.push_str(u.path());
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwks_locations() {
        assert!(matches!("/etc/jwks.json".parse(), Ok(JwksSource::File(_))));
        assert!(matches!(
            "http://kc:8080/realms/r/protocol/openid-connect/certs".parse(),
            Ok(JwksSource::Url(_))
        ));
        assert!(matches!(
            "HTTPS://kc/realms/r/protocol/openid-connect/certs".parse(),
            Ok(JwksSource::Url(_))
        ));
        assert!("ftp://x/y".parse::<JwksSource>().is_err());
        assert!("https:///certs".parse::<JwksSource>().is_err());
        let shown = "https://user:pw@kc:8443/certs?secret=1"
            .parse::<JwksSource>()
            .unwrap()
            .to_string();
        assert_eq!(shown, "https://kc:8443/certs");
    }

    #[test]
    fn discovery_urls() {
        let u = discovery_url("https://kc.example/realms/sim/").unwrap();
        assert_eq!(
            u.to_string(),
            "https://kc.example/realms/sim/.well-known/openid-configuration"
        );
        assert!(discovery_url("kc.example/realms/sim").is_err());
    }
}
