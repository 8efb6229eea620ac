//! The task queue against a real PostgreSQL: claims, leases, stale completions, retries,
//! requeueing after a lost worker, and the simulation state that follows.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use db::enums::{JobState, SimType, TaskState};
use db::queue::{self, Completion, Lease};
use diesel_async::SimpleAsyncConnection;
use std::collections::HashSet;
use std::time::Duration;
use support::{claim_one, fresh, sim_state, task_states};

const LEASE: Duration = Duration::from_secs(30);

async fn submit(conn: &mut db::Conn, ntasks: i32, max_attempts: i32) -> i64 {
    support::submit_with(conn, ntasks, 1000 * i64::from(ntasks) + 1, max_attempts).await
}

#[tokio::test]
async fn a_claim_leases_tasks_and_starts_the_simulation() {
    let (_db, mut conn) = fresh().await;
    let sim = submit(&mut conn, 3, 3).await;
    let claimed = queue::claim(&mut conn, "w1", 2, LEASE, db::enums::SimType::ALL)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 2);
    assert_eq!(claimed[0].task_index, 0);
    assert_eq!(claimed[0].attempt, 1);
    assert_eq!(claimed[0].sim_type, SimType::Builtin);
    assert_eq!(
        claimed[0].requested_primaries, 1001,
        "the remainder goes to the first task"
    );
    assert_eq!(sim_state(&mut conn, sim).await, JobState::Running);
    assert_eq!(
        task_states(&mut conn, sim).await,
        vec![TaskState::Running, TaskState::Running, TaskState::Pending]
    );
    let rest = queue::claim(&mut conn, "w2", 10, LEASE, db::enums::SimType::ALL)
        .await
        .unwrap();
    assert_eq!(rest.len(), 1);
    assert!(
        queue::claim(&mut conn, "w3", 10, LEASE, db::enums::SimType::ALL)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn concurrent_claimers_never_share_a_task() {
    let (db, mut conn) = fresh().await;
    for _ in 0..10 {
        submit(&mut conn, 10, 3).await;
    }
    let mut handles = Vec::new();
    for w in 0..4 {
        let config = db.config().clone();
        handles.push(tokio::spawn(async move {
            let mut conn = db::connect(&config).await.unwrap();
            let mut mine = Vec::new();
            loop {
                let got = queue::claim(
                    &mut conn,
                    &format!("w{w}"),
                    3,
                    LEASE,
                    db::enums::SimType::ALL,
                )
                .await
                .unwrap();
                if got.is_empty() {
                    break;
                }
                mine.extend(got.into_iter().map(|t| t.id));
            }
            mine
        }));
    }
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.unwrap());
    }
    let unique: HashSet<i64> = all.iter().copied().collect();
    assert_eq!(all.len(), 100, "every task claimed");
    assert_eq!(unique.len(), 100, "no task claimed twice");
}

#[tokio::test]
async fn the_last_completion_completes_the_simulation() {
    let (_db, mut conn) = fresh().await;
    let sim = submit(&mut conn, 2, 3).await;
    let claimed = queue::claim(&mut conn, "w", 10, LEASE, db::enums::SimType::ALL)
        .await
        .unwrap();
    let lost = queue::complete_many(
        &mut conn,
        &[Completion {
            lease: claimed[0].lease("w"),
            simulated_primaries: 1001,
        }],
    )
    .await
    .unwrap();
    assert!(lost.is_empty());
    assert_eq!(sim_state(&mut conn, sim).await, JobState::Running);
    queue::complete(&mut conn, &claimed[1].lease("w"), 1000)
        .await
        .unwrap();
    let s = db::simulations::get(&mut conn, sim).await.unwrap();
    assert_eq!(s.job_state, JobState::Completed);
    assert!(s.end_time.is_some());
}

#[tokio::test]
async fn a_completion_from_a_stale_attempt_is_rejected() {
    let (_db, mut conn) = fresh().await;
    let sim = submit(&mut conn, 1, 3).await;
    let first = claim_one(&mut conn, "dead-worker").await;
    // The worker vanishes; its lease runs out and the reaper requeues the task.
    conn.batch_execute("UPDATE tasks SET lease_expires_at = now() - interval '1 second'")
        .await
        .unwrap();
    assert_eq!(queue::requeue_expired(&mut conn).await.unwrap(), (1, 0));
    conn.batch_execute("UPDATE tasks SET run_after = now()")
        .await
        .unwrap();
    let second = claim_one(&mut conn, "live-worker").await;
    assert_eq!(second.id, first.id);
    assert_eq!(second.attempt, 2);

    // The first worker comes back and tries to complete: rejected, and nothing changes.
    let err = queue::complete(&mut conn, &first.lease("dead-worker"), 5)
        .await
        .unwrap_err();
    assert!(queue::is_lease_lost(&err), "{err}");
    // Even with the right owner name but the old attempt number.
    let stale = Lease {
        attempt: 1,
        ..second.lease("live-worker")
    };
    assert!(queue::is_lease_lost(
        &queue::complete(&mut conn, &stale, 5).await.unwrap_err()
    ));
    assert!(queue::is_lease_lost(
        &queue::report_progress(&mut conn, &first.lease("dead-worker"), 3, None)
            .await
            .unwrap_err()
    ));
    assert_eq!(sim_state(&mut conn, sim).await, JobState::Running);

    queue::complete(&mut conn, &second.lease("live-worker"), 1001)
        .await
        .unwrap();
    assert_eq!(sim_state(&mut conn, sim).await, JobState::Completed);
    let t = &db::tasks::list(&mut conn, &Default::default())
        .await
        .unwrap()[0]
        .task;
    assert_eq!(t.simulated_primaries, 1001);
    assert!(t
        .last_error
        .as_deref()
        .unwrap_or("")
        .contains("dead-worker"));
}

#[tokio::test]
async fn failures_retry_with_backoff_then_fail_the_simulation() {
    let (_db, mut conn) = fresh().await;
    let sim = submit(&mut conn, 1, 2).await;
    let t = claim_one(&mut conn, "w").await;
    let state = queue::fail(&mut conn, &t.lease("w"), "segfault", true)
        .await
        .unwrap();
    assert_eq!(state, TaskState::Pending);
    // Backoff: not claimable right away.
    assert!(
        queue::claim(&mut conn, "w", 1, LEASE, db::enums::SimType::ALL)
            .await
            .unwrap()
            .is_empty()
    );
    conn.batch_execute("UPDATE tasks SET run_after = now()")
        .await
        .unwrap();
    let t = claim_one(&mut conn, "w").await;
    assert_eq!(t.attempt, 2);
    let state = queue::fail(&mut conn, &t.lease("w"), "segfault again", true)
        .await
        .unwrap();
    assert_eq!(state, TaskState::Failed, "out of attempts");
    assert_eq!(sim_state(&mut conn, sim).await, JobState::Failed);
    let task = &db::tasks::list(&mut conn, &Default::default())
        .await
        .unwrap()[0]
        .task;
    assert_eq!(task.last_error.as_deref(), Some("segfault again"));
}

#[tokio::test]
async fn a_simulation_with_some_failed_tasks_completes_from_the_others() {
    let (_db, mut conn) = fresh().await;
    let sim = submit(&mut conn, 2, 1).await;
    let c = queue::claim(&mut conn, "w", 2, LEASE, db::enums::SimType::ALL)
        .await
        .unwrap();
    queue::fail(&mut conn, &c[0].lease("w"), "bad input", false)
        .await
        .unwrap();
    assert_eq!(sim_state(&mut conn, sim).await, JobState::Running);
    queue::complete(&mut conn, &c[1].lease("w"), 1000)
        .await
        .unwrap();
    assert_eq!(sim_state(&mut conn, sim).await, JobState::Completed);
    assert_eq!(
        task_states(&mut conn, sim).await,
        vec![TaskState::Failed, TaskState::Completed]
    );
}

#[tokio::test]
async fn heartbeats_extend_held_leases_and_name_lost_ones() {
    let (_db, mut conn) = fresh().await;
    submit(&mut conn, 2, 3).await;
    let c = queue::claim(
        &mut conn,
        "w",
        2,
        Duration::from_secs(5),
        db::enums::SimType::ALL,
    )
    .await
    .unwrap();
    // Task 1 is canceled behind the worker's back.
    conn.batch_execute(&format!(
        "UPDATE tasks SET task_state = 'CANCELED', end_time = now() WHERE id = {}",
        c[1].id
    ))
    .await
    .unwrap();
    let leases: Vec<Lease> = c.iter().map(|t| t.lease("w")).collect();
    let lost = queue::heartbeat(&mut conn, &leases, Duration::from_secs(600))
        .await
        .unwrap();
    assert_eq!(lost, vec![c[1].id]);
    let t = &db::tasks::list(&mut conn, &Default::default())
        .await
        .unwrap()[0]
        .task;
    let left = t.lease_expires_at.unwrap() - chrono::Utc::now();
    assert!(left.num_seconds() > 500, "lease extended, {left}");
}

#[tokio::test]
async fn release_hands_a_task_back_without_using_an_attempt() {
    let (_db, mut conn) = fresh().await;
    submit(&mut conn, 1, 1).await;
    let t = claim_one(&mut conn, "w").await;
    queue::release(&mut conn, &t.lease("w")).await.unwrap();
    let again = claim_one(&mut conn, "w2").await;
    assert_eq!(again.attempt, 1, "the released attempt does not count");
    assert!(queue::is_lease_lost(
        &queue::release(&mut conn, &t.lease("w")).await.unwrap_err()
    ));
}

#[tokio::test]
async fn an_expired_lease_out_of_attempts_fails_the_task() {
    let (_db, mut conn) = fresh().await;
    let sim = submit(&mut conn, 1, 1).await;
    queue::claim(&mut conn, "w", 1, LEASE, db::enums::SimType::ALL)
        .await
        .unwrap();
    conn.batch_execute("UPDATE tasks SET lease_expires_at = now() - interval '1 second'")
        .await
        .unwrap();
    assert_eq!(queue::requeue_expired(&mut conn).await.unwrap(), (0, 1));
    assert_eq!(sim_state(&mut conn, sim).await, JobState::Failed);
}

#[tokio::test]
async fn progress_is_stored_and_announced() {
    use futures_util::StreamExt;
    let (db, mut listener) = fresh().await;
    listener
        .batch_execute(&format!("LISTEN {}", db::notify::SIMULATION_EVENTS))
        .await
        .unwrap();
    let mut conn = db.conn().await;
    let sim = submit(&mut conn, 1, 1).await;
    let t = claim_one(&mut conn, "w").await;
    queue::report_progress(&mut conn, &t.lease("w"), 500, Some(7))
        .await
        .unwrap();
    let task = &db::tasks::list(&mut conn, &Default::default())
        .await
        .unwrap()[0]
        .task;
    assert_eq!(
        (task.simulated_primaries, task.estimated_time_s),
        (500, Some(7))
    );
    let mut stream = std::pin::pin!(listener.notifications_stream());
    let n = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("a notification arrives")
        .unwrap()
        .unwrap();
    assert_eq!(n.channel, db::notify::SIMULATION_EVENTS);
    assert_eq!(n.payload, sim.to_string());
}

/// Regression: two tasks of one simulation completing in concurrent transactions each saw
/// the other still RUNNING, and the simulation was never finished.
#[tokio::test]
async fn concurrent_last_completions_still_finish_the_simulation() {
    let (db, mut conn) = fresh().await;
    for _ in 0..10 {
        let sim = submit(&mut conn, 2, 3).await;
        let c = queue::claim(&mut conn, "w", 2, LEASE, db::enums::SimType::ALL)
            .await
            .unwrap();
        let mut handles = Vec::new();
        for t in c {
            let config = db.config().clone();
            handles.push(tokio::spawn(async move {
                let mut conn = db::connect(&config).await.unwrap();
                queue::complete(&mut conn, &t.lease("w"), 1000)
                    .await
                    .unwrap();
            }));
        }
        for h in handles {
            h.await.unwrap();
        }
        assert_eq!(sim_state(&mut conn, sim).await, JobState::Completed);
    }
}

/// A claim takes only tasks of the simulators it names: the others stay `PENDING` (and their
/// simulation too), in their place in the queue, until a claim that names them.
#[tokio::test]
async fn a_claim_takes_only_tasks_of_the_simulators_it_names() {
    let (_db, mut conn) = fresh().await;
    let owner = db::testing::user(&mut conn, "physicist").await;
    let new = |sim_type| db::testing::new_simulation(owner, sim_type, 2, 200);
    // Oldest first: the SHIELD-HIT12A tasks are at the head of the queue.
    let shieldhit = db::testing::submit(&mut conn, new(SimType::Shieldhit), None).await;
    let topas = db::testing::submit(&mut conn, new(SimType::Topas), None).await;
    let builtin = db::testing::submit(&mut conn, new(SimType::Builtin), None).await;

    assert!(queue::claim(&mut conn, "none", 10, LEASE, &[])
        .await
        .unwrap()
        .is_empty());
    let mine = queue::claim(&mut conn, "w1", 10, LEASE, &[SimType::Builtin])
        .await
        .unwrap();
    assert_eq!(
        mine.iter()
            .map(|t| (t.simulation_id, t.sim_type))
            .collect::<Vec<_>>(),
        vec![(builtin, SimType::Builtin); 2]
    );
    assert!(
        queue::claim(&mut conn, "w1", 10, LEASE, &[SimType::Builtin])
            .await
            .unwrap()
            .is_empty()
    );
    for sim in [shieldhit, topas] {
        assert_eq!(sim_state(&mut conn, sim).await, JobState::Pending);
        assert_eq!(
            task_states(&mut conn, sim).await,
            vec![TaskState::Pending; 2]
        );
    }

    // One task of a capable worker, then the rest of that simulator; TOPAS stays.
    let types = [SimType::Builtin, SimType::Shieldhit];
    let one = queue::claim(&mut conn, "w2", 1, LEASE, &types)
        .await
        .unwrap();
    assert_eq!((one.len(), one[0].simulation_id), (1, shieldhit));
    assert_eq!(one[0].sim_type, SimType::Shieldhit);
    assert!(one[0].started_simulation);
    let rest = queue::claim(&mut conn, "w2", 10, LEASE, &types)
        .await
        .unwrap();
    assert_eq!(
        rest.iter().map(|t| t.simulation_id).collect::<Vec<_>>(),
        vec![shieldhit]
    );
    assert_eq!(sim_state(&mut conn, shieldhit).await, JobState::Running);
    assert_eq!(sim_state(&mut conn, topas).await, JobState::Pending);

    // Every simulator: the unfiltered statement.
    let all = queue::claim(&mut conn, "w3", 10, LEASE, SimType::ALL)
        .await
        .unwrap();
    assert_eq!(
        all.iter().map(|t| t.simulation_id).collect::<Vec<_>>(),
        vec![topas; 2]
    );
}

/// A task that goes back to the queue shows no progress until its next run reports (its
/// last run's work is gone); a task that ends keeps how far its last run got.
#[tokio::test]
async fn a_task_back_in_the_queue_shows_no_progress_and_an_ended_one_keeps_it() {
    async fn progress(conn: &mut db::Conn, sim: i64) -> (TaskState, i64, Option<i32>) {
        let t = support::tasks_of(conn, sim).await.remove(0);
        (t.task_state, t.simulated_primaries, t.estimated_time_s)
    }
    let (_db, mut conn) = fresh().await;
    // Three attempts: the hand-back and the machine fault use none, the failure and the
    // expired lease one each, and the last run uses the third.
    let sim = submit(&mut conn, 1, 3).await;
    // Each way back to PENDING: a hand-back, a machine fault, a failure to retry, a lease
    // that expired.
    for way in 0..4 {
        let t = claim_one(&mut conn, "w").await;
        let lease = t.lease("w");
        queue::report_progress(&mut conn, &lease, 400, Some(9))
            .await
            .unwrap();
        assert_eq!(
            progress(&mut conn, sim).await,
            (TaskState::Running, 400, Some(9))
        );
        match way {
            0 => queue::release(&mut conn, &lease).await.unwrap(),
            1 => {
                queue::release_machine_fault(&mut conn, &lease, "disk full", 5)
                    .await
                    .unwrap();
            }
            2 => {
                queue::fail(&mut conn, &lease, "try again", true)
                    .await
                    .unwrap();
            }
            _ => {
                conn.batch_execute(
                    "UPDATE tasks SET lease_expires_at = now() - interval '1 second'",
                )
                .await
                .unwrap();
                queue::requeue_expired(&mut conn).await.unwrap();
            }
        }
        assert_eq!(
            progress(&mut conn, sim).await,
            (TaskState::Pending, 0, None),
            "way {way}"
        );
        conn.batch_execute("UPDATE tasks SET run_after = now()")
            .await
            .unwrap();
    }
    // Out of attempts: FAILED, keeping what its last run reported.
    let t = claim_one(&mut conn, "w").await;
    let lease = t.lease("w");
    queue::report_progress(&mut conn, &lease, 250, Some(3))
        .await
        .unwrap();
    queue::fail(&mut conn, &lease, "broken", true)
        .await
        .unwrap();
    assert_eq!(
        progress(&mut conn, sim).await,
        (TaskState::Failed, 250, Some(3))
    );
}
