//! What the cleanup and backup benches share: reproducible noise for the pages they seed, and
//! a simulation made and claimed the product's way.

use rand::{Rng as _, SeedableRng as _};

/// Reproducible random numbers (`rand`'s `StdRng`, seeded).
pub struct Noise(rand::rngs::StdRng);

impl Noise {
    /// A generator whose numbers depend only on `seed`.
    pub fn new(seed: u64) -> Self {
        Self(rand::rngs::StdRng::seed_from_u64(seed))
    }

    /// Uniform in (0, 1] (never 0, so that its logarithm is finite).
    pub fn unit(&mut self) -> f64 {
        1.0 - self.0.gen::<f64>()
    }

    /// Standard normal (Box–Muller, G. E. P. Box and M. E. Muller, Ann. Math. Statist. 29
    /// (1958) 610).
    #[allow(dead_code)] // used by the cleanup bench only
    pub fn gauss(&mut self) -> f64 {
        let (u, v) = (self.unit(), self.unit());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

/// A bench's command line: a full run when cargo passed `--bench` (`cargo bench`), else a
/// smoke run (`cargo test --all-targets`); its one plain argument, a size; and the rounds,
/// `BENCH_ROUNDS` (default 2 in a full run, 1 in a smoke run).
pub struct BenchArgs {
    /// A full run.
    pub full: bool,
    /// The plain argument, if any.
    size: Option<String>,
    /// Rounds to time.
    pub rounds: usize,
}

impl BenchArgs {
    /// Reads the command line and `BENCH_ROUNDS`. Errors: a `BENCH_ROUNDS` that is not a
    /// number.
    pub fn parse() -> anyhow::Result<Self> {
        use anyhow::Context as _;
        let args: Vec<String> = std::env::args().skip(1).collect();
        let full = args.iter().any(|a| a == "--bench");
        let rounds = match std::env::var("BENCH_ROUNDS") {
            Ok(r) => r.parse().context("BENCH_ROUNDS must be a number")?,
            Err(_) if full => 2,
            Err(_) => 1,
        };
        Ok(Self {
            full,
            size: args.into_iter().find(|a| !a.starts_with('-')),
            rounds,
        })
    }

    /// The size argument (called `name` in errors), or `full` / `smoke` when it is left out.
    pub fn size<T: std::str::FromStr>(&self, name: &str, full: T, smoke: T) -> anyhow::Result<T> {
        match &self.size {
            Some(a) => a
                .parse()
                .map_err(|_| anyhow::anyhow!("{name} must be a number, not {a:?}")),
            None if self.full => Ok(full),
            None => Ok(smoke),
        }
    }
}

/// Which side goes first in round `round` (0-based): `[true, false]` (the product, then the
/// baseline) in even rounds, the other way in odd ones, so that neither always runs on a
/// warmer cache.
pub fn order(round: usize) -> [bool; 2] {
    if round.is_multiple_of(2) {
        [true, false]
    } else {
        [false, true]
    }
}

/// Stores `new` with the editor document `editor`, and claims every one of its tasks for the
/// worker `bench`, as a worker would before running them: the simulation and its tasks.
/// Fails unless exactly this simulation's `new.ntasks` tasks were claimed (no other task of
/// the database may be due).
pub async fn create_and_claim(
    conn: &mut db::Conn,
    new: &db::simulations::NewSimulation,
    editor: serde_json::Value,
) -> anyhow::Result<(db::models::Simulation, Vec<db::queue::ClaimedTask>)> {
    let (data, size) = db::inputs::SimulationInput::Editor(editor).encode()?;
    let sim = db::simulations::create_with_tasks(conn, new, Some((&data, size))).await?;
    let tasks = db::queue::claim(
        conn,
        "bench",
        i64::from(new.ntasks),
        std::time::Duration::from_secs(600),
        db::enums::SimType::ALL,
    )
    .await?;
    anyhow::ensure!(
        tasks.len() == new.ntasks as usize && tasks.iter().all(|t| t.simulation_id == sim.id),
        "claimed {} tasks",
        tasks.len()
    );
    Ok((sim, tasks))
}
