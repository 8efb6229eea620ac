//! A short-lived, in-process cache of access-token lookups, so that a polling client's
//! `Get` costs one database statement instead of two.
//!
//! Correctness rests on the database telling every server about revocations: a trigger
//! (migration `auth_events`) sends a notification on [`db::notify::AUTH_EVENTS`] whenever
//! `auth_tokens` or `users` rows are updated or deleted (logout, refresh reuse, password
//! change, role change, user removal, from any process, including `admin-cli` and raw SQL).
//! Each server listens on that channel and empties its cache on every notification.
//!
//! - Entries are used only while the listener is connected: when it is not (startup, a
//!   database restart), every call goes to the database.
//! - A lookup that started before a notification is not cached after it (a generation count),
//!   so a revocation racing with a lookup cannot leave a stale entry behind.
//! - An entry lives at most the configured TTL, and never past its token's expiry.
//! - Logout and refresh-token reuse in this process empty the cache at once, without waiting
//!   for the notification; another server drops its entries when the notification arrives
//!   (typically within a millisecond of the commit).

use crate::auth::Caller;
use crate::cache_core::{make_room, CacheCore, CacheState};
use std::collections::HashMap;
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

/// The cache; see the module documentation.
pub struct TokenCache {
    core: CacheCore<Inner>,
    started: Once,
}

#[derive(Default)]
struct Inner {
    /// Whether the revocation listener is connected; entries are used only then.
    listening: bool,
    /// Bumped by every invalidation.
    generation: u64,
    entries: HashMap<Vec<u8>, (Caller, Instant)>,
}

impl CacheState for Inner {
    fn listening(&self) -> bool {
        self.listening
    }
    fn generation(&self) -> u64 {
        self.generation
    }
}

/// Taken before a database lookup, handed back to [`TokenCache::insert`]: the result is
/// cached only if nothing was invalidated in between.
#[derive(Debug, Clone, Copy)]
pub struct Ticket(Option<u64>);

impl TokenCache {
    /// A cache keeping entries for at most `ttl`; a zero `ttl` disables it.
    pub fn new(ttl: Duration) -> Self {
        Self {
            core: CacheCore::new(ttl),
            started: Once::new(),
        }
    }

    /// Whether the cache is in use at all.
    pub fn enabled(&self) -> bool {
        self.core.enabled()
    }

    /// Starts the revocation listener (once); until it is connected nothing is cached.
    pub fn start(self: &Arc<Self>, pool: &db::Pool) {
        if !self.enabled() {
            return;
        }
        self.started.call_once(|| {
            let cache = self.clone();
            let pool = pool.clone();
            let task = tokio::spawn(async move {
                use db::notify::{Event, Flow};
                db::notify::listen(pool, &[db::notify::AUTH_EVENTS], |event| {
                    match event {
                        Event::Listening => cache.set_listening(true),
                        Event::Notification { .. } => cache.invalidate_all(),
                        Event::Lost => cache.set_listening(false),
                    }
                    Flow::Continue
                })
                .await;
            });
            self.core.set_listener(task.abort_handle());
        });
    }

    /// Stops the listener (when the server stops) and stops caching.
    pub fn stop(&self) {
        self.core.abort_listener();
        self.set_listening(false);
    }

    /// The cached caller of the token with this hash, if fresh.
    pub fn get(&self, token_hash: &[u8]) -> Option<Caller> {
        let inner = self.core.live()?;
        match inner.entries.get(token_hash) {
            Some((caller, until)) if Instant::now() < *until => Some(caller.clone()),
            _ => None,
        }
    }

    /// Take this before looking a token up in the database.
    pub fn ticket(&self) -> Ticket {
        Ticket(self.core.ticket())
    }

    /// Caches a lookup made after `ticket` was taken, for the TTL but no longer than
    /// `valid_for` (the token's remaining lifetime). Does nothing when anything was
    /// invalidated since the ticket, or the listener is not connected.
    pub fn insert(&self, ticket: Ticket, token_hash: Vec<u8>, caller: Caller, valid_for: Duration) {
        let Ticket(Some(generation)) = ticket else {
            return;
        };
        let mut inner = self.core.lock();
        if !inner.listening || inner.generation != generation {
            return;
        }
        let now = Instant::now();
        make_room(&mut inner.entries, |(_, until)| *until > now);
        let until = now + self.core.ttl().min(valid_for);
        inner.entries.insert(token_hash, (caller, until));
    }

    /// Forgets everything, and makes lookups in flight uncacheable.
    pub fn invalidate_all(&self) {
        let mut inner = self.core.lock();
        inner.generation = inner.generation.wrapping_add(1);
        inner.entries.clear();
    }

    /// Records whether the listener is connected; either way, what was cached is dropped
    /// (notifications may have been missed).
    fn set_listening(&self, listening: bool) {
        let mut inner = self.core.lock();
        inner.listening = listening;
        inner.generation = inner.generation.wrapping_add(1);
        inner.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use db::enums::Role;

    fn caller(id: i64) -> Caller {
        crate::cache_core::test_caller(id, Role::User)
    }

    fn listening(ttl: Duration) -> TokenCache {
        let cache = TokenCache::new(ttl);
        cache.set_listening(true);
        cache
    }

    const LONG: Duration = Duration::from_secs(60);

    #[test]
    fn caches_only_while_the_listener_is_connected() {
        let cache = TokenCache::new(LONG);
        let t = cache.ticket();
        cache.insert(t, b"a".to_vec(), caller(1), LONG);
        assert!(cache.get(b"a").is_none(), "not listening yet");

        cache.set_listening(true);
        let t = cache.ticket();
        cache.insert(t, b"a".to_vec(), caller(1), LONG);
        assert_eq!(cache.get(b"a").map(|c| c.user.id), Some(1));

        cache.set_listening(false);
        assert!(
            cache.get(b"a").is_none(),
            "dropped when the listener is lost"
        );
        cache.set_listening(true);
        assert!(cache.get(b"a").is_none(), "and not back after a reconnect");
    }

    #[test]
    fn a_lookup_that_raced_an_invalidation_is_not_cached() {
        let cache = listening(LONG);
        let t = cache.ticket();
        cache.invalidate_all();
        cache.insert(t, b"a".to_vec(), caller(1), LONG);
        assert!(cache.get(b"a").is_none());
        let t = cache.ticket();
        cache.insert(t, b"a".to_vec(), caller(1), LONG);
        assert!(cache.get(b"a").is_some());
        cache.invalidate_all();
        assert!(cache.get(b"a").is_none());
    }

    #[test]
    fn entries_expire_with_the_ttl_or_the_token() {
        let cache = listening(Duration::from_millis(30));
        let t = cache.ticket();
        cache.insert(t, b"ttl".to_vec(), caller(1), LONG);
        let t = cache.ticket();
        cache.insert(t, b"token".to_vec(), caller(2), Duration::ZERO);
        assert!(cache.get(b"ttl").is_some());
        assert!(
            cache.get(b"token").is_none(),
            "the token itself has expired"
        );
        std::thread::sleep(Duration::from_millis(40));
        assert!(cache.get(b"ttl").is_none());
    }

    #[test]
    fn a_zero_ttl_disables_the_cache() {
        let cache = listening(Duration::ZERO);
        assert!(!cache.enabled());
        let t = cache.ticket();
        cache.insert(t, b"a".to_vec(), caller(1), LONG);
        assert!(cache.get(b"a").is_none());
    }
}
