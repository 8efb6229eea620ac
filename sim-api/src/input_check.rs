//! What Submit checks about a simulation's input before anything is queued: the simulator
//! and the input kind agree, and the input itself passes [`sim_inputs`]' checks (the same
//! code the worker runs when it prepares a task). A failure is `INVALID_ARGUMENT` naming the
//! file and the card or parameter.

use db::enums::SimType;
use db::inputs::SimulationInput;
use sim_inputs::Simulator;
use tonic::Status;

/// Checks `input` for a simulation of `sim_type` split into `ntasks` tasks of `primaries` in
/// all (the largest task gets `ceil(primaries / ntasks)`).
pub fn check(
    sim_type: SimType,
    input: &SimulationInput,
    ntasks: i32,
    primaries: i64,
) -> Result<(), Status> {
    let bad = |e: &dyn std::fmt::Display| Status::invalid_argument(format!("input: {e}"));
    let per_task = primaries.div_euclid(i64::from(ntasks.max(1)))
        + i64::from(primaries.rem_euclid(i64::from(ntasks.max(1))) != 0);
    let external = |what: &str| {
        Status::invalid_argument(format!(
            "{what} takes input files, not an editor project (convert it first)"
        ))
    };
    match (sim_type, input) {
        (SimType::Builtin, SimulationInput::Editor(json)) => {
            sim_inputs::builtin::BuiltinInput::from_json(&json.to_string())
                .map(|_| ())
                .map_err(|e| bad(&e))
        }
        (SimType::Builtin, SimulationInput::Files(_)) => Err(Status::invalid_argument(
            "the builtin simulator takes editor_json, not input files",
        )),
        (SimType::Shieldhit, SimulationInput::Editor(_)) => Err(external("SHIELD-HIT12A")),
        (SimType::Fluka, SimulationInput::Editor(_)) => Err(external("FLUKA")),
        (SimType::Topas, SimulationInput::Editor(_)) => Err(external("TOPAS")),
        (SimType::Shieldhit, SimulationInput::Files(f)) => {
            sim_inputs::validate(Simulator::Shieldhit, f, ntasks, per_task).map_err(|e| bad(&e))
        }
        (SimType::Fluka, SimulationInput::Files(f)) => {
            sim_inputs::validate(Simulator::Fluka, f, ntasks, per_task).map_err(|e| bad(&e))
        }
        (SimType::Topas, SimulationInput::Files(f)) => {
            sim_inputs::validate(Simulator::Topas, f, ntasks, per_task).map_err(|e| bad(&e))
        }
    }
}
