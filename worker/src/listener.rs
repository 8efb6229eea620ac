//! LISTEN/NOTIFY: wakes the claim loop when tasks are ready, and forwards the ids of
//! canceled or removed simulations. Reconnects after the database restarts; polling covers the gap.

use db::{notify, DbConfig};
use diesel_async::SimpleAsyncConnection;
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Notify};

/// Listens until the process ends: `wake` on ready tasks, canceled simulations' ids on
/// `events`.
pub async fn listen(config: DbConfig, wake: Arc<Notify>, events: mpsc::UnboundedSender<i64>) {
    let mut delay = Duration::from_millis(200);
    loop {
        match db::connect(&config).await {
            Ok(mut conn) => {
                let listen = format!(
                    "LISTEN {}; LISTEN {}",
                    notify::TASKS_READY,
                    notify::CANCELLATIONS
                );
                if let Err(e) = conn.batch_execute(&listen).await {
                    tracing::warn!(error = %e, "LISTEN failed");
                } else {
                    tracing::debug!("listening for notifications");
                    delay = Duration::from_millis(200);
                    // Anything may have been missed while disconnected: look now.
                    wake.notify_one();
                    let mut stream = std::pin::pin!(conn.notifications_stream());
                    while let Some(n) = stream.next().await {
                        match n {
                            Ok(n) if n.channel == notify::TASKS_READY => wake.notify_one(),
                            Ok(n) => {
                                if let Ok(id) = n.payload.parse::<i64>() {
                                    if events.send(id).is_err() {
                                        return;
                                    }
                                }
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "notification connection lost");
                                break;
                            }
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot connect for notifications; retrying"),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}
