//! Verification of OIDC ID tokens (Keycloak-style RS256 JWTs) for `AuthService.LoginOidc`.
//!
//! The signature and the standard claims are checked by [`jsonwebtoken`]; this module adds
//! what it does not do (or not strictly enough) and keeps the keys fresh:
//!
//! - **Algorithm**: only `RS256` (RSASSA-PKCS1-v1_5 with SHA-256). `none`, `HS*`, `ES*`, `PS*`
//!   and anything else are refused before a key is looked at, so a public key can never be
//!   used as an HMAC secret. A header with `crit` is refused (no extension is understood).
//! - **Key**: the header must carry a `kid` that names a key of the JWKS.
//! - **Order**: the signature is checked first, the claims only after it: `iss` must equal the
//!   configured issuer, `aud` (a string or an array) must contain the configured audience,
//!   `exp` is required and `nbf` optional, both numbers (a string is refused, never skipped).
//!   Both times get a clock-skew leeway (default 30 s): a token is accepted through
//!   `exp + leeway` and from `nbf - leeway`.
//! - **Identity**: `sub` is required; the username is `preferred_username`, or `sub` when that
//!   claim is absent or empty. A username over 255 characters or with control characters
//!   (NUL included) is refused.
//!
//! Keys come from a JWKS (RFC 7517) file, an `http://` or `https://` URL, or, when neither is
//! given, the `jwks_uri` of the issuer's discovery document
//! (`{issuer}/.well-known/openid-configuration`, whose `issuer` must equal the configured one).
//! https is verified with rustls against the Mozilla roots (webpki-roots) plus, optionally, a
//! private CA ([`OidcSettings::ca_file`]); redirects are not followed. The keys are loaded at
//! start; a token whose `kid` is unknown makes the verifier load them again, at most once per
//! [`OidcSettings::jwks_refresh_min`] (default 60 s), so rotated keys are picked up while
//! random `kid`s cannot make the server hammer the identity provider. A reload that fails or
//! yields no usable key keeps the previous keys. Only RSA keys with `use` absent or `sig`,
//! `alg` absent or `RS256`, a `kid`, and a modulus of 2048 to 8192 bits are used.
//!
//! Errors never contain the token or any part of it.

mod fetch;
mod jwks;
mod source;
mod token;

pub use jwks::LoadError;
pub use source::JwksSource;

use jwks::KeySet;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// Default clock-skew leeway for `exp` and `nbf`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
/// Default shortest time between two JWKS loads triggered by unknown `kid`s.
pub const DEFAULT_JWKS_REFRESH_MIN: Duration = Duration::from_secs(60);
/// Longest token accepted, in bytes.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Why a token was refused, or why the OIDC settings or keys are unusable. The messages are
/// short and never contain the token.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    /// The settings are incomplete or unusable.
    #[error("OIDC settings: {0}")]
    Config(String),
    /// The CA file given for https cannot be read or holds no certificate.
    #[error("OIDC settings: cannot use the CA file {}: {reason}", .path.display())]
    CaFile {
        /// The file's path.
        path: PathBuf,
        /// What went wrong.
        reason: LoadError,
    },
    /// The JWKS (or the discovery document) could not be read, fetched or parsed, or holds
    /// no usable key.
    #[error("cannot load the JWKS from {location}: {reason}")]
    Jwks {
        /// The file path or URL (without credentials or query).
        location: String,
        /// What went wrong.
        reason: LoadError,
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
    /// A required claim is missing (or is not of its type, e.g. a string `exp`).
    #[error("token lacks a usable `{0}` claim")]
    MissingClaim(&'static str),
    /// The username (from `preferred_username` or `sub`) is too long or has control
    /// characters.
    #[error("token has no usable username")]
    BadUsername,
}

/// What tokens must satisfy and where the keys come from.
#[derive(Debug, Clone)]
pub struct OidcSettings {
    /// The expected `iss`, compared exactly; with [`JwksSource::Discovery`] also the base of
    /// the discovery URL.
    pub issuer: String,
    /// The audience `aud` must contain (the client id).
    pub audience: String,
    /// Where the signing keys come from.
    pub jwks: JwksSource,
    /// A PEM file of CA certificates trusted for https besides the built-in roots.
    pub ca_file: Option<PathBuf>,
    /// Clock-skew leeway for `exp` and `nbf`.
    pub leeway: Duration,
    /// Shortest time between two JWKS loads triggered by unknown `kid`s.
    pub jwks_refresh_min: Duration,
}

impl OidcSettings {
    /// Settings with the default leeway and reload interval and no extra CA.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>, jwks: JwksSource) -> Self {
        Self {
            issuer: issuer.into(),
            audience: audience.into(),
            jwks,
            ca_file: None,
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

/// Verifies ID tokens against the JWKS; see the module documentation.
pub struct OidcVerifier {
    settings: OidcSettings,
    loader: jwks::Loader,
    validation: jsonwebtoken::Validation,
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
    /// Loads the keys. A JWKS file that cannot be read or holds no usable key, or a CA file
    /// that cannot be used, is an error; a URL (or discovery document) that cannot be
    /// fetched is only logged, and the keys are fetched again at the first login (so the
    /// server can start before the identity provider).
    pub async fn new(settings: OidcSettings) -> Result<Self, OidcError> {
        if settings.issuer.is_empty() || settings.audience.is_empty() {
            return Err(OidcError::Config(
                "the issuer and the audience must not be empty".into(),
            ));
        }
        let loader = jwks::Loader::new(&settings).await?;
        let (keys, last_load) = match loader.load().await {
            Ok(keys) => {
                tracing::info!(keys = keys.len(), jwks = %loader, "loaded the OIDC signing keys");
                (keys, Some(Instant::now()))
            }
            Err(e) if settings.jwks.is_remote() => {
                tracing::warn!(error = %e, "cannot load the OIDC signing keys at start; trying again at the first OIDC login");
                (KeySet::new(), None)
            }
            Err(e) => return Err(e),
        };
        Ok(Self {
            validation: token::validation(&settings),
            settings,
            loader,
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
        let kid = token::precheck(token)?;
        let keys = self.keys_with(&kid).await?;
        let key = keys.get(&kid).ok_or(OidcError::UnknownKey)?;
        token::verify(token, key, &self.validation)
    }

    fn snapshot(&self) -> Arc<KeySet> {
        match self.keys.read() {
            Ok(k) => Arc::clone(&k),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// The key set holding `kid`, reloading the JWKS once (if due) when it is unknown.
    async fn keys_with(&self, kid: &str) -> Result<Arc<KeySet>, OidcError> {
        let keys = self.snapshot();
        if keys.contains_key(kid) {
            return Ok(keys);
        }
        self.reload_if_due().await;
        let keys = self.snapshot();
        if keys.contains_key(kid) {
            Ok(keys)
        } else if keys.is_empty() {
            Err(OidcError::KeysUnavailable)
        } else {
            Err(OidcError::UnknownKey)
        }
    }

    async fn reload_if_due(&self) {
        let mut last = self.last_load.lock().await;
        if last.is_some_and(|t| t.elapsed() < self.settings.jwks_refresh_min) {
            return;
        }
        *last = Some(Instant::now());
        match self.loader.load().await {
            Ok(keys) => {
                tracing::info!(keys = keys.len(), jwks = %self.loader, "reloaded the OIDC signing keys");
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
