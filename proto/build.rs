//! Compiles `sim/v1/*.proto` with protox (pure Rust, no system `protoc`) and generates the
//! tonic/prost code plus the encoded file descriptor set used for server reflection.

use prost::Message as _;
use std::path::PathBuf;

const PROTOS: &[&str] = &[
    "sim/v1/auth.proto",
    "sim/v1/simulation.proto",
    "sim/v1/cluster.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for p in PROTOS {
        println!("cargo:rerun-if-changed={p}");
    }
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let fds = protox::compile(PROTOS, ["."])?;
    std::fs::write(out_dir.join("sim_v1_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
