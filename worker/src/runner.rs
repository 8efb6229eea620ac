//! The claim loop: claims as many tasks as there are free slots, runs each, renews leases,
//! requeues tasks of lost workers, stops canceled runs, and hands work back on shutdown. A
//! worker whose machine keeps failing tasks pauses its claims ([`health`]).

pub(crate) mod health;

use crate::config::Config;
use crate::execute::{self, Outcome, Stop};
use crate::outcome;
use db::queue::{self, ClaimedTask, Lease};
use db::{DbConfig, Pool};
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch, Notify};

/// A task this worker is running.
struct Running {
    lease: Lease,
    simulation_id: i64,
    stop: watch::Sender<Stop>,
}

/// Shared state of one worker process.
pub struct Worker {
    pub(crate) completions: mpsc::UnboundedSender<outcome::BatchedCompletion>,
    pub(crate) cfg: Config,
    handler: crate::config::Handler,
    id: String,
    pub(crate) pool: Pool,
    /// Every task this worker holds a lease on: running, or done and waiting for its outcome
    /// to be written.
    running: Mutex<HashMap<i64, Running>>,
    /// How many of them are still executing (their handler has not returned); these are what
    /// `--concurrency` limits.
    executing: AtomicUsize,
    slot_freed: Notify,
}

impl Worker {
    fn running_count(&self) -> usize {
        self.running.lock().map_or(0, |r| r.len())
    }

    /// Slots to claim for: free execution slots, as long as the tasks held (executing or
    /// waiting for their outcome to be written) stay within four times the concurrency.
    /// (Outcomes are written in batches while the next tasks run; the bound keeps a worker
    /// whose writes fall behind from holding ever more leases.)
    fn free_slots(&self, concurrency: usize) -> (usize, usize) {
        let held = self.running_count();
        let executing = self.executing.load(Ordering::Acquire);
        let free = concurrency
            .saturating_sub(executing)
            .min((4 * concurrency).saturating_sub(held));
        (free, held)
    }

    fn leases(&self) -> Vec<Lease> {
        self.running
            .lock()
            .map(|r| r.values().map(|t| t.lease.clone()).collect())
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

/// Runs the worker until `shutdown` resolves, then drains: running tasks get the grace
/// period, and what is still running after it goes back to the queue.
pub async fn run(
    cfg: Config,
    db_config: DbConfig,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let applied = db::migrate::run_pending(&db_config).await?;
    if !applied.is_empty() {
        tracing::info!(?applied, "applied migrations");
    }
    let concurrency = cfg.concurrency();
    let pool = db::build_pool(
        &db_config,
        &db::PoolOptions {
            // Tasks hold a connection only for a statement at a time; a few suffice.
            max_size: concurrency.min(16) as u32 + 4,
            ..db::PoolOptions::default()
        },
    )
    .await?;
    let id = cfg.worker_id();
    tracing::info!(worker = %id, concurrency, handler = ?cfg.handler, "worker started");
    println!("worker {id} ready");
    let (completions, completions_rx) = mpsc::unbounded_channel();
    let writer = tokio::spawn(outcome::completion_writer(pool.clone(), completions_rx));
    let worker = Arc::new(Worker {
        completions,
        handler: cfg.handler(),
        cfg,
        id,
        pool,
        running: Mutex::new(HashMap::new()),
        executing: AtomicUsize::new(0),
        slot_freed: Notify::new(),
    });

    let wake = Arc::new(Notify::new());
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let background = [
        tokio::spawn(crate::listener::listen(
            worker.pool.clone(),
            wake.clone(),
            events_tx,
        )),
        tokio::spawn(watch_cancellations(worker.clone(), events_rx)),
        tokio::spawn(heartbeats(worker.clone())),
        tokio::spawn(reaper(worker.clone())),
    ];

    let mut shutdown = std::pin::pin!(shutdown);
    let poll = Config::secs(worker.cfg.poll_secs).max(Duration::from_millis(10));
    // Claim in batches: while tasks are held, wait until a quarter of the slots are free
    // (one round trip claims them all) rather than claiming one task per freed slot. A slot
    // frees when its handler returns, so the next claim overlaps with writing the outcomes.
    let batch = (concurrency / 4).max(1);
    loop {
        let (free, held) = worker.free_slots(concurrency);
        // An unhealthy worker claims nothing while it pauses, then one task at a time.
        let executing = worker.executing.load(Ordering::Acquire);
        let free = match health::this_worker().permit(free, executing) {
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
            match claim(&worker, free).await {
                Ok(tasks) => {
                    let tasks = hand_back_if_unhealthy(&worker, tasks).await;
                    tracing::debug!(asked = free, claimed = tasks.len(), "claimed");
                    claimed_all = tasks.len() == free;
                    for t in tasks {
                        spawn_task(&worker, t);
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
            _ = worker.slot_freed.notified() => {}
            _ = tokio::time::sleep(poll) => {}
        }
    }

    drain(&worker).await;
    for b in background {
        b.abort();
    }
    writer.abort();
    tracing::info!("worker stopped");
    Ok(())
}

async fn claim(worker: &Worker, free: usize) -> anyhow::Result<Vec<ClaimedTask>> {
    let mut conn = worker.pool.get().await?;
    Ok(queue::claim(&mut conn, &worker.id, free as i64, worker.cfg.lease()).await?)
}

/// Tasks claimed just as the worker turned unhealthy (a machine fault arrived during the
/// claim) go back to the queue at once, without using an attempt; returns those to run (all
/// of them when the worker is healthy, and any that could not be handed back).
async fn hand_back_if_unhealthy(worker: &Worker, tasks: Vec<ClaimedTask>) -> Vec<ClaimedTask> {
    if tasks.is_empty() || !health::this_worker().backing_off() {
        return tasks;
    }
    let mut conn = match worker.pool.get().await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "cannot hand back tasks claimed while unhealthy");
            return tasks;
        }
    };
    let mut kept = Vec::new();
    for t in tasks {
        match queue::release(&mut conn, &t.lease(&worker.id)).await {
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

fn spawn_task(worker: &Arc<Worker>, task: ClaimedTask) {
    let lease = task.lease(&worker.id);
    let (stop_tx, stop_rx) = watch::channel(Stop::No);
    if let Ok(mut r) = worker.running.lock() {
        r.insert(
            task.id,
            Running {
                lease: lease.clone(),
                simulation_id: task.simulation_id,
                stop: stop_tx,
            },
        );
    }
    tracing::info!(
        task = task.id,
        simulation = task.simulation_id,
        index = task.task_index,
        attempt = task.attempt,
        "task started"
    );
    let worker = worker.clone();
    worker.executing.fetch_add(1, Ordering::AcqRel);
    tokio::spawn(async move {
        // The handler runs as a task of its own, so that a panic in it ends only that task:
        // the task fails with the panic's message, its slot is freed and its lease dropped.
        let run = {
            let (worker, task, lease) = (worker.clone(), task.clone(), lease.clone());
            tokio::spawn(async move {
                execute::run(&worker.handler, &worker.pool, &task, &lease, stop_rx).await
            })
        };
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
        worker.executing.fetch_sub(1, Ordering::AcqRel);
        worker.slot_freed.notify_one();
        outcome::finish(&worker, &task, &lease, outcome).await;
        if let Ok(mut r) = worker.running.lock() {
            r.remove(&task.id);
        }
        worker.slot_freed.notify_one();
    });
}

/// Stops runs whose simulation was canceled, as soon as its notification arrives.
async fn watch_cancellations(worker: Arc<Worker>, mut events: mpsc::UnboundedReceiver<i64>) {
    while let Some(first) = events.recv().await {
        // Cancellations may come in bursts: take all that are queued and check them with one
        // query (a notification is a hint; the lease in the database decides).
        let mut sims = std::collections::HashSet::from([first]);
        while let Ok(s) = events.try_recv() {
            sims.insert(s);
        }
        let leases: Vec<Lease> = worker
            .running
            .lock()
            .map(|r| {
                r.values()
                    .filter(|t| sims.contains(&t.simulation_id))
                    .map(|t| t.lease.clone())
                    .collect()
            })
            .unwrap_or_default();
        if leases.is_empty() {
            continue;
        }
        let Ok(mut conn) = worker.pool.get().await else {
            continue;
        };
        match queue::lost_leases(&mut conn, &leases).await {
            Ok(lost) => {
                for id in lost {
                    tracing::info!(task = id, "task canceled: stopping it");
                    worker.stop_task(id, Stop::Canceled);
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot check for canceled tasks"),
        }
    }
}

/// Renews the leases of running tasks; stops those whose lease is gone.
async fn heartbeats(worker: Arc<Worker>) {
    let every = worker.cfg.lease() / 3;
    loop {
        tokio::time::sleep(every).await;
        let leases = worker.leases();
        if leases.is_empty() {
            continue;
        }
        let Ok(mut conn) = worker.pool.get().await else {
            continue;
        };
        match queue::heartbeat(&mut conn, &leases, worker.cfg.lease()).await {
            Ok(lost) => {
                for id in lost {
                    tracing::warn!(task = id, "lease lost: stopping the task");
                    worker.stop_task(id, Stop::Canceled);
                }
            }
            Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
        }
    }
}

/// Returns tasks of lost workers to the queue. Every worker does this; SKIP LOCKED keeps
/// them from stepping on each other.
async fn reaper(worker: Arc<Worker>) {
    let every = (worker.cfg.lease() / 2).max(Duration::from_secs(1));
    loop {
        tokio::time::sleep(every).await;
        let Ok(mut conn) = worker.pool.get().await else {
            continue;
        };
        match queue::requeue_expired(&mut conn).await {
            Ok((0, 0)) => {}
            Ok((requeued, failed)) => {
                tracing::info!(requeued, failed, "requeued tasks of lost workers")
            }
            Err(e) => tracing::warn!(error = %e, "requeue of expired leases failed"),
        }
        // A worker that died between a simulation's last completion and its final merge
        // leaves it MERGING; finish that merge here.
        match db::merge::finalize_stale(&mut conn, worker.cfg.lease().as_secs_f64()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(simulations = n, "finished merges left by lost workers"),
            Err(e) => tracing::warn!(error = %e, "finishing stale merges failed"),
        }
    }
}

/// After shutdown: wait for running tasks up to the grace period, then hand the rest back.
async fn drain(worker: &Arc<Worker>) {
    let n = worker.running_count();
    if n == 0 {
        return;
    }
    tracing::info!(running = n, "shutting down: waiting for running tasks");
    let grace = Config::secs(worker.cfg.grace_secs);
    let deadline = tokio::time::Instant::now() + grace;
    while worker.running_count() > 0 && tokio::time::Instant::now() < deadline {
        tokio::select! {
            _ = worker.slot_freed.notified() => {}
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
    let left: Vec<i64> = worker
        .running
        .lock()
        .map(|r| r.keys().copied().collect())
        .unwrap_or_default();
    if left.is_empty() {
        return;
    }
    tracing::info!(tasks = ?left, "grace period over: handing tasks back to the queue");
    for id in left {
        worker.stop_task(id, Stop::Shutdown);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while worker.running_count() > 0 && tokio::time::Instant::now() < deadline {
        tokio::select! {
            _ = worker.slot_freed.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    }
}
