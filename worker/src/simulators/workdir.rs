//! A private working directory per task attempt, the file-name rule for inputs, and what an
//! I/O error under the work root says about this machine.

use super::{MachineFault, SimulatorError};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The bytes [`probe`] writes: a filesystem with less free space than this is full for a
/// simulation.
pub const PROBE_BYTES: usize = 1 << 20;

/// The machine fault an I/O error on files under the work root is: [`MachineFault::DiskFull`]
/// for a full filesystem or quota (`ENOSPC`, `EDQUOT`), else [`MachineFault::Storage`] (`EIO`,
/// a read-only filesystem, and the rest: the worker writes plain names into its own
/// directory, so no error there is the input's).
pub fn io_fault(e: &std::io::Error) -> MachineFault {
    match e.kind() {
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => {
            MachineFault::DiskFull
        }
        _ => MachineFault::Storage,
    }
}

/// Checks that the filesystem of `root` still takes data: writes [`PROBE_BYTES`] to a new
/// file there, syncs it to the device (so a delayed `ENOSPC` or `EIO` shows), and removes it.
/// A failure is the machine's fault ([`io_fault`]).
pub fn probe(root: &Path) -> Result<(), SimulatorError> {
    static PROBES: AtomicU64 = AtomicU64::new(0);
    let path = root.join(format!(
        ".probe-{}-{}",
        std::process::id(),
        PROBES.fetch_add(1, Ordering::Relaxed)
    ));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .and_then(|mut f| {
            f.write_all(&vec![0u8; PROBE_BYTES])?;
            f.sync_all()
        });
    let _ = std::fs::remove_file(&path);
    written.map_err(|e| {
        SimulatorError::from_io(
            &e,
            format!("the work root {} cannot take data", root.display()),
        )
    })
}

/// A directory only this worker user can read, removed when dropped unless kept.
pub struct WorkDir {
    path: PathBuf,
    keep: bool,
}

impl WorkDir {
    /// Creates `<root>/sim<S>-task<I>-attempt<A>` afresh, mode 0700.
    pub fn create(
        root: &Path,
        simulation_id: i64,
        task_index: i32,
        attempt: i32,
        keep: bool,
    ) -> std::io::Result<Self> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::create_dir_all(root)?;
        let path = root.join(format!(
            "sim{simulation_id}-task{task_index}-attempt{attempt}"
        ));
        if path.exists() {
            std::fs::remove_dir_all(&path)?;
        }
        std::fs::DirBuilder::new().mode(0o700).create(&path)?;
        Ok(Self { path, keep })
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes one input file, checking its name again here. A name that is not plain is the
    /// input's fault; a failed write is this machine's ([`io_fault`]).
    pub fn write_input(&self, name: &str, content: &str) -> Result<(), SimulatorError> {
        sim_inputs::FileName::parse(name).map_err(|e| SimulatorError::Input(e.to_string()))?;
        std::fs::write(self.path.join(name), content)
            .map_err(|e| SimulatorError::from_io(&e, format!("cannot write input file {name:?}")))
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// A fresh empty directory `<prefix>-<pid>-<name>` under the temporary directory, for tests.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) fn scratch(prefix: &str, name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("{prefix}-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        super::scratch("workdir-test", name)
    }

    #[test]
    fn a_write_that_meets_a_full_device_is_a_machine_fault() {
        // /dev/full answers every write with the kernel's ENOSPC, without privileges.
        let root = scratch("enospc");
        let dir = WorkDir::create(&root, 1, 0, 1, false).unwrap();
        std::os::unix::fs::symlink("/dev/full", dir.path().join("beam.dat")).unwrap();
        let err = dir.write_input("beam.dat", "NSTAT 100\n").unwrap_err();
        assert_eq!(err.machine_fault(), Some(MachineFault::DiskFull), "{err:?}");
        assert!(err.to_string().contains("beam.dat"), "{err}");
        // A name that is not plain is the input's fault.
        assert!(matches!(
            dir.write_input("../x", ""),
            Err(SimulatorError::Input(_))
        ));
        drop(dir);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn io_errors_map_to_machine_faults() {
        use std::io::{Error, ErrorKind};
        assert_eq!(
            io_fault(&Error::from(ErrorKind::StorageFull)),
            MachineFault::DiskFull
        );
        assert_eq!(
            io_fault(&Error::from(ErrorKind::QuotaExceeded)),
            MachineFault::DiskFull
        );
        // EIO has no kind of its own.
        assert_eq!(
            io_fault(&Error::from_raw_os_error(5)),
            MachineFault::Storage
        );
        assert_eq!(
            io_fault(&Error::from(ErrorKind::ReadOnlyFilesystem)),
            MachineFault::Storage
        );
    }

    #[test]
    fn the_probe_passes_on_a_working_root_and_fails_where_nothing_can_be_written() {
        let root = scratch("probe");
        probe(&root).unwrap();
        assert_eq!(
            std::fs::read_dir(&root).unwrap().count(),
            0,
            "the probe is removed"
        );
        // A root that is not a directory takes no file (root may write anywhere, so the
        // permission bits could not show this).
        let file = root.join("plain-file");
        std::fs::write(&file, "").unwrap();
        let err = probe(&file).unwrap_err();
        assert_eq!(err.machine_fault(), Some(MachineFault::Storage), "{err:?}");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
