//! The drill's processes: starting `sim-api` and the workers (the SHIELD-HIT12A stand-in and
//! the real converter when there is one, and the worker on a full disk).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tests::Proc;

/// Starts a binary (see [`tests::start`]).
pub fn start(name: &str, url: &str, args: &[&str]) -> anyhow::Result<(Proc, String)> {
    Ok(tests::start(name, url, args)?)
}

/// The primaries in each `.bdo` file of the captured SHIELD-HIT12A run (its `NSTAT`).
pub const CAPTURED_PRIMARIES: i64 = 20;

/// The external simulator the drill runs besides the builtin engine: the SHIELD-HIT12A
/// stand-in, which replays a captured real run, and the real pymchelper `convertmc`.
pub struct External {
    shieldhit: PathBuf,
    convertmc: PathBuf,
    /// The captured run's input files, with the stand-in's settings.
    pub input: HashMap<String, String>,
    /// Where the workers' work roots are.
    pub work: PathBuf,
}

impl External {
    /// `None` (said on stdout) when `CONVERTMC` names no converter: then only builtin
    /// simulations run and the full-disk fault is left out.
    pub fn find() -> Option<Self> {
        let convertmc = std::env::var_os("CONVERTMC").map(PathBuf::from)?;
        if !convertmc.is_file() {
            println!("note: CONVERTMC is not a file; no SHIELD-HIT12A load, no full-disk fault");
            return None;
        }
        let captured = sim_inputs::testdata::pymchelper_data("captured/shieldhit/input");
        let mut input = HashMap::new();
        for name in sim_inputs::shieldhit::REQUIRED_FILES {
            input.insert(
                name.to_string(),
                std::fs::read_to_string(captured.join(name)).ok()?,
            );
        }
        input.insert("standin.json".into(), r#"{"delay": 0.02}"#.into());
        Some(Self {
            shieldhit: Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../worker/tests/standins/shieldhit"),
            convertmc,
            input,
            work: std::env::temp_dir().join(format!("chaos-work-{}", std::process::id())),
        })
    }

    /// The worker flags that run SHIELD-HIT12A tasks with a work root under `name`.
    fn flags(&self, name: &str) -> Vec<String> {
        let root = self.work.join(name);
        vec![
            "--shieldhit".into(),
            self.shieldhit.display().to_string(),
            "--convertmc".into(),
            self.convertmc.display().to_string(),
            "--work-root".into(),
            root.display().to_string(),
        ]
    }
}

/// The flags every drill worker gets.
fn worker_flags(id: &str) -> Vec<String> {
    [
        "--worker-id",
        id,
        "--concurrency",
        "2",
        "--lease",
        "4",
        "--poll",
        "0.5",
    ]
    .map(String::from)
    .to_vec()
}

/// Starts the drill's worker number `n`; returns it with its worker id (`chaos-worker-N`).
pub fn start_worker(url: &str, n: usize, ext: Option<&External>) -> anyhow::Result<(Proc, String)> {
    let id = format!("chaos-worker-{n}");
    let mut flags = worker_flags(&id);
    flags.extend(ext.map(|e| e.flags(&id)).unwrap_or_default());
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let (p, line) = start("worker", url, &flags)?;
    anyhow::ensure!(line.contains("ready"), "worker did not start: {line}");
    Ok((p, id))
}

/// A worker (`chaos-sick`) whose work root is a full 64 KiB tmpfs, mounted in a mount
/// namespace of its own (`unshare --mount`, so nobody else sees it and it goes with the
/// process). `None`, said on stdout, when this machine permits no such mount.
pub fn start_sick_worker(url: &str, ext: &External) -> Option<Proc> {
    let root = ext.work.join("chaos-sick");
    std::fs::create_dir_all(&root).ok()?;
    let script = r#"mount -t tmpfs -o size=64k chaos-full-disk "$0" || exit 77
        head -c 1048576 /dev/zero > "$0/fill" 2>/dev/null
        exec "$@""#;
    let mut flags = worker_flags("chaos-sick");
    flags.extend(ext.flags("chaos-sick"));
    let mut cmd = std::process::Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "sh", "-c", script])
        .arg(&root)
        .arg(tests::bin_path("worker"))
        .args(["--database-url", url])
        .args(&flags)
        .env("RUST_LOG", "error")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    for v in db::config::ENV_VARS {
        cmd.env_remove(v);
    }
    let mut child = cmd.spawn().ok()?;
    let out = child.stdout.take()?;
    let proc = Proc(child);
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(out), &mut line).ok()?;
    if line.contains("ready") {
        Some(proc)
    } else {
        println!("note: no tmpfs mount namespace here: the full-disk fault is left out");
        None
    }
}
