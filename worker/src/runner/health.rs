//! This worker's health: a worker whose machine keeps failing tasks (a full disk, a failing
//! device, a simulator program missing here) stops claiming, so that it does not fail the rest
//! of the queue in milliseconds, and says so.
//!
//! Every outcome of a handler is recorded ([`Health::record`], by the runner). After
//! [`FAULTS_TO_UNHEALTHY`] machine faults in a row the worker is unhealthy: it logs an ERROR
//! line, claims nothing for [`FIRST_BACKOFF`], then claims one task at a time as a trial. A
//! trial that meets a machine fault again doubles the pause (up to [`MAX_BACKOFF`]); a task
//! that completes, or fails on its own input, shows the machine works, and the worker claims
//! as before. The tasks it handed on carry the fault and the worker's name in `last_error`
//! (see [`db::queue::release_machine_fault`]), which `admin-cli list-tasks` shows.
//!
//! Each runner keeps its own.

use crate::execute::Outcome;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Machine faults in a row after which the worker stops claiming.
pub const FAULTS_TO_UNHEALTHY: u32 = 3;
/// The first pause in claims of an unhealthy worker.
pub const FIRST_BACKOFF: Duration = Duration::from_secs(60);
/// The longest pause in claims.
pub const MAX_BACKOFF: Duration = Duration::from_secs(600);
pub use crate::outcome::FREE_RELEASES;

/// Whether the worker's machine runs tasks, from how its recent tasks ended.
#[derive(Debug)]
pub struct Health {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// Machine faults since the last task that ran through.
    in_a_row: u32,
    /// Set while the worker is unhealthy.
    sick: Option<Sick>,
}

#[derive(Debug, Clone, Copy)]
struct Sick {
    /// No claims before this.
    until: Instant,
    /// The current pause.
    backoff: Duration,
    /// The pause is over and a trial task may run.
    trying: bool,
}

/// What the claim loop may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permit {
    /// Claim up to this many tasks (0: wait for a running task to end).
    Claim(usize),
    /// Claim nothing for this long.
    Wait(Duration),
}

impl Default for Health {
    fn default() -> Self {
        Self::new()
    }
}

impl Health {
    /// A healthy worker.
    pub const fn new() -> Self {
        Self {
            state: Mutex::new(State {
                in_a_row: 0,
                sick: None,
            }),
        }
    }

    /// Counts how a task ended: a machine fault against the worker; a completion, or a
    /// failure on the task's own input, for it. Transient failures and stops say nothing.
    pub fn record(&self, outcome: &Outcome) {
        self.record_at(outcome, Instant::now());
    }

    /// How many tasks the claim loop may claim, given `free` slots and `executing` tasks.
    pub fn permit(&self, free: usize, executing: usize) -> Permit {
        self.permit_at(free, executing, Instant::now())
    }

    /// Whether the worker is healthy: no run of machine faults has made it unhealthy, or a
    /// task has run through since (during a trial after a pause it is still unhealthy).
    pub fn is_healthy(&self) -> bool {
        self.state.lock().is_ok_and(|s| s.sick.is_none())
    }

    /// Whether the worker is pausing its claims (tasks claimed meanwhile should go back).
    pub fn backing_off(&self) -> bool {
        self.backing_off_at(Instant::now())
    }

    fn record_at(&self, outcome: &Outcome, now: Instant) {
        let Ok(mut s) = self.state.lock() else {
            return;
        };
        match outcome {
            Outcome::MachineFault { error, fault } => {
                s.in_a_row += 1;
                let in_a_row = s.in_a_row;
                match &mut s.sick {
                    None if in_a_row >= FAULTS_TO_UNHEALTHY => {
                        s.sick = Some(Sick {
                            until: now + FIRST_BACKOFF,
                            backoff: FIRST_BACKOFF,
                            trying: false,
                        });
                        tracing::error!(
                            faults = in_a_row,
                            %fault,
                            last_error = %error,
                            "worker unhealthy: {in_a_row} machine faults in a row; it claims no \
                             task for {} s, then tries one",
                            FIRST_BACKOFF.as_secs()
                        );
                    }
                    None => tracing::warn!(
                        faults = in_a_row,
                        %fault,
                        "machine fault; the task goes to another worker"
                    ),
                    Some(sick) if sick.trying => {
                        sick.backoff = (sick.backoff * 2).min(MAX_BACKOFF);
                        sick.until = now + sick.backoff;
                        sick.trying = false;
                        tracing::error!(
                            faults = in_a_row,
                            %fault,
                            last_error = %error,
                            "worker still unhealthy: the trial task met a machine fault too; it \
                             claims no task for {} s",
                            sick.backoff.as_secs()
                        );
                    }
                    // A task that was running when the worker turned unhealthy.
                    Some(_) => {}
                }
            }
            Outcome::Done { .. } | Outcome::Failed { retry: false, .. } => {
                if s.sick.is_some() {
                    tracing::warn!(
                        faults = s.in_a_row,
                        "worker healthy again: a task ran through; claiming as before"
                    );
                }
                s.in_a_row = 0;
                s.sick = None;
            }
            Outcome::Failed { retry: true, .. } | Outcome::Stopped(_) => {}
        }
    }

    fn permit_at(&self, free: usize, executing: usize, now: Instant) -> Permit {
        let Ok(mut s) = self.state.lock() else {
            return Permit::Claim(free);
        };
        match &mut s.sick {
            None => Permit::Claim(free),
            Some(sick) if now < sick.until => Permit::Wait(sick.until - now),
            Some(sick) => {
                if !sick.trying {
                    sick.trying = true;
                    tracing::warn!("worker unhealthy: pause over; trying one task");
                }
                // One trial at a time.
                Permit::Claim(if executing == 0 { free.min(1) } else { 0 })
            }
        }
    }

    fn backing_off_at(&self, now: Instant) -> bool {
        self.state
            .lock()
            .is_ok_and(|s| s.sick.is_some_and(|sick| !sick.trying && now < sick.until))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::execute::MachineFault;

    fn fault() -> Outcome {
        Outcome::MachineFault {
            error: "disk full: cannot write input file \"beam.dat\"".into(),
            fault: MachineFault::DiskFull,
        }
    }

    fn done() -> Outcome {
        Outcome::Done {
            simulated_primaries: 1,
            pages: Vec::new(),
        }
    }

    #[test]
    fn repeated_machine_faults_stop_claims_then_one_trial_at_a_time() {
        let h = Health::new();
        let t0 = Instant::now();
        for _ in 1..FAULTS_TO_UNHEALTHY {
            h.record_at(&fault(), t0);
        }
        assert_eq!(h.permit_at(3, 0, t0), Permit::Claim(3), "not yet");
        h.record_at(&fault(), t0);
        assert_eq!(h.permit_at(3, 0, t0), Permit::Wait(FIRST_BACKOFF));
        assert!(h.backing_off_at(t0));
        // Tasks that were running meanwhile fault too: the pause does not grow.
        h.record_at(&fault(), t0);
        let later = t0 + FIRST_BACKOFF;
        assert!(!h.backing_off_at(later));
        assert_eq!(
            h.permit_at(3, 1, later),
            Permit::Claim(0),
            "wait for the running one"
        );
        assert_eq!(h.permit_at(3, 0, later), Permit::Claim(1), "one trial");
        // The trial faults: the pause doubles.
        h.record_at(&fault(), later);
        assert_eq!(h.permit_at(3, 0, later), Permit::Wait(FIRST_BACKOFF * 2));
        // ... and keeps doubling up to the cap.
        let mut now = later;
        for _ in 0..10 {
            now += MAX_BACKOFF;
            assert_eq!(h.permit_at(3, 0, now), Permit::Claim(1));
            h.record_at(&fault(), now);
        }
        assert_eq!(h.permit_at(3, 0, now), Permit::Wait(MAX_BACKOFF));
        // A trial that runs through makes it healthy.
        now += MAX_BACKOFF;
        assert_eq!(h.permit_at(3, 0, now), Permit::Claim(1));
        h.record_at(&done(), now);
        assert_eq!(h.permit_at(3, 0, now), Permit::Claim(3));
    }

    #[test]
    fn what_runs_through_resets_the_count_and_transient_failures_do_not() {
        let h = Health::new();
        let t0 = Instant::now();
        let input_fault = Outcome::Failed {
            error: "SHIELD-HIT12A exited with code 3".into(),
            retry: false,
        };
        let transient = Outcome::Failed {
            error: "no database connection".into(),
            retry: true,
        };
        for ended in [&done(), &input_fault] {
            for _ in 1..FAULTS_TO_UNHEALTHY {
                h.record_at(&fault(), t0);
            }
            h.record_at(ended, t0);
            h.record_at(&fault(), t0);
            assert_eq!(h.permit_at(2, 0, t0), Permit::Claim(2), "{ended}");
        }
        let h = Health::new();
        for _ in 1..FAULTS_TO_UNHEALTHY {
            h.record_at(&fault(), t0);
            h.record_at(&transient, t0);
            h.record_at(&Outcome::Stopped(crate::execute::Stop::Canceled), t0);
        }
        h.record_at(&fault(), t0);
        assert!(matches!(h.permit_at(2, 0, t0), Permit::Wait(_)));
    }
}
