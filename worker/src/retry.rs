//! Database writes that must not be lost to a blip: tried again on a fresh connection, with
//! backoff, while the error is transient ([`db::DbError::is_transient`]).

use db::DbError;
use std::future::Future;
use std::time::Duration;

/// The first pause between two tries of a write; it doubles up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(100);
/// The longest pause between two tries.
const MAX_PAUSE: Duration = Duration::from_secs(2);

/// Runs `write` until it succeeds, fails with an error that is not transient, or `budget`
/// has passed since the first try (then the last error is returned). Each try should take a
/// fresh connection from the pool: a broken one is dropped when it is returned.
pub async fn with_retries<T, F, Fut>(
    what: &str,
    budget: Duration,
    mut write: F,
) -> Result<T, DbError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, DbError>>,
{
    let deadline = tokio::time::Instant::now() + budget;
    let mut pause = FIRST_PAUSE;
    let mut tries = 0u32;
    loop {
        tries += 1;
        match write().await {
            Err(e) if e.is_transient() && tokio::time::Instant::now() + pause < deadline => {
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

    fn unavailable() -> DbError {
        DbError::Connect {
            target: "postgres://u@h/db".into(),
            reason: "Connection refused".into(),
        }
    }

    #[tokio::test]
    async fn transient_errors_are_retried_until_the_budget_and_others_are_not() {
        let tries = AtomicU32::new(0);
        let r: Result<(), DbError> = with_retries("x", Duration::from_secs(60), || async {
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
        let r: Result<(), DbError> = with_retries("x", Duration::from_secs(60), || async {
            tries.fetch_add(1, Ordering::SeqCst);
            Err(DbError::Invalid("bad".into()))
        })
        .await;
        assert!(matches!(r, Err(DbError::Invalid(_))));
        assert_eq!(tries.load(Ordering::SeqCst), 1, "not transient: one try");

        let tries = AtomicU32::new(0);
        let r: Result<(), DbError> = with_retries("x", Duration::from_millis(1000), || async {
            tries.fetch_add(1, Ordering::SeqCst);
            Err(unavailable())
        })
        .await;
        assert!(
            matches!(r, Err(DbError::Connect { .. })),
            "the last error is returned"
        );
        // Pauses of 100, 200 and 400 ms fit in the budget; the next (800 ms) does not.
        assert_eq!(
            tries.load(Ordering::SeqCst),
            4,
            "stops when the budget is spent"
        );
    }
}
