//! The incremental, primaries-weighted merge: exact means, standard errors, totals, partial
//! results while running, and no double counting.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use db::enums::{JobState, TaskState};
use db::queue;
use db::results::{self, PageMeta, TaskPage};
use support::{complete, pages, running, sim_state};

fn rel_close(a: f64, b: f64) -> bool {
    a == b || ((a - b).abs() / a.abs().max(b.abs())) <= 1e-12
}

#[tokio::test]
async fn the_merge_is_the_primaries_weighted_mean_of_the_tasks() {
    // Unequal primaries: 10_001 over 3 tasks -> 3334, 3334, 3333; we report other counts
    // actually simulated to make the weights clearly unequal.
    let (_db, mut conn, sim, tasks) = running(3, 10_001).await;
    let simulated = [1000i64, 3000, 6000];
    for (i, t) in tasks.iter().enumerate() {
        complete(&mut conn, t, simulated[i], &pages(i as u64)).await;
    }
    assert_eq!(sim_state(&mut conn, sim).await, JobState::Completed);
    let got = results::read_all(&mut conn, sim).await.unwrap();
    assert_eq!(got.len(), 3);
    let n_total: f64 = simulated.iter().map(|&n| n as f64).sum();
    for page in &got {
        assert!(!page.partial);
        // Each final page says what it holds: the three tasks and their 10,000 primaries.
        assert_eq!((page.tasks_merged, page.primaries), (Some(3), Some(10_000)));
        let idx = pages(0)
            .iter()
            .position(|p| p.estimator == page.estimator && p.page_number == page.page_number)
            .unwrap();
        let task_pages: Vec<Vec<f64>> = (0..3)
            .map(|t| pages(t as u64)[idx].values.clone())
            .collect();
        let is_total = pages(0)[idx].aggregation == db::aggregation::Aggregation::Sum;
        let errors = page.errors.as_ref().expect("three tasks give errors");
        for bin in 0..page.values.len() {
            let xs: Vec<f64> = task_pages.iter().map(|v| v[bin]).collect();
            if is_total {
                let sum: f64 = xs.iter().sum();
                assert!(
                    rel_close(page.values[bin], sum),
                    "total bin {bin}: {} vs {sum}",
                    page.values[bin]
                );
            } else {
                let mean = xs
                    .iter()
                    .zip(simulated)
                    .map(|(x, n)| x * n as f64)
                    .sum::<f64>()
                    / n_total;
                assert!(
                    rel_close(page.values[bin], mean),
                    "{} bin {bin}: {} vs {mean}",
                    page.estimator,
                    page.values[bin]
                );
                // Standard error of the weighted mean from the spread of the task estimates.
                let var = xs
                    .iter()
                    .zip(simulated)
                    .map(|(x, n)| n as f64 * (x - mean).powi(2))
                    .sum::<f64>()
                    / (2.0 * n_total);
                assert!(
                    (errors[bin] - var.sqrt()).abs() <= 1e-9 * mean.abs().max(1e-300),
                    "error bin {bin}"
                );
            }
        }
        assert_eq!(page.meta.value_unit, "Gy/primary");
    }
    // Estimator metadata survives the merge.
    let rz = got.iter().find(|p| p.estimator == "rz_map").unwrap();
    assert_eq!(rz.meta.estimator_metadata["geometry"], "cylinder");
    assert_eq!(rz.meta.dimension, 2);
}

#[tokio::test]
async fn partial_results_are_readable_while_running() {
    let (_db, mut conn, sim, tasks) = running(2, 2000).await;
    complete(&mut conn, &tasks[0], 1000, &pages(7)).await;
    assert_eq!(sim_state(&mut conn, sim).await, JobState::Running);
    let partial = results::read_all(&mut conn, sim).await.unwrap();
    assert!(partial
        .iter()
        .all(|p| p.partial && p.tasks_merged == Some(1) && p.errors.is_none()));
    let dose = partial
        .iter()
        .find(|p| p.estimator == "z_profile" && p.page_number == 0)
        .unwrap();
    for (a, b) in dose.values.iter().zip(&pages(7)[0].values) {
        assert!(rel_close(*a, *b));
    }
}

#[tokio::test]
async fn a_stale_completion_is_not_counted() {
    let (_db, mut conn, sim, tasks) = running(2, 2000).await;
    complete(&mut conn, &tasks[0], 1000, &pages(1)).await;
    // The same task's results again (a retried or duplicated completion): rejected.
    let err = db::merge::complete_with_results(&mut conn, &tasks[0].lease("w"), 1000, &pages(1))
        .await
        .unwrap_err();
    assert!(queue::is_lease_lost(&err), "{err}");
    let partial = results::read_all(&mut conn, sim).await.unwrap();
    assert!(partial.iter().all(|p| p.tasks_merged == Some(1)));
}

#[tokio::test]
async fn a_page_of_the_wrong_size_is_refused_and_fails_its_task_at_once() {
    let (_db, mut conn, sim, tasks) = running(2, 2000).await;
    complete(&mut conn, &tasks[0], 1000, &pages(1)).await;
    let mut bad = pages(2);
    bad[0].values.pop();
    let err = db::merge::complete_with_results(&mut conn, &tasks[1].lease("w"), 1000, &bad)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("49 values"), "{err}");
    // Nothing of it was folded, and the task failed (not to be retried) with the reason,
    // rather than stay RUNNING until its lease expires.
    let t = support::tasks_of(&mut conn, sim)
        .await
        .into_iter()
        .find(|t| t.id == tasks[1].id)
        .unwrap();
    assert_eq!((t.task_state, t.attempts), (TaskState::Failed, 1));
    let why = t.last_error.unwrap();
    assert!(
        why.contains("cannot be merged") && why.contains("49 values"),
        "{why}"
    );
    // One task completed, one failed: the simulation completes from the first.
    assert_eq!(sim_state(&mut conn, sim).await, JobState::Completed);
    let done = results::read_all(&mut conn, sim).await.unwrap();
    assert!(done.iter().all(|p| !p.partial && p.errors.is_none()));
    let first = &pages(1)[0];
    let kept = done
        .iter()
        .find(|p| p.estimator == first.estimator && p.page_number == 0);
    let kept = &kept.unwrap().values;
    assert_eq!(kept.len(), first.values.len());
    for (got, want) in kept.iter().zip(&first.values) {
        assert!(
            rel_close(*got, *want),
            "the first task's values: {got} vs {want}"
        );
    }
}

/// A concatenated page must stay readable: the task whose records would take it over a
/// page's limit fails, naming the limit, and the tasks before it are kept.
#[tokio::test]
async fn a_concatenation_that_would_pass_the_page_limit_keeps_the_tasks_before_it() {
    use db::aggregation::Aggregation;
    let (_db, mut conn, sim, tasks) = running(3, 300).await;
    // Zeros: stored sparse, so the test moves bitmaps, not 200 MB of doubles.
    let half = db::codec::DEFAULT_MAX_VALUES / 2 + 1;
    let page = TaskPage {
        estimator: "mcpl".into(),
        page_number: 0,
        meta: PageMeta::default(),
        aggregation: Aggregation::Concat,
        values: vec![0.0; half],
    };
    complete(&mut conn, &tasks[0], 100, std::slice::from_ref(&page)).await;
    let err = db::merge::complete_with_results(
        &mut conn,
        &tasks[1].lease("w"),
        100,
        std::slice::from_ref(&page),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, db::DbError::Invalid(m) if m.contains("more than a page holds")),
        "{err:?}"
    );
    // A smaller part still fits.
    let small = TaskPage {
        values: vec![1.0; 10],
        ..page
    };
    complete(&mut conn, &tasks[2], 100, &[small]).await;
    assert_eq!(sim_state(&mut conn, sim).await, JobState::Completed);
    let ts = support::tasks_of(&mut conn, sim).await;
    let state = |i: usize| ts.iter().find(|t| t.id == tasks[i].id).unwrap().task_state;
    assert_eq!(
        [state(0), state(1), state(2)],
        [
            TaskState::Completed,
            TaskState::Failed,
            TaskState::Completed
        ]
    );
    let got = results::read_all(&mut conn, sim).await.unwrap();
    assert_eq!(got[0].values.len(), half + 10, "readable, whole");
    assert_eq!(got[0].damaged, None);
}

/// Copy keeps the first task's values, concat appends every task's values in task order (not
/// completion order), partial reads see both, and neither has an error estimate.
#[tokio::test]
async fn copies_and_concatenations_follow_pymchelpers_rules() {
    use db::aggregation::Aggregation;
    let (_db, mut conn, sim, tasks) = running(3, 300).await;
    let page = |t: usize, aggregation, estimator: &str, values: Vec<f64>| TaskPage {
        estimator: estimator.into(),
        page_number: 0,
        meta: PageMeta {
            dimension: 0,
            axes: serde_json::json!([]),
            ..Default::default()
        },
        aggregation,
        values: values.into_iter().map(|v| v + t as f64 * 0.0).collect(),
    };
    // Task 2 ends first, then 0, then 1; each task has a different number of records.
    for &i in &[2usize, 0, 1] {
        let records: Vec<f64> = (0..=i).map(|r| (10 * i + r) as f64).collect();
        let pages = vec![
            page(i, Aggregation::Copy, "material", vec![1.0 + i as f64, 7.0]),
            page(i, Aggregation::Concat, "mcpl", records),
        ];
        let idx = tasks.iter().position(|t| t.task_index == i as i32).unwrap();
        complete(&mut conn, &tasks[idx], 100, &pages).await;
        if i == 0 {
            let partial = results::read_all(&mut conn, sim).await.unwrap();
            let mcpl = partial.iter().find(|p| p.estimator == "mcpl").unwrap();
            assert!(mcpl.partial);
            assert_eq!(mcpl.values, vec![0.0, 20.0, 21.0, 22.0], "task order");
        }
    }
    let got = results::read_all(&mut conn, sim).await.unwrap();
    let material = got.iter().find(|p| p.estimator == "material").unwrap();
    assert!(!material.partial);
    assert_eq!(material.aggregation, Aggregation::Copy);
    assert_eq!(material.values, vec![3.0, 7.0], "the first task folded");
    assert_eq!(material.errors, None);
    let mcpl = got.iter().find(|p| p.estimator == "mcpl").unwrap();
    assert_eq!(mcpl.aggregation, Aggregation::Concat);
    assert_eq!(mcpl.values, vec![0.0, 10.0, 11.0, 20.0, 21.0, 22.0]);
    assert_eq!(mcpl.errors, None);
}

/// A 200 × 200 × 100 mesh (4 M values) from two tasks is stored and read back.
#[tokio::test]
async fn a_four_million_bin_mesh_is_stored() {
    use db::aggregation::Aggregation;
    let (_db, mut conn, sim, tasks) = running(2, 200).await;
    let n = 200 * 200 * 100;
    for (i, t) in tasks.iter().enumerate() {
        let page = TaskPage {
            estimator: "mesh".into(),
            page_number: 0,
            meta: PageMeta {
                dimension: 3,
                ..Default::default()
            },
            aggregation: Aggregation::Mean,
            values: (0..n)
                .map(|b| (b % 1000) as f64 * (1.0 + i as f64))
                .collect(),
        };
        complete(&mut conn, t, 100, &[page]).await;
    }
    let got = results::read_all(&mut conn, sim).await.unwrap();
    assert_eq!(got[0].values.len(), n);
    assert_eq!(got[0].values[999], 999.0 * 1.5);
}
