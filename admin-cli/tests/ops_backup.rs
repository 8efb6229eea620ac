//! `backup` and `verify-backup` against a real PostgreSQL: a round trip on a database with
//! real content, truncated and garbage dumps refused, an existing file kept, hostile file
//! names, and the password never printed.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::*;
use db::enums::AuthProvider;
use std::path::{Path, PathBuf};

/// A fresh directory under the system's temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    /// Named after the test database `db`, whose name no other test database has while
    /// it exists.
    fn new(db: &Db, tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("ops_backup_{tag}_{}", db.name()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::from("'\\x");
    for b in bytes {
        out.push_str(&format!("{b:02x}"));
    }
    out.push_str("'::bytea");
    out
}

/// Users, a simulation with a real (encoded) input, two log files, and an estimator with
/// three codec pages (one without errors).
async fn real_content(db: &Db) -> i64 {
    let alice = user(db, "alice", AuthProvider::Local).await;
    user(db, "kc", AuthProvider::Keycloak).await;
    let input = db::inputs::SimulationInput::Editor(serde_json::json!({"beam": {"energy": 150}}));
    let (data, size) = input.encode().unwrap();
    let mut conn = db.conn().await;
    let sim = db::simulations::create_with_tasks(
        &mut conn,
        &new_sim(alice, "with content", 2),
        Some((&data, size)),
    )
    .await
    .unwrap();
    db::logs::store(&mut conn, sim.id, None, "stdout", b"all went well\n")
        .await
        .unwrap();
    db::logs::store(&mut conn, sim.id, None, "stderr", b"")
        .await
        .unwrap();
    drop(conn);
    exec(
        db,
        &format!(
            "INSERT INTO estimators (simulation_id, name) VALUES ({}, 'dose')",
            sim.id
        ),
    );
    for page in 0..3 {
        let values: Vec<f64> = (0..50).map(|i| f64::from(i * (page + 1)) * 0.5).collect();
        let errors = if page == 2 {
            "NULL".to_string()
        } else {
            hex(&db::codec::encode(&vec![0.1; 50]).unwrap())
        };
        exec(
            db,
            &format!(
                "INSERT INTO pages (estimator_id, page_number, page_dimension, value_count, \
                 values_data, errors_data) SELECT id, {page}, 1, 50, {}, {errors} \
                 FROM estimators WHERE name = 'dose'",
                hex(&db::codec::encode(&values).unwrap())
            ),
        );
    }
    sim.id
}

/// Runs `verify-backup FILE`, which must succeed with the verdict ok; returns the run.
#[track_caller]
fn verified_ok(db: &Db, file: &Path) -> Out {
    let out = run(db, &["verify-backup", s(file)]);
    out.ok();
    out.stdout_has("verdict: ok");
    out
}

/// A fresh database with [`real_content`], and a fresh directory for its dumps (`tag` in its
/// name); returns them and the simulation's id.
async fn with_content(tag: &str) -> (Db, TempDir, i64) {
    let db = Db::new().await;
    let id = real_content(&db).await;
    let dir = TempDir::new(&db, tag);
    (db, dir, id)
}

/// Runs `verify-backup FILE`, which must fail cleanly with `error` after printing
/// `verdict: VERDICT`; returns the run.
#[track_caller]
fn verify_fails(db: &Db, file: &Path, error: &str, verdict: &str) -> Out {
    let out = run(db, &["verify-backup", s(file)]);
    out.fails_with(error);
    out.stdout_has(&format!("verdict: {verdict}"));
    out
}

/// Asserts that the scratch database a verify-backup run names (if any) is gone.
#[track_caller]
fn scratch_dropped(db: &Db, out: &Out) {
    let prefix = "restored into scratch database ";
    if let Some(line) = out.stdout.lines().find(|l| l.starts_with(prefix)) {
        let name = line[prefix.len()..].split_whitespace().next().unwrap();
        assert!(name.starts_with("sim_verify_"), "{line}");
        let left = count(
            db,
            &format!("SELECT count(*) FROM pg_database WHERE datname = '{name}'"),
        );
        assert_eq!(left, 0, "scratch database {name} left behind");
    }
}

#[tokio::test]
async fn round_trip_on_real_content() {
    let (db, dir, _) = with_content("round_trip").await;
    let file = dir.path("backup.dump");

    let out = run(&db, &["backup", "--out", s(&file)]);
    out.ok();
    out.stdout_has("backed up to");
    assert!(file.is_file());
    assert!(!dir.path("backup.dump.partial").exists());

    let out = verified_ok(&db, &file);
    out.stdout_has("decoded: 3 page(s), 1 input(s), 2 log(s)");
    let rows = table(&out.stdout);
    let users = rows.iter().find(|r| r[0] == "users").expect("users row");
    assert_eq!(users[1], "2", "{}", out.stdout);
    assert_eq!(users[2], "2", "source counted: {}", out.stdout);
    let pages = rows.iter().find(|r| r[0] == "pages").expect("pages row");
    assert_eq!(pages[1], "3");
    out.stdout_has("restored into scratch database sim_verify_");
    scratch_dropped(&db, &out);

    // --json gives the same verdict.
    let v = json_of(&db, &["--json", "verify-backup", s(&file)]);
    assert_eq!(v["verdict"], "ok");
    assert_eq!(v["pages"]["decoded"], 3);
    assert_eq!(v["inputs"]["decoded"], 1);
    assert_eq!(v["logs"]["decoded"], 2);

    // The source moved on since the dump: still ok, with a note.
    user(&db, "bob", AuthProvider::Local).await;
    let out = verified_ok(&db, &file);
    out.stdout_has("note: users has 3 row(s) in the configured database, 2 in the dump");
}

#[tokio::test]
async fn corrupt_rows_fail_the_verdict() {
    let (db, dir, id) = with_content("corrupt_rows").await;
    exec(
        &db,
        &format!("UPDATE inputs SET data = '\\x00010203'::bytea WHERE simulation_id = {id}"),
    );
    let file = dir.path("b.dump");
    run(&db, &["backup", "--out", s(&file)]).ok();
    let out = verify_fails(&db, &file, "backup failed verification", "failed");
    out.stdout_has("inputs cannot be decoded");
    out.stdout_has("restored into scratch database sim_verify_");
    scratch_dropped(&db, &out);
}

#[tokio::test]
async fn truncated_dump_is_not_restorable() {
    let (db, dir, _) = with_content("truncated").await;
    let file = dir.path("full.dump");
    run(&db, &["backup", "--out", s(&file)]).ok();
    let bytes = std::fs::read(&file).unwrap();
    let half = dir.path("half.dump");
    std::fs::write(&half, &bytes[..bytes.len() / 2]).unwrap();
    let out = verify_fails(&db, &half, "not restorable", "not restorable");
    out.assert_clean_error();
    scratch_dropped(&db, &out);
}

#[tokio::test]
async fn garbage_is_not_restorable() {
    let db = Db::new().await;
    let dir = TempDir::new(&db, "garbage");
    let file = dir.path("garbage.dump");
    let junk: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&file, junk).unwrap();
    verify_fails(&db, &file, "not restorable", "not restorable");
    // An empty file too.
    let empty = dir.path("empty.dump");
    std::fs::write(&empty, b"").unwrap();
    run(&db, &["verify-backup", s(&empty)]).fails_with("not restorable");
}

#[tokio::test]
async fn missing_file_is_a_clean_error() {
    let db = Db::new().await;
    let dir = TempDir::new(&db, "missing");
    let out = run(&db, &["verify-backup", s(&dir.path("nope.dump"))]);
    out.fails_with("cannot read");
}

#[tokio::test]
async fn existing_out_is_refused_unless_force() {
    let db = Db::new().await;
    let dir = TempDir::new(&db, "existing");
    let file = dir.path("there.dump");
    std::fs::write(&file, b"keep me").unwrap();
    let out = run(&db, &["backup", "--out", s(&file)]);
    out.fails_with("already exists; pass --force");
    assert_eq!(std::fs::read(&file).unwrap(), b"keep me");

    run(&db, &["backup", "--out", s(&file), "--force"]).ok();
    assert_ne!(std::fs::read(&file).unwrap(), b"keep me");
    run(&db, &["verify-backup", s(&file)]).ok();
}

#[tokio::test]
async fn hostile_file_names_are_plain_paths() {
    let (db, dir, _) = with_content("hostile").await;
    for name in [
        "with space.dump",
        "quote'single.dump",
        "quote\"double.dump",
        "$(touch pwned).dump",
        "`touch pwned2`.dump",
        "-dash.dump",
        "semi;colon.dump",
    ] {
        let file = dir.path(name);
        run(&db, &["backup", "--out", s(&file)]).ok();
        assert!(file.is_file(), "{name}");
        verified_ok(&db, &file);
    }
    assert!(!dir.path("pwned").exists());
    assert!(!dir.path("pwned2").exists());
    assert!(!Path::new("pwned").exists());
}

#[tokio::test]
async fn password_never_printed() {
    let (db, dir, _) = with_content("password").await;
    let secret = "Sup3r-s3cret-pw";
    // The test server trusts local connections, so a password in the URL is not checked:
    // it still reaches pg_dump, through PGPASSWORD only.
    let url = format!("postgres://postgres:{secret}@127.0.0.1:5432/{}", db.name());
    let file = dir.path("b.dump");
    let out = run_url(&url, &["backup", "--out", s(&file)]);
    out.ok();
    assert!(!out.all().contains(secret), "{}", out.all());
    let out = run_url(&url, &["verify-backup", s(&file)]);
    out.ok();
    assert!(!out.all().contains(secret), "{}", out.all());

    // Failures: a server that is not there, and a database that does not exist.
    let nowhere = format!("postgres://postgres:{secret}@127.0.0.1:1/{}", db.name());
    let out = run_url(&nowhere, &["backup", "--out", s(&dir.path("c.dump"))]);
    out.expect_code(1);
    assert!(out.stderr.contains("pg_dump failed"), "{}", out.stderr);
    assert!(!out.all().contains(secret), "{}", out.all());
    assert!(!dir.path("c.dump").exists());
    assert!(!dir.path("c.dump.partial").exists());
    let out = run_url(&nowhere, &["verify-backup", s(&file)]);
    out.expect_code(1);
    assert!(!out.all().contains(secret), "{}", out.all());
    let gone = format!("postgres://postgres:{secret}@127.0.0.1:5432/no_such_db_ops_backup");
    let out = run_url(&gone, &["backup", "--out", s(&dir.path("d.dump"))]);
    out.expect_code(1);
    assert!(!out.all().contains(secret), "{}", out.all());
}

/// `--compress` reaches pg_dump: level 0 writes a larger file than level 9, both verify, and
/// a level outside 0..=9 is bad usage that writes nothing.
#[tokio::test]
async fn compression_levels() {
    let (db, dir, _) = with_content("compress").await;
    let mut sizes = Vec::new();
    for level in ["0", "9"] {
        let file = dir.path(&format!("level{level}.dump"));
        run(&db, &["backup", "--out", s(&file), "--compress", level]).ok();
        scratch_dropped(&db, &verified_ok(&db, &file));
        sizes.push(std::fs::metadata(&file).unwrap().len());
    }
    assert!(
        sizes[0] > sizes[1],
        "level 0 {} vs level 9 {}",
        sizes[0],
        sizes[1]
    );
    let file = dir.path("bad.dump");
    run(&db, &["backup", "--out", s(&file), "--compress", "10"]).expect_code(2);
    assert!(!file.exists());
}

/// The real pg_dump, as `backup` finds it: on PATH, else under /usr/lib/postgresql.
fn real_pg_dump() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("pg_dump"))
        .find(|p| p.is_file());
    on_path
        .or_else(|| {
            let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
                .ok()?
                .flatten()
                .map(|e| e.path().join("bin/pg_dump"))
                .filter(|p| p.is_file())
                .collect();
            found.sort();
            found.pop()
        })
        .expect("pg_dump")
}

/// The dump holds password and token hashes: it is created 0600 before pg_dump writes a
/// byte (a pg_dump in front of the real one records the mode of the file it is handed), and
/// stays 0600, under a umask of 0, over a leftover `.partial` that was world-readable, and
/// with `--force` over a world-readable file.
#[tokio::test]
async fn the_dump_is_private_from_the_start() {
    use std::os::unix::fs::PermissionsExt as _;
    let (db, dir, _) = with_content("mode").await;
    let bin_dir = dir.path("bin");
    std::fs::create_dir_all(&bin_dir).unwrap();
    let seen = dir.path("mode-seen");
    let fake = bin_dir.join("pg_dump");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\nfor a in \"$@\"; do case \"$a\" in --file=*) f=\"${{a#--file=}}\";; esac; done\n\
             stat -c %a \"$f\" > '{}' 2>/dev/null || echo missing > '{}'\nexec '{}' \"$@\"\n",
            s(&seen),
            s(&seen),
            s(&real_pg_dump())
        ),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        s(&bin_dir),
        std::env::var("PATH").unwrap_or_default()
    );
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;

    let file = dir.path("private.dump");
    let partial = dir.path("private.dump.partial");
    std::fs::write(&partial, b"left over").unwrap();
    std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o644)).unwrap();
    let backup = |extra: &[&str]| {
        let mut c = std::process::Command::new("sh");
        for v in DB_ENV {
            c.env_remove(v);
        }
        c.env("PATH", &path)
            .args(["-c", "umask 0; exec \"$0\" \"$@\""])
            .arg(env!("CARGO_BIN_EXE_admin-cli"))
            .args(["--database-url", db.config().url_with_password()])
            .args(["backup", "--out", s(&file)])
            .args(extra);
        output(c, None)
    };
    backup(&[]).ok();
    assert_eq!(std::fs::read_to_string(&seen).unwrap().trim(), "600");
    assert_eq!(mode(&file), 0o600);
    assert!(!partial.exists());
    verified_ok(&db, &file);

    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::remove_file(&seen).unwrap();
    backup(&["--force"]).ok();
    assert_eq!(std::fs::read_to_string(&seen).unwrap().trim(), "600");
    assert_eq!(mode(&file), 0o600);
}
