//! `db/src/schema.rs` must be what `diesel print-schema` makes of the migrated database.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;
use std::process::Command;

#[tokio::test]
async fn schema_rs_matches_the_migrations() {
    let db = db::testing::TestDb::new().await;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let diesel = std::env::var("DIESEL_BIN").unwrap_or_else(|_| "diesel".into());
    let out = Command::new(&diesel)
        .arg("print-schema")
        .arg("--database-url")
        .arg(db.config().url_with_password())
        .current_dir(&root)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run `{diesel} print-schema` ({e}): install it with \
                 `cargo install diesel_cli --no-default-features --features postgres` \
                 (scripts/test and .ci/run do this)"
            )
        });
    assert!(
        out.status.success(),
        "diesel print-schema failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let generated = String::from_utf8(out.stdout).unwrap();
    let committed = std::fs::read_to_string(root.join("db/src/schema.rs")).unwrap();
    assert!(
        generated.trim_end() == committed.trim_end(),
        "db/src/schema.rs is out of date: run `diesel print-schema > db/src/schema.rs` \
         against a migrated database.\n--- generated ---\n{generated}"
    );
}
