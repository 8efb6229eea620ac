//! Staging a batch simulation on its cluster: the job directory (manifest, input, scripts),
//! one array job with one element per task, and one collect job after it.

use super::driver::ClusterDriver;
use super::BatchError;
use db::inputs::SimulationInput;
use db::queue::batch::{self, BatchSimulation};
use db::Conn;
use slurm::job_dir::{self, JobDir, Manifest, ManifestTask};
use slurm::{JobId, JobSpec, SbatchOption};

/// The name of a simulation's SLURM jobs: unique, and enough to find them again.
pub fn job_name(sim: &BatchSimulation) -> String {
    format!("sim-{}", sim.job_id)
}

/// Why a simulation cannot be staged, as the user is told (the simulation then fails), or a
/// passing fault (tried again at the next poll).
pub enum StageError {
    /// The simulation cannot run on this cluster.
    Refused(String),
    /// Try again later.
    Batch(BatchError),
}

impl<E: Into<BatchError>> From<E> for StageError {
    fn from(e: E) -> Self {
        let e = e.into();
        match e {
            BatchError::Slurm(ref s) if !s.is_transient() => {
                StageError::Refused(format!("SLURM refused the job: {s}"))
            }
            e => StageError::Batch(e),
        }
    }
}

/// Writes the job directory and submits the array and collect jobs, recording each step
/// (`job_dir` first, so that a component that takes over after a crash cancels jobs that
/// were submitted but not recorded, by their name, before it submits again).
pub async fn stage(
    driver: &ClusterDriver,
    conn: &mut Conn,
    sim: &BatchSimulation,
) -> Result<(), StageError> {
    let cluster = driver.cluster();
    let slurm = driver.slurm();
    let owner = driver.owner();
    let dir = JobDir::new(&cluster.work_dir, &sim.job_id.to_string());
    let name = job_name(sim);
    if sim.job_dir.is_some() {
        tracing::info!(
            simulation = sim.id,
            "submitting again: cancelling unrecorded jobs"
        );
        slurm.cancel_by_name(&name).await?;
    }
    let options = options(cluster, sim)?;
    let ntasks = u32::try_from(sim.ntasks)
        .ok()
        .filter(|&n| n >= 1)
        .ok_or_else(|| StageError::Refused(format!("{} tasks", sim.ntasks)))?;
    if sim.ntasks > cluster.max_array_size {
        return Err(StageError::Refused(format!(
            "{} tasks exceed the cluster's array size limit of {}",
            sim.ntasks, cluster.max_array_size
        )));
    }
    batch::record(conn, sim.id, owner, dir.root(), None).await?;
    let input = db::inputs::get(conn, sim.id)
        .await?
        .ok_or_else(|| StageError::Refused("the simulation has no input".into()))?;
    let tasks = batch::tasks(conn, sim.id).await?;
    let manifest = Manifest {
        simulation_id: sim.id,
        job_id: sim.job_id.to_string(),
        sim_type: sim.sim_type.as_str().to_owned(),
        input_type: sim.input_type.as_str().to_owned(),
        tasks: tasks
            .iter()
            .map(|t| ManifestTask {
                task_id: t.id,
                task_index: t.task_index,
                requested_primaries: t.requested_primaries,
            })
            .collect(),
    };
    let manifest = serde_json::to_vec_pretty(&manifest).unwrap_or_default();
    slurm
        .write_file(&dir.path(job_dir::MANIFEST), &manifest, false)
        .await?;
    match &input {
        SimulationInput::Editor(json) => {
            let text = serde_json::to_vec(json).unwrap_or_default();
            slurm
                .write_file(&dir.input(job_dir::EDITOR_INPUT), &text, false)
                .await?;
        }
        SimulationInput::Files(files) => {
            for (file, text) in files {
                // Names were checked at Submit (sim_inputs::FileName); checked again here,
                // since a path is built from them.
                sim_inputs::FileName::parse(file)
                    .map_err(|e| StageError::Refused(format!("input file {file:?}: {e}")))?;
                slurm
                    .write_file(&dir.input(file), text.as_bytes(), false)
                    .await?;
            }
        }
    }
    slurm.make_element_dirs(&dir, ntasks).await?;
    let element = job_dir::element_script(&cluster.worker_path)
        .map_err(|e| StageError::Refused(format!("worker path: {e}")))?;
    slurm
        .write_file(&dir.path(job_dir::ELEMENT_SCRIPT), element.as_bytes(), true)
        .await?;
    slurm
        .write_file(
            &dir.path(job_dir::COLLECT_SCRIPT),
            job_dir::collect_script().as_bytes(),
            true,
        )
        .await?;
    let (element_script, collect_script) = (
        dir.path(job_dir::ELEMENT_SCRIPT),
        dir.path(job_dir::COLLECT_SCRIPT),
    );
    // The array job runs the tasks; the collect job runs after it, whatever its end.
    let element_job = JobSpec {
        name: &name,
        job_dir: dir.root(),
        script: &element_script,
        array: Some((0, ntasks - 1)),
        after_any: None,
        partition: cluster.partition.as_deref(),
        output: job_dir::ELEMENT_OUTPUT,
        options: &options,
    };
    let array = slurm.submit(&element_job).await?;
    let collect = slurm
        .submit(&JobSpec {
            script: &collect_script,
            array: None,
            after_any: Some(array),
            output: job_dir::COLLECT_OUTPUT,
            options: &[],
            ..element_job
        })
        .await;
    let collect = match collect {
        Ok(id) => id,
        Err(e) => {
            let _ = slurm.cancel(&[array]).await;
            return Err(e.into());
        }
    };
    batch::record(
        conn,
        sim.id,
        owner,
        dir.root(),
        Some((id(array), id(collect))),
    )
    .await?;
    tracing::info!(simulation = sim.id, %array, %collect, job_dir = dir.root(), "submitted");
    Ok(())
}

fn id(j: JobId) -> i64 {
    i64::try_from(j.0).unwrap_or(i64::MAX)
}

/// The cluster's default sbatch options, then the simulation's (so that they win), each
/// checked against the allow-list again.
fn options(
    cluster: &db::models::Cluster,
    sim: &BatchSimulation,
) -> Result<Vec<SbatchOption>, StageError> {
    let all: Vec<&str> = cluster
        .sbatch_defaults
        .iter()
        .chain(&sim.sbatch_options)
        .flatten()
        .map(String::as_str)
        .collect();
    slurm::options::parse_all(&all).map_err(|e| StageError::Refused(format!("sbatch option: {e}")))
}
