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

/// A real input file from `../shared/data/pymchelper/` (`rel` below it).
fn real(rel: &str) -> String {
    let path = sim_inputs::testdata::pymchelper_data(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The captured real SHIELD-HIT12A run's four input files, `edit`ed.
fn real_shieldhit(edit: impl Fn(&str, String) -> String) -> HashMap<String, String> {
    ["beam.dat", "detect.dat", "geo.dat", "mat.dat"]
        .into_iter()
        .map(|f| {
            let text = real(&format!("captured/shieldhit/input/{f}"));
            (f.to_string(), edit(f, text))
        })
        .collect()
}

/// What the simulators cannot run is refused at Submit with INVALID_ARGUMENT naming the
/// cause, and nothing is queued (each would otherwise run every task and then fail): a
/// beam.dat without NSTAT, more SHIELD-HIT12A tasks than its 4-digit seed offset allows, a
/// TOPAS task over 2³¹−1 histories (the largest task's share, rounded up), a FLUKA input
/// without a scoring card, and result pages over 16 Mi values (a SHIELD-HIT12A mesh, a FLUKA
/// USRBIN). The real inputs they are made from are accepted.
#[tokio::test]
async fn inputs_over_the_simulators_limits_are_refused_at_submit() {
    let limits = sim_api::Limits {
        max_ntasks: 20_000,
        ..sim_api::Limits::default()
    };
    let app = spawn_app_with(limits).await;
    let tok = app.user_token("alice", false).await;
    let request =
        |sim_type: SimType, files: HashMap<String, String>, ntasks: i32, primaries: i64| {
            let mut r = simple_submit();
            r.sim_type = sim_type as i32;
            r.ntasks = ntasks;
            r.primaries = primaries;
            r.input = Some(Input::Files(InputFiles { files }));
            r
        };
    let limit = sim_inputs::MAX_PAGE_VALUES.to_string();
    let limit = limit.as_str();
    let no_nstat = real_shieldhit(|f, t| {
        if f == "beam.dat" {
            t.lines()
                .filter(|l| !l.starts_with("NSTAT"))
                .map(|l| format!("{l}\n"))
                .collect()
        } else {
            t
        }
    });
    // X 2 × Y 4000 × Z 4000 = 32 M values.
    let big_mesh = real_shieldhit(|f, t| {
        if f == "detect.dat" {
            t.replace("X  -0.5  0.5  1", "X  -0.5  0.5  2")
                .replace("Y  -2.0  2.0  4", "Y  -2.0  2.0  4000")
                .replace("Z  -2.0  2.0  4", "Z  -2.0  2.0  4000")
        } else {
            t
        }
    });
    assert_ne!(
        big_mesh["detect.dat"],
        real("captured/shieldhit/input/detect.dat")
    );
    let fluka = real("captured/rfluka/input/minimal.inp");
    let no_scorer: String = fluka
        .lines()
        .filter(|l| !l.starts_with("USRBIN"))
        .map(|l| format!("{l}\n"))
        .collect();
    // X 1000 × Y 100 × Z 200 = 20 M values.
    let big_usrbin = fluka.replace(
        "        4.        1.        4. &",
        "     1000.      100.      200. &",
    );
    assert_ne!(big_usrbin, fluka);
    let one = |name: &str, text: &str| HashMap::from([(name.to_string(), text.to_string())]);
    let topas = real("captured/topas/input/minimal.txt");
    let max = i64::from(i32::MAX);
    let topas_share = format!("each task would run {} histories", max + 1);
    let cases = [
        (
            request(SimType::Shieldhit, no_nstat, 1, 100),
            vec!["beam.dat has no NSTAT card"],
        ),
        (
            request(SimType::Shieldhit, real_shieldhit(|_, t| t), 10_000, 10_000),
            vec!["at most 9999 tasks", "not 10000"],
        ),
        (
            request(SimType::Shieldhit, big_mesh, 1, 100),
            vec![
                "Output mesh.bdo, Quantity Dose on Geometry YZ_Mesh (Mesh)",
                "32000000 values (X 2 × Y 4000 × Z 4000)",
                limit,
            ],
        ),
        // 2 tasks of 2·(2³¹−1) + 1 histories: the larger one gets 2³¹.
        (
            request(SimType::Topas, one("minimal.txt", &topas), 2, 2 * max + 1),
            vec![topas_share.as_str(), "32-bit limit"],
        ),
        (
            request(SimType::Fluka, one("minimal.inp", &no_scorer), 1, 100),
            vec!["minimal.inp has no scoring card writing a binary result file"],
        ),
        (
            request(SimType::Fluka, one("minimal.inp", &big_usrbin), 1, 100),
            vec![
                "USRBIN dose_xz (line 31, unit -21) makes a page of 20000000 values",
                limit,
            ],
        ),
    ];
    for (req, want) in cases {
        let e = app.submit(&tok, req).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{want:?}: {e:?}");
        for w in want {
            assert!(e.message().contains(w), "{w}: {}", e.message());
        }
    }
    let n = app.sql_count("SELECT count(*) FROM simulations").await;
    assert_eq!(n, 0, "nothing was queued");

    // At the limits, the same inputs are accepted.
    let accepted = [
        request(SimType::Shieldhit, real_shieldhit(|_, t| t), 9999, 9999),
        request(SimType::Topas, one("minimal.txt", &topas), 2, 2 * max),
        request(SimType::Fluka, one("minimal.inp", &fluka), 1, 100),
    ];
    for req in accepted {
        app.submit(&tok, req).await.unwrap();
    }
    let n = app.sql_count("SELECT count(*) FROM simulations").await;
    assert_eq!(n, 3);
}

/// A batch platform on `cluster` with these sbatch options.
fn batch(cluster: &str, sbatch_options: &[&str]) -> Option<Platform> {
    Some(Platform::Batch(BatchPlatform {
        cluster: cluster.into(),
        sbatch_options: sbatch_options.iter().map(|o| o.to_string()).collect(),
    }))
}
