//! Queries on tasks as operators see them. (The queue operations come with the worker.)

use crate::enums::{AuthProvider, TaskState};
use crate::error::{DbError, DbResult};
use crate::models::Task;
use crate::pool::Conn;
use crate::schema::{simulations, tasks, users};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde::Serialize;
use uuid::Uuid;

/// Filters for [`list`]; `None` means any.
#[derive(Debug, Default, Clone)]
pub struct TaskFilter {
    /// Simulation id.
    pub simulation_id: Option<i64>,
    /// Owner's name.
    pub username: Option<String>,
    /// Owner's auth provider.
    pub auth_provider: Option<AuthProvider>,
    /// State.
    pub state: Option<TaskState>,
    /// Most rows (default [`crate::simulations::DEFAULT_LIST_LIMIT`]).
    pub limit: Option<i64>,
}

/// A task with its simulation's public id and owner.
#[derive(Debug, Clone, Serialize)]
pub struct TaskRow {
    /// The task.
    #[serde(flatten)]
    pub task: Task,
    /// The simulation's public id.
    pub job_id: Uuid,
    /// The owner's name.
    pub username: String,
}

/// Lists tasks by simulation and index.
pub async fn list(conn: &mut Conn, filter: &TaskFilter) -> DbResult<Vec<TaskRow>> {
    let limit = crate::simulations::list_limit(filter.limit)?;
    let mut q = tasks::table
        .inner_join(simulations::table.inner_join(users::table))
        .into_boxed();
    if let Some(id) = filter.simulation_id {
        q = q.filter(tasks::simulation_id.eq(id));
    }
    if let Some(u) = &filter.username {
        q = q.filter(users::username.eq(u.clone()));
    }
    if let Some(p) = filter.auth_provider {
        q = q.filter(users::auth_provider.eq(p));
    }
    if let Some(s) = filter.state {
        q = q.filter(tasks::task_state.eq(s));
    }
    let rows: Vec<(Task, Uuid, String)> = q
        .order_by((tasks::simulation_id, tasks::task_index))
        .limit(limit)
        .select((Task::as_select(), simulations::job_id, users::username))
        .load(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(task, job_id, username)| TaskRow {
            task,
            job_id,
            username,
        })
        .collect())
}

/// Removes one task of one simulation, and nothing else.
pub async fn remove(conn: &mut Conn, simulation_id: i64, task_index: i32) -> DbResult<Task> {
    let removed: Option<Task> = diesel::delete(
        tasks::table
            .filter(tasks::simulation_id.eq(simulation_id))
            .filter(tasks::task_index.eq(task_index)),
    )
    .returning(Task::as_returning())
    .get_result(conn)
    .await
    .optional()?;
    match removed {
        Some(t) => {
            crate::notify::Announce::stopped([simulation_id])
                .send(conn)
                .await;
            Ok(t)
        }
        None => {
            // Say which part is missing.
            crate::simulations::get(conn, simulation_id).await?;
            Err(DbError::NotFound(format!(
                "task {task_index} of simulation {simulation_id}"
            )))
        }
    }
}
