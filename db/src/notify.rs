//! PostgreSQL LISTEN/NOTIFY: the channels shared by `sim-api` and `worker`, [`Announce`],
//! the one way `db` sends them (after commit), and [`listen`], the one reconnecting LISTEN
//! loop both services use.
//!
//! Payloads are short text; listeners must treat a notification as a hint to look at the
//! database, never as the data itself (notifications are dropped while nobody listens).

use crate::pool::Conn;
use crate::prepared::prepared;
use crate::Pool;
use diesel::sql_types::{Array, BigInt, Bool, Text};
use diesel_async::{RunQueryDsl, SimpleAsyncConnection};
use futures_util::StreamExt;
use std::time::Duration;

/// New or re-queued tasks are due: idle workers wake up and claim. Payload: empty.
pub const TASKS_READY: &str = "sim_tasks_ready";

/// Something about a simulation changed (state, task progress, partial results).
/// Payload: the simulation's id as decimal text. `Watch` streams and the API's status cache
/// listen here.
pub const SIMULATION_EVENTS: &str = "sim_events";

/// Something that may invalidate an access token changed: an `auth_tokens` or `users` row
/// was updated or deleted (a trigger sends it, whoever made the change). Payload: empty.
/// Servers that cache token lookups empty their cache.
pub const AUTH_EVENTS: &str = "sim_auth_events";

/// A simulation's running tasks must stop: it was canceled or removed. Payload: the
/// simulation's id as decimal text. Workers listen here (and not to [`SIMULATION_EVENTS`],
/// whose every progress report and completion would make them check their leases).
pub const CANCELLATIONS: &str = "sim_cancellations";

/// What a [`listen`] loop reports.
#[derive(Debug)]
pub enum Event<'a> {
    /// LISTEN succeeded (first time, or after a reconnect): notifications sent before this
    /// may have been missed, so look at the database now.
    Listening,
    /// A notification on `channel` with this `payload`.
    Notification {
        /// One of the channels listened to.
        channel: &'a str,
        /// Its payload.
        payload: &'a str,
    },
    /// The connection broke (or could not be opened); a reconnect follows.
    Lost,
}

/// What the callback of [`listen`] says: go on, or stop listening.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Keep listening.
    Continue,
    /// Return from [`listen`] (the receiver is gone).
    Stop,
}

/// Listens on `channels` on a dedicated connection of `pool` until `on` returns
/// [`Flow::Stop`], calling it for every [`Event`]. The connection is reopened after 200 ms,
/// doubling up to 5 s while the database stays away.
pub async fn listen(pool: Pool, channels: &[&'static str], mut on: impl FnMut(Event<'_>) -> Flow) {
    // `LISTEN a; LISTEN b` (as pg_stat_activity then shows it).
    let statement = channels
        .iter()
        .map(|c| format!("LISTEN {c}"))
        .collect::<Vec<_>>()
        .join("; ");
    let mut delay = Duration::from_millis(200);
    loop {
        match pool.dedicated_connection().await {
            Ok(mut conn) => match conn.batch_execute(&statement).await {
                Ok(()) => {
                    delay = Duration::from_millis(200);
                    if on(Event::Listening) == Flow::Stop {
                        return;
                    }
                    let mut stream = std::pin::pin!(conn.notifications_stream());
                    while let Some(n) = stream.next().await {
                        match n {
                            Ok(n) => {
                                let event = Event::Notification {
                                    channel: &n.channel,
                                    payload: &n.payload,
                                };
                                if on(event) == Flow::Stop {
                                    return;
                                }
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, ?channels, "LISTEN connection lost");
                                break;
                            }
                        }
                    }
                    if on(Event::Lost) == Flow::Stop {
                        return;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, ?channels, "LISTEN failed");
                    if on(Event::Lost) == Flow::Stop {
                        return;
                    }
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, ?channels, "cannot connect to LISTEN; retrying");
                if on(Event::Lost) == Flow::Stop {
                    return;
                }
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

/// What a committed change announces. Build it inside the transaction, return it from the
/// transaction, and [`Announce::send`] it once the transaction has committed: announcing
/// notifications are sent after commit, never inside the transaction (a listener that
/// hears one always sees the change, and the notification never holds up the commit).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
#[must_use = "send it once the transaction has committed"]
pub struct Announce {
    /// Simulations whose watchers hear of a change ([`SIMULATION_EVENTS`]).
    pub changed: Vec<i64>,
    /// Simulations whose running tasks must stop ([`CANCELLATIONS`]); their watchers hear
    /// of it too.
    pub stopped: Vec<i64>,
    /// Whether tasks became due, waking idle workers ([`TASKS_READY`]).
    pub tasks_ready: bool,
}

impl Announce {
    /// A change of these simulations.
    pub fn changed(simulation_ids: impl Into<Vec<i64>>) -> Self {
        Announce {
            changed: simulation_ids.into(),
            ..Announce::default()
        }
    }

    /// Removals or cancels: the simulations' running tasks must stop.
    pub fn stopped(simulation_ids: impl Into<Vec<i64>>) -> Self {
        Announce {
            stopped: simulation_ids.into(),
            ..Announce::default()
        }
    }

    /// Tasks became due.
    pub fn tasks_ready() -> Self {
        Announce {
            tasks_ready: true,
            ..Announce::default()
        }
    }

    /// The same, also waking idle workers when `ready` (tasks of these simulations became
    /// due again).
    pub fn with_tasks_ready(self, ready: bool) -> Self {
        Announce {
            tasks_ready: self.tasks_ready || ready,
            ..self
        }
    }

    /// Sends the notifications in one statement of its own, outside any transaction, that
    /// does not wait for its commit to reach the disk. A notification is not durable anyway
    /// (listeners lose their connection in a crash), and PostgreSQL holds its notification
    /// lock from a notifying transaction's pre-commit until its commit is flushed, so
    /// notifying inside the state-changing transactions would serialise their commits (and
    /// fsyncs) instead of letting them share one. Failure is logged, not returned: the
    /// change it announces has already committed.
    pub async fn send(self, conn: &mut Conn) {
        let Announce {
            mut changed,
            mut stopped,
            tasks_ready,
        } = self;
        stopped.sort_unstable();
        stopped.dedup();
        changed.extend_from_slice(&stopped);
        changed.sort_unstable();
        changed.dedup();
        if changed.is_empty() && !tasks_ready {
            return;
        }
        let sent = prepared(
            diesel::sql_query(
                "SELECT set_config('synchronous_commit', 'off', true),
                        (SELECT count(pg_notify($1, id::text)) FROM unnest($2::bigint[]) AS id),
                        (SELECT count(pg_notify($3, id::text)) FROM unnest($4::bigint[]) AS id),
                        (SELECT count(pg_notify($5, '')) WHERE $6)",
            )
            .bind::<Text, _>(SIMULATION_EVENTS)
            .bind::<Array<BigInt>, _>(&changed)
            .bind::<Text, _>(CANCELLATIONS)
            .bind::<Array<BigInt>, _>(&stopped)
            .bind::<Text, _>(TASKS_READY)
            .bind::<Bool, _>(tasks_ready),
        )
        .execute(conn)
        .await;
        if let Err(e) = sent {
            tracing::warn!(error = %e, simulations = ?changed, tasks_ready, "cannot send notifications");
        }
    }
}
