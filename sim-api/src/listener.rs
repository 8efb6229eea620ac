//! A LISTEN connection that survives database restarts: one dedicated connection per
//! channel, reopened with backoff, reporting what happens to a callback.

use futures_util::StreamExt;
use std::time::Duration;

/// What a [`listen`] loop reports.
#[derive(Debug)]
pub enum Event<'a> {
    /// LISTEN succeeded (first time, or after a reconnect): notifications sent before this
    /// may have been missed.
    Listening,
    /// A notification with this payload.
    Notification(&'a str),
    /// The connection broke (or could not be opened); a reconnect follows.
    Lost,
}

/// Listens on `channel` forever, calling `on` for every [`Event`]. Reconnects after
/// 200 ms, doubling up to 5 s while the database stays away.
pub async fn listen(pool: db::Pool, channel: &'static str, mut on: impl FnMut(Event<'_>)) {
    use diesel_async::SimpleAsyncConnection;
    let mut delay = Duration::from_millis(200);
    loop {
        match pool.dedicated_connection().await {
            Ok(mut conn) => match conn.batch_execute(&format!("LISTEN {channel}")).await {
                Ok(()) => {
                    delay = Duration::from_millis(200);
                    on(Event::Listening);
                    let mut stream = std::pin::pin!(conn.notifications_stream());
                    while let Some(n) = stream.next().await {
                        match n {
                            Ok(n) => on(Event::Notification(&n.payload)),
                            Err(e) => {
                                tracing::warn!(error = %e, channel, "LISTEN connection lost");
                                break;
                            }
                        }
                    }
                    on(Event::Lost);
                }
                Err(e) => {
                    tracing::warn!(error = %e, channel, "LISTEN failed");
                    on(Event::Lost);
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, channel, "cannot connect to LISTEN; retrying");
                on(Event::Lost);
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}
