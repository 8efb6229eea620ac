//! One SSH connection per cluster: an OpenSSH control master, reused by every command.
//!
//! The master is started once (`ssh -M -N -f` with `ControlPersist`), and every later command
//! runs as a session inside it (`ssh -S <socket> -o ControlMaster=no`), so that polling opens
//! no new TCP connection and performs no new authentication. yaptide opened one connection
//! per poll and got a user's account blocked (yaptide#1590). If the master dies (a network
//! break, a server restart), the next command starts a new one.
//!
//! Host keys are checked strictly against the cluster's `known_hosts` file (or the user's
//! default one); a private key is referred to by its path and never read by this program.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use tokio::process::Command;
use tokio::sync::Mutex;

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

/// Failure to start or reach the control master.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
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

impl SshSession {
    /// Starts the control master, with its socket in `control_dir` (which must exist; Unix
    /// sockets allow about 100 bytes of path, so keep the directory short).
    pub async fn connect(target: SshTarget, control_dir: &Path) -> Result<Self, SshError> {
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

    async fn start_master(&self) -> Result<(), SshError> {
        let _ = std::fs::remove_file(&self.socket);
        let out = self
            .base()
            .args(["-M", "-N", "-f", "-o", "ControlPersist=yes"])
            .arg(&self.target.host)
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
            .arg(&self.target.host)
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
    pub fn command(&self, remote: &str) -> Command {
        let mut c = self.base();
        c.args(["-o", "ControlMaster=no", "-T"])
            .arg(&self.target.host)
            .arg("--")
            .arg(remote);
        c
    }

    /// Stops the master (`ssh -O exit`).
    pub async fn close(&self) {
        let _ = self.control("exit").status().await;
    }
}

impl Drop for SshSession {
    fn drop(&mut self) {
        // `ssh -O exit` talks to the local control socket only; it returns at once.
        let _ = std::process::Command::new("ssh")
            .arg("-S")
            .arg(&self.socket)
            .args(["-O", "exit"])
            .arg(&self.target.host)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
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
