//! The claim loop: claims as many tasks as there are free slots, runs each with the
//! [`TaskHandler`], renews leases, requeues tasks of lost workers, stops canceled runs, and
//! hands work back on shutdown. A worker whose machine keeps failing tasks pauses its claims
//! ([`health`]).

mod background;
pub mod health;

use crate::execute::{Outcome, Stop, TaskContext, TaskHandler};
use crate::outcome::{self, Recorder};
use crate::retry::{LeaseExpiry, Renewals};
use crate::settings::{Settings, MAX_WAIT, MIN_POLL};
use db::enums::SimType;
use db::queue::{self, ClaimedTask, Lease};
use db::{DbConfig, DbError, Pool};
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch, Notify};
use tracing::Instrument as _;

/// A worker: claims tasks from the queue and runs them with its handler `H`, until told to
/// shut down ([`Runner::run`]). It claims only tasks of the simulators its handler runs
/// ([`TaskHandler::sim_types`]).
pub struct Runner<H> {
    shared: Arc<Shared>,
    handler: Arc<H>,
    completions: mpsc::UnboundedReceiver<outcome::BatchedCompletion>,
}

/// A task this worker is running.
struct Running {
    lease: Lease,
    simulation_id: i64,
    stop: watch::Sender<Stop>,
}

/// The state of one runner that its tasks and background loops share.
struct Shared {
    settings: Settings,
    /// The simulators whose tasks this worker claims (its handler's
    /// [`TaskHandler::sim_types`]).
    sim_types: Vec<SimType>,
    recorder: Recorder,
    /// Every task this worker holds a lease on: running, or done and waiting for its outcome
    /// to be written.
    running: Mutex<HashMap<i64, Running>>,
    /// How many of them are still executing (their handler has not returned); these are what
    /// the concurrency limits.
    executing: AtomicUsize,
    slot_freed: Notify,
    health: health::Health,
    /// When the heartbeat last renewed the leases held.
    renewals: Renewals,
}

impl Shared {
    fn running_count(&self) -> usize {
        self.running.lock().map_or(0, |r| r.len())
    }

    /// Slots to claim for: free execution slots, as long as the tasks held (executing or
    /// waiting for their outcome to be written) stay within four times the concurrency.
    /// (Outcomes are written in batches while the next tasks run; the bound keeps a worker
    /// whose writes fall behind from holding ever more leases.)
    fn free_slots(&self) -> (usize, usize) {
        let concurrency = self.settings.concurrency;
        let held = self.running_count();
        let executing = self.executing.load(Ordering::Acquire);
        let free = concurrency
            .saturating_sub(executing)
            .min((4 * concurrency).saturating_sub(held));
        (free, held)
    }

    /// The leases of the held tasks that `keep` selects.
    fn leases(&self, keep: impl Fn(&Running) -> bool) -> Vec<Lease> {
        self.running
            .lock()
            .map(|r| {
                r.values()
                    .filter(|t| keep(t))
                    .map(|t| t.lease.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn stop_task(&self, task_id: i64, why: Stop) {
        if let Ok(r) = self.running.lock() {
            if let Some(t) = r.get(&task_id) {
                let _ = t.stop.send(why);
            }
        }
    }
}

impl<H: TaskHandler> Runner<H> {
    /// Applies pending migrations to the database of `db_config`, and connects a runner to
    /// it (a pool sized for `settings.concurrency`).
    pub async fn connect(
        settings: Settings,
        db_config: &DbConfig,
        handler: H,
    ) -> Result<Self, DbError> {
        let applied = db::migrate::run_pending(db_config).await?;
        if !applied.is_empty() {
            tracing::info!(?applied, "applied migrations");
        }
        let options = db::PoolOptions {
            // Tasks hold a connection only for a statement at a time; a few suffice.
            max_size: settings.concurrency.clamp(1, 16) as u32 + 4,
            ..db::PoolOptions::default()
        };
        let pool = db::build_pool(db_config, &options).await?;
        Ok(Self::new(settings, pool, handler))
    }

    /// A runner on `pool` (whose database has every migration applied).
    pub fn new(mut settings: Settings, pool: Pool, handler: H) -> Self {
        settings.concurrency = settings.concurrency.max(1);
        settings.lease = settings.lease.max(Duration::from_millis(10));
        let (completions_tx, completions) = mpsc::unbounded_channel();
        let sim_types = handler.sim_types();
        let shared = Arc::new(Shared {
            sim_types,
            recorder: Recorder {
                pool,
                completions: completions_tx,
                metrics: crate::metrics::WorkerMetrics::default(),
            },
            settings,
            running: Mutex::new(HashMap::new()),
            executing: AtomicUsize::new(0),
            slot_freed: Notify::new(),
            health: health::Health::new(),
            renewals: Renewals::default(),
        });
        Self {
            shared,
            handler: Arc::new(handler),
            completions,
        }
    }

    /// This worker's name in task leases.
    pub fn worker_id(&self) -> &str {
        &self.shared.settings.worker_id
    }

    /// The runner's database pool.
    pub fn pool(&self) -> &Pool {
        &self.shared.recorder.pool
    }

    /// This worker's counters and histograms (to register for `--metrics-listen`).
    pub fn metrics(&self) -> &crate::metrics::WorkerMetrics {
        &self.shared.recorder.metrics
    }

    /// Whether this worker is healthy: `false` from the run of machine faults that made it
    /// pause its claims until a task runs through again ([`health`]). The closure stays valid after [`Runner::run`] took the runner.
    pub fn health_check(&self) -> impl Fn() -> bool + Send + Sync + 'static {
        let shared = self.shared.clone();
        move || shared.health.is_healthy()
    }

    /// Runs the worker until `shutdown` resolves, then drains: running tasks get the grace
    /// period, and what is still running after it goes back to the queue.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let Runner {
            shared,
            handler,
            completions,
        } = self;
        let settings = &shared.settings;
        // Tasks of the simulators left out stay PENDING until a worker that runs them claims
        // them: say which this one takes, and which it leaves.
        let names = |claimed: bool| {
            SimType::ALL
                .iter()
                .filter(|t| shared.sim_types.contains(t) == claimed)
                .map(|t| t.as_str())
                .collect::<Vec<_>>()
                .join(",")
        };
        tracing::info!(
            worker = %settings.worker_id,
            concurrency = settings.concurrency,
            claims = %names(true),
            leaves_pending = %names(false),
            "worker started"
        );
        let pool = shared.recorder.pool.clone();
        let writer = tokio::spawn(outcome::completion_writer(pool.clone(), completions));
        let wake = Arc::new(Notify::new());
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let background = [
            tokio::spawn(crate::listener::listen(pool, wake.clone(), events_tx)),
            tokio::spawn(background::watch_cancellations(shared.clone(), events_rx)),
            tokio::spawn(background::heartbeats(shared.clone())),
            tokio::spawn(background::reaper(shared.clone())),
        ];
        claim_loop(&shared, &handler, &wake, shutdown).await;
        drain(&shared).await;
        for b in background {
            b.abort();
        }
        writer.abort();
        tracing::info!("worker stopped");
    }
}

/// Claims and starts tasks until `shutdown` resolves.
async fn claim_loop<H: TaskHandler>(
    shared: &Arc<Shared>,
    handler: &Arc<H>,
    wake: &Notify,
    shutdown: impl Future<Output = ()>,
) {
    let mut shutdown = std::pin::pin!(shutdown);
    let poll = shared.settings.poll.clamp(MIN_POLL, MAX_WAIT);
    // Claim in batches: while tasks are held, wait until a quarter of the slots are free
    // (one round trip claims them all) rather than claiming one task per freed slot. A slot
    // frees when its handler returns, so the next claim overlaps with writing the outcomes.
    let batch = (shared.settings.concurrency / 4).max(1);
    loop {
        let (free, held) = shared.free_slots();
        // An unhealthy worker claims nothing while it pauses, then one task at a time.
        let executing = shared.executing.load(Ordering::Acquire);
        let free = match shared.health.permit(free, executing) {
            health::Permit::Claim(n) => n,
            health::Permit::Wait(pause) => {
                tokio::select! {
                    _ = &mut shutdown => break,
                    _ = tokio::time::sleep(pause) => continue,
                }
            }
        };
        let mut claimed_all = false;
        if free >= batch || (free > 0 && held == 0) {
            match claim(shared, free).await {
                Ok(tasks) => {
                    shared.recorder.metrics.claimed(tasks.len());
                    let tasks = hand_back_if_unhealthy(shared, tasks).await;
                    tracing::debug!(asked = free, claimed = tasks.len(), "claimed");
                    claimed_all = tasks.len() == free;
                    for t in tasks {
                        spawn_task(shared, handler, t);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "claim failed; retrying");
                    tokio::select! {
                        _ = &mut shutdown => break,
                        _ = tokio::time::sleep(Duration::from_millis(250)) => continue,
                    }
                }
            }
        }
        if claimed_all {
            continue; // there may be more: come back when slots free
        }
        tokio::select! {
            _ = &mut shutdown => break,
            _ = wake.notified() => {}
            _ = shared.slot_freed.notified() => {}
            _ = tokio::time::sleep(poll) => {}
        }
    }
}

async fn claim(shared: &Shared, free: usize) -> Result<Vec<ClaimedTask>, DbError> {
    let mut conn = shared.recorder.pool.get().await?;
    let settings = &shared.settings;
    queue::claim(
        &mut conn,
        &settings.worker_id,
        free as i64,
        settings.lease,
        &shared.sim_types,
    )
    .await
}

/// Tasks claimed just as the worker turned unhealthy (a machine fault arrived during the
/// claim) go back to the queue at once, without using an attempt; returns those to run (all
/// of them when the worker is healthy, and any that could not be handed back).
async fn hand_back_if_unhealthy(shared: &Shared, tasks: Vec<ClaimedTask>) -> Vec<ClaimedTask> {
    if tasks.is_empty() || !shared.health.backing_off() {
        return tasks;
    }
    let mut conn = match shared.recorder.pool.get().await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "cannot hand back tasks claimed while unhealthy");
            return tasks;
        }
    };
    let mut kept = Vec::new();
    for t in tasks {
        match queue::release(&mut conn, &t.lease(&shared.settings.worker_id)).await {
            Ok(()) => tracing::info!(task = t.id, "worker unhealthy: task handed back unstarted"),
            Err(e) => {
                tracing::warn!(task = t.id, error = %e, "cannot hand back a task; running it");
                kept.push(t);
            }
        }
    }
    kept
}

/// What a handler's panic said (or that it was aborted).
fn panic_message(e: tokio::task::JoinError) -> String {
    if !e.is_panic() {
        return "it was aborted".into();
    }
    let payload = e.into_panic();
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .map_or_else(|| "it panicked".into(), |m| format!("it panicked: {m}"))
}

fn spawn_task<H: TaskHandler>(shared: &Arc<Shared>, handler: &Arc<H>, task: ClaimedTask) {
    let lease = task.lease(&shared.settings.worker_id);
    let (stop_tx, stop_rx) = watch::channel(Stop::No);
    if let Ok(mut r) = shared.running.lock() {
        r.insert(
            task.id,
            Running {
                lease: lease.clone(),
                simulation_id: task.simulation_id,
                stop: stop_tx,
            },
        );
    }
    // Every line logged while the task runs (and about its outcome) carries these fields, so
    // that one grep follows a simulation across services.
    let span = tracing::info_span!(
        "task",
        simulation = task.simulation_id,
        task = task.id,
        attempt = task.attempt,
        worker = %shared.settings.worker_id,
    );
    span.in_scope(|| tracing::info!(index = task.task_index, "task started"));
    let shared = shared.clone();
    shared.executing.fetch_add(1, Ordering::AcqRel);
    let expiry = LeaseExpiry::new(shared.settings.lease, shared.renewals.clone());
    let ctx = TaskContext::new(
        shared.recorder.pool.clone(),
        lease.clone(),
        expiry.clone(),
        stop_rx,
    );
    // The handler runs as a task of its own, so that a panic in it ends only that task: the
    // task fails with the panic's message, its slot is freed and its lease dropped.
    let run = {
        let (shared, handler, task) = (shared.clone(), handler.clone(), task.clone());
        let work = async move {
            let started = std::time::Instant::now();
            let outcome = handler.run(&task, ctx).await;
            shared.recorder.metrics.ran(started.elapsed());
            shared.health.record(&outcome);
            outcome
        };
        tokio::spawn(work.instrument(span.clone()))
    };
    let finish = async move {
        let outcome = match run.await {
            Ok(outcome) => outcome,
            Err(e) => {
                let why = panic_message(e);
                tracing::error!(task = task.id, error = %why, "the task handler panicked");
                Outcome::Failed {
                    error: format!("the worker's task handler failed: {why}"),
                    retry: false,
                }
            }
        };
        shared.executing.fetch_sub(1, Ordering::AcqRel);
        shared.slot_freed.notify_one();
        outcome::finish(&shared.recorder, &task, &lease, &expiry, outcome).await;
        if let Ok(mut r) = shared.running.lock() {
            r.remove(&task.id);
        }
        shared.slot_freed.notify_one();
    };
    tokio::spawn(finish.instrument(span));
}

/// After shutdown: wait for running tasks up to the grace period, then hand the rest back.
async fn drain(shared: &Shared) {
    let n = shared.running_count();
    if n == 0 {
        return;
    }
    tracing::info!(running = n, "shutting down: waiting for running tasks");
    let grace = shared.settings.grace.min(MAX_WAIT);
    let deadline = tokio::time::Instant::now() + grace;
    while shared.running_count() > 0 && tokio::time::Instant::now() < deadline {
        tokio::select! {
            _ = shared.slot_freed.notified() => {}
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
    let left: Vec<i64> = shared
        .running
        .lock()
        .map(|r| r.keys().copied().collect())
        .unwrap_or_default();
    if left.is_empty() {
        return;
    }
    tracing::info!(tasks = ?left, "grace period over: handing tasks back to the queue");
    for id in left {
        shared.stop_task(id, Stop::Shutdown);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while shared.running_count() > 0 && tokio::time::Instant::now() < deadline {
        tokio::select! {
            _ = shared.slot_freed.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    }
}
