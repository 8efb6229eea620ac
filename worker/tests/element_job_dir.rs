//! `worker element` (the real binary) on job directories the batch component did not write
//! whole: a missing or corrupt manifest, an index it does not hold, an unknown simulator, a
//! missing or corrupt input. Each ends with exit code 2 and one `error` line that names the
//! damaged part, and no result file; a whole directory runs (exit 0, a result file).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::{Path, PathBuf};

/// A fresh job directory under the system's temporary directory, removed when dropped.
struct JobDir(PathBuf);

impl JobDir {
    fn new(tag: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir =
            std::env::temp_dir().join(format!("element-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn write(&self, name: &str, text: &str) -> &Self {
        let path = self.0.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
        self
    }

    /// Runs element `index`: its exit code, and its `error` line (empty when none).
    fn run(&self, index: &str) -> (i32, String) {
        let out = tests::command("worker")
            .args(["element", "--index", index, "--job-dir"])
            .arg(&self.0)
            .env("RUST_LOG", "off")
            .output()
            .unwrap();
        let element = self.0.join(format!("element-{index}"));
        let error = std::fs::read_to_string(element.join("error")).unwrap_or_default();
        if out.status.code() != Some(0) {
            assert!(!element.join("result").exists(), "a result beside an error");
        }
        (out.status.code().unwrap_or(-1), error)
    }
}

impl Drop for JobDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn manifest(sim_type: &str) -> String {
    serde_json::json!({
        "simulation_id": 7,
        "job_id": "00000000-0000-4000-8000-000000000007",
        "sim_type": sim_type,
        "input_type": "editor",
        "tasks": [{"task_id": 70, "task_index": 0, "requested_primaries": 20}]
    })
    .to_string()
}

const EDITOR: &str = r#"{"beam": {"energy_mev": 60.0}, "scoring": {"z_bins": 5, "r_bins": 1}}"#;

fn assert_fails(dir: &JobDir, index: &str, words: &[&str]) {
    let (code, error) = dir.run(index);
    assert_eq!(code, 2, "{error}");
    assert!(error.starts_with("the element cannot run: "), "{error}");
    for w in words {
        assert!(error.contains(w), "{w:?} not in {error:?}");
    }
}

fn path_of(dir: &JobDir, name: &str) -> String {
    Path::new(&dir.0).join(name).display().to_string()
}

#[test]
fn a_damaged_job_directory_is_named_in_the_error() {
    let dir = JobDir::new("nomanifest");
    assert_fails(
        &dir,
        "0",
        &["the manifest", &path_of(&dir, "manifest.json")],
    );

    let dir = JobDir::new("badmanifest");
    dir.write("manifest.json", "{\"simulation_id\": 7, \0");
    assert_fails(&dir, "0", &["the manifest is not valid"]);

    let dir = JobDir::new("noindex");
    dir.write("manifest.json", &manifest("builtin"));
    dir.write("input/editor.json", EDITOR);
    assert_fails(&dir, "3", &["no task with index 3"]);

    let dir = JobDir::new("simtype");
    dir.write("manifest.json", &manifest("'; DROP TABLE tasks; --"));
    dir.write("input/editor.json", EDITOR);
    assert_fails(&dir, "0", &["DROP TABLE"]);

    let dir = JobDir::new("noinput");
    dir.write("manifest.json", &manifest("builtin"));
    assert_fails(
        &dir,
        "0",
        &["the editor input", &path_of(&dir, "input/editor.json")],
    );

    let dir = JobDir::new("badinput");
    dir.write("manifest.json", &manifest("builtin"));
    dir.write("input/editor.json", "not json");
    assert_fails(&dir, "0", &["the editor input is not JSON"]);
}

#[test]
fn a_whole_job_directory_runs() {
    let dir = JobDir::new("whole");
    dir.write("manifest.json", &manifest("builtin"));
    dir.write("input/editor.json", EDITOR);
    let (code, error) = dir.run("0");
    assert_eq!((code, error.as_str()), (0, ""));
    assert!(dir.0.join("element-0/result").exists());
}

#[test]
fn a_negative_index_is_bad_usage() {
    let dir = JobDir::new("negative");
    let out = tests::command("worker")
        .args(["element", "--index", "-1", "--job-dir"])
        .arg(&dir.0)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(!dir.0.join("element--1").exists());
}
