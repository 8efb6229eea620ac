//! Helpers for end-to-end tests that start the workspace's real binaries.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};

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

/// A child process that is killed (and reaped) when dropped, however the test ends.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the workspace binary `name` with `--database-url url` and `args` (logging only
/// errors, stderr discarded unless `RUST_LOG` is set by the caller's `args` handling) and
/// waits for its first line of stdout, its "ready" or "listening on" line.
pub fn start(name: &str, url: &str, args: &[&str]) -> std::io::Result<(Proc, String)> {
    let mut child = command(name)
        .arg("--database-url")
        .arg(url)
        .args(args)
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let out = child
        .stdout
        .take()
        .ok_or_else(|| std::io::Error::other("no stdout"))?;
    let proc = Proc(child);
    let mut line = String::new();
    BufReader::new(out).read_line(&mut line)?;
    Ok((proc, line.trim().to_string()))
}

/// `msg` with `authorization: Bearer <token>`.
pub fn authed<T>(msg: T, token: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    if let Ok(v) = format!("Bearer {token}").parse() {
        r.metadata_mut().insert("authorization", v);
    }
    r
}

/// Connects to a `sim-api` at `addr` (`host:port`) and logs in as `username`: the simulation
/// client and the access token.
pub async fn login(
    addr: &str,
    username: &str,
    password: &str,
) -> Result<
    (
        proto::v1::simulation_service_client::SimulationServiceClient<tonic::transport::Channel>,
        String,
    ),
    Box<dyn std::error::Error + Send + Sync>,
> {
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    let token = proto::v1::auth_service_client::AuthServiceClient::new(channel.clone())
        .login(proto::v1::LoginRequest {
            username: username.into(),
            password: password.into(),
        })
        .await?
        .into_inner()
        .access_token;
    Ok((
        proto::v1::simulation_service_client::SimulationServiceClient::new(channel),
        token,
    ))
}
