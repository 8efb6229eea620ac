//! The SLURM commands the batch component needs, on one cluster: files in the job directory,
//! `sbatch`, one `squeue` per poll, `scancel`.

use crate::options::SbatchOption;
use crate::state::{parse_squeue, ElementStatus, JobId, SQUEUE_FORMAT};
use crate::transport::{CommandError, Transport};

/// A failed SLURM operation.
#[derive(Debug, thiserror::Error)]
pub enum SlurmError {
    /// The command failed (see [`CommandError::is_transient`]).
    #[error(transparent)]
    Command(#[from] CommandError),
    /// `sbatch --parsable` printed something that is not a job id.
    #[error("sbatch printed {0:?}, not a job id")]
    BadJobId(String),
    /// A path that is not absolute, or too short to be a job directory, was given to remove.
    #[error("refusing to remove {0:?}: not an absolute job directory path")]
    UnsafePath(String),
}

impl SlurmError {
    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Command(e) if e.is_transient())
    }
}

/// One `sbatch` submission.
#[derive(Debug, Clone)]
pub struct JobSpec<'a> {
    /// `--job-name`.
    pub name: &'a str,
    /// `--chdir`: the job directory on the cluster (absolute).
    pub job_dir: &'a str,
    /// The batch script's path on the cluster.
    pub script: &'a str,
    /// `--array=first-last`, for an array job.
    pub array: Option<(u32, u32)>,
    /// `--dependency=afterany:<id>`: start after that job (every element) has ended.
    pub after_any: Option<JobId>,
    /// `--partition`, the cluster's default partition.
    pub partition: Option<&'a str>,
    /// `--output`, relative to the job directory; `%a` is the array index, `%j` the job id.
    pub output: &'a str,
    /// Checked options (the cluster's defaults, then the submission's), passed last so that
    /// they win over the partition above.
    pub options: &'a [SbatchOption],
}

impl JobSpec<'_> {
    /// The `sbatch` argument vector, program first. Every value is one argument.
    pub fn argv(&self) -> Vec<String> {
        let mut v = vec![
            "sbatch".to_owned(),
            "--parsable".to_owned(),
            format!("--job-name={}", self.name),
            format!("--chdir={}", self.job_dir),
            format!("--output={}", self.output),
        ];
        if let Some((a, b)) = self.array {
            v.push(format!("--array={a}-{b}"));
        }
        if let Some(dep) = self.after_any {
            v.push(format!("--dependency=afterany:{dep}"));
        }
        if let Some(p) = self.partition {
            v.push(format!("--partition={p}"));
        }
        v.extend(self.options.iter().map(SbatchOption::to_arg));
        v.push(self.script.to_owned());
        v
    }
}

/// A file command's output, `None` when its script said the file does not exist (exit 3).
fn absent_is_none(r: Result<Vec<u8>, SlurmError>) -> Result<Option<Vec<u8>>, SlurmError> {
    match r {
        Ok(b) => Ok(Some(b)),
        Err(SlurmError::Command(CommandError::Failed { code: 3, .. })) => Ok(None),
        Err(e) => Err(e),
    }
}

/// One cluster's SLURM, through a [`Transport`].
#[derive(Debug, Clone)]
pub struct Slurm {
    transport: Transport,
}

impl Slurm {
    /// SLURM reached through `transport`.
    pub fn new(transport: Transport) -> Self {
        Self { transport }
    }

    /// The transport, for callers that run their own commands.
    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    async fn run(&self, argv: &[&str], stdin: Option<&[u8]>) -> Result<Vec<u8>, SlurmError> {
        Ok(self.transport.run(argv, stdin).await?)
    }

    /// Writes `bytes` to `path` on the cluster (mode 0755 when `executable`), creating the
    /// parent directories.
    pub async fn write_file(
        &self,
        path: &str,
        bytes: &[u8],
        executable: bool,
    ) -> Result<(), SlurmError> {
        let script = "mkdir -p -- \"$(dirname -- \"$1\")\" && cat > \"$1\" && if [ \"$2\" = x ]; then chmod 755 -- \"$1\"; fi";
        let mode = if executable { "x" } else { "-" };
        self.run(&["sh", "-c", script, "sh", path, mode], Some(bytes))
            .await?;
        Ok(())
    }

    /// Reads `path` on the cluster; `None` if it does not exist.
    pub async fn read_file(&self, path: &str) -> Result<Option<Vec<u8>>, SlurmError> {
        let script = "if [ -e \"$1\" ]; then exec cat -- \"$1\"; else exit 3; fi";
        absent_is_none(self.run(&["sh", "-c", script, "sh", path], None).await)
    }

    /// Makes the directories of elements `0..count` under the job directory `dir`, in one
    /// command: SLURM opens an element's `--output` file (`element-<i>/slurm.out`) before its
    /// script runs, and fails the element when the directory is missing.
    pub async fn make_element_dirs(
        &self,
        dir: &crate::job_dir::JobDir,
        count: u32,
    ) -> Result<(), SlurmError> {
        let script = "i=0; while [ \"$i\" -lt \"$2\" ]; do mkdir -p -- \"$1/element-$i\" || exit 1; i=$((i + 1)); done";
        let n = count.to_string();
        self.run(&["sh", "-c", script, "sh", dir.root(), &n], None)
            .await?;
        Ok(())
    }

    /// The last `max_bytes` of `path` on the cluster; `None` if it does not exist.
    pub async fn read_tail(
        &self,
        path: &str,
        max_bytes: u64,
    ) -> Result<Option<Vec<u8>>, SlurmError> {
        let script = "if [ -e \"$1\" ]; then exec tail -c \"$2\" -- \"$1\"; else exit 3; fi";
        let max = max_bytes.to_string();
        absent_is_none(
            self.run(&["sh", "-c", script, "sh", path, &max], None)
                .await,
        )
    }

    /// What every element of the job directory `dir` has left ([`crate::job_dir`]), in one
    /// command; empty if the directory does not exist.
    pub async fn element_files(
        &self,
        dir: &crate::job_dir::JobDir,
    ) -> Result<std::collections::BTreeMap<u32, crate::job_dir::ElementFiles>, SlurmError> {
        let argv = [
            "sh",
            "-c",
            crate::job_dir::ELEMENT_FILES_SCRIPT,
            "sh",
            dir.root(),
        ];
        match self.run(&argv, None).await {
            Ok(out) => Ok(crate::job_dir::parse_element_files(
                &String::from_utf8_lossy(&out),
            )),
            Err(SlurmError::Command(CommandError::Failed { code: 3, .. })) => {
                Ok(Default::default())
            }
            Err(e) => Err(e),
        }
    }

    /// Removes a job directory and everything in it. Refuses relative paths and paths with
    /// fewer than two components, so that a bad setting cannot remove `/` or `/home`.
    pub async fn remove_dir(&self, path: &str) -> Result<(), SlurmError> {
        let parts = path.split('/').filter(|p| !p.is_empty()).count();
        if !path.starts_with('/') || parts < 2 || path.split('/').any(|p| p == "..") {
            return Err(SlurmError::UnsafePath(path.to_owned()));
        }
        self.run(&["rm", "-rf", "--", path], None).await?;
        Ok(())
    }

    /// Submits a job, returns its id (for an array, the array job's id).
    pub async fn submit(&self, spec: &JobSpec<'_>) -> Result<JobId, SlurmError> {
        let argv = spec.argv();
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let out = self.run(&argv, None).await?;
        let text = String::from_utf8_lossy(&out);
        let id = text.trim().split(';').next().unwrap_or_default();
        id.parse::<u64>()
            .map(JobId)
            .map_err(|_| SlurmError::BadJobId(text.trim().to_owned()))
    }

    /// One `squeue` for every element of `jobs` that the controller still knows (finished
    /// jobs are kept for `MinJobAge`, 300 s by default). An empty `jobs` costs nothing; jobs
    /// the controller has forgotten are simply absent.
    pub async fn poll(&self, jobs: &[JobId]) -> Result<Vec<ElementStatus>, SlurmError> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let ids = jobs
            .iter()
            .map(JobId::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let jobs_arg = format!("--jobs={ids}");
        let format_arg = format!("--format={SQUEUE_FORMAT}");
        let argv = [
            "squeue",
            "--noheader",
            "--array",
            "--states=all",
            &jobs_arg,
            &format_arg,
        ];
        match self.run(&argv, None).await {
            Ok(out) => Ok(parse_squeue(&String::from_utf8_lossy(&out))),
            Err(SlurmError::Command(CommandError::Failed { stderr, .. }))
                if stderr.contains("Invalid job id specified") =>
            {
                Ok(Vec::new())
            }
            Err(e) => Err(e),
        }
    }

    /// Cancels every job named `name` (the batch component's jobs are named after their
    /// simulation, so that a component that crashed between `sbatch` and recording the id
    /// can still find them).
    pub async fn cancel_by_name(&self, name: &str) -> Result<(), SlurmError> {
        let arg = format!("--name={name}");
        self.run(&["scancel", "--quiet", &arg], None).await?;
        Ok(())
    }

    /// Cancels jobs (every element of an array); cancelling a finished job is not an error.
    pub async fn cancel(&self, jobs: &[JobId]) -> Result<(), SlurmError> {
        if jobs.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = jobs.iter().map(JobId::to_string).collect();
        let mut argv = vec!["scancel", "--quiet"];
        argv.extend(ids.iter().map(String::as_str));
        self.run(&argv, None).await?;
        Ok(())
    }
}
