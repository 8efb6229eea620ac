//! Verification of OIDC ID tokens (Keycloak-style RS256 JWTs) for `AuthService.LoginOidc`.
//!
//! - **Algorithm**: only `RS256` (RSASSA-PKCS1-v1_5 with SHA-256). `none`, `HS*`, `ES*`, `PS*`
//!   and anything else are refused before a key is looked at, so a public key can never be
//!   used as an HMAC secret. A header with `crit` is refused (no extension is understood).
//! - **Key**: the header must carry a `kid` that names a key of the JWKS.
//! - **Order**: the signature is checked first, the claims only after it: `iss` must equal the
//!   configured issuer, `aud` (a string or an array) must contain the configured audience,
//!   `exp` is required and `nbf` optional. Both times get a clock-skew leeway (default 30 s):
//!   a token is accepted until `exp + leeway` and from `nbf - leeway`.
//! - **Identity**: `sub` is required; the username is `preferred_username`, or `sub` when that
//!   claim is absent or empty. A username over 255 characters or with control characters
//!   (NUL included) is refused.
//!
//! Keys come from a JWKS (RFC 7517) file or an `http://` URL (https is not supported: mount
//! the JWKS as a file; redirects are not followed). They are loaded at start; a token whose
//! `kid` is unknown makes the verifier load them again, at most once per
//! [`OidcSettings::jwks_refresh_min`] (default 60 s), so rotated keys are picked up while
//! random `kid`s cannot make the server hammer the identity provider. A reload that fails or
//! yields no usable key keeps the previous keys. Only RSA keys with `use` absent or `sig`,
//! `alg` absent or `RS256`, a `kid`, and a modulus of 2048 to 8192 bits are used.
//!
//! Errors never contain the token or any part of it.

use base64::Engine as _;
use http_body_util::BodyExt as _;
use rsa::{BigUint, Pkcs1v15Sign, RsaPublicKey};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::fmt;
use std::io::Read as _;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Default clock-skew leeway for `exp` and `nbf`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
/// Default shortest time between two JWKS loads triggered by unknown `kid`s.
pub const DEFAULT_JWKS_REFRESH_MIN: Duration = Duration::from_secs(60);
/// Longest token accepted, in bytes.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

const MAX_JWKS_BYTES: usize = 1 << 20;
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
const MIN_MODULUS_BITS: usize = 2048;
const MAX_MODULUS_BITS: usize = 8192;

/// Why a token was refused, or why the OIDC settings or keys are unusable. The messages are
/// short and never contain the token.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    /// The settings are incomplete or unusable.
    #[error("OIDC settings: {0}")]
    Config(String),
    /// The JWKS could not be read, fetched or parsed, or holds no usable key.
    #[error("cannot load the JWKS from {location}: {reason}")]
    Jwks {
        /// The file path or URL (without credentials).
        location: String,
        /// What went wrong.
        reason: String,
    },
    /// No signing key is available because the JWKS could not be loaded.
    #[error("the identity provider's signing keys are unavailable")]
    KeysUnavailable,
    /// Not three base64url parts, or a header or payload that is not the expected JSON.
    #[error("malformed token")]
    Malformed,
    /// `alg` is not `RS256`.
    #[error("unsupported signing algorithm (only RS256 is accepted)")]
    UnsupportedAlgorithm,
    /// The `kid` is missing or names no key of the JWKS.
    #[error("unknown signing key")]
    UnknownKey,
    /// The signature does not verify with the named key.
    #[error("bad signature")]
    BadSignature,
    /// `iss` is missing or not the configured issuer.
    #[error("wrong issuer")]
    WrongIssuer,
    /// `aud` is missing or does not contain the configured audience.
    #[error("wrong audience")]
    WrongAudience,
    /// `exp` plus the leeway is in the past.
    #[error("token expired")]
    Expired,
    /// `nbf` minus the leeway is in the future.
    #[error("token not yet valid")]
    NotYetValid,
    /// A required claim is missing.
    #[error("token lacks the `{0}` claim")]
    MissingClaim(&'static str),
    /// The username (from `preferred_username` or `sub`) is too long or has control
    /// characters.
    #[error("token has no usable username")]
    BadUsername,
}

/// Where the JWKS comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    /// A local file, read again on reload.
    File(PathBuf),
    /// An `http://` URL, fetched again on reload.
    Url(hyper::Uri),
}

impl FromStr for JwksSource {
    type Err = OidcError;

    /// A file path, or an `http://` URL; `https://` and other schemes are refused.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.to_ascii_lowercase();
        if s.is_empty() {
            Err(OidcError::Config("the JWKS location is empty".into()))
        } else if lower.starts_with("https://") {
            Err(OidcError::Config(
                "https JWKS URLs are not supported: mount the JWKS as a file and pass its path"
                    .into(),
            ))
        } else if lower.starts_with("http://") {
            let uri: hyper::Uri = s
                .parse()
                .map_err(|_| OidcError::Config("the JWKS URL is not a valid URL".into()))?;
            if uri.host().is_none_or(str::is_empty) {
                return Err(OidcError::Config("the JWKS URL has no host".into()));
            }
            Ok(Self::Url(uri))
        } else if s.contains("://") {
            Err(OidcError::Config(
                "the JWKS location must be a file path or an http:// URL".into(),
            ))
        } else {
            Ok(Self::File(PathBuf::from(s)))
        }
    }
}

impl fmt::Display for JwksSource {
    /// The path, or the URL without any user information.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(p) => write!(f, "{}", p.display()),
            Self::Url(u) => {
                write!(f, "http://{}", u.host().unwrap_or_default())?;
                if let Some(port) = u.port_u16() {
                    write!(f, ":{port}")?;
                }
                write!(f, "{}", u.path())
            }
        }
    }
}

/// What tokens must satisfy and where the keys come from.
#[derive(Debug, Clone)]
pub struct OidcSettings {
    /// The expected `iss`, compared exactly.
    pub issuer: String,
    /// The audience `aud` must contain (the client id).
    pub audience: String,
    /// Where the signing keys come from.
    pub jwks: JwksSource,
    /// Clock-skew leeway for `exp` and `nbf`.
    pub leeway: Duration,
    /// Shortest time between two JWKS loads triggered by unknown `kid`s.
    pub jwks_refresh_min: Duration,
}

impl OidcSettings {
    /// Settings with the default leeway and reload interval.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>, jwks: JwksSource) -> Self {
        Self {
            issuer: issuer.into(),
            audience: audience.into(),
            jwks,
            leeway: DEFAULT_LEEWAY,
            jwks_refresh_min: DEFAULT_JWKS_REFRESH_MIN,
        }
    }
}

/// Who a verified token says the caller is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The `sub` claim.
    pub subject: String,
    /// `preferred_username`, or `sub` when that is absent or empty.
    pub username: String,
}

type KeySet = HashMap<String, Arc<RsaPublicKey>>;

/// Verifies ID tokens against the JWKS; see the module documentation.
pub struct OidcVerifier {
    settings: OidcSettings,
    keys: RwLock<Arc<KeySet>>,
    /// When the keys were last (attempted to be) loaded; `None` until a load succeeded
    /// or was tried after start.
    last_load: tokio::sync::Mutex<Option<Instant>>,
}

impl fmt::Debug for OidcVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OidcVerifier")
            .field("settings", &self.settings)
            .field("keys", &self.snapshot().len())
            .finish()
    }
}

impl OidcVerifier {
    /// Loads the keys. A JWKS file that cannot be read or holds no usable key is an error;
    /// a URL that cannot be fetched is only logged, and the keys are fetched again at the
    /// first login (so the server can start before the identity provider).
    pub async fn new(settings: OidcSettings) -> Result<Self, OidcError> {
        if settings.issuer.is_empty() || settings.audience.is_empty() {
            return Err(OidcError::Config(
                "the issuer and the audience must not be empty".into(),
            ));
        }
        let (keys, last_load) = match load_keys(&settings.jwks).await {
            Ok(keys) => {
                tracing::info!(keys = keys.len(), jwks = %settings.jwks, "loaded the OIDC signing keys");
                (keys, Some(Instant::now()))
            }
            Err(e) if matches!(settings.jwks, JwksSource::Url(_)) => {
                tracing::warn!(error = %e, "cannot load the OIDC signing keys at start; trying again at the first OIDC login");
                (KeySet::new(), None)
            }
            Err(e) => return Err(e),
        };
        Ok(Self {
            settings,
            keys: RwLock::new(Arc::new(keys)),
            last_load: tokio::sync::Mutex::new(last_load),
        })
    }

    /// The settings in use.
    pub fn settings(&self) -> &OidcSettings {
        &self.settings
    }

    /// Verifies `token` (see the module documentation) and returns who it names.
    pub async fn verify(&self, token: &str) -> Result<Identity, OidcError> {
        let parts = split(token)?;
        let key = self.key(&parts.kid).await?;
        let digest = Sha256::digest(parts.signing_input.as_bytes());
        key.verify(Pkcs1v15Sign::new::<Sha256>(), &digest, &parts.signature)
            .map_err(|_| OidcError::BadSignature)?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        check_claims(&self.settings, &parts.payload, now)
    }

    fn snapshot(&self) -> Arc<KeySet> {
        match self.keys.read() {
            Ok(k) => Arc::clone(&k),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// The key named `kid`, reloading the JWKS once (if due) when it is unknown.
    async fn key(&self, kid: &str) -> Result<Arc<RsaPublicKey>, OidcError> {
        if let Some(k) = self.snapshot().get(kid) {
            return Ok(Arc::clone(k));
        }
        self.reload_if_due().await;
        let keys = self.snapshot();
        match keys.get(kid) {
            Some(k) => Ok(Arc::clone(k)),
            None if keys.is_empty() => Err(OidcError::KeysUnavailable),
            None => Err(OidcError::UnknownKey),
        }
    }

    async fn reload_if_due(&self) {
        let mut last = self.last_load.lock().await;
        if last.is_some_and(|t| t.elapsed() < self.settings.jwks_refresh_min) {
            return;
        }
        *last = Some(Instant::now());
        match load_keys(&self.settings.jwks).await {
            Ok(keys) => {
                tracing::info!(keys = keys.len(), jwks = %self.settings.jwks, "reloaded the OIDC signing keys");
                let mut guard = match self.keys.write() {
                    Ok(g) => g,
                    Err(poisoned) => poisoned.into_inner(),
                };
                *guard = Arc::new(keys);
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot reload the OIDC signing keys; keeping the previous ones");
            }
        }
    }
}

/// The decoded parts of a compact JWS whose header passed the algorithm check.
struct Parts<'a> {
    kid: String,
    signing_input: &'a str,
    signature: Vec<u8>,
    payload: Vec<u8>,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
    crit: Option<serde::de::IgnoredAny>,
}

fn b64(part: &str) -> Result<Vec<u8>, OidcError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| OidcError::Malformed)
}

fn split(token: &str) -> Result<Parts<'_>, OidcError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(OidcError::Malformed);
    }
    let mut it = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (it.next(), it.next(), it.next(), it.next())
    else {
        return Err(OidcError::Malformed);
    };
    let parsed: Header = serde_json::from_slice(&b64(header)?).map_err(|_| OidcError::Malformed)?;
    if parsed.alg != "RS256" {
        return Err(OidcError::UnsupportedAlgorithm);
    }
    if parsed.crit.is_some() {
        return Err(OidcError::Malformed);
    }
    let kid = parsed.kid.ok_or(OidcError::UnknownKey)?;
    let signing_input = &token[..header.len() + 1 + payload.len()];
    Ok(Parts {
        kid,
        signing_input,
        signature: b64(signature)?,
        payload: b64(payload)?,
    })
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct Claims {
    iss: Option<String>,
    aud: Option<Audience>,
    exp: Option<serde_json::Number>,
    nbf: Option<serde_json::Number>,
    sub: Option<String>,
    preferred_username: Option<String>,
}

/// A NumericDate in whole seconds (fractions are cut off).
fn seconds(n: &serde_json::Number) -> Option<i64> {
    n.as_i64().or_else(|| {
        n.as_f64()
            .filter(|f| f.is_finite())
            .map(|f| f.floor() as i64)
    })
}

/// The rule every username follows (1 to 255 characters, no control characters, so no
/// NUL): [`crate::text::USERNAME`].
fn usable_username(name: &str) -> bool {
    crate::text::check(name, crate::text::USERNAME).is_ok()
}

/// Checks the claims of a payload whose signature has been verified, at `now` (Unix seconds).
fn check_claims(settings: &OidcSettings, payload: &[u8], now: i64) -> Result<Identity, OidcError> {
    let claims: Claims = serde_json::from_slice(payload).map_err(|_| OidcError::Malformed)?;
    if claims.iss.as_deref() != Some(settings.issuer.as_str()) {
        return Err(OidcError::WrongIssuer);
    }
    let audience_ok = match &claims.aud {
        Some(Audience::One(a)) => *a == settings.audience,
        Some(Audience::Many(list)) => list.contains(&settings.audience),
        None => false,
    };
    if !audience_ok {
        return Err(OidcError::WrongAudience);
    }
    let leeway = i64::try_from(settings.leeway.as_secs()).unwrap_or(i64::MAX);
    let exp = claims.exp.as_ref().ok_or(OidcError::MissingClaim("exp"))?;
    let exp = seconds(exp).ok_or(OidcError::Malformed)?;
    if now >= exp.saturating_add(leeway) {
        return Err(OidcError::Expired);
    }
    if let Some(nbf) = &claims.nbf {
        let nbf = seconds(nbf).ok_or(OidcError::Malformed)?;
        if now.saturating_add(leeway) < nbf {
            return Err(OidcError::NotYetValid);
        }
    }
    let subject = claims
        .sub
        .filter(|s| !s.is_empty())
        .ok_or(OidcError::MissingClaim("sub"))?;
    let username = match claims.preferred_username {
        Some(name) if !name.is_empty() => name,
        _ => subject.clone(),
    };
    if !usable_username(&username) {
        return Err(OidcError::BadUsername);
    }
    Ok(Identity { subject, username })
}

/// Reads or fetches the JWKS and keeps its usable keys; an error when there is none.
async fn load_keys(source: &JwksSource) -> Result<KeySet, OidcError> {
    let fail = |reason: String| OidcError::Jwks {
        location: source.to_string(),
        reason,
    };
    let bytes = match source {
        JwksSource::File(path) => read_file(path.clone()).await.map_err(fail)?,
        JwksSource::Url(uri) => fetch(uri).await.map_err(fail)?,
    };
    parse_jwks(&bytes).map_err(fail)
}

async fn read_file(path: PathBuf) -> Result<Vec<u8>, String> {
    let bytes = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<u8>> {
        let mut buf = Vec::new();
        std::fs::File::open(&path)?
            .take(MAX_JWKS_BYTES as u64 + 1)
            .read_to_end(&mut buf)?;
        Ok(buf)
    })
    .await
    .map_err(|e| format!("reading failed: {e}"))?
    .map_err(|e| e.to_string())?;
    if bytes.len() > MAX_JWKS_BYTES {
        return Err(format!("larger than {MAX_JWKS_BYTES} bytes"));
    }
    Ok(bytes)
}

/// A plain HTTP/1.1 GET of `uri`, with a timeout and a size cap.
async fn fetch(uri: &hyper::Uri) -> Result<Vec<u8>, String> {
    let host = uri.host().ok_or("the URL has no host")?;
    let port = uri.port_u16().unwrap_or(80);
    let host_header = match uri.port_u16() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    };
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
    // `host()` keeps the brackets of an IPv6 literal; connecting needs the bare address.
    let connect_host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let work = async move {
        let stream = tokio::net::TcpStream::connect((connect_host.as_str(), port))
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|e| format!("HTTP handshake failed: {e}"))?;
        let driver = tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "JWKS connection ended with an error");
            }
        });
        let request = hyper::Request::get(path)
            .header(hyper::header::HOST, host_header)
            .header(hyper::header::ACCEPT, "application/json")
            .body(http_body_util::Empty::<hyper::body::Bytes>::new())
            .map_err(|e| format!("cannot build the request: {e}"))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        let status = response.status();
        if !status.is_success() {
            driver.abort();
            return Err(format!("HTTP status {status}"));
        }
        let body = http_body_util::Limited::new(response.into_body(), MAX_JWKS_BYTES)
            .collect()
            .await
            .map_err(|e| format!("reading the body failed: {e}"))?
            .to_bytes();
        driver.abort();
        Ok(body.to_vec())
    };
    tokio::time::timeout(FETCH_TIMEOUT, work)
        .await
        .map_err(|_| format!("timed out after {} s", FETCH_TIMEOUT.as_secs()))?
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
fn parse_jwks(bytes: &[u8]) -> Result<KeySet, String> {
    let jwks: Jwks =
        serde_json::from_slice(bytes).map_err(|e| format!("not a JWKS document: {e}"))?;
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
        keys.insert(kid, Arc::new(key));
    }
    if keys.is_empty() {
        return Err("no usable RS256 signing key".into());
    }
    Ok(keys)
}

fn rsa_key(n: Option<&str>, e: Option<&str>) -> Result<RsaPublicKey, &'static str> {
    let decode = |s: &str| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s.trim_end_matches('='))
            .map_err(|_| "n or e is not base64url")
    };
    let n = BigUint::from_bytes_be(&decode(n.ok_or("no modulus n")?)?);
    let e = BigUint::from_bytes_be(&decode(e.ok_or("no exponent e")?)?);
    let bits = n.bits();
    if !(MIN_MODULUS_BITS..=MAX_MODULUS_BITS).contains(&bits) {
        return Err("modulus size outside 2048..=8192 bits");
    }
    RsaPublicKey::new_with_max_size(n, e, MAX_MODULUS_BITS).map_err(|_| "invalid RSA public key")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> OidcSettings {
        OidcSettings::new("iss", "aud", JwksSource::File("x".into()))
    }

    #[test]
    fn jwks_locations() {
        assert!(matches!("/etc/jwks.json".parse(), Ok(JwksSource::File(_))));
        assert!(matches!(
            "http://kc:8080/realms/r/protocol/openid-connect/certs".parse(),
            Ok(JwksSource::Url(_))
        ));
        let https = "https://kc/certs".parse::<JwksSource>().unwrap_err();
        assert!(https.to_string().contains("mount the JWKS as a file"));
        assert!("ftp://x/y".parse::<JwksSource>().is_err());
        let shown = "http://user:pw@kc:8080/certs"
            .parse::<JwksSource>()
            .unwrap()
            .to_string();
        assert_eq!(shown, "http://kc:8080/certs");
    }

    #[test]
    fn claim_times_with_leeway() {
        let s = settings();
        let payload = |exp: i64, nbf: i64| {
            format!(r#"{{"iss":"iss","aud":["x","aud"],"sub":"s","exp":{exp},"nbf":{nbf}}}"#)
        };
        let now = 1_000_000;
        assert!(check_claims(&s, payload(now + 1, now).as_bytes(), now).is_ok());
        assert!(check_claims(&s, payload(now - 29, now).as_bytes(), now).is_ok());
        assert!(matches!(
            check_claims(&s, payload(now - 30, now).as_bytes(), now),
            Err(OidcError::Expired)
        ));
        assert!(check_claims(&s, payload(now + 60, now + 30).as_bytes(), now).is_ok());
        assert!(matches!(
            check_claims(&s, payload(now + 60, now + 31).as_bytes(), now),
            Err(OidcError::NotYetValid)
        ));
        assert!(matches!(
            check_claims(&s, br#"{"iss":"iss","aud":"aud","sub":"s"}"#, now),
            Err(OidcError::MissingClaim("exp"))
        ));
        assert!(check_claims(
            &s,
            br#"{"iss":"iss","aud":"aud","sub":"s","exp":1000000.5}"#,
            now
        )
        .is_ok());
    }

    #[test]
    fn username_from_preferred_username_or_sub() {
        let s = settings();
        let id = check_claims(
            &s,
            br#"{"iss":"iss","aud":"aud","sub":"u-1","preferred_username":"alice","exp":10}"#,
            0,
        )
        .unwrap();
        assert_eq!(
            (id.subject.as_str(), id.username.as_str()),
            ("u-1", "alice")
        );
        let id = check_claims(&s, br#"{"iss":"iss","aud":"aud","sub":"u-1","exp":10}"#, 0).unwrap();
        assert_eq!(id.username, "u-1");
        assert!(matches!(
            check_claims(
                &s,
                br#"{"iss":"iss","aud":"aud","sub":"u","preferred_username":"a\nb","exp":10}"#,
                0
            ),
            Err(OidcError::BadUsername)
        ));
        // A NUL never reaches the database: the token is refused as it is.
        assert!(matches!(
            check_claims(
                &s,
                br#"{"iss":"iss","aud":"aud","sub":"u\u0000","exp":10}"#,
                0
            ),
            Err(OidcError::BadUsername)
        ));
    }

    #[test]
    fn jwks_skips_unusable_keys() {
        assert!(parse_jwks(br#"{"keys":[]}"#).is_err());
        assert!(parse_jwks(br#"{"keys":[{"kty":"EC","kid":"a","crv":"P-256"}]}"#).is_err());
        // A 512-bit modulus is too small.
        let small = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([0xff_u8; 64]);
        let doc = format!(r#"{{"keys":[{{"kty":"RSA","kid":"a","n":"{small}","e":"AQAB"}}]}}"#);
        assert!(parse_jwks(doc.as_bytes()).is_err());
    }
}
