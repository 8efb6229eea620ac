//! What the two in-process caches, [`crate::token_cache`] and [`crate::status_cache`], share:
//! a TTL (zero turns the cache off), their state behind a mutex, the rule that entries are
//! used only while the listener for invalidations is connected, the generation a ticket
//! records, the bound on the number of entries, and the handle of the listener task.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// Most entries a cache holds; past this it drops the stale ones, then everything.
pub const MAX_ENTRIES: usize = 100_000;

/// The state of a cache, as [`CacheCore`] sees it.
pub trait CacheState: Default {
    /// Whether the listener is connected; entries are used only then.
    fn listening(&self) -> bool;
    /// The count bumped by every invalidation; a ticket records it.
    fn generation(&self) -> u64;
}

/// A cache's TTL, its state and its listener task.
pub struct CacheCore<S> {
    ttl: Duration,
    state: Mutex<S>,
    listener: Mutex<Option<tokio::task::AbortHandle>>,
}

impl<S: CacheState> CacheCore<S> {
    /// An empty cache keeping entries for at most `ttl`; a zero `ttl` disables it.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            state: Mutex::new(S::default()),
            listener: Mutex::new(None),
        }
    }

    /// How long an entry is kept at most.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Whether the cache is in use at all.
    pub fn enabled(&self) -> bool {
        !self.ttl.is_zero()
    }

    /// The state, even when a panic poisoned the mutex (every update leaves it whole).
    pub fn lock(&self) -> MutexGuard<'_, S> {
        match self.state.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// The state, if the cache is enabled and its listener connected: only then may an
    /// entry be used.
    pub fn live(&self) -> Option<MutexGuard<'_, S>> {
        if !self.enabled() {
            return None;
        }
        let state = self.lock();
        state.listening().then_some(state)
    }

    /// The generation a ticket taken now records; None when nothing may be cached.
    pub fn ticket(&self) -> Option<u64> {
        self.live().map(|s| s.generation())
    }

    /// Keeps the listener task, for [`CacheCore::abort_listener`].
    pub fn set_listener(&self, task: tokio::task::AbortHandle) {
        if let Ok(mut l) = self.listener.lock() {
            *l = Some(task);
        }
    }

    /// Aborts the listener task, if there is one.
    pub fn abort_listener(&self) {
        if let Some(task) = self.listener.lock().ok().and_then(|mut l| l.take()) {
            task.abort();
        }
    }
}

/// Makes room for one more entry: when `entries` holds [`MAX_ENTRIES`], drops those that are
/// not `fresh`, then, if that was not enough, everything.
pub fn make_room<K, V>(entries: &mut HashMap<K, V>, fresh: impl Fn(&V) -> bool) {
    if entries.len() >= MAX_ENTRIES {
        entries.retain(|_, v| fresh(v));
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
    }
}

/// User `id` with `role` as a caller, for the caches' unit tests.
#[cfg(test)]
pub fn test_caller(id: i64, role: db::enums::Role) -> crate::auth::Caller {
    let now = chrono::Utc::now();
    crate::auth::Caller {
        user: db::models::User {
            id,
            username: format!("u{id}"),
            auth_provider: db::enums::AuthProvider::Local,
            password_hash: None,
            role,
            created_at: now,
            updated_at: now,
        },
        session_id: uuid::Uuid::new_v4(),
    }
}
