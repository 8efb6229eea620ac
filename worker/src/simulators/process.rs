//! Running a simulator as a child process in its own process group: line-by-line output,
//! bounded log tails, and a kill that reaches every descendant.

use std::collections::VecDeque;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;
use tokio::sync::mpsc;

/// The most bytes of stdout and of stderr kept for the task's logs.
pub const LOG_TAIL_BYTES: usize = 256 * 1024;

/// The last bytes of a stream, up to a bound.
#[derive(Debug, Default)]
pub struct Tail {
    lines: VecDeque<String>,
    bytes: usize,
    dropped: bool,
}

impl Tail {
    fn push(&mut self, line: String) {
        self.bytes += line.len() + 1;
        self.lines.push_back(line);
        while self.bytes > LOG_TAIL_BYTES {
            match self.lines.pop_front() {
                Some(l) => self.bytes -= l.len() + 1,
                None => break,
            }
            self.dropped = true;
        }
    }

    /// The kept text, with a note when the start was cut.
    pub fn text(&self) -> String {
        let mut s = String::new();
        if self.dropped {
            s.push_str("[… earlier output dropped …]\n");
        }
        for l in &self.lines {
            s.push_str(l);
            s.push('\n');
        }
        s
    }

    /// The last non-empty line.
    pub fn last_line(&self) -> Option<&str> {
        self.lines
            .iter()
            .rev()
            .map(|l| l.trim())
            .find(|l| !l.is_empty())
    }
}

/// Which stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// A started child: its lines arrive on `lines`; `wait` ends it.
pub struct Child {
    child: tokio::process::Child,
    /// Output lines as they come.
    pub lines: mpsc::Receiver<(Stream, String)>,
}

/// Starts `program args…` in `dir`, in a new process group, with stdin closed.
pub fn spawn(program: &Path, args: &[String], dir: &Path) -> std::io::Result<Child> {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd.spawn()?;
    let (tx, rx) = mpsc::channel(1024);
    if let Some(out) = child.stdout.take() {
        tokio::spawn(forward(out, Stream::Stdout, tx.clone()));
    }
    if let Some(err) = child.stderr.take() {
        tokio::spawn(forward(err, Stream::Stderr, tx));
    }
    Ok(Child { child, lines: rx })
}

async fn forward(r: impl AsyncRead + Unpin, which: Stream, tx: mpsc::Sender<(Stream, String)>) {
    let mut reader = BufReader::new(r);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                // A line longer than the tail would be is cut; the tail keeps what matters.
                buf.truncate(LOG_TAIL_BYTES);
                let line = String::from_utf8_lossy(&buf)
                    .trim_end_matches(['\n', '\r'])
                    .to_string();
                if tx.send((which, line)).await.is_err() {
                    return;
                }
            }
        }
    }
}

impl Child {
    /// Kills the whole process group (the simulator and anything it started).
    pub fn kill_group(&mut self) {
        if let Some(pid) = self.child.id() {
            // The group id is the child's pid (process_group(0)).
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = self.child.start_kill();
    }

    /// Waits for the exit.
    pub async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        self.child.wait().await
    }

    /// Collects lines into tails until both streams close.
    pub async fn drain_into(&mut self, out: &mut Tail, err: &mut Tail) {
        while let Some((which, line)) = self.lines.recv().await {
            push(which, line, out, err);
        }
    }
}

/// Files a line into the right tail.
pub fn push(which: Stream, line: String, out: &mut Tail, err: &mut Tail) {
    match which {
        Stream::Stdout => out.push(line),
        Stream::Stderr => err.push(line),
    }
}

/// "exited with code 3" or "was killed by signal 9".
pub fn describe(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exited with code {c}"),
        (None, Some(s)) => format!("was killed by signal {s}"),
        _ => "ended abnormally".into(),
    }
}
