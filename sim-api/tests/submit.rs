//! Submit: field validation, the stored input read back, inputs that cannot run.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::{authed, code_of, simple_submit, spawn_app, spawn_app_with};
use proto::v1::submit_request::{Input, Platform};
use proto::v1::*;
use std::collections::HashMap;
use tonic::Code;

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
            Box::new(|r| r.platform = batch("", &[])),
            Code::InvalidArgument,
        ),
        (
            "unknown cluster",
            Box::new(|r| r.platform = batch("nope", &[])),
            Code::InvalidArgument,
        ),
        (
            "bad sbatch option",
            Box::new(|r| r.platform = batch("prom", &["--x\n"])),
            Code::InvalidArgument,
        ),
        (
            "sbatch option not on the allow-list",
            Box::new(|r| r.platform = batch("prom", &["--time=10", "--wrap=rm -rf /"])),
            Code::InvalidArgument,
        ),
        (
            "sbatch option that writes elsewhere",
            Box::new(|r| r.platform = batch("prom", &["--output=/etc/passwd"])),
            Code::InvalidArgument,
        ),
        (
            "sbatch value with a command substitution",
            Box::new(|r| r.platform = batch("prom", &["--comment=$(touch /tmp/pwned)"])),
            Code::InvalidArgument,
        ),
        (
            "short sbatch option",
            Box::new(|r| r.platform = batch("prom", &["-A"])),
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
            Box::new(|r| r.platform = batch("prom", &["--time=01:00:00"])),
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

/// A batch platform on `cluster` with these sbatch options.
fn batch(cluster: &str, sbatch_options: &[&str]) -> Option<Platform> {
    Some(Platform::Batch(BatchPlatform {
        cluster: cluster.into(),
        sbatch_options: sbatch_options.iter().map(|o| o.to_string()).collect(),
    }))
}
