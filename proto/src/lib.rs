//! Wire types of the gRPC API (`sim.v1`), generated from `proto/sim/v1/*.proto` by
//! tonic/prost at build time. The `.proto` files are compiled with `protox`, in pure Rust,
//! so no system `protoc` is needed.

/// Package `sim.v1`: AuthService, SimulationService, ClusterService and their messages.
pub mod sim {
    /// Version 1 of the API.
    pub mod v1 {
        #![allow(missing_docs, clippy::all)]
        include!(concat!(env!("OUT_DIR"), "/sim.v1.rs"));
    }
}

pub use sim::v1;

#[cfg(feature = "db")]
pub mod wire;

/// The encoded `FileDescriptorSet` of every `sim.v1` file (with its imports), for gRPC
/// server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/sim_v1_descriptor.bin"));
