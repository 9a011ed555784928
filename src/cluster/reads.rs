//! Read-only calls: server version, namespaces, nodes.

use k8s_openapi::api::core::v1::{Namespace, Node};
use kube::Api;
use kube::api::ListParams;

use super::{Cluster, ClusterError};

/// The API server's version, as `kubectl version` shows it.
#[derive(Debug, Clone)]
pub struct ServerVersion {
    pub git_version: String,
    pub major: String,
    pub minor: String,
    pub platform: String,
    pub go_version: String,
    pub build_date: String,
}

impl From<k8s_openapi::apimachinery::pkg::version::Info> for ServerVersion {
    fn from(i: k8s_openapi::apimachinery::pkg::version::Info) -> Self {
        Self {
            git_version: i.git_version,
            major: i.major,
            minor: i.minor,
            platform: i.platform,
            go_version: i.go_version,
            build_date: i.build_date,
        }
    }
}

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
