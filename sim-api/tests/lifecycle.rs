//! After Submit: cancel and delete, List pages, logs, and the Get cache.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::{simple_submit, spawn_app_as, spawn_app_with, wait_until};
use proto::v1::*;
use std::collections::HashSet;
use tonic::Code;

#[tokio::test]
async fn cancel_pending_and_terminal_and_delete() {
    let (app, tok) = spawn_app_as("alice").await;
    let job = app.submit(&tok, simple_submit()).await.unwrap();
    // Delete is refused while pending.
    let e = app.delete(&tok, &job).await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    let r = app.cancel(&tok, &job).await.unwrap();
    assert_eq!(r.job_state, JobState::Canceled as i32);
    assert_eq!(r.tasks_canceled, 4);
    let st = app.get(&tok, &job).await.unwrap();
    assert_eq!(
        st.simulation.as_ref().unwrap().job_state,
        JobState::Canceled as i32
    );
    assert!(st.simulation.unwrap().end_time.is_some());
    assert!(st
        .tasks
        .iter()
        .all(|t| t.state == TaskState::Canceled as i32));
    // A terminal simulation cannot be canceled.
    let e = app.cancel(&tok, &job).await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    // A completed one neither.
    let job2 = app.submit(&tok, simple_submit()).await.unwrap();
    app.sql(&format!(
        "UPDATE simulations SET job_state = 'COMPLETED', end_time = now() WHERE job_id = '{job2}'"
    ))
    .await;
    let e = app.cancel(&tok, &job2).await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    // Delete works once terminal, and removes it.
    app.delete(&tok, &job).await.unwrap();
    let e = app.get(&tok, &job).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
}

async fn collect_all(
    app: &common::App,
    tok: &str,
    order: ListOrder,
    insert_between: bool,
) -> Vec<String> {
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let req = ListRequest {
            state: 0,
            order: order as i32,
            page_size: 7,
            page_token: token.clone(),
        };
        let page = app.list(tok, req).await.unwrap();
        assert!(page.simulations.len() <= 7);
        seen.extend(page.simulations.iter().map(|s| s.job_id.clone()));
        pages += 1;
        if insert_between {
            app.submit(tok, simple_submit()).await.unwrap();
        }
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
        assert!(pages < 100);
    }
    seen
}

#[tokio::test]
async fn list_pagination_with_inserts_between_pages() {
    let (app, tok) = spawn_app_as("alice").await;
    let other = app.user_token("bob", false).await;
    app.submit(&other, simple_submit()).await.unwrap();
    let mut original = HashSet::new();
    for _ in 0..50 {
        original.insert(app.submit(&tok, simple_submit()).await.unwrap());
    }
    // Newest first: new rows land before the cursor, so nothing is skipped or repeated.
    let seen = collect_all(&app, &tok, ListOrder::StartTimeDesc, true).await;
    let set: HashSet<_> = seen.iter().cloned().collect();
    assert_eq!(set.len(), seen.len(), "duplicates");
    assert!(original.is_subset(&set), "skipped");

    // Oldest first over a fixed set; then the end-time orders with some finished.
    let total = app.list(&tok, ListRequest::default()).await.unwrap();
    let total = total.total_count;
    app.sql("UPDATE simulations SET job_state = 'FAILED', end_time = now() - (id || ' seconds')::interval WHERE id % 3 = 0").await;
    for order in [
        ListOrder::StartTimeAsc,
        ListOrder::StartTimeDesc,
        ListOrder::EndTimeAsc,
        ListOrder::EndTimeDesc,
    ] {
        let seen = collect_all(&app, &tok, order, false).await;
        let set: HashSet<_> = seen.iter().cloned().collect();
        assert_eq!(seen.len() as i64, total, "{order:?}");
        assert_eq!(set.len(), seen.len(), "{order:?}");
    }

    // The state filter and a mismatched token.
    let list = |edit: fn(&mut ListRequest)| {
        let mut req = ListRequest::default();
        edit(&mut req);
        app.list(&tok, req)
    };
    let failed = list(|r| r.state = JobState::Failed as i32).await.unwrap();
    assert!(failed
        .simulations
        .iter()
        .all(|s| s.job_state == JobState::Failed as i32));
    let first = list(|r| r.page_size = 5).await.unwrap();
    let req = ListRequest {
        order: ListOrder::EndTimeAsc as i32,
        page_token: first.next_page_token,
        ..Default::default()
    };
    let e = app.list(&tok, req).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let e = list(|r| r.page_token = "!!".into()).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    // Page size is capped.
    let big = list(|r| r.page_size = 100_000).await.unwrap();
    assert!(big.simulations.len() <= 500);
}

#[tokio::test]
async fn get_logs_returns_the_stored_logs_to_their_owner_only() {
    let (app, tok) = spawn_app_as("alice").await;
    let other = app.user_token("mallory", false).await;
    let job = app.submit_split(&tok, 2, 10).await;
    // A worker stores each task's output tails; do the same here.
    let mut c = app.db.conn().await;
    let rows = db::tasks::list(&mut c, &Default::default()).await.unwrap();
    let t1 = rows.iter().find(|r| r.task.task_index == 1).unwrap();
    db::logs::store(
        &mut c,
        t1.task.simulation_id,
        Some(t1.task.id),
        "stderr",
        b"Fatal error \xff in BEAM\n",
    )
    .await
    .unwrap();
    db::logs::store(&mut c, t1.task.simulation_id, None, "collect", b"merged\n")
        .await
        .unwrap();

    let logs = app.get_logs(&tok, &job).await.unwrap().logs;
    assert_eq!(logs.len(), 2);
    assert_eq!(
        (logs[0].name.as_str(), logs[0].task_index),
        ("collect", None)
    );
    assert_eq!(
        (logs[1].name.as_str(), logs[1].task_index),
        ("stderr", Some(1))
    );
    assert_eq!(logs[1].content, "Fatal error \u{fffd} in BEAM\n");

    let err = app.get_logs(&other, &job).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}

/// `Get` answers are cached in the server (`--status-cache`) and dropped when the
/// database announces a change of that simulation on `sim_events`. With an hour-long
/// cache: a silent change is not seen (the answer is cached), an announced one is, within
/// moments; a worker's claim and progress reach `Get` the same way; Cancel and Delete in this
/// server are seen at once; and a cached answer is still only given to its owner or an admin.
#[tokio::test]
async fn get_answers_are_cached_until_the_database_announces_a_change() {
    use std::time::Duration;
    let app = spawn_app_with(sim_api::Limits {
        status_cache_ttl: Duration::from_secs(3600),
        ..Default::default()
    })
    .await;
    let tok = app.user_token("alice", false).await;
    let other = app.user_token("bob", false).await;
    let admin = app.user_token("root", true).await;
    let job = app.submit(&tok, simple_submit()).await.unwrap();
    let get = |token: String| {
        let (app, job) = (&app, &job);
        async move { app.get(&token, job).await }
    };
    let title = |s: &SimulationStatus| s.simulation.as_ref().unwrap().title.clone();
    // The cache is used only once the server listens on sim_events.
    app.wait_listening("sim_events").await;
    assert_eq!(title(&get(tok.clone()).await.unwrap()), "water phantom");

    // A change nobody announces is not seen: the answer comes from the cache.
    app.sql("UPDATE simulations SET title = 'renamed'").await;
    assert_eq!(title(&get(tok.clone()).await.unwrap()), "water phantom");
    // The cached answer is the owner's and the admin's only.
    assert_eq!(get(other.clone()).await.unwrap_err().code(), Code::NotFound);
    assert_eq!(title(&get(admin.clone()).await.unwrap()), "water phantom");

    // Announced, it is seen.
    let secs = Duration::from_secs(5);
    app.sql("SELECT pg_notify('sim_events', id::text) FROM simulations")
        .await;
    wait_until("renamed", secs, || async {
        title(&get(tok.clone()).await.unwrap()) == "renamed"
    })
    .await;

    // A worker's claim announces the start; its progress report announces itself.
    let mut c = app.db.conn().await;
    let claimed = db::queue::claim(
        &mut c,
        "w1",
        1,
        Duration::from_secs(60),
        db::enums::SimType::ALL,
    )
    .await
    .unwrap();
    assert_eq!(claimed.len(), 1);
    let job_state = || async {
        get(tok.clone())
            .await
            .unwrap()
            .simulation
            .unwrap()
            .job_state
    };
    wait_until("the start", secs, || async {
        job_state().await == JobState::Running as i32
    })
    .await;
    db::queue::report_progress(&mut c, &claimed[0].lease("w1"), 123, Some(9))
        .await
        .unwrap();
    wait_until("the progress", secs, || async {
        get(tok.clone()).await.unwrap().tasks[0].simulated_primaries == 123
    })
    .await;

    // Cancel and Delete through this server are seen by the very next Get.
    app.cancel(&tok, &job).await.unwrap();
    assert_eq!(job_state().await, JobState::Canceled as i32);
    app.delete(&tok, &job).await.unwrap();
    assert_eq!(get(tok.clone()).await.unwrap_err().code(), Code::NotFound);
    assert_eq!(get(admin).await.unwrap_err().code(), Code::NotFound);
}
