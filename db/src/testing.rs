//! Test support: every test gets its own fresh database, cloned from a migrated template.
//!
//! The server comes from `TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`);
//! the database named there is only used to create and drop the test databases. The template is
//! named after a hash of `migrations/`, so a changed migration gets a new template. It is built
//! once, under an advisory lock, by whichever test process gets there first (nextest runs each
//! test in its own process).
#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use crate::config::DbConfig;
use crate::pool::{build_pool, connect, Conn, Pool, PoolOptions};
use diesel::sql_types::BigInt;
use diesel_async::RunQueryDsl;
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

const TEMPLATE_LOCK_KEY: i64 = 0x73_69_6d_74_6d_70; // "simtmp"

/// The admin connection for creating and dropping test databases.
pub fn server_config() -> DbConfig {
    let url = std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let c = DbConfig::from_url(url).expect("TEST_DATABASE_URL must be a postgres:// URL");
    if c.dbname().is_empty() {
        c.with_dbname("postgres")
    } else {
        c
    }
}

fn migrations_hash() -> String {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations");
    let mut files: Vec<_> = walk(&dir);
    files.sort();
    let mut h = Sha256::new();
    for f in files {
        h.update(f.strip_prefix(&dir).unwrap().to_string_lossy().as_bytes());
        h.update(std::fs::read(&f).unwrap());
    }
    h.finalize()[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)
        .expect("migrations/ is readable")
        .flatten()
    {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

async fn exec(conn: &mut Conn, sql: &str) -> Result<usize, diesel::result::Error> {
    diesel::sql_query(sql).execute(conn).await
}

async fn database_exists(conn: &mut Conn, name: &str) -> bool {
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let rows: Vec<N> =
        diesel::sql_query("SELECT count(*) AS n FROM pg_database WHERE datname = $1")
            .bind::<diesel::sql_types::Text, _>(name)
            .load(conn)
            .await
            .expect("query pg_database");
    rows.iter().map(|r| r.n).sum::<i64>() > 0
}

async fn ensure_template(admin: &mut Conn, server: &DbConfig) -> String {
    let name = format!("simtest_tmpl_{}", migrations_hash());
    if database_exists(admin, &name).await {
        return name;
    }
    diesel::sql_query("SELECT pg_advisory_lock($1)")
        .bind::<BigInt, _>(TEMPLATE_LOCK_KEY)
        .execute(admin)
        .await
        .expect("advisory lock");
    if !database_exists(admin, &name).await {
        let building = format!("{name}_building");
        exec(
            admin,
            &format!("DROP DATABASE IF EXISTS \"{building}\" WITH (FORCE)"),
        )
        .await
        .expect("drop stale template");
        exec(admin, &format!("CREATE DATABASE \"{building}\""))
            .await
            .expect("create template");
        crate::migrate::run_pending(&server.with_dbname(&building))
            .await
            .expect("migrate template");
        exec(
            admin,
            &format!("ALTER DATABASE \"{building}\" RENAME TO \"{name}\""),
        )
        .await
        .expect("rename template");
        exec(
            admin,
            &format!("ALTER DATABASE \"{name}\" IS_TEMPLATE true"),
        )
        .await
        .expect("mark template");
    }
    diesel::sql_query("SELECT pg_advisory_unlock($1)")
        .bind::<BigInt, _>(TEMPLATE_LOCK_KEY)
        .execute(admin)
        .await
        .expect("advisory unlock");
    name
}

/// A private database that is dropped when this value is.
pub struct TestDb {
    config: DbConfig,
    name: String,
    server: DbConfig,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn unique_name(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}_{}_{}_{nanos:x}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

impl TestDb {
    /// A fresh database with every migration applied.
    pub async fn new() -> Self {
        let server = server_config();
        let mut admin = connect(&server)
            .await
            .expect("cannot reach the test PostgreSQL: set TEST_DATABASE_URL or run scripts/test");
        let template = ensure_template(&mut admin, &server).await;
        let name = unique_name("simtest");
        let mut tries = 0;
        loop {
            match exec(
                &mut admin,
                &format!("CREATE DATABASE \"{name}\" TEMPLATE \"{template}\""),
            )
            .await
            {
                Ok(_) => break,
                // Another session is still connected to the template: wait and retry.
                Err(e) if tries < 50 && e.to_string().contains("being accessed by other users") => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("cannot create test database {name}: {e}"),
            }
        }
        Self {
            config: server.with_dbname(&name),
            name,
            server,
        }
    }

    /// A fresh database with no migrations applied.
    pub async fn empty() -> Self {
        let server = server_config();
        let mut admin = connect(&server)
            .await
            .expect("cannot reach the test PostgreSQL");
        let name = unique_name("simtest_empty");
        exec(&mut admin, &format!("CREATE DATABASE \"{name}\""))
            .await
            .expect("create empty test database");
        Self {
            config: server.with_dbname(&name),
            name,
            server,
        }
    }

    /// How to connect to this database.
    pub fn config(&self) -> &DbConfig {
        &self.config
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// One new connection.
    pub async fn conn(&self) -> Conn {
        connect(&self.config)
            .await
            .expect("connect to test database")
    }

    /// A small pool.
    pub async fn pool(&self) -> Pool {
        build_pool(
            &self.config,
            &PoolOptions {
                max_size: 4,
                ..PoolOptions::default()
            },
        )
        .await
        .expect("pool for test database")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if std::env::var_os("KEEP_TEST_DB").is_some() {
            eprintln!("keeping test database {}", self.name);
            return;
        }
        let server = self.server.clone();
        let name = self.name.clone();
        // Drop runs inside the test's runtime; use a thread with a runtime of its own.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                if let Ok(mut admin) = connect(&server).await {
                    let _ = exec(
                        &mut admin,
                        &format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
                    )
                    .await;
                }
            });
        })
        .join();
    }
}

/// The id of the local user `name`, created (without a password) if missing.
pub async fn user(conn: &mut Conn, name: &str) -> i64 {
    use crate::enums::{AuthProvider, Role};
    match crate::users::get(conn, name, AuthProvider::Local).await {
        Ok(u) => u.id,
        Err(_) => {
            crate::users::create(
                conn,
                &crate::models::NewUser {
                    username: name,
                    auth_provider: AuthProvider::Local,
                    password_hash: None,
                    role: Role::User,
                },
            )
            .await
            .expect("create test user")
            .id
        }
    }
}

/// A direct simulation of `ntasks` tasks for `user_id`, with 3 attempts per task; the input
/// type follows the simulator (files for SHIELD-HIT12A, editor JSON otherwise).
pub fn new_simulation(
    user_id: i64,
    sim_type: crate::enums::SimType,
    ntasks: i32,
    primaries: i64,
) -> crate::simulations::NewSimulation {
    use crate::enums::{InputType, Platform, SimType};
    crate::simulations::NewSimulation {
        user_id,
        title: String::new(),
        platform: Platform::Direct,
        input_type: if sim_type == SimType::Shieldhit {
            InputType::Files
        } else {
            InputType::Editor
        },
        sim_type,
        ntasks,
        primaries,
        cluster_id: None,
        sbatch_options: vec![],
        max_attempts: 3,
    }
}

/// Submits a simulation (with an optional stored input) for the test user "owner" and
/// returns its id.
pub async fn submit(
    conn: &mut Conn,
    new: crate::simulations::NewSimulation,
    input: Option<&crate::inputs::SimulationInput>,
) -> i64 {
    let encoded = input.map(|i| i.encode().expect("encode input"));
    crate::simulations::create_with_tasks(
        conn,
        &new,
        encoded.as_ref().map(|(d, n)| (d.as_slice(), *n)),
    )
    .await
    .expect("create simulation")
    .id
}
