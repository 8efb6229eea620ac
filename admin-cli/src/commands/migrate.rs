//! migrate status | run | revert | redo.

use super::Ctx;
use crate::cli::MigrateCommand;
use anyhow::Result;

/// Runs one `migrate` subcommand.
pub async fn run(ctx: &mut Ctx<'_>, cmd: MigrateCommand) -> Result<()> {
    match cmd {
        MigrateCommand::Status => {
            let mut conn = db::connect(&ctx.config).await?;
            let list = db::migrate::status(&mut conn).await?;
            ctx.list(&list, vec!["VERSION", "NAME", "STATE"], |m| {
                let state = match (m.applied, m.known) {
                    (true, true) => "applied",
                    (false, _) => "pending",
                    (true, false) => "applied, unknown to this binary",
                };
                vec![m.version.clone(), m.name.clone(), state.into()]
            })?;
            if !ctx.json {
                let pending = list.iter().filter(|m| !m.applied).count();
                writeln!(ctx.out, "{pending} pending")?;
            }
        }
        MigrateCommand::Run => {
            let done = db::migrate::run_pending(&ctx.config).await?;
            let msg = if done.is_empty() {
                "nothing to apply: the database is up to date".to_string()
            } else {
                format!("applied {}", done.join(", "))
            };
            ctx.done(&msg, &serde_json::json!({ "applied": done }))?;
        }
        MigrateCommand::Revert { steps } => {
            let done = db::migrate::revert(&ctx.config, steps as usize).await?;
            let msg = if done.is_empty() {
                "nothing to revert".to_string()
            } else {
                format!("reverted {}", done.join(", "))
            };
            ctx.done(&msg, &serde_json::json!({ "reverted": done }))?;
        }
        MigrateCommand::Redo => {
            let done = db::migrate::redo(&ctx.config).await?;
            let msg = match &done {
                Some(v) => format!("redid {v}"),
                None => "nothing to redo: no migration is applied".to_string(),
            };
            ctx.done(&msg, &serde_json::json!({ "redone": done }))?;
        }
    }
    Ok(())
}
