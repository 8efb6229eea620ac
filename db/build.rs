//! Rebuilds the crate when a migration changes: `embed_migrations!` reads `migrations/` at
//! compile time, and without this a new migration directory would not be embedded until
//! some source file of this crate changed (while `db::testing` hashes the directory at run
//! time, and would cache a template database missing it).
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
