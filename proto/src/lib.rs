//! Wire types of the gRPC API (`sim.v1`). Filled in by the API issue.
