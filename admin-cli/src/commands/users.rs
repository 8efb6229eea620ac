//! list-users, add-user, update-user, rename-user, remove-user.

use super::Ctx;
use crate::output::{safe, time};
use anyhow::{bail, Context, Result};
use db::enums::{AuthProvider, Role};
use db::models::{NewUser, User};
use db::users::UserChanges;
use std::io::BufRead;

/// `list-users [-v]`.
pub async fn list(ctx: &mut Ctx<'_>, verbose: bool) -> Result<()> {
    let mut conn = ctx.conn().await?;
    let users = db::users::list(&mut conn, verbose).await?;
    let mut headers = vec!["ID", "USERNAME", "PROVIDER", "ROLE", "CREATED"];
    if verbose {
        headers.extend(["PASSWORD", "SIMULATIONS"]);
    }
    Ok(ctx.list(&users, headers, |u| {
        let mut row = vec![
            u.id.to_string(),
            safe(&u.username),
            u.auth_provider.to_string(),
            u.role.to_string(),
            time(&u.created_at),
        ];
        if verbose {
            row.push(if u.has_password { "set" } else { "none" }.into());
            row.push(u.simulations.unwrap_or(0).to_string());
        }
        row
    })?)
}

/// Reads the password from `--password` or the first line of standard input.
fn read_password(password: Option<String>, from_stdin: bool) -> Result<Option<String>> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the password from standard input")?;
        let pw = line.trim_end_matches(['\n', '\r']).to_string();
        if pw.is_empty() {
            bail!("no password on standard input");
        }
        return check_password(pw).map(Some);
    }
    password.map(check_password).transpose()
}

/// Refuses a password with a NUL byte: no client could send it at login (C strings end
/// there). The password itself is never printed.
fn check_password(pw: String) -> Result<String> {
    if pw.contains('\0') {
        bail!("the password contains a NUL byte; choose one without");
    }
    Ok(pw)
}

/// Checks the name of a new user: 1 to 255 characters, no control characters (sim-api
/// refuses them at login, and they garble logs and terminals). Existing users are still
/// addressed by their exact name, whatever it holds.
fn check_new_name(name: &str) -> Result<()> {
    if name.is_empty() || name.chars().count() > 255 {
        bail!("a user name must be 1 to 255 characters");
    }
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        bail!(
            "a user name must not contain control characters (it holds {:?}); sim-api refuses them at login",
            c
        );
    }
    Ok(())
}

/// The JSON answer of `add-user` and `update-user`: the user, its password hash left out.
fn confirmation(user: &User) -> serde_json::Value {
    serde_json::json!({
        "id": user.id,
        "username": user.username,
        "auth_provider": user.auth_provider,
        "role": user.role,
        "has_password": user.password_hash.is_some(),
    })
}

fn hash(pw: &str) -> Result<String> {
    Ok(db::password::hash(pw)?)
}

/// `add-user NAME [--password P | --password-stdin] [--admin]`.
pub async fn add(
    ctx: &mut Ctx<'_>,
    name: &str,
    password: Option<String>,
    password_stdin: bool,
    admin: bool,
) -> Result<()> {
    check_new_name(name)?;
    let hash = match read_password(password, password_stdin)? {
        Some(pw) => Some(hash(&pw)?),
        None => None,
    };
    let mut conn = ctx.conn().await?;
    let role = if admin { Role::Admin } else { Role::User };
    let user = db::users::create(
        &mut conn,
        &NewUser {
            username: name,
            auth_provider: AuthProvider::Local,
            password_hash: hash.as_deref(),
            role,
        },
    )
    .await?;
    let note = if user.password_hash.is_none() {
        "; no password: login disabled until update-user --password"
    } else {
        ""
    };
    ctx.done(
        &format!(
            "added user {:?} (local, {}) with id {}{note}",
            user.username, user.role, user.id
        ),
        &confirmation(&user),
    )?;
    Ok(())
}

/// What `update-user` was asked to change.
pub struct UpdateRequest {
    /// New password.
    pub password: Option<String>,
    /// Read it from stdin.
    pub password_stdin: bool,
    /// Clear the password.
    pub no_password: bool,
    /// New role, if any.
    pub role: Option<Role>,
}

/// `update-user NAME [--password… | --no-password] [--admin | --no-admin]`.
pub async fn update(
    ctx: &mut Ctx<'_>,
    name: &str,
    provider: AuthProvider,
    req: UpdateRequest,
) -> Result<()> {
    let password_hash = if req.no_password {
        Some(None)
    } else {
        match read_password(req.password, req.password_stdin)? {
            Some(pw) => Some(Some(hash(&pw)?)),
            None => None,
        }
    };
    if password_hash.is_none() && req.role.is_none() {
        bail!("nothing to change: give --password, --password-stdin, --no-password, --admin or --no-admin");
    }
    let mut conn = ctx.conn().await?;
    let user = db::users::update(
        &mut conn,
        name,
        provider,
        UserChanges {
            password_hash,
            role: req.role,
        },
    )
    .await?;
    ctx.done(
        &format!(
            "updated user {:?} ({}): role {}, password {}",
            user.username,
            user.auth_provider,
            user.role,
            if user.password_hash.is_some() {
                "set"
            } else {
                "none"
            }
        ),
        &confirmation(&user),
    )?;
    Ok(())
}

/// `rename-user OLD NEW [--auth-provider P]`.
pub async fn rename(ctx: &mut Ctx<'_>, old: &str, new: &str, provider: AuthProvider) -> Result<()> {
    check_new_name(new)?;
    let mut conn = ctx.conn().await?;
    let renamed = db::users::rename(&mut conn, old, provider, new).await?;
    ctx.done(
        &format!(
            "renamed user {:?} ({provider}) to {:?}; {} token(s) revoked",
            renamed.old_username, renamed.username, renamed.tokens_revoked
        ),
        &renamed,
    )?;
    Ok(())
}

/// `remove-user NAME [AUTH_PROVIDER] [--cascade]`.
pub async fn remove(
    ctx: &mut Ctx<'_>,
    name: &str,
    provider: AuthProvider,
    cascade: bool,
) -> Result<()> {
    let mut conn = ctx.conn().await?;
    let removed = match db::users::remove(&mut conn, name, provider, cascade).await {
        Err(db::DbError::Conflict(msg)) => bail!("{msg}; pass --cascade to remove them too"),
        other => other?,
    };
    ctx.done(
        &format!(
            "removed user {name:?} ({provider}) and {} simulation(s)",
            removed.simulations_removed
        ),
        &removed,
    )?;
    Ok(())
}
