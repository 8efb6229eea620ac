//! What the sim-api benches share: the real server in-process on a scratch database, a
//! logged-in user, authenticated requests and percentiles, a pgbench database to compare
//! against, the server's limits with or without its caches and lists from the environment.
#![allow(dead_code)]

#[path = "../../tests/common/fixtures.rs"]
mod fixtures;

use db::testing::TestDb;
use proto::v1::auth_service_client::AuthServiceClient;
use proto::v1::simulation_service_client::SimulationServiceClient;
use proto::v1::{GetRequest, LoginRequest, SimulationStatus};
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Channel, Endpoint};
use tonic::Request;

/// A setting from the environment, or `default`.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not valid")),
        _ => default,
    }
}

/// The server running in-process; stops (in-flight calls finish) when dropped.
pub struct Server {
    pub addr: SocketAddr,
    /// A handle on the server's pool, for its statistics.
    pub pool: db::Pool,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Server {
    /// Starts `sim_api::serve` on 127.0.0.1:0 with a pool of `pool_size` connections (as
    /// `sim-api --db-pool-size`). `nodelay` sets TCP_NODELAY on the listening socket, which
    /// Linux passes on to accepted sockets; `sim-api` itself binds a plain listener.
    pub async fn start(db: &TestDb, pool_size: u32, nodelay: bool) -> Self {
        Self::start_with(db, pool_size, nodelay, sim_api::Limits::default()).await
    }

    /// [`Server::start`] with these limits (e.g. caches turned off).
    pub async fn start_with(
        db: &TestDb,
        pool_size: u32,
        nodelay: bool,
        limits: sim_api::Limits,
    ) -> Self {
        let pool = db::build_pool(
            db.config(),
            &db::PoolOptions {
                max_size: pool_size,
                ..db::PoolOptions::default()
            },
        )
        .await
        .unwrap();
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        if nodelay {
            socket.set_nodelay(true).unwrap();
        }
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = socket.listen(1024).unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let served = pool.clone();
        let task = tokio::spawn(async move {
            sim_api::serve(served, limits, listener, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        Self {
            addr,
            pool,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// Stops the server and waits until it has stopped.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// `n` channels to `addr`, each its own HTTP/2 connection.
pub async fn channels(addr: SocketAddr, n: usize) -> Vec<Channel> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(
            Endpoint::from_shared(format!("http://{addr}"))
                .unwrap()
                .connect()
                .await
                .unwrap(),
        );
    }
    out
}

/// Creates the local user `name` with a password and logs in through the API; returns the
/// `authorization` metadata value (`Bearer <access token>`).
pub async fn login(db: &TestDb, channel: Channel, name: &str) -> MetadataValue<Ascii> {
    let password = "bench-password";
    fixtures::create_local_user(db, name, password, false).await;
    let pair = AuthServiceClient::new(channel)
        .login(LoginRequest {
            username: name.into(),
            password: password.into(),
        })
        .await
        .unwrap()
        .into_inner();
    format!("Bearer {}", pair.access_token).parse().unwrap()
}

/// Submits [`fixtures::builtin_submit`]`(title, ntasks, primaries)` over `channel` as
/// `auth`; the job id.
pub async fn submit(
    channel: Channel,
    auth: &MetadataValue<Ascii>,
    title: &str,
    ntasks: i32,
    primaries: i64,
) -> String {
    let req = fixtures::builtin_submit(title, ntasks, primaries);
    let mut sims = SimulationServiceClient::new(channel);
    sims.submit(authed(req, auth))
        .await
        .unwrap()
        .into_inner()
        .job_id
}

/// `Get` of `job` over `channel` as `auth`, which must succeed.
pub async fn get(channel: Channel, auth: &MetadataValue<Ascii>, job: &str) -> SimulationStatus {
    let req = GetRequest { job_id: job.into() };
    let mut sims = SimulationServiceClient::new(channel);
    sims.get(authed(req, auth)).await.unwrap().into_inner()
}

/// `msg` with the `authorization` metadata.
pub fn authed<T>(msg: T, auth: &MetadataValue<Ascii>) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut().insert("authorization", auth.clone());
    r
}

/// The bigint `n` of the one row that `sql` selects (values are formatted in: the benches
/// only pass ids and names they made).
pub async fn bigint(conn: &mut db::Conn, sql: &str) -> i64 {
    use diesel_async::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let row: N = diesel::sql_query(sql).get_result(conn).await.unwrap();
    row.n
}

/// The `q` quantile (nearest rank) of sorted values.
pub fn quantile<T: Copy>(sorted: &[T], q: f64) -> T {
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// Milliseconds.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A pgbench database of `scale` (`pgbench -i`) on the test server, dropped with this value.
pub struct PgBench {
    name: String,
    url: db::DbConfig,
    admin: db::DbConfig,
}

impl PgBench {
    pub fn new(scale: u32) -> Self {
        let admin = db::testing::server_config();
        let name = format!("simbench_pgbench_get_{}", std::process::id());
        let url = admin.with_dbname(&name);
        let this = Self { name, url, admin };
        this.psql(&format!("DROP DATABASE IF EXISTS {}", this.name));
        assert!(this.psql(&format!("CREATE DATABASE {}", this.name)));
        let init = Command::new("pgbench")
            .args(["-q", "-i", "-s", &scale.to_string()])
            .arg(this.url.url_with_password())
            .output()
            .unwrap();
        assert!(init.status.success(), "pgbench -i failed: {init:?}");
        this
    }

    fn psql(&self, sql: &str) -> bool {
        Command::new("psql")
            .args([self.admin.url_with_password(), "-qc", sql])
            .status()
            .unwrap()
            .success()
    }

    /// `pgbench -S -c clients -j 2 -T secs`: (TPS, average latency in ms).
    pub fn select_only(&self, clients: usize, secs: u64) -> (f64, f64) {
        let out = Command::new("pgbench")
            .args(["-S", "-c", &clients.to_string(), "-j", "2"])
            .args(["-T", &secs.to_string()])
            .arg(self.url.url_with_password())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let field = |prefix: &str| -> Option<f64> {
            text.lines()
                .find_map(|l| l.strip_prefix(prefix))
                .and_then(|l| l.split_whitespace().next())
                .and_then(|v| v.parse().ok())
        };
        let tps = field("tps = ").unwrap_or_else(|| {
            panic!(
                "cannot read pgbench output: {text}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (tps, field("latency average = ").unwrap_or(f64::NAN))
    }
}

impl Drop for PgBench {
    fn drop(&mut self) {
        self.psql(&format!("DROP DATABASE IF EXISTS {}", self.name));
    }
}

/// The server's limits: `sim-api`'s defaults, or with both in-process caches off.
pub fn limits(caches: bool) -> sim_api::Limits {
    let defaults = sim_api::Limits::default();
    if caches {
        defaults
    } else {
        sim_api::Limits {
            token_cache_ttl: Duration::ZERO,
            status_cache_ttl: Duration::ZERO,
            ..defaults
        }
    }
}

/// A comma-separated list from the environment, or `default`.
pub fn list<T: std::str::FromStr>(name: &str, default: &str) -> Vec<T> {
    std::env::var(name)
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| default.into())
        .split(',')
        .map(|s| {
            s.trim()
                .parse()
                .unwrap_or_else(|_| panic!("{name}: {s:?} is not valid"))
        })
        .collect()
}
