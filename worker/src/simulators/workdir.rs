//! A private working directory per task attempt, and the file-name rule for inputs.

use std::path::{Path, PathBuf};

/// A file name that is safe to create inside a work directory: a plain name, no path.
pub fn check_file_name(name: &str) -> Result<(), String> {
    let bad = name.is_empty()
        || name.len() > 255
        || name == "."
        || name == ".."
        || name.contains(['/', '\\', '\0'])
        || name.chars().any(char::is_control);
    if bad {
        Err(format!("input file name {name:?} is not a plain file name"))
    } else {
        Ok(())
    }
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

    /// Writes one input file, checking its name again here.
    pub fn write_input(&self, name: &str, content: &str) -> Result<(), String> {
        check_file_name(name)?;
        std::fs::write(self.path.join(name), content)
            .map_err(|e| format!("cannot write input file {name:?}: {e}"))
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::check_file_name;

    #[test]
    fn only_plain_names_pass() {
        for ok in ["beam.dat", "geo.dat", "info.json", "a b.txt", "..hidden"] {
            assert!(check_file_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "../etc/passwd",
            "a/b",
            "a\\b",
            "x\0y",
            "/abs",
            "new\nline",
        ] {
            assert!(check_file_name(bad).is_err(), "{bad:?}");
        }
    }
}
