//! Read-only calls of cluster-scoped objects: namespaces, nodes.

use k8s_openapi::api::core::v1::{Namespace, Node};
use kube::Api;
use kube::api::ListParams;

use super::error::ClusterError;
use super::registry::Cluster;

impl Cluster {
    pub async fn list_namespaces(&self) -> Result<Vec<Namespace>, ClusterError> {
        let api: Api<Namespace> = Api::all(self.client()?);
        Ok(self
            .call("list", api.list(&ListParams::default()))
            .await?
            .items)
    }

    pub async fn list_nodes(&self) -> Result<Vec<Node>, ClusterError> {
        let api: Api<Node> = Api::all(self.client()?);
        Ok(self
            .call("list", api.list(&ListParams::default()))
            .await?
            .items)
    }
}
