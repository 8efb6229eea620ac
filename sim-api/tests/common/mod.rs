#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs, dead_code)]

mod fixtures;

use db::testing::TestDb;
use proto::v1::auth_service_client::AuthServiceClient;
use proto::v1::simulation_service_client::SimulationServiceClient;
use proto::v1::{
    CancelRequest, CancelResponse, DeleteRequest, DeleteResponse, GetInputRequest,
    GetInputResponse, GetLogsRequest, GetLogsResponse, GetRequest, ListEstimatorsRequest,
    ListEstimatorsResponse, ListRequest, ListResponse, LoginRequest, SimulationStatus,
    SubmitRequest, TokenPair, WatchRequest,
};
use sim_api::Limits;
use std::net::SocketAddr;
use std::time::Duration;
use tonic::transport::Channel;
use tonic::Request;

pub struct App {
    pub db: TestDb,
    pub addr: SocketAddr,
    pub channel: Channel,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for App {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub async fn spawn_app() -> App {
    spawn_app_with(Limits::default()).await
}

/// [`spawn_app`] with one user, `name`, signed in: the server and the user's access token.
pub async fn spawn_app_as(name: &str) -> (App, String) {
    let app = spawn_app().await;
    let token = app.user_token(name, false).await;
    (app, token)
}

/// Starts the server in-process on an ephemeral port against a fresh database.
pub async fn spawn_app_with(limits: Limits) -> App {
    spawn(limits, None).await
}

/// [`spawn_app`] with OIDC login configured by `settings` (the keys are loaded first).
pub async fn spawn_app_oidc(settings: sim_api::oidc::OidcSettings) -> App {
    let verifier = sim_api::oidc::OidcVerifier::new(settings).await.unwrap();
    spawn(Limits::default(), Some(std::sync::Arc::new(verifier))).await
}

async fn spawn(limits: Limits, oidc: Option<std::sync::Arc<sim_api::oidc::OidcVerifier>>) -> App {
    let db = TestDb::new().await;
    let pool = db.pool().await;
    spawn_on(db, pool, limits, oidc).await
}

/// Starts the server in-process on an ephemeral port with `pool` (a pool on `db`).
pub async fn spawn_on(
    db: TestDb,
    pool: db::Pool,
    limits: Limits,
    oidc: Option<std::sync::Arc<sim_api::oidc::OidcVerifier>>,
) -> App {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        sim_api::serve_with_oidc(pool, limits, oidc, listener, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    App {
        db,
        addr,
        channel,
        shutdown: Some(tx),
    }
}

impl App {
    pub fn auth(&self) -> AuthServiceClient<Channel> {
        AuthServiceClient::new(self.channel.clone())
    }

    pub fn sims(&self) -> SimulationServiceClient<Channel> {
        SimulationServiceClient::new(self.channel.clone())
    }

    pub async fn create_user(&self, name: &str, password: &str, admin: bool) -> i64 {
        fixtures::create_local_user(&self.db, name, password, admin).await
    }

    pub async fn login(&self, name: &str, password: &str) -> TokenPair {
        self.auth()
            .login(LoginRequest {
                username: name.into(),
                password: password.into(),
            })
            .await
            .unwrap()
            .into_inner()
    }

    /// Creates a user and logs in; returns the access token.
    pub async fn user_token(&self, name: &str, admin: bool) -> String {
        self.create_user(name, "pw-of-test", admin).await;
        self.login(name, "pw-of-test").await.access_token
    }

    pub async fn submit(&self, token: &str, req: SubmitRequest) -> Result<String, tonic::Status> {
        self.sims()
            .submit(authed(req, token))
            .await
            .map(|r| r.into_inner().job_id)
    }

    /// Submits [`simple_submit`] split into `ntasks` tasks of `primaries` in all; the job id.
    pub async fn submit_split(&self, token: &str, ntasks: i32, primaries: i64) -> String {
        let mut req = simple_submit();
        req.ntasks = ntasks;
        req.primaries = primaries;
        self.submit(token, req).await.unwrap()
    }

    /// List with `req` as `token`.
    pub async fn list(&self, token: &str, req: ListRequest) -> Result<ListResponse, tonic::Status> {
        self.sims()
            .list(authed(req, token))
            .await
            .map(|r| r.into_inner())
    }

    /// The single bigint a query returns (e.g. a count).
    pub async fn count(&self, sql: &str) -> i64 {
        use diesel_async::RunQueryDsl;
        #[derive(diesel::QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let mut c = self.db.conn().await;
        let sql = format!("SELECT ({sql}) AS n");
        let n: N = diesel::sql_query(sql).get_result(&mut c).await.unwrap();
        n.n
    }

    /// How many connections of the server LISTEN on `channel`.
    pub async fn listeners(&self, channel: &str) -> i64 {
        self.count(&format!(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND query = 'LISTEN {channel}'"
        ))
        .await
    }

    /// Waits (at most 10 s) until the server LISTENs on `channel`: its caches are used only
    /// from then on.
    pub async fn wait_listening(&self, channel: &str) {
        let what = format!("the server listening on {channel}");
        wait_until(&what, Duration::from_secs(10), || async {
            self.listeners(channel).await > 0
        })
        .await;
    }

    pub async fn sql(&self, sql: &str) {
        use diesel_async::RunQueryDsl;
        let mut c = self.db.conn().await;
        diesel::sql_query(sql).execute(&mut c).await.unwrap();
    }

    /// The single `bigint` a `SELECT count(*) …` returns.
    pub async fn sql_count(&self, sql: &str) -> i64 {
        use diesel_async::RunQueryDsl;
        #[derive(diesel::QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            count: i64,
        }
        let mut c = self.db.conn().await;
        let rows: Vec<N> = diesel::sql_query(sql).load(&mut c).await.unwrap();
        rows[0].count
    }
}

/// `App` methods that call one SimulationService rpc, named alike, on a job id as a token.
macro_rules! job_rpcs {
    ($($rpc:ident($req:ident) -> $answer:ty;)*) => {
        impl App {
            $(
                #[doc = concat!("`", stringify!($rpc), "` of `job` as `token`.")]
                pub async fn $rpc(&self, token: &str, job: &str) -> Result<$answer, tonic::Status> {
                    let req = $req { job_id: job.into() };
                    self.sims().$rpc(authed(req, token)).await.map(|r| r.into_inner())
                }
            )*
        }
    };
}

job_rpcs! {
    get(GetRequest) -> SimulationStatus;
    get_input(GetInputRequest) -> GetInputResponse;
    cancel(CancelRequest) -> CancelResponse;
    delete(DeleteRequest) -> DeleteResponse;
    get_logs(GetLogsRequest) -> GetLogsResponse;
    watch(WatchRequest) -> tonic::Streaming<SimulationStatus>;
    list_estimators(ListEstimatorsRequest) -> ListEstimatorsResponse;
}

pub fn authed<T>(msg: T, token: &str) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    r
}

pub fn simple_submit() -> SubmitRequest {
    fixtures::builtin_submit("water phantom", 4, 10_001)
}

/// Waits (at most `within`, polling every 10 ms) until `check` answers true; fails naming
/// `what` when it never does.
pub async fn wait_until<F, Fut>(what: &str, within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + within;
    while !check().await {
        assert!(std::time::Instant::now() < deadline, "never saw {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The code of a call's answer: `Ok`, or the error's code.
pub async fn code_of<T>(r: Result<T, tonic::Status>) -> tonic::Code {
    match r {
        Ok(_) => tonic::Code::Ok,
        Err(e) => e.code(),
    }
}
