//! Where SLURM commands run: on this host, or on a cluster's login node over SSH.
//!
//! Locally a command is spawned directly from its argument vector, with no shell. Over SSH
//! the remote side always runs the login shell on one command line, so every argument is
//! quoted with `shlex` (POSIX single quotes) before it is joined; an argument holding a NUL
//! byte cannot be quoted and is refused.

use crate::ssh::{SshError, SshSession};
use std::process::Stdio;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// A failed command.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The program could not be started (for example `sbatch` is not installed).
    #[error("cannot run {program}: {source}")]
    Spawn {
        /// The program's name.
        program: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The SSH connection could not be made or was lost.
    #[error(transparent)]
    Ssh(#[from] SshError),
    /// An argument cannot be passed safely (it holds a NUL byte).
    #[error("argument {0:?} cannot be passed to a remote shell")]
    Unquotable(String),
    /// The program ran and exited unsuccessfully.
    #[error("{program} exited with {code}: {stderr}")]
    Failed {
        /// The program's name.
        program: String,
        /// Its exit code (-1 when killed by a signal).
        code: i32,
        /// The end of what it printed on stderr.
        stderr: String,
    },
}

impl CommandError {
    /// Whether trying again later may succeed: the connection failed (not a refused host or
    /// user), or SLURM's controller did not answer (`slurm_load_jobs error: Unable to
    /// contact slurm controller`).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Ssh(e) => e.is_transient(),
            Self::Failed { stderr, code, .. } => {
                *code == 255
                    || stderr.contains("Unable to contact slurm controller")
                    || stderr.contains("Socket timed out")
            }
            _ => false,
        }
    }
}

/// How to reach the cluster's SLURM commands.
#[derive(Debug, Clone)]
pub enum Transport {
    /// On this host.
    Local,
    /// Through an SSH control master, shared by every command.
    Ssh(Arc<SshSession>),
}

/// Quotes arguments into one POSIX shell command line.
pub fn quote(argv: &[&str]) -> Result<String, CommandError> {
    shlex::try_join(argv.iter().copied()).map_err(|_| {
        CommandError::Unquotable(
            argv.iter()
                .find(|a| a.contains('\0'))
                .map_or_else(String::new, |a| a.escape_debug().to_string()),
        )
    })
}

impl Transport {
    /// Runs `argv` (program first) with `stdin` as its input, returns its stdout.
    pub async fn run(&self, argv: &[&str], stdin: Option<&[u8]>) -> Result<Vec<u8>, CommandError> {
        let program = argv.first().copied().unwrap_or_default().to_owned();
        let first = self.run_once(&program, argv, stdin).await;
        match (&first, self) {
            (Err(CommandError::Failed { code: 255, .. }), Transport::Ssh(session)) => {
                // ssh itself failed: the master may be gone. Reconnect once and retry.
                session.ensure().await?;
                self.run_once(&program, argv, stdin).await
            }
            _ => first,
        }
    }

    async fn run_once(
        &self,
        program: &str,
        argv: &[&str],
        stdin: Option<&[u8]>,
    ) -> Result<Vec<u8>, CommandError> {
        let mut cmd = match self {
            Transport::Local => {
                let mut c = Command::new(program);
                c.args(&argv[1..]).kill_on_drop(true);
                c
            }
            Transport::Ssh(session) => {
                // Without a master, `ssh -S` would quietly open a connection of its own, one
                // per command: check it (a local socket, no network) and restart it if gone.
                session.ensure().await?;
                session.command(&quote(argv)?)
            }
        };
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|source| CommandError::Spawn {
            program: program.to_owned(),
            source,
        })?;
        if let (Some(bytes), Some(mut pipe)) = (stdin, child.stdin.take()) {
            // A program that exits early closes the pipe; its exit status tells why.
            let _ = pipe.write_all(bytes).await;
            drop(pipe);
        }
        let out = child
            .wait_with_output()
            .await
            .map_err(|source| CommandError::Spawn {
                program: program.to_owned(),
                source,
            })?;
        if out.status.success() {
            return Ok(out.stdout);
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
        Err(CommandError::Failed {
            program: program.to_owned(),
            code: out.status.code().unwrap_or(-1),
            stderr: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_each_argument_as_one_word() {
        let line = quote(&["sbatch", "--comment=a|b&c", "x y", "$(id)"]).unwrap();
        assert_eq!(
            shlex::split(&line).unwrap(),
            ["sbatch", "--comment=a|b&c", "x y", "$(id)"]
        );
        assert!(matches!(quote(&["a\0b"]), Err(CommandError::Unquotable(_))));
    }

    #[tokio::test]
    async fn local_commands_run_without_a_shell() {
        let out = Transport::Local
            .run(&["echo", "$(id);", "a|b"], None)
            .await
            .unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "$(id); a|b\n");
        let out = Transport::Local.run(&["cat"], Some(b"in")).await.unwrap();
        assert_eq!(out, b"in");
        let err = Transport::Local
            .run(&["sh", "-c", "echo boom >&2; exit 4"], None)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, CommandError::Failed { code: 4, stderr, .. } if stderr == "boom"),
            "{err}"
        );
        let err = Transport::Local
            .run(&["/nonexistent/sbatch"], None)
            .await
            .unwrap_err();
        assert!(matches!(err, CommandError::Spawn { .. }));
    }
}
