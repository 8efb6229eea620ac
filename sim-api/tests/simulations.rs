//! Who may do what to which simulation: the authorization matrix of SimulationService.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::{authed, code_of, simple_submit, spawn_app};
use proto::v1::*;
use tonic::Code;

#[tokio::test]
async fn authorization_matrix() {
    let app = spawn_app().await;
    let owner = app.user_token("owner", false).await;
    let other = app.user_token("other", false).await;
    let admin = app.user_token("root", true).await;
    // An expired access token of the owner.
    let uid: i64 = {
        let mut c = app.db.conn().await;
        db::users::get(&mut c, "owner", db::enums::AuthProvider::Local)
            .await
            .unwrap()
            .id
    };
    let expired = "expired-token-value";
    app.sql(&format!(
        "INSERT INTO auth_tokens (user_id, token_hash, kind, session_id, expires_at) \
         VALUES ({uid}, sha256('{expired}'::bytea), 'access', gen_random_uuid(), now() - interval '1 minute')"
    ))
    .await;
    let job = app.submit(&owner, simple_submit()).await.unwrap();

    // (caller name, token) — None is anonymous.
    let callers: [(&str, Option<&str>); 6] = [
        ("anonymous", None),
        ("wrong", Some("not-a-real-token")),
        ("expired", Some(expired)),
        ("other", Some(&other)),
        ("owner", Some(&owner)),
        ("admin", Some(&admin)),
    ];
    fn req<T>(tok: Option<&str>, m: T) -> tonic::Request<T> {
        match tok {
            Some(t) => authed(m, t),
            None => tonic::Request::new(m),
        }
    }
    use Code::*;
    // rpc -> expected code per caller, in the order above.
    let table: Vec<(&str, [Code; 6])> = vec![
        (
            "Get",
            [
                Unauthenticated,
                Unauthenticated,
                Unauthenticated,
                NotFound,
                Ok,
                Ok,
            ],
        ),
        (
            "GetInput",
            [
                Unauthenticated,
                Unauthenticated,
                Unauthenticated,
                NotFound,
                Ok,
                Ok,
            ],
        ),
        (
            "List",
            [
                Unauthenticated,
                Unauthenticated,
                Unauthenticated,
                Ok,
                Ok,
                Ok,
            ],
        ),
        (
            "Submit",
            [
                Unauthenticated,
                Unauthenticated,
                Unauthenticated,
                Ok,
                Ok,
                Ok,
            ],
        ),
        (
            "ClusterList",
            [
                Unauthenticated,
                Unauthenticated,
                Unauthenticated,
                Ok,
                Ok,
                Ok,
            ],
        ),
        (
            "WhoAmI",
            [
                Unauthenticated,
                Unauthenticated,
                Unauthenticated,
                Ok,
                Ok,
                Ok,
            ],
        ),
        (
            "Watch",
            [
                Unauthenticated,
                Unauthenticated,
                Unauthenticated,
                NotFound,
                Ok,
                Ok,
            ],
        ),
        (
            "ListEstimators",
            [
                Unauthenticated,
                Unauthenticated,
                Unauthenticated,
                NotFound,
                Ok,
                Ok,
            ],
        ),
        (
            "GetLogs",
            [
                Unauthenticated,
                Unauthenticated,
                Unauthenticated,
                NotFound,
                Ok,
                Ok,
            ],
        ),
        // No task has finished yet: nothing to read, for those who can see it.
        (
            "GetResults",
            [
                Unauthenticated,
                Unauthenticated,
                Unauthenticated,
                NotFound,
                FailedPrecondition,
                FailedPrecondition,
            ],
        ),
        // Pending: refused for those who can see it.
        (
            "Delete",
            [
                Unauthenticated,
                Unauthenticated,
                Unauthenticated,
                NotFound,
                FailedPrecondition,
                FailedPrecondition,
            ],
        ),
        // The owner cancels it, so the admin then finds it finished.
        (
            "Cancel",
            [
                Unauthenticated,
                Unauthenticated,
                Unauthenticated,
                NotFound,
                Ok,
                FailedPrecondition,
            ],
        ),
    ];
    for (rpc, expected) in table {
        for ((name, tok), want) in callers.iter().zip(expected) {
            let mut sims = app.sims();
            let got = match rpc {
                "Get" => {
                    code_of(
                        sims.get(req(
                            *tok,
                            GetRequest {
                                job_id: job.clone(),
                            },
                        ))
                        .await,
                    )
                    .await
                }
                "GetInput" => {
                    code_of(
                        sims.get_input(req(
                            *tok,
                            GetInputRequest {
                                job_id: job.clone(),
                            },
                        ))
                        .await,
                    )
                    .await
                }
                "List" => code_of(sims.list(req(*tok, ListRequest::default())).await).await,
                "Submit" => code_of(sims.submit(req(*tok, simple_submit())).await).await,
                "ClusterList" => {
                    code_of(
                        proto::v1::cluster_service_client::ClusterServiceClient::new(
                            app.channel.clone(),
                        )
                        .list(req(*tok, ListClustersRequest {}))
                        .await,
                    )
                    .await
                }
                "WhoAmI" => code_of(app.auth().who_am_i(req(*tok, WhoAmIRequest {})).await).await,
                "Delete" => {
                    code_of(
                        sims.delete(req(
                            *tok,
                            DeleteRequest {
                                job_id: job.clone(),
                            },
                        ))
                        .await,
                    )
                    .await
                }
                "Watch" => {
                    let r = sims
                        .watch(req(
                            *tok,
                            WatchRequest {
                                job_id: job.clone(),
                            },
                        ))
                        .await;
                    code_of(r).await
                }
                "ListEstimators" => {
                    let r = sims
                        .list_estimators(req(
                            *tok,
                            ListEstimatorsRequest {
                                job_id: job.clone(),
                            },
                        ))
                        .await;
                    code_of(r).await
                }
                "GetLogs" => {
                    let r = sims
                        .get_logs(req(
                            *tok,
                            GetLogsRequest {
                                job_id: job.clone(),
                            },
                        ))
                        .await;
                    code_of(r).await
                }
                "GetResults" => {
                    let r = sims
                        .get_results(req(
                            *tok,
                            GetResultsRequest {
                                job_id: job.clone(),
                                ..Default::default()
                            },
                        ))
                        .await;
                    code_of(r).await
                }
                "Cancel" => {
                    code_of(
                        sims.cancel(req(
                            *tok,
                            CancelRequest {
                                job_id: job.clone(),
                            },
                        ))
                        .await,
                    )
                    .await
                }
                _ => unreachable!(),
            };
            assert_eq!(got, want, "{rpc} as {name}");
        }
    }
    // Visibility in List: the other user sees none of the owner's, the admin sees all.
    let n = |tok: String| {
        let mut s = app.sims();
        async move {
            s.list(authed(ListRequest::default(), &tok))
                .await
                .unwrap()
                .into_inner()
                .total_count
        }
    };
    assert_eq!(n(owner.clone()).await, 2);
    assert_eq!(n(other.clone()).await, 1);
    assert_eq!(n(admin.clone()).await, 4);
}
