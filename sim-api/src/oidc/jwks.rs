//! Loading the signing keys: from a file, a URL, or the URL the discovery document names;
//! and keeping the usable RS256 keys of a JWKS document.

use super::fetch::{self, Fetcher};
use super::source::{discovery_url, parse_http_url, shown};
use super::{JwksSource, OidcError, OidcSettings};
use base64::Engine as _;
use jsonwebtoken::DecodingKey;
use serde::Deserialize;
use std::collections::HashMap;
use std::fmt;
use std::io::Read as _;
use std::path::PathBuf;
use std::time::Duration;

const MIN_MODULUS_BITS: usize = 2048;
/// The largest modulus the RSA verifier behind `jsonwebtoken` (the `rsa` crate) accepts.
const MAX_MODULUS_BITS: usize = 8192;

/// The usable signing keys, by `kid`.
pub(super) type KeySet = HashMap<String, DecodingKey>;

/// Why a JWKS, a discovery document or a CA file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file cannot be read.
    #[error("cannot read the file: {0}")]
    Read(std::io::Error),
    /// The file is larger than the cap.
    #[error("larger than {} bytes", fetch::MAX_BYTES)]
    TooLarge,
    /// The URL has no host.
    #[error("the URL has no host")]
    NoHost,
    /// The request could not be built.
    #[error("cannot build the request: {0}")]
    Request(http::Error),
    /// No TCP connection could be made.
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    /// The host is not a valid TLS server name.
    #[error("the host is not a valid TLS server name")]
    BadServerName,
    /// The TLS handshake failed (e.g. the certificate is not trusted or names another host).
    #[error("TLS handshake failed: {0}")]
    Tls(std::io::Error),
    /// The HTTP exchange failed.
    #[error("HTTP request failed: {0}")]
    Http(hyper::Error),
    /// The answer was not a success.
    #[error("HTTP status {0}")]
    Status(http::StatusCode),
    /// The body could not be read, or is larger than the cap.
    #[error(
        "reading the body failed or it is larger than {} bytes",
        fetch::MAX_BYTES
    )]
    Body,
    /// The whole fetch took too long.
    #[error("timed out after {} s", .0.as_secs())]
    Timeout(Duration),
    /// The document is not the expected JSON.
    #[error("not the expected JSON document: {0}")]
    Json(serde_json::Error),
    /// The discovery document names another issuer than the configured one.
    #[error("the discovery document names another issuer")]
    IssuerMismatch,
    /// The discovery document's `jwks_uri` is not an http(s) URL.
    #[error("the discovery document's jwks_uri is not an http:// or https:// URL")]
    BadJwksUri,
    /// The JWKS holds no usable key.
    #[error("no usable RS256 signing key")]
    NoUsableKey,
    /// A PEM section of the CA file cannot be decoded.
    #[error("not a PEM certificate file: {0}")]
    Pem(rustls::pki_types::pem::Error),
    /// The CA file holds no certificate.
    #[error("no PEM certificate in the file")]
    NoCertificate,
    /// A certificate (or the TLS setup) is unusable.
    #[error("unusable certificate: {0}")]
    Certificate(rustls::Error),
}

/// Loads the keys from the configured source.
pub(super) struct Loader {
    source: JwksSource,
    issuer: String,
    /// The discovery document's URL when the source is [`JwksSource::Discovery`].
    discovery: Option<hyper::Uri>,
    fetcher: Fetcher,
}

impl fmt::Display for Loader {
    /// Where the keys come from, without credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.discovery {
            Some(doc) => write!(f, "discovery at {}", shown(doc)),
            None => write!(f, "{}", self.source),
        }
    }
}

#[derive(Deserialize)]
struct DiscoveryDocument {
    issuer: String,
    jwks_uri: String,
}

impl Loader {
    /// Reads the CA file (if any) and checks the discovery URL (if discovery is used).
    pub(super) async fn new(settings: &OidcSettings) -> Result<Self, OidcError> {
        let ca = match &settings.ca_file {
            Some(path) => {
                Some(
                    read_file(path.clone())
                        .await
                        .map_err(|reason| OidcError::CaFile {
                            path: path.clone(),
                            reason,
                        })?,
                )
            }
            None => None,
        };
        let fetcher = Fetcher::new(ca.as_deref()).map_err(|reason| OidcError::CaFile {
            path: settings.ca_file.clone().unwrap_or_default(),
            reason,
        })?;
        let discovery = match settings.jwks {
            JwksSource::Discovery => Some(discovery_url(&settings.issuer)?),
            _ => None,
        };
        Ok(Self {
            source: settings.jwks.clone(),
            issuer: settings.issuer.clone(),
            discovery,
            fetcher,
        })
    }

    /// Reads or fetches the JWKS and keeps its usable keys; an error when there is none.
    pub(super) async fn load(&self) -> Result<KeySet, OidcError> {
        let fail = |location: String| move |reason: LoadError| OidcError::Jwks { location, reason };
        match (&self.source, &self.discovery) {
            (JwksSource::File(path), _) => {
                let location = path.display().to_string();
                let bytes = read_file(path.clone())
                    .await
                    .map_err(fail(location.clone()))?;
                parse_jwks(&bytes).map_err(fail(location))
            }
            (JwksSource::Url(uri), _) => {
                let bytes = self.fetcher.get(uri).await.map_err(fail(shown(uri)))?;
                parse_jwks(&bytes).map_err(fail(shown(uri)))
            }
            (JwksSource::Discovery, Some(doc_uri)) => {
                let jwks_uri = self.discover(doc_uri).await.map_err(fail(shown(doc_uri)))?;
                let bytes = self
                    .fetcher
                    .get(&jwks_uri)
                    .await
                    .map_err(fail(shown(&jwks_uri)))?;
                parse_jwks(&bytes).map_err(fail(shown(&jwks_uri)))
            }
            (JwksSource::Discovery, None) => Err(OidcError::Config(
                "OIDC discovery needs an issuer URL".into(),
            )),
        }
    }

    /// The `jwks_uri` of the discovery document at `doc_uri`, whose `issuer` must be ours.
    async fn discover(&self, doc_uri: &hyper::Uri) -> Result<hyper::Uri, LoadError> {
        let bytes = self.fetcher.get(doc_uri).await?;
        let doc: DiscoveryDocument = serde_json::from_slice(&bytes).map_err(LoadError::Json)?;
        if doc.issuer != self.issuer {
            return Err(LoadError::IssuerMismatch);
        }
        parse_http_url(&doc.jwks_uri, "jwks_uri").map_err(|_| LoadError::BadJwksUri)
    }
}

/// Reads at most [`fetch::MAX_BYTES`] of a file, off the async threads.
async fn read_file(path: PathBuf) -> Result<Vec<u8>, LoadError> {
    let bytes = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<u8>> {
        let mut buf = Vec::new();
        std::fs::File::open(&path)?
            .take(fetch::MAX_BYTES as u64 + 1)
            .read_to_end(&mut buf)?;
        Ok(buf)
    })
    .await
    .map_err(|e| LoadError::Read(std::io::Error::other(e)))?
    .map_err(LoadError::Read)?;
    if bytes.len() > fetch::MAX_BYTES {
        return Err(LoadError::TooLarge);
    }
    Ok(bytes)
}

#[derive(Deserialize)]
struct Jwks {
    keys: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct Jwk {
    kty: String,
    kid: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    alg: Option<String>,
    n: Option<String>,
    e: Option<String>,
}

/// The usable RS256 keys of a JWKS document, by `kid`; keys of other types or uses are
/// skipped, and an error is returned when none is left.
pub(super) fn parse_jwks(bytes: &[u8]) -> Result<KeySet, LoadError> {
    let jwks: Jwks = serde_json::from_slice(bytes).map_err(LoadError::Json)?;
    let mut keys = KeySet::new();
    for value in jwks.keys {
        let Ok(jwk) = serde_json::from_value::<Jwk>(value) else {
            tracing::debug!("skipping a JWKS entry that is not a key");
            continue;
        };
        if jwk.kty != "RSA"
            || jwk.use_.as_deref().is_some_and(|u| u != "sig")
            || jwk.alg.as_deref().is_some_and(|a| a != "RS256")
        {
            tracing::debug!(kid = ?jwk.kid, kty = %jwk.kty, "skipping a JWKS key not for RS256 signatures");
            continue;
        }
        let Some(kid) = jwk.kid else {
            tracing::debug!("skipping a JWKS key without kid");
            continue;
        };
        let key = match rsa_key(jwk.n.as_deref(), jwk.e.as_deref()) {
            Ok(k) => k,
            Err(why) => {
                tracing::warn!(kid = %kid, reason = why, "skipping an unusable JWKS key");
                continue;
            }
        };
        if keys.contains_key(&kid) {
            tracing::warn!(kid = %kid, "duplicate kid in the JWKS; keeping the first key");
            continue;
        }
        keys.insert(kid, key);
    }
    if keys.is_empty() {
        return Err(LoadError::NoUsableKey);
    }
    Ok(keys)
}

fn rsa_key(n: Option<&str>, e: Option<&str>) -> Result<DecodingKey, &'static str> {
    let decode = |s: &str| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s.trim_end_matches('='))
            .map_err(|_| "n or e is not base64url")
    };
    let n = decode(n.ok_or("no modulus n")?)?;
    let e = decode(e.ok_or("no exponent e")?)?;
    let bits = match n.iter().position(|&b| b != 0) {
        Some(i) => (n.len() - i) * 8 - n[i].leading_zeros() as usize,
        None => 0,
    };
    if !(MIN_MODULUS_BITS..=MAX_MODULUS_BITS).contains(&bits) {
        return Err("modulus size outside 2048..=8192 bits");
    }
    if e.iter().all(|&b| b == 0) {
        return Err("invalid RSA public exponent");
    }
    Ok(DecodingKey::from_rsa_raw_components(&n, &e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    #[test]
    fn jwks_skips_unusable_keys() {
        assert!(matches!(
            parse_jwks(br#"{"keys":[]}"#),
            Err(LoadError::NoUsableKey)
        ));
        assert!(matches!(parse_jwks(b"{ not json"), Err(LoadError::Json(_))));
        assert!(parse_jwks(br#"{"keys":[{"kty":"EC","kid":"a","crv":"P-256"}]}"#).is_err());
        // A 512-bit modulus is too small, an 8200-bit one too large.
        for len in [64, 1025] {
            let n = b64(&vec![0xff_u8; len]);
            let doc = format!(r#"{{"keys":[{{"kty":"RSA","kid":"a","n":"{n}","e":"AQAB"}}]}}"#);
            assert!(parse_jwks(doc.as_bytes()).is_err(), "{len}");
        }
        // 2048 bits, with a leading zero byte, is kept; the enc key next to it is skipped.
        let mut n = vec![0_u8];
        n.extend([0xc5_u8; 256]);
        let doc = format!(
            r#"{{"keys":[{{"kty":"RSA","kid":"a","n":"{n}","e":"AQAB"}},
                         {{"kty":"RSA","kid":"b","use":"enc","n":"{n}","e":"AQAB"}}]}}"#,
            n = b64(&n)
        );
        let keys = parse_jwks(doc.as_bytes()).unwrap();
        assert_eq!(keys.keys().collect::<Vec<_>>(), ["a"]);
    }
}
