//! Submit of a batch simulation: one task is one element of the cluster's array job, so more
//! tasks than the cluster's `max_array_size` are refused before anything is stored.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::{simple_submit, spawn_app_as};
use proto::v1::submit_request::Platform;
use proto::v1::{BatchPlatform, SubmitRequest};
use tonic::Code;

/// A batch Submit of `ntasks` tasks (and as many primaries) to cluster `small`.
fn batch_submit(ntasks: i32) -> SubmitRequest {
    SubmitRequest {
        ntasks,
        primaries: 10 * i64::from(ntasks),
        platform: Some(Platform::Batch(BatchPlatform {
            cluster: "small".into(),
            sbatch_options: vec!["--time=01:00:00".into()],
        })),
        ..simple_submit()
    }
}

/// A new app with cluster `small` of `max_array_size`, and a user's token.
async fn app_with_small_cluster(max_array_size: i32) -> (common::App, String) {
    let (app, tok) = spawn_app_as("alice").await;
    app.sql(&format!(
        "INSERT INTO clusters (name, work_dir, max_array_size) VALUES ('small', '/w', {max_array_size})"
    ))
    .await;
    (app, tok)
}

#[tokio::test]
async fn ntasks_over_the_clusters_max_array_size_is_refused() {
    let (app, tok) = app_with_small_cluster(3).await;

    let err = app.submit(&tok, batch_submit(4)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(
        err.message().contains("max_array_size 3"),
        "the message names the limit: {}",
        err.message()
    );
    assert!(err.message().contains("\"small\""), "{}", err.message());
    assert_eq!(app.sql_count("SELECT count(*) FROM simulations").await, 0);
    assert_eq!(app.sql_count("SELECT count(*) FROM tasks").await, 0);

    // The limit itself is fine, and direct runs do not look at any cluster.
    app.submit(&tok, batch_submit(3)).await.unwrap();
    let direct = SubmitRequest {
        ntasks: 4,
        ..simple_submit()
    };
    app.submit(&tok, direct).await.unwrap();
    assert_eq!(app.sql_count("SELECT count(*) FROM simulations").await, 2);
}

#[tokio::test]
async fn the_limit_is_read_at_each_submit() {
    let (app, tok) = app_with_small_cluster(1).await;
    let err = app.submit(&tok, batch_submit(2)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");

    app.sql("UPDATE clusters SET max_array_size = 2 WHERE name = 'small'")
        .await;
    app.submit(&tok, batch_submit(2)).await.unwrap();
    assert_eq!(app.sql_count("SELECT count(*) FROM simulations").await, 1);
}
