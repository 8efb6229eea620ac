//! sql -c SQL | -f FILE.

use super::Ctx;
use crate::output::{safe, write_json, Table};
use anyhow::{bail, Context, Result};
use db::sql::StatementOutput;
use std::io::Read;
use std::path::PathBuf;

/// The most SQL read from a file or standard input.
const MAX_SQL_BYTES: u64 = 64 * 1024 * 1024;

/// Runs the SQL and prints every statement's result in turn.
pub async fn run(ctx: &mut Ctx<'_>, command: Option<String>, file: Option<PathBuf>) -> Result<()> {
    let sql = match (command, file) {
        (Some(c), _) => c,
        (None, Some(path)) => {
            let mut buf = String::new();
            let read = if path.as_os_str() == "-" {
                std::io::stdin()
                    .take(MAX_SQL_BYTES)
                    .read_to_string(&mut buf)
            } else {
                std::fs::File::open(&path)
                    .and_then(|f| f.take(MAX_SQL_BYTES).read_to_string(&mut buf))
            };
            read.with_context(|| format!("cannot read SQL from {}", path.display()))?;
            buf
        }
        (None, None) => bail!("give -c SQL or -f FILE"),
    };
    if sql.trim().is_empty() {
        bail!("no SQL to run");
    }
    // The protocol sends statements as C strings: name the problem instead of the driver's
    // "error encoding message to server".
    if let Some(at) = sql.find('\0') {
        bail!("the SQL contains a NUL byte (at byte {at}), which PostgreSQL cannot take in a statement");
    }
    let results = db::sql::run(&ctx.config, &sql).await?;
    if ctx.json {
        return Ok(write_json(&mut ctx.out, &results)?);
    }
    for (i, r) in results.iter().enumerate() {
        if i > 0 {
            writeln!(ctx.out)?;
        }
        match r {
            StatementOutput::Rows { columns, rows } => {
                let mut t = Table::new(columns.iter().map(|c| safe(c)));
                for row in rows {
                    t.row(
                        row.iter()
                            .map(|v| v.as_deref().map_or_else(|| "NULL".into(), safe))
                            .collect(),
                    );
                }
                t.write(&mut ctx.out)?;
                writeln!(
                    ctx.out,
                    "({} row{})",
                    rows.len(),
                    if rows.len() == 1 { "" } else { "s" }
                )?;
            }
            StatementOutput::Command { affected } => {
                writeln!(ctx.out, "OK, {affected} row(s) affected")?;
            }
        }
    }
    Ok(())
}
