//! The work behind each subcommand.

pub mod backup;
pub mod cleanup;
pub mod clusters;
pub mod migrate;
pub mod schema_diagram;
pub mod simulations;
pub mod sql;
pub mod tasks;
pub mod users;
pub mod verify_backup;

use db::DbConfig;
use std::io::Write;

/// What every command needs: where the database is, and how to print.
pub struct Ctx<'a> {
    /// Database settings.
    pub config: DbConfig,
    /// Print JSON instead of tables.
    pub json: bool,
    /// Standard output, buffered.
    pub out: &'a mut dyn Write,
}

impl Ctx<'_> {
    /// One connection to a database whose schema matches this binary.
    pub async fn conn(&self) -> Result<db::Conn, db::DbError> {
        db::connect_and_check(&self.config).await
    }

    /// Prints `items` as a JSON array, or as a table under `headers` with the row `cells`
    /// makes of each item.
    pub fn list<T: serde::Serialize>(
        &mut self,
        items: &[T],
        headers: Vec<&str>,
        cells: impl Fn(&T) -> Vec<String>,
    ) -> std::io::Result<()> {
        if self.json {
            return crate::output::write_json(&mut self.out, &items);
        }
        let mut t = crate::output::Table::new(headers);
        for item in items {
            t.row(cells(item));
        }
        t.write(&mut self.out)
    }

    /// Prints a one-line confirmation, or `value` as JSON.
    pub fn done(&mut self, message: &str, value: &impl serde::Serialize) -> std::io::Result<()> {
        if self.json {
            crate::output::write_json(&mut self.out, value)
        } else {
            writeln!(self.out, "{message}")
        }
    }
}
