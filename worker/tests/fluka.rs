//! FLUKA tasks through the real worker and the real pymchelper `convertmc`, with a stand-in
//! rfluka (tests/standins/rfluka) that replays the captured real FLUKA run of
//! `../shared/data/pymchelper/captured/rfluka/`: its stdout, and its binary USRBIN results
//! under the names rfluka gives them. Covered: a merge equal to `convertmc json --many` of the
//! same files, weighted by the primaries the output says it ran; progress from the run's
//! `.out`; the `RANDOMIZE`/`ASSIGNMAT` spellings; two RANDOMIZ cards; free-format input; an
//! aborted run, a run that writes no result file, a failing rfluka, a hang that cancellation kills, truncated results, and
//! inputs the worker refuses.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use db::enums::{JobState, SimType, TaskState};
use db::inputs::SimulationInput;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};
use support::reference::{convertmc_json_many, flatten};
use support::{shared_data, SimTest};

/// The primaries the captured run simulated (its START, and `number_of_primaries` of its
/// results), whatever a task asks for.
const CAPTURED_PRIMARIES: i64 = 20;

fn real(rel: &str) -> String {
    std::fs::read_to_string(shared_data(rel)).unwrap()
}

/// The captured run's input (fixed format, `RANDOMIZ 1.0 1.`, `START 20`).
fn minimal() -> String {
    real("captured/rfluka/input/minimal.inp")
}

fn files_with(inp: &str, mode: &str, delay: f64) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("fl_sim.inp".to_string(), inp.to_string()),
        (
            "standin.json".to_string(),
            format!("{{\"mode\": \"{mode}\", \"delay\": {delay}}}"),
        ),
    ])
}

fn files(mode: &str, delay: f64) -> BTreeMap<String, String> {
    files_with(&minimal(), mode, delay)
}

async fn start(with_program: bool) -> SimTest {
    SimTest::start(SimType::Fluka, ("--fluka", "rfluka"), with_program).await
}

/// Submits the captured input with the stand-in replaying it (`delay` seconds between its
/// progress blocks); returns the simulation's id.
async fn submit_ok(h: &mut SimTest, ntasks: i32, primaries: i64, delay: f64) -> i64 {
    let input = SimulationInput::Files(files("ok", delay));
    h.submit(ntasks, primaries, input).await
}

/// [`SimTest::fails_keeping_log`] of a run of the captured input with the stand-in in `mode`.
async fn fails_keeping_log(mode: &str, error: &[&str], logged: (&str, &str)) {
    let input = SimulationInput::Files(files(mode, 0.01));
    start(true)
        .await
        .fails_keeping_log(input, error, logged)
        .await;
}

/// The `fl_sim.inp` the worker wrote for task 0 of a one-task simulation of `inp` (of 500
/// primaries), read while the stand-in hangs; the task is then canceled. Returns the
/// simulation's id and the text.
async fn rewritten(h: &mut SimTest, inp: &str) -> (i64, String) {
    let input = SimulationInput::Files(files_with(inp, "hang", 0.01));
    let sim = h.submit(1, 500, input).await;
    let dir = h.worker.work_root.join(format!("sim{sim}-task0-attempt1"));
    let t0 = Instant::now();
    while !std::fs::read_to_string(dir.join("pid")).is_ok_and(|p| !p.is_empty()) {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "rfluka never started"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let text = std::fs::read_to_string(dir.join("fl_sim.inp")).unwrap();
    db::simulation_views::cancel(&mut h.conn, sim)
        .await
        .unwrap()
        .unwrap();
    h.wait(sim, JobState::Canceled, 20).await;
    (sim, text)
}

/// The lines of `text` whose first 8 columns are `keyword` (FLUKA's fixed-format rule).
fn fixed_cards<'a>(text: &'a str, keyword: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|l| l.chars().take(8).collect::<String>().trim_end() == keyword)
        .collect()
}

/// pymchelper's own merge of `copies` runs that each wrote the captured results: `convertmc
/// json --many` of `a001_fort.NN`, `b001_fort.NN`, … in a fresh directory, by estimator.
fn convertmc_reference(copies: usize) -> BTreeMap<String, serde_json::Value> {
    let dir = std::env::temp_dir().join(format!("fluka-reference-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let output = shared_data("captured/rfluka/output");
    for entry in std::fs::read_dir(&output).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let unit = name.split_once("_fort.").unwrap().1.to_string();
        for c in 0..copies {
            let copy = format!("{}001_fort.{unit}", char::from(b'a' + c as u8));
            std::fs::copy(entry.path(), dir.join(copy)).unwrap();
        }
    }
    convertmc_json_many(&format!("{}/*_fort.*", dir.display()), &dir);
    let mut by_name = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap().flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "json") {
            let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
            let json = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            by_name.insert(stem, json);
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
    by_name
}

#[tokio::test]
async fn three_tasks_merge_like_convertmc_json_many_weighted_by_the_outputs_primaries() {
    let mut h = start(true).await;
    let sim = submit_ok(&mut h, 3, 3000, 0.01).await;
    h.wait(sim, JobState::Completed, 90).await;

    let ts = h.tasks(sim).await;
    let mut seeds = Vec::new();
    for t in &ts {
        assert_eq!(t.requested_primaries, 1000);
        assert_eq!(
            t.simulated_primaries, CAPTURED_PRIMARIES,
            "the weight is the output's number_of_primaries, not the request"
        );
        let text = h.log(sim, Some(t.id), "stdout").await;
        assert!(text.contains("F L U K A"), "{text}");
        assert!(text.contains("Running FLUKA for cycle # 1"), "{text}");
        assert!(text.contains("fl_sim001_fort.21"), "{text}");
        let seed = sim_inputs::fluka::seed(sim, t.task_index);
        assert!(text.contains(&format!("RANDOMIZ seed {seed}")), "{text}");
        assert!(text.contains("fl_sim.inp: START          1000."), "{text}");
        assert!(
            text.contains(&format!(
                "fl_sim.inp: RANDOMIZ         1.0{:>10}",
                format!("{seed}.")
            )),
            "{text}"
        );
        seeds.push(seed);
    }
    seeds.sort_unstable();
    seeds.dedup();
    assert_eq!(seeds.len(), 3, "each task gets its own seed");

    let pages = db::results::read_all(&mut h.conn, sim).await.unwrap();
    let reference = convertmc_reference(3);
    assert_eq!(
        reference.keys().collect::<Vec<_>>(),
        ["21", "22"],
        "one estimator per fort unit"
    );
    for (name, est) in &reference {
        assert_eq!(
            est["metadata"]["number_of_primaries"].as_str(),
            Some("60"),
            "pymchelper's merge sums the primaries"
        );
        for (n, want) in est["pages"].as_array().unwrap().iter().enumerate() {
            let got = pages
                .iter()
                .find(|p| &p.estimator == name && p.page_number == n as i32)
                .unwrap_or_else(|| panic!("no page {n} of {name}"));
            assert_eq!(got.aggregation, db::aggregation::Aggregation::Mean);
            assert!(!got.partial, "the final page");
            assert_eq!(
                i64::from(got.meta.dimension),
                want["dimensions"].as_i64().unwrap()
            );
            assert_eq!(got.meta.value_unit, want["data"]["unit"].as_str().unwrap());
            let mut values = Vec::new();
            flatten(&want["data"]["values"], &mut values);
            assert_eq!(got.values.len(), values.len(), "{name}");
            assert!(values.iter().any(|v| *v != 0.0));
            for (b, (g, w)) in got.values.iter().zip(&values).enumerate() {
                assert!(
                    (g - w).abs() <= 1e-12 * w.abs(),
                    "{name} page {n} bin {b}: {g} vs {w}"
                );
            }
        }
    }
}

#[tokio::test]
async fn progress_is_read_from_the_runs_out_file() {
    let mut h = start(true).await;
    // Five progress blocks of 2000 primaries, 0.6 s apart.
    let sim = submit_ok(&mut h, 1, 10_000, 0.6).await;
    let t0 = Instant::now();
    let mut seen = Vec::new();
    loop {
        let t = &h.tasks(sim).await[0];
        if t.task_state == TaskState::Running && t.simulated_primaries > 0 {
            seen.push((t.simulated_primaries, t.estimated_time_s));
        }
        if t.task_state == TaskState::Completed {
            assert_eq!(t.simulated_primaries, CAPTURED_PRIMARIES);
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "never completed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let partial: Vec<_> = seen.iter().filter(|(done, _)| *done < 10_000).collect();
    assert!(!partial.is_empty(), "no progress below the total: {seen:?}");
    assert!(
        partial
            .iter()
            .all(|(done, eta)| done % 2000 == 0 && eta.is_some()),
        "{seen:?}"
    );
}

#[tokio::test]
async fn the_nine_letter_randomize_card_gets_the_seed_and_no_second_one_is_added() {
    let mut h = start(true).await;
    // exmixed.inp spells `RANDOMIZE` and `ASSIGNMAT` (FLUKA reads 8 columns).
    let exmixed = real("fluka/exmixed.inp");
    let (sim, text) = rewritten(&mut h, &exmixed).await;
    let seed = format!("{}.", sim_inputs::fluka::seed(sim, 0));
    assert_eq!(
        fixed_cards(&text, "RANDOMIZ"),
        [format!("RANDOMIZE        1.0{seed:>10}")],
        "{text}"
    );
    assert_eq!(fixed_cards(&text, "START"), ["START           500."]);
    assert_eq!(
        fixed_cards(&text, "ASSIGNMA"),
        fixed_cards(&exmixed, "ASSIGNMA"),
        "ASSIGNMAT cards untouched"
    );
    assert_eq!(
        text.lines().count(),
        exmixed.lines().count(),
        "no card added"
    );

    let input = SimulationInput::Files(files_with(&exmixed, "ok", 0.01));
    let sim = h.submit(2, 100, input).await;
    h.wait(sim, JobState::Completed, 60).await;
}

#[tokio::test]
async fn two_randomiz_cards_are_refused() {
    let mut h = start(true).await;
    let two = minimal().replace(
        "* Set the number",
        "RANDOMIZE        1.0        2.\n* Set the number",
    );
    let files = files_with(&two, "ok", 0.01);
    let at_submit = sim_inputs::fluka::validate(&files, 1, 100).unwrap_err().0;
    assert!(
        at_submit.contains("fl_sim.inp has 2 RANDOMIZ cards"),
        "{at_submit}"
    );
    let err = h.failure(SimulationInput::Files(files)).await.1;
    assert!(
        err.contains("fl_sim.inp has 2 RANDOMIZ cards (lines 37 and 38"),
        "{err}"
    );
}

#[tokio::test]
async fn a_free_format_input_runs_with_start_and_randomiz_rewritten_in_free_format() {
    let mut h = start(true).await;
    let free = minimal()
        .replace("RANDOMIZ         1.0        1.", "FREE\nRANDOMIZ 1.0 1.")
        .replace("START             20", "START, 20");
    sim_inputs::fluka::validate(&files_with(&free, "ok", 0.01), 2, 250).unwrap();
    let (sim, text) = rewritten(&mut h, &free).await;
    let seed = sim_inputs::fluka::seed(sim, 0);
    assert!(
        text.contains(&format!("\nFREE\nRANDOMIZ, 1.0, {seed}.\n")),
        "RANDOMIZ in free format: {text}"
    );
    assert!(
        text.contains("\nSTART, 500.\nSTOP\n"),
        "START in free format: {text}"
    );

    let input = SimulationInput::Files(files_with(&free, "ok", 0.01));
    let sim = h.submit(2, 500, input).await;
    h.wait(sim, JobState::Completed, 60).await;
    for t in h.tasks(sim).await {
        assert_eq!(t.simulated_primaries, CAPTURED_PRIMARIES);
        let log = h.log(sim, Some(t.id), "stdout").await;
        assert!(log.contains("fl_sim.inp: START, 250."), "{log}");
    }
    let pages = db::results::read_all(&mut h.conn, sim).await.unwrap();
    assert!(pages.iter().any(|p| p.estimator == "21"));
    assert!(pages.iter().any(|p| p.estimator == "22"));
}

#[tokio::test]
async fn an_aborted_run_fails_with_the_reason_from_its_err_file() {
    let error = [
        "FLUKA did not finish its run",
        "fl_sim001.out",
        "particle lost in region 3",
    ];
    fails_keeping_log("abort", &error, ("stdout", "Running fluka in")).await;
}

/// A run that ends normally but leaves no `_fort.NN` file (Submit refuses inputs without a
/// binary scorer, so this is what is left) fails at once saying so, and keeps its logs.
#[tokio::test]
async fn a_run_that_writes_no_result_files_fails_saying_so() {
    let error = [
        "FLUKA wrote no result files (fl_sim001_fort.NN)",
        "scoring cards of fl_sim.inp",
    ];
    fails_keeping_log("noresults", &error, ("stdout", "Saving additional files")).await;
}

#[tokio::test]
async fn a_failing_rfluka_fails_the_task_and_keeps_its_logs() {
    let error = ["exited with code 4", "no FLUKA executable"];
    fails_keeping_log("exit", &error, ("stderr", "cannot run fl_sim")).await;
}

#[tokio::test]
async fn truncated_results_are_a_clear_failure() {
    let mut h = start(true).await;
    h.fails_with(
        SimulationInput::Files(files("truncated", 0.01)),
        "convertmc exited with code 1",
    )
    .await;
}

#[tokio::test]
async fn inputs_the_worker_cannot_run_are_refused_clearly() {
    let no_start = minimal().replace("START             20\n", "");
    let no_start = SimulationInput::Files(files_with(&no_start, "ok", 0.01));
    let mut none = files("ok", 0.01);
    none.remove("fl_sim.inp");
    let editor = SimulationInput::Editor("{}".into());
    start(true)
        .await
        .fails_with_each([
            (no_start, "fl_sim.inp has no START card"),
            (SimulationInput::Files(none), "no .inp file"),
            (editor, "FLUKA needs input files"),
        ])
        .await;
}

external_simulator_tests! { start: start, hang: files("hang", 0.01), ok: files("ok", 0.01) }

/// The worker that has FLUKA (`a_worker_without_the_program_leaves_its_tasks_to_one_with_it`)
/// needs `convertmc` too: the tests' `convertmc` is there.
#[test]
fn the_tests_have_convertmc() {
    assert!(Path::new(&support::convertmc()).is_file());
}
