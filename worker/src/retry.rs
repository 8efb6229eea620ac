//! Database writes that must not be lost to a blip: tried again on a fresh connection, with
//! backoff, while the error is transient ([`db::DbError::is_transient`]) and the task's lease
//! has not expired ([`LeaseExpiry`]).

use db::DbError;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// The first pause between two tries of a write; it doubles up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(100);
/// The longest pause between two tries.
const MAX_PAUSE: Duration = Duration::from_secs(2);

/// When this worker last renewed every lease it holds: the time its last successful
/// heartbeat was sent (one per runner; the heartbeat renews all leases in one statement).
#[derive(Clone, Debug)]
pub struct Renewals(Arc<Mutex<Instant>>);

impl Default for Renewals {
    fn default() -> Self {
        Self(Arc::new(Mutex::new(Instant::now())))
    }
}

impl Renewals {
    /// Records a heartbeat sent at `sent` that the database answered.
    pub fn renewed(&self, sent: Instant) {
        if let Ok(mut at) = self.0.lock() {
            *at = (*at).max(sent);
        }
    }

    fn last(&self) -> Instant {
        self.0.lock().map_or_else(|_| Instant::now(), |at| *at)
    }
}

/// When one task's lease expires, as far as its worker knows: its claim or the last renewal,
/// whichever is later, plus the lease length. The database sets the expiry to `now() +
/// lease` at either moment, so this is never later than the real expiry. A write of the
/// task's outcome or logs keeps trying through transient failures until then; after it, the
/// task is another worker's to run.
#[derive(Clone, Debug)]
pub struct LeaseExpiry {
    claimed: Instant,
    renewals: Renewals,
    lease: Duration,
}

impl LeaseExpiry {
    /// The expiry of a lease of length `lease` taken now, renewed by `renewals`' heartbeats.
    pub fn new(lease: Duration, renewals: Renewals) -> Self {
        Self {
            claimed: Instant::now(),
            renewals,
            lease,
        }
    }

    /// The instant the lease expires unless renewed before.
    pub fn at(&self) -> Instant {
        self.claimed.max(self.renewals.last()) + self.lease
    }
}

/// Runs `write` until it succeeds, fails with an error that is not transient, or the next
/// try would start after `expiry` (then the last error is returned). The expiry is read
/// before every pause, so a lease renewed meanwhile gives the write more time. Each try
/// should take a fresh connection from the pool: a broken one is not handed out again.
pub async fn with_retries<T, F, Fut>(
    what: &str,
    expiry: &LeaseExpiry,
    mut write: F,
) -> Result<T, DbError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, DbError>>,
{
    let mut pause = FIRST_PAUSE;
    let mut tries = 0u32;
    loop {
        tries += 1;
        match write().await {
            Err(e) if e.is_transient() && Instant::now() + pause < expiry.at() => {
                tracing::warn!(error = %e, tries, "{what} failed; trying again in {pause:?}");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(MAX_PAUSE);
            }
            Ok(v) => {
                if tries > 1 {
                    tracing::info!(tries, "{what} succeeded after a retry");
                }
                return Ok(v);
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn expiry(ms: u64) -> LeaseExpiry {
        LeaseExpiry::new(Duration::from_millis(ms), Renewals::default())
    }

    fn unavailable() -> DbError {
        DbError::Connect {
            target: "postgres://u@h/db".into(),
            reason: "Connection refused".into(),
        }
    }

    #[tokio::test]
    async fn transient_errors_are_retried_until_the_lease_would_expire_and_others_are_not() {
        let tries = AtomicU32::new(0);
        let r: Result<(), DbError> = with_retries("x", &expiry(60_000), || async {
            if tries.fetch_add(1, Ordering::SeqCst) < 3 {
                Err(unavailable())
            } else {
                Ok(())
            }
        })
        .await;
        assert!(r.is_ok());
        assert_eq!(tries.load(Ordering::SeqCst), 4);

        let tries = AtomicU32::new(0);
        let r: Result<(), DbError> = with_retries("x", &expiry(60_000), || async {
            tries.fetch_add(1, Ordering::SeqCst);
            Err(DbError::Invalid("bad".into()))
        })
        .await;
        assert!(matches!(r, Err(DbError::Invalid(_))));
        assert_eq!(tries.load(Ordering::SeqCst), 1, "not transient: one try");

        let tries = AtomicU32::new(0);
        let r: Result<(), DbError> = with_retries("x", &expiry(1000), || async {
            tries.fetch_add(1, Ordering::SeqCst);
            Err(unavailable())
        })
        .await;
        assert!(
            matches!(r, Err(DbError::Connect { .. })),
            "the last error is returned"
        );
        // Pauses of 100, 200 and 400 ms fit before the lease expires; the next (800 ms) does not.
        assert_eq!(
            tries.load(Ordering::SeqCst),
            4,
            "stops when the lease would expire"
        );
    }

    #[tokio::test]
    async fn a_renewed_lease_gives_the_write_more_time() {
        let renewals = Renewals::default();
        // Pauses of 100, 200, 400, 800 and 1600 ms: each fits in a lease of 2.5 s renewed
        // at every try, but together they do not fit in one.
        let expiry = LeaseExpiry::new(Duration::from_millis(2500), renewals.clone());
        let tries = AtomicU32::new(0);
        let r: Result<(), DbError> = with_retries("x", &expiry, || async {
            // Each try sees the heartbeat renew the lease (the database answers the
            // heartbeat but not the write), until the sixth succeeds.
            renewals.renewed(Instant::now());
            if tries.fetch_add(1, Ordering::SeqCst) < 5 {
                Err(unavailable())
            } else {
                Ok(())
            }
        })
        .await;
        assert!(r.is_ok(), "renewals kept the write going: {r:?}");
        assert_eq!(tries.load(Ordering::SeqCst), 6);

        let expiry = LeaseExpiry::new(Duration::from_millis(2500), Renewals::default());
        let tries = AtomicU32::new(0);
        let r: Result<(), DbError> = with_retries("x", &expiry, || async {
            tries.fetch_add(1, Ordering::SeqCst);
            Err(unavailable())
        })
        .await;
        assert!(r.is_err());
        assert!(
            tries.load(Ordering::SeqCst) < 6,
            "without renewals the write stops when the lease would expire"
        );
    }
}
