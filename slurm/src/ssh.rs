//! One SSH connection per cluster: an OpenSSH control master, reused by every command.
//!
//! The master is started once (`ssh -M -N -f` with `ControlPersist`), and every later command
//! runs as a session inside it (`ssh -S <socket> -o ControlMaster=no`), so that polling opens
//! no new TCP connection and performs no new authentication. yaptide opened one connection
//! per poll and got a user's account blocked (yaptide#1590). If the master dies (a network
//! break, a server restart), the next command starts a new one. A master with no command for
//! [`MASTER_IDLE_LIMIT`] exits by itself, so that one left behind by a killed batch component
//! does not hold a connection to the cluster for ever (`ControlPersist=yes` did).
//!
//! Host keys are checked strictly against the cluster's `known_hosts` file (or the user's
//! default one); a private key is referred to by its path and never read by this program.
//!
//! What a host and a user may be is decided here, once ([`check_host`], [`check_user`]):
//! `admin-cli` checks them where an operator types them, and [`SshSession::connect`] checks
//! them again before it runs anything, so a stored value that `ssh` would read as an option
//! (`-oProxyCommand=…`) never reaches it. Every `ssh` command line also ends its options with
//! `--` before the destination.

use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use tokio::process::Command;
use tokio::sync::Mutex;

/// How long a control master stays up with no command running through it
/// (`ControlPersist`): longer than any poll interval, so that a live batch component keeps
/// its one connection, and short enough that a killed component's master goes away.
pub const MASTER_IDLE_LIMIT: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// Where and as whom to log in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    /// Host name or address.
    pub host: String,
    /// TCP port (22 by default in the clusters table).
    pub port: u16,
    /// Remote user name.
    pub user: String,
    /// Path of the private key on this host.
    pub key_path: Option<PathBuf>,
    /// Path of the `known_hosts` file that holds the host's key; `None` uses the user's.
    pub known_hosts: Option<PathBuf>,
}

/// The longest host accepted, in bytes (the clusters table's limit).
pub const MAX_HOST_BYTES: usize = 255;

/// The longest user name accepted, in bytes (the clusters table's limit).
pub const MAX_USER_BYTES: usize = 64;

/// What [`check_host`] accepts, in words.
pub const HOST_RULE: &str = "a host is a DNS name (letters, digits, '.', '-', '_') or an IP \
     address (IPv6 bare or in brackets), 1 to 255 bytes, not starting with '-'";

/// What [`check_user`] accepts, in words.
pub const USER_RULE: &str = "a user is 1 to 64 of A-Z a-z 0-9 . _ -, not starting with '-'";

/// A host or user that cannot be passed to `ssh` safely. The value is quoted escaped, so a
/// control character in it cannot rewrite a terminal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// The host breaks [`HOST_RULE`].
    #[error("SSH host {0:?} is refused: {HOST_RULE}")]
    Host(String),
    /// The user breaks [`USER_RULE`].
    #[error("SSH user {0:?} is refused: {USER_RULE}")]
    User(String),
}

/// Checks an SSH host against [`HOST_RULE`]: a DNS name of ASCII letters, digits, `.`, `-`
/// and `_`, or an IP address (an IPv6 one bare, `::1`, or in brackets, `[::1]`); never one
/// that starts with `-`, holds whitespace, a control character or a shell character.
pub fn check_host(host: &str) -> Result<(), TargetError> {
    let ok = !host.is_empty()
        && host.len() <= MAX_HOST_BYTES
        && !host.starts_with('-')
        && if let Some(inner) = host.strip_prefix('[') {
            inner
                .strip_suffix(']')
                .is_some_and(|a| a.parse::<Ipv6Addr>().is_ok())
        } else if host.contains(':') {
            host.parse::<Ipv6Addr>().is_ok()
        } else {
            host.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        };
    if ok {
        Ok(())
    } else {
        Err(TargetError::Host(host.to_owned()))
    }
}

/// Checks an SSH user name against [`USER_RULE`]: 1 to 64 of ASCII letters, digits, `.`,
/// `_` and `-`, not starting with `-`.
pub fn check_user(user: &str) -> Result<(), TargetError> {
    let ok = !user.is_empty()
        && user.len() <= MAX_USER_BYTES
        && !user.starts_with('-')
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(TargetError::User(user.to_owned()))
    }
}

impl SshTarget {
    /// Checks the host and the user ([`check_host`], [`check_user`]).
    pub fn check(&self) -> Result<(), TargetError> {
        check_host(&self.host)?;
        check_user(&self.user)
    }

    /// The host as `ssh` takes it: an IPv6 address without its brackets.
    fn destination(&self) -> &str {
        self.host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(&self.host)
    }
}

/// Failure to start or reach the control master.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    /// The host or the user is refused; nothing was run.
    #[error(transparent)]
    Target(#[from] TargetError),
    /// `ssh` could not be started at all.
    #[error("cannot run ssh: {0}")]
    Spawn(#[source] std::io::Error),
    /// The master did not come up (authentication, host key, network); `ssh`'s own words.
    #[error("ssh to {target} failed: {stderr}")]
    Connect {
        /// `user@host:port`.
        target: String,
        /// The last lines `ssh` printed.
        stderr: String,
    },
}

/// A control master for one [`SshTarget`]; dropping the session stops the master.
#[derive(Debug)]
pub struct SshSession {
    target: SshTarget,
    socket: PathBuf,
    restart: Mutex<()>,
}

impl SshError {
    /// Whether trying again later may succeed: not for a refused target.
    pub fn is_transient(&self) -> bool {
        !matches!(self, Self::Target(_))
    }
}

impl SshSession {
    /// Starts the control master, with its socket in `control_dir` (which must exist; Unix
    /// sockets allow about 100 bytes of path, so keep the directory short).
    ///
    /// A host or user that breaks [`HOST_RULE`] or [`USER_RULE`] is refused
    /// ([`SshError::Target`]) before anything runs.
    pub async fn connect(target: SshTarget, control_dir: &Path) -> Result<Self, SshError> {
        target.check()?;
        let socket = control_dir.join(format!("cm-{}-{}", target.port, sanitize(&target.host)));
        let session = Self {
            target,
            socket,
            restart: Mutex::new(()),
        };
        session.start_master().await?;
        Ok(session)
    }

    /// The target, as given.
    pub fn target(&self) -> &SshTarget {
        &self.target
    }

    /// The control socket's path (for tests and for the operator: `ssh -S <path> -O check`).
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    fn describe(&self) -> String {
        format!(
            "{}@{}:{}",
            self.target.user, self.target.host, self.target.port
        )
    }

    /// Options common to the master and its sessions.
    fn base(&self) -> Command {
        let mut c = Command::new("ssh");
        c.arg("-S")
            .arg(&self.socket)
            .args(["-p", &self.target.port.to_string()])
            .args(["-l", &self.target.user])
            .args(["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"])
            .args([
                "-o",
                "ServerAliveInterval=15",
                "-o",
                "ServerAliveCountMax=3",
            ])
            .args(["-o", "ConnectTimeout=15", "-o", "LogLevel=ERROR"]);
        if let Some(key) = &self.target.key_path {
            c.arg("-i").arg(key).args(["-o", "IdentitiesOnly=yes"]);
        }
        if let Some(kh) = &self.target.known_hosts {
            let mut opt = std::ffi::OsString::from("UserKnownHostsFile=");
            opt.push(kh);
            c.arg("-o").arg(opt);
        }
        c.stdin(Stdio::null()).kill_on_drop(true);
        c
    }

    /// `ssh -M -N -f`: the control master, which goes to the background once it is up.
    fn master(&self) -> Command {
        let mut c = self.base();
        c.args(["-M", "-N", "-f", "-o"])
            .arg(format!("ControlPersist={}s", MASTER_IDLE_LIMIT.as_secs()))
            .arg("--")
            .arg(self.target.destination());
        c
    }

    async fn start_master(&self) -> Result<(), SshError> {
        let _ = std::fs::remove_file(&self.socket);
        let out = self
            .master()
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .await
            .map_err(SshError::Spawn)?;
        if !out.status.success() {
            return Err(SshError::Connect {
                target: self.describe(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            });
        }
        tracing::info!(target = %self.describe(), socket = %self.socket.display(), "ssh control master up");
        Ok(())
    }

    /// `ssh -O <cmd>`: the control command `cmd` to the master, its output thrown away.
    fn control(&self, cmd: &str) -> Command {
        let mut c = self.base();
        c.args(["-O", cmd])
            .arg("--")
            .arg(self.target.destination())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    }

    /// Whether the master answers (`ssh -O check`).
    pub async fn is_alive(&self) -> bool {
        self.control("check")
            .status()
            .await
            .is_ok_and(|s| s.success())
    }

    /// The master's process id, as `ssh -O check` reports it (`Master running (pid=N)`).
    pub async fn master_pid(&self) -> Option<u32> {
        let out = self
            .control("check")
            .stderr(Stdio::piped())
            .output()
            .await
            .ok()?;
        let text = String::from_utf8_lossy(&out.stderr);
        let rest = text.split("pid=").nth(1)?;
        rest.split(')').next()?.trim().parse().ok()
    }

    /// Starts a new master if the old one is gone; one caller at a time.
    pub async fn ensure(&self) -> Result<(), SshError> {
        let _guard = self.restart.lock().await;
        if self.is_alive().await {
            return Ok(());
        }
        tracing::warn!(target = %self.describe(), "ssh control master gone; reconnecting");
        self.start_master().await
    }

    /// A command that runs `remote` on the host through the master. `remote` is one shell
    /// command line, already quoted (see [`crate::transport::quote`]).
    ///
    /// The options end with `--` before the destination: after it `ssh` reads no option, so
    /// neither the host nor the command line can be taken for one.
    pub fn command(&self, remote: &str) -> Command {
        let mut c = self.base();
        c.args(["-o", "ControlMaster=no", "-T"])
            .arg("--")
            .arg(self.target.destination())
            .arg(remote);
        c
    }

    /// Stops the master (`ssh -O exit`).
    pub async fn close(&self) {
        let _ = self.control("exit").status().await;
    }
}

impl SshSession {
    /// `ssh -O exit`, blocking, for [`Drop`].
    fn exit_now(&self) -> std::process::Command {
        let mut c = std::process::Command::new("ssh");
        c.arg("-S")
            .arg(&self.socket)
            .args(["-O", "exit", "--"])
            .arg(self.target.destination())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    }
}

impl Drop for SshSession {
    fn drop(&mut self) {
        // `ssh -O exit` talks to the local control socket only; it returns at once.
        let _ = self.exit_now().status();
    }
}

/// A host name as part of a file name.
fn sanitize(host: &str) -> String {
    host.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(40)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(host: &str, user: &str) -> SshTarget {
        SshTarget {
            host: host.into(),
            port: 2222,
            user: user.into(),
            key_path: Some("/k".into()),
            known_hosts: Some("/kh".into()),
        }
    }

    #[test]
    fn hosts_are_dns_names_or_ip_addresses() {
        let longest = format!("{}.example", "a".repeat(MAX_HOST_BYTES - 8));
        for good in [
            "login.example.org",
            "a",
            "node_01.cluster-x",
            "127.0.0.1",
            "::1",
            "[::1]",
            "[fe80::1]",
            "2001:db8::2",
            longest.as_str(),
        ] {
            assert_eq!(check_host(good), Ok(()), "{good:?}");
        }
        let too_long = format!("{longest}x");
        for bad in [
            "",
            "-oProxyCommand=touch /tmp/pwned",
            "-h",
            "evil;host",
            "a b",
            "host\t",
            "host\n",
            "h\u{1b}[2J",
            "u@host",
            "$(id)",
            "host:22",
            "[::1",
            "[not-v6]",
            "[::1]:22",
            "h\0",
            "ünï",
            too_long.as_str(),
        ] {
            assert_eq!(
                check_host(bad),
                Err(TargetError::Host(bad.into())),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn users_are_plain_names() {
        let longest = "u".repeat(MAX_USER_BYTES);
        for good in ["u", "plgrid_user", "sim.batch-2", "0", longest.as_str()] {
            assert_eq!(check_user(good), Ok(()), "{good:?}");
        }
        let too_long = format!("{longest}u");
        for bad in [
            "",
            "-oProxyCommand=id",
            "-l",
            "a b",
            "me\n",
            "u@h",
            "u;id",
            "ü",
            too_long.as_str(),
        ] {
            assert_eq!(
                check_user(bad),
                Err(TargetError::User(bad.into())),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_error_names_the_rule_and_escapes_the_value() {
        let e = check_host("h\u{1b}[2J").unwrap_err().to_string();
        assert!(e.contains(HOST_RULE) && !e.contains('\u{1b}'), "{e}");
        let e = check_user("a\nb").unwrap_err().to_string();
        assert!(e.contains(USER_RULE) && !e.contains('\n'), "{e}");
        assert!(!SshError::from(TargetError::User("-x".into())).is_transient());
    }

    /// A session that was never connected, for looking at its command lines.
    fn session(host: &str) -> SshSession {
        SshSession {
            target: target(host, "u"),
            socket: "/tmp/cm-test".into(),
            restart: Mutex::new(()),
        }
    }

    fn argv(c: &std::process::Command) -> Vec<String> {
        c.get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    /// Every command line ends its options with `--`, followed by the destination and, for a
    /// remote command, the command line; `ssh` reads no option after `--`.
    #[test]
    fn every_ssh_command_line_ends_its_options_before_the_destination() {
        for (host, dest) in [("login.example", "login.example"), ("[::1]", "::1")] {
            let s = session(host);
            let lines = [
                (argv(s.master().as_std()), 0),
                (argv(s.control("check").as_std()), 0),
                (argv(s.control("exit").as_std()), 0),
                (argv(&s.exit_now()), 0),
                (argv(s.command("squeue --me").as_std()), 1),
            ];
            for (line, after) in lines {
                let n = line.len();
                assert_eq!(line[n - 2 - after], "--", "{line:?}");
                assert_eq!(line[n - 1 - after], dest, "{line:?}");
                assert_eq!(line.iter().filter(|a| *a == "--").count(), 1, "{line:?}");
                if after == 1 {
                    assert_eq!(line[n - 1], "squeue --me");
                }
            }
            std::mem::forget(s); // no `ssh -O exit` for a session that never was
        }
    }

    /// A host or user that ssh would read as an option is refused before anything runs: the
    /// `ProxyCommand` would create the marker file.
    #[tokio::test]
    async fn a_hostile_target_is_refused_before_anything_runs() {
        let dir = std::env::temp_dir().join(format!("slurm-ssh-inj-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let marker = dir.join("pwned");
        let inject = format!("-oProxyCommand=touch {}", marker.display());
        for t in [
            target(&inject, "u"),
            target("127.0.0.1", &inject),
            target("evil;host", "u"),
            target("127.0.0.1", "a b"),
        ] {
            let err = SshSession::connect(t.clone(), &dir).await.unwrap_err();
            assert!(matches!(err, SshError::Target(_)), "{t:?}: {err}");
        }
        assert!(!marker.exists(), "the ProxyCommand ran");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
