//! backup: a `pg_dump --format=custom` of the database, written through `FILE.partial`; and
//! the client-program plumbing `verify-backup` shares.
//!
//! The connection reaches `pg_dump` and `pg_restore` through the `PG*` environment variables
//! only, so the password is never on a command line and never in a message.

use super::Ctx;
use crate::output::write_json;
use anyhow::{anyhow, bail, Context as _, Result};
use db::DbConfig;
use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// The connection as libpq environment variables (`PGHOST`, `PGPORT`, `PGUSER`,
/// `PGPASSWORD`, `PGDATABASE`, and `PGSSLMODE` etc. from URL parameters).
pub(super) fn pg_env(config: &DbConfig) -> Result<Vec<(&'static str, String)>> {
    let bad = || anyhow!("the database URL cannot be split into PG* settings");
    let url = config.url_with_password();
    let rest = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
        .ok_or_else(bad)?;
    let (before_query, query) = match rest.split_once('?') {
        Some((a, q)) => (a, Some(q)),
        None => (rest, None),
    };
    let (authority, path) = match before_query.split_once('/') {
        Some((a, p)) => (a, p),
        None => (before_query, ""),
    };
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let mut env: Vec<(&'static str, String)> = Vec::new();
    if let Some(userinfo) = userinfo {
        let (user, password) = match userinfo.split_once(':') {
            Some((u, p)) => (u, Some(p)),
            None => (userinfo, None),
        };
        if !user.is_empty() {
            env.push(("PGUSER", decode(user).ok_or_else(bad)?));
        }
        if let Some(p) = password {
            env.push(("PGPASSWORD", decode(p).ok_or_else(bad)?));
        }
    }
    // host[:port], [v6][:port], or a comma-separated list of them (libpq takes lists).
    let mut hosts = Vec::new();
    let mut ports = Vec::new();
    for hp in hostport.split(',').filter(|s| !s.is_empty()) {
        let (host, port) = if let Some(v6) = hp.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or_else(bad)?;
            (h, after.strip_prefix(':'))
        } else {
            match hp.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hp, None),
            }
        };
        hosts.push(decode(host).ok_or_else(bad)?);
        ports.push(port.unwrap_or("").to_string());
    }
    if !hosts.is_empty() {
        env.push(("PGHOST", hosts.join(",")));
    }
    if ports.iter().any(|p| !p.is_empty()) {
        env.push(("PGPORT", ports.join(",")));
    }
    if !path.is_empty() {
        env.push(("PGDATABASE", decode(path).ok_or_else(bad)?));
    }
    for pair in query.unwrap_or("").split('&').filter(|s| !s.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let var = match k {
            "host" => "PGHOST",
            "port" => "PGPORT",
            "user" => "PGUSER",
            "password" => "PGPASSWORD",
            "dbname" => "PGDATABASE",
            "sslmode" => "PGSSLMODE",
            "sslrootcert" => "PGSSLROOTCERT",
            "sslcert" => "PGSSLCERT",
            "sslkey" => "PGSSLKEY",
            "connect_timeout" => "PGCONNECT_TIMEOUT",
            "application_name" => "PGAPPNAME",
            _ => continue,
        };
        env.retain(|(name, _)| *name != var);
        env.push((var, decode(v).ok_or_else(bad)?));
    }
    Ok(env)
}

/// Percent-decodes a URL component (None when it is not UTF-8 afterwards; a `%` not
/// followed by two hex digits stays as it is).
fn decode(s: &str) -> Option<String> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(|d| d.into_owned())
}

/// A PostgreSQL client program: on PATH, else the newest under /usr/lib/postgresql/*/bin.
pub(super) fn find_tool(name: &str) -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version: u32 = e.file_name().to_str()?.parse().ok()?;
            let candidate = e.path().join("bin").join(name);
            candidate.is_file().then_some((version, candidate))
        })
        .collect();
    found.sort();
    found
        .pop()
        .map(|(_, p)| p)
        .ok_or_else(|| anyhow!("{name} not found on PATH or under /usr/lib/postgresql/*/bin"))
}

/// A client program with the connection in its environment and nothing else inherited
/// that could point it elsewhere.
pub(super) fn pg_command(tool: &Path, env: &[(&'static str, String)]) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(tool);
    for var in [
        "PGHOST",
        "PGHOSTADDR",
        "PGPORT",
        "PGUSER",
        "PGPASSWORD",
        "PGPASSFILE",
        "PGDATABASE",
        "PGSERVICE",
        "PGSSLMODE",
        "PGOPTIONS",
    ] {
        c.env_remove(var);
    }
    for (k, v) in env {
        c.env(k, v);
    }
    c.stdin(Stdio::null()).kill_on_drop(true);
    c
}

/// The last non-empty line a client program printed on error, with any password removed.
pub(super) fn last_error(stderr: &[u8], env: &[(&'static str, String)]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let mut line = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .rfind(|l| l.contains("error") || l.contains("fatal"))
        .or_else(|| text.lines().map(str::trim).rfind(|l| !l.is_empty()))
        .unwrap_or("no message")
        .to_string();
    for (k, v) in env {
        if *k == "PGPASSWORD" && !v.is_empty() {
            line = line.replace(v.as_str(), "***");
        }
    }
    crate::output::safe(&line)
}

/// A path with `suffix` appended to its file name.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s: OsString = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// A path for messages: control characters escaped.
pub(super) fn shown(path: &Path) -> String {
    crate::output::safe(&path.to_string_lossy())
}

/// The mode of a dump: it holds password and token hashes, so only its owner reads it.
pub const DUMP_MODE: u32 = 0o600;

/// Creates `path` empty with mode [`DUMP_MODE`] before `pg_dump` writes into it (pg_dump
/// opens an existing file without changing its mode), so the dump is never readable by
/// anyone else, not even for a moment. A leftover `FILE.partial` of an interrupted backup is
/// removed first, so the mode is this file's own.
fn create_private(path: &Path) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => bail!("cannot remove the leftover {}: {e}", shown(path)),
    }
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(DUMP_MODE)
        .open(path)
        .with_context(|| format!("cannot create {}", shown(path)))?;
    // The umask only takes bits away; give the owner back the right to write, if it did.
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(DUMP_MODE))
        .with_context(|| format!("cannot set the mode of {}", shown(path)))?;
    Ok(())
}

/// What a backup wrote (`--json`).
#[derive(Debug, Serialize)]
struct BackupSummary {
    file: String,
    bytes: u64,
    seconds: f64,
}

/// `backup --out FILE [--force] [--compress LEVEL]`.
pub async fn backup(ctx: &mut Ctx<'_>, out: &Path, force: bool, compress: u8) -> Result<()> {
    if !force && std::fs::symlink_metadata(out).is_ok() {
        bail!(
            "{} already exists; pass --force to overwrite it",
            shown(out)
        );
    }
    let env = pg_env(&ctx.config)?;
    let tool = find_tool("pg_dump")?;
    let partial = with_suffix(out, ".partial");
    create_private(&partial)?;
    let mut file_arg = OsString::from("--file=");
    file_arg.push(partial.as_os_str());
    let started = Instant::now();
    let mut child = pg_command(&tool, &env)
        .args(["--format=custom", "--no-password"])
        .arg(format!("--compress={compress}"))
        .arg(file_arg)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {}", tool.display()))?;
    let mut stderr = child.stderr.take();
    let reader = tokio::spawn(async move {
        let mut buf = Vec::new();
        if let Some(s) = stderr.as_mut() {
            let _ = tokio::io::AsyncReadExt::read_to_end(s, &mut buf).await;
        }
        buf
    });
    let bar = if std::io::stderr().is_terminal() {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        if let Ok(style) =
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] pg_dump: {msg} written")
        {
            bar.set_style(style);
        }
        bar.enable_steady_tick(Duration::from_millis(100));
        bar
    } else {
        ProgressBar::hidden()
    };
    let status = loop {
        tokio::select! {
            s = child.wait() => break s.context("waiting for pg_dump")?,
            () = tokio::time::sleep(Duration::from_millis(200)) => {
                let size = std::fs::metadata(&partial).map(|m| m.len()).unwrap_or(0);
                bar.set_message(HumanBytes(size).to_string());
            }
        }
    };
    bar.finish_and_clear();
    let errors = reader.await.unwrap_or_default();
    if !status.success() {
        let _ = std::fs::remove_file(&partial);
        bail!("pg_dump failed: {}", last_error(&errors, &env));
    }
    let bytes = std::fs::metadata(&partial).map(|m| m.len()).unwrap_or(0);
    if let Err(e) = std::fs::rename(&partial, out) {
        let _ = std::fs::remove_file(&partial);
        bail!("cannot rename the dump to {}: {e}", shown(out));
    }
    let seconds = started.elapsed().as_secs_f64();
    if ctx.json {
        write_json(
            &mut ctx.out,
            &BackupSummary {
                file: out.to_string_lossy().into_owned(),
                bytes,
                seconds,
            },
        )?;
    } else {
        writeln!(
            ctx.out,
            "backed up to {}: {} ({bytes} bytes) in {seconds:.1} s",
            shown(out),
            HumanBytes(bytes)
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use db::config::DbParts;

    fn env_of(config: &DbConfig) -> Vec<(&'static str, String)> {
        pg_env(config).expect("PG* settings")
    }

    fn get<'a>(env: &'a [(&'static str, String)], var: &str) -> Option<&'a str> {
        env.iter().find(|(k, _)| *k == var).map(|(_, v)| v.as_str())
    }

    #[test]
    fn parts_with_awkward_characters_come_back_decoded() {
        let config = DbConfig::from_parts(&DbParts {
            host: Some("db.example".into()),
            port: Some(6543),
            user: Some("op er@tor".into()),
            password: Some("p@ss:w/rd%?&#'\"$(x)".into()),
            dbname: Some("sim data".into()),
            socket_dir: None,
        })
        .unwrap();
        let env = env_of(&config);
        assert_eq!(get(&env, "PGHOST"), Some("db.example"));
        assert_eq!(get(&env, "PGPORT"), Some("6543"));
        assert_eq!(get(&env, "PGUSER"), Some("op er@tor"));
        assert_eq!(get(&env, "PGPASSWORD"), Some("p@ss:w/rd%?&#'\"$(x)"));
        assert_eq!(get(&env, "PGDATABASE"), Some("sim data"));
    }

    #[test]
    fn socket_dir_and_ipv6_hosts() {
        let socket = DbConfig::from_parts(&DbParts {
            socket_dir: Some("/run/postgresql".into()),
            ..DbParts::default()
        })
        .unwrap();
        let env = env_of(&socket);
        assert_eq!(get(&env, "PGHOST"), Some("/run/postgresql"));
        assert_eq!(get(&env, "PGPASSWORD"), None);
        let v6 = DbConfig::from_url("postgres://u@[::1]:5433/d?sslmode=require").unwrap();
        let env = env_of(&v6);
        assert_eq!(get(&env, "PGHOST"), Some("::1"));
        assert_eq!(get(&env, "PGPORT"), Some("5433"));
        assert_eq!(get(&env, "PGSSLMODE"), Some("require"));
        let multi = DbConfig::from_url("postgres://u:pw@a:1,b:2/d").unwrap();
        let env = env_of(&multi);
        assert_eq!(get(&env, "PGHOST"), Some("a,b"));
        assert_eq!(get(&env, "PGPORT"), Some("1,2"));
        assert_eq!(get(&env, "PGPASSWORD"), Some("pw"));
    }

    #[test]
    fn error_lines_never_carry_the_password() {
        let env = vec![("PGPASSWORD", "hunter2".to_string())];
        let line = last_error(b"pg_dump: error: bad thing hunter2 here\n", &env);
        assert!(!line.contains("hunter2"), "{line}");
        assert!(line.contains("***"), "{line}");
    }
}
