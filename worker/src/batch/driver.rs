//! One cluster's batch component: its SLURM (on this host, or over one SSH control master
//! kept for the component's life), and one poll of its simulations ([`ClusterDriver::tick`]).
//! [`run`] drives every configured cluster until shutdown.

use super::{reconcile, stage, BatchError};
use db::enums::JobState;
use db::models::Cluster;
use db::queue::batch::{self, BatchSimulation};
use db::{Conn, DbError, Pool};
use slurm::{JobId, Slurm, SshSession, SshTarget, Transport};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The most simulations one poll of one cluster holds.
const HOLD_LIMIT: i64 = 500;
/// The most deleted simulations' leftovers one poll cleans.
const CLEANUP_LIMIT: i64 = 50;

/// The batch component's settings.
#[derive(Debug, Clone)]
pub struct BatchSettings {
    /// This component's name in leases (`simulations.batch_owner`, task leases).
    pub owner: String,
    /// Time between polls of each cluster (one `squeue` per cluster per poll).
    pub poll: Duration,
    /// How long a hold lasts unless renewed: at least a few polls, so that a slow poll does
    /// not let another component take over, and short enough that a crashed component's
    /// simulations move on soon.
    pub lease: Duration,
    /// The clusters to drive, by name; empty for every cluster.
    pub clusters: Vec<String>,
    /// Where the SSH control sockets live (one per SSH cluster).
    pub control_dir: PathBuf,
}

impl BatchSettings {
    /// The lease for a poll interval: three polls, and at least 30 s.
    pub fn lease_for(poll: Duration) -> Duration {
        (poll * 3).max(Duration::from_secs(30))
    }
}

/// One cluster as the batch component drives it.
pub struct ClusterDriver {
    cluster: Cluster,
    slurm: Slurm,
    owner: String,
    lease: Duration,
}

impl ClusterDriver {
    /// The driver of `cluster`: SLURM on this host for a cluster without a host, else over
    /// an SSH control master opened now (its socket under `control_dir`).
    ///
    /// # Errors
    /// [`BatchError::Slurm`] when the SSH connection cannot be made.
    pub async fn connect(cluster: Cluster, settings: &BatchSettings) -> Result<Self, BatchError> {
        let transport = match &cluster.host {
            None => Transport::Local,
            Some(host) => {
                let target = SshTarget {
                    host: host.clone(),
                    port: u16::try_from(cluster.ssh_port).unwrap_or(22),
                    user: cluster.ssh_user.clone().unwrap_or_else(|| "root".into()),
                    key_path: cluster.ssh_key_path.as_ref().map(PathBuf::from),
                    known_hosts: cluster.known_hosts_path.as_ref().map(PathBuf::from),
                };
                let session = SshSession::connect(target, &settings.control_dir)
                    .await
                    .map_err(|e| BatchError::Slurm(slurm::CommandError::from(e).into()))?;
                Transport::Ssh(Arc::new(session))
            }
        };
        Ok(Self {
            cluster,
            slurm: Slurm::new(transport),
            owner: settings.owner.clone(),
            lease: settings.lease,
        })
    }

    /// The cluster.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// Its SLURM.
    pub fn slurm(&self) -> &Slurm {
        &self.slurm
    }

    /// This component's name in leases.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The lease length.
    pub fn lease(&self) -> Duration {
        self.lease
    }

    /// One poll: hold the cluster's batch simulations (renewing every lease), clean up after
    /// deleted ones, stage new ones, wind up ended ones (cancel their jobs; remove a canceled
    /// one's job directory unless the cluster keeps them), and bring the running ones up to
    /// date with one `squeue` for all their arrays. A simulation's own failure is logged and
    /// does not stop the others.
    ///
    /// Returns how many simulations it submitted.
    ///
    /// # Errors
    /// The database or the cluster unreachable ([`BatchError::is_transient`]).
    pub async fn tick(&self, pool: &Pool) -> Result<usize, BatchError> {
        let started = Instant::now();
        let mut conn = pool.get().await.map_err(DbError::from)?;
        let sims = batch::hold(
            &mut conn,
            self.cluster.id,
            &self.owner,
            self.lease,
            HOLD_LIMIT,
        )
        .await?;
        self.clean_deleted(&mut conn).await?;
        let mut active = Vec::new();
        let mut staged = 0;
        for sim in sims {
            let id = sim.id;
            let step = if sim.job_state.is_terminal() {
                self.wind_up(&mut conn, &sim).await
            } else if sim.job_state == JobState::Merging {
                db::merge::finalize(&mut conn, sim.id)
                    .await
                    .map(|_| ())
                    .map_err(BatchError::from)
            } else if sim.array_id.is_none() || sim.collect_id.is_none() {
                staged += 1;
                self.stage(&mut conn, &sim).await
            } else {
                active.push(sim);
                Ok(())
            };
            self.isolate(id, step)?;
        }
        let arrays = job_ids(active.iter().map(|s| s.array_id));
        let statuses = self.slurm.poll(&arrays).await?;
        for sim in &active {
            let step = reconcile::reconcile(self, &mut conn, sim, &statuses).await;
            self.isolate(sim.id, step)?;
        }
        tracing::debug!(cluster = %self.cluster.name, staged, active = active.len(),
                        elapsed = ?started.elapsed(), "poll");
        Ok(staged)
    }

    /// A simulation's failed step: a passing fault ends the poll (tried again at the next);
    /// any other is logged and the poll goes on with the other simulations.
    fn isolate(&self, simulation: i64, step: Result<(), BatchError>) -> Result<(), BatchError> {
        match step {
            Ok(()) => Ok(()),
            Err(e) if e.is_transient() => Err(e),
            Err(e) => {
                tracing::error!(cluster = %self.cluster.name, simulation, error = %e, "batch step failed");
                Ok(())
            }
        }
    }

    async fn stage(&self, conn: &mut Conn, sim: &BatchSimulation) -> Result<(), BatchError> {
        match stage::stage(self, conn, sim).await {
            Ok(()) => Ok(()),
            Err(stage::StageError::Batch(e)) => Err(e),
            Err(stage::StageError::Refused(why)) => {
                tracing::warn!(simulation = sim.id, %why, "batch simulation cannot be submitted");
                if sim.job_dir.is_some() {
                    // Whatever was submitted before the refusal.
                    let _ = self.slurm.cancel_by_name(&stage::job_name(sim)).await;
                }
                batch::fail_unsubmittable(conn, sim.id, &self.owner, &why).await?;
                Ok(())
            }
        }
    }

    /// An ended simulation: cancel what may still be queued or running when it was canceled
    /// or failed (a completed one's collect job runs on its own), remove the job directory of a canceled one
    /// unless the cluster keeps them, and let go of it.
    async fn wind_up(&self, conn: &mut Conn, sim: &BatchSimulation) -> Result<(), BatchError> {
        let jobs = job_ids([sim.array_id, sim.collect_id]);
        // A completed simulation's elements have all ended; its collect job is left to run.
        if sim.job_state != JobState::Completed {
            if jobs.is_empty() && sim.job_dir.is_some() {
                self.slurm.cancel_by_name(&stage::job_name(sim)).await?;
            }
            self.slurm.cancel(&jobs).await?;
        }
        if sim.job_state == JobState::Canceled && !self.cluster.keep_job_dirs {
            if let Some(dir) = &sim.job_dir {
                self.remove_dir(dir).await?;
            }
        }
        batch::release(conn, sim.id, &self.owner).await?;
        tracing::info!(simulation = sim.id, state = %sim.job_state, "batch simulation wound up");
        Ok(())
    }

    /// Deleted simulations' leftovers: their jobs cancelled and their directories removed.
    async fn clean_deleted(&self, conn: &mut Conn) -> Result<(), BatchError> {
        for c in batch::cleanups(conn, self.cluster.id, CLEANUP_LIMIT).await? {
            let jobs = job_ids([c.array_id, c.collect_id]);
            self.slurm.cancel(&jobs).await?;
            if !self.cluster.keep_job_dirs {
                self.remove_dir(&c.job_dir).await?;
            }
            batch::cleaned(conn, c.id).await?;
            tracing::info!(job_dir = %c.job_dir, "deleted simulation cleaned up");
        }
        Ok(())
    }

    /// Removes a job directory; one the client refuses as unsafe is logged and left.
    async fn remove_dir(&self, dir: &str) -> Result<(), BatchError> {
        match self.slurm.remove_dir(dir).await {
            Err(e @ slurm::SlurmError::UnsafePath(_)) => {
                tracing::error!(error = %e, "job directory left in place");
                Ok(())
            }
            other => Ok(other?),
        }
    }
}

/// The SLURM job ids among stored ones (`array_id`, `collect_id`; `None` when not submitted).
fn job_ids(ids: impl IntoIterator<Item = Option<i64>>) -> Vec<JobId> {
    ids.into_iter()
        .flatten()
        .map(|id| JobId(u64::try_from(id).unwrap_or_default()))
        .collect()
}

/// Drives the configured clusters until `shutdown` resolves: one poll of each every
/// `settings.poll`, one soon after a Submit or a Cancel (`LISTEN`), and one every
/// 0.25 s for a few seconds after it submitted a job. A cluster that cannot
/// be reached is tried again at the next poll.
///
/// # Errors
/// The clusters cannot be listed, or a configured name is unknown.
pub async fn run(
    pool: Pool,
    settings: BatchSettings,
    shutdown: impl Future<Output = ()>,
) -> Result<(), BatchError> {
    let clusters = {
        let mut conn = pool.get().await.map_err(DbError::from)?;
        let all = db::clusters::list(&mut conn).await?;
        for name in &settings.clusters {
            if !all.iter().any(|c| &c.name == name) {
                return Err(BatchError::Cluster {
                    cluster: name.clone(),
                    why: "no such cluster (admin-cli list-clusters)".into(),
                });
            }
        }
        all.into_iter()
            .filter(|c| settings.clusters.is_empty() || settings.clusters.contains(&c.name))
            .collect::<Vec<_>>()
    };
    let mut drivers: Vec<(Cluster, Option<ClusterDriver>)> =
        clusters.into_iter().map(|c| (c, None)).collect();
    // A Submit or a Cancel wakes the loop at once (after a short gap, so that a burst of
    // direct submissions costs one poll), so that new simulations are staged and canceled
    // ones' jobs cancelled without waiting for the next poll.
    let wake = Arc::new(tokio::sync::Notify::new());
    let listener = tokio::spawn(listen(pool.clone(), wake.clone()));
    tokio::pin!(shutdown);
    let mut follow_until: Option<Instant> = None;
    loop {
        for (cluster, driver) in &mut drivers {
            if driver.is_none() {
                match ClusterDriver::connect(cluster.clone(), &settings).await {
                    Ok(d) => *driver = Some(d),
                    Err(e) => {
                        tracing::warn!(cluster = %cluster.name, error = %e, "cluster unreachable");
                        continue;
                    }
                }
            }
            if let Some(d) = driver {
                match d.tick(&pool).await {
                    Ok(0) => {}
                    Ok(_) => follow_until = Some(Instant::now() + FOLLOW_UP_WINDOW),
                    Err(e) => tracing::warn!(cluster = %cluster.name, error = %e, "poll failed"),
                }
            }
        }
        let next = match follow_until {
            Some(t) if Instant::now() < t => FOLLOW_UP.min(settings.poll),
            _ => settings.poll,
        };
        tokio::select! {
            _ = tokio::time::sleep(next) => {}
            _ = wake.notified() => {
                tokio::select! {
                    _ = tokio::time::sleep(WAKE_GAP.min(settings.poll)) => {}
                    _ = &mut shutdown => break,
                }
            }
            _ = &mut shutdown => break,
        }
    }
    listener.abort();
    Ok(())
}

/// After it submits a job, the component polls every [`FOLLOW_UP`] for [`FOLLOW_UP_WINDOW`],
/// so that the first elements' start shows without waiting for a whole poll interval.
const FOLLOW_UP: Duration = Duration::from_millis(250);
/// See [`FOLLOW_UP`].
const FOLLOW_UP_WINDOW: Duration = Duration::from_secs(5);

/// The least time between a wake-up by a notification and the poll it causes.
const WAKE_GAP: Duration = Duration::from_millis(100);

/// Wakes the poll loop when tasks become ready (a Submit) or a simulation is canceled, and
/// after every (re)connection of the listener, since notifications may have been missed.
async fn listen(pool: Pool, wake: Arc<tokio::sync::Notify>) {
    use db::notify::{self, Event, Flow};
    notify::listen(
        pool,
        &[notify::TASKS_READY, notify::CANCELLATIONS],
        |event| {
            if !matches!(event, Event::Lost) {
                wake.notify_one();
            }
            Flow::Continue
        },
    )
    .await;
}
