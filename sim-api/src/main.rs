//! The gRPC simulation API server. Filled in by the API issue.

fn main() {
    eprintln!("sim-api: not implemented yet; see the README");
    std::process::exit(1);
}
