//! Aligned tables and JSON on standard output.

use serde::Serialize;
use std::io::{self, Write};

/// A table of text cells, printed with columns padded to their widest cell.
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers.
    pub fn new<S: Into<String>>(headers: impl IntoIterator<Item = S>) -> Self {
        Self {
            headers: headers.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; it must have one cell per header.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Writes the header and the rows, two spaces between columns, no trailing spaces.
    pub fn write(&self, out: &mut impl Write) -> io::Result<()> {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| width(h)).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(width(cell));
            }
        }
        let mut line = String::with_capacity(widths.iter().sum::<usize>() + 2 * widths.len());
        let last = widths.len().saturating_sub(1);
        for row in std::iter::once(&self.headers).chain(&self.rows) {
            line.clear();
            for (i, (cell, w)) in row.iter().zip(&widths).enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                line.push_str(cell);
                if i < last {
                    let pad = w - width(cell);
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.write_all(line.trim_end().as_bytes())?;
            out.write_all(b"\n")?;
        }
        Ok(())
    }
}

/// Display width of a cell, counted in characters.
fn width(s: &str) -> usize {
    if s.is_ascii() {
        s.len()
    } else {
        s.chars().count()
    }
}

/// Writes `value` as pretty JSON and a newline.
pub fn write_json(out: &mut impl Write, value: &impl Serialize) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, value)?;
    out.write_all(b"\n")
}

/// A time as `YYYY-MM-DD HH:MM:SS` in UTC.
pub fn time(t: &chrono::DateTime<chrono::Utc>) -> String {
    use chrono::{Datelike, Timelike};
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// An optional time, or `-`.
pub fn opt_time(t: &Option<chrono::DateTime<chrono::Utc>>) -> String {
    t.as_ref().map_or_else(|| "-".into(), time)
}

/// An optional value, or `-`.
pub fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map_or_else(|| "-".into(), T::to_string)
}

/// Makes control characters visible, so a hostile name cannot rewrite the terminal.
pub fn safe(s: &str) -> String {
    if s.bytes().any(|b| b.is_ascii_control()) || (!s.is_ascii() && s.chars().any(char::is_control))
    {
        s.escape_default().to_string()
    } else {
        s.to_string()
    }
}
