//! The layout of a batch simulation's job directory on the cluster: one rule, shared by the
//! batch component (which writes the inputs and scripts and reads the results) and by
//! `worker element` on the nodes (which reads the manifest and writes one element's results).
//!
//! ```text
//! <work_dir>/<simulation job_id>/      the job directory (sbatch --chdir)
//!     manifest.json                    Manifest: simulation, simulator, one entry per task
//!     input/<file name>                the simulation's input files (files input)
//!     input/editor.json                the editor JSON (editor input)
//!     element.sh                       the array job's script (element = task index)
//!     collect.sh                       the collect job's script (afterany:<array>)
//!     collected                        written by the collect job when the array has ended
//!     element-<i>/slurm.out            the element's stdout and stderr (sbatch --output)
//!     element-<i>/progress             one line: "<primaries done> <seconds left or ->"
//!     element-<i>/result               the element's result, written last, atomically
//!     element-<i>/error                why the element failed, one line (when it did)
//!     element-<i>/exit-code            the worker's exit code, written by element.sh
//! ```

use serde::{Deserialize, Serialize};

/// The manifest's file name.
pub const MANIFEST: &str = "manifest.json";
/// The input directory's name.
pub const INPUT_DIR: &str = "input";
/// The array job's script.
pub const ELEMENT_SCRIPT: &str = "element.sh";
/// The collect job's script.
pub const COLLECT_SCRIPT: &str = "collect.sh";
/// An editor JSON input's file name under [`INPUT_DIR`].
pub const EDITOR_INPUT: &str = "editor.json";
/// An element's progress file.
pub const PROGRESS: &str = "progress";
/// An element's result file.
pub const RESULT: &str = "result";
/// An element's error file.
pub const ERROR: &str = "error";
/// The exit code file `element.sh` writes.
pub const EXIT_CODE: &str = "exit-code";
/// An element's stdout and stderr (see [`ELEMENT_OUTPUT`]).
pub const SLURM_OUT: &str = "slurm.out";
/// The marker the collect job writes.
pub const COLLECTED: &str = "collected";
/// `sbatch --output` of the array job, relative to the job directory (`%a`: the index).
pub const ELEMENT_OUTPUT: &str = "element-%a/slurm.out";
/// `sbatch --output` of the collect job.
pub const COLLECT_OUTPUT: &str = "collect.out";

/// What every element of a batch simulation needs to know, written once per simulation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The simulation's database id (the seeds derive from it, as for direct runs).
    pub simulation_id: i64,
    /// The simulation's public id.
    pub job_id: String,
    /// The simulator (`db::enums::SimType` as text: `builtin`, `shieldhit`, …).
    pub sim_type: String,
    /// How the input was given (`db::enums::InputType` as text).
    pub input_type: String,
    /// One entry per task; the array index is the task index.
    pub tasks: Vec<ManifestTask>,
}

/// One task of a [`Manifest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestTask {
    /// The task's database id.
    pub task_id: i64,
    /// Its index in the simulation, also the SLURM array index.
    pub task_index: i32,
    /// Primaries it should simulate.
    pub requested_primaries: i64,
}

impl Manifest {
    /// The task run by array element `index`.
    pub fn task(&self, index: i32) -> Option<&ManifestTask> {
        self.tasks.iter().find(|t| t.task_index == index)
    }
}

/// Progress an element reports: primaries done and, when known, seconds left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Primaries simulated so far.
    pub primaries_done: i64,
    /// Estimated seconds to the end.
    pub seconds_left: Option<i64>,
}

impl Progress {
    /// The file's one line.
    pub fn to_line(&self) -> String {
        match self.seconds_left {
            Some(s) => format!("{} {s}\n", self.primaries_done),
            None => format!("{} -\n", self.primaries_done),
        }
    }

    /// Reads the line back; `None` for a partly written or foreign file.
    pub fn parse(text: &str) -> Option<Self> {
        let mut f = text.split_whitespace();
        let primaries_done = f.next()?.parse().ok()?;
        let seconds_left = match f.next()? {
            "-" => None,
            s => Some(s.parse().ok()?),
        };
        Some(Self {
            primaries_done,
            seconds_left,
        })
    }
}

/// What [`check_work_dir`] accepts, in words.
pub const WORK_DIR_RULE: &str = "a work directory is an absolute path on the cluster \
     (starting with '/'), with no '..' component";

/// A cluster's work directory that job directories cannot go under.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("work directory {0:?} is refused: {WORK_DIR_RULE}")]
pub struct WorkDirError(pub String);

/// Checks a cluster's work directory against [`WORK_DIR_RULE`]: job directories are made
/// under it (`sbatch --chdir`), on the cluster, whatever directory a command starts in, and
/// [`crate::Slurm::remove_dir`] refuses a path with `..`.
pub fn check_work_dir(dir: &str) -> Result<(), WorkDirError> {
    if dir.starts_with('/') && !dir.split('/').any(|p| p == "..") {
        Ok(())
    } else {
        Err(WorkDirError(dir.to_owned()))
    }
}

/// Paths inside one job directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobDir {
    root: String,
}

impl JobDir {
    /// The job directory of simulation `job_id` under a cluster's `work_dir`.
    pub fn new(work_dir: &str, job_id: &str) -> Self {
        Self {
            root: format!("{}/{job_id}", work_dir.trim_end_matches('/')),
        }
    }

    /// A job directory recorded earlier (`simulations.job_dir`).
    pub fn at(root: &str) -> Self {
        Self {
            root: root.to_owned(),
        }
    }

    /// The directory itself.
    pub fn root(&self) -> &str {
        &self.root
    }

    /// A path directly under the job directory.
    pub fn path(&self, name: &str) -> String {
        format!("{}/{name}", self.root)
    }

    /// An input file's path (`name` must be a checked `sim_inputs::FileName`).
    pub fn input(&self, name: &str) -> String {
        format!("{}/{INPUT_DIR}/{name}", self.root)
    }

    /// Element `index`'s directory.
    pub fn element(&self, index: i32) -> String {
        format!("{}/element-{index}", self.root)
    }

    /// A file in element `index`'s directory (`progress`, `result`, `exit-code`, `slurm.out`).
    pub fn element_file(&self, index: i32, name: &str) -> String {
        format!("{}/{name}", self.element(index))
    }
}

/// What one element has left in its directory, as [`ELEMENT_FILES_SCRIPT`] reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ElementFiles {
    /// The worker's exit code (`exit-code`), once `element.sh` has ended.
    pub exit_code: Option<i32>,
    /// Whether the result file exists.
    pub has_result: bool,
    /// The last progress line.
    pub progress: Option<Progress>,
    /// The error file's first line (at most its first 2000 bytes).
    pub error: Option<String>,
}

/// A `sh` script that lists every element directory of the job directory `$1` in one line
/// each: `index|exit code|r or -|progress line|error's first line`, so that one command per
/// simulation reads all its elements' state ([`parse_element_files`]). It uses only shell
/// builtins (`read`, `printf`, `[`): no process per element, so that a poll of a 1000-element
/// array stays one process.
pub const ELEMENT_FILES_SCRIPT: &str = r#"cd -- "$1" || exit 3
for d in element-*; do
  [ -d "$d" ] || continue
  c=; p=; e=; r=-
  { read -r c < "$d/exit-code"; } 2>/dev/null
  { read -r p < "$d/progress"; } 2>/dev/null
  { read -r e < "$d/error"; } 2>/dev/null
  [ -e "$d/result" ] && r=r
  printf '%s|%s|%s|%s|%s\n' "${d#element-}" "$c" "$r" "$p" "$e"
done"#;

/// Parses [`ELEMENT_FILES_SCRIPT`]'s output into the files of each element index; lines
/// that do not parse (a directory not made by `element.sh`) are skipped.
pub fn parse_element_files(out: &str) -> std::collections::BTreeMap<u32, ElementFiles> {
    out.lines()
        .filter_map(|line| {
            let mut f = line.splitn(5, '|');
            let index = f.next()?.parse::<u32>().ok()?;
            let exit_code = f.next()?.trim().parse::<i32>().ok();
            let has_result = f.next()? == "r";
            let progress = Progress::parse(f.next()?);
            let error = f
                .next()
                .map(|e| truncate_at_char(e.trim(), 2000))
                .filter(|e| !e.is_empty());
            Some((
                index,
                ElementFiles {
                    exit_code,
                    has_result,
                    progress,
                    error: error.map(str::to_owned),
                },
            ))
        })
        .collect()
}

/// The first `max` bytes of `s`, cut at a character boundary.
fn truncate_at_char(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The array job's script: runs `worker element` for the element's task, then records the
/// exit code. `worker_path` is the cluster's setting, quoted here as one shell word.
pub fn element_script(worker_path: &str) -> Result<String, crate::CommandError> {
    let worker = crate::transport::quote(&[worker_path])?;
    Ok(format!(
        "#!/bin/sh\n\
         # Written by the batch component: one array element = one task (index = task index).\n\
         i=${{SLURM_ARRAY_TASK_ID:?not an array element}}\n\
         mkdir -p \"element-$i\"\n\
         {worker} element --job-dir . --index \"$i\"\n\
         rc=$?\n\
         echo \"$rc\" > \"element-$i/exit-code\"\n\
         exit \"$rc\"\n"
    ))
}

/// The collect job's script: runs after every element has ended (`afterany`), and marks it.
pub fn collect_script() -> String {
    format!(
        "#!/bin/sh\n\
         # Written by the batch component: runs once the whole array has ended.\n\
         date -u +%Y-%m-%dT%H:%M:%SZ > {COLLECTED}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_dirs_are_absolute_without_dot_dot() {
        for good in ["/", "/scratch/sim", "/net/scratch/sim/", "/a/..b/c", "/a b"] {
            assert_eq!(check_work_dir(good), Ok(()), "{good:?}");
        }
        for bad in ["", "scratch", "./x", "~/jobs", "/a/../b", "/..", "$HOME/x"] {
            assert_eq!(
                check_work_dir(bad),
                Err(WorkDirError(bad.into())),
                "{bad:?}"
            );
        }
        let e = check_work_dir("rel").unwrap_err().to_string();
        assert!(e.contains(WORK_DIR_RULE) && e.contains("\"rel\""), "{e}");
    }

    #[test]
    fn progress_lines_round_trip() {
        for p in [
            Progress {
                primaries_done: 0,
                seconds_left: None,
            },
            Progress {
                primaries_done: 12_345,
                seconds_left: Some(60),
            },
        ] {
            assert_eq!(Progress::parse(&p.to_line()), Some(p));
        }
        assert_eq!(Progress::parse("12"), None);
        assert_eq!(Progress::parse("x 1"), None);
    }

    /// The listing script, run by a real `sh` on a job directory, reports each element.
    #[test]
    fn element_files_are_listed_in_one_command() {
        let dir = std::env::temp_dir().join(format!("slurm-files-{}", std::process::id()));
        let w = |p: &str, text: &str| {
            let path = dir.join(p);
            std::fs::create_dir_all(path.parent().unwrap_or(&dir))
                .unwrap_or_else(|e| panic!("{e}"));
            std::fs::write(path, text).unwrap_or_else(|e| panic!("{e}"));
        };
        w("element-0/exit-code", "0\n");
        w("element-0/result", "{}");
        w("element-0/progress", "100 0\n");
        w("element-1/progress", "40 -\n");
        w("element-2/exit-code", "1\n");
        w("element-2/error", "failed: bad | input\nsecond line");
        w("input/beam.dat", "");
        let out = std::process::Command::new("sh")
            .args(["-c", ELEMENT_FILES_SCRIPT, "sh"])
            .arg(&dir)
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        let files = parse_element_files(&String::from_utf8_lossy(&out.stdout));
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(files.len(), 3, "{files:?}");
        assert_eq!(files[&0].exit_code, Some(0));
        assert!(files[&0].has_result);
        assert_eq!(files[&1].exit_code, None);
        assert_eq!(
            files[&1].progress,
            Some(Progress {
                primaries_done: 40,
                seconds_left: None
            })
        );
        assert_eq!(files[&2].exit_code, Some(1));
        assert!(!files[&2].has_result);
        assert_eq!(files[&2].error.as_deref(), Some("failed: bad | input"));
    }

    #[test]
    fn paths() {
        let d = JobDir::new("/scratch/sim/", "5f0c");
        assert_eq!(d.root(), "/scratch/sim/5f0c");
        assert_eq!(d.input("beam.dat"), "/scratch/sim/5f0c/input/beam.dat");
        assert_eq!(
            d.element_file(3, "result"),
            "/scratch/sim/5f0c/element-3/result"
        );
        assert_eq!(JobDir::at("/a/b").path(MANIFEST), "/a/b/manifest.json");
    }

    /// The element script, run by a real `sh` with a worker whose path needs quoting, passes
    /// the right arguments and records the exit code.
    #[test]
    fn element_script_runs_the_worker_and_records_its_exit_code() {
        let dir = std::env::temp_dir().join(format!("slurm-jobdir-{}", std::process::id()));
        let bin = dir.join("my worker's $(bin)");
        std::fs::create_dir_all(&bin).unwrap_or_else(|e| panic!("{e}"));
        let worker = bin.join("worker");
        std::fs::write(&worker, "#!/bin/sh\necho \"$@\" > args\nexit 7\n")
            .unwrap_or_else(|e| panic!("{e}"));
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&worker, std::fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("{e}"));
        let script =
            element_script(worker.to_str().unwrap_or_default()).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.join(ELEMENT_SCRIPT), script).unwrap_or_else(|e| panic!("{e}"));
        let status = std::process::Command::new("sh")
            .arg(ELEMENT_SCRIPT)
            .current_dir(&dir)
            .env("SLURM_ARRAY_TASK_ID", "3")
            .status();
        assert_eq!(status.ok().and_then(|s| s.code()), Some(7));
        let read = |p: &str| std::fs::read_to_string(dir.join(p)).unwrap_or_default();
        assert_eq!(read("args"), "element --job-dir . --index 3\n");
        assert_eq!(read("element-3/exit-code"), "7\n");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
