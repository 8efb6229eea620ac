//! schema-diagram: a Mermaid `erDiagram` of the live catalog (tables, columns, keys and
//! relations), in a stable order, so that a committed copy can be compared with it.

use super::Ctx;
use anyhow::{bail, Result};
use db::sql::StatementOutput;
use std::fmt::Write as _;

/// Every column of every table in the current schema (the migrations' bookkeeping table
/// left out), in table and column order, with its type and keys. Single-column unique
/// constraints are `UK`; composite ones are not marked.
const COLUMNS_SQL: &str = r"
SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull::text,
       EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conrelid = c.oid AND k.contype = 'p'
                 AND a.attnum = ANY (k.conkey))::text,
       EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conrelid = c.oid AND k.contype = 'f'
                 AND a.attnum = ANY (k.conkey))::text,
       EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conrelid = c.oid AND k.contype = 'u'
                 AND k.conkey = ARRAY[a.attnum])::text
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid
WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')
  AND a.attnum > 0 AND NOT a.attisdropped
  AND c.relname <> '__diesel_schema_migrations'
ORDER BY c.relname, a.attnum";

/// Every foreign key in the current schema: child, parent, columns (in key order), whether
/// they are all NOT NULL, and whether they are unique in the child (a one-to-one relation).
const RELATIONS_SQL: &str = r"
SELECT child.relname, parent.relname,
       (SELECT string_agg(a.attname, ', ' ORDER BY u.ord)
          FROM unnest(k.conkey) WITH ORDINALITY u(attnum, ord)
          JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.attnum),
       (SELECT bool_and(a.attnotnull)
          FROM unnest(k.conkey) u(attnum)
          JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.attnum)::text,
       EXISTS (SELECT 1 FROM pg_constraint x
               WHERE x.conrelid = k.conrelid AND x.contype IN ('p', 'u')
                 AND x.conkey @> k.conkey AND x.conkey <@ k.conkey)::text
FROM pg_constraint k
JOIN pg_class child ON child.oid = k.conrelid
JOIN pg_class parent ON parent.oid = k.confrelid
JOIN pg_namespace n ON n.oid = child.relnamespace
WHERE k.contype = 'f' AND n.nspname = current_schema()
ORDER BY child.relname, parent.relname, k.conname";

/// The rows of the one statement `sql` runs, NULL as an empty string.
async fn rows(ctx: &Ctx<'_>, sql: &str) -> Result<Vec<Vec<String>>> {
    match db::sql::run(&ctx.config, sql).await?.into_iter().next() {
        Some(StatementOutput::Rows { rows, .. }) => Ok(rows
            .into_iter()
            .map(|r| r.into_iter().map(Option::unwrap_or_default).collect())
            .collect()),
        _ => bail!("the catalog query returned no rows"),
    }
}

/// Refuses a name Mermaid cannot draw as it is (it must be a plain identifier: letters,
/// digits and `_`, not starting with a digit), naming it escaped.
fn drawable(what: &str, name: &str) -> Result<()> {
    let mut chars = name.chars();
    let plain = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !plain {
        bail!(
            "the {what} name {name:?} cannot be drawn in a Mermaid diagram: only letters, digits and _ can"
        );
    }
    Ok(())
}

/// A type as one Mermaid word: `timestamp with time zone` is `timestamp_with_time_zone`.
fn mermaid_type(t: &str) -> String {
    t.chars()
        .filter(|c| *c != ',')
        .map(|c| if c == ' ' { '_' } else { c })
        .collect()
}

/// The diagram of the database `ctx` names: Mermaid text, ending in a newline.
pub async fn diagram(ctx: &Ctx<'_>) -> Result<String> {
    let columns = rows(ctx, COLUMNS_SQL).await?;
    let relations = rows(ctx, RELATIONS_SQL).await?;
    let mut out = String::from("erDiagram\n");
    let mut table: Option<&str> = None;
    for r in &columns {
        let [name, column, ty, not_null, pk, fk, uk] = r.as_slice() else {
            bail!("unexpected catalog row: {r:?}");
        };
        drawable("table", name)?;
        drawable("column", column)?;
        if table != Some(name.as_str()) {
            if table.is_some() {
                out.push_str("    }\n");
            }
            writeln!(out, "    {name} {{")?;
            table = Some(name);
        }
        let keys: Vec<&str> = [(pk, "PK"), (fk, "FK"), (uk, "UK")]
            .into_iter()
            .filter(|(on, _)| on.as_str() == "true")
            .map(|(_, k)| k)
            .collect();
        write!(out, "        {} {column}", mermaid_type(ty))?;
        if !keys.is_empty() {
            write!(out, " {}", keys.join(", "))?;
        }
        if not_null != "true" {
            out.push_str(" \"nullable\"");
        }
        out.push('\n');
    }
    if table.is_some() {
        out.push_str("    }\n");
    }
    for r in &relations {
        let [child, parent, cols, not_null, unique] = r.as_slice() else {
            bail!("unexpected catalog row: {r:?}");
        };
        let one = if not_null == "true" { "||" } else { "|o" };
        let many = if unique == "true" { "o|" } else { "o{" };
        writeln!(out, "    {parent} {one}--{many} {child} : \"{cols}\"")?;
    }
    Ok(out)
}

/// The Markdown page `docs/schema.md` holds: a heading, how it is made, and the diagram.
pub fn markdown(diagram: &str) -> String {
    format!(
        "# Database schema\n\n\
         Generated from the live catalog of a database migrated to this version, with\n\
         `admin-cli schema-diagram --markdown > docs/schema.md`. Do not edit by hand: the test\n\
         `admin-cli/tests/ops_schema_diagram.rs` fails when this page differs from what the\n\
         migrations give.\n\n\
         ```mermaid\n{diagram}```\n"
    )
}

/// `schema-diagram [--markdown]`.
pub async fn run(ctx: &mut Ctx<'_>, as_markdown: bool) -> Result<()> {
    // The diagram is of a database with exactly this binary's migrations.
    drop(ctx.conn().await?);
    let d = diagram(ctx).await?;
    let text = if as_markdown { markdown(&d) } else { d };
    ctx.out.write_all(text.as_bytes())?;
    Ok(())
}
