//! Running a simulator as a child process in its own process group: line-by-line output,
//! bounded log tails, the last lines for error messages, what an unsuccessful exit says about
//! where the fault is, and a kill that reaches every descendant.

use super::MachineFault;
use rustix::process::{kill_process_group, Pid, Signal};
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
    /// Adds a line, dropping the oldest ones beyond [`LOG_TAIL_BYTES`].
    pub fn push(&mut self, line: String) {
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
        self.last_lines(1).pop()
    }

    /// The last `n` non-empty lines, trimmed, oldest first.
    pub fn last_lines(&self, n: usize) -> Vec<&str> {
        let mut last: Vec<&str> = self
            .lines
            .iter()
            .rev()
            .map(|l| l.trim())
            .filter(|l| !l.is_empty())
            .take(n)
            .collect();
        last.reverse();
        last
    }
}

/// How many of the last lines of each stream a failure's message quotes.
pub const LAST_LINES: usize = 8;

/// The longest a quoted line may be, in bytes; longer ones are cut.
const LAST_LINE_BYTES: usize = 200;

/// Everything a run's programs wrote: the log tail of each stream.
#[derive(Debug, Default)]
pub struct Output {
    /// The stdout log.
    pub stdout: Tail,
    /// The stderr log.
    pub stderr: Tail,
}

impl Output {
    /// Files a line into its stream's tail.
    pub fn push(&mut self, which: Stream, line: String) {
        match which {
            Stream::Stdout => self.stdout.push(line),
            Stream::Stderr => self.stderr.push(line),
        }
    }

    /// The last line the programs wrote to stderr (or, without one, to stdout).
    pub fn last_error_line(&self) -> Option<&str> {
        self.stderr.last_line().or_else(|| self.stdout.last_line())
    }

    /// The last [`LAST_LINES`] non-empty lines of stdout, then those of stderr (marked
    /// `[stderr]`; the two streams come through separate pipes, so how their lines
    /// interleaved is not known), each on a line of its own, indented and cut to 200 bytes;
    /// empty when there are none. For a failure's message.
    pub fn last_lines(&self) -> String {
        let mut s = String::new();
        for (tail, mark) in [(&self.stdout, ""), (&self.stderr, "[stderr] ")] {
            for line in tail.last_lines(LAST_LINES) {
                let mut cut = line.len().min(LAST_LINE_BYTES);
                while !line.is_char_boundary(cut) {
                    cut -= 1;
                }
                s.push_str(&format!("\n  {mark}{}", &line[..cut]));
            }
        }
        s
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
    /// Kills the whole process group (the simulator and anything it started) with one
    /// `kill(2)` on the group, then the child itself (in case it left its group).
    pub fn kill_group(&mut self) {
        // The group id is the child's pid (process_group(0)). `id()` is `None` once the child
        // has been reaped, so a reused pid is never signalled.
        let group = self
            .child
            .id()
            .and_then(|pid| i32::try_from(pid).ok())
            .and_then(Pid::from_raw);
        if let Some(group) = group {
            // ESRCH (the group is already gone) is the expected failure; nothing to do then.
            let _ = kill_process_group(group, Signal::KILL);
        }
        let _ = self.child.start_kill();
    }

    /// Waits for the exit.
    pub async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        self.child.wait().await
    }

    /// Collects lines until both streams close.
    pub async fn drain_into(&mut self, output: &mut Output) {
        while let Some((which, line)) = self.lines.recv().await {
            output.push(which, line);
        }
    }
}

/// SIGBUS: a mapped file could not be read or written (an I/O error, a full tmpfs).
const SIGBUS: i32 = 7;
/// SIGXFSZ: the machine's file size limit was reached.
const SIGXFSZ: i32 = 25;

/// What an unsuccessful exit says about this machine: `Some` when it points at the machine
/// rather than the input — exit code 126 or 127 (the shell's and `env`'s "cannot execute" and
/// "not found": a wrapper script whose program or interpreter is missing here), or a kill by
/// SIGBUS or SIGXFSZ (storage failing under the program). `None` for every other exit: the
/// program ran and failed on its input (a crash by SIGSEGV or SIGABRT included; a SIGKILL is
/// not counted either, since an input too large for memory would make every machine sick).
pub fn exit_fault(status: ExitStatus) -> Option<MachineFault> {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(126 | 127), _) => Some(MachineFault::Program),
        (None, Some(SIGBUS | SIGXFSZ)) => Some(MachineFault::Killed),
        _ => None,
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn only_exits_that_point_at_the_machine_are_machine_faults() {
        // Raw wait statuses: an exit code sits in the second byte, a signal in the first.
        let exited = |code: i32| ExitStatus::from_raw(code << 8);
        let killed = ExitStatus::from_raw;
        assert_eq!(exit_fault(exited(127)), Some(MachineFault::Program));
        assert_eq!(exit_fault(exited(126)), Some(MachineFault::Program));
        assert_eq!(exit_fault(killed(SIGBUS)), Some(MachineFault::Killed));
        assert_eq!(exit_fault(killed(SIGXFSZ)), Some(MachineFault::Killed));
        // A program that ran and failed: its input's fault.
        for status in [
            exited(1),
            exited(2),
            exited(3),
            exited(125),
            killed(11),
            killed(6),
        ] {
            assert_eq!(exit_fault(status), None, "{status:?}");
        }
        assert_eq!(
            exit_fault(killed(9)),
            None,
            "SIGKILL (the OOM killer) is not counted"
        );
    }

    #[test]
    fn the_last_lines_of_each_stream_are_quoted() {
        let mut out = Output::default();
        for i in 0..15 {
            out.push(Stream::Stdout, format!("line {i}"));
        }
        out.push(Stream::Stdout, "   ".into());
        out.push(Stream::Stderr, "warning: slow".into());
        out.push(Stream::Stderr, format!("  ERROR: {}  ", "x".repeat(1000)));
        let last = out.last_lines();
        let lines: Vec<&str> = last.lines().skip(1).collect();
        assert_eq!(lines.len(), LAST_LINES + 2, "{last}");
        assert_eq!(lines[0], "  line 7", "the oldest kept");
        assert_eq!(lines[LAST_LINES - 1], "  line 14");
        assert_eq!(lines[LAST_LINES], "  [stderr] warning: slow");
        assert!(
            lines[LAST_LINES + 1].starts_with("  [stderr] ERROR: xxx"),
            "{}",
            lines[LAST_LINES + 1]
        );
        assert!(
            lines[LAST_LINES + 1].len() <= LAST_LINE_BYTES + 11,
            "long lines are cut"
        );
        assert_eq!(out.last_error_line().map(|l| &l[..6]), Some("ERROR:"));
        // The logs keep everything, blank lines too.
        assert_eq!(out.stdout.text().lines().count(), 16);
        assert_eq!(Output::default().last_lines(), "");
    }
}
