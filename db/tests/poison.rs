//! Damaged stored data stays with its own simulation: merge sums that do not decode end that
//! simulation FAILED with the damage named (at the completion that meets them, or in the
//! reaper's requeue of expired leases and its finishing of stale merges, which go on to the
//! others), and a damaged final page
//! makes only that page unreadable.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use db::aggregation::Aggregation;
use db::enums::{JobState, TaskState};
use db::results::{self, TaskPage};
use diesel_async::{RunQueryDsl, SimpleAsyncConnection};
use support::{complete, fresh, page, running, sim_state, tasks_of};

fn pages(t: usize) -> Vec<TaskPage> {
    ["fluence", "z_profile"]
        .iter()
        .map(|name| page(name, Aggregation::Mean, vec![1.0 + t as f64, 2.0, 3.0]))
        .collect()
}

async fn merge_log(conn: &mut db::Conn, sim: i64) -> String {
    let logs = db::logs::list(conn, sim).await.unwrap();
    let log = logs
        .iter()
        .find(|l| l.name == "merge")
        .expect("a merge log");
    String::from_utf8_lossy(&log.content).into_owned()
}

const DAMAGE_SUMS: &str =
    "UPDATE merge_accumulators SET sum_nx = '\\x4d414343' WHERE estimator_name = 'z_profile' AND simulation_id = ";

async fn submit(conn: &mut db::Conn, ntasks: i32) -> i64 {
    support::submit(conn, ntasks, 100 * i64::from(ntasks)).await
}

#[tokio::test]
async fn a_completion_that_meets_damaged_sums_fails_the_simulation_naming_them() {
    let (_db, mut conn, sim, claimed) = running(3, 300).await;
    complete(&mut conn, &claimed[0], 100, &pages(0)).await;
    conn.batch_execute(&format!("{DAMAGE_SUMS}{sim}"))
        .await
        .unwrap();

    let err = db::merge::complete_with_results(&mut conn, &claimed[1].lease("w"), 100, &pages(1))
        .await
        .unwrap_err();
    assert!(matches!(err, db::DbError::Corrupt(_)), "{err:?}");
    let sim_row = db::simulations::get(&mut conn, sim).await.unwrap();
    assert_eq!(sim_row.job_state, JobState::Failed);
    let ts = tasks_of(&mut conn, sim).await;
    let t1 = ts.iter().find(|t| t.id == claimed[1].id).unwrap();
    assert_eq!((t1.task_state, t1.attempts), (TaskState::Failed, 1));
    let why = t1.last_error.clone().unwrap();
    assert!(
        why.contains("page 0 of z_profile") && why.contains("corrupt"),
        "{why}"
    );
    let t2 = ts.iter().find(|t| t.id == claimed[2].id).unwrap();
    assert_eq!(
        t2.task_state,
        TaskState::Canceled,
        "the rest cannot be merged"
    );
    assert!(merge_log(&mut conn, sim)
        .await
        .contains("page 0 of z_profile"));
    // The undamaged page's sums are still readable as partial results.
    let got = results::read_all(&mut conn, sim).await.unwrap();
    let fluence = got.iter().find(|p| p.estimator == "fluence").unwrap();
    assert_eq!(
        (fluence.damaged.as_deref(), fluence.values.len()),
        (None, 3)
    );
    let z = got.iter().find(|p| p.estimator == "z_profile").unwrap();
    assert!(z
        .damaged
        .as_deref()
        .unwrap()
        .contains("page 0 of z_profile"));
}

#[tokio::test]
async fn one_damaged_stale_merge_does_not_stop_the_reaper_finishing_the_others() {
    let (_db, mut conn) = fresh().await;
    // Three simulations whose worker died between their last completion and the final merge:
    // the middle one's sums are damaged.
    let mut sims = Vec::new();
    for _ in 0..3 {
        let sim = submit(&mut conn, 1).await;
        sims.push(sim);
    }
    let claimed = support::claim(&mut conn, 3).await;
    assert_eq!(claimed.len(), 3);
    for (i, t) in claimed.iter().enumerate() {
        // Fold without the final merge: a second, still-running task keeps it open; then
        // it is completed behind the merge's back and the simulation left MERGING.
        diesel::sql_query(
            "INSERT INTO tasks (simulation_id, task_index, requested_primaries) VALUES ($1, 1, 1)",
        )
        .bind::<diesel::sql_types::BigInt, _>(t.simulation_id)
        .execute(&mut conn)
        .await
        .unwrap();
        complete(&mut conn, t, 100, &pages(i)).await;
    }
    conn.batch_execute(&format!(
        "{DAMAGE_SUMS}{bad};
         UPDATE tasks SET task_state = 'COMPLETED', end_time = now() WHERE task_state = 'PENDING';
         UPDATE simulations SET job_state = 'MERGING', update_time = now() - interval '1 hour';",
        bad = sims[1]
    ))
    .await
    .unwrap();

    let finished = db::merge::finalize_stale(&mut conn, 60.0).await.unwrap();
    assert_eq!(finished, 2, "the two healthy merges were finished");
    for (i, sim) in sims.iter().enumerate() {
        let state = db::simulations::get(&mut conn, *sim)
            .await
            .unwrap()
            .job_state;
        let want = if i == 1 {
            JobState::Failed
        } else {
            JobState::Completed
        };
        assert_eq!(state, want, "simulation {i}");
    }
    let why = merge_log(&mut conn, sims[1]).await;
    assert!(why.contains("page 0 of z_profile"), "{why}");
    // Nothing is left for the reaper to trip over again.
    assert_eq!(db::merge::finalize_stale(&mut conn, 60.0).await.unwrap(), 0);
}

#[tokio::test]
async fn a_damaged_final_page_is_the_only_unreadable_one() {
    let (_db, mut conn, sim, claimed) = running(1, 100).await;
    complete(&mut conn, &claimed[0], 100, &pages(0)).await;
    assert_eq!(sim_state(&mut conn, sim).await, JobState::Completed);
    conn.batch_execute(
        "UPDATE pages SET values_data = '\\x4d435250ff' FROM estimators e
         WHERE e.id = pages.estimator_id AND e.name = 'fluence'",
    )
    .await
    .unwrap();
    let got = results::read_all(&mut conn, sim).await.unwrap();
    assert_eq!(got.len(), 2);
    let fluence = got.iter().find(|p| p.estimator == "fluence").unwrap();
    let why = fluence.damaged.as_deref().expect("fluence is damaged");
    assert!(why.contains("page 0 of fluence"), "{why}");
    assert!(fluence.values.is_empty());
    let z = got.iter().find(|p| p.estimator == "z_profile").unwrap();
    assert_eq!(
        (z.damaged.as_deref(), z.values.clone()),
        (None, vec![1.0, 2.0, 3.0])
    );
}

#[tokio::test]
async fn one_damaged_merge_does_not_stop_the_requeue_of_expired_leases_finishing_the_others() {
    let (_db, mut conn) = fresh().await;
    // Three simulations of two tasks and one attempt each: the first task of each completes,
    // the second one's worker dies, so its lease expires and it fails, out of attempts. The
    // middle simulation's sums are damaged.
    let mut sims = Vec::new();
    for _ in 0..3 {
        sims.push(support::submit_with(&mut conn, 2, 200, 1).await);
    }
    let claimed = support::claim(&mut conn, 6).await;
    assert_eq!(claimed.len(), 6);
    for sim in &sims {
        let first = claimed
            .iter()
            .find(|t| t.simulation_id == *sim && t.task_index == 0)
            .unwrap();
        complete(&mut conn, first, 100, &pages(0)).await;
    }
    conn.batch_execute(&format!(
        "{DAMAGE_SUMS}{bad};
         UPDATE tasks SET lease_expires_at = now() - interval '1 second'
         WHERE task_state = 'RUNNING';",
        bad = sims[1]
    ))
    .await
    .unwrap();

    let (requeued, failed) = db::queue::requeue_expired(&mut conn)
        .await
        .expect("the requeue is not stopped by one damaged merge");
    assert_eq!((requeued, failed), (0, 3));
    for (i, sim) in sims.iter().enumerate() {
        let want = if i == 1 {
            JobState::Failed
        } else {
            JobState::Completed
        };
        assert_eq!(sim_state(&mut conn, *sim).await, want, "simulation {i}");
    }
    let why = merge_log(&mut conn, sims[1]).await;
    assert!(why.contains("page 0 of z_profile"), "{why}");
}
