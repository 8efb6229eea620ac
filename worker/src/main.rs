//! The task worker. Filled in by the worker issue.

fn main() {
    eprintln!("worker: not implemented yet; see the README");
    std::process::exit(1);
}
