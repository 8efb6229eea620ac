//! `GetResults` of every page of a result the size of yaptide's test fixture (4 estimators,
//! 21 pages, 98,892 values, the largest page 80×400; the real values of
//! `../shared/data/yaptide/json_with_results.json` when it is there, synthetic pages of the
//! same shapes otherwise), merged from 2 tasks so every page has standard errors. The
//! pages are stored as a worker stores them (`db::queue::claim`, then
//! `db::merge::complete_with_results` per task, which finalizes the simulation), and
//! fetched through the real server (`sim_api::serve`, in-process on 127.0.0.1:0) with
//! `estimators` empty and `pages` "" (all).
//!
//! Reports: latency p50/p99 over sequential calls on one connection, without and with gzip
//! (`accept_compressed`), from a server as `sim-api` runs it and from one whose sockets have
//! TCP_NODELAY (set on its listener); bytes on the wire, counted as TCP payload by a byte-counting
//! forwarder on loopback between client and server (HTTP/2 framing, headers and gRPC
//! message prefixes included, TCP/IP headers not). Baselines in the same run:
//! `db::results::read_all` of the same pages on a direct connection (query plus codec
//! decode, no gRPC), the packed size (values + errors × 8 bytes) and the stored (codec)
//! size.
//!
//! Run: `cargo bench -p sim-api --bench results_fetch` (PostgreSQL as for the tests:
//! `TEST_DATABASE_URL`). `BENCH_RUNS` (default 200) calls of each kind, interleaved.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use db::results::{PageMeta, TaskPage};
use db::testing::TestDb;
use futures_util::StreamExt;
use proto::v1::simulation_service_client::SimulationServiceClient;
use proto::v1::{GetResultsRequest, JobState};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{authed, env_or, ms, quantile, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::codec::CompressionEncoding;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;

const TASKS: usize = 2;

/// The fixture's pages as the worker's pymchelper reader makes them (axes as
/// `[{name, unit, values}]`), or synthetic pages of the same shapes without `../shared`.
fn fixture_pages() -> (Vec<TaskPage>, &'static str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data/yaptide/json_with_results.json");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return (synthetic_pages(), "synthetic, fixture shapes");
    };
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut pages = Vec::new();
    for est in v["estimators"].as_array().unwrap() {
        for (i, p) in est["pages"].as_array().unwrap().iter().enumerate() {
            let axes: Vec<serde_json::Value> = ["axis_dim1", "axis_dim2"]
                .iter()
                .filter_map(|k| p.get(*k).cloned())
                .collect();
            let page_number = p["metadata"]["page_number"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .unwrap_or(i as i32);
            pages.push(TaskPage {
                estimator: est["name"].as_str().unwrap().to_string(),
                page_number,
                meta: PageMeta {
                    name: p["metadata"]["name"]
                        .as_str()
                        .or(p["data"]["name"].as_str())
                        .unwrap_or_default()
                        .to_string(),
                    dimension: p["dimensions"].as_i64().unwrap() as i16,
                    axes: serde_json::Value::Array(axes),
                    value_name: p["data"]["name"].as_str().unwrap_or_default().into(),
                    value_unit: p["data"]["unit"].as_str().unwrap_or_default().into(),
                    metadata: p["metadata"].clone(),
                    estimator_metadata: est["metadata"].clone(),
                },
                aggregation: db::aggregation::Aggregation::Mean,
                values: p["data"]["values"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_f64().unwrap())
                    .collect(),
            });
        }
    }
    (pages, "real values of json_with_results.json")
}

/// The fixture's layout: yz 80×400 (3 pages), entrance (6 scalars and a 640-bin
/// spectrum), z 400 (4 pages), peak (as entrance); noisy Bragg-like values.
fn synthetic_pages() -> Vec<TaskPage> {
    let axis = |name: &str, n: usize, lo: f64, hi: f64| {
        let w = (hi - lo) / n as f64;
        serde_json::json!({"name": name, "unit": "cm",
            "values": (0..n).map(|i| lo + w * (i as f64 + 0.5)).collect::<Vec<_>>()})
    };
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut noise = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut page =
        |est: &str, n: i32, dim: i16, axes: Vec<serde_json::Value>, count: usize| TaskPage {
            estimator: est.into(),
            page_number: n,
            meta: PageMeta {
                name: "DOSE".into(),
                dimension: dim,
                axes: serde_json::Value::Array(axes),
                value_name: "DOSE".into(),
                value_unit: "MeV/g".into(),
                ..PageMeta::default()
            },
            aggregation: db::aggregation::Aggregation::Mean,
            values: (0..count)
                .map(|i| {
                    let z = (i % 400) as f64 / 400.0;
                    (1.0 + 4.0 * z.powi(8)) * (0.9 + 0.2 * noise())
                })
                .collect(),
        };
    let mut pages = Vec::new();
    for n in 0..3 {
        let axes = vec![
            axis("Position (Y)", 80, -2.0, 2.0),
            axis("Position (Z)", 400, 0.0, 20.0),
        ];
        pages.push(page("yz_profile_", n, 2, axes, 32_000));
    }
    for est in ["entrance_", "peak_"] {
        for n in 0..6 {
            pages.push(page(est, n, 0, vec![], 1));
        }
        pages.push(page(est, 6, 1, vec![axis("Energy", 640, 0.0, 160.0)], 640));
    }
    for n in 0..4 {
        pages.push(page(
            "z_profile_",
            n,
            1,
            vec![axis("Position (Z)", 400, 0.0, 20.0)],
            400,
        ));
    }
    pages
}

fn jitter(pages: &[TaskPage], t: usize) -> Vec<TaskPage> {
    pages
        .iter()
        .map(|p| TaskPage {
            values: p
                .values
                .iter()
                .enumerate()
                .map(|(i, v)| v * (1.0 + 1e-3 * ((i * 7 + t * 13) % 11) as f64))
                .collect(),
            ..p.clone()
        })
        .collect()
}

/// Bytes forwarded each way by [`forwarder`].
#[derive(Default)]
struct Counts {
    to_server: AtomicU64,
    to_client: AtomicU64,
}

impl Counts {
    /// (to the client, to the server) so far.
    fn get(&self) -> (u64, u64) {
        (
            AtomicU64::load(&self.to_client, Ordering::SeqCst),
            AtomicU64::load(&self.to_server, Ordering::SeqCst),
        )
    }
}

/// A TCP forwarder on 127.0.0.1 to `target` that counts the bytes it passes on.
async fn forwarder(target: SocketAddr) -> (SocketAddr, Arc<Counts>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let counts = Arc::new(Counts::default());
    let c = counts.clone();
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            let outbound = tokio::net::TcpStream::connect(target).await.unwrap();
            inbound.set_nodelay(true).unwrap();
            outbound.set_nodelay(true).unwrap();
            let (ir, iw) = inbound.into_split();
            let (or, ow) = outbound.into_split();
            let (up, down) = (c.clone(), c.clone());
            tokio::spawn(async move { pump(ir, ow, &up.to_server).await });
            tokio::spawn(async move { pump(or, iw, &down.to_client).await });
        }
    });
    (addr, counts)
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    count: &AtomicU64,
) {
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                // Counted before it is passed on: once the client has a byte, it is counted.
                count.fetch_add(n as u64, Ordering::SeqCst);
                if to.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown().await;
}

/// What one `GetResults` of every page returned.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Fetched {
    messages: usize,
    pages: usize,
    values: usize,
    errors: usize,
    /// Sum of the encoded protobuf messages (no gRPC or HTTP/2 framing).
    message_bytes: usize,
}

async fn get_results(
    client: &mut SimulationServiceClient<Channel>,
    auth: &MetadataValue<Ascii>,
    job: &str,
) -> Fetched {
    let req = GetResultsRequest {
        job_id: job.into(),
        estimators: vec![],
        pages: String::new(),
    };
    let mut stream = client
        .get_results(authed(req, auth))
        .await
        .unwrap()
        .into_inner();
    let mut f = Fetched::default();
    while let Some(chunk) = stream.next().await {
        let c = chunk.unwrap();
        f.messages += 1;
        f.pages += usize::from(c.last_chunk_of_page);
        f.values += c.values.len();
        f.errors += c.errors.len();
        f.message_bytes += prost::Message::encoded_len(&c);
    }
    f
}

/// p50, p99 and max in ms of `v`.
fn stats(mut v: Vec<Duration>) -> (f64, f64, f64) {
    v.sort();
    (
        ms(quantile(&v, 0.5)),
        ms(quantile(&v, 0.99)),
        ms(*v.last().unwrap()),
    )
}

#[tokio::main]
async fn main() {
    let runs: usize = env_or("BENCH_RUNS", 200);
    let (pages, source) = fixture_pages();
    let nvalues: usize = pages.iter().map(|p| p.values.len()).sum();
    let estimators = {
        let mut e: Vec<&str> = pages.iter().map(|p| p.estimator.as_str()).collect();
        e.sort();
        e.dedup();
        e.len()
    };

    let db = TestDb::new().await;
    let server = Server::start(&db, 16, false).await;
    let ch = support::channels(server.addr, 1).await.remove(0);
    let auth = support::login(&db, ch.clone(), "bench").await;
    let mut plain = SimulationServiceClient::new(ch.clone());
    let job = support::submit(ch.clone(), &auth, "results fetch", TASKS as i32, 2000).await;
    let mut conn = db.conn().await;
    let claimed = db::queue::claim(
        &mut conn,
        "bench",
        TASKS as i64,
        Duration::from_secs(3600),
        db::enums::SimType::ALL,
    )
    .await
    .unwrap();
    assert_eq!(claimed.len(), TASKS);
    let t0 = Instant::now();
    for (i, t) in claimed.iter().enumerate() {
        db::merge::complete_with_results(&mut conn, &t.lease("bench"), 1000, &jitter(&pages, i))
            .await
            .unwrap();
    }
    let store_ms = ms(t0.elapsed());
    let status = support::get(ch.clone(), &auth, &job).await;
    assert_eq!(
        status.simulation.unwrap().job_state,
        JobState::Completed as i32
    );
    let sim_id = claimed[0].simulation_id;
    let stored = support::bigint(
        &mut conn,
        &format!(
            "SELECT (sum(octet_length(p.values_data)) + sum(coalesce(octet_length(p.errors_data), 0)))::bigint AS n
             FROM estimators e JOIN pages p ON p.estimator_id = e.id WHERE e.simulation_id = {sim_id}"
        ),
    )
    .await;

    // Check once: every page, all values, errors everywhere, the same numbers as read_all.
    let direct = db::results::read_all(&mut conn, sim_id).await.unwrap();
    let fetched = get_results(&mut plain, &auth, &job).await;
    assert_eq!(fetched.pages, pages.len());
    assert_eq!(fetched.values, nvalues);
    assert_eq!(fetched.errors, nvalues);
    assert_eq!(
        direct.iter().map(|p| p.values.len()).sum::<usize>(),
        nvalues
    );
    let mut gzip =
        SimulationServiceClient::new(ch.clone()).accept_compressed(CompressionEncoding::Gzip);
    assert_eq!(get_results(&mut gzip, &auth, &job).await, fetched);

    // Wire bytes through the counting forwarder (after one call, so that the connection's
    // preface and settings are not counted).
    let (fwd, counts) = forwarder(server.addr).await;
    let fch = support::channels(fwd, 1).await.remove(0);
    let mut wire = Vec::new();
    for compressed in [false, true] {
        let mut c = SimulationServiceClient::new(fch.clone());
        if compressed {
            c = c.accept_compressed(CompressionEncoding::Gzip);
        }
        get_results(&mut c, &auth, &job).await;
        let mut per_call = Vec::new();
        for _ in 0..5 {
            let (down0, up0) = counts.get();
            get_results(&mut c, &auth, &job).await;
            let (down1, up1) = counts.get();
            per_call.push((down1 - down0, up1 - up0));
        }
        per_call.sort();
        wire.push(per_call[per_call.len() / 2]);
    }
    drop(fch);

    // Latency, interleaved so that machine noise hits every kind alike; also through a
    // second server whose sockets have TCP_NODELAY (set on its listener).
    let fast = Server::start(&db, 16, true).await;
    let fast_ch = support::channels(fast.addr, 1).await.remove(0);
    let mut kinds = vec![
        ("GetResults, uncompressed", plain, Vec::new(), wire[0].0),
        ("GetResults, gzip", gzip, Vec::new(), wire[1].0),
        (
            "GetResults, uncompressed, TCP_NODELAY",
            SimulationServiceClient::new(fast_ch.clone()),
            Vec::new(),
            wire[0].0,
        ),
        (
            "GetResults, gzip, TCP_NODELAY",
            SimulationServiceClient::new(fast_ch.clone())
                .accept_compressed(CompressionEncoding::Gzip),
            Vec::new(),
            wire[1].0,
        ),
    ];
    let mut t_read = Vec::new();
    for i in 0..runs + 3 {
        let t = Instant::now();
        let r = db::results::read_all(&mut conn, sim_id).await.unwrap();
        if i >= 3 {
            t_read.push(t.elapsed());
        }
        assert_eq!(r.len(), pages.len());
        for (_, client, times, _) in kinds.iter_mut() {
            let t = Instant::now();
            get_results(client, &auth, &job).await;
            if i >= 3 {
                times.push(t.elapsed());
            }
        }
    }
    drop((ch, fast_ch));
    server.stop().await;
    fast.stop().await;

    let packed = 2 * nvalues * 8;
    let (r50, r99, rmax) = stats(t_read);
    println!(
        "GetResults of all pages: {estimators} estimators, {} pages, {nvalues} values + as many \
         errors ({source}), merged from {TASKS} tasks; stored in {store_ms:.0} ms",
        pages.len()
    );
    println!(
        "  {} messages per call, {} bytes of protobuf messages",
        fetched.messages, fetched.message_bytes
    );
    println!(
        "  {:<44} {:>8} {:>8} {:>8} {:>11} {:>12} {:>9}",
        "", "p50 ms", "p99 ms", "max ms", "vs read_all", "wire bytes", "vs packed"
    );
    println!(
        "  {:<44} {r50:>8.2} {r99:>8.2} {rmax:>8.2} {:>11} {:>12} {:>9}",
        "db::results::read_all, direct (baseline)", "1.00x", "", ""
    );
    for (name, _, times, down) in kinds {
        let (p50, p99, max) = stats(times);
        println!(
            "  {name:<44} {p50:>8.2} {p99:>8.2} {max:>8.2} {:>10.2}x {down:>12} {:>8.1}%",
            p50 / r50,
            100.0 * down as f64 / packed as f64
        );
    }
    println!(
        "  request bytes (client to server): {} uncompressed, {} gzip",
        wire[0].1, wire[1].1
    );
    println!(
        "  sizes: packed f64 (values + errors) {packed} bytes; stored (codec) {stored} bytes \
         ({:.1}% of packed)",
        100.0 * stored as f64 / packed as f64
    );
    println!("  {runs} sequential calls of each kind on one connection, interleaved");
}
