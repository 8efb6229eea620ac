//! schema-diagram: a Mermaid erDiagram of the live catalog; docs/schema.md is its output on
//! a database the migrations made, and this test fails when the two differ.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::*;

/// The committed page.
const COMMITTED: &str = include_str!("../../docs/schema.md");

#[tokio::test]
async fn the_committed_diagram_is_what_the_migrations_give() {
    let db = Db::new().await;
    let live = stdout_of(&db, &["schema-diagram", "--markdown"]);
    assert!(
        live == COMMITTED,
        "docs/schema.md is out of date: regenerate it on a freshly migrated database with \
         `admin-cli schema-diagram --markdown > docs/schema.md`\n--- live\n{live}"
    );
}

#[tokio::test]
async fn the_diagram_has_every_table_column_key_and_relation() {
    let db = Db::new().await;
    let d = stdout_of(&db, &["schema-diagram"]);
    assert!(d.starts_with("erDiagram\n"), "{d}");
    let tables = query(
        &db,
        "select table_name::text from information_schema.tables \
         where table_schema = current_schema() and table_type = 'BASE TABLE' \
           and table_name <> '__diesel_schema_migrations' order by 1",
    );
    assert!(tables.len() >= 12, "{tables:?}");
    for t in &tables {
        let t = t[0].as_deref().unwrap();
        assert!(d.contains(&format!("\n    {t} {{\n")), "{t} missing:\n{d}");
    }
    assert!(!d.contains("__diesel"), "{d}");
    for line in [
        "        bigint id PK\n",
        "        uuid job_id UK\n",
        "        bigint user_id FK\n",
        "        timestamp_with_time_zone end_time \"nullable\"\n",
        "        text[] sbatch_options\n",
        "    users ||--o{ simulations : \"user_id\"\n",
        "    clusters |o--o{ simulations : \"cluster_id\"\n",
        "    simulations ||--o| inputs : \"simulation_id\"\n",
        "    tasks |o--o{ logfiles : \"task_id\"\n",
    ] {
        assert!(d.contains(line), "{line:?} missing:\n{d}");
    }
    // It is the live catalog: a table added by hand shows, with its key and relation.
    exec(
        &db,
        "create table notes (id bigint primary key, \
         simulation_id bigint references simulations (id), body text not null)",
    );
    let d = stdout_of(&db, &["schema-diagram"]);
    assert!(
        d.contains("    notes {\n        bigint id PK\n        bigint simulation_id FK \"nullable\"\n        text body\n    }\n"),
        "{d}"
    );
    assert!(
        d.contains("    simulations |o--o{ notes : \"simulation_id\"\n"),
        "{d}"
    );
}

#[tokio::test]
async fn names_mermaid_cannot_draw_are_refused_escaped() {
    for ddl in [
        "create table \"evil; DROP TABLE users\" (id int)",
        "create table \"a\u{1b}[2Jb\" (id int)",
        "create table ok_table (\"col\nnext\" int)",
        "create table \"1st\" (id int)",
    ] {
        let db = Db::new().await;
        exec(&db, ddl);
        let out = run(&db, &["schema-diagram"]);
        out.fails_with("cannot be drawn in a Mermaid diagram");
        assert!(!out.stderr.contains('\u{1b}'), "{:?}", out.stderr);
        assert_eq!(out.stderr.lines().count(), 1, "{:?}", out.stderr);
        assert!(out.stdout.is_empty(), "{}", out.stdout);
        // The tables are still there.
        assert_eq!(count(&db, "select count(*) from users"), 0);
    }
}

#[tokio::test]
async fn an_unmigrated_or_missing_database_is_a_clean_error() {
    let db = Db::empty().await;
    run(&db, &["schema-diagram"]).fails_with("not migrated");
    let mut url = url_of(&db);
    url.push_str("_does_not_exist");
    let out = run_url(&url, &["schema-diagram"]);
    out.expect_code(1).assert_clean_error();
    assert!(out.stdout.is_empty());
    run(&db, &["schema-diagram", "--mermaid"]).expect_code(2);
}

/// The database URL of `db`.
fn url_of(db: &Db) -> String {
    db.config().url_with_password().to_string()
}
