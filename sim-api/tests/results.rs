//! ListEstimators, GetResults (page selection, chunking, partial results) and Watch
//! against a real server and database; tasks are claimed and completed through `db`, as a
//! worker would.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::{authed, simple_submit, spawn_app_as, App};
use db::queue::{self, ClaimedTask};
use db::results::{PageMeta, TaskPage};
use futures_util::StreamExt;
use proto::v1::*;
use std::collections::BTreeMap;
use std::time::Duration;
use tonic::Code;

/// A page bigger than one stream chunk, so GetResults must split it.
const BIG: usize = sim_api::results::CHUNK_VALUES + 1234;

/// `n` deterministic pseudo-random values in [0.5, 1.5) for `seed`.
fn values(seed: u64, n: usize) -> Vec<f64> {
    use rand::{Rng as _, SeedableRng as _};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n).map(|_| rng.gen::<f64>() + 0.5).collect()
}

fn task_pages(seed: u64) -> Vec<TaskPage> {
    let meta = |name: &str, bins: usize| PageMeta {
        name: name.into(),
        dimension: 1,
        axes: serde_json::json!([{"name": "z", "unit": "cm", "bins": bins, "min": 0.0, "max": 20.0}]),
        value_name: "dose".into(),
        value_unit: "Gy/primary".into(),
        ..PageMeta::default()
    };
    use db::aggregation::Aggregation::{Mean, Sum};
    let page = |est: &str, n: i32, bins: usize, s: u64, aggregation| TaskPage {
        estimator: est.into(),
        page_number: n,
        meta: meta(&format!("P{n}"), bins),
        aggregation,
        values: values(s, bins),
    };
    vec![
        page("z_profile", 0, 10, seed, Mean),
        page("z_profile", 1, 10, seed + 1, Mean),
        // A counter: summed over tasks.
        page("z_profile", 2, 10, seed + 2, Sum),
        page("big_map", 0, BIG, seed + 3, Mean),
    ]
}

async fn sim_id(app: &App, job: &str) -> i64 {
    let mut c = app.db.conn().await;
    db::simulation_views::get_visible(&mut c, job.parse().unwrap(), None)
        .await
        .unwrap()
        .simulation
        .id
}

async fn claim(app: &App, n: i64) -> Vec<ClaimedTask> {
    let mut c = app.db.conn().await;
    queue::claim(
        &mut c,
        "w",
        n,
        Duration::from_secs(60),
        db::enums::SimType::ALL,
    )
    .await
    .unwrap()
}

async fn complete(app: &App, t: &ClaimedTask, primaries: i64, seed: u64) {
    let mut c = app.db.conn().await;
    db::merge::complete_with_results(&mut c, &t.lease("w"), primaries, &task_pages(seed))
        .await
        .unwrap();
}

fn results_req(job: &str, estimators: &[&str], pages: &str) -> GetResultsRequest {
    GetResultsRequest {
        job_id: job.into(),
        estimators: estimators.iter().map(|s| s.to_string()).collect(),
        pages: pages.into(),
    }
}

/// Reassembled pages: (estimator, page) -> (info, values, errors, partial flags).
type Pages = BTreeMap<(String, i32), (PageInfo, Vec<f64>, Vec<f64>, bool)>;

async fn get_results(
    app: &App,
    token: &str,
    req: GetResultsRequest,
) -> Result<Pages, tonic::Status> {
    let mut stream = app
        .sims()
        .get_results(authed(req, token))
        .await?
        .into_inner();
    let mut out = Pages::new();
    while let Some(chunk) = stream.next().await {
        let c = chunk?;
        let key = (c.estimator.clone(), c.page_number);
        let entry = match c.page {
            Some(info) => {
                assert!(!out.contains_key(&key), "metadata sent twice for {key:?}");
                assert_eq!(c.offset, 0);
                out.entry(key).or_insert((info, vec![], vec![], c.partial))
            }
            None => out
                .get_mut(&key)
                .expect("a chunk before its page's metadata"),
        };
        assert_eq!(c.offset as usize, entry.1.len(), "chunks out of order");
        entry.1.extend(&c.values);
        entry.2.extend(&c.errors);
        entry.3 = c.partial;
    }
    Ok(out)
}

async fn estimators(app: &App, token: &str, job: &str) -> ListEstimatorsResponse {
    app.list_estimators(token, job).await.unwrap()
}

#[tokio::test]
async fn results_are_partial_while_running_then_final() {
    let (app, tok) = spawn_app_as("alice").await;
    let other = app.user_token("bob", false).await;
    let job = app.submit_split(&tok, 2, 4000).await;
    let id = sim_id(&app, &job).await;
    let tasks = claim(&app, 2).await;
    assert_eq!(tasks.len(), 2);

    // Nothing finished: no estimators, no results.
    let le = estimators(&app, &tok, &job).await;
    assert!(le.estimators.is_empty());
    let e = get_results(&app, &tok, results_req(&job, &[], ""))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);

    // One task done: partial results, equal to that task's pages, no errors yet.
    complete(&app, &tasks[0], 1000, 1).await;
    let le = estimators(&app, &tok, &job).await;
    assert!(le.partial);
    assert_eq!(
        (le.merged_tasks.clone(), le.merged_primaries),
        (vec![tasks[0].task_index], 1000),
        "the partial pages say which task they hold"
    );
    let names: Vec<_> = le.estimators.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["big_map", "z_profile"]);
    assert_eq!(le.estimators[1].pages.len(), 3);
    // Each page says how its tasks combine, while partial and when final.
    let rules = |le: &ListEstimatorsResponse| -> Vec<Aggregation> {
        le.estimators[1]
            .pages
            .iter()
            .map(|p| p.aggregation())
            .collect()
    };
    let (mean, sum) = (Aggregation::Mean, Aggregation::Sum);
    assert_eq!(rules(&le), [mean, mean, sum]);
    assert_eq!(le.estimators[0].pages[0].value_count as usize, BIG);
    let got = get_results(&app, &tok, results_req(&job, &["z_profile"], "1"))
        .await
        .unwrap();
    let (info, vals, errs, partial) = &got[&("z_profile".to_string(), 1)];
    assert!(*partial);
    assert_eq!(info.page_name, "P1");
    assert_eq!((info.tasks_merged, info.primaries), (Some(1), Some(1000)));
    // The task's values, to rounding: the partial merge is ΣN·x / ΣN with one task.
    let want = values(2, 10);
    assert_eq!(vals.len(), want.len());
    for (got, want) in vals.iter().zip(&want) {
        assert!(((got - want) / want).abs() < 1e-15, "{got} vs {want}");
    }
    assert!(errs.is_empty() && !info.has_errors);

    // Both done: final pages, weighted means with errors, split into chunks and rejoined.
    complete(&app, &tasks[1], 3000, 11).await;
    let le = estimators(&app, &tok, &job).await;
    assert!(!le.partial);
    assert_eq!(
        (le.merged_tasks.clone(), le.merged_primaries),
        (vec![0, 1], 4000)
    );
    let p0 = &le.estimators[1].pages[0];
    assert_eq!((p0.value_count, p0.has_errors, p0.dimension), (10, true, 1));
    assert_eq!((p0.tasks_merged, p0.primaries), (Some(2), Some(4000)));
    assert_eq!(p0.axes[0].name, "z");
    assert_eq!((p0.axes[0].bins, p0.axes[0].max), (10, 20.0));
    assert_eq!(p0.value_unit, "Gy/primary");
    assert_eq!(rules(&le), [mean, mean, sum]);

    let all = get_results(&app, &tok, results_req(&job, &[], ""))
        .await
        .unwrap();
    assert_eq!(all.len(), 4);
    let counter = &all[&("z_profile".to_string(), 2)].0;
    assert_eq!(counter.aggregation(), Aggregation::Sum);
    let stored = {
        let mut c = app.db.conn().await;
        db::results::read_all(&mut c, id).await.unwrap()
    };
    for p in &stored {
        let (info, vals, errs, partial) = &all[&(p.estimator.clone(), p.page_number)];
        assert!(!partial);
        assert_eq!(vals, &p.values, "{} {}", p.estimator, p.page_number);
        assert_eq!(Some(errs), p.errors.as_ref());
        assert_eq!(info.value_count as usize, p.values.len());
    }
    let big = &all[&("big_map".to_string(), 0)].1;
    let (a, b) = (values(4, BIG), values(14, BIG));
    for i in [0, BIG / 2, BIG - 1] {
        let want = (1000.0 * a[i] + 3000.0 * b[i]) / 4000.0;
        assert!(((big[i] - want) / want).abs() < 1e-12);
    }

    // Page selection.
    let keys = |p: &Pages| p.keys().cloned().collect::<Vec<_>>();
    let k = |e: &str, n: i32| (e.to_string(), n);
    let got = get_results(&app, &tok, results_req(&job, &["z_profile"], "0-1"))
        .await
        .unwrap();
    assert_eq!(keys(&got), [k("z_profile", 0), k("z_profile", 1)]);
    let got = get_results(&app, &tok, results_req(&job, &[], "0,2"))
        .await
        .unwrap();
    assert_eq!(
        keys(&got),
        [k("big_map", 0), k("z_profile", 0), k("z_profile", 2)]
    );
    let got = get_results(&app, &tok, results_req(&job, &["z_profile"], " 2 - 2 "))
        .await
        .unwrap();
    assert_eq!(keys(&got), [k("z_profile", 2)]);
    for bad in ["2-0", "a", "1,", "-3", "1-2-3", "0; DROP TABLE pages"] {
        let e = get_results(&app, &tok, results_req(&job, &[], bad))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{bad:?}");
        assert!(e.message().contains("pages"), "{}", e.message());
    }
    for (names, sel) in [
        (&["z_profile"][..], "3-9"),
        (&["nope"][..], ""),
        (&["x' OR 1=1 --"][..], "0"),
    ] {
        let e = get_results(&app, &tok, results_req(&job, names, sel))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::NotFound, "{names:?} {sel:?}");
    }
    // Another user: not found, whatever the selection.
    let e = get_results(&app, &other, results_req(&job, &[], ""))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
}

async fn next_status(s: &mut tonic::Streaming<SimulationStatus>) -> Option<SimulationStatus> {
    tokio::time::timeout(Duration::from_secs(15), s.next())
        .await
        .expect("no Watch update within 15 s")
        .map(|r| r.unwrap())
}

/// The last update before the stream ends (it ends by itself after the terminal state).
async fn last_status(s: &mut tonic::Streaming<SimulationStatus>) -> Option<SimulationStatus> {
    let mut last = None;
    while let Some(st) = next_status(s).await {
        last = Some(st);
    }
    last
}

fn state(s: &SimulationStatus) -> JobState {
    JobState::try_from(s.simulation.as_ref().unwrap().job_state).unwrap()
}

#[tokio::test]
async fn watch_streams_progress_until_completed() {
    let (app, tok) = spawn_app_as("alice").await;
    let job = app.submit_split(&tok, 2, 2000).await;
    let mut s = app.watch(&tok, &job).await.unwrap();
    let first = next_status(&mut s).await.unwrap();
    assert_eq!(state(&first), JobState::Pending);

    let tasks = claim(&app, 2).await;
    {
        let mut c = app.db.conn().await;
        queue::report_progress(&mut c, &tasks[0].lease("w"), 250, Some(3))
            .await
            .unwrap();
    }
    // Updates arrive until task 0 shows its progress.
    loop {
        let st = next_status(&mut s).await.unwrap();
        if st.tasks[0].simulated_primaries == 250 {
            assert_eq!(state(&st), JobState::Running);
            assert_eq!(st.tasks[0].estimated_time_left_s, Some(3));
            assert_eq!(st.simulation.as_ref().unwrap().simulated_primaries, 250);
            break;
        }
    }
    complete(&app, &tasks[0], 1000, 1).await;
    complete(&app, &tasks[1], 1000, 2).await;
    // The stream ends by itself after the terminal state.
    let last = last_status(&mut s).await.unwrap();
    assert_eq!(state(&last), JobState::Completed);
    assert!(last
        .tasks
        .iter()
        .all(|t| t.state == TaskState::Completed as i32));
}

#[tokio::test]
async fn watch_ends_on_cancel_and_many_watches_share_one_listener() {
    let (app, tok) = spawn_app_as("alice").await;
    let job = app.submit(&tok, simple_submit()).await.unwrap();
    let mut streams = Vec::new();
    for _ in 0..8 {
        let mut s = app.watch(&tok, &job).await.unwrap();
        assert_eq!(
            state(&next_status(&mut s).await.unwrap()),
            JobState::Pending
        );
        streams.push(s);
    }
    // One LISTEN connection serves every stream.
    let listeners = app.listeners("sim_events").await;
    assert_eq!(listeners, 1);
    // A client that goes away does not disturb the others.
    drop(streams.pop());
    app.cancel(&tok, &job).await.unwrap();
    for mut s in streams {
        let last = last_status(&mut s).await.unwrap();
        assert_eq!(state(&last), JobState::Canceled);
    }
    // Watching a finished simulation yields its state once and ends.
    let mut s = app.watch(&tok, &job).await.unwrap();
    assert_eq!(
        state(&next_status(&mut s).await.unwrap()),
        JobState::Canceled
    );
    assert!(next_status(&mut s).await.is_none());
}

/// Cancel keeps what the completed tasks computed: the results are readable, marked partial,
/// and say which tasks and how many primaries they hold; the running task's progress is
/// not among them.
#[tokio::test]
async fn a_canceled_simulation_serves_its_completed_tasks_results_as_partial() {
    let (app, tok) = spawn_app_as("alice").await;
    let job = app.submit_split(&tok, 3, 3000).await;
    let tasks = claim(&app, 3).await;
    assert_eq!(tasks.len(), 3);
    complete(&app, &tasks[1], 1000, 21).await;
    {
        let mut c = app.db.conn().await;
        queue::report_progress(&mut c, &tasks[0].lease("w"), 400, None)
            .await
            .unwrap();
    }
    app.cancel(&tok, &job).await.unwrap();
    let status = app.get(&tok, &job).await.unwrap();
    assert_eq!(state(&status), JobState::Canceled);

    let le = estimators(&app, &tok, &job).await;
    assert!(le.partial);
    assert_eq!(
        (le.merged_tasks.clone(), le.merged_primaries),
        (vec![tasks[1].task_index], 1000)
    );
    let got = get_results(&app, &tok, results_req(&job, &["z_profile"], "0"))
        .await
        .unwrap();
    let (info, vals, _, partial) = &got[&("z_profile".to_string(), 0)];
    assert!(*partial, "GetResults marks the kept pages partial");
    assert_eq!(info.value_count, 10);
    let want = values(21, 10);
    for (got, want) in vals.iter().zip(&want) {
        assert!(((got - want) / want).abs() < 1e-15, "{got} vs {want}");
    }
}

/// One damaged stored page is DATA_LOSS, named, at the end of a stream that sent every other
/// selected page; the other estimators still read on their own.
#[tokio::test]
async fn a_damaged_page_is_data_loss_and_the_others_still_read() {
    let (app, tok) = spawn_app_as("alice").await;
    let job = app.submit_split(&tok, 1, 100).await;
    let t = claim(&app, 1).await;
    complete(&app, &t[0], 100, 7).await;
    app.sql(
        "UPDATE pages SET values_data = '\\x4d435250ff' FROM estimators e
         WHERE e.id = pages.estimator_id AND e.name = 'big_map'",
    )
    .await;
    // Everything: the readable pages stream whole, then DATA_LOSS names the damaged one.
    let mut stream = app
        .sims()
        .get_results(authed(results_req(&job, &[], ""), &tok))
        .await
        .unwrap()
        .into_inner();
    let mut pages = std::collections::BTreeSet::new();
    let e = loop {
        match stream.next().await {
            Some(Ok(c)) => {
                assert_ne!(c.estimator, "big_map", "no chunk of the damaged page");
                if c.last_chunk_of_page {
                    pages.insert((c.estimator, c.page_number));
                }
            }
            Some(Err(e)) => break e,
            None => panic!("the stream ended without saying a page is damaged"),
        }
    };
    assert_eq!(
        pages.len(),
        3,
        "the other estimator's pages came first: {pages:?}"
    );
    assert_eq!(e.code(), Code::DataLoss, "{e:?}");
    assert!(e.message().contains("page 0 of big_map"), "{e:?}");
    // Only the damaged page: DATA_LOSS is the answer. Without it: every page reads.
    let e = get_results(&app, &tok, results_req(&job, &["big_map"], ""))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::DataLoss, "{e:?}");
    let rest = get_results(&app, &tok, results_req(&job, &["z_profile"], ""))
        .await
        .unwrap();
    assert_eq!(rest.len(), 3);
}
