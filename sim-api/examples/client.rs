//! An example client: logs in, submits a builtin proton simulation, watches its progress,
//! then prints the merged depth–dose curve as a terminal chart with its R80.
//!
//! ```text
//! cargo run -p sim-api --example client -- --addr http://127.0.0.1:50051 --user demo
//! ```
//! The password comes from `SIM_PASSWORD` (or `--password`). Exit code 0 means the
//! simulation completed and its results were read; on any failure it prints one line,
//! `error: <what failed>: <why> (<gRPC code>)`, and exits with 1.

use anyhow::{bail, Context as _};
use clap::Parser;
use futures_util::StreamExt;
use proto::v1 as pb;
use proto::v1::auth_service_client::AuthServiceClient;
use proto::v1::simulation_service_client::SimulationServiceClient;
use std::io::{IsTerminal as _, Write as _};
use tonic::codec::CompressionEncoding;
use tonic::transport::Channel;

#[derive(Parser)]
#[command(about = "Submit a builtin proton simulation, watch it, and chart its depth-dose")]
struct Args {
    /// The server: `HOST:PORT` or an http:// URL.
    #[arg(long, env = "SIM_API_ADDR", default_value = "http://127.0.0.1:50051")]
    addr: String,
    /// Login name.
    #[arg(long, env = "SIM_USER", default_value = "demo")]
    user: String,
    /// Password (prefer the environment variable).
    #[arg(long, env = "SIM_PASSWORD", hide_env_values = true)]
    password: String,
    /// Beam energy, MeV.
    #[arg(long, default_value_t = 150.0)]
    energy: f64,
    /// Number of tasks.
    #[arg(long, default_value_t = 4)]
    ntasks: i32,
    /// Primaries, split across the tasks.
    #[arg(long, default_value_t = 40_000)]
    primaries: i64,
    /// Rows of the chart.
    #[arg(long, default_value_t = 24)]
    rows: usize,
    /// Run as a SLURM array job on this cluster (admin-cli list-clusters) instead of on the
    /// workers.
    #[arg(long, value_name = "NAME")]
    cluster: Option<String>,
    /// An sbatch option for the batch run, e.g. --sbatch-option=--time=00:30:00
    /// (repeatable; only with --cluster).
    #[arg(
        long = "sbatch-option",
        value_name = "OPT",
        allow_hyphen_values = true,
        requires = "cluster"
    )]
    sbatch_options: Vec<String>,
}

fn authed<T>(msg: T, token: &str) -> anyhow::Result<tonic::Request<T>> {
    let mut r = tonic::Request::new(msg);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    Ok(r)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, a gRPC status as its message and code (no
/// metadata, no backtrace).
fn one_line(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = e
        .chain()
        .map(|cause| match cause.downcast_ref::<tonic::Status>() {
            Some(s) if s.message().is_empty() => format!("{:?}", s.code()),
            Some(s) => format!("{} ({:?})", s.message(), s.code()),
            None => cause.to_string(),
        })
        .collect();
    // Layers of the transport repeat each other ("tcp connect error: tcp connect error").
    parts.dedup();
    parts.join(": ").replace(['\n', '\r'], " ")
}

async fn run(args: Args) -> anyhow::Result<()> {
    // `HOST:PORT` or a URL, as the Python client takes it.
    let url = if args.addr.contains("://") {
        args.addr.clone()
    } else {
        format!("http://{}", args.addr)
    };
    let channel = Channel::from_shared(url)?
        .connect()
        .await
        .with_context(|| format!("cannot connect to {}", args.addr))?;
    let token = AuthServiceClient::new(channel.clone())
        .login(pb::LoginRequest {
            username: args.user.clone(),
            password: args.password.clone(),
        })
        .await
        .context("login failed")?
        .into_inner()
        .access_token;
    let mut sims =
        SimulationServiceClient::new(channel).accept_compressed(CompressionEncoding::Gzip);

    let input = serde_json::json!({
        "beam": { "energy_mev": args.energy, "sigma_cm": 0.3 },
        "phantom": { "radius_cm": 5.0, "depth_cm": 40.0 },
        "scoring": { "z_bins": 400, "r_bins": 50 },
    });
    let job_id = sims
        .submit(authed(
            pb::SubmitRequest {
                title: format!("{} MeV protons in water", args.energy),
                sim_type: pb::SimType::Builtin as i32,
                input: Some(pb::submit_request::Input::EditorJson(input.to_string())),
                ntasks: args.ntasks,
                primaries: args.primaries,
                platform: args.cluster.clone().map(|cluster| {
                    pb::submit_request::Platform::Batch(pb::BatchPlatform {
                        cluster,
                        sbatch_options: args.sbatch_options.clone(),
                    })
                }),
            },
            &token,
        )?)
        .await
        .context("submit failed")?
        .into_inner()
        .job_id;
    let place = match &args.cluster {
        Some(c) => format!(" as a SLURM array job on cluster {c}"),
        None => String::new(),
    };
    println!(
        "submitted {job_id}: {} MeV, {} tasks, {} primaries{place}",
        args.energy, args.ntasks, args.primaries
    );

    let state = watch(&mut sims, &token, &job_id)
        .await
        .with_context(|| format!("watching {job_id} failed"))?;
    if state != pb::JobState::Completed {
        bail!("the simulation ended {}", state.as_str_name());
    }

    let estimators = sims
        .list_estimators(authed(
            pb::ListEstimatorsRequest {
                job_id: job_id.clone(),
            },
            &token,
        )?)
        .await
        .context("listing the estimators failed")?
        .into_inner();
    println!("\nestimators:");
    for e in &estimators.estimators {
        for p in &e.pages {
            println!(
                "  {:<12} page {}  {}-D  {} values  {} ({})",
                e.name, p.page_number, p.dimension, p.value_count, p.value_name, p.value_unit
            );
        }
    }

    let (info, dose) = depth_dose(&mut sims, &token, &job_id)
        .await
        .context("reading the results failed")?;
    let axis = info.axes.first().context("depth_dose has no axis")?;
    let width = (axis.max - axis.min) / f64::from(axis.bins.max(1));
    let z: Vec<f64> = (0..dose.len())
        .map(|i| axis.min + (i as f64 + 0.5) * width)
        .collect();
    chart(&z, &dose, args.rows);
    match r80(&z, &dose) {
        Some(r) => println!("R80 = {r:.2} {}", axis.unit),
        None => println!("R80: the dose does not fall to 80% of its maximum within the phantom"),
    }
    Ok(())
}

/// Follows the simulation until it ends; returns its final state.
async fn watch(
    sims: &mut SimulationServiceClient<Channel>,
    token: &str,
    job_id: &str,
) -> anyhow::Result<pb::JobState> {
    let mut stream = sims
        .watch(authed(
            pb::WatchRequest {
                job_id: job_id.into(),
            },
            token,
        )?)
        .await?
        .into_inner();
    let tty = std::io::stdout().is_terminal();
    let mut state = pb::JobState::Unspecified;
    while let Some(status) = stream.next().await {
        let status = status?;
        let Some(sim) = status.simulation else {
            continue;
        };
        state = pb::JobState::try_from(sim.job_state).unwrap_or(pb::JobState::Unspecified);
        let done = status
            .tasks
            .iter()
            .filter(|t| t.state == pb::TaskState::Completed as i32)
            .count();
        let pct = 100.0 * sim.simulated_primaries as f64 / sim.primaries.max(1) as f64;
        let line = format!(
            "{:<9} {:>5.1}%  {}/{} primaries  tasks done {}/{}",
            state.as_str_name(),
            pct,
            sim.simulated_primaries,
            sim.primaries,
            done,
            status.tasks.len()
        );
        if tty {
            print!("\r{line}   ");
            std::io::stdout().flush()?;
        } else {
            println!("{line}");
        }
    }
    if tty {
        println!();
    }
    Ok(state)
}

/// The merged `depth_dose` page 0: its metadata and values, reassembled from chunks.
async fn depth_dose(
    sims: &mut SimulationServiceClient<Channel>,
    token: &str,
    job_id: &str,
) -> anyhow::Result<(pb::PageInfo, Vec<f64>)> {
    let mut stream = sims
        .get_results(authed(
            pb::GetResultsRequest {
                job_id: job_id.into(),
                estimators: vec!["depth_dose".into()],
                pages: "0".into(),
            },
            token,
        )?)
        .await?
        .into_inner();
    let (mut info, mut values) = (None, Vec::new());
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        if chunk.page.is_some() {
            info = chunk.page;
        }
        values.extend(chunk.values);
    }
    Ok((info.context("no depth_dose page in the results")?, values))
}

/// Prints the curve as horizontal bars, one row per group of depth bins (their maximum).
fn chart(z: &[f64], dose: &[f64], rows: usize) {
    let max = dose.iter().copied().fold(0.0, f64::max);
    if dose.is_empty() || max <= 0.0 {
        println!("(no dose scored)");
        return;
    }
    // Show the phantom down to a little past the last non-zero bin.
    let last = dose.iter().rposition(|&d| d > max * 1e-3).unwrap_or(0);
    let shown = (last + last / 10 + 1).min(dose.len());
    let per_row = shown.div_ceil(rows.max(1)).max(1);
    println!("\ndepth-dose (bars: dose relative to the maximum)");
    for (i, group) in dose[..shown].chunks(per_row).enumerate() {
        let v = group.iter().copied().fold(0.0, f64::max) / max;
        let bar = "#".repeat((v * 50.0).round() as usize);
        let zr = z[i * per_row];
        println!("{zr:>6.2} cm |{bar:<50}| {:>5.1}%", v * 100.0);
    }
}

/// The depth beyond the maximum where the dose falls to 80% of it (linear interpolation).
fn r80(z: &[f64], dose: &[f64]) -> Option<f64> {
    let (peak, max) = dose
        .iter()
        .copied()
        .enumerate()
        .fold((0, 0.0), |acc, (i, d)| if d > acc.1 { (i, d) } else { acc });
    let target = 0.8 * max;
    (peak + 1..dose.len()).find(|&i| dose[i] < target).map(|i| {
        let (z0, z1, d0, d1) = (z[i - 1], z[i], dose[i - 1], dose[i]);
        z0 + (d0 - target) / (d0 - d1) * (z1 - z0)
    })
}
