//! Read-only calls of cluster-scoped objects (namespaces, nodes), of events, and of the kinds
//! kubegate only lists (`kubectl get all`'s StatefulSets, DaemonSets, Jobs, CronJobs and
//! HorizontalPodAutoscalers), straight from the API server.

use k8s_openapi::api::core::v1::{Event, Namespace, Node};
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

    /// A namespace's events (core/v1, which the API server also serves as events.k8s.io/v1),
    /// those matching `fields` (a field selector such as `involvedObject.uid=…,type=Warning`).
    pub async fn list_events(&self, ns: &str, fields: &str) -> Result<Vec<Event>, ClusterError> {
        let api: Api<Event> = Api::namespaced(self.client()?, ns);
        let params = ListParams::default().fields(fields);
        Ok(self.call("list", api.list(&params)).await?.items)
    }

    /// A namespace's objects of a kind kubegate reads only for `get all`, matching `selector`.
    pub async fn list_plain<K>(
        &self,
        ns: &str,
        selector: Option<&str>,
    ) -> Result<Vec<K>, ClusterError>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
        <K as kube::Resource>::DynamicType: Default,
    {
        let api: Api<K> = Api::namespaced(self.client()?, ns);
        let mut params = ListParams::default();
        if let Some(s) = selector {
            params = params.labels(s);
        }
        Ok(self.call("list", api.list(&params)).await?.items)
    }
}
