//! add-cluster, update-cluster, list-clusters, remove-cluster.

use super::Ctx;
use crate::cli::{ClusterArgs, ClusterKind, ClusterUpdateArgs};
use crate::output::{opt, safe};
use anyhow::{bail, Result};
use db::clusters::ClusterChanges;
use db::models::{Cluster, NewCluster};
use serde::Serialize;
use slurm::options::SbatchOption;

/// Longest path accepted, in bytes (the schema's limit for the worker and known_hosts paths).
const MAX_PATH_BYTES: usize = 4096;

/// Refuses an empty setting, or one holding a NUL byte or a control character; `flag` names
/// it as the operator gave it. Everything else is stored exactly as given.
fn check_text(flag: &str, value: &str) -> Result<()> {
    if value.is_empty() {
        bail!("{flag} must not be empty");
    }
    if value.contains('\0') {
        bail!("{flag} contains a NUL byte, which PostgreSQL cannot store");
    }
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        bail!("{flag} must not contain control characters (it holds {c:?})");
    }
    Ok(())
}

/// [`check_text`] for a path, which also has at most [`MAX_PATH_BYTES`] bytes.
fn check_path(flag: &str, value: &str) -> Result<()> {
    check_text(flag, value)?;
    if value.len() > MAX_PATH_BYTES {
        bail!("{flag} must be at most {MAX_PATH_BYTES} bytes");
    }
    Ok(())
}

/// Checks each text setting that is present.
fn check_all(settings: &[(&str, Option<&str>, bool)]) -> Result<()> {
    for (flag, value, is_path) in settings {
        match (value, is_path) {
            (Some(v), true) => check_path(flag, v)?,
            (Some(v), false) => check_text(flag, v)?,
            (None, _) => {}
        }
    }
    Ok(())
}

/// Checks sbatch options against `slurm::options`' allow-list; the first refused one is the
/// error, named as given.
fn check_sbatch_options(options: &[String]) -> Result<()> {
    for o in options {
        if let Err(e) = o.parse::<SbatchOption>() {
            bail!("--sbatch-option {o:?} is refused: {e}");
        }
    }
    Ok(())
}

/// Applies the kind rules: `ssh` needs a host; `local` has no SSH settings.
fn check_kind(args: &ClusterArgs) -> Result<ClusterKind> {
    let kind = args.kind.unwrap_or(match args.host {
        Some(_) => ClusterKind::Ssh,
        None => ClusterKind::Local,
    });
    match kind {
        ClusterKind::Ssh if args.host.is_none() => {
            bail!("an ssh cluster needs --host (its login node)")
        }
        ClusterKind::Local => {
            let given: Vec<&str> = [
                ("--host", args.host.is_some()),
                ("--ssh-user", args.ssh_user.is_some()),
                ("--ssh-key", args.ssh_key.is_some()),
                ("--known-hosts", args.known_hosts.is_some()),
            ]
            .into_iter()
            .filter_map(|(flag, set)| set.then_some(flag))
            .collect();
            if !given.is_empty() {
                bail!(
                    "a local cluster has no SSH settings: leave out {}, or use --kind ssh with --host",
                    given.join(", ")
                );
            }
        }
        ClusterKind::Ssh => {}
    }
    Ok(kind)
}

/// How the batch component reaches a cluster: `ssh` with a host, else `local` (the KIND
/// column, and `kind` in JSON).
fn kind(c: &Cluster) -> &'static str {
    if c.host.is_some() {
        "ssh"
    } else {
        "local"
    }
}

/// A cluster as printed in JSON: its settings and its kind.
#[derive(Serialize)]
struct Shown<'a> {
    #[serde(flatten)]
    cluster: &'a Cluster,
    kind: &'static str,
}

impl<'a> From<&'a Cluster> for Shown<'a> {
    fn from(cluster: &'a Cluster) -> Self {
        Self {
            cluster,
            kind: kind(cluster),
        }
    }
}

/// `add-cluster NAME [options]`.
pub async fn add(ctx: &mut Ctx<'_>, args: ClusterArgs) -> Result<()> {
    check_kind(&args)?;
    // The name, --host, --ssh-user and --work-dir's rule were checked where they came in
    // (`cli`); what is left is the text every setting shares.
    check_all(&[
        ("--ssh-key", args.ssh_key.as_deref(), true),
        ("--known-hosts", args.known_hosts.as_deref(), true),
        ("--partition", args.partition.as_deref(), false),
        ("--work-dir", Some(&args.work_dir), true),
        ("--worker-path", Some(&args.worker_path), true),
    ])?;
    check_sbatch_options(&args.sbatch_options)?;
    let mut conn = ctx.conn().await?;
    let new = NewCluster {
        name: args.name,
        host: args.host,
        ssh_user: args.ssh_user,
        ssh_port: i32::from(args.ssh_port),
        ssh_key_path: args.ssh_key,
        partition: args.partition,
        work_dir: args.work_dir,
        sbatch_defaults: args.sbatch_options.into_iter().map(Some).collect(),
        known_hosts_path: args.known_hosts,
        max_array_size: args.max_array_size,
        worker_path: args.worker_path,
        keep_job_dirs: args.keep_job_dirs,
    };
    let c = db::clusters::create(&mut conn, &new).await?;
    let place = match &c.host {
        Some(h) => format!(
            "via ssh {}{}:{}",
            c.ssh_user
                .as_deref()
                .map(|u| format!("{}@", safe(u)))
                .unwrap_or_default(),
            safe(h),
            c.ssh_port
        ),
        None => "on the worker's host".into(),
    };
    ctx.done(
        &format!("added cluster {:?} ({place}) with id {}", c.name, c.id),
        &Shown::from(&c),
    )?;
    Ok(())
}

/// `update-cluster NAME [options]`: changes only what is given, in one UPDATE.
pub async fn update(ctx: &mut Ctx<'_>, args: ClusterUpdateArgs) -> Result<()> {
    // The name, --host, --ssh-user and --work-dir's rule were checked where they came in
    // (`cli`); what is left is the text every setting shares.
    check_all(&[
        ("--ssh-key", args.ssh_key.as_deref(), true),
        ("--known-hosts", args.known_hosts.as_deref(), true),
        ("--partition", args.partition.as_deref(), false),
        ("--work-dir", args.work_dir.as_deref(), true),
        ("--worker-path", args.worker_path.as_deref(), true),
    ])?;
    check_sbatch_options(&args.sbatch_options)?;
    let sbatch_defaults = if args.clear_sbatch_options {
        Some(Vec::new())
    } else if args.sbatch_options.is_empty() {
        None
    } else {
        Some(args.sbatch_options.into_iter().map(Some).collect())
    };
    let changes = ClusterChanges {
        host: args.host,
        ssh_user: args.ssh_user,
        ssh_port: args.ssh_port.map(i32::from),
        ssh_key_path: args.ssh_key,
        known_hosts_path: args.known_hosts,
        partition: if args.no_partition {
            Some(None)
        } else {
            args.partition.map(Some)
        },
        work_dir: args.work_dir,
        sbatch_defaults,
        max_array_size: args.max_array_size,
        worker_path: args.worker_path,
        keep_job_dirs: args.keep_job_dirs,
    };
    if changes.is_empty() {
        bail!(
            "nothing to change: give at least one setting (see `admin-cli update-cluster --help`)"
        );
    }
    let mut conn = ctx.conn().await?;
    let u = db::clusters::update(&mut conn, &args.name, &changes).await?;
    let diff = differences(&u.before, &u.after);
    let message = if diff.is_empty() {
        format!(
            "cluster {:?} unchanged (it already had those settings)",
            u.after.name
        )
    } else {
        format!("updated cluster {:?}: {}", u.after.name, diff.join("; "))
    };
    ctx.done(&message, &Shown::from(&u.after))?;
    Ok(())
}

/// Each setting that differs, as `name old -> new` (text quoted and escaped, `-` for none).
fn differences(before: &Cluster, after: &Cluster) -> Vec<String> {
    fn text(v: Option<&str>) -> String {
        v.map_or_else(|| "-".into(), |s| format!("{s:?}"))
    }
    fn options(v: &[Option<String>]) -> String {
        format!("{:?}", v.iter().flatten().collect::<Vec<_>>())
    }
    /// One setting as shown in the message.
    type Show = fn(&Cluster) -> String;
    let fields: [(&str, Show); 11] = [
        ("host", |c| text(c.host.as_deref())),
        ("ssh_user", |c| text(c.ssh_user.as_deref())),
        ("ssh_port", |c| c.ssh_port.to_string()),
        ("ssh_key_path", |c| text(c.ssh_key_path.as_deref())),
        ("known_hosts_path", |c| text(c.known_hosts_path.as_deref())),
        ("partition", |c| text(c.partition.as_deref())),
        ("work_dir", |c| text(Some(&c.work_dir))),
        ("sbatch_defaults", |c| options(&c.sbatch_defaults)),
        ("max_array_size", |c| c.max_array_size.to_string()),
        ("worker_path", |c| text(Some(&c.worker_path))),
        ("keep_job_dirs", |c| c.keep_job_dirs.to_string()),
    ];
    fields
        .into_iter()
        .filter_map(|(name, show)| {
            let (old, new) = (show(before), show(after));
            (old != new).then(|| format!("{name} {old} -> {new}"))
        })
        .collect()
}

/// `list-clusters`.
pub async fn list(ctx: &mut Ctx<'_>) -> Result<()> {
    let mut conn = ctx.conn().await?;
    let clusters = db::clusters::list(&mut conn).await?;
    let clusters: Vec<Shown<'_>> = clusters.iter().map(Shown::from).collect();
    let headers = vec![
        "ID",
        "NAME",
        "KIND",
        "HOST",
        "SSH_USER",
        "PORT",
        "KNOWN_HOSTS",
        "PARTITION",
        "WORK_DIR",
        "WORKER",
        "MAX_ARRAY",
        "KEEP_DIRS",
        "SBATCH_DEFAULTS",
    ];
    Ok(ctx.list(&clusters, headers, |&Shown { cluster: c, kind }| {
        let defaults: Vec<&str> = c
            .sbatch_defaults
            .iter()
            .flatten()
            .map(String::as_str)
            .collect();
        vec![
            c.id.to_string(),
            safe(&c.name),
            kind.into(),
            safe(&opt(&c.host)),
            safe(&opt(&c.ssh_user)),
            c.ssh_port.to_string(),
            safe(&opt(&c.known_hosts_path)),
            safe(&opt(&c.partition)),
            safe(&c.work_dir),
            safe(&c.worker_path),
            c.max_array_size.to_string(),
            if c.keep_job_dirs { "yes" } else { "no" }.into(),
            safe(&defaults.join(" ")),
        ]
    })?)
}

/// `remove-cluster NAME`.
pub async fn remove(ctx: &mut Ctx<'_>, name: &str) -> Result<()> {
    let mut conn = ctx.conn().await?;
    let c = db::clusters::remove(&mut conn, name).await?;
    ctx.done(&format!("removed cluster {:?}", c.name), &Shown::from(&c))?;
    Ok(())
}
