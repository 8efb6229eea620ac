-- Faults of a worker's machine (a full disk, an I/O error, a simulator program missing there)
-- hand the task to another worker without using an attempt, up to a limit the worker sets
-- (db::queue::release_machine_fault); this counts them, so that a task every worker fails
-- on still ends.
ALTER TABLE tasks ADD COLUMN machine_faults INTEGER NOT NULL DEFAULT 0
    CONSTRAINT tasks_machine_faults_check CHECK (machine_faults >= 0);
