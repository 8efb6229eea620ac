//! Opaque auth tokens, stored only as SHA-256 hashes in `auth_tokens`.
//!
//! A login opens a session (a UUID shared by its tokens). Refreshing rotates: the presented
//! refresh token is revoked and a new pair is issued in the same session. A refresh token
//! presented again after it was rotated away revokes the whole session (reuse detection).

use crate::enums::TokenKind;
use crate::error::DbResult;
use crate::models::User;
use crate::pool::Conn;
use crate::schema::{auth_tokens, users};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// SHA-256 of a token: the only form in which tokens are stored.
pub fn hash_token(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// The hashes and expiry times of a new access/refresh pair.
#[derive(Debug, Clone)]
pub struct NewPair {
    /// SHA-256 of the access token.
    pub access_hash: Vec<u8>,
    /// When the access token expires.
    pub access_expires_at: DateTime<Utc>,
    /// SHA-256 of the refresh token.
    pub refresh_hash: Vec<u8>,
    /// When the refresh token expires.
    pub refresh_expires_at: DateTime<Utc>,
}

/// Stores a new pair for `user_id` in `session_id`.
pub async fn insert_pair(
    conn: &mut Conn,
    user_id: i64,
    session_id: Uuid,
    pair: &NewPair,
) -> DbResult<()> {
    diesel::insert_into(auth_tokens::table)
        .values(&vec![
            (
                auth_tokens::user_id.eq(user_id),
                auth_tokens::token_hash.eq(pair.access_hash.clone()),
                auth_tokens::kind.eq(TokenKind::Access.as_str()),
                auth_tokens::session_id.eq(session_id),
                auth_tokens::expires_at.eq(pair.access_expires_at),
            ),
            (
                auth_tokens::user_id.eq(user_id),
                auth_tokens::token_hash.eq(pair.refresh_hash.clone()),
                auth_tokens::kind.eq(TokenKind::Refresh.as_str()),
                auth_tokens::session_id.eq(session_id),
                auth_tokens::expires_at.eq(pair.refresh_expires_at),
            ),
        ])
        .execute(conn)
        .await?;
    Ok(())
}

/// A valid token, as [`lookup`] finds it.
#[derive(Debug, Clone)]
pub struct ValidToken {
    /// Its user.
    pub user: User,
    /// Its login session.
    pub session_id: Uuid,
    /// When it expires.
    pub expires_at: DateTime<Utc>,
}

/// The user, session and expiry of a valid (known, unrevoked, unexpired) token of `kind`.
pub async fn lookup(
    conn: &mut Conn,
    token_hash: &[u8],
    kind: TokenKind,
) -> DbResult<Option<ValidToken>> {
    let found: Option<(User, Uuid, DateTime<Utc>)> = auth_tokens::table
        .inner_join(users::table)
        .filter(auth_tokens::token_hash.eq(token_hash))
        .filter(auth_tokens::kind.eq(kind.as_str()))
        .filter(auth_tokens::revoked.eq(false))
        .filter(auth_tokens::expires_at.gt(diesel::dsl::now))
        .select((
            User::as_select(),
            auth_tokens::session_id,
            auth_tokens::expires_at,
        ))
        .first(conn)
        .await
        .optional()?;
    Ok(found.map(|(user, session_id, expires_at)| ValidToken {
        user,
        session_id,
        expires_at,
    }))
}

/// What [`rotate_refresh`] did.
#[derive(Debug)]
pub enum Rotation {
    /// The token was valid: it is revoked now and `pair` is stored in its session.
    Rotated {
        /// The session's user.
        user: User,
        /// The session.
        session_id: Uuid,
    },
    /// The token was already revoked: the whole session is revoked now.
    Reused,
    /// Unknown or expired.
    Invalid,
}

/// Revokes a valid refresh token and stores `pair` in its session, atomically. A revoked
/// token (one already rotated away or logged out) revokes its whole session instead.
pub async fn rotate_refresh(
    conn: &mut Conn,
    refresh_hash: &[u8],
    pair: &NewPair,
) -> DbResult<Rotation> {
    let refresh_hash = refresh_hash.to_vec();
    let pair = pair.clone();
    conn.transaction(async |conn| {
        let rotated: Option<(i64, Uuid)> = diesel::update(
            auth_tokens::table
                .filter(auth_tokens::token_hash.eq(&refresh_hash))
                .filter(auth_tokens::kind.eq(TokenKind::Refresh.as_str()))
                .filter(auth_tokens::revoked.eq(false))
                .filter(auth_tokens::expires_at.gt(diesel::dsl::now)),
        )
        .set(auth_tokens::revoked.eq(true))
        .returning((auth_tokens::user_id, auth_tokens::session_id))
        .get_result(conn)
        .await
        .optional()?;
        if let Some((user_id, session_id)) = rotated {
            insert_pair(conn, user_id, session_id, &pair).await?;
            let user = crate::users::get_by_id(conn, user_id).await?;
            return Ok(Rotation::Rotated { user, session_id });
        }
        let revoked_session: Option<Uuid> = auth_tokens::table
            .filter(auth_tokens::token_hash.eq(&refresh_hash))
            .filter(auth_tokens::kind.eq(TokenKind::Refresh.as_str()))
            .filter(auth_tokens::revoked.eq(true))
            .select(auth_tokens::session_id)
            .first(conn)
            .await
            .optional()?;
        match revoked_session {
            Some(session_id) => {
                revoke_session(conn, session_id).await?;
                Ok(Rotation::Reused)
            }
            None => Ok(Rotation::Invalid),
        }
    })
    .await
}

/// Revokes every token of a session; returns how many were still unrevoked.
pub async fn revoke_session(conn: &mut Conn, session_id: Uuid) -> DbResult<usize> {
    Ok(diesel::update(
        auth_tokens::table
            .filter(auth_tokens::session_id.eq(session_id))
            .filter(auth_tokens::revoked.eq(false)),
    )
    .set(auth_tokens::revoked.eq(true))
    .execute(conn)
    .await?)
}
