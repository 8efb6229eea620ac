//! The operations commands (issue 13) are listed in the top-level help, and each one's
//! `--help` exits 0 with the exit codes.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::*;

const OPS: &[&str] = &["rename-user", "retry-task", "cleanup", "schema-diagram"];

#[test]
fn every_operations_command_has_help_with_the_exit_codes() {
    let top = run_env(&[], &["--help"]);
    top.ok();
    for cmd in OPS {
        assert!(top.stdout.contains(cmd), "{cmd} missing:\n{}", top.stdout);
        let out = run_env(&[], &[cmd, "--help"]);
        out.ok();
        assert!(out.stdout.contains("Exit codes:"), "{cmd}:\n{}", out.stdout);
    }
    let cleanup = run_env(&[], &["cleanup", "--help"]).stdout;
    for opt in [
        "--older-than",
        "--state",
        "--user",
        "--dry-run",
        "--batch-size",
    ] {
        assert!(cleanup.contains(opt), "{opt}:\n{cleanup}");
    }
}
