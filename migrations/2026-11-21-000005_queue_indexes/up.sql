-- Queue indexes, measured with the queue benchmark (worker/benches/queue.rs; see BENCHMARKS.md).
--
-- tasks_state_idx indexed every task by state. Every state change of a task is a non-HOT
-- update (task_state is in the predicates of tasks_due_idx and tasks_lease_idx), so each claim
-- and completion added an entry to it, and no query of the queue used it: claims use
-- tasks_due_idx, the reaper tasks_lease_idx, leases the primary key, and admin-cli
-- list-tasks --state walks tasks_simulation_index_key in its output order.
DROP INDEX tasks_state_idx;

-- Whether a simulation still has open tasks (finishing simulations after completions): only
-- pending and running tasks are indexed, so the probe reads a few entries instead of every
-- task (and every dead version) of the simulation, and completing a task adds no entry.
CREATE INDEX tasks_open_idx ON tasks (simulation_id) WHERE task_state IN ('PENDING', 'RUNNING');

-- The reaper's index, with the same entries as before (a running task always has a lease,
-- see tasks_lease_when_running), but a predicate that only a query naming lease_expires_at
-- can use. Completions, heartbeats and lease checks name task_state = 'RUNNING' but not the
-- expiry: with the old predicate the planner scanned every running task (and every dead
-- entry of one) through this index and hash-joined them, instead of looking the few tasks
-- up by primary key.
DROP INDEX tasks_lease_idx;
CREATE INDEX tasks_lease_idx ON tasks (lease_expires_at)
    WHERE task_state = 'RUNNING' AND lease_expires_at IS NOT NULL;
