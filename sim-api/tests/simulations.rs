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
    /// The codes for the three callers without a valid token (always UNAUTHENTICATED), then
    /// for the other user, the owner and the admin.
    fn row(other: Code, owner: Code, admin: Code) -> [Code; 6] {
        [
            Unauthenticated,
            Unauthenticated,
            Unauthenticated,
            other,
            owner,
            admin,
        ]
    }
    // Hidden from the other user; open to every signed-in user.
    let (hidden, open) = (row(NotFound, Ok, Ok), row(Ok, Ok, Ok));
    let refused = row(NotFound, FailedPrecondition, FailedPrecondition);
    // rpc -> expected code per caller, in the order above.
    let table: Vec<(&str, [Code; 6])> = vec![
        ("Get", hidden),
        ("GetInput", hidden),
        ("List", open),
        ("Submit", open),
        ("ClusterList", open),
        ("WhoAmI", open),
        ("Watch", hidden),
        ("ListEstimators", hidden),
        ("GetLogs", hidden),
        // No task has finished yet: nothing to read, for those who can see it.
        ("GetResults", refused),
        // Pending: refused for those who can see it.
        ("Delete", refused),
        // The owner cancels it, so the admin then finds it finished.
        ("Cancel", row(NotFound, Ok, FailedPrecondition)),
    ];
    for (rpc, expected) in table {
        for ((name, tok), want) in callers.iter().zip(expected) {
            let mut sims = app.sims();
            let job_id = job.clone();
            // The code of `method` called with `msg` as this caller.
            macro_rules! call {
                ($method:ident, $msg:expr) => {
                    code_of(sims.$method(req(*tok, $msg)).await).await
                };
            }
            let got = match rpc {
                "Get" => call!(get, GetRequest { job_id }),
                "GetInput" => call!(get_input, GetInputRequest { job_id }),
                "List" => call!(list, ListRequest::default()),
                "Submit" => call!(submit, simple_submit()),
                "ClusterList" => {
                    let mut clusters = proto::v1::cluster_service_client::ClusterServiceClient::new(
                        app.channel.clone(),
                    );
                    code_of(clusters.list(req(*tok, ListClustersRequest {})).await).await
                }
                "WhoAmI" => code_of(app.auth().who_am_i(req(*tok, WhoAmIRequest {})).await).await,
                "Delete" => call!(delete, DeleteRequest { job_id }),
                "Watch" => call!(watch, WatchRequest { job_id }),
                "ListEstimators" => call!(list_estimators, ListEstimatorsRequest { job_id }),
                "GetLogs" => call!(get_logs, GetLogsRequest { job_id }),
                "GetResults" => call!(
                    get_results,
                    GetResultsRequest {
                        job_id,
                        ..Default::default()
                    }
                ),
                "Cancel" => call!(cancel, CancelRequest { job_id }),
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
