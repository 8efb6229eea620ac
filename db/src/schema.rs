// @generated automatically by Diesel CLI.

diesel::table! {
    auth_tokens (id) {
        id -> Int8,
        user_id -> Int8,
        token_hash -> Bytea,
        kind -> Text,
        session_id -> Uuid,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
        revoked -> Bool,
    }
}

diesel::table! {
    batch_cleanups (id) {
        id -> Int8,
        cluster_id -> Int8,
        job_dir -> Text,
        array_id -> Nullable<Int8>,
        collect_id -> Nullable<Int8>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    clusters (id) {
        id -> Int8,
        name -> Text,
        host -> Nullable<Text>,
        ssh_user -> Nullable<Text>,
        ssh_port -> Int4,
        ssh_key_path -> Nullable<Text>,
        partition -> Nullable<Text>,
        work_dir -> Text,
        sbatch_defaults -> Array<Nullable<Text>>,
        created_at -> Timestamptz,
        known_hosts_path -> Nullable<Text>,
        max_array_size -> Int4,
        worker_path -> Text,
        keep_job_dirs -> Bool,
    }
}

diesel::table! {
    estimators (id) {
        id -> Int8,
        simulation_id -> Int8,
        name -> Text,
        file_name -> Nullable<Text>,
        metadata -> Jsonb,
    }
}

diesel::table! {
    inputs (id) {
        id -> Int8,
        simulation_id -> Int8,
        data -> Bytea,
        uncompressed_size -> Int8,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    logfiles (id) {
        id -> Int8,
        simulation_id -> Int8,
        task_id -> Nullable<Int8>,
        name -> Text,
        data -> Bytea,
        uncompressed_size -> Int8,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    merge_accumulators (id) {
        id -> Int8,
        simulation_id -> Int8,
        estimator_name -> Text,
        page_number -> Int4,
        page_meta -> Jsonb,
        tasks_merged -> Int4,
        sum_n -> Int8,
        sum_nx -> Bytea,
        sum_nx2 -> Bytea,
        aggregation -> Text,
    }
}

diesel::table! {
    pages (id) {
        id -> Int8,
        estimator_id -> Int8,
        page_number -> Int4,
        page_name -> Text,
        page_dimension -> Int2,
        axes -> Jsonb,
        value_name -> Text,
        value_unit -> Text,
        value_count -> Int4,
        values_data -> Bytea,
        errors_data -> Nullable<Bytea>,
        metadata -> Jsonb,
        aggregation -> Text,
        tasks_merged -> Nullable<Int4>,
        primaries -> Nullable<Int8>,
    }
}

diesel::table! {
    simulations (id) {
        id -> Int8,
        job_id -> Uuid,
        user_id -> Int8,
        title -> Text,
        platform -> Text,
        input_type -> Text,
        sim_type -> Text,
        job_state -> Text,
        ntasks -> Int4,
        primaries -> Int8,
        start_time -> Timestamptz,
        end_time -> Nullable<Timestamptz>,
        update_time -> Timestamptz,
        cluster_id -> Nullable<Int8>,
        sbatch_options -> Array<Nullable<Text>>,
        job_dir -> Nullable<Text>,
        array_id -> Nullable<Int8>,
        collect_id -> Nullable<Int8>,
        batch_owner -> Nullable<Text>,
        batch_lease_expires_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    task_results (id) {
        id -> Int8,
        simulation_id -> Int8,
        task_id -> Int8,
        estimator_name -> Text,
        page_number -> Int4,
        primaries -> Int8,
        values_data -> Bytea,
    }
}

diesel::table! {
    tasks (id) {
        id -> Int8,
        simulation_id -> Int8,
        task_index -> Int4,
        task_state -> Text,
        requested_primaries -> Int8,
        simulated_primaries -> Int8,
        estimated_time_s -> Nullable<Int4>,
        start_time -> Nullable<Timestamptz>,
        end_time -> Nullable<Timestamptz>,
        update_time -> Timestamptz,
        attempts -> Int4,
        max_attempts -> Int4,
        run_after -> Timestamptz,
        lease_owner -> Nullable<Text>,
        lease_expires_at -> Nullable<Timestamptz>,
        last_error -> Nullable<Text>,
        machine_faults -> Int4,
    }
}

diesel::table! {
    users (id) {
        id -> Int8,
        username -> Text,
        auth_provider -> Text,
        password_hash -> Nullable<Text>,
        role -> Text,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::joinable!(auth_tokens -> users (user_id));
diesel::joinable!(batch_cleanups -> clusters (cluster_id));
diesel::joinable!(estimators -> simulations (simulation_id));
diesel::joinable!(inputs -> simulations (simulation_id));
diesel::joinable!(logfiles -> simulations (simulation_id));
diesel::joinable!(logfiles -> tasks (task_id));
diesel::joinable!(merge_accumulators -> simulations (simulation_id));
diesel::joinable!(pages -> estimators (estimator_id));
diesel::joinable!(simulations -> clusters (cluster_id));
diesel::joinable!(simulations -> users (user_id));
diesel::joinable!(task_results -> simulations (simulation_id));
diesel::joinable!(task_results -> tasks (task_id));
diesel::joinable!(tasks -> simulations (simulation_id));

diesel::allow_tables_to_appear_in_same_query!(
    auth_tokens,
    batch_cleanups,
    clusters,
    estimators,
    inputs,
    logfiles,
    merge_accumulators,
    pages,
    simulations,
    task_results,
    tasks,
    users,
);
