//! AuthService, bearer-token checks and the login backoff.
//!
//! Tokens are 32 random bytes from the OS, base64url without padding; only their SHA-256
//! hashes are stored. Tokens and passwords are never logged.
//!
//! Failed logins are slowed down per username, in memory (per server process): after `n`
//! consecutive failures the next attempt for that username waits `100 ms · 2^(n-1)`, at most
//! 5 s, before the password is checked. A success clears the count; counts older than
//! 15 minutes are forgotten.

use crate::error::{conn, db_status};
use crate::text::StoredText;
use crate::AppState;
use base64::Engine as _;
use db::enums::{AuthProvider, Role, TokenKind};
use db::models::User;
use proto::v1::auth_service_server::AuthService;
use proto::v1::{
    LoginOidcRequest, LoginRequest, LogoutRequest, LogoutResponse, RefreshRequest, TokenPair,
    WhoAmIRequest, WhoAmIResponse,
};
use rand::RngCore as _;
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};
use tonic::{Request, Response, Status};
use uuid::Uuid;

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The user.
    pub user: User,
    /// The login session of the access token.
    pub session_id: Uuid,
}

impl Caller {
    /// The owner filter for simulation queries: `None` (everything) for an admin.
    pub fn owner_filter(&self) -> Option<i64> {
        (self.user.role != Role::Admin).then_some(self.user.id)
    }
}

/// A fresh random token: 32 bytes, base64url without padding.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The bearer token of the `authorization` metadata; UNAUTHENTICATED when it is missing
/// or malformed.
pub fn bearer<T>(req: &Request<T>) -> Result<&str, Status> {
    let value = req
        .metadata()
        .get("authorization")
        .ok_or_else(|| Status::unauthenticated("missing authorization metadata"))?;
    let value = value
        .to_str()
        .map_err(|_| Status::unauthenticated("malformed authorization metadata"))?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or_else(|| Status::unauthenticated("authorization must be `Bearer <token>`"))?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() || token.len() > 256 {
        return Err(Status::unauthenticated(
            "authorization must be `Bearer <token>`",
        ));
    }
    Ok(token)
}

/// Checks the caller's access token; UNAUTHENTICATED when it is missing, malformed,
/// unknown, expired or revoked.
pub async fn authenticate<T>(state: &AppState, req: &Request<T>) -> Result<Caller, Status> {
    let token = bearer(req)?;
    let hash = db::tokens::hash_token(token);
    if let Some(caller) = state.tokens.get(&hash) {
        return Ok(traced(caller));
    }
    let mut c = conn(&state.pool).await?;
    lookup_access(state, &mut c, hash).await.map(traced)
}

/// Records the caller's user id on the RPC's span (see `rpc_span` in the crate root).
fn traced(caller: Caller) -> Caller {
    tracing::Span::current().record("caller", caller.user.id);
    caller
}

/// The caller, if the token cache knows the access token; `None` when the database must be
/// asked; UNAUTHENTICATED when the metadata is missing or malformed.
pub fn cached_caller<T>(state: &AppState, req: &Request<T>) -> Result<Option<Caller>, Status> {
    let token = bearer(req)?;
    Ok(state.tokens.get(&db::tokens::hash_token(token)).map(traced))
}

/// [`authenticate`] on a connection the caller already holds, so that a request can do
/// all its work with one pool checkout.
pub async fn authenticate_on<T>(
    state: &AppState,
    c: &mut db::Conn,
    req: &Request<T>,
) -> Result<Caller, Status> {
    let token = bearer(req)?;
    let hash = db::tokens::hash_token(token);
    if let Some(caller) = state.tokens.get(&hash) {
        return Ok(traced(caller));
    }
    lookup_access(state, c, hash).await.map(traced)
}

/// Looks an access token up in the database and caches the answer (see
/// [`crate::token_cache`]).
async fn lookup_access(
    state: &AppState,
    c: &mut db::Conn,
    hash: Vec<u8>,
) -> Result<Caller, Status> {
    let ticket = state.tokens.ticket();
    match db::tokens::lookup(c, &hash, TokenKind::Access)
        .await
        .map_err(db_status)?
    {
        Some(found) => {
            let caller = Caller {
                user: found.user,
                session_id: found.session_id,
            };
            let valid_for = (found.expires_at - chrono::Utc::now())
                .to_std()
                .unwrap_or(Duration::ZERO);
            state.tokens.insert(ticket, hash, caller.clone(), valid_for);
            Ok(caller)
        }
        None => Err(Status::unauthenticated("invalid or expired access token")),
    }
}

/// Per-username delays after failed logins (see the module documentation).
#[derive(Debug, Default)]
pub struct LoginBackoff {
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

const BACKOFF_FORGET: Duration = Duration::from_secs(15 * 60);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
const BACKOFF_MAX_ENTRIES: usize = 100_000;

impl LoginBackoff {
    /// How long the next attempt for `username` must wait.
    pub fn delay(&self, username: &str) -> Duration {
        let map = match self.failures.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        match map.get(username) {
            Some(&(n, at)) if n > 0 && at.elapsed() < BACKOFF_FORGET => {
                let ms = 100u64.saturating_mul(1u64 << (n - 1).min(16));
                Duration::from_millis(ms).min(BACKOFF_MAX)
            }
            _ => Duration::ZERO,
        }
    }

    /// Records a failure.
    pub fn failed(&self, username: &str) {
        let mut map = match self.failures.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        if map.len() >= BACKOFF_MAX_ENTRIES {
            map.retain(|_, (_, at)| at.elapsed() < BACKOFF_FORGET);
        }
        let entry = map
            .entry(username.to_string())
            .or_insert((0, Instant::now()));
        if entry.1.elapsed() >= BACKOFF_FORGET {
            entry.0 = 0;
        }
        entry.0 = entry.0.saturating_add(1);
        entry.1 = Instant::now();
    }

    /// Clears the failures after a success.
    pub fn succeeded(&self, username: &str) {
        let mut map = match self.failures.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        map.remove(username);
    }
}

/// A hash to verify against when the user does not exist, so that timing does not tell
/// which usernames exist.
fn dummy_hash() -> Option<&'static str> {
    static DUMMY: OnceLock<Option<String>> = OnceLock::new();
    DUMMY
        .get_or_init(|| db::password::hash("dummy password for timing").ok())
        .as_deref()
}

/// The AuthService implementation.
#[derive(Clone)]
pub struct AuthSvc {
    state: AppState,
}

impl AuthSvc {
    /// A service over the shared state.
    pub fn new(state: AppState) -> Self {
        Self { state }
    }

    fn new_pair(&self) -> Result<(String, String, db::tokens::NewPair), Status> {
        let now = chrono::Utc::now();
        let ttl = |d: Duration| {
            chrono::Duration::from_std(d)
                .map_err(|e| crate::error::internal("a token lifetime out of range", &e))
        };
        let access = new_token();
        let refresh = new_token();
        let pair = db::tokens::NewPair {
            access_hash: db::tokens::hash_token(&access),
            access_expires_at: now + ttl(self.state.limits.access_token_ttl)?,
            refresh_hash: db::tokens::hash_token(&refresh),
            refresh_expires_at: now + ttl(self.state.limits.refresh_token_ttl)?,
        };
        Ok((access, refresh, pair))
    }

    fn token_pair(&self, access: String, refresh: String) -> TokenPair {
        TokenPair {
            access_token: access,
            refresh_token: refresh,
            access_expires_in: self.state.limits.access_token_ttl.as_secs() as i64,
            refresh_expires_in: self.state.limits.refresh_token_ttl.as_secs() as i64,
            token_type: "Bearer".into(),
        }
    }

    /// Starts a new session for `user` and returns its token pair (Login and LoginOidc).
    async fn issue_tokens(&self, user: &User) -> Result<TokenPair, Status> {
        let (access, refresh, pair) = self.new_pair()?;
        let mut c = conn(&self.state.pool).await?;
        db::tokens::insert_pair(&mut c, user.id, Uuid::new_v4(), &pair)
            .await
            .map_err(db_status)?;
        Ok(self.token_pair(access, refresh))
    }
}

#[tonic::async_trait]
impl AuthService for AuthSvc {
    async fn login(&self, request: Request<LoginRequest>) -> Result<Response<TokenPair>, Status> {
        let LoginRequest { username, password } = request.into_inner();
        if username.is_empty() || password.is_empty() {
            return Err(Status::invalid_argument(
                "username and password are required",
            ));
        }
        // The username is looked up in a text column: no NUL, no control characters.
        let username = StoredText::parse("username", username, crate::text::USERNAME)?;
        if password.len() > db::password::MAX_PASSWORD_LEN {
            return Err(Status::invalid_argument("the password is too long"));
        }
        // Never stored, but no password can hold one (admin-cli refuses it).
        if password.contains('\0') {
            return Err(Status::invalid_argument(
                "password must not contain a NUL byte",
            ));
        }
        let delay = self.state.backoff.delay(&username);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let user = {
            let mut c = conn(&self.state.pool).await?;
            match db::users::get(&mut c, &username, AuthProvider::Local).await {
                Ok(u) => Some(u),
                Err(db::DbError::NotFound(_)) => None,
                Err(e) => return Err(db_status(e)),
            }
        };
        let hash = user
            .as_ref()
            .and_then(|u| u.password_hash.clone())
            .or_else(|| dummy_hash().map(str::to_string));
        let ok = match hash {
            Some(h) => {
                let pw = password.clone();
                tokio::task::spawn_blocking(move || db::password::verify(&pw, &h))
                    .await
                    .unwrap_or(false)
            }
            None => false,
        };
        let user = match (ok, user) {
            (true, Some(u)) if u.password_hash.is_some() => u,
            _ => {
                self.state.backoff.failed(&username);
                tracing::info!(username = %username, "login failed");
                return Err(Status::unauthenticated("wrong username or password"));
            }
        };
        self.state.backoff.succeeded(&username);
        let tokens = self.issue_tokens(&user).await?;
        tracing::info!(username = %user.username, "login");
        Ok(Response::new(tokens))
    }

    async fn refresh(
        &self,
        request: Request<RefreshRequest>,
    ) -> Result<Response<TokenPair>, Status> {
        let token = request.into_inner().refresh_token;
        if token.is_empty() || token.len() > 256 {
            return Err(Status::unauthenticated("invalid refresh token"));
        }
        let (access, refresh, pair) = self.new_pair()?;
        let mut c = conn(&self.state.pool).await?;
        match db::tokens::rotate_refresh(&mut c, &db::tokens::hash_token(&token), &pair)
            .await
            .map_err(db_status)?
        {
            db::tokens::Rotation::Rotated { user, .. } => {
                tracing::debug!(username = %user.username, "tokens refreshed");
                Ok(Response::new(self.token_pair(access, refresh)))
            }
            db::tokens::Rotation::Reused => {
                self.state.tokens.invalidate_all();
                tracing::warn!("a revoked refresh token was presented; its session is revoked");
                Err(Status::unauthenticated("invalid refresh token"))
            }
            db::tokens::Rotation::Invalid => Err(Status::unauthenticated("invalid refresh token")),
        }
    }

    async fn logout(
        &self,
        request: Request<LogoutRequest>,
    ) -> Result<Response<LogoutResponse>, Status> {
        let session = if request.metadata().get("authorization").is_some() {
            authenticate(&self.state, &request).await?.session_id
        } else {
            let token = &request.get_ref().refresh_token;
            if token.is_empty() || token.len() > 256 {
                return Err(Status::unauthenticated(
                    "send an access token or a refresh token",
                ));
            }
            let mut c = conn(&self.state.pool).await?;
            match db::tokens::lookup(&mut c, &db::tokens::hash_token(token), TokenKind::Refresh)
                .await
                .map_err(db_status)?
            {
                Some(found) => found.session_id,
                None => return Err(Status::unauthenticated("invalid refresh token")),
            }
        };
        let mut c = conn(&self.state.pool).await?;
        let revoked = db::tokens::revoke_session(&mut c, session)
            .await
            .map_err(db_status)?;
        // Other servers hear of it through the database; this one forgets at once.
        self.state.tokens.invalidate_all();
        Ok(Response::new(LogoutResponse {
            revoked: u32::try_from(revoked).unwrap_or(u32::MAX),
        }))
    }

    async fn who_am_i(
        &self,
        request: Request<WhoAmIRequest>,
    ) -> Result<Response<WhoAmIResponse>, Status> {
        let caller = authenticate(&self.state, &request).await?;
        Ok(Response::new(WhoAmIResponse {
            username: caller.user.username,
            auth_provider: caller.user.auth_provider.as_str().into(),
            role: caller.user.role.as_str().into(),
        }))
    }

    /// Verifies the ID token (see [`crate::oidc`]), creates or updates the `keycloak` user it
    /// names (a local user of the same name is a separate account and is left alone), and
    /// starts a session like Login. Not configured → FAILED_PRECONDITION; empty token →
    /// INVALID_ARGUMENT; any rejected token → UNAUTHENTICATED with a short reason; keys not
    /// loadable → UNAVAILABLE.
    async fn login_oidc(
        &self,
        request: Request<LoginOidcRequest>,
    ) -> Result<Response<TokenPair>, Status> {
        let Some(verifier) = self.state.oidc.as_deref() else {
            return Err(Status::failed_precondition(
                "OIDC login is not configured on this server",
            ));
        };
        let token = request.into_inner().id_token;
        if token.is_empty() {
            return Err(Status::invalid_argument("id_token is required"));
        }
        let identity = verifier
            .verify(&token)
            .await
            .map_err(|e| crate::error::oidc_status(&e))?;
        let user = {
            let mut c = conn(&self.state.pool).await?;
            db::users::upsert_external(&mut c, &identity.username, AuthProvider::Keycloak)
                .await
                .map_err(db_status)?
        };
        let tokens = self.issue_tokens(&user).await?;
        tracing::info!(username = %user.username, auth_provider = "keycloak", "login");
        Ok(Response::new(tokens))
    }
}
