//! The one syntax for durations on command lines and in environment variables.

use std::time::Duration;

/// What a duration looks like, for error messages.
const SYNTAX: &str = "a number of seconds or a value with units, e.g. 30s, 500ms, 15m, 7d, 1h 30m";

/// Parses a duration for a clap `value_parser`: the `humantime` syntax (`30s`, `500ms`,
/// `15m`, `7d`, `1h 30m`), or a bare non-negative number of seconds (`30`, `0.5`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err(format!("empty duration: expected {SYNTAX}"));
    }
    if t.starts_with('-') {
        return Err(format!("{t:?} is negative: expected {SYNTAX}"));
    }
    if t.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return t
            .parse::<f64>()
            .ok()
            .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
            .ok_or_else(|| format!("{t:?} is not a number of seconds: expected {SYNTAX}"));
    }
    humantime::parse_duration(t)
        .map_err(|e| format!("{t:?} is not a duration ({e}): expected {SYNTAX}"))
}

/// A duration in the syntax [`parse_duration`] reads back (`15m`, `7days`, `500ms`), for
/// clap defaults written from a `Duration` constant.
pub fn format_duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}
