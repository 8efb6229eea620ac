-- Queue indexes, measured with the queue benchmark (worker/benches/queue.rs; see BENCHMARKS.md).
-- A claim and a completion each rewrite the task's row without HOT (task_state is in the
-- predicates of partial indexes, lease_expires_at is indexed), so every index of tasks whose
-- predicate the new row version matches gets an entry: index maintenance was most of
-- PostgreSQL's CPU time in the benchmark.
--
-- tasks_state_idx indexed every task by state, and no query of the queue used it: claims use
-- tasks_due_idx, leases the primary key, and admin-cli list-tasks --state walks
-- tasks_simulation_index_key in its output order.
DROP INDEX tasks_state_idx;

-- The pending and running tasks, by simulation: whether a simulation still has open tasks
-- (finishing simulations after completions) reads a few entries instead of every task (and
-- every dead version) of the simulation, and completing a task adds no entry.
CREATE INDEX tasks_open_idx ON tasks (simulation_id) WHERE task_state IN ('PENDING', 'RUNNING');

-- The reaper (expired leases, every few seconds) scans the open tasks through tasks_open_idx
-- instead: one index fewer to maintain on every claim. Completions, heartbeats and lease
-- checks look tasks up by primary key.
DROP INDEX tasks_lease_idx;
