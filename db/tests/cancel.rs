//! Cancel keeps what was computed: the completed tasks' results are merged into the canceled
//! simulation's (partial) pages, pending tasks never start, a late completion is not
//! counted, a merge under way is left to finish, and a cancel racing the last completion
//! always ends in one consistent state with readable results.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use db::aggregation::Aggregation;
use db::enums::{JobState, TaskState};
use db::queue::{self, Canceled};
use db::results::{self, TaskPage};
use diesel_async::SimpleAsyncConnection;
use support::{claim, complete, fresh, page, sim_state};

/// Task `t`'s pages: a dose page (mean) and a count page (sum).
fn pages(t: i32) -> Vec<TaskPage> {
    let t = f64::from(t);
    vec![
        page("count", Aggregation::Sum, vec![10.0 + t, 1.0]),
        page("dose", Aggregation::Mean, vec![1.0 + t, 2.0 * t, 0.5]),
    ]
}

fn primaries(t: i32) -> i64 {
    100 + 10 * i64::from(t)
}

/// The merge of the tasks `done`, as the pages should hold it.
fn expected(done: &[i32]) -> (Vec<f64>, Vec<f64>) {
    let n: i64 = done.iter().map(|&t| primaries(t)).sum();
    let mut dose = vec![0.0; 3];
    let mut count = vec![0.0; 2];
    for &t in done {
        let p = pages(t);
        for (c, v) in count.iter_mut().zip(&p[0].values) {
            *c += v;
        }
        for (d, v) in dose.iter_mut().zip(&p[1].values) {
            *d += primaries(t) as f64 * v / n as f64;
        }
    }
    (count, dose)
}

fn close(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| (x - y).abs() <= 1e-12 * y.abs().max(1.0))
}

async fn submit(conn: &mut db::Conn, ntasks: i32) -> i64 {
    support::submit(conn, ntasks, 1000 * i64::from(ntasks)).await
}

#[tokio::test]
async fn cancel_after_k_tasks_keeps_exactly_their_merge() {
    let (_db, mut conn) = fresh().await;
    let sim = submit(&mut conn, 8).await;
    // Two slots: tasks run two at a time; three complete, one is running at the cancel.
    let mut done = Vec::new();
    let first = claim(&mut conn, 2).await;
    for t in &first {
        complete(&mut conn, t, primaries(t.task_index), &pages(t.task_index)).await;
        done.push(t.task_index);
    }
    let second = claim(&mut conn, 2).await;
    let (finished, running) = (&second[0], &second[1]);
    complete(
        &mut conn,
        finished,
        primaries(finished.task_index),
        &pages(finished.task_index),
    )
    .await;
    done.push(finished.task_index);

    let c = queue::cancel(&mut conn, sim).await.unwrap();
    assert_eq!(
        c,
        Canceled::Now { tasks: 5 },
        "one running and four pending"
    );
    assert_eq!(
        queue::cancel(&mut conn, sim).await.unwrap(),
        Canceled::Ended
    );
    // The running task ends after the cancel: its result is refused, not counted.
    let late = db::merge::complete_with_results(
        &mut conn,
        &running.lease("w"),
        primaries(running.task_index),
        &pages(running.task_index),
    )
    .await
    .unwrap_err();
    assert!(queue::is_lease_lost(&late), "{late:?}");
    // The pending tasks never start.
    assert!(claim(&mut conn, 10).await.is_empty());

    let s = db::simulations::get(&mut conn, sim).await.unwrap();
    assert_eq!(s.job_state, JobState::Canceled);
    let got = results::read_all(&mut conn, sim).await.unwrap();
    let (count, dose) = expected(&done);
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|p| p.partial), "marked partial");
    // The page list (ListEstimators) says the same.
    let (infos, partial) = db::page_info::list(&mut conn, sim).await.unwrap();
    assert_eq!(infos.len(), 2);
    assert!(partial, "a canceled simulation's page list is partial");
    assert!(
        close(&got[0].values, &count),
        "{:?} vs {count:?}",
        got[0].values
    );
    assert!(
        close(&got[1].values, &dose),
        "{:?} vs {dose:?}",
        got[1].values
    );
    assert!(
        got[1].errors.is_some(),
        "three tasks give an error estimate"
    );
    // Which tasks, and how many primaries: the tasks say.
    let filter = db::tasks::TaskFilter {
        simulation_id: Some(sim),
        ..Default::default()
    };
    let tasks = db::tasks::list(&mut conn, &filter).await.unwrap();
    let completed: Vec<i32> = tasks
        .iter()
        .filter(|r| r.task.task_state == TaskState::Completed)
        .map(|r| r.task.task_index)
        .collect();
    let mut want = done.clone();
    want.sort_unstable();
    assert_eq!(completed, want);
    let simulated: i64 = tasks.iter().map(|r| r.task.simulated_primaries).sum();
    assert_eq!(simulated, done.iter().map(|&t| primaries(t)).sum::<i64>());
}

#[tokio::test]
async fn a_merge_under_way_is_left_to_finish() {
    let (_db, mut conn) = fresh().await;
    let sim = submit(&mut conn, 1).await;
    // A second, running task keeps the simulation open while the first folds; then it ends
    // behind the merge's back, leaving the simulation MERGING as a worker that died would.
    conn.batch_execute(&format!(
        "INSERT INTO tasks (simulation_id, task_index, requested_primaries) VALUES ({sim}, 1, 1)"
    ))
    .await
    .unwrap();
    let t = claim(&mut conn, 1).await;
    complete(&mut conn, &t[0], 100, &pages(0)).await;
    conn.batch_execute(&format!(
        "UPDATE tasks SET task_state = 'COMPLETED' WHERE task_state = 'PENDING';
         UPDATE simulations SET job_state = 'MERGING' WHERE id = {sim};"
    ))
    .await
    .unwrap();
    assert_eq!(
        queue::cancel(&mut conn, sim).await.unwrap(),
        Canceled::Merging
    );
    assert!(db::merge::finalize(&mut conn, sim).await.unwrap());
    let s = db::simulations::get(&mut conn, sim).await.unwrap();
    assert_eq!(s.job_state, JobState::Completed);
    let got = results::read_all(&mut conn, sim).await.unwrap();
    assert!(got.iter().all(|p| !p.partial));
    assert!(!db::page_info::list(&mut conn, sim).await.unwrap().1);
}

/// Cancel and the last completion, started together 50 times: each run ends COMPLETED with
/// every task's merge, or CANCELED with the merge of the tasks that completed first; never
/// anything in between, and the results always read.
#[tokio::test]
async fn cancel_racing_the_last_completion_always_ends_consistently() {
    let (db, mut a) = fresh().await;
    let mut b = db.conn().await;
    let (mut completed_runs, mut canceled_runs) = (0, 0);
    for _ in 0..50 {
        let sim = submit(&mut a, 2).await;
        let ts = claim(&mut a, 2).await;
        let (first, last) = if ts[0].task_index == 0 {
            (&ts[0], &ts[1])
        } else {
            (&ts[1], &ts[0])
        };
        complete(&mut a, first, primaries(0), &pages(0)).await;
        let last_lease = last.lease("w");
        let last_pages = pages(1);
        let (completion, cancel) = tokio::join!(
            db::merge::complete_with_results(&mut a, &last_lease, primaries(1), &last_pages),
            queue::cancel(&mut b, sim),
        );
        let state = sim_state(&mut a, sim).await;
        let got = results::read_all(&mut a, sim).await.unwrap();
        assert_eq!(got.len(), 2);
        match state {
            JobState::Completed => {
                completion.unwrap();
                assert_ne!(cancel.unwrap(), Canceled::Now { tasks: 1 });
                let (count, dose) = expected(&[0, 1]);
                assert!(close(&got[0].values, &count) && close(&got[1].values, &dose));
                assert!(got.iter().all(|p| !p.partial));
                completed_runs += 1;
            }
            JobState::Canceled => {
                assert!(queue::is_lease_lost(&completion.unwrap_err()));
                assert_eq!(cancel.unwrap(), Canceled::Now { tasks: 1 });
                let (count, dose) = expected(&[0]);
                assert!(close(&got[0].values, &count) && close(&got[1].values, &dose));
                assert!(got.iter().all(|p| p.partial));
                canceled_runs += 1;
            }
            other => panic!("simulation {sim} ended {other}"),
        }
    }
    eprintln!("completed {completed_runs}, canceled {canceled_runs}");
    assert_eq!(completed_runs + canceled_runs, 50);
}
