//! ClusterService: the clusters users may send batch simulations to.

use crate::auth::authenticate;
use crate::error::{conn, db_status};
use crate::AppState;
use proto::v1::cluster_service_server::ClusterService;
use proto::v1::{Cluster, ListClustersRequest, ListClustersResponse};
use tonic::{Request, Response, Status};

/// The ClusterService implementation.
#[derive(Clone)]
pub struct ClusterSvc {
    state: AppState,
}

impl ClusterSvc {
    /// A service over the shared state.
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

#[tonic::async_trait]
impl ClusterService for ClusterSvc {
    async fn list(
        &self,
        request: Request<ListClustersRequest>,
    ) -> Result<Response<ListClustersResponse>, Status> {
        authenticate(&self.state, &request).await?;
        let mut c = conn(&self.state.pool).await?;
        let clusters = db::clusters::list(&mut c).await.map_err(db_status)?;
        // Only the name and partition: hosts, SSH users and key paths stay private.
        Ok(Response::new(ListClustersResponse {
            clusters: clusters
                .into_iter()
                .map(|c| Cluster {
                    name: c.name,
                    partition: c.partition.unwrap_or_default(),
                })
                .collect(),
        }))
    }
}
