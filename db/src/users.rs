//! Queries on users.

use crate::enums::{AuthProvider, Role};
use crate::error::{insert_error, DbError, DbResult};
use crate::models::{NewUser, User};
use crate::pool::Conn;
use crate::schema::{auth_tokens, simulations, users};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use serde::Serialize;

/// A user as listed by operators: no password hash, optionally with counts.
#[derive(Debug, Clone, Serialize, Queryable)]
pub struct UserSummary {
    /// Primary key.
    pub id: i64,
    /// Login name.
    pub username: String,
    /// Who vouches for the identity.
    pub auth_provider: AuthProvider,
    /// User or admin.
    pub role: Role,
    /// Whether password login is possible.
    pub has_password: bool,
    /// When the account was created.
    pub created_at: DateTime<Utc>,
    /// Simulations owned; only filled when asked for.
    pub simulations: Option<i64>,
}

/// Changes to a user; `None` leaves a field as it is.
#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = users)]
pub struct UserChanges {
    /// A new argon2id hash, or `Some(None)` to disable password login.
    pub password_hash: Option<Option<String>>,
    /// A new role.
    pub role: Option<Role>,
}

fn describe(username: &str, provider: AuthProvider) -> String {
    format!("user {username:?} ({provider})")
}

/// Why the database rejected the user `who` ([`describe`]) when its name was stored.
fn rejected_name(who: &str) -> String {
    format!("{who} was rejected: a name must be 1 to 255 characters")
}

/// Lists users by name; `with_counts` adds how many simulations each owns.
pub async fn list(conn: &mut Conn, with_counts: bool) -> DbResult<Vec<UserSummary>> {
    let order = (users::username, users::auth_provider);
    if with_counts {
        // Count per owner first, then join: one pass over simulations, not one probe per user.
        let rows: Vec<UserCountRow> = diesel::sql_query(
            "SELECT u.id, u.username, u.auth_provider, u.role, \
                    u.password_hash IS NOT NULL AS has_password, u.created_at, \
                    coalesce(s.n, 0) AS simulations \
             FROM users u \
             LEFT JOIN (SELECT user_id, count(*) AS n FROM simulations GROUP BY user_id) s \
               ON s.user_id = u.id \
             ORDER BY u.username, u.auth_provider",
        )
        .load(conn)
        .await?;
        Ok(rows.into_iter().map(UserSummary::from).collect())
    } else {
        let rows = users::table
            .select((
                users::id,
                users::username,
                users::auth_provider,
                users::role,
                users::password_hash.is_not_null(),
                users::created_at,
                diesel::dsl::sql::<diesel::sql_types::Nullable<diesel::sql_types::BigInt>>("NULL"),
            ))
            .order_by(order)
            .load(conn)
            .await?;
        Ok(rows)
    }
}

#[derive(QueryableByName)]
struct UserCountRow {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    id: i64,
    #[diesel(sql_type = diesel::sql_types::Text)]
    username: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    auth_provider: AuthProvider,
    #[diesel(sql_type = diesel::sql_types::Text)]
    role: Role,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    has_password: bool,
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    created_at: DateTime<Utc>,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    simulations: i64,
}

impl From<UserCountRow> for UserSummary {
    fn from(r: UserCountRow) -> Self {
        Self {
            id: r.id,
            username: r.username,
            auth_provider: r.auth_provider,
            role: r.role,
            has_password: r.has_password,
            created_at: r.created_at,
            simulations: Some(r.simulations),
        }
    }
}

/// Finds a user by name and provider.
pub async fn get(conn: &mut Conn, username: &str, provider: AuthProvider) -> DbResult<User> {
    users::table
        .filter(users::username.eq(username))
        .filter(users::auth_provider.eq(provider))
        .select(User::as_select())
        .first(conn)
        .await
        .optional()?
        .ok_or_else(|| DbError::NotFound(describe(username, provider)))
}

/// Finds a user by id.
pub async fn get_by_id(conn: &mut Conn, id: i64) -> DbResult<User> {
    users::table
        .find(id)
        .select(User::as_select())
        .first(conn)
        .await
        .optional()?
        .ok_or_else(|| DbError::NotFound(format!("user {id}")))
}

/// Inserts a user; a duplicate name for the same provider is a conflict.
pub async fn create(conn: &mut Conn, new: &NewUser<'_>) -> DbResult<User> {
    let who = describe(new.username, new.auth_provider);
    diesel::insert_into(users::table)
        .values(new)
        .returning(User::as_returning())
        .get_result(conn)
        .await
        .map_err(|e| insert_error(e, &who, |_| rejected_name(&who)))
}

/// Creates or updates, at each login, the user an external identity provider (Keycloak)
/// vouches for: a new name gets a user with role `user` and no password; an existing one
/// keeps its role and gets `updated_at` set to now.
///
/// Users are keyed by (name, provider), so a local user of the same name is a different
/// account (its own simulations, role and password) and is never read or changed here.
/// `provider` must not be [`AuthProvider::Local`].
pub async fn upsert_external(
    conn: &mut Conn,
    username: &str,
    provider: AuthProvider,
) -> DbResult<User> {
    if provider == AuthProvider::Local {
        return Err(DbError::Invalid(
            "local users are created by an operator, not at login".into(),
        ));
    }
    diesel::insert_into(users::table)
        .values(&NewUser {
            username,
            auth_provider: provider,
            password_hash: None,
            role: Role::User,
        })
        .on_conflict((users::username, users::auth_provider))
        .do_update()
        .set(users::updated_at.eq(diesel::dsl::now))
        .returning(User::as_returning())
        .get_result(conn)
        .await
        .map_err(|e| match DbError::from(e) {
            DbError::Invalid(_) => DbError::Invalid(rejected_name(&describe(username, provider))),
            other => other,
        })
}

/// Updates a user. A password change also revokes the user's tokens.
pub async fn update(
    conn: &mut Conn,
    username: &str,
    provider: AuthProvider,
    changes: UserChanges,
) -> DbResult<User> {
    if changes.password_hash.is_none() && changes.role.is_none() {
        return Err(DbError::Invalid("nothing to change".into()));
    }
    if provider != AuthProvider::Local && matches!(changes.password_hash, Some(Some(_))) {
        return Err(DbError::Invalid(format!(
            "{} logs in through {provider} and cannot have a password here",
            describe(username, provider)
        )));
    }
    let username = username.to_string();
    conn.transaction(async |conn| {
        let password_changed = changes.password_hash.is_some();
        let user: User = diesel::update(
            users::table
                .filter(users::username.eq(&username))
                .filter(users::auth_provider.eq(provider)),
        )
        .set((&changes, users::updated_at.eq(diesel::dsl::now)))
        .returning(User::as_returning())
        .get_result(conn)
        .await
        .optional()?
        .ok_or_else(|| DbError::NotFound(describe(&username, provider)))?;
        if password_changed {
            diesel::update(auth_tokens::table.filter(auth_tokens::user_id.eq(user.id)))
                .set(auth_tokens::revoked.eq(true))
                .execute(conn)
                .await?;
        }
        Ok(user)
    })
    .await
}

/// What [`rename`] did.
#[derive(Debug, Clone, Serialize)]
pub struct RenamedUser {
    /// The user's id.
    pub id: i64,
    /// The old name.
    pub old_username: String,
    /// The new name.
    pub username: String,
    /// The user's auth provider (unchanged).
    pub auth_provider: AuthProvider,
    /// Tokens that were still valid and are revoked now.
    pub tokens_revoked: usize,
}

/// Renames a user of `provider` from `old` to `new`, in one transaction, and revokes the
/// user's tokens (a session stays tied to the name it logged in with). Refused with
/// [`DbError::Conflict`] when `new` is taken for that provider, [`DbError::Invalid`] when
/// it is the old name or breaks the schema's rule (1 to 255 characters), and
/// [`DbError::NotFound`] when there is no such user. Simulations, roles and passwords stay
/// with the user (they hang on its id).
pub async fn rename(
    conn: &mut Conn,
    old: &str,
    provider: AuthProvider,
    new: &str,
) -> DbResult<RenamedUser> {
    if old == new {
        return Err(DbError::Invalid(format!(
            "{} already has that name",
            describe(old, provider)
        )));
    }
    let (old, new) = (old.to_string(), new.to_string());
    conn.transaction(async |conn| {
        let id = id_of(conn, &old, provider, true)
            .await?
            .ok_or_else(|| DbError::NotFound(describe(&old, provider)))?;
        let who = describe(&new, provider);
        if id_of(conn, &new, provider, false).await?.is_some() {
            return Err(DbError::Conflict(format!("{who} already exists")));
        }
        // A concurrent rename to the same name loses on the unique index, as a conflict.
        diesel::update(users::table.find(id))
            .set((
                users::username.eq(&new),
                users::updated_at.eq(diesel::dsl::now),
            ))
            .execute(conn)
            .await
            .map_err(|e| insert_error(e, &who, |_| rejected_name(&who)))?;
        let tokens_revoked = diesel::update(
            auth_tokens::table
                .filter(auth_tokens::user_id.eq(id))
                .filter(auth_tokens::revoked.eq(false)),
        )
        .set(auth_tokens::revoked.eq(true))
        .execute(conn)
        .await?;
        Ok(RenamedUser {
            id,
            old_username: old.clone(),
            username: new.clone(),
            auth_provider: provider,
            tokens_revoked,
        })
    })
    .await
}

/// The id of the user `username` of `provider`, if there is one; with `lock`, the row is
/// locked (`FOR UPDATE`) until the transaction ends.
async fn id_of(
    conn: &mut Conn,
    username: &str,
    provider: AuthProvider,
    lock: bool,
) -> DbResult<Option<i64>> {
    let query = users::table
        .filter(users::username.eq(username))
        .filter(users::auth_provider.eq(provider))
        .select(users::id);
    let id = if lock {
        query.for_update().first(conn).await
    } else {
        query.first(conn).await
    };
    Ok(id.optional()?)
}

/// What [`remove`] deleted.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct RemovedUser {
    /// The removed user's id.
    pub id: i64,
    /// Simulations removed with the user.
    pub simulations_removed: i64,
}

/// Removes a user. Refuses with [`DbError::Conflict`] (naming the count) when the user owns
/// simulations, unless `cascade` is set, in which case those go too.
pub async fn remove(
    conn: &mut Conn,
    username: &str,
    provider: AuthProvider,
    cascade: bool,
) -> DbResult<RemovedUser> {
    let username = username.to_string();
    conn.transaction(async |conn| {
        let id = id_of(conn, &username, provider, true)
            .await?
            .ok_or_else(|| DbError::NotFound(describe(&username, provider)))?;
        let owned: i64 = simulations::table
            .filter(simulations::user_id.eq(id))
            .count()
            .get_result(conn)
            .await?;
        if owned > 0 && !cascade {
            return Err(DbError::Conflict(format!(
                "{} owns {owned} simulation(s)",
                describe(&username, provider)
            )));
        }
        let simulations_removed =
            diesel::delete(simulations::table.filter(simulations::user_id.eq(id)))
                .execute(conn)
                .await? as i64;
        diesel::delete(users::table.find(id)).execute(conn).await?;
        Ok(RemovedUser {
            id,
            simulations_removed,
        })
    })
    .await
}
