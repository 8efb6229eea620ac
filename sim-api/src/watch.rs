//! `Watch` support: one LISTEN connection per server fans simulation events out to every
//! open stream, and each stream re-reads its simulation only when it is told something
//! changed (with a slow safety poll in case a notification is lost).

use db::notify::{Event, Flow};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Once};
use std::time::Duration;
use tokio::sync::broadcast;

/// Sent to every watcher after the listener (re)connects: anything may have changed.
pub const RESYNC: i64 = -1;
/// Sent when the listener's connection is lost (a [`RESYNC`] follows once it is back).
pub const LOST: i64 = -2;
/// How often a watcher looks even without notifications.
pub const SAFETY_POLL: Duration = Duration::from_secs(5);
/// Pause after a notification so that a burst of progress reports makes one update.
pub const COALESCE: Duration = Duration::from_millis(100);

/// The fan-out of simulation events to `Watch` streams. The LISTEN connection is opened on
/// the first subscription, and reopened with backoff when it breaks.
pub struct Events {
    tx: broadcast::Sender<i64>,
    started: Once,
    listener: std::sync::Mutex<Option<tokio::task::AbortHandle>>,
    connected: Arc<AtomicBool>,
    /// Set when the server begins to shut down: open streams end (see [`Events::stopping`]).
    stopping: tokio::sync::watch::Sender<bool>,
}

impl Default for Events {
    fn default() -> Self {
        Self {
            tx: broadcast::channel(1024).0,
            started: Once::new(),
            listener: std::sync::Mutex::new(None),
            connected: Arc::new(AtomicBool::new(false)),
            stopping: tokio::sync::watch::channel(false).0,
        }
    }
}

impl Events {
    /// A receiver of simulation ids (and [`RESYNC`]); starts the listener if needed.
    pub fn subscribe(self: &Arc<Self>, pool: &db::Pool) -> broadcast::Receiver<i64> {
        let rx = self.tx.subscribe();
        self.started.call_once(|| {
            let pool = pool.clone();
            let tx = self.tx.clone();
            let task = tokio::spawn(listen(pool, tx, self.connected.clone()));
            if let Ok(mut l) = self.listener.lock() {
                *l = Some(task.abort_handle());
            }
        });
        rx
    }

    /// Whether the LISTEN connection is up.
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    /// Tells every open `Watch` stream that the server is shutting down: each ends with
    /// `UNAVAILABLE`, so that graceful shutdown does not wait for streams that never end.
    pub fn shut_down(&self) {
        self.stopping.send_replace(true);
    }

    /// Resolves once [`Events::shut_down`] has been called.
    pub fn stopping(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.stopping.subscribe();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    }

    /// Stops the listener, when the server stops.
    pub fn stop(&self) {
        if let Some(task) = self.listener.lock().ok().and_then(|mut l| l.take()) {
            task.abort();
        }
    }
}

async fn listen(pool: db::Pool, tx: broadcast::Sender<i64>, connected: Arc<AtomicBool>) {
    db::notify::listen(pool, &[db::notify::SIMULATION_EVENTS], |event| {
        match event {
            Event::Listening => {
                connected.store(true, Ordering::Release);
                let _ = tx.send(RESYNC);
            }
            Event::Notification { payload, .. } => {
                if let Ok(id) = payload.parse::<i64>() {
                    let _ = tx.send(id);
                }
            }
            Event::Lost => {
                connected.store(false, Ordering::Release);
                let _ = tx.send(LOST);
            }
        }
        Flow::Continue
    })
    .await;
}

/// Waits until simulation `id` may have changed: its event, a resync, a lagged channel,
/// or the safety poll. Returns false when the channel is closed.
pub async fn changed(rx: &mut broadcast::Receiver<i64>, id: i64) -> bool {
    let wait = async {
        loop {
            match rx.recv().await {
                Ok(got) if got == id || got == RESYNC => return true,
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(_)) => return true,
                Err(broadcast::error::RecvError::Closed) => return false,
            }
        }
    };
    match tokio::time::timeout(SAFETY_POLL, wait).await {
        Ok(open) => {
            if open {
                tokio::time::sleep(COALESCE).await;
                // Drop what piled up meanwhile; one re-read covers it.
                while rx.try_recv().is_ok() {}
            }
            open
        }
        Err(_) => true,
    }
}
