//! add-cluster, list-clusters, remove-cluster.

use super::Ctx;
use crate::cli::ClusterArgs;
use crate::output::{opt, safe, write_json, Table};
use anyhow::Result;
use db::models::NewCluster;

/// `add-cluster NAME [connection options]`.
pub async fn add(ctx: &mut Ctx<'_>, args: ClusterArgs) -> Result<()> {
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
        known_hosts_path: None,
        max_array_size: 1000,
        worker_path: "worker".into(),
        keep_job_dirs: false,
    };
    let c = db::clusters::create(&mut conn, &new).await?;
    let place = match &c.host {
        Some(h) => format!(
            "via ssh {}{}:{}",
            c.ssh_user
                .as_deref()
                .map(|u| format!("{u}@"))
                .unwrap_or_default(),
            h,
            c.ssh_port
        ),
        None => "on the worker's host".into(),
    };
    ctx.done(
        &format!("added cluster {:?} ({place}) with id {}", c.name, c.id),
        &c,
    )?;
    Ok(())
}

/// `list-clusters`.
pub async fn list(ctx: &mut Ctx<'_>) -> Result<()> {
    let mut conn = ctx.conn().await?;
    let clusters = db::clusters::list(&mut conn).await?;
    if ctx.json {
        return Ok(write_json(&mut ctx.out, &clusters)?);
    }
    let mut t = Table::new(vec![
        "ID",
        "NAME",
        "HOST",
        "SSH_USER",
        "PORT",
        "PARTITION",
        "WORK_DIR",
        "SBATCH_DEFAULTS",
    ]);
    for c in &clusters {
        let defaults: Vec<&str> = c
            .sbatch_defaults
            .iter()
            .flatten()
            .map(String::as_str)
            .collect();
        t.row(vec![
            c.id.to_string(),
            safe(&c.name),
            c.host.as_deref().map_or_else(|| "(local)".into(), safe),
            safe(&opt(&c.ssh_user)),
            c.ssh_port.to_string(),
            safe(&opt(&c.partition)),
            safe(&c.work_dir),
            safe(&defaults.join(" ")),
        ]);
    }
    Ok(t.write(&mut ctx.out)?)
}

/// `remove-cluster NAME`.
pub async fn remove(ctx: &mut Ctx<'_>, name: &str) -> Result<()> {
    let mut conn = ctx.conn().await?;
    let c = db::clusters::remove(&mut conn, name).await?;
    ctx.done(&format!("removed cluster {:?}", c.name), &c)?;
    Ok(())
}
