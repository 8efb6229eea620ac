//! The cost of one poll of 100 active array elements, locally and over SSH, against one bare
//! `squeue` of the same jobs in the same run: started from a `std::process::Command` locally,
//! and through the same SSH control master by hand for the SSH path.
//!
//! Needs the single-node SLURM and the loopback sshd (`scripts/slurm-single-node start`,
//! `scripts/sshd-loopback start`). Run: `cargo bench -p slurm --bench poll`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use slurm::{JobSpec, Slurm, SshSession, SshTarget, Transport};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

const ELEMENTS: u32 = 100;
const ROUNDS: usize = 30;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

async fn time_polls(s: &Slurm, jobs: &[slurm::JobId]) -> Duration {
    let mut v = Vec::new();
    for _ in 0..ROUNDS {
        let t = Instant::now();
        let st = s.poll(jobs).await.unwrap();
        v.push(t.elapsed());
        assert_eq!(st.len(), ELEMENTS as usize);
    }
    median(v)
}

#[tokio::main]
async fn main() {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let env: HashMap<String, String> = String::from_utf8(
        std::process::Command::new(root.join("scripts/sshd-loopback"))
            .arg("env")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .lines()
    .filter_map(|l| l.split_once('='))
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();

    let local = Slurm::new(Transport::Local);
    let dir = format!("/var/tmp/sim-slurm-bench-{}", std::process::id());
    let script = format!("{dir}/sleep.sh");
    local
        .write_file(&script, b"#!/bin/sh\nsleep 300\n", true)
        .await
        .unwrap();
    let array = local
        .submit(&JobSpec {
            name: "sim-bench-poll",
            job_dir: &dir,
            script: &script,
            array: Some((0, ELEMENTS - 1)),
            after_any: None,
            partition: None,
            output: "element-%a.out",
            options: &[],
        })
        .await
        .unwrap();
    let jobs = [array];
    // Let some elements start, so that the poll sees running and pending ones.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let control = std::env::temp_dir().join(format!("simssh-bench-{}", std::process::id()));
    std::fs::create_dir_all(&control).unwrap();
    let session = Arc::new(
        SshSession::connect(
            SshTarget {
                host: env["SIM_SSH_HOST"].clone(),
                port: env["SIM_SSH_PORT"].parse().unwrap(),
                user: env["SIM_SSH_USER"].clone(),
                key_path: Some(env["SIM_SSH_KEY"].clone().into()),
                known_hosts: Some(env["SIM_SSH_KNOWN_HOSTS"].clone().into()),
            },
            &control,
        )
        .await
        .unwrap(),
    );
    let ssh = Slurm::new(Transport::Ssh(session.clone()));

    let jobs_arg = format!("--jobs={array}");
    let mut bare = Vec::new();
    for _ in 0..ROUNDS {
        let t = Instant::now();
        let out = std::process::Command::new("squeue")
            .args(["--noheader", "--array", "--states=all", &jobs_arg])
            .output()
            .unwrap();
        bare.push(t.elapsed());
        assert!(out.status.success());
    }
    let bare = median(bare);
    // The SSH baseline: the same squeue through the same control master, by hand. Its time is
    // mostly the remote login shell starting (the remote user's shell rc files).
    let mut bare_ssh = Vec::new();
    for _ in 0..ROUNDS {
        let t = Instant::now();
        let out = std::process::Command::new("ssh")
            .arg("-S")
            .arg(session.socket())
            .args(["-o", "ControlMaster=no", "-T", "-p", &env["SIM_SSH_PORT"]])
            .args(["-l", &env["SIM_SSH_USER"], "--", &env["SIM_SSH_HOST"]])
            .args(["squeue", "--noheader", "--array", "--states=all", &jobs_arg])
            .output()
            .unwrap();
        bare_ssh.push(t.elapsed());
        assert!(out.status.success());
    }
    let bare_ssh = median(bare_ssh);
    let local_poll = time_polls(&local, &jobs).await;
    let ssh_poll = time_polls(&ssh, &jobs).await;

    println!("poll of {ELEMENTS} active array elements, median of {ROUNDS}:");
    println!("  bare squeue (baseline)   {:7.2} ms", ms(bare));
    println!(
        "  Slurm::poll, local       {:7.2} ms  = {:.2}x the bare squeue",
        ms(local_poll),
        ms(local_poll) / ms(bare)
    );
    println!(
        "  bare squeue over the SSH master (baseline) {:7.2} ms",
        ms(bare_ssh)
    );
    println!(
        "  Slurm::poll, over SSH    {:7.2} ms  = {:.2}x the bare squeue over SSH",
        ms(ssh_poll),
        ms(ssh_poll) / ms(bare_ssh)
    );
    local.cancel(&jobs).await.unwrap();
    local.remove_dir(&dir).await.unwrap();
}
