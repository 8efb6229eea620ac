#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::{authed, simple_submit, spawn_app, spawn_app_with};
use proto::v1::submit_request::{Input, Platform};
use proto::v1::*;
use std::collections::{HashMap, HashSet};
use tonic::Code;

async fn code_of<T>(r: Result<T, tonic::Status>) -> Code {
    match r {
        Ok(_) => Code::Ok,
        Err(e) => e.code(),
    }
}

#[tokio::test]
async fn authorization_matrix() {
    let app = spawn_app().await;
    let owner = app.user_token("owner", false).await;
    let other = app.user_token("other", false).await;
    let admin = app.user_token("root", true).await;
    // An expired access token of the owner.
    let uid: i64 = {
        let mut c = app.db.conn().await;
        db::users::get(&mut c, "owner", db::enums::AuthProvider::Local)
            .await
            .unwrap()
            .id
    };
    let expired = "expired-token-value";
    app.sql(&format!(
        "INSERT INTO auth_tokens (user_id, token_hash, kind, session_id, expires_at) \
         VALUES ({uid}, sha256('{expired}'::bytea), 'access', gen_random_uuid(), now() - interval '1 minute')"
    ))
    .await;
    let job = app.submit(&owner, simple_submit()).await.unwrap();

    // (caller name, token) — None is anonymous.
    let callers: [(&str, Option<&str>); 6] = [
        ("anonymous", None),
        ("wrong", Some("not-a-real-token")),
        ("expired", Some(expired)),
        ("other", Some(&other)),
        ("owner", Some(&owner)),
        ("admin", Some(&admin)),
    ];
    fn req<T>(tok: Option<&str>, m: T) -> tonic::Request<T> {
        match tok {
            Some(t) => authed(m, t),
            None => tonic::Request::new(m),
        }
    }
    use Code::*;
    // rpc -> expected code per caller, in the order above.
    let table: Vec<(&str, [Code; 6])> = vec![
        (
            "Get",
            [
                Unauthenticated,
                Unauthenticated,
                Unauthenticated,
                NotFound,
                Ok,
                Ok,
            ],
        ),
        (
            "GetInput",
            [
                Unauthenticated,
                Unauthenticated,
                Unauthenticated,
                NotFound,
                Ok,
                Ok,
            ],
        ),
        (
            "List",
            [
                Unauthenticated,
                Unauthenticated,
                Unauthenticated,
                Ok,
                Ok,
                Ok,
            ],
        ),
        (
            "Submit",
            [
                Unauthenticated,
                Unauthenticated,
                Unauthenticated,
                Ok,
                Ok,
                Ok,
            ],
        ),
        (
            "ClusterList",
            [
                Unauthenticated,
                Unauthenticated,
                Unauthenticated,
                Ok,
                Ok,
                Ok,
            ],
        ),
        (
            "WhoAmI",
            [
                Unauthenticated,
                Unauthenticated,
                Unauthenticated,
                Ok,
                Ok,
                Ok,
            ],
        ),
        (
            "Watch",
            [
                Unauthenticated,
                Unauthenticated,
                Unauthenticated,
                NotFound,
                Ok,
                Ok,
            ],
        ),
        (
            "ListEstimators",
            [
                Unauthenticated,
                Unauthenticated,
                Unauthenticated,
                NotFound,
                Ok,
                Ok,
            ],
        ),
        (
            "GetLogs",
            [
                Unauthenticated,
                Unauthenticated,
                Unauthenticated,
                NotFound,
                Ok,
                Ok,
            ],
        ),
        // No task has finished yet: nothing to read, for those who can see it.
        (
            "GetResults",
            [
                Unauthenticated,
                Unauthenticated,
                Unauthenticated,
                NotFound,
                FailedPrecondition,
                FailedPrecondition,
            ],
        ),
        // Pending: refused for those who can see it.
        (
            "Delete",
            [
                Unauthenticated,
                Unauthenticated,
                Unauthenticated,
                NotFound,
                FailedPrecondition,
                FailedPrecondition,
            ],
        ),
        // The owner cancels it, so the admin then finds it finished.
        (
            "Cancel",
            [
                Unauthenticated,
                Unauthenticated,
                Unauthenticated,
                NotFound,
                Ok,
                FailedPrecondition,
            ],
        ),
    ];
    for (rpc, expected) in table {
        for ((name, tok), want) in callers.iter().zip(expected) {
            let mut sims = app.sims();
            let got = match rpc {
                "Get" => {
                    code_of(
                        sims.get(req(
                            *tok,
                            GetRequest {
                                job_id: job.clone(),
                            },
                        ))
                        .await,
                    )
                    .await
                }
                "GetInput" => {
                    code_of(
                        sims.get_input(req(
                            *tok,
                            GetInputRequest {
                                job_id: job.clone(),
                            },
                        ))
                        .await,
                    )
                    .await
                }
                "List" => code_of(sims.list(req(*tok, ListRequest::default())).await).await,
                "Submit" => code_of(sims.submit(req(*tok, simple_submit())).await).await,
                "ClusterList" => {
                    code_of(
                        proto::v1::cluster_service_client::ClusterServiceClient::new(
                            app.channel.clone(),
                        )
                        .list(req(*tok, ListClustersRequest {}))
                        .await,
                    )
                    .await
                }
                "WhoAmI" => code_of(app.auth().who_am_i(req(*tok, WhoAmIRequest {})).await).await,
                "Delete" => {
                    code_of(
                        sims.delete(req(
                            *tok,
                            DeleteRequest {
                                job_id: job.clone(),
                            },
                        ))
                        .await,
                    )
                    .await
                }
                "Watch" => {
                    let r = sims
                        .watch(req(
                            *tok,
                            WatchRequest {
                                job_id: job.clone(),
                            },
                        ))
                        .await;
                    code_of(r).await
                }
                "ListEstimators" => {
                    let r = sims
                        .list_estimators(req(
                            *tok,
                            ListEstimatorsRequest {
                                job_id: job.clone(),
                            },
                        ))
                        .await;
                    code_of(r).await
                }
                "GetLogs" => {
                    let r = sims
                        .get_logs(req(
                            *tok,
                            GetLogsRequest {
                                job_id: job.clone(),
                            },
                        ))
                        .await;
                    code_of(r).await
                }
                "GetResults" => {
                    let r = sims
                        .get_results(req(
                            *tok,
                            GetResultsRequest {
                                job_id: job.clone(),
                                ..Default::default()
                            },
                        ))
                        .await;
                    code_of(r).await
                }
                "Cancel" => {
                    code_of(
                        sims.cancel(req(
                            *tok,
                            CancelRequest {
                                job_id: job.clone(),
                            },
                        ))
                        .await,
                    )
                    .await
                }
                _ => unreachable!(),
            };
            assert_eq!(got, want, "{rpc} as {name}");
        }
    }
    // Visibility in List: the other user sees none of the owner's, the admin sees all.
    let n = |tok: String| {
        let mut s = app.sims();
        async move {
            s.list(authed(ListRequest::default(), &tok))
                .await
                .unwrap()
                .into_inner()
                .total_count
        }
    };
    assert_eq!(n(owner.clone()).await, 2);
    assert_eq!(n(other.clone()).await, 1);
    assert_eq!(n(admin.clone()).await, 4);
}

#[tokio::test]
async fn submit_validation() {
    let limits = sim_api::Limits {
        max_input_bytes: 1000,
        max_input_files: 5,
        ..sim_api::Limits::default()
    };
    let app = spawn_app_with(limits).await;
    let tok = app.user_token("alice", false).await;
    app.sql("INSERT INTO clusters (name, work_dir) VALUES ('prom', '/scratch')")
        .await;

    let files = |names: &[&str]| {
        Some(Input::Files(InputFiles {
            files: names
                .iter()
                .map(|n| (n.to_string(), "x".to_string()))
                .collect::<HashMap<_, _>>(),
        }))
    };
    type Case = (&'static str, Box<dyn Fn(&mut SubmitRequest)>, Code);
    let cases: Vec<Case> = vec![
        (
            "long title",
            Box::new(|r| r.title = "t".repeat(1001)),
            Code::InvalidArgument,
        ),
        (
            "no sim type",
            Box::new(|r| r.sim_type = 0),
            Code::InvalidArgument,
        ),
        (
            "bad sim type",
            Box::new(|r| r.sim_type = 99),
            Code::InvalidArgument,
        ),
        (
            "no input",
            Box::new(|r| r.input = None),
            Code::InvalidArgument,
        ),
        (
            "bad json",
            Box::new(|r| r.input = Some(Input::EditorJson("{nope".into()))),
            Code::InvalidArgument,
        ),
        (
            "big json",
            Box::new(|r| r.input = Some(Input::EditorJson(format!("\"{}\"", "a".repeat(2000))))),
            Code::ResourceExhausted,
        ),
        (
            "no files",
            Box::new(move |r| r.input = files(&[])),
            Code::InvalidArgument,
        ),
        (
            "too many files",
            Box::new(move |r| r.input = files(&["a", "b", "c", "d", "e", "f"])),
            Code::ResourceExhausted,
        ),
        (
            "traversal",
            Box::new(move |r| r.input = files(&["../etc/passwd"])),
            Code::InvalidArgument,
        ),
        (
            "subdir",
            Box::new(move |r| r.input = files(&["a/b"])),
            Code::InvalidArgument,
        ),
        (
            "backslash",
            Box::new(move |r| r.input = files(&["a\\b"])),
            Code::InvalidArgument,
        ),
        (
            "dotdot",
            Box::new(move |r| r.input = files(&[".."])),
            Code::InvalidArgument,
        ),
        (
            "nul",
            Box::new(move |r| r.input = files(&["x\0y"])),
            Code::InvalidArgument,
        ),
        (
            "empty name",
            Box::new(move |r| r.input = files(&[""])),
            Code::InvalidArgument,
        ),
        (
            "big files",
            Box::new(|r| {
                r.input = Some(Input::Files(InputFiles {
                    files: [("a".to_string(), "x".repeat(1001))].into(),
                }))
            }),
            Code::ResourceExhausted,
        ),
        (
            "zero tasks",
            Box::new(|r| r.ntasks = 0),
            Code::InvalidArgument,
        ),
        (
            "negative tasks",
            Box::new(|r| r.ntasks = -1),
            Code::InvalidArgument,
        ),
        (
            "too many tasks",
            Box::new(|r| r.ntasks = 65),
            Code::InvalidArgument,
        ),
        (
            "zero primaries",
            Box::new(|r| r.primaries = 0),
            Code::InvalidArgument,
        ),
        (
            "negative primaries",
            Box::new(|r| r.primaries = -5),
            Code::InvalidArgument,
        ),
        (
            "fewer primaries than tasks",
            Box::new(|r| r.primaries = 3),
            Code::InvalidArgument,
        ),
        (
            "no cluster",
            Box::new(|r| {
                r.platform = Some(Platform::Batch(BatchPlatform {
                    cluster: "".into(),
                    sbatch_options: vec![],
                }))
            }),
            Code::InvalidArgument,
        ),
        (
            "unknown cluster",
            Box::new(|r| {
                r.platform = Some(Platform::Batch(BatchPlatform {
                    cluster: "nope".into(),
                    sbatch_options: vec![],
                }))
            }),
            Code::InvalidArgument,
        ),
        (
            "bad sbatch option",
            Box::new(|r| {
                r.platform = Some(Platform::Batch(BatchPlatform {
                    cluster: "prom".into(),
                    sbatch_options: vec!["--x\n".into()],
                }))
            }),
            Code::InvalidArgument,
        ),
        (
            "ok files",
            Box::new(move |r| {
                let mut f = shieldhit_files("Output\n  Filename d.bdo\n  Geo G\n  Quantity Dose\n");
                f.insert(".hidden".into(), "x".into());
                r.sim_type = SimType::Shieldhit as i32;
                r.input = Some(Input::Files(InputFiles { files: f }));
            }),
            Code::Ok,
        ),
        (
            "ok batch",
            Box::new(|r| {
                r.platform = Some(Platform::Batch(BatchPlatform {
                    cluster: "prom".into(),
                    sbatch_options: vec!["--time=01:00:00".into()],
                }))
            }),
            Code::Ok,
        ),
        ("ok minimal", Box::new(|_| {}), Code::Ok),
    ];
    for (name, edit, want) in cases {
        let mut r = simple_submit();
        edit(&mut r);
        let got = code_of(app.submit(&tok, r).await).await;
        assert_eq!(got, want, "{name}");
    }
    // Only the three accepted submissions were stored.
    let list = app
        .sims()
        .list(authed(ListRequest::default(), &tok))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.total_count, 3);
}

#[tokio::test]
async fn submit_get_and_input_round_trip() {
    let app = spawn_app().await;
    let tok = app.user_token("alice", false).await;
    let mut req = simple_submit();
    req.ntasks = 3;
    req.primaries = 10;
    let job = app.submit(&tok, req).await.unwrap();
    let st = app
        .sims()
        .get(authed(
            GetRequest {
                job_id: job.clone(),
            },
            &tok,
        ))
        .await
        .unwrap()
        .into_inner();
    let sim = st.simulation.unwrap();
    assert_eq!(sim.job_id, job);
    assert_eq!(sim.job_state, JobState::Pending as i32);
    assert_eq!(sim.owner, "alice");
    let split: Vec<i64> = st.tasks.iter().map(|t| t.requested_primaries).collect();
    assert_eq!(split, vec![4, 3, 3]);
    assert!(st
        .tasks
        .iter()
        .all(|t| t.state == TaskState::Pending as i32));
    let input = app
        .sims()
        .get_input(authed(GetInputRequest { job_id: job }, &tok))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        input.input,
        Some(get_input_response::Input::EditorJson(
            r#"{"beam":{"energy_mev":150}}"#.into()
        ))
    );

    let mut req = simple_submit();
    req.sim_type = SimType::Shieldhit as i32;
    let files = shieldhit_files("Output\n  Filename dose.bdo\n  Geo G\n  Quantity Dose\n");
    req.input = Some(Input::Files(InputFiles {
        files: files.clone(),
    }));
    let job = app.submit(&tok, req).await.unwrap();
    let input = app
        .sims()
        .get_input(authed(GetInputRequest { job_id: job }, &tok))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(input.input_type, InputType::Files as i32);
    assert_eq!(
        input.input,
        Some(get_input_response::Input::Files(InputFiles { files }))
    );

    let bad = app
        .sims()
        .get(authed(
            GetRequest {
                job_id: "not-a-uuid".into(),
            },
            &tok,
        ))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    let missing = app
        .sims()
        .get(authed(
            GetRequest {
                job_id: uuid::Uuid::new_v4().to_string(),
            },
            &tok,
        ))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
}

#[tokio::test]
async fn cancel_pending_and_terminal_and_delete() {
    let app = spawn_app().await;
    let tok = app.user_token("alice", false).await;
    let job = app.submit(&tok, simple_submit()).await.unwrap();
    let mut sims = app.sims();
    // Delete is refused while pending.
    let e = sims
        .delete(authed(
            DeleteRequest {
                job_id: job.clone(),
            },
            &tok,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    let r = sims
        .cancel(authed(
            CancelRequest {
                job_id: job.clone(),
            },
            &tok,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.job_state, JobState::Canceled as i32);
    assert_eq!(r.tasks_canceled, 4);
    let st = sims
        .get(authed(
            GetRequest {
                job_id: job.clone(),
            },
            &tok,
        ))
        .await
        .unwrap()
        .into_inner();
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
    let e = sims
        .cancel(authed(
            CancelRequest {
                job_id: job.clone(),
            },
            &tok,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    // A completed one neither.
    let job2 = app.submit(&tok, simple_submit()).await.unwrap();
    app.sql(&format!(
        "UPDATE simulations SET job_state = 'COMPLETED', end_time = now() WHERE job_id = '{job2}'"
    ))
    .await;
    let e = sims
        .cancel(authed(
            CancelRequest {
                job_id: job2.clone(),
            },
            &tok,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    // Delete works once terminal, and removes it.
    sims.delete(authed(
        DeleteRequest {
            job_id: job.clone(),
        },
        &tok,
    ))
    .await
    .unwrap();
    let e = sims
        .get(authed(GetRequest { job_id: job }, &tok))
        .await
        .unwrap_err();
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
        let page = app
            .sims()
            .list(authed(
                ListRequest {
                    state: 0,
                    order: order as i32,
                    page_size: 7,
                    page_token: token.clone(),
                },
                tok,
            ))
            .await
            .unwrap()
            .into_inner();
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
    let app = spawn_app().await;
    let tok = app.user_token("alice", false).await;
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
    let total = app
        .sims()
        .list(authed(ListRequest::default(), &tok))
        .await
        .unwrap()
        .into_inner()
        .total_count;
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
    let failed = app
        .sims()
        .list(authed(
            ListRequest {
                state: JobState::Failed as i32,
                ..Default::default()
            },
            &tok,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(failed
        .simulations
        .iter()
        .all(|s| s.job_state == JobState::Failed as i32));
    let first = app
        .sims()
        .list(authed(
            ListRequest {
                page_size: 5,
                ..Default::default()
            },
            &tok,
        ))
        .await
        .unwrap()
        .into_inner();
    let e = app
        .sims()
        .list(authed(
            ListRequest {
                order: ListOrder::EndTimeAsc as i32,
                page_token: first.next_page_token,
                ..Default::default()
            },
            &tok,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let e = app
        .sims()
        .list(authed(
            ListRequest {
                page_token: "!!".into(),
                ..Default::default()
            },
            &tok,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    // Page size is capped.
    let big = app
        .sims()
        .list(authed(
            ListRequest {
                page_size: 100_000,
                ..Default::default()
            },
            &tok,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(big.simulations.len() <= 500);
}

#[tokio::test]
async fn get_logs_returns_the_stored_logs_to_their_owner_only() {
    let app = spawn_app().await;
    let tok = app.user_token("alice", false).await;
    let other = app.user_token("mallory", false).await;
    let mut req = simple_submit();
    req.ntasks = 2;
    req.primaries = 10;
    let job = app.submit(&tok, req).await.unwrap();
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

    let logs = app
        .sims()
        .get_logs(authed(
            GetLogsRequest {
                job_id: job.clone(),
            },
            &tok,
        ))
        .await
        .unwrap()
        .into_inner()
        .logs;
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

    let err = app
        .sims()
        .get_logs(authed(GetLogsRequest { job_id: job }, &other))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}

/// `Get` answers are cached in the server (`--status-cache`) and dropped when the
/// database announces a change of that simulation on `sim_events`. With an hour-long
/// cache: a silent change is not seen (the answer is cached), an announced one is, within
/// moments; a worker's claim and progress reach `Get` the same way; Cancel and Delete in this
/// server are seen at once; and a cached answer is still only given to its owner or an admin.
#[tokio::test]
async fn get_answers_are_cached_until_the_database_announces_a_change() {
    use std::time::{Duration, Instant};
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
        let mut sims = app.sims();
        let job = job.clone();
        async move {
            sims.get(authed(GetRequest { job_id: job }, &token))
                .await
                .map(|r| r.into_inner())
        }
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
    let poll = |want: &'static str| {
        let get = &get;
        let tok = tok.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                let s = get(tok.clone()).await.unwrap();
                if title(&s) == want {
                    return s;
                }
                assert!(Instant::now() < deadline, "never saw {want}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    app.sql("SELECT pg_notify('sim_events', id::text) FROM simulations")
        .await;
    poll("renamed").await;

    // A worker's claim announces the start; its progress report announces itself.
    let mut c = app.db.conn().await;
    let claimed = db::queue::claim(&mut c, "w1", 1, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let deadline = Instant::now() + Duration::from_secs(5);
    while get(tok.clone())
        .await
        .unwrap()
        .simulation
        .unwrap()
        .job_state
        != JobState::Running as i32
    {
        assert!(Instant::now() < deadline, "the start was never seen");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    db::queue::report_progress(&mut c, &claimed[0].lease("w1"), 123, Some(9))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while get(tok.clone()).await.unwrap().tasks[0].simulated_primaries != 123 {
        assert!(Instant::now() < deadline, "the progress was never seen");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Cancel and Delete through this server are seen by the very next Get.
    app.sims()
        .cancel(authed(
            CancelRequest {
                job_id: job.clone(),
            },
            &tok,
        ))
        .await
        .unwrap();
    assert_eq!(
        get(tok.clone())
            .await
            .unwrap()
            .simulation
            .unwrap()
            .job_state,
        JobState::Canceled as i32
    );
    app.sims()
        .delete(authed(
            DeleteRequest {
                job_id: job.clone(),
            },
            &tok,
        ))
        .await
        .unwrap();
    assert_eq!(get(tok.clone()).await.unwrap_err().code(), Code::NotFound);
    assert_eq!(get(admin).await.unwrap_err().code(), Code::NotFound);
}

/// A SHIELD-HIT12A input whose `detect.dat` is `detect`.
fn shieldhit_files(detect: &str) -> HashMap<String, String> {
    [
        (
            "beam.dat",
            "RNDSEED 89736501\nJPART0 2\nTMAX0 150.0 0.0\nNSTAT 1000 0\n",
        ),
        ("detect.dat", detect),
        (
            "geo.dat",
            "  RCC    1  0.0 0.0 0.0  0.0 0.0 20.0\n  5.0\n  END\n",
        ),
        ("mat.dat", "MEDIUM 1\nICRU 276\nEND\n"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Inputs that cannot run are INVALID_ARGUMENT at Submit, naming the cause, and nothing is
/// queued: a builtin project that is not the engine's JSON, a detect.dat without outputs, a
/// FLUKA input without START, a TOPAS input without histories, and kind mismatches.
#[tokio::test]
async fn inputs_that_cannot_run_are_refused_at_submit() {
    let app = spawn_app().await;
    let tok = app.user_token("alice", false).await;
    let files = |sim_type: SimType, files: HashMap<String, String>| {
        let mut r = simple_submit();
        r.sim_type = sim_type as i32;
        r.input = Some(Input::Files(InputFiles { files }));
        r
    };
    let one = |name: &str, text: &str| HashMap::from([(name.to_string(), text.to_string())]);
    let mut builtin = simple_submit();
    builtin.input = Some(Input::EditorJson(r#"{"beam":{"energy_mev":900}}"#.into()));
    let mut editor_for_shieldhit = simple_submit();
    editor_for_shieldhit.sim_type = SimType::Shieldhit as i32;
    let cases = [
        (builtin, "energy"),
        (editor_for_shieldhit, "takes input files"),
        (
            files(
                SimType::Shieldhit,
                shieldhit_files("Geometry Cyl\n  Name G\n"),
            ),
            "detect.dat defines no Output",
        ),
        (files(SimType::Builtin, shieldhit_files("")), "editor_json"),
        (
            files(SimType::Fluka, one("run.inp", "TITLE\nno start card\n")),
            "START",
        ),
        (
            files(
                SimType::Topas,
                one("main.txt", "s:Ge/World/Material = \"Vacuum\"\n"),
            ),
            "NumberOfHistoriesInRun",
        ),
    ];
    for (req, want) in cases {
        let e = app.submit(&tok, req).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
        assert!(e.message().contains(want), "{want}: {}", e.message());
    }
    let n = app.sql_count("SELECT count(*) FROM simulations").await;
    assert_eq!(n, 0, "nothing was queued");
}
