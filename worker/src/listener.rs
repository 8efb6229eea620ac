//! The worker's notifications: wakes the claim loop when tasks are ready, and forwards the
//! ids of canceled or removed simulations, through [`db::notify::listen`] (which reconnects
//! after the database restarts; polling covers the gap).

use db::notify::{self, Event, Flow};
use std::sync::Arc;
use tokio::sync::{mpsc, Notify};

/// Listens until the process ends (or `events` is closed): `wake` on ready tasks (and after
/// every reconnect, since anything may have been missed), canceled simulations' ids on
/// `events`.
pub async fn listen(pool: db::Pool, wake: Arc<Notify>, events: mpsc::UnboundedSender<i64>) {
    notify::listen(
        pool,
        &[notify::TASKS_READY, notify::CANCELLATIONS],
        |event| match event {
            Event::Listening => {
                wake.notify_one();
                Flow::Continue
            }
            Event::Notification { channel, .. } if channel == notify::TASKS_READY => {
                wake.notify_one();
                Flow::Continue
            }
            Event::Notification { payload, .. } => match payload.parse::<i64>() {
                Ok(id) if events.send(id).is_err() => Flow::Stop,
                _ => Flow::Continue,
            },
            Event::Lost => Flow::Continue,
        },
    )
    .await;
}
