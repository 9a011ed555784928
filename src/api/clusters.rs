//! Clusters and their cluster-scoped reads: `kubectl config get-contexts` + `kubectl version` +
//! `kubectl cluster-info`, `kubectl get namespaces`, `kubectl get nodes`.

use std::collections::BTreeMap;

use actix_web::web;
use futures::future::join_all;
use k8s_openapi::api::core::v1::{Namespace, Node};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde::Serialize;
use utoipa::ToSchema;

use super::problem::{ApiError, Problem};
use crate::auth::Principal;
use crate::cluster::{self, ClusterSource, Probe, ServerVersion};
use crate::gateway::{self, AppState, ClusterFound, ClusterRead};

/// A cluster kubegate can act on.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Cluster)]
#[schema(example = json!({"name": "dev", "server": "https://10.0.0.1:6443/", "source": "kubeconfig", "defaultNamespace": "default", "reachable": true, "version": {"gitVersion": "v1.33.2", "major": "1", "minor": "33", "platform": "linux/amd64", "goVersion": "go1.24.4", "buildDate": "2026-06-01T00:00:00Z"}}))]
pub struct ClusterView {
    /// The name used in URLs (the kubeconfig context name, or the in-cluster name).
    #[schema(example = "kind-dev")]
    pub name: String,
    /// API server URL.
    #[schema(example = "https://127.0.0.1:6443/")]
    pub server: String,
    pub source: ClusterSourceView,
    /// The namespace of the kubeconfig context.
    pub default_namespace: String,
    /// Whether the API server answered `/version` just now.
    pub reachable: bool,
    /// The API server's version, when reachable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<KubernetesVersion>,
    /// Why the cluster is not reachable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Where the cluster's connection settings come from.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ClusterSource)]
#[schema(example = "kubeconfig")]
pub enum ClusterSourceView {
    Kubeconfig,
    InCluster,
}

/// The API server's version (`kubectl version`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"gitVersion": "v1.33.2", "major": "1", "minor": "33", "platform": "linux/amd64", "goVersion": "go1.24.4", "buildDate": "2026-06-01T00:00:00Z"}))]
pub struct KubernetesVersion {
    #[schema(example = "v1.33.1")]
    pub git_version: String,
    pub major: String,
    pub minor: String,
    pub platform: String,
    pub go_version: String,
    pub build_date: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"items": [{"name": "dev", "server": "https://10.0.0.1:6443/", "source": "kubeconfig", "defaultNamespace": "default", "reachable": true, "version": {"gitVersion": "v1.33.2", "major": "1", "minor": "33", "platform": "linux/amd64", "goVersion": "go1.24.4", "buildDate": "2026-06-01T00:00:00Z"}}]}))]
pub struct ClusterList {
    pub items: Vec<ClusterView>,
}

/// A namespace (`kubectl get namespaces`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Namespace)]
#[schema(example = json!({"name": "shop", "phase": "Active", "labels": {"kubernetes.io/metadata.name": "shop"}, "createdAt": "2026-11-01T12:00:00Z"}))]
pub struct NamespaceView {
    pub name: String,
    /// `Active` or `Terminating`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// Creation time (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"items": [{"name": "default", "phase": "Active", "labels": {}}]}))]
pub struct NamespaceList {
    pub items: Vec<NamespaceView>,
}

/// A node (`kubectl get nodes -o wide`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Node)]
#[schema(example = json!({"name": "node-1", "status": "Ready", "ready": true, "unschedulable": false, "roles": ["control-plane"], "kubeletVersion": "v1.33.2", "internalIp": "10.0.0.10", "osImage": "Debian GNU/Linux 12 (bookworm)", "kernelVersion": "6.1.0", "containerRuntime": "containerd://1.7.24", "capacity": {"cpu": "2", "memory": "8129508Ki", "pods": "110"}}))]
pub struct NodeView {
    pub name: String,
    /// kubectl's STATUS column: `Ready`, `NotReady` or `Unknown`, with `,SchedulingDisabled`
    /// appended when cordoned.
    #[schema(example = "Ready")]
    pub status: String,
    /// The `Ready` condition is `True`.
    pub ready: bool,
    /// Cordoned (`spec.unschedulable`).
    pub unschedulable: bool,
    /// From the `node-role.kubernetes.io/<role>` labels.
    pub roles: Vec<String>,
    pub kubelet_version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub internal_ip: Option<String>,
    pub os_image: String,
    pub kernel_version: String,
    pub container_runtime: String,
    /// Creation time (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// Capacity by resource name (`cpu`, `memory`, `pods`, ...).
    pub capacity: BTreeMap<String, String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"items": []}))]
pub struct NodeList {
    pub items: Vec<NodeView>,
}

fn view(c: &cluster::Cluster, probe: Probe) -> ClusterView {
    ClusterView {
        name: c.name.clone(),
        server: c.server.clone(),
        source: match c.source {
            ClusterSource::Kubeconfig => ClusterSourceView::Kubeconfig,
            ClusterSource::InCluster => ClusterSourceView::InCluster,
        },
        default_namespace: c.default_namespace.clone(),
        reachable: probe.error.is_none(),
        version: probe.version.map(KubernetesVersion::from),
        error: probe.error,
    }
}

impl From<ServerVersion> for KubernetesVersion {
    fn from(v: ServerVersion) -> Self {
        Self {
            git_version: v.git_version,
            major: v.major,
            minor: v.minor,
            platform: v.platform,
            go_version: v.go_version,
            build_date: v.build_date,
        }
    }
}

/// List the clusters, each probed for reachability and version.
#[utoipa::path(
    get, path = "/v1/clusters", tag = "clusters", operation_id = "list_clusters",
    responses((status = 200, description = "The configured clusters", body = ClusterList))
)]
pub async fn list_clusters(
    state: web::Data<AppState>,
    principal: Principal,
) -> web::Json<ClusterList> {
    let visible = state
        .clusters
        .iter()
        .filter(|c| state.auth.sees_cluster(&principal, &c.name));
    let items = join_all(visible.map(|c| async move { view(c, c.probe().await) })).await;
    web::Json(ClusterList { items })
}

/// Get one cluster: API server URL, reachability and version.
#[utoipa::path(
    get, path = "/v1/clusters/{cluster}", tag = "clusters", operation_id = "get_cluster",
    params(("cluster" = String, Path, description = "Cluster name")),
    responses(
        (status = 200, description = "The cluster; `reachable` is false when its API server does not answer", body = ClusterView),
        (status = 404, description = "No cluster of that name", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_cluster(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<String>,
) -> Result<web::Json<ClusterFoundView>, ApiError> {
    read(&state, &principal, &path, ClusterRead::Info).await
}

/// List the cluster's namespaces.
#[utoipa::path(
    get, path = "/v1/clusters/{cluster}/namespaces", tag = "clusters", operation_id = "list_namespaces",
    params(("cluster" = String, Path, description = "Cluster name")),
    responses(
        (status = 200, description = "The namespaces", body = NamespaceList),
        (status = 404, description = "No cluster of that name", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "The cluster refused kubegate's credentials or answered unexpectedly", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The cluster is unreachable, throttling, or not usable", body = Problem, content_type = "application/problem+json"),
        (status = 504, description = "The cluster did not answer in time", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_namespaces(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<String>,
) -> Result<web::Json<ClusterFoundView>, ApiError> {
    read(&state, &principal, &path, ClusterRead::Namespaces).await
}

/// List the cluster's nodes.
#[utoipa::path(
    get, path = "/v1/clusters/{cluster}/nodes", tag = "clusters", operation_id = "list_nodes",
    params(("cluster" = String, Path, description = "Cluster name")),
    responses(
        (status = 200, description = "The nodes", body = NodeList),
        (status = 404, description = "No cluster of that name", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "The cluster refused kubegate's credentials or answered unexpectedly", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The cluster is unreachable, throttling, or not usable", body = Problem, content_type = "application/problem+json"),
        (status = 504, description = "The cluster did not answer in time", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_nodes(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<String>,
) -> Result<web::Json<ClusterFoundView>, ApiError> {
    read(&state, &principal, &path, ClusterRead::Nodes).await
}

async fn read(
    state: &AppState,
    principal: &Principal,
    cluster: &str,
    read: ClusterRead,
) -> Result<web::Json<ClusterFoundView>, ApiError> {
    let found = gateway::read_cluster(state, principal, cluster, read).await?;
    Ok(web::Json(found.into()))
}

/// The answer to a read of a cluster, as its REST operation documents it.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum ClusterFoundView {
    Cluster(Box<ClusterView>),
    Namespaces(NamespaceList),
    Nodes(NodeList),
}

impl From<ClusterFound<'_>> for ClusterFoundView {
    fn from(found: ClusterFound<'_>) -> Self {
        match found {
            ClusterFound::Info { cluster, probe } => Self::Cluster(Box::new(view(cluster, probe))),
            ClusterFound::Namespaces(ns) => Self::Namespaces(NamespaceList {
                items: ns.into_iter().map(NamespaceView::from).collect(),
            }),
            ClusterFound::Nodes(nodes) => Self::Nodes(NodeList {
                items: nodes.into_iter().map(NodeView::from).collect(),
            }),
        }
    }
}

pub(crate) fn rfc3339(t: &Time) -> String {
    t.0.to_string()
}

impl From<Namespace> for NamespaceView {
    fn from(ns: Namespace) -> Self {
        Self {
            name: ns.metadata.name.unwrap_or_default(),
            phase: ns.status.and_then(|s| s.phase),
            labels: ns.metadata.labels.unwrap_or_default(),
            created_at: ns.metadata.creation_timestamp.as_ref().map(rfc3339),
        }
    }
}

impl From<Node> for NodeView {
    fn from(node: Node) -> Self {
        let labels = node.metadata.labels.unwrap_or_default();
        // kubectl's printer: roles from node-role.kubernetes.io/<role> and kubernetes.io/role.
        let mut roles: Vec<String> = labels
            .iter()
            .filter_map(|(k, v)| {
                k.strip_prefix("node-role.kubernetes.io/")
                    .filter(|r| !r.is_empty())
                    .map(str::to_owned)
                    .or_else(|| (k == "kubernetes.io/role" && !v.is_empty()).then(|| v.clone()))
            })
            .collect();
        roles.sort();
        roles.dedup();
        let unschedulable = node
            .spec
            .as_ref()
            .and_then(|s| s.unschedulable)
            .unwrap_or(false);
        let status = node.status.unwrap_or_default();
        let ready_condition = status
            .conditions
            .as_ref()
            .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
            .map(|c| c.status.clone());
        let ready = ready_condition.as_deref() == Some("True");
        let mut status_text = match ready_condition.as_deref() {
            Some("True") => "Ready".to_owned(),
            Some("False") => "NotReady".to_owned(),
            _ => "Unknown".to_owned(),
        };
        if unschedulable {
            status_text.push_str(",SchedulingDisabled");
        }
        let info = status.node_info.unwrap_or_default();
        let internal_ip = status
            .addresses
            .unwrap_or_default()
            .into_iter()
            .find(|a| a.type_ == "InternalIP")
            .map(|a| a.address);
        Self {
            name: node.metadata.name.unwrap_or_default(),
            status: status_text,
            ready,
            unschedulable,
            roles,
            kubelet_version: info.kubelet_version,
            internal_ip,
            os_image: info.os_image,
            kernel_version: info.kernel_version,
            container_runtime: info.container_runtime_version,
            created_at: node.metadata.creation_timestamp.as_ref().map(rfc3339),
            capacity: status
                .capacity
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.0))
                .collect(),
        }
    }
}
