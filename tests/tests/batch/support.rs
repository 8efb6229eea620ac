//! One batch scenario's world: a database, `sim-api`, a direct `worker`, a cluster registered
//! with the real `admin-cli`, and the real `worker batch` driving it.

use db::testing::TestDb;
use diesel::sql_types::{BigInt, Integer, Nullable, Text};
use diesel_async::RunQueryDsl;
use proto::v1 as pb;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tests::{authed, Proc, SimClient};

/// How the batch component reaches SLURM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// sbatch on this host.
    Local,
    /// Over SSH to the loopback sshd.
    Ssh,
}

/// A task as the tests check it.
#[derive(Debug, Clone, diesel::QueryableByName)]
pub struct TaskRow {
    #[diesel(sql_type = Integer)]
    pub task_index: i32,
    #[diesel(sql_type = Text)]
    pub state: String,
    #[diesel(sql_type = Integer)]
    pub attempts: i32,
    #[diesel(sql_type = BigInt)]
    pub simulated: i64,
    #[diesel(sql_type = Nullable<Text>)]
    pub last_error: Option<String>,
}

#[derive(diesel::QueryableByName)]
struct Sim {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    job_state: String,
    #[diesel(sql_type = Nullable<Text>)]
    job_dir: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    batch_owner: Option<String>,
}

pub struct Batch {
    db: TestDb,
    url: String,
    via: Via,
    cluster: String,
    work_dir: PathBuf,
    control_dir: PathBuf,
    sims: SimClient,
    token: String,
    component: Option<Proc>,
    restarts: u32,
    env: Vec<(String, String)>,
    _api: Proc,
    _direct: Proc,
}

fn unique() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{}-{}", std::process::id(), nanos % 1_000_000_000)
}

impl Batch {
    /// Everything up, with a cluster whose elements in `failing` (indices) exit 1 before the
    /// worker runs, as a broken node would.
    pub async fn start(via: Via, name: &str, failing: &[&str]) -> Self {
        Self::start_with(via, name, failing, &[]).await
    }

    /// [`Batch::start`] with `env` (such as `SHIELDHIT_PATH`) for the direct worker and the
    /// batch component, whose elements inherit it through `sbatch`.
    pub async fn start_with(
        via: Via,
        name: &str,
        failing: &[&str],
        env: &[(&str, String)],
    ) -> Self {
        tests::require_slurm();
        let db = TestDb::new().await;
        let url = db.config().url_with_password().to_owned();
        let tag = format!("{name}-{via:?}-{}", unique()).to_lowercase();
        let work_dir = PathBuf::from("/var/tmp/sim-batch-tests").join(&tag);
        std::fs::create_dir_all(&work_dir).unwrap();
        let control_dir = std::env::temp_dir().join(format!("sbt-{}", unique()));
        std::fs::create_dir_all(&control_dir).unwrap();
        let worker = tests::bin_path("worker");
        let worker_path = if failing.is_empty() {
            worker.display().to_string()
        } else {
            let wrapper = work_dir.join("node-worker.sh");
            let cases = failing.join("|");
            std::fs::write(
                &wrapper,
                format!(
                    "#!/bin/sh\ncase \"$SLURM_ARRAY_TASK_ID\" in {cases}) \
                     echo 'node fault staged by the test' >&2; exit 1;; esac\nexec '{}' \"$@\"\n",
                    worker.display()
                ),
            )
            .unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
            wrapper.display().to_string()
        };
        let cluster = format!("c-{}", tag.replace('_', "-"));
        let mut add = tests::command("admin-cli");
        add.args(["--database-url", &url, "add-cluster", &cluster])
            .arg("--work-dir")
            .arg(&work_dir)
            .args(["--worker-path", &worker_path]);
        if via == Via::Ssh {
            let env = tests::sshd_env();
            add.args([
                "--host",
                &env["SIM_SSH_HOST"],
                "--ssh-port",
                &env["SIM_SSH_PORT"],
            ])
            .args([
                "--ssh-user",
                &env["SIM_SSH_USER"],
                "--ssh-key",
                &env["SIM_SSH_KEY"],
            ])
            .args(["--known-hosts", &env["SIM_SSH_KNOWN_HOSTS"]]);
        }
        let out = add.output().unwrap();
        assert!(out.status.success(), "add-cluster: {out:?}");
        tests::add_user(&url, "alice", "pw-alice");
        let (api, addr) = tests::start_api(&url);
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        let mut worker_cmd = tests::command("worker");
        worker_cmd
            .args([
                "--database-url",
                &url,
                "--concurrency",
                "2",
                "--poll",
                "0.5",
            ])
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env("RUST_LOG", "error")
            .stderr(Stdio::null());
        let direct = tests::spawn_worker(&mut worker_cmd);
        let (sims, token) = tests::login(&addr, "alice", "pw-alice").await.unwrap();
        let mut b = Self {
            db,
            url,
            via,
            cluster,
            work_dir,
            control_dir,
            sims,
            token,
            component: None,
            restarts: 0,
            env,
            _api: api,
            _direct: direct,
        };
        b.restart_component();
        b
    }

    /// Starts `worker batch` for this cluster (polls every 0.25 s, leases of 3 s), with a new
    /// name each time, its log in the work directory.
    pub fn restart_component(&mut self) {
        self.restarts += 1;
        let log = std::fs::File::create(self.work_dir.join(format!("batch-{}.log", self.restarts)))
            .unwrap();
        let mut cmd = tests::command("worker");
        cmd.args([
            "batch",
            "--database-url",
            &self.url,
            "--cluster",
            &self.cluster,
        ])
        .args(["--poll", "0.25", "--lease", "3"])
        .args(["--batch-id", &format!("batch-test-{}", self.restarts)])
        .arg("--control-dir")
        .arg(&self.control_dir)
        .envs(self.env.iter().map(|(k, v)| (k, v)))
        .env("RUST_LOG", "info")
        .stderr(Stdio::from(log));
        let (proc, line) = tests::spawn(&mut cmd).unwrap();
        assert!(line.contains("ready"), "worker batch: {line:?}");
        self.component = Some(proc);
    }

    /// `kill -9` of the batch component.
    pub fn kill_component(&mut self) {
        if let Some(mut p) = self.component.take() {
            p.0.kill().unwrap();
            p.0.wait().unwrap();
        }
    }

    /// A batch Submit to this cluster.
    pub async fn submit(
        &self,
        editor: serde_json::Value,
        ntasks: i32,
        primaries: i64,
        options: &[&str],
    ) -> Result<String, tonic::Status> {
        self.submit_request(
            tests::builtin_request("batch e2e", &editor.to_string(), ntasks, primaries),
            options,
        )
        .await
    }

    /// `r` as a batch Submit to this cluster, with `options`.
    pub async fn submit_request(
        &self,
        mut r: pb::SubmitRequest,
        options: &[&str],
    ) -> Result<String, tonic::Status> {
        r.platform = Some(pb::submit_request::Platform::Batch(pb::BatchPlatform {
            cluster: self.cluster.clone(),
            sbatch_options: options.iter().map(|s| s.to_string()).collect(),
        }));
        tests::submit(&mut self.sims.clone(), &self.token, r).await
    }

    /// The same Submit, run by the direct worker.
    pub async fn submit_direct(
        &self,
        editor: serde_json::Value,
        ntasks: i32,
        primaries: i64,
    ) -> String {
        self.submit_direct_request(tests::builtin_request(
            "batch e2e",
            &editor.to_string(),
            ntasks,
            primaries,
        ))
        .await
    }

    /// `r` as a direct Submit.
    pub async fn submit_direct_request(&self, r: pb::SubmitRequest) -> String {
        tests::submit(&mut self.sims.clone(), &self.token, r)
            .await
            .unwrap()
    }

    pub async fn cancel(&self, job: &str) {
        let r = pb::CancelRequest { job_id: job.into() };
        let mut sims = self.sims.clone();
        sims.cancel(authed(r, &self.token)).await.unwrap();
    }

    pub async fn delete(&self, job: &str) {
        let r = pb::DeleteRequest { job_id: job.into() };
        let mut sims = self.sims.clone();
        sims.delete(authed(r, &self.token)).await.unwrap();
    }

    async fn sim(&self, job: &str) -> Sim {
        let mut c = self.db.conn().await;
        diesel::sql_query(
            "SELECT id, job_state, job_dir, batch_owner FROM simulations WHERE job_id = $1::uuid",
        )
        .bind::<Text, _>(job)
        .get_result(&mut c)
        .await
        .unwrap()
    }

    pub async fn tasks(&self, job: &str) -> Vec<TaskRow> {
        let id = self.sim(job).await.id;
        let mut c = self.db.conn().await;
        diesel::sql_query(
            "SELECT task_index, task_state AS state, attempts, simulated_primaries AS simulated,
                    last_error FROM tasks WHERE simulation_id = $1 ORDER BY task_index",
        )
        .bind::<BigInt, _>(id)
        .load(&mut c)
        .await
        .unwrap()
    }

    /// Primaries of the completed tasks.
    pub async fn simulated(&self, job: &str) -> i64 {
        self.tasks(job)
            .await
            .iter()
            .filter(|t| t.state == "COMPLETED")
            .map(|t| t.simulated)
            .sum()
    }

    pub async fn job_dir(&self, job: &str) -> String {
        self.sim(job).await.job_dir.expect("a job directory")
    }

    pub async fn owner(&self, job: &str) -> Option<String> {
        self.sim(job).await.batch_owner
    }

    /// The tasks' logs, by task index.
    pub async fn task_logs(&self, job: &str) -> Vec<(i32, String)> {
        let id = self.sim(job).await.id;
        let mut c = self.db.conn().await;
        db::logs::list(&mut c, id)
            .await
            .unwrap()
            .into_iter()
            .filter_map(|l| {
                Some((
                    l.task_index?,
                    String::from_utf8_lossy(&l.content).into_owned(),
                ))
            })
            .collect()
    }

    pub async fn exists(&self, path: &str) -> bool {
        Path::new(path).exists()
    }

    /// The collect job's marker appears (it runs after the whole array).
    pub async fn eventually_collected(&self, dir: &str) -> bool {
        let marker = format!("{dir}/collected");
        self.wait_for(60, "the collect job's marker", || async {
            Path::new(&marker).exists()
        })
        .await;
        true
    }

    /// Waits up to `secs` for `cond`, panicking with `what` and the component's log.
    pub async fn wait_for<F, Fut>(&self, secs: u64, what: &str, mut cond: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = bool>,
    {
        let end = Instant::now() + Duration::from_secs(secs);
        while !cond().await {
            assert!(
                Instant::now() < end,
                "waited {secs} s for {what}\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits for a final state and returns it.
    pub async fn wait_end(&self, job: &str, secs: u64) -> String {
        let end = Instant::now() + Duration::from_secs(secs);
        loop {
            let s = self.sim(job).await.job_state;
            if ["COMPLETED", "FAILED", "CANCELED"].contains(&s.as_str()) || Instant::now() > end {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits for the simulation's end, which must be `state` (else panics with the tasks and
    /// the component's log).
    pub async fn ends(&self, job: &str, secs: u64, state: &str) {
        let got = self.wait_end(job, secs).await;
        assert_eq!(got, state, "{}", self.diagnose(job).await);
    }

    /// Waits until one of the simulation's tasks runs.
    pub async fn wait_running(&self, job: &str, secs: u64) {
        self.wait_for(secs, "a running element", || async {
            self.tasks(job).await.iter().any(|t| t.state == "RUNNING")
        })
        .await;
    }

    /// The simulation's jobs that `squeue` still lists as pending or running.
    pub fn squeue_jobs(&self, job: &str) -> Vec<String> {
        let out = std::process::Command::new("squeue")
            .args(["-h", "-o", "%i", &format!("--name=sim-{job}")])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// The merged pages of two simulations agree bin by bin (to rounding: the tasks may
    /// have been folded in another order).
    pub async fn assert_same_results(&self, a: &str, b: &str) {
        let (a, b) = (self.sim(a).await.id, self.sim(b).await.id);
        let mut c = self.db.conn().await;
        let pa = db::results::read_all(&mut c, a).await.unwrap();
        let pb = db::results::read_all(&mut c, b).await.unwrap();
        assert_eq!(pa.len(), pb.len());
        assert!(!pa.is_empty());
        for (x, y) in pa.iter().zip(&pb) {
            assert_eq!((&x.estimator, x.page_number), (&y.estimator, y.page_number));
            assert_eq!(x.values.len(), y.values.len());
            for (i, (u, v)) in x.values.iter().zip(&y.values).enumerate() {
                let tol = 1e-9 * u.abs().max(v.abs()).max(1e-300);
                assert!((u - v).abs() <= tol, "{} bin {i}: {u} vs {v}", x.estimator);
            }
        }
    }

    /// The component's log and the tasks, for a failed assertion.
    pub async fn diagnose(&self, job: &str) -> String {
        format!("tasks: {:?}\n{}", self.tasks(job).await, self.log_tail())
    }

    /// What the `n`-th batch component (from 1) logged.
    /// Ends every other connection to the test database (`pg_terminate_backend`, what a
    /// PostgreSQL restart does to the services): how many there were.
    pub async fn terminate_backends(&self) -> i64 {
        let mut c = self.db.conn().await;
        tests::count(
            &mut c,
            "SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity
              WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .await
        .unwrap()
    }

    pub fn component_log(&self, n: u32) -> String {
        std::fs::read_to_string(self.work_dir.join(format!("batch-{n}.log"))).unwrap_or_default()
    }

    fn log_tail(&self) -> String {
        let mut s = String::new();
        for i in 1..=self.restarts {
            let text = std::fs::read_to_string(self.work_dir.join(format!("batch-{i}.log")))
                .unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            s.push_str(&format!("--- worker batch #{i} (last 40 lines)\n"));
            s.push_str(&lines[lines.len().saturating_sub(40)..].join("\n"));
            s.push('\n');
        }
        s
    }

    /// The distinct counts of established connections to the sshd held by this component (its
    /// control master, or an ssh it started itself), sampled every 2 ms for `d`.
    pub fn ssh_connections_during(&self, d: Duration) -> Vec<usize> {
        assert_eq!(self.via, Via::Ssh);
        let env = tests::sshd_env();
        let port = env["SIM_SSH_PORT"].clone();
        let component = self.component.as_ref().unwrap().0.id();
        let socket = std::fs::read_dir(&self.control_dir)
            .unwrap()
            .next()
            .expect("a control socket")
            .unwrap()
            .path();
        let check = std::process::Command::new("ssh")
            .arg("-S")
            .arg(&socket)
            .args(["-O", "check", "127.0.0.1"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&check.stderr);
        let master: u32 = text
            .split("pid=")
            .nth(1)
            .and_then(|t| t.split(')').next()?.parse().ok())
            .unwrap_or_else(|| panic!("ssh -O check: {text}"));
        let end = Instant::now() + d;
        let mut seen = std::collections::BTreeSet::new();
        while Instant::now() < end {
            let n = tests::connection_owners(&port)
                .into_iter()
                .filter(|&p| p == master || tests::parent_of(p) == Some(component))
                .count();
            seen.insert(n);
            std::thread::sleep(Duration::from_millis(2));
        }
        seen.into_iter().collect()
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        self.kill_component();
        // Masters outlive a killed component (for `slurm::ssh::MASTER_IDLE_LIMIT`): stop them.
        if let Ok(entries) = std::fs::read_dir(&self.control_dir) {
            for e in entries.flatten() {
                let _ = std::process::Command::new("ssh")
                    .arg("-S")
                    .arg(e.path())
                    .args(["-O", "exit", "127.0.0.1"])
                    .stderr(Stdio::null())
                    .status();
            }
        }
        // Jobs left by a failed test: those whose working directory is under ours.
        if let Ok(out) = std::process::Command::new("squeue")
            .args(["-h", "-o", "%A|%Z"])
            .output()
        {
            let root = self.work_dir.display().to_string();
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                if let Some((id, dir)) = line.split_once('|') {
                    if dir.starts_with(&root) {
                        let _ = std::process::Command::new("scancel").arg(id).status();
                    }
                }
            }
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.work_dir);
        }
        let _ = std::fs::remove_dir_all(&self.control_dir);
    }
}
