//! Submit: field validation, the stored input read back, inputs that cannot run.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::{code_of, simple_submit, spawn_app_as, spawn_app_with};
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
    /// A submission that is `simple_submit()` changed by `edit`, answered with `want`.
    fn case(name: &'static str, want: Code, edit: impl Fn(&mut SubmitRequest) + 'static) -> Case {
        (name, Box::new(edit), want)
    }
    use Code::{InvalidArgument, ResourceExhausted};
    let mut cases: Vec<Case> = vec![
        case("long title", InvalidArgument, |r| {
            r.title = "t".repeat(1001)
        }),
        case("no sim type", InvalidArgument, |r| r.sim_type = 0),
        case("bad sim type", InvalidArgument, |r| r.sim_type = 99),
        case("no input", InvalidArgument, |r| r.input = None),
        case("bad json", InvalidArgument, |r| {
            r.input = Some(Input::EditorJson("{nope".into()))
        }),
        // A repeated key would run with whichever value a parser keeps (it ran at 10 MeV).
        case("repeated json key", InvalidArgument, |r| {
            r.input = Some(Input::EditorJson(
                r#"{"beam": {"energy_mev": 150.0, "energy_mev": 10.0}}"#.into(),
            ))
        }),
        case("big json", ResourceExhausted, |r| {
            r.input = Some(Input::EditorJson(format!("\"{}\"", "a".repeat(2000))))
        }),
        case("no files", InvalidArgument, move |r| r.input = files(&[])),
        case("too many files", ResourceExhausted, move |r| {
            r.input = files(&["a", "b", "c", "d", "e", "f"])
        }),
        case("big files", ResourceExhausted, |r| {
            r.input = Some(Input::Files(InputFiles {
                files: [("a".to_string(), "x".repeat(1001))].into(),
            }))
        }),
        case("zero tasks", InvalidArgument, |r| r.ntasks = 0),
        case("negative tasks", InvalidArgument, |r| r.ntasks = -1),
        case("too many tasks", InvalidArgument, |r| r.ntasks = 65),
        case("zero primaries", InvalidArgument, |r| r.primaries = 0),
        case("negative primaries", InvalidArgument, |r| r.primaries = -5),
        case("fewer primaries than tasks", InvalidArgument, |r| {
            r.primaries = 3
        }),
    ];
    // One input file with a name that is not a plain file name.
    for (name, file) in [
        ("traversal", "../etc/passwd"),
        ("subdir", "a/b"),
        ("backslash", "a\\b"),
        ("dotdot", ".."),
        ("nul", "x\0y"),
        ("empty name", ""),
    ] {
        cases.push(case(name, InvalidArgument, move |r| {
            r.input = files(&[file])
        }));
    }
    // A batch platform on a cluster with sbatch options, one of them wrong.
    for (name, cluster, options) in [
        ("no cluster", "", &[][..]),
        ("unknown cluster", "nope", &[]),
        ("bad sbatch option", "prom", &["--x\n"]),
        (
            "sbatch option not on the allow-list",
            "prom",
            &["--time=10", "--wrap=rm -rf /"],
        ),
        (
            "sbatch option that writes elsewhere",
            "prom",
            &["--output=/etc/passwd"],
        ),
        (
            "sbatch value with a command substitution",
            "prom",
            &["--comment=$(touch /tmp/pwned)"],
        ),
        ("short sbatch option", "prom", &["-A"]),
    ] {
        cases.push(case(name, InvalidArgument, move |r| {
            r.platform = batch(cluster, options)
        }));
    }
    cases.extend([
        case("ok files", Code::Ok, move |r| {
            let mut f = shieldhit_files("Output\n  Filename d.bdo\n  Geo G\n  Quantity Dose\n");
            f.insert(".hidden".into(), "x".into());
            r.sim_type = SimType::Shieldhit as i32;
            r.input = Some(Input::Files(InputFiles { files: f }));
        }),
        case("ok batch", Code::Ok, |r| {
            r.platform = batch("prom", &["--time=01:00:00"])
        }),
        case("ok minimal", Code::Ok, |_| {}),
    ]);
    for (name, edit, want) in cases {
        let mut r = simple_submit();
        edit(&mut r);
        let got = code_of(app.submit(&tok, r).await).await;
        assert_eq!(got, want, "{name}");
    }
    // Only the three accepted submissions were stored.
    let list = app.list(&tok, ListRequest::default()).await.unwrap();
    assert_eq!(list.total_count, 3);
}

#[tokio::test]
async fn submit_get_and_input_round_trip() {
    let (app, tok) = spawn_app_as("alice").await;
    let job = app.submit_split(&tok, 3, 10).await;
    let st = app.get(&tok, &job).await.unwrap();
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
    let input = app.get_input(&tok, &job).await.unwrap();
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
    let input = app.get_input(&tok, &job).await.unwrap();
    assert_eq!(input.input_type, InputType::Files as i32);
    assert_eq!(
        input.input,
        Some(get_input_response::Input::Files(InputFiles { files }))
    );

    let bad = app.get(&tok, "not-a-uuid").await.unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    let missing = uuid::Uuid::new_v4().to_string();
    let missing = app.get(&tok, &missing).await.unwrap_err();
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
    let (app, tok) = spawn_app_as("alice").await;
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
