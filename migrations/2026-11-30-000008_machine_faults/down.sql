ALTER TABLE tasks DROP COLUMN machine_faults;
