//! add-cluster, update-cluster, list-clusters, remove-cluster.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::*;
use db::enums::{AuthProvider, Platform};
use serde_json::{json, Value};

/// The header of `list-clusters`, one space between the column names.
const HEADER: &str =
    "ID NAME KIND HOST SSH_USER PORT KNOWN_HOSTS PARTITION WORK_DIR WORKER MAX_ARRAY \
                      KEEP_DIRS SBATCH_DEFAULTS";

fn clusters_json(db: &Db) -> Vec<Value> {
    let out = run(db, &["--json", "list-clusters"]);
    out.ok();
    out.json().as_array().unwrap().clone()
}

fn cluster_names(db: &Db) -> Vec<String> {
    clusters_json(db)
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

/// Runs `admin-cli add-cluster ARGS` (split at spaces), which must succeed.
#[track_caller]
fn add_cluster(db: &Db, args: &str) {
    run(db, &words(&format!("add-cluster {args}"))).ok();
}

/// A fresh database with one cluster, added by `admin-cli add-cluster ARGS` (which must
/// succeed).
async fn db_with_cluster(args: &str) -> Db {
    let db = Db::new().await;
    add_cluster(&db, args);
    db
}

/// Adds a cluster for each line of `add-cluster` arguments, starting with none: each must
/// succeed, and then those are all there is.
#[track_caller]
fn add_clusters(db: &Db, lines: &[&str]) {
    for args in lines {
        add_cluster(db, args);
    }
    assert_eq!(clusters_json(db).len(), lines.len());
}

/// Asserts each field of `want` in the cluster `c` (other fields are not checked).
#[track_caller]
fn assert_settings(c: &Value, want: &Value) {
    for (field, value) in want.as_object().unwrap() {
        assert_eq!(&c[field], value, "{field}");
    }
}

/// A batch simulation on cluster `cluster_id`, owned by a new user.
async fn batch_sim(db: &Db, owner: &str, cluster_id: i64) -> i64 {
    let uid = user(db, owner, AuthProvider::Local).await;
    let mut new = new_sim(uid, "batch", 2);
    new.platform = Platform::Batch;
    new.cluster_id = Some(cluster_id);
    let mut conn = db.conn().await;
    db::simulations::create_with_tasks(&mut conn, &new, None)
        .await
        .unwrap()
        .id
}

#[tokio::test]
async fn add_cluster_local() {
    let db = Db::new().await;
    let out = run(&db, &words("add-cluster local1 --work-dir /scratch/jobs"));
    out.ok();
    assert!(
        out.stdout
            .contains("added cluster \"local1\" (on the worker's host) with id"),
        "{}",
        out.stdout
    );
    let cs = clusters_json(&db);
    assert_eq!(cs.len(), 1);
    assert_settings(
        &cs[0],
        &json!({
            "name": "local1",
            "host": null,
            "ssh_user": null,
            "ssh_port": 22,
            "ssh_key_path": null,
            "partition": null,
            "work_dir": "/scratch/jobs",
            "sbatch_defaults": [],
            "known_hosts_path": null,
            "max_array_size": 1000,
            "worker_path": "worker",
            "keep_job_dirs": false
        }),
    );
}

#[tokio::test]
async fn add_cluster_with_every_option() {
    let db = Db::new().await;
    let mut args = words(
        "add-cluster prometheus.cyfronet-1 --host login.example.org --ssh-user plgrid_user \
         --ssh-port 2222 --ssh-key /etc/worker/id_ed25519 --partition plgrid-short \
         --work-dir /net/scratch/sim --sbatch-option=--time=01:00:00 --sbatch-option --mem=4G \
         --sbatch-option --account=plgsim2026 --sbatch-option --qos=normal --kind ssh",
    );
    args.extend(["--known-hosts", "/etc/worker/known hosts"]);
    args.extend(words(
        "--max-array-size 250 --worker-path ~/bin/worker --keep-job-dirs",
    ));
    let out = run(&db, &args);
    out.ok();
    assert!(
        out.stdout
            .contains("(via ssh plgrid_user@login.example.org:2222)"),
        "{}",
        out.stdout
    );
    assert_settings(
        &clusters_json(&db)[0],
        &json!({
            "name": "prometheus.cyfronet-1",
            "host": "login.example.org",
            "ssh_user": "plgrid_user",
            "ssh_port": 2222,
            "ssh_key_path": "/etc/worker/id_ed25519",
            "partition": "plgrid-short",
            "work_dir": "/net/scratch/sim",
            "sbatch_defaults": ["--time=01:00:00", "--mem=4G", "--account=plgsim2026", "--qos=normal"],
            // Paths are stored as given (no expansion, spaces kept).
            "known_hosts_path": "/etc/worker/known hosts",
            "max_array_size": 250,
            "worker_path": "~/bin/worker",
            "keep_job_dirs": true
        }),
    );
}

#[tokio::test]
async fn add_cluster_json_confirmation_is_the_cluster() {
    let db = Db::new().await;
    let v = json_of(&db, &words("--json add-cluster c1 --host h --work-dir /w"));
    assert_eq!(v["name"], "c1");
    assert_eq!(v["host"], "h");
    assert!(v["id"].as_i64().is_some());
}

#[tokio::test]
async fn list_clusters_table_and_json() {
    let db = Db::new().await;
    // Empty: header only.
    let empty = run(&db, &["list-clusters"]);
    assert_eq!(
        table_with_header(&empty, HEADER).len(),
        1,
        "{}",
        empty.stdout
    );

    add_cluster(&db, "zeta --work-dir /z");
    add_cluster(
        &db,
        "alpha --host a.example --ssh-user u --ssh-port 2200 --partition p1 \
             --work-dir /a --sbatch-option=--time=1:00 --sbatch-option=--mem=1G --known-hosts /kh \
             --max-array-size 64 --worker-path /opt/worker --keep-job-dirs",
    );
    let out = run(&db, &["list-clusters"]);
    let t = table_with_header(&out, HEADER);
    assert_eq!(t.len(), 3, "{}", out.stdout);
    // Sorted by name.
    assert_eq!(
        t[1][1..],
        words("alpha ssh a.example u 2200 /kh p1 /a /opt/worker 64 yes --time=1:00 --mem=1G")
    );
    assert_eq!(t[2][1..], words("zeta local - - 22 - - /z worker 1000 no"));

    assert_eq!(cluster_names(&db), ["alpha", "zeta"]);
    // JSON has the KIND column too.
    let kinds: Vec<_> = clusters_json(&db)
        .iter()
        .map(|c| c["kind"].clone())
        .collect();
    assert_eq!(kinds, [json!("ssh"), json!("local")]);
}

#[tokio::test]
async fn add_cluster_duplicate_is_refused() {
    let db = db_with_cluster("c1 --work-dir /one").await;
    fails_cleanly(
        &db,
        &["add-cluster", "c1", "--work-dir", "/two"],
        "cluster \"c1\" already exists",
    );
    let cs = clusters_json(&db);
    assert_eq!(cs.len(), 1);
    assert_eq!(cs[0]["work_dir"], "/one");
}

#[tokio::test]
async fn add_cluster_invalid_names_are_rejected_with_the_rule() {
    let db = Db::new().await;
    let long = "c".repeat(64);
    for name in [
        "bad name!",
        "../x",
        "a/b",
        "-x",
        ".hidden",
        "x;drop",
        "ünï",
        "a\nb",
        long.as_str(),
    ] {
        let out = run(&db, &["add-cluster", "--work-dir", "/w", "--", name]);
        out.usage_error_with("1 to 63 of A-Z a-z 0-9 . _ -, starting with a letter or digit");
        assert!(
            out.stderr.contains(&format!("{name:?}")),
            "{name:?}: {}",
            out.stderr
        );
        // The name's rule only, not every rule of the table.
        assert!(
            !out.stderr.contains("port") && !out.stderr.contains("array size"),
            "{}",
            out.stderr
        );
    }
    assert!(clusters_json(&db).is_empty());
    // The limits themselves are fine.
    let longest = format!("{} --work-dir /w", "c".repeat(63));
    add_clusters(&db, &[&longest, "A.b_c-9 --work-dir /w", "0 --work-dir /w"]);
}

/// A bad name is bad usage, refused before the database is asked: one clean line, the
/// name's rule, nothing from the schema.
#[tokio::test]
async fn add_cluster_invalid_name_message_reads_cleanly() {
    let db = Db::new().await;
    let out = run(&db, &["add-cluster", "bad name", "--work-dir", "/w"]);
    out.usage_error_with(
        "error: invalid value for <NAME>: cluster name \"bad name\" is refused: a name is 1 to 63",
    );
    assert!(!out.stderr.contains("rejected"), "{}", out.stderr);
    assert!(!out.stderr.contains("schema"), "{}", out.stderr);
}

#[tokio::test]
async fn add_cluster_empty_work_dir_or_host_is_bad_usage() {
    let db = Db::new().await;
    run(&db, &["add-cluster", "c1", "--work-dir", ""]).usage_error_with("--work-dir");
    run(
        &db,
        &["add-cluster", "c2", "--work-dir", "/w", "--host", ""],
    )
    .usage_error_with("--host");
    assert!(clusters_json(&db).is_empty());
}

/// A host or SSH user that ssh could read as an option (or a shell could split) is bad
/// usage, with the rule named, and nothing is stored or changed.
#[tokio::test]
async fn hostile_hosts_and_ssh_users_are_bad_usage_and_nothing_is_stored() {
    let db = db_with_cluster("loc --work-dir /w").await;
    let hosts = [
        "-oProxyCommand=touch /tmp/nc/pwned",
        "-h",
        "evil;host",
        "a b",
        "login\n",
        "h\u{1b}[2J",
        "u@login",
        "login:22",
        "$(id)",
    ];
    // As `--host=VALUE`, the value reaches the check whatever it starts with; as two
    // arguments, clap itself refuses one that starts with '-' as a missing value.
    for host in hosts {
        let eq = format!("--host={host}");
        for args in [
            words_and("add-cluster c --work-dir /w --ssh-user u", &[&eq]),
            words_and("update-cluster loc", &[&eq]),
            words_and("add-cluster c --work-dir /w --host", &[host]),
        ] {
            let out = run(&db, &args);
            out.expect_code(2);
            if !host.starts_with('-') || args.contains(&eq.as_str()) {
                out.usage_error_with("invalid value for --host: SSH host")
                    .usage_error_with("not starting with '-'");
            }
            assert!(!out.stderr.contains('\u{1b}'), "{:?}", out.stderr);
        }
    }
    for user in ["-oProxyCommand=id", "-l", "a b", "me\n", "u;id", "u@h", ""] {
        let eq = format!("--ssh-user={user}");
        for args in [
            words_and("add-cluster c --work-dir /w --host h", &[&eq]),
            words_and("update-cluster loc --host h", &[&eq]),
        ] {
            run(&db, &args)
                .usage_error_with("invalid value for --ssh-user: SSH user")
                .usage_error_with("A-Z a-z 0-9 . _ -, not starting with '-'");
        }
    }
    assert!(!std::path::Path::new("/tmp/nc/pwned").exists());
    assert_eq!(cluster_names(&db), ["loc"]);
    assert!(clusters_json(&db)[0]["host"].is_null());
    // Names and addresses are fine, IPv6 bare or in brackets.
    for args in [
        "a --host login_1.hpc-x.example.org --ssh-user plg.user-1 --work-dir /w",
        "b --host 10.0.0.7 --work-dir /w",
        "c --host [2001:db8::7] --work-dir /w",
        "d --host ::1 --work-dir /w",
    ] {
        add_cluster(&db, args);
    }
    assert_eq!(cluster_names(&db), ["a", "b", "c", "d", "loc"]);
}

/// The work directory is an absolute path on the cluster: a relative one is bad usage, in
/// add-cluster and update-cluster alike.
#[tokio::test]
async fn a_relative_work_dir_is_bad_usage() {
    let db = db_with_cluster("c1 --work-dir /scratch").await;
    for dir in ["scratch/jobs", "./jobs", "~/jobs", "$HOME/jobs", "/a/../b"] {
        run(&db, &["add-cluster", "c2", "--work-dir", dir])
            .usage_error_with("invalid value for --work-dir")
            .usage_error_with("an absolute path on the cluster");
        run(&db, &["update-cluster", "c1", "--work-dir", dir])
            .usage_error_with("an absolute path on the cluster");
    }
    assert_eq!(cluster_names(&db), ["c1"]);
    assert_eq!(clusters_json(&db)[0]["work_dir"], "/scratch");
}

#[tokio::test]
async fn add_cluster_bad_ports_are_bad_usage() {
    let db = Db::new().await;
    for port in ["0", "70000", "65536", "-1", "ssh"] {
        let arg = format!("--ssh-port={port}");
        run(
            &db,
            &words_and("add-cluster c1 --host h --work-dir /w", &[&arg]),
        )
        .usage_error_with("--ssh-port");
    }
    // Also as a separate argument, and the limits themselves.
    run(&db, &words("add-cluster c0 --work-dir /w --ssh-port 0")).expect_code(2);
    add_clusters(
        &db,
        &[
            "c1 --host h --work-dir /w --ssh-port 65535",
            "c2 --host h --work-dir /w --ssh-port 1",
        ],
    );
}

#[tokio::test]
async fn add_cluster_missing_or_misplaced_arguments_are_bad_usage() {
    let db = Db::new().await;
    run(&db, &["add-cluster", "c1"]).usage_error_with("--work-dir");
    run(&db, &["add-cluster", "--work-dir", "/w"]).expect_code(2);
    run(&db, &words("add-cluster c1 --work-dir /w --sbatch-option")).expect_code(2);
    assert!(clusters_json(&db).is_empty());
}

#[tokio::test]
async fn remove_cluster() {
    let db = db_with_cluster("c1 --work-dir /w").await;
    add_cluster(&db, "c2 --work-dir /w");
    let out = run(&db, &["remove-cluster", "c1"]);
    out.ok();
    assert_eq!(out.stdout.trim(), "removed cluster \"c1\"");
    assert_eq!(cluster_names(&db), ["c2"]);

    fails_cleanly(&db, &["remove-cluster", "c1"], "cluster \"c1\" not found");
}

#[tokio::test]
async fn remove_cluster_unknown_is_not_found() {
    let db = db_with_cluster("c1 --work-dir /w").await;
    for name in ["nope", "C1", "c%", "../x"] {
        fails_cleanly(&db, &["remove-cluster", name], "not found");
    }
    run(&db, &["remove-cluster"]).expect_code(2);
    assert_eq!(cluster_names(&db), ["c1"]);
}

#[tokio::test]
async fn remove_cluster_used_by_a_batch_simulation_is_refused() {
    let db = db_with_cluster("busy --host h --work-dir /w").await;
    let id = clusters_json(&db)[0]["id"].as_i64().unwrap();
    batch_sim(&db, "u1", id).await;
    batch_sim(&db, "u2", id).await;

    fails_cleanly(&db, &["remove-cluster", "busy"], "used by 2 simulation(s)");
    assert_eq!(cluster_names(&db), ["busy"]);
    assert_eq!(count(&db, "select count(*) from simulations"), 2);

    // Once the simulations are gone, the cluster can go.
    for sid in query(&db, "select id::text from simulations") {
        run(&db, &["remove-simulation", sid[0].as_deref().unwrap()]).ok();
    }
    run(&db, &["remove-cluster", "busy"]).ok();
    assert!(clusters_json(&db).is_empty());
}

#[tokio::test]
async fn add_cluster_kind_rules() {
    let db = Db::new().await;
    fn add<'a>(extra: &[&'a str]) -> Vec<&'a str> {
        words_and("add-cluster c --work-dir /w", extra)
    }
    fails_cleanly(&db, &add(&["--kind", "ssh"]), "an ssh cluster needs --host");
    fails_cleanly(
        &db,
        &add(&words("--kind local --host h --ssh-user u")),
        "a local cluster has no SSH settings: leave out --host, --ssh-user",
    );
    // SSH settings without a host make the cluster local, which has none.
    for flag in ["--ssh-user", "--ssh-key", "--known-hosts"] {
        fails_cleanly(&db, &add(&[flag, "x"]), &format!("leave out {flag}"));
    }
    run(&db, &add(&["--kind", "cloud"])).expect_code(2);
    assert!(clusters_json(&db).is_empty());

    add_cluster(&db, "l --kind local --work-dir /w");
    add_cluster(&db, "s --kind ssh --host h --work-dir /w");
    let cs = clusters_json(&db);
    assert!(cs[0]["host"].is_null());
    assert_eq!(cs[1]["host"], "h");
}

#[tokio::test]
async fn hostile_sbatch_options_are_refused_and_nothing_is_stored() {
    let db = db_with_cluster("c1 --work-dir /w").await;
    for (opt, why) in [
        ("--wrap=reboot", "sbatch option --wrap is not allowed"),
        ("--output=/etc/x", "sbatch option --output is not allowed"),
        ("--comment=$(reboot)", "may hold only letters"),
        ("-A", "must look like --name=value"),
        ("--qos normal", "without spaces"),
    ] {
        let arg = format!("--sbatch-option={opt}");
        let msg = format!("--sbatch-option {opt:?} is refused: ");
        fails_cleanly(&db, &["add-cluster", "c2", "--work-dir", "/w", &arg], &msg);
        let out = fails_cleanly(&db, &["update-cluster", "c1", &arg], why);
        assert!(out.stdout.is_empty(), "{}", out.stdout);
    }
    assert_eq!(cluster_names(&db), ["c1"]);
    assert_eq!(clusters_json(&db)[0]["sbatch_defaults"], json!([]));
}

#[tokio::test]
async fn control_characters_in_settings_are_refused() {
    let db = Db::new().await;
    let cases = [
        ("--worker-path", "/bin/\u{1b}[2Jworker"),
        ("--partition", "p\tq"),
        ("--ssh-key", "/k\r"),
        ("--known-hosts", "/kh\u{7}"),
    ];
    for (flag, value) in cases {
        let out = fails_cleanly(
            &db,
            &words_and("add-cluster c --host h --work-dir /w", &[flag, value]),
            &format!("{flag} must not contain control characters"),
        );
        assert!(!out.stderr.contains('\u{1b}'), "{:?}", out.stderr);
    }
    fails_cleanly(
        &db,
        &words_and("add-cluster c --work-dir /w --worker-path", &[""]),
        "--worker-path must not be empty",
    );
    assert!(clusters_json(&db).is_empty());
    add_cluster(&db, "c --host h --work-dir /w");
    for (flag, value) in cases {
        fails_cleanly(
            &db,
            &["update-cluster", "c", flag, value],
            "must not contain control characters",
        );
    }
    fails_cleanly(
        &db,
        &["update-cluster", "c", "--work-dir", "/w\n/x"],
        "--work-dir must not contain control characters",
    );
    assert_eq!(clusters_json(&db)[0]["work_dir"], "/w");
}

#[tokio::test]
async fn max_array_size_is_checked() {
    let db = Db::new().await;
    for n in ["0", "1000001", "-1", "many"] {
        let arg = format!("--max-array-size={n}");
        run(&db, &words_and("add-cluster c --work-dir /w", &[&arg]))
            .usage_error_with("--max-array-size");
    }
    add_cluster(&db, "a --work-dir /w --max-array-size=1");
    add_cluster(&db, "b --work-dir /w --max-array-size=1000000");
    run(&db, &["update-cluster", "a", "--max-array-size=0"]).expect_code(2);
    let sizes: Vec<_> = clusters_json(&db)
        .iter()
        .map(|c| c["max_array_size"].clone())
        .collect();
    assert_eq!(sizes, [json!(1), json!(1_000_000)]);
}

#[tokio::test]
async fn update_cluster_changes_only_what_is_given() {
    let db = db_with_cluster(
        "c1 --host h --ssh-user u --partition p --work-dir /w --sbatch-option=--time=10",
    )
    .await;
    let before = clusters_json(&db)[0].clone();
    let out = run(
        &db,
        &words(
            "update-cluster c1 --max-array-size 20 --worker-path /opt/worker --keep-job-dirs true \
             --known-hosts /kh --sbatch-option=--mem=1G --sbatch-option=--qos=high",
        ),
    );
    out.ok();
    assert_eq!(
        out.stdout,
        "updated cluster \"c1\": known_hosts_path - -> \"/kh\"; \
         sbatch_defaults [\"--time=10\"] -> [\"--mem=1G\", \"--qos=high\"]; \
         max_array_size 1000 -> 20; worker_path \"worker\" -> \"/opt/worker\"; \
         keep_job_dirs false -> true\n"
    );
    let mut want = before.clone();
    want["known_hosts_path"] = json!("/kh");
    want["sbatch_defaults"] = json!(["--mem=1G", "--qos=high"]);
    want["max_array_size"] = json!(20);
    want["worker_path"] = json!("/opt/worker");
    want["keep_job_dirs"] = json!(true);
    assert_eq!(clusters_json(&db)[0], want);

    // Clearing, and the JSON answer is the cluster as it now is.
    let out = run(
        &db,
        &words(
            "--json update-cluster c1 --no-partition --clear-sbatch-options \
             --keep-job-dirs=false --ssh-port=2022",
        ),
    );
    out.ok();
    let v = out.json();
    assert!(v["partition"].is_null());
    assert_eq!(v["sbatch_defaults"], json!([]));
    assert_eq!(v["keep_job_dirs"], false);
    assert_eq!(v["ssh_port"], 2022);
    assert_eq!(v["ssh_user"], "u");
    assert_eq!(clusters_json(&db)[0], v);

    let same = run(&db, &["update-cluster", "c1", "--ssh-port=2022"]);
    same.ok();
    assert!(same.stdout.contains("unchanged"), "{}", same.stdout);
}

#[tokio::test]
async fn update_cluster_refusals() {
    let db = db_with_cluster("loc --work-dir /w").await;
    fails_cleanly(
        &db,
        &["update-cluster", "nope", "--max-array-size=5"],
        "cluster \"nope\" not found",
    );
    fails_cleanly(&db, &["update-cluster", "loc"], "nothing to change");
    // A local cluster gets SSH settings only together with a host.
    for flag in ["--ssh-user", "--ssh-key", "--known-hosts"] {
        fails_cleanly(
            &db,
            &["update-cluster", "loc", flag, "x"],
            "cluster \"loc\" is local (it has no host)",
        );
    }
    run(&db, &["update-cluster", "loc", "--host", ""]).usage_error_with("--host");
    for bad in [
        &["--partition", "p", "--no-partition"][..],
        &["--sbatch-option=--mem=1G", "--clear-sbatch-options"][..],
        &["--keep-job-dirs", "yes"][..],
        &["--ssh-port", "0"][..],
    ] {
        run(&db, &words_and("update-cluster loc", bad)).expect_code(2);
    }
    let c = &clusters_json(&db)[0];
    assert!(c["host"].is_null() && c["ssh_user"].is_null() && c["known_hosts_path"].is_null());
    assert_eq!(c["max_array_size"], 1000);

    run(&db, &words("update-cluster loc --host login --ssh-user me")).ok();
    let c = &clusters_json(&db)[0];
    assert_eq!(
        (&c["host"], &c["ssh_user"]),
        (&json!("login"), &json!("me"))
    );
}
