//! Helpers for end-to-end tests that start the workspace's real binaries.

use std::path::PathBuf;
use std::process::{Command, Output};

/// The path of a workspace binary (`admin-cli`, `sim-api`, `worker`) built by the same
/// `cargo test`/`cargo nextest` run: it sits next to the `deps/` folder of this test executable.
/// `SIM_BIN_DIR` overrides the folder.
pub fn bin_path(name: &str) -> PathBuf {
    let dir = match std::env::var_os("SIM_BIN_DIR") {
        Some(d) => PathBuf::from(d),
        None => {
            let exe = std::env::current_exe().unwrap_or_default();
            // target/<profile>/deps/<test-exe> -> target/<profile>; a binary of this crate
            // (`chaos`) sits in target/<profile> itself.
            let dir = exe.parent().map(PathBuf::from).unwrap_or_default();
            if dir.ends_with("deps") {
                dir.parent().map(PathBuf::from).unwrap_or_default()
            } else {
                dir
            }
        }
    };
    dir.join(name)
}

/// What a finished process printed, and how it ended.
#[derive(Debug)]
pub struct Run {
    /// Exit code (-1 when killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Self {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// A command for a workspace binary with a clean database environment: no `DB_*` or
/// `DATABASE_URL` from the caller's shell.
pub fn command(name: &str) -> Command {
    let path = bin_path(name);
    assert!(
        path.exists(),
        "{} is not built: run the tests through `cargo test --workspace` or scripts/test",
        path.display()
    );
    let mut c = Command::new(path);
    for v in db::config::ENV_VARS {
        c.env_remove(v);
    }
    c
}
