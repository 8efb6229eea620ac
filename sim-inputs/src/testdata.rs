//! Where the real simulator files are that tests replay and compare against: pymchelper's
//! test set in `../shared/data/pymchelper/` (never copied into this repository). One lookup
//! for every crate's tests.

use std::path::{Path, PathBuf};

/// `<rel>` under the real simulator files: `PYMCHELPER_DATA` if set, else
/// `../shared/data/pymchelper` next to the checkout, else `/work/shared/data/pymchelper`.
/// Panics when none holds them: a test built on real output must not pass without it.
pub fn pymchelper_data(rel: &str) -> PathBuf {
    let candidates = [
        std::env::var_os("PYMCHELPER_DATA").map(PathBuf::from),
        Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/pymchelper")),
        Some(PathBuf::from("/work/shared/data/pymchelper")),
    ];
    let root = candidates
        .into_iter()
        .flatten()
        .find(|p| p.join("README.md").is_file());
    match root {
        Some(root) => root.join(rel),
        None => panic!(
            "the real simulator files (../shared/data/pymchelper) are missing; set PYMCHELPER_DATA"
        ),
    }
}
