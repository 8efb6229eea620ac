//! A private PostgreSQL server for tests and fault drills that must stop, restart or kill the
//! server (the shared one cannot be restarted under other tests): started from the system's
//! server binaries (`initdb`, `pg_ctl`; as root, run as the `postgres` user), on a free
//! loopback port, with its data in a temporary folder removed when it is dropped.

// A test helper: it panics, naming the reason, when the server cannot be set up.
#![allow(clippy::expect_used)]

use crate::config::DbConfig;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The newest `/usr/lib/postgresql/*/bin/<name>`.
pub fn pg_bin(name: &str) -> PathBuf {
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

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// `cmd`, run as the `postgres` user when this process is root (initdb and postgres refuse
/// to run as root).
fn as_owner(cmd: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(cmd);
        c
    } else {
        Command::new(cmd)
    }
}

/// A running private server; stopped (immediately) and its folder removed on drop.
pub struct PrivatePg {
    dir: PathBuf,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl PrivatePg {
    /// Creates and starts a server (trust auth for `postgres`; `fsync=off`: scratch data).
    /// Panics with the reason when it cannot.
    pub fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let dir = std::env::temp_dir().join(format!("simtest-pg-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("the server's folder");
        if is_root() {
            let owned = Command::new("chown").arg("postgres").arg(&dir).status();
            assert!(owned.is_ok_and(|s| s.success()), "chown postgres failed");
        }
        let ok = as_owner(&pg_bin("initdb"))
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "-D"])
            .arg(dir.join("data"))
            .stdout(Stdio::null())
            .status();
        assert!(ok.is_ok_and(|s| s.success()), "initdb failed");
        let pg = Self { dir, port };
        pg.ctl("start");
        pg
    }

    /// Runs `pg_ctl ACTION` (`start`, `stop`, `restart`; fast shutdown, waiting up to 60 s).
    pub fn ctl(&self, action: &str) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            self.port,
            self.dir.display()
        );
        let mut c = as_owner(&pg_bin("pg_ctl"));
        c.arg("-D")
            .arg(self.dir.join("data"))
            .args(["-w", "-t", "60", "-m", "fast", "-l"])
            .arg(self.dir.join("log"));
        if action == "start" || action == "restart" {
            c.args(["-o", &opts]);
        }
        let ok = c.arg(action).stdout(Stdio::null()).status();
        assert!(ok.is_ok_and(|s| s.success()), "pg_ctl {action} failed");
    }

    /// The server's `postgres` database.
    pub fn config(&self) -> DbConfig {
        self.config_for("postgres")
    }

    /// The server's database `name`.
    pub fn config_for(&self, name: &str) -> DbConfig {
        DbConfig::from_url(format!(
            "postgres://postgres@127.0.0.1:{}/{name}",
            self.port
        ))
        .expect("a valid URL")
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
