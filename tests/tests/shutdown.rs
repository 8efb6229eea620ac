//! SIGTERM to a real `sim-api` while a client watches a simulation: the `Watch` stream ends
//! with UNAVAILABLE (the client is told to watch again elsewhere) and the process exits 0,
//! rather than waiting for a stream that would only end with the simulation.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::{Duration, Instant};

#[tokio::test]
async fn sigterm_ends_open_watch_streams_and_the_process() {
    let (_db, mut api, _addr, mut sims, token) = tests::alice_on_api().await;
    // No worker runs: the simulation stays PENDING, so its Watch would never end by itself.
    let editor = r#"{"beam": {"energy_mev": 100.0}, "scoring": {"z_bins": 10, "r_bins": 2}}"#;
    let request = tests::builtin_request("watched", editor, 1, 100);
    let job = tests::submit(&mut sims, &token, request).await.unwrap();
    let mut stream = tests::watch(&mut sims, &job, &token).await.unwrap();
    let first = stream.message().await.unwrap().unwrap();
    assert!(first.simulation.is_some());

    let pid = api.0.id().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());

    // The stream ends with UNAVAILABLE (a generous bound: a hang is the failure).
    let end = tokio::time::timeout(Duration::from_secs(30), stream.message())
        .await
        .expect("the Watch stream outlived the shutdown");
    let status = end.expect_err("the stream ended without a status");
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert!(status.message().contains("shutting down"), "{status:?}");

    let started = Instant::now();
    let exit = loop {
        if let Some(exit) = api.0.try_wait().unwrap() {
            break exit;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "sim-api did not exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(exit.success(), "{exit:?}");
}
