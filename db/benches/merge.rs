//! Merge benchmarks against a real PostgreSQL: folding one task's result of ~99,000 values
//! (the size of yaptide's test fixture: 4 estimators, 21 pages, largest 80×400) into the
//! simulation's sums, and the last completion (fold + final merge) at 10 and at 100 tasks.
//! Baseline in the same run: completing a task without results.
//! Run: `cargo bench -p db --bench merge`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use db::enums::SimType;
use db::queue;
use db::results::{PageMeta, TaskPage};
use db::testing::TestDb;
use std::time::{Duration, Instant};

/// Pages shaped like yaptide's fixture: real values when ../shared is there, else synthetic.
fn fixture_pages() -> Vec<TaskPage> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data/yaptide/json_with_results.json");
    if let Ok(text) = std::fs::read_to_string(&path) {
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let mut pages = Vec::new();
        for est in v["estimators"].as_array().unwrap() {
            for (i, p) in est["pages"].as_array().unwrap().iter().enumerate() {
                pages.push(TaskPage {
                    estimator: est["name"].as_str().unwrap().to_string(),
                    page_number: i as i32,
                    meta: PageMeta {
                        name: "page".into(),
                        dimension: p["dimensions"].as_i64().unwrap() as i16,
                        ..Default::default()
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
        return pages;
    }
    let sizes = [(32000, 3), (1, 6), (640, 1), (400, 4), (1, 6), (640, 1)];
    let mut pages = Vec::new();
    let mut k = 0;
    for (e, &(n, count)) in sizes.iter().enumerate() {
        for p in 0..count {
            k += 1;
            pages.push(TaskPage {
                estimator: format!("est{}", e % 4),
                page_number: (p + e * 10) as i32,
                meta: PageMeta::default(),
                aggregation: db::aggregation::Aggregation::Mean,
                values: (0..n)
                    .map(|i| ((i * 7919 + k) % 1000) as f64 * 1.000_000_1e-4)
                    .collect(),
            });
        }
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
                .map(|v| v * (1.0 + 1e-3 * t as f64))
                .collect(),
            ..p.clone()
        })
        .collect()
}

async fn simulation(conn: &mut db::Conn, ntasks: i32) -> Vec<queue::ClaimedTask> {
    let owner = db::testing::user(conn, "bench").await;
    let new =
        db::testing::new_simulation(owner, SimType::Shieldhit, ntasks, i64::from(ntasks) * 1000);
    db::testing::submit(conn, new, None).await;
    queue::claim(
        conn,
        "bench",
        i64::from(ntasks),
        Duration::from_secs(3600),
        db::enums::SimType::ALL,
    )
    .await
    .unwrap()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let pages = fixture_pages();
    let values: usize = pages.iter().map(|p| p.values.len()).sum();

    // Baseline: complete tasks without results.
    let tasks = simulation(&mut conn, 41).await;
    let mut base = Vec::new();
    for t in &tasks[..40] {
        let t0 = Instant::now();
        queue::complete(&mut conn, &t.lease("bench"), 1000)
            .await
            .unwrap();
        base.push(ms(t0.elapsed()));
    }

    // Fold: tasks 2..=k of a simulation whose sums already exist.
    let mut fold = Vec::new();
    let mut last = Vec::new();
    for ntasks in [10, 100] {
        let tasks = simulation(&mut conn, ntasks).await;
        let mut times = Vec::new();
        for (i, t) in tasks.iter().enumerate() {
            let p = jitter(&pages, i);
            let t0 = Instant::now();
            db::merge::complete_with_results(&mut conn, &t.lease("bench"), 1000 + i as i64, &p)
                .await
                .unwrap();
            times.push(ms(t0.elapsed()));
        }
        last.push((ntasks, *times.last().unwrap()));
        fold.extend(times[1..times.len() - 1].iter().copied());
    }
    let base = median(base);
    let fold = median(fold);
    println!(
        "Merge, {} pages, {values} values per task result:",
        pages.len()
    );
    println!("  complete without results (baseline)   median {base:>7.2} ms");
    println!("  complete + fold into running sums      median {fold:>7.2} ms   ({:.1}x baseline)   target <= 5 ms: {}", fold / base, if fold <= 5.0 { "MET" } else { "NOT MET" });
    for (n, t) in last {
        println!("  last completion (fold + final merge) at {n:>3} tasks: {t:>7.2} ms");
    }
}
