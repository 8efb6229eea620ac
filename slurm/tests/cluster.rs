//! The SLURM commands against a real single-node SLURM (`scripts/slurm-single-node start`),
//! each scenario both ways: on this host, and over SSH to a real sshd on loopback
//! (`scripts/sshd-loopback start`). scripts/test starts both when it runs as root.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use slurm::{
    ElementState, ElementStatus, FailReason, JobId, JobSpec, SbatchOption, Slurm, SshSession,
    SshTarget, Transport,
};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A fresh job directory, unique per test and transport.
fn job_dir(test: &str, via: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "/var/tmp/sim-slurm-tests/{test}-{via}-{}-{nanos}",
        std::process::id()
    )
}

async fn ssh_session() -> Arc<SshSession> {
    let env = tests::sshd_env();
    let target = SshTarget {
        host: env["SIM_SSH_HOST"].clone(),
        port: env["SIM_SSH_PORT"].parse().unwrap(),
        user: env["SIM_SSH_USER"].clone(),
        key_path: Some(env["SIM_SSH_KEY"].clone().into()),
        known_hosts: Some(env["SIM_SSH_KNOWN_HOSTS"].clone().into()),
    };
    let dir = std::env::temp_dir().join(format!("simssh-{}-{}", std::process::id(), fastrand()));
    std::fs::create_dir_all(&dir).unwrap();
    Arc::new(
        SshSession::connect(target, &dir)
            .await
            .expect("ssh to the loopback sshd (scripts/sshd-loopback start)"),
    )
}

fn fastrand() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
}

async fn slurm(via: &str) -> Slurm {
    tests::require_slurm();
    match via {
        "local" => Slurm::new(Transport::Local),
        _ => Slurm::new(Transport::Ssh(ssh_session().await)),
    }
}

/// Polls until every job's elements are final (at least `min` lines), or panics after `limit`.
async fn wait_final(s: &Slurm, jobs: &[JobId], min: usize, limit: Duration) -> Vec<ElementStatus> {
    let start = Instant::now();
    loop {
        let st = s.poll(jobs).await.unwrap();
        if st.len() >= min && st.iter().all(|e| e.state.is_final()) {
            return st;
        }
        assert!(
            start.elapsed() < limit,
            "jobs {jobs:?} not final after {limit:?}: {st:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// An array job of the elements `0..=last`, each running `script` in `dir` and writing
/// `element-<index>.out`, on the default partition with no options.
fn array_job<'a>(name: &'a str, dir: &'a str, script: &'a str, last: u32) -> JobSpec<'a> {
    JobSpec {
        name,
        job_dir: dir,
        script,
        array: Some((0, last)),
        after_any: None,
        partition: None,
        output: "element-%a.out",
        options: &[],
    }
}

/// The job that runs `script` in `dir` once every element of `array` has ended, writing
/// `collect.out`.
fn collect_job<'a>(name: &'a str, dir: &'a str, script: &'a str, array: JobId) -> JobSpec<'a> {
    JobSpec {
        array: None,
        after_any: Some(array),
        output: "collect.out",
        ..array_job(name, dir, script, 0)
    }
}

/// Writes `dir/sleep.sh`, which sleeps `seconds`; returns its path.
async fn sleep_script(s: &Slurm, dir: &str, seconds: u32) -> String {
    let script = format!("{dir}/sleep.sh");
    s.write_file(
        &script,
        format!("#!/bin/sh\nsleep {seconds}\n").as_bytes(),
        true,
    )
    .await
    .unwrap();
    script
}

const ELEMENT: &str = "#!/bin/sh\nset -eu\ni=$SLURM_ARRAY_TASK_ID\nif [ \"$i\" = 2 ]; then echo 'element 2 fails' >&2; exit 1; fi\necho \"seed $((1000 + i))\" > \"result-$i\"\n";
const COLLECT: &str = "#!/bin/sh\nls result-* | sort > collected\n";

async fn array_and_collect(via: &str) {
    let s = slurm(via).await;
    let dir = job_dir("array", via);
    s.write_file(&format!("{dir}/element.sh"), ELEMENT.as_bytes(), true)
        .await
        .unwrap();
    s.write_file(&format!("{dir}/collect.sh"), COLLECT.as_bytes(), true)
        .await
        .unwrap();
    let comment: SbatchOption = "--comment=a|b&c".parse().unwrap();
    let opts = [comment];
    let element = format!("{dir}/element.sh");
    let array = s
        .submit(&JobSpec {
            partition: Some("debug"),
            options: &opts,
            ..array_job("sim-test", &dir, &element, 3)
        })
        .await
        .unwrap();
    let collect_script = format!("{dir}/collect.sh");
    let collect = s
        .submit(&collect_job(
            "sim-test-collect",
            &dir,
            &collect_script,
            array,
        ))
        .await
        .unwrap();
    // The comment with shell metacharacters reached SLURM as one argument, intact. (All
    // states: the elements may have ended already, and squeue shows only queued and running
    // jobs by default.)
    let comment = s
        .transport()
        .run(
            &[
                "squeue",
                "--noheader",
                "--states=all",
                &format!("--jobs={array}"),
                "--format=%k",
            ],
            None,
        )
        .await
        .unwrap();
    let comment = String::from_utf8(comment).unwrap();
    assert!(
        comment.lines().all(|l| l.trim() == "a|b&c") && !comment.is_empty(),
        "{comment:?}"
    );

    let st = wait_final(&s, &[array, collect], 5, Duration::from_secs(120)).await;
    let elements: Vec<&ElementStatus> = st.iter().filter(|e| e.job == array).collect();
    assert_eq!(elements.len(), 4, "{st:?}");
    for e in &elements {
        let want = if e.index == Some(2) {
            ElementState::Failed(FailReason::NonZeroExit)
        } else {
            ElementState::Completed
        };
        assert_eq!(e.state, want, "{e:?}");
    }
    let c: Vec<&ElementStatus> = st.iter().filter(|e| e.job == collect).collect();
    assert_eq!(c.len(), 1);
    assert_eq!((c[0].index, &c[0].state), (None, &ElementState::Completed));
    let collected = s
        .read_file(&format!("{dir}/collected"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        String::from_utf8(collected).unwrap(),
        "result-0\nresult-1\nresult-3\n"
    );
    let err = s
        .read_file(&format!("{dir}/element-2.out"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(String::from_utf8(err).unwrap(), "element 2 fails\n");
    s.remove_dir(&dir).await.unwrap();
    assert_eq!(
        s.read_file(&format!("{dir}/collected")).await.unwrap(),
        None
    );
}

async fn cancel_while_running(via: &str) {
    let s = slurm(via).await;
    let dir = job_dir("cancel", via);
    let script = sleep_script(&s, &dir, 600).await;
    let array = s
        .submit(&array_job("sim-test-cancel", &dir, &script, 1))
        .await
        .unwrap();
    let collect = s
        .submit(&collect_job("sim-test-cancel", &dir, &script, array))
        .await
        .unwrap();
    let start = Instant::now();
    while !s
        .poll(&[array])
        .await
        .unwrap()
        .iter()
        .any(|e| e.state == ElementState::Running)
    {
        assert!(start.elapsed() < Duration::from_secs(60), "never ran");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    s.cancel(&[array, collect]).await.unwrap();
    let st = wait_final(&s, &[array, collect], 3, Duration::from_secs(60)).await;
    assert!(
        st.iter()
            .all(|e| e.state == ElementState::Failed(FailReason::Cancelled)),
        "{st:?}"
    );
    // No job of it is left in the queue.
    let left = s
        .transport()
        .run(
            &["squeue", "--noheader", &format!("--jobs={array},{collect}")],
            None,
        )
        .await
        .unwrap();
    assert_eq!(String::from_utf8(left).unwrap().trim(), "");
    // Cancelling again is not an error.
    s.cancel(&[array, collect]).await.unwrap();
    s.remove_dir(&dir).await.unwrap();
    assert_eq!(s.read_file(&script).await.unwrap(), None);
}

async fn time_limit(via: &str) {
    let s = slurm(via).await;
    let dir = job_dir("timeout", via);
    let script = sleep_script(&s, &dir, 600).await;
    let opts = ["--time=1".parse::<SbatchOption>().unwrap()];
    let array = s
        .submit(&JobSpec {
            options: &opts,
            ..array_job("sim-test-timeout", &dir, &script, 0)
        })
        .await
        .unwrap();
    // --time=1 is one minute; SLURM checks limits about every 30 s.
    let st = wait_final(&s, &[array], 1, Duration::from_secs(240)).await;
    assert_eq!(
        st[0].state,
        ElementState::Failed(FailReason::Timeout),
        "{st:?}"
    );
    s.remove_dir(&dir).await.unwrap();
}

/// Each scenario `$scenario(via)` as two tests, one per transport: `$name::local` and
/// `$name::ssh`.
macro_rules! both_transports {
    ($($name:ident => $scenario:ident;)*) => {$(
        mod $name {
            #[tokio::test]
            async fn local() {
                super::$scenario("local").await;
            }

            #[tokio::test]
            async fn ssh() {
                super::$scenario("ssh").await;
            }
        }
    )*};
}

both_transports! {
    array_with_a_failing_element_then_collect => array_and_collect;
    cancel_while_running => cancel_while_running;
    an_element_past_its_time_limit_is_timeout => time_limit;
}

#[tokio::test]
async fn twenty_polls_use_one_ssh_connection_and_a_lost_master_comes_back() {
    let session = ssh_session().await;
    let port = session.target().port.to_string();
    let master = session.master_pid().await.expect("master pid");
    let s = Slurm::new(Transport::Ssh(session.clone()));
    let dir = job_dir("polls", "ssh");
    let script = sleep_script(&s, &dir, 30).await;
    let array = s
        .submit(&array_job("sim-test-polls", &dir, &script, 3))
        .await
        .unwrap();
    // A sampler counts, every 2 ms during the 20 polls, the connections of our master and of
    // any ssh this test process started itself (other tests hold their own masters).
    let me = std::process::id();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (stop, port) = (stop.clone(), port.clone());
        std::thread::spawn(move || {
            let mut seen = std::collections::BTreeSet::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let owners = tests::connection_owners(&port);
                let ours = owners
                    .iter()
                    .filter(|&&p| p == master || tests::parent_of(p) == Some(me))
                    .count();
                seen.insert(ours);
                std::thread::sleep(Duration::from_millis(2));
            }
            seen
        })
    };
    for _ in 0..20 {
        assert_eq!(s.poll(&[array]).await.unwrap().len(), 4);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let seen = sampler.join().unwrap();
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        [1],
        "connection counts seen during 20 polls"
    );
    // The master is gone; the next command starts a new one.
    session.close().await;
    assert!(!session.is_alive().await);
    assert_eq!(s.poll(&[array]).await.unwrap().len(), 4);
    assert!(session.is_alive().await);
    assert_ne!(session.master_pid().await, Some(master));
    s.cancel(&[array]).await.unwrap();
    s.remove_dir(&dir).await.unwrap();
}

/// Over SSH the options end with `--` before the host: no word of the remote command line is
/// read as an ssh option, even one that starts with '-'; and the control commands
/// (`-O check`, `-O exit`) take the same `-- host`.
#[tokio::test]
async fn words_starting_with_a_dash_reach_the_remote_command_intact() {
    let session = ssh_session().await;
    assert!(session.is_alive().await);
    assert!(session.master_pid().await.is_some());
    let t = Transport::Ssh(session.clone());
    let out = t
        .run(
            &["printf", "%s|", "-oProxyCommand=id", "--", "-v", "-l"],
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "-oProxyCommand=id|--|-v|-l|"
    );
    session.close().await;
    assert!(!session.is_alive().await);
}

#[tokio::test]
async fn unsafe_paths_are_not_removed() {
    let s = Slurm::new(Transport::Local);
    for p in ["", "/", "/var", "relative/dir", "/var/tmp/../.."] {
        assert!(
            matches!(s.remove_dir(p).await, Err(slurm::SlurmError::UnsafePath(_))),
            "{p:?}"
        );
    }
}
