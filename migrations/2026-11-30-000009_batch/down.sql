DROP TRIGGER simulations_batch_cleanup ON simulations;
DROP FUNCTION batch_cleanup_after_delete();
DROP INDEX batch_cleanups_cluster_idx;
DROP TABLE batch_cleanups;
DROP INDEX simulations_batch_open_idx;
ALTER TABLE simulations
    DROP COLUMN batch_lease_expires_at,
    DROP COLUMN batch_owner;
ALTER TABLE clusters
    DROP COLUMN keep_job_dirs,
    DROP COLUMN worker_path,
    DROP COLUMN max_array_size,
    DROP COLUMN known_hosts_path;
