//! The worker survives a database restart while idle: its listener reconnects, its pool
//! replaces dead connections, and new work is picked up. Uses a private PostgreSQL server
//! (the shared one cannot be restarted under other tests), started from the system's server
//! binaries like scripts/test does.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use db::enums::{AuthProvider, InputType, JobState, Platform, Role, SimType};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn pg_bin(name: &str) -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.flatten().map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    dirs.sort();
    dirs.into_iter()
        .rev()
        .map(|d| d.join(name))
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!("no PostgreSQL server binaries ({name}): install the Debian package postgresql")
        })
}

fn as_owner(cmd: &Path) -> Command {
    // initdb and postgres refuse to run as root.
    if std::env::var("USER").as_deref() == Ok("root") || unsafe_is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(cmd);
        c
    } else {
        Command::new(cmd)
    }
}

fn unsafe_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

struct PrivatePg {
    dir: PathBuf,
    port: u16,
}

impl PrivatePg {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = std::env::temp_dir().join(format!("simtest-pg-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        if unsafe_is_root() {
            assert!(Command::new("chown")
                .arg("postgres")
                .arg(&dir)
                .status()
                .unwrap()
                .success());
        }
        let ok = as_owner(&pg_bin("initdb"))
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "-D"])
            .arg(dir.join("data"))
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(ok.success(), "initdb failed");
        let pg = Self { dir, port };
        pg.ctl("start");
        pg
    }

    fn ctl(&self, action: &str) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.display()
        );
        let mut c = as_owner(&pg_bin("pg_ctl"));
        c.arg("-D")
            .arg(self.dir.join("data"))
            .args(["-w", "-t", "60", "-m", "fast", "-l"])
            .arg(self.dir.join("log"));
        if action == "start" {
            c.args(["-o", &opts]);
        }
        let ok = c.arg(action).stdout(Stdio::null()).status().unwrap();
        assert!(ok.success(), "pg_ctl {action} failed");
    }

    fn config(&self) -> db::DbConfig {
        db::DbConfig::from_url(format!(
            "postgres://postgres@127.0.0.1:{}/postgres",
            self.port
        ))
        .unwrap()
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        let _ = as_owner(&pg_bin("pg_ctl"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn submit_and_wait(config: &db::DbConfig, user_id: i64, limit: Duration) -> Duration {
    let mut conn = db::connect(config).await.unwrap();
    let sim = db::simulations::create_with_tasks(
        &mut conn,
        &db::simulations::NewSimulation {
            user_id,
            title: String::new(),
            platform: Platform::Direct,
            input_type: InputType::Editor,
            sim_type: SimType::Builtin,
            ntasks: 2,
            primaries: 200,
            cluster_id: None,
            sbatch_options: vec![],
            max_attempts: 3,
        },
        None,
    )
    .await
    .unwrap();
    let t = Instant::now();
    while db::simulations::get(&mut conn, sim.id)
        .await
        .unwrap()
        .job_state
        != JobState::Completed
    {
        assert!(
            t.elapsed() < limit,
            "simulation not completed after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    t.elapsed()
}

#[tokio::test]
async fn the_worker_reconnects_after_a_database_restart_and_takes_new_work() {
    let pg = PrivatePg::start();
    let config = pg.config();
    db::migrate::run_pending(&config).await.unwrap();
    let mut conn = db::connect(&config).await.unwrap();
    let user = db::users::create(
        &mut conn,
        &db::models::NewUser {
            username: "u",
            auth_provider: AuthProvider::Local,
            password_hash: None,
            role: Role::User,
        },
    )
    .await
    .unwrap();
    drop(conn);

    // Polling is slowed to a minute: only notifications (and the reconnect) can wake it.
    let mut worker = Command::new(env!("CARGO_BIN_EXE_worker"))
        .args([
            "--database-url",
            config.url_with_password(),
            "--handler",
            "sleep:20",
            "--poll-secs",
            "60",
        ])
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(worker.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.contains("ready"));

    submit_and_wait(&config, user.id, Duration::from_secs(10)).await;

    pg.ctl("stop");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        worker.try_wait().unwrap().is_none(),
        "the worker must survive the outage"
    );
    pg.ctl("start");

    let took = submit_and_wait(&config, user.id, Duration::from_secs(20)).await;
    eprintln!("new work after the restart completed in {took:?}");
    let _ = worker.kill();
    let _ = worker.wait();
}
