//! Every page shape SHIELD-HIT12A writes (`shieldhit/generated/single`: 0-D, 1-D, 2-D and
//! 3-D; cylinder, mesh, plane, zone and geometry maps) goes through the real binaries: a
//! `worker` running the stand-in that replays the real `.bdo` files and the real pymchelper
//! `convertmc`, and `sim-api`'s `GetResults`, which serves each page with its axes. The
//! reference is `convertmc json` of the same file, read here with plain `serde_json`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use db::testing::TestDb;
use futures_util::StreamExt;
use proto::v1 as pb;
use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use tests::convertmc;

fn flatten(v: &serde_json::Value, out: &mut Vec<f64>) {
    match v {
        serde_json::Value::Array(a) => a.iter().for_each(|x| flatten(x, out)),
        n => out.push(n.as_f64().unwrap()),
    }
}

/// `convertmc json FILE` of one real file: per page, its dimension, its axes' (name, unit,
/// centres) and its values.
type RefPage = (i32, Vec<(String, String, Vec<f64>)>, Vec<f64>);

fn reference(bdo: &Path) -> Vec<RefPage> {
    let dir = std::env::temp_dir().join(format!("shapes-ref-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let status = Command::new(convertmc())
        .arg("json")
        .arg(bdo)
        .current_dir(&dir)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let stem = bdo.file_stem().unwrap().to_string_lossy();
    let path = dir.join(format!("{stem}.json"));
    let est: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    std::fs::remove_file(path).unwrap();
    est["pages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let dims = p["dimensions"].as_i64().unwrap() as i32;
            let axes = (1..=dims)
                .map(|d| {
                    let a = &p[format!("axis_dim{d}")];
                    let mut c = Vec::new();
                    flatten(&a["values"], &mut c);
                    (
                        a["name"].as_str().unwrap().to_string(),
                        a["unit"].as_str().unwrap().to_string(),
                        c,
                    )
                })
                .collect();
            let mut values = Vec::new();
            flatten(&p["data"]["values"], &mut values);
            (dims, axes, values)
        })
        .collect()
}

#[tokio::test]
async fn every_generated_page_shape_is_served_with_its_axes() {
    let db = TestDb::new().await;
    let url = db.config().url_with_password();
    tests::add_user(url, "alice", "pw-alice");
    let standin = Path::new(env!("CARGO_MANIFEST_DIR")).join("../worker/tests/standins/shieldhit");
    let work = std::env::temp_dir().join(format!("shapes-work-{}", std::process::id()));
    let (_api, addr) = tests::start_api(url);
    let _worker = tests::start_worker(
        url,
        &[
            "--concurrency",
            "2",
            "--poll",
            "0.5",
            "--shieldhit",
            standin.to_str().unwrap(),
            "--convertmc",
            convertmc().to_str().unwrap(),
            "--work-root",
            work.to_str().unwrap(),
        ],
    );
    let (mut sims, token) = tests::login(&addr, "alice", "pw-alice").await.unwrap();
    let generated = sim_inputs::testdata::pymchelper_data("shieldhit/generated");
    let mut dims_seen = [0usize; 4];
    for kind in ["cyl", "msh", "plane", "zone", "geomap"] {
        let dir = generated.join("single").join(kind);
        let mut stems: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .filter_map(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.strip_suffix(".bdo").map(str::to_string)
            })
            .collect();
        stems.sort();
        let detect: String = stems
            .iter()
            .map(|s| format!("Output\n    Filename {s}.bdo\n    Geo G\n    Quantity Dose\n\n"))
            .collect();
        let mut files: HashMap<String, String> = ["beam.dat", "geo.dat", "mat.dat"]
            .iter()
            .map(|f| {
                let text = std::fs::read_to_string(generated.join(f)).unwrap();
                (f.to_string(), text)
            })
            .collect();
        files.insert("detect.dat".into(), detect);
        files.insert(
            "standin.json".into(),
            serde_json::json!({"replay": dir}).to_string(),
        );
        let request = pb::SubmitRequest {
            title: format!("shapes {kind}"),
            sim_type: pb::SimType::Shieldhit as i32,
            input: Some(pb::submit_request::Input::Files(pb::InputFiles { files })),
            ntasks: 1,
            primaries: 1000,
            platform: None,
        };
        let job_id = tests::submit(&mut sims, &token, request).await.unwrap();
        let state = tests::wait_final(&mut sims, &job_id, &token).await;
        assert_eq!(state, pb::JobState::Completed, "{kind}");

        let mut stream = tests::get_results(&mut sims, &job_id, &token)
            .await
            .unwrap();
        let mut got: HashMap<(String, i32), (pb::PageInfo, Vec<f64>)> = HashMap::new();
        let mut current = None;
        while let Some(c) = stream.next().await {
            let c = c.unwrap();
            let key = (c.estimator.clone(), c.page_number);
            if let Some(info) = c.page {
                got.insert(key.clone(), (info, Vec::new()));
                current = Some(key.clone());
            }
            assert_eq!(current.as_ref(), Some(&key));
            got.get_mut(&key).unwrap().1.extend(c.values);
        }
        for stem in &stems {
            let want = reference(&dir.join(format!("{stem}.bdo")));
            for (n, (dims, axes, values)) in want.iter().enumerate() {
                let (info, vals) = got
                    .get(&(stem.clone(), n as i32))
                    .unwrap_or_else(|| panic!("{kind}/{stem} page {n} is missing"));
                assert_eq!(info.dimension, *dims, "{kind}/{stem}");
                // A one-task mean is Σ N·x / Σ N: within an ulp or two of x.
                assert_eq!(vals.len(), values.len(), "{kind}/{stem}");
                for (a, b) in vals.iter().zip(values) {
                    assert!(
                        a == b || ((a - b) / b).abs() <= 1e-12,
                        "{kind}/{stem}: {a} vs {b}"
                    );
                }
                assert_eq!(info.axes.len(), axes.len(), "{kind}/{stem}");
                for (a, (name, unit, centres)) in info.axes.iter().zip(axes) {
                    assert_eq!((&a.name, &a.unit), (name, unit), "{kind}/{stem}");
                    assert_eq!(&a.centers, centres, "{kind}/{stem}: axis centres");
                    assert_eq!(a.bins as usize, centres.len());
                }
                dims_seen[(*dims as usize).min(3)] += 1;
            }
        }
        assert_eq!(
            got.len(),
            stems
                .iter()
                .map(|s| reference(&dir.join(format!("{s}.bdo"))).len())
                .sum::<usize>(),
            "{kind}: no extra pages"
        );
    }
    assert!(
        dims_seen.iter().all(|&n| n > 0),
        "0-D to 3-D all seen: {dims_seen:?}"
    );
    let _ = std::fs::remove_dir_all(work);
}
