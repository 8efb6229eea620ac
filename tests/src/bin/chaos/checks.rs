//! The drill's checks once the load has stopped: every accepted simulation ends, completed,
//! with its tasks' primaries counted once and whole, readable results.

use crate::procs::CAPTURED_PRIMARIES;
use std::time::{Duration, Instant};

/// Waits (up to 300 s) until no simulation is open; returns how long that took. What is
/// still open then is added to `problems`, with a sample of its open tasks.
pub async fn drain(conn: &mut db::Conn, problems: &mut Vec<String>) -> anyhow::Result<Duration> {
    let drain_start = Instant::now();
    let drained = loop {
        let open = tests::count(conn, "SELECT count(*) AS n FROM simulations WHERE job_state NOT IN ('COMPLETED', 'FAILED', 'CANCELED')").await?;
        if open == 0 {
            break drain_start.elapsed();
        }
        if drain_start.elapsed() > Duration::from_secs(300) {
            problems.push(format!("{open} simulations still open after 300 s"));
            for line in sample(
                conn,
                "SELECT t.task_state || ' ' || s.sim_type || ' attempts ' || t.attempts
                        || ' owner ' || coalesce(t.lease_owner, '-') || ': '
                        || coalesce(left(t.last_error, 300), '') AS line
                 FROM tasks t JOIN simulations s ON s.id = t.simulation_id
                 WHERE t.task_state IN ('PENDING', 'RUNNING') ORDER BY t.id LIMIT 5",
            )
            .await?
            {
                problems.push(format!("open task: {line}"));
            }
            break drain_start.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    Ok(drained)
}

/// Checks each accepted simulation (by job id): it exists, it completed, its tasks simulated
/// exactly its primaries (none counted twice), and its results read whole. Returns how many
/// completed; adds what is wrong to `problems`.
pub async fn check_simulations(
    conn: &mut db::Conn,
    accepted: &[String],
    problems: &mut Vec<String>,
) -> anyhow::Result<usize> {
    let mut completed = 0usize;
    for job in accepted {
        let Ok(uuid) = job.parse() else {
            problems.push(format!("job id {job} is not a UUID"));
            continue;
        };
        let view = match db::simulation_views::get_visible(conn, uuid, None).await {
            Ok(v) => v,
            Err(e) => {
                problems.push(format!("accepted {job} is lost: {e}"));
                continue;
            }
        };
        let sim = view.simulation;
        if sim.job_state != db::enums::JobState::Completed {
            problems.push(format!("{job} ended {}", sim.job_state));
            continue;
        }
        let filter = db::tasks::TaskFilter {
            simulation_id: Some(sim.id),
            ..Default::default()
        };
        let tasks = db::tasks::list(conn, &filter).await?;
        let simulated: i64 = tasks.iter().map(|r| r.task.simulated_primaries).sum();
        // A builtin task simulates what it was given; a SHIELD-HIT12A task counts what its
        // output says (the captured run's .bdo files: 20 primaries each).
        let want = match sim.sim_type {
            db::enums::SimType::Shieldhit => CAPTURED_PRIMARIES * tasks.len() as i64,
            _ => sim.primaries,
        };
        if simulated != want {
            problems.push(format!(
                "{job}: tasks simulated {simulated} primaries, not {want}"
            ));
        }
        match db::results::read_all(conn, sim.id).await {
            Ok(p) if !p.is_empty() && p.iter().all(|p| !p.partial && p.damaged.is_none()) => {
                // Every page holds each task once: as many tasks as there are, and exactly
                // their primaries (a task folded twice would add its primaries twice).
                let merged = (Some(tasks.len() as i32), Some(simulated));
                if let Some(bad) = p.iter().find(|p| (p.tasks_merged, p.primaries) != merged) {
                    problems.push(format!(
                        "{job}: page {} of {} holds {:?} tasks and {:?} primaries, not {} and {simulated}",
                        bad.page_number, bad.estimator, bad.tasks_merged, bad.primaries, tasks.len()
                    ));
                }
            }
            Ok(_) => problems.push(format!("{job}: results missing or partial")),
            Err(e) => problems.push(format!("{job}: results unreadable: {e}")),
        }
        completed += 1;
    }
    Ok(completed)
}

/// The `line` column of each row `sql` returns.
async fn sample(conn: &mut db::Conn, sql: &str) -> anyhow::Result<Vec<String>> {
    use diesel_async::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct L {
        #[diesel(sql_type = diesel::sql_types::Text)]
        line: String,
    }
    let rows: Vec<L> = diesel::sql_query(sql).load(conn).await?;
    Ok(rows.into_iter().map(|r| r.line).collect())
}
