//! Helpers for end-to-end tests that start the workspace's real binaries.

use proto::v1 as pb;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
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

/// Runs the workspace binary `name` with `args` to its end: its exit status and output.
pub fn run_bin(name: &str, args: &[&str]) -> Output {
    match command(name).args(args).output() {
        Ok(out) => out,
        Err(e) => panic!("cannot run {name}: {e}"),
    }
}

/// Starts the workspace binary `name` with `--database-url url` and `args` (logging only
/// errors, stderr discarded unless `RUST_LOG` is set by the caller's `args` handling) and
/// waits for its first line of stdout, its "ready" or "listening on" line.
pub fn start(name: &str, url: &str, args: &[&str]) -> std::io::Result<(Proc, String)> {
    let mut cmd = command(name);
    cmd.arg("--database-url")
        .arg(url)
        .args(args)
        .env("RUST_LOG", "error")
        .stderr(Stdio::null());
    spawn(&mut cmd)
}

/// Spawns `cmd` with its stdout piped and waits for its first line of stdout (a binary's
/// "ready" or "listening on" line), returned trimmed; the child is killed when the [`Proc`]
/// is dropped.
pub fn spawn(cmd: &mut Command) -> std::io::Result<(Proc, String)> {
    let mut child = cmd.stdout(Stdio::piped()).spawn()?;
    let out = child
        .stdout
        .take()
        .ok_or_else(|| std::io::Error::other("no stdout"))?;
    let proc = Proc(child);
    let mut line = String::new();
    BufReader::new(out).read_line(&mut line)?;
    Ok((proc, line.trim().to_string()))
}

/// [`spawn`] for a `worker`, whose first line says it is "ready"; panics when it cannot be
/// started or says something else.
pub fn spawn_worker(cmd: &mut Command) -> Proc {
    ready(spawn(cmd))
}

/// [`start`] for the workspace's `worker` binary (see [`spawn_worker`]).
pub fn start_worker(url: &str, args: &[&str]) -> Proc {
    ready(start("worker", url, args))
}

fn ready(started: std::io::Result<(Proc, String)>) -> Proc {
    match started {
        Ok((proc, line)) if line.contains("ready") => proc,
        Ok((_, line)) => panic!("the worker did not start: {line:?}"),
        Err(e) => panic!("cannot start the worker: {e}"),
    }
}

/// The real pymchelper `convertmc` (pinned; `scripts/test` installs it and sets `CONVERTMC`).
/// Panics with a hint when it is not there: tests never run on a stand-in converter.
pub fn convertmc() -> PathBuf {
    let path = std::env::var_os("CONVERTMC")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/pymchelper-2.9.6/bin/convertmc")
        });
    assert!(
        path.is_file(),
        "pymchelper's convertmc is not at {} (run scripts/test, which installs it, or set \
         CONVERTMC)",
        path.display()
    );
    path
}

/// The Python of pymchelper's virtualenv (pinned, with its `TopasReader`): `PYMCHELPER_PYTHON`
/// (`scripts/test` sets it), else the `python` beside [`convertmc`]. Panics with a hint when
/// it is not there: the tests that compare with pymchelper run it, never skip it.
pub fn pymchelper_python() -> PathBuf {
    let path = match std::env::var_os("PYMCHELPER_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => convertmc().with_file_name("python"),
    };
    assert!(
        path.is_file(),
        "pymchelper's python is not at {} (run scripts/test, which installs pymchelper and sets \
         PYMCHELPER_PYTHON, or set PYMCHELPER_PYTHON to a python with pymchelper 2.9.6)",
        path.display()
    );
    path
}

/// The loopback sshd's settings, as `scripts/sshd-loopback env` prints them (`SIM_SSH_HOST`,
/// `SIM_SSH_PORT`, `SIM_SSH_USER`, `SIM_SSH_KEY`, `SIM_SSH_KNOWN_HOSTS`); panics when the
/// script cannot run.
pub fn sshd_env() -> std::collections::HashMap<String, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/sshd-loopback");
    let out = match Command::new(&script).arg("env").output() {
        Ok(o) => o,
        Err(e) => panic!("{}: {e}", script.display()),
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Panics, saying what to do, unless a SLURM answers here (`sinfo`).
pub fn require_slurm() {
    let ok = Command::new("sinfo")
        .arg("-h")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "no SLURM answers here: run `scripts/slurm-single-node start` (as root) first"
    );
}

/// The owners' pids of the established TCP connections to local port `port` (`ss -Htnp`,
/// iproute2); panics without `ss`.
pub fn connection_owners(port: &str) -> Vec<u32> {
    let out = match Command::new("ss")
        .args([
            "-Htnp",
            "state",
            "established",
            &format!("( dport = :{port} )"),
        ])
        .output()
    {
        Ok(o) => o,
        Err(e) => panic!("ss (iproute2): {e}"),
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split("pid=").nth(1)?.split(',').next()?.parse().ok())
        .collect()
}

/// The parent of process `pid` (from `/proc/<pid>/stat`).
pub fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'.
    stat.rsplit(')')
        .next()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Runs the real `admin-cli add-user name --password password` against the database at
/// `url`; panics unless it succeeds.
pub fn add_user(url: &str, name: &str, password: &str) {
    match command("admin-cli")
        .arg("--database-url")
        .arg(url)
        .args(["add-user", name, "--password", password])
        .output()
    {
        Ok(out) => assert!(out.status.success(), "{out:?}"),
        Err(e) => panic!("cannot run admin-cli: {e}"),
    }
}

/// Starts the real `sim-api` on a free loopback port against the database at `url`: the
/// process and the address it listens on (`host:port`).
pub fn start_api(url: &str) -> (Proc, String) {
    match start("sim-api", url, &["--listen", "127.0.0.1:0"]) {
        Ok((proc, line)) => match line.strip_prefix("listening on ") {
            Some(addr) => {
                let addr = addr.to_string();
                (proc, addr)
            }
            None => panic!("sim-api did not start: {line:?}"),
        },
        Err(e) => panic!("cannot start sim-api: {e}"),
    }
}

/// The simulation client type of [`login`].
pub type SimClient =
    proto::v1::simulation_service_client::SimulationServiceClient<tonic::transport::Channel>;

/// A server stream of `T`, or the status of the call that failed to open it.
pub type Stream<T> = Result<tonic::Streaming<T>, tonic::Status>;

/// `Watch` of `job` as `tok`: the stream of its statuses, which ends at a final state.
pub async fn watch(s: &mut SimClient, job: &str, tok: &str) -> Stream<pb::SimulationStatus> {
    let request = pb::WatchRequest { job_id: job.into() };
    Ok(s.watch(authed(request, tok)).await?.into_inner())
}

/// `GetResults` of `job` as `tok` (final pages, or partial ones while it runs).
pub async fn get_results(s: &mut SimClient, job: &str, tok: &str) -> Stream<pb::ResultsChunk> {
    let request = pb::GetResultsRequest {
        job_id: job.into(),
        ..Default::default()
    };
    Ok(s.get_results(authed(request, tok)).await?.into_inner())
}

/// Follows `Watch` of `job` as `tok` until its stream ends at a final state, and returns
/// that state. Panics when the call fails or the stream goes quiet for 2 minutes.
pub async fn wait_final(s: &mut SimClient, job: &str, tok: &str) -> pb::JobState {
    let mut stream = match watch(s, job, tok).await {
        Ok(stream) => stream,
        Err(e) => panic!("Watch of {job} refused: {e}"),
    };
    let mut last = pb::JobState::Unspecified;
    loop {
        let next = tokio::time::timeout(std::time::Duration::from_secs(120), stream.message());
        match next.await {
            Err(_) => panic!("Watch of {job} went quiet for 2 minutes (last state {last:?})"),
            Ok(Err(e)) => panic!("Watch of {job} failed: {e}"),
            Ok(Ok(None)) => return last,
            Ok(Ok(Some(status))) => {
                if let Some(sim) = status.simulation {
                    last = pb::JobState::try_from(sim.job_state).unwrap_or(last);
                }
            }
        }
    }
}

/// The common start of an end-to-end test: a fresh test database holding the user `alice`
/// (password `pw-alice`, added by the real `admin-cli`), a real `sim-api` serving it, and
/// alice logged in to it: (database, the `sim-api` process, its address, client, token).
pub async fn alice_on_api() -> (db::testing::TestDb, Proc, String, SimClient, String) {
    let db = db::testing::TestDb::new().await;
    add_user(db.config().url_with_password(), "alice", "pw-alice");
    let (api, addr) = start_api(db.config().url_with_password());
    match login(&addr, "alice", "pw-alice").await {
        Ok((client, token)) => (db, api, addr, client, token),
        Err(e) => panic!("alice cannot log in to the new sim-api at {addr}: {e}"),
    }
}

/// A `Submit` request of a builtin simulation: `editor` is its editor JSON.
pub fn builtin_request(
    title: &str,
    editor: &str,
    ntasks: i32,
    primaries: i64,
) -> pb::SubmitRequest {
    pb::SubmitRequest {
        title: title.into(),
        sim_type: pb::SimType::Builtin as i32,
        input: Some(pb::submit_request::Input::EditorJson(editor.into())),
        ntasks,
        primaries,
        platform: None,
    }
}

/// `Submit` of `request` as `tok`: the new simulation's job id.
pub async fn submit(
    s: &mut SimClient,
    tok: &str,
    request: pb::SubmitRequest,
) -> Result<String, tonic::Status> {
    Ok(s.submit(authed(request, tok)).await?.into_inner().job_id)
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
) -> Result<(SimClient, String), Box<dyn std::error::Error + Send + Sync>> {
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
    Ok((SimClient::new(channel), token))
}

/// The bigint column `n` of the first row of `sql` (such as `SELECT count(*) AS n FROM
/// tasks`), 0 when it returns no rows.
pub async fn count(conn: &mut db::Conn, sql: &str) -> Result<i64, diesel::result::Error> {
    use diesel_async::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let rows: Vec<N> = diesel::sql_query(sql).load(conn).await?;
    Ok(rows.into_iter().next().map_or(0, |r| r.n))
}
