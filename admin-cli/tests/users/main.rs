//! list-users, add-user, update-user, remove-user, and hostile user names.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../common/mod.rs"]
mod common;
mod hostile;
mod list_and_add;
mod update_and_remove;

use common::*;
use serde_json::Value;

/// The users of `list-users --json`, by name.
pub fn users_json(db: &Db, verbose: bool) -> Vec<Value> {
    let mut args = vec!["--json", "list-users"];
    if verbose {
        args.push("-v");
    }
    let out = run(db, &args);
    out.ok();
    out.json().as_array().expect("a JSON array").clone()
}

pub fn names(users: &[Value]) -> Vec<String> {
    users
        .iter()
        .map(|u| u["username"].as_str().unwrap().to_string())
        .collect()
}

pub fn hash_of(db: &Db, name: &str) -> Option<String> {
    // Dollar quoting keeps the name literal whatever it contains (the names used here hold no `$q$`).
    scalar(
        db,
        &format!("select password_hash from users where username = $q${name}$q$ and auth_provider = 'local'"),
    )
}

/// Whether the local user `name` has a password, and it is `password`.
pub fn has_password(db: &Db, name: &str, password: &str) -> bool {
    hash_of(db, name).is_some_and(|hash| db::password::verify(password, &hash))
}
