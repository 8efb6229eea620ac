//! A short-lived, in-process cache of `Get` answers, emptied per simulation by the
//! `sim_events` notifications that `Watch` already listens to, so that clients polling a
//! simulation's status cost no database work between its changes.
//!
//! - Every change a client can see in `Get` is followed by `NOTIFY sim_events` with the
//!   simulation's id: submit, claims that start a simulation, progress reports, task
//!   completion, failure, retry, release and reaping, cancel, merge, delete (see `db::queue`,
//!   `db::results`, `db::simulation_views`). The entry of that simulation is dropped when the server
//!   hears it.
//! - The TTL (`--status-cache`, default 1s) bounds what no notification announces: a task
//!   claimed in a simulation that was already running shows as `RUNNING` at its first
//!   progress report or within the TTL.
//! - Entries are used only while the LISTEN connection is up; after it is lost (a database
//!   restart) everything is dropped and every `Get` reads the database until it is back.
//! - A read that started before a notification of its simulation is not cached after it.
//! - Ownership is checked on every hit: an entry records its owner, and a caller who is
//!   neither that owner nor an admin is sent to the database (which answers NOT_FOUND).
//! - Cancel and Delete in this process drop the entry at once.

use crate::auth::Caller;
use crate::cache_core::{make_room, CacheCore, CacheState};
use proto::v1 as pb;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Most remembered invalidations; past this they are forgotten and older reads are not
/// cached.
const MAX_INVALIDATIONS: usize = 100_000;

/// The cache; see the module documentation.
pub struct StatusCache {
    core: CacheCore<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Whether the `sim_events` listener is connected; entries are used only then.
    listening: bool,
    /// Bumped by every invalidation.
    seq: u64,
    /// Reads that started before this may not be cached (everything was dropped since).
    floor: u64,
    /// Simulation id → `seq` of its last invalidation.
    invalidated: HashMap<i64, u64>,
    entries: HashMap<Uuid, Entry>,
    by_id: HashMap<i64, Uuid>,
}

impl CacheState for Inner {
    fn listening(&self) -> bool {
        self.listening
    }
    fn generation(&self) -> u64 {
        self.seq
    }
}

struct Entry {
    simulation_id: i64,
    owner_id: i64,
    status: pb::SimulationStatus,
    until: Instant,
}

/// Taken before reading a simulation from the database, handed back to
/// [`StatusCache::insert`]: the answer is cached only if its simulation was not
/// invalidated in between.
#[derive(Debug, Clone, Copy)]
pub struct Ticket(Option<u64>);

/// What a cached answer is about.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    /// The public id.
    pub job_id: Uuid,
    /// The simulation's id, as notifications name it.
    pub simulation_id: i64,
    /// Its owner.
    pub owner_id: i64,
}

impl StatusCache {
    /// A cache keeping answers for at most `ttl`; a zero `ttl` disables it.
    pub fn new(ttl: Duration) -> Self {
        Self {
            core: CacheCore::new(ttl),
        }
    }

    /// Whether the cache is in use at all.
    pub fn enabled(&self) -> bool {
        self.core.enabled()
    }

    /// Follows `events` (starting their listener): invalidates on every notification.
    pub fn start(self: &Arc<Self>, events: &Arc<crate::watch::Events>, pool: &db::Pool) {
        if !self.enabled() {
            return;
        }
        let mut rx = events.subscribe(pool);
        if events.is_connected() {
            self.set_listening(true);
        }
        let cache = self.clone();
        let task = tokio::spawn(async move {
            use tokio::sync::broadcast::error::RecvError;
            loop {
                match rx.recv().await {
                    Ok(crate::watch::RESYNC) => cache.set_listening(true),
                    Ok(crate::watch::LOST) => cache.set_listening(false),
                    Ok(id) => cache.invalidate(id),
                    // Missed notifications: anything may have changed.
                    Err(RecvError::Lagged(_)) => {
                        let listening = cache.core.lock().listening;
                        cache.set_listening(listening);
                    }
                    Err(RecvError::Closed) => {
                        cache.set_listening(false);
                        break;
                    }
                }
            }
        });
        self.core.set_listener(task.abort_handle());
    }

    /// Stops following events (when the server stops) and stops caching.
    pub fn stop(&self) {
        self.core.abort_listener();
        self.set_listening(false);
    }

    /// The cached answer for `job_id`, if fresh and `caller` may see it.
    pub fn get(&self, job_id: Uuid, caller: &Caller) -> Option<pb::SimulationStatus> {
        let inner = self.core.live()?;
        let entry = inner.entries.get(&job_id)?;
        if Instant::now() >= entry.until {
            return None;
        }
        match caller.owner_filter() {
            Some(uid) if uid != entry.owner_id => None,
            _ => Some(entry.status.clone()),
        }
    }

    /// Take this before reading a simulation from the database.
    pub fn ticket(&self) -> Ticket {
        Ticket(self.core.ticket())
    }

    /// Caches an answer read after `ticket` was taken, unless its simulation was
    /// invalidated since (or the listener is not connected).
    pub fn insert(&self, ticket: Ticket, key: Key, status: pb::SimulationStatus) {
        let Ticket(Some(seq)) = ticket else {
            return;
        };
        let mut inner = self.core.lock();
        let invalidated_after = inner
            .invalidated
            .get(&key.simulation_id)
            .is_some_and(|&at| at > seq);
        if !inner.listening || seq < inner.floor || invalidated_after {
            return;
        }
        let now = Instant::now();
        if inner.entries.len() >= crate::cache_core::MAX_ENTRIES {
            make_room(&mut inner.entries, |e| e.until > now);
            let Inner { entries, by_id, .. } = &mut *inner;
            by_id.retain(|_, job| entries.contains_key(job));
        }
        inner.by_id.insert(key.simulation_id, key.job_id);
        inner.entries.insert(
            key.job_id,
            Entry {
                simulation_id: key.simulation_id,
                owner_id: key.owner_id,
                status,
                until: now + self.core.ttl(),
            },
        );
    }

    /// Drops what is cached about simulation `id`, and makes reads of it in flight
    /// uncacheable.
    pub fn invalidate(&self, simulation_id: i64) {
        let mut inner = self.core.lock();
        inner.seq = inner.seq.wrapping_add(1);
        let seq = inner.seq;
        if inner.invalidated.len() >= MAX_INVALIDATIONS {
            inner.invalidated.clear();
            inner.floor = seq;
        }
        inner.invalidated.insert(simulation_id, seq);
        if let Some(job) = inner.by_id.remove(&simulation_id) {
            if inner
                .entries
                .get(&job)
                .is_some_and(|e| e.simulation_id == simulation_id)
            {
                inner.entries.remove(&job);
            }
        }
    }

    /// Records whether the listener is connected; either way, everything cached is
    /// dropped (notifications may have been missed).
    fn set_listening(&self, listening: bool) {
        let mut inner = self.core.lock();
        inner.listening = listening;
        inner.seq = inner.seq.wrapping_add(1);
        inner.floor = inner.seq;
        inner.invalidated.clear();
        inner.entries.clear();
        inner.by_id.clear();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::cache_core::test_caller as caller;
    use db::enums::Role;

    /// A new job's key: simulation 7 of user 1.
    fn key_of_user_1() -> Key {
        Key {
            job_id: Uuid::new_v4(),
            simulation_id: 7,
            owner_id: 1,
        }
    }

    fn status(title: &str) -> pb::SimulationStatus {
        pb::SimulationStatus {
            simulation: Some(pb::Simulation {
                title: title.into(),
                ..Default::default()
            }),
            tasks: Vec::new(),
        }
    }

    fn title(s: Option<pb::SimulationStatus>) -> Option<String> {
        s.and_then(|s| s.simulation).map(|s| s.title)
    }

    const LONG: Duration = Duration::from_secs(60);

    fn listening() -> (StatusCache, Key) {
        let cache = StatusCache::new(LONG);
        cache.set_listening(true);
        let key = key_of_user_1();
        (cache, key)
    }

    #[test]
    fn only_the_owner_and_admins_get_a_cached_answer() {
        let (cache, key) = listening();
        cache.insert(cache.ticket(), key, status("a"));
        let owner = caller(1, Role::User);
        assert_eq!(title(cache.get(key.job_id, &owner)).as_deref(), Some("a"));
        assert!(cache.get(key.job_id, &caller(2, Role::User)).is_none());
        assert!(cache.get(key.job_id, &caller(3, Role::Admin)).is_some());
        assert!(cache.get(Uuid::new_v4(), &owner).is_none());
    }

    #[test]
    fn a_notification_drops_its_simulation_only() {
        let (cache, key) = listening();
        let other = Key {
            job_id: Uuid::new_v4(),
            simulation_id: 8,
            owner_id: 1,
        };
        cache.insert(cache.ticket(), key, status("a"));
        cache.insert(cache.ticket(), other, status("b"));
        cache.invalidate(7);
        let owner = caller(1, Role::User);
        assert!(cache.get(key.job_id, &owner).is_none());
        assert!(cache.get(other.job_id, &owner).is_some());
    }

    #[test]
    fn a_read_that_raced_its_notification_is_not_cached() {
        let (cache, key) = listening();
        let owner = caller(1, Role::User);
        let early = cache.ticket();
        cache.invalidate(7);
        cache.insert(early, key, status("stale"));
        assert!(cache.get(key.job_id, &owner).is_none());
        // Another simulation's notification does not matter.
        let t = cache.ticket();
        cache.invalidate(99);
        cache.insert(t, key, status("fresh"));
        assert_eq!(
            title(cache.get(key.job_id, &owner)).as_deref(),
            Some("fresh")
        );
    }

    #[test]
    fn nothing_is_cached_without_the_listener() {
        let cache = StatusCache::new(LONG);
        let key = key_of_user_1();
        let owner = caller(1, Role::User);
        cache.insert(cache.ticket(), key, status("a"));
        assert!(cache.get(key.job_id, &owner).is_none());
        cache.set_listening(true);
        let t = cache.ticket();
        cache.insert(t, key, status("a"));
        assert!(cache.get(key.job_id, &owner).is_some());
        cache.set_listening(false);
        assert!(cache.get(key.job_id, &owner).is_none());
        cache.set_listening(true);
        assert!(
            cache.get(key.job_id, &owner).is_none(),
            "dropped on reconnect"
        );
        cache.insert(t, key, status("a"));
        assert!(
            cache.get(key.job_id, &owner).is_none(),
            "a read from before the reconnect"
        );
    }

    #[test]
    fn entries_expire_and_a_zero_ttl_disables() {
        let cache = StatusCache::new(Duration::from_millis(30));
        cache.set_listening(true);
        let key = key_of_user_1();
        let owner = caller(1, Role::User);
        cache.insert(cache.ticket(), key, status("a"));
        assert!(cache.get(key.job_id, &owner).is_some());
        std::thread::sleep(Duration::from_millis(40));
        assert!(cache.get(key.job_id, &owner).is_none());

        let off = StatusCache::new(Duration::ZERO);
        off.set_listening(true);
        off.insert(off.ticket(), key, status("a"));
        assert!(off.get(key.job_id, &owner).is_none());
    }
}
