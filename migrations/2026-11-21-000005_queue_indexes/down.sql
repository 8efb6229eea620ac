CREATE INDEX tasks_lease_idx ON tasks (lease_expires_at) WHERE task_state = 'RUNNING';
DROP INDEX tasks_open_idx;
CREATE INDEX tasks_state_idx ON tasks (task_state);
