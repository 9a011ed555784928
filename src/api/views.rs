//! Response types for namespaced resources, shaped like what kubectl shows (get, describe, rollout
//! status/history), with conversions from the Kubernetes objects.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    DaemonSet, Deployment, DeploymentCondition, ReplicaSet, StatefulSet,
};
use k8s_openapi::api::autoscaling::v2::{HorizontalPodAutoscaler, MetricSpec, MetricStatus};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Event, Pod, PodCondition, PodTemplateSpec, Service};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Serialize;
use utoipa::ToSchema;

use super::clusters::rfc3339;
use crate::cluster::rollout::{self, CHANGE_CAUSE, PodIssue, Revision};
use crate::cluster::{RolloutReport, Verdict, selector_string};
use crate::gateway::Found;

/// A container's image (`kubectl get deployments -o wide` IMAGES).
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"container": "web", "image": "nginx:1.27"}))]
pub struct ContainerImage {
    pub container: String,
    pub image: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"desired": 3, "updated": 1, "ready": 3, "available": 3, "unavailable": 0}))]
pub struct ReplicaCounts {
    /// `spec.replicas`.
    pub desired: i32,
    pub updated: i32,
    pub ready: i32,
    pub available: i32,
    pub unavailable: i32,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable", "message": "ReplicaSet \"web-5d8c7b9f4c\" has successfully progressed.", "lastUpdateTime": "2026-11-26T09:30:05Z"}))]
pub struct Condition {
    #[serde(rename = "type")]
    pub condition_type: String,
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_update_time: Option<String>,
}

impl From<DeploymentCondition> for Condition {
    fn from(c: DeploymentCondition) -> Self {
        Self {
            condition_type: c.type_,
            status: c.status,
            reason: c.reason,
            message: c.message,
            last_update_time: c.last_update_time.as_ref().map(rfc3339),
        }
    }
}

/// A pod's condition (pods record no update time, only transitions).
impl From<PodCondition> for Condition {
    fn from(c: PodCondition) -> Self {
        Self {
            condition_type: c.type_,
            status: c.status,
            reason: c.reason,
            message: c.message,
            last_update_time: None,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"type": "RollingUpdate", "maxSurge": "25%", "maxUnavailable": "25%"}))]
pub struct Strategy {
    #[serde(rename = "type")]
    pub strategy_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_surge: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<String>,
}

/// A Deployment (`kubectl describe deployment`, in JSON).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Deployment)]
#[schema(example = json!({"name": "web", "namespace": "shop", "revision": 3, "replicas": {"desired": 3, "updated": 3, "ready": 3, "available": 3, "unavailable": 0}, "images": [{"container": "web", "image": "nginx:1.27"}], "selector": "app=web", "strategy": {"type": "RollingUpdate", "maxSurge": "25%", "maxUnavailable": "25%"}, "paused": false, "generation": 4, "observedGeneration": 4, "conditions": [], "changeCause": "kubegate set image web web=nginx:1.27 by alice: CVE fix", "labels": {"app": "web"}, "annotations": {}, "createdAt": "2026-11-20T08:00:00Z"}))]
pub struct DeploymentView {
    pub name: String,
    pub namespace: String,
    /// The current revision (`deployment.kubernetes.io/revision`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<i64>,
    pub replicas: ReplicaCounts,
    pub images: Vec<ContainerImage>,
    /// The pod selector, in label selector syntax.
    pub selector: String,
    pub strategy: Strategy,
    pub paused: bool,
    pub generation: i64,
    pub observed_generation: i64,
    pub conditions: Vec<Condition>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change_cause: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"items": []}))]
pub struct DeploymentList {
    pub items: Vec<DeploymentView>,
}

fn images(t: Option<&PodTemplateSpec>) -> Vec<ContainerImage> {
    t.and_then(|t| t.spec.as_ref())
        .map(|s| {
            s.containers
                .iter()
                .map(|c| ContainerImage {
                    container: c.name.clone(),
                    image: c.image.clone().unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn int_or_string(v: &IntOrString) -> String {
    match v {
        IntOrString::Int(i) => i.to_string(),
        IntOrString::String(s) => s.clone(),
    }
}

impl From<&Deployment> for DeploymentView {
    fn from(d: &Deployment) -> Self {
        let spec = d.spec.clone().unwrap_or_default();
        let status = d.status.clone().unwrap_or_default();
        let desired = spec.replicas.unwrap_or(1);
        let strategy = spec.strategy.clone().unwrap_or_default();
        let ru = strategy.rolling_update.unwrap_or_default();
        let annotations = d.metadata.annotations.clone().unwrap_or_default();
        Self {
            name: d.metadata.name.clone().unwrap_or_default(),
            namespace: d.metadata.namespace.clone().unwrap_or_default(),
            revision: rollout::deployment_revision(d),
            replicas: ReplicaCounts {
                desired,
                updated: status.updated_replicas.unwrap_or(0),
                ready: status.ready_replicas.unwrap_or(0),
                available: status.available_replicas.unwrap_or(0),
                unavailable: status.unavailable_replicas.unwrap_or(0),
            },
            images: images(Some(&spec.template)),
            selector: selector_string(&spec.selector),
            strategy: Strategy {
                strategy_type: strategy.type_.unwrap_or_else(|| "RollingUpdate".into()),
                max_surge: ru.max_surge.as_ref().map(int_or_string),
                max_unavailable: ru.max_unavailable.as_ref().map(int_or_string),
            },
            paused: spec.paused.unwrap_or(false),
            generation: d.metadata.generation.unwrap_or(0),
            observed_generation: status.observed_generation.unwrap_or(0),
            conditions: status
                .conditions
                .unwrap_or_default()
                .into_iter()
                .map(Condition::from)
                .collect(),
            change_cause: annotations.get(CHANGE_CAUSE).cloned(),
            labels: d.metadata.labels.clone().unwrap_or_default(),
            annotations,
            created_at: d.metadata.creation_timestamp.as_ref().map(rfc3339),
        }
    }
}

/// A pod that keeps the rollout from progressing (or a ReplicaSet that cannot create its
/// pods), seen before kubectl would say so.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"pod": "web-7c9d6f5b8-kq2mz", "container": "web", "reason": "ImagePullBackOff", "message": "Back-off pulling image \"nginx:1.27-typo\""}))]
pub struct PodIssueView {
    /// The pod; for `FailedCreate`, the ReplicaSet whose pods cannot be created.
    pub pod: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// `ImagePullBackOff`, `ErrImagePull`, `ErrImageNeverPull`, `CrashLoopBackOff`,
    /// `CreateContainerConfigError`, `CreateContainerError`, `InvalidImageName`, `FailedCreate`
    /// (a quota or an admission check refuses the pods) (each ends a wait as failed) or
    /// `Unschedulable` (reported; the wait goes on).
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl From<&PodIssue> for PodIssueView {
    fn from(i: &PodIssue) -> Self {
        Self {
            pod: i.pod.clone(),
            container: i.container.clone(),
            reason: i.reason.clone(),
            message: i.message.clone(),
        }
    }
}

/// `kubectl rollout status`, with the numbers and early pod issues.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = RolloutStatus)]
#[schema(example = json!({"message": "Waiting for deployment \"web\" rollout to finish: 2 of 3 updated replicas are available...", "done": false, "failed": false, "timedOut": false, "generation": 5, "observedGeneration": 5, "revision": 4, "replicas": {"desired": 3, "updated": 3, "ready": 2, "available": 2, "unavailable": 1}, "issues": []}))]
pub struct RolloutView {
    /// kubectl's message, e.g. `deployment "web" successfully rolled out`.
    pub message: String,
    /// The rollout is complete.
    pub done: bool,
    /// The rollout failed: it exceeded its progress deadline, or a wait ended on a pod that
    /// will not start (`reason`).
    pub failed: bool,
    /// A wait ended at its timeout before the rollout finished.
    pub timed_out: bool,
    /// How a wait ended: `succeeded`, `failed`, `timeout` or `deleted` (absent without a wait).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verdict: Option<String>,
    /// Why it failed: `ProgressDeadlineExceeded`, a pod's waiting reason (`ErrImagePull`,
    /// `ImagePullBackOff`, `CrashLoopBackOff`, ...), or `FailedCreate` (pods refused by a quota or
    /// an admission check); a pod the scheduler cannot place is listed in `issues` but does not
    /// end a wait.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub generation: i64,
    pub observed_generation: i64,
    /// The Deployment's revision (`deployment.kubernetes.io/revision`) as the controller has
    /// numbered it so far: a change's new revision shows once the controller has seen it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<i64>,
    pub replicas: ReplicaCounts,
    pub issues: Vec<PodIssueView>,
}

impl From<&RolloutReport> for RolloutView {
    fn from(r: &RolloutReport) -> Self {
        let d = DeploymentView::from(&*r.deployment);
        let reason = match &r.verdict {
            Some(Verdict::Failed(reason)) => Some(reason.clone()),
            _ => None,
        };
        Self {
            message: r.state.message.clone(),
            done: r.state.done,
            failed: r.state.failed || reason.is_some(),
            timed_out: r.timed_out,
            verdict: r.verdict.as_ref().map(|v| v.name().to_owned()),
            reason,
            generation: d.generation,
            observed_generation: d.observed_generation,
            revision: d.revision,
            replicas: d.replicas,
            issues: r.issues.iter().map(PodIssueView::from).collect(),
        }
    }
}

/// One revision of `kubectl rollout history`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"revision": 2, "changeCause": "kubegate set image web web=nginx:1.27 by alice", "auditId": "0b9c5a2e-6f0d-4c8e-9a51-2f8d7c1e4b3a", "images": [{"container": "web", "image": "nginx:1.27"}], "replicaSet": "web-5d8c7b9f4c", "replicas": 3, "current": true, "createdAt": "2026-11-26T09:30:00Z"}))]
pub struct RevisionView {
    pub revision: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change_cause: Option<String>,
    /// The audit entry of the kubegate change that made this template current (the
    /// `kubegate.io/audit-id` annotation the Deployment controller copies onto its ReplicaSet);
    /// absent when the change was made elsewhere.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audit_id: Option<String>,
    pub images: Vec<ContainerImage>,
    pub replica_set: String,
    pub replicas: i32,
    /// This revision's template is the Deployment's current one.
    pub current: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"items": [{"revision": 1, "images": [{"container": "web", "image": "nginx:1.26"}], "replicaSet": "web-6b7f9c8d5", "replicas": 0, "current": false}, {"revision": 2, "changeCause": "kubegate set image web web=nginx:1.27 by alice", "auditId": "0b9c5a2e-6f0d-4c8e-9a51-2f8d7c1e4b3a", "images": [{"container": "web", "image": "nginx:1.27"}], "replicaSet": "web-5d8c7b9f4c", "replicas": 3, "current": true}]}))]
pub struct RevisionList {
    pub items: Vec<RevisionView>,
}

/// One revision with its pod template (`kubectl rollout history --revision=N`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"revision": 2, "changeCause": "kubegate set image web web=nginx:1.27 by alice", "images": [{"container": "web", "image": "nginx:1.27"}], "replicaSet": "web-5d8c7b9f4c", "replicas": 0, "current": false, "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}}))]
pub struct RevisionDetail {
    #[serde(flatten)]
    pub summary: RevisionView,
    /// The pod template (without `pod-template-hash`), as the Kubernetes API shows it.
    #[schema(value_type = Object)]
    pub template: serde_json::Value,
}

pub fn revision_view(r: &Revision, current: Option<&str>) -> RevisionView {
    let rs = &r.replica_set;
    let name = rs.metadata.name.clone().unwrap_or_default();
    RevisionView {
        revision: r.revision,
        change_cause: r.change_cause.clone(),
        audit_id: rs
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(crate::cluster::rollout::AUDIT_ID))
            .cloned(),
        images: images(rs.spec.as_ref().and_then(|s| s.template.as_ref())),
        current: current == Some(name.as_str()),
        replica_set: name,
        replicas: rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0),
        created_at: rs.metadata.creation_timestamp.as_ref().map(rfc3339),
    }
}

/// A ReplicaSet (`kubectl get replicasets -o wide`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ReplicaSet)]
#[schema(example = json!({"name": "web-5d8c7b9f4c", "revision": 3, "desired": 3, "current": 3, "ready": 3, "available": 3, "owner": "Deployment/web", "images": [{"container": "web", "image": "nginx:1.27"}], "labels": {"app": "web", "pod-template-hash": "5d8c7b9f4c"}}))]
pub struct ReplicaSetView {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<i64>,
    pub desired: i32,
    pub current: i32,
    pub ready: i32,
    pub available: i32,
    /// The controlling Deployment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    pub images: Vec<ContainerImage>,
    pub labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"items": []}))]
pub struct ReplicaSetList {
    pub items: Vec<ReplicaSetView>,
}

impl From<&ReplicaSet> for ReplicaSetView {
    fn from(rs: &ReplicaSet) -> Self {
        let status = rs.status.clone().unwrap_or_default();
        Self {
            name: rs.metadata.name.clone().unwrap_or_default(),
            revision: rs
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(rollout::REVISION))
                .and_then(|r| r.parse().ok()),
            desired: rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0),
            current: status.replicas,
            ready: status.ready_replicas.unwrap_or(0),
            available: status.available_replicas.unwrap_or(0),
            owner: rs
                .metadata
                .owner_references
                .iter()
                .flatten()
                .find(|o| o.controller == Some(true))
                .map(|o| format!("{}/{}", o.kind, o.name)),
            images: images(rs.spec.as_ref().and_then(|s| s.template.as_ref())),
            labels: rs.metadata.labels.clone().unwrap_or_default(),
            created_at: rs.metadata.creation_timestamp.as_ref().map(rfc3339),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"port": 80, "targetPort": "8080", "protocol": "TCP", "nodePort": 30080}))]
pub struct ServicePort {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub port: i32,
    /// Number or named port.
    pub target_port: String,
    pub protocol: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_port: Option<i32>,
}

/// A Service (`kubectl get service -o wide` plus endpoints).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Service)]
#[schema(example = json!({"name": "web", "namespace": "shop", "type": "NodePort", "clusterIp": "10.96.12.34", "ports": [{"port": 80, "targetPort": "8080", "protocol": "TCP", "nodePort": 30080}], "selector": {"app": "web"}, "readyEndpoints": 3, "loadBalancerIngress": [], "labels": {"app": "web"}, "createdAt": "2026-11-26T09:31:00Z"}))]
pub struct ServiceView {
    pub name: String,
    pub namespace: String,
    #[serde(rename = "type")]
    pub service_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_name: Option<String>,
    pub ports: Vec<ServicePort>,
    pub selector: BTreeMap<String, String>,
    /// Ready pods the selector matches (the addresses traffic can go to).
    pub ready_endpoints: usize,
    /// Load balancer addresses (IP or hostname), once provisioned.
    pub load_balancer_ingress: Vec<String>,
    pub labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"items": []}))]
pub struct ServiceList {
    pub items: Vec<ServiceView>,
}

pub fn service_view(s: &Service, pods: &[Pod]) -> ServiceView {
    let spec = s.spec.clone().unwrap_or_default();
    let selector = spec.selector.clone().unwrap_or_default();
    let ready_endpoints = if selector.is_empty() {
        0
    } else {
        pods.iter()
            .filter(|p| {
                let labels = p.metadata.labels.clone().unwrap_or_default();
                selector.iter().all(|(k, v)| labels.get(k) == Some(v))
            })
            .filter(|p| pod_ready(p))
            .count()
    };
    ServiceView {
        name: s.metadata.name.clone().unwrap_or_default(),
        namespace: s.metadata.namespace.clone().unwrap_or_default(),
        service_type: spec.type_.clone().unwrap_or_else(|| "ClusterIP".into()),
        cluster_ip: spec.cluster_ip.clone(),
        external_name: spec.external_name.clone(),
        ports: spec
            .ports
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|p| ServicePort {
                target_port: p
                    .target_port
                    .as_ref()
                    .map(int_or_string)
                    .unwrap_or_else(|| p.port.to_string()),
                name: p.name,
                port: p.port,
                protocol: p.protocol.unwrap_or_else(|| "TCP".into()),
                node_port: p.node_port,
            })
            .collect(),
        selector,
        ready_endpoints,
        load_balancer_ingress: s
            .status
            .as_ref()
            .and_then(|st| st.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.clone())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|i| i.ip.or(i.hostname))
            .collect(),
        labels: s.metadata.labels.clone().unwrap_or_default(),
        created_at: s.metadata.creation_timestamp.as_ref().map(rfc3339),
    }
}

fn pod_ready(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_none()
        && p.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"name": "web", "image": "nginx:1.27", "ready": false, "restartCount": 0, "state": "waiting", "reason": "ImagePullBackOff", "message": "Back-off pulling image \"nginx:1.27\""}))]
pub struct ContainerView {
    pub name: String,
    pub image: String,
    pub ready: bool,
    pub restart_count: i32,
    /// `running`, `waiting` or `terminated`.
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// How the previous instance ended (`kubectl describe`'s Last State), after a restart.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_termination: Option<Termination>,
}

/// How a container ended.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"reason": "OOMKilled", "exitCode": 137, "finishedAt": "2026-11-26T09:31:12Z"}))]
pub struct Termination {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub exit_code: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
}

/// A pod (`kubectl get pods -o wide`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Pod)]
#[schema(example = json!({"name": "web-5d8c7b9f4c-x2k9p", "namespace": "shop", "phase": "Running", "status": "Running", "readyContainers": 1, "totalContainers": 1, "restarts": 0, "node": "node-1", "ip": "10.244.0.12", "containers": [{"name": "web", "image": "nginx:1.27", "ready": true, "restartCount": 0, "state": "running"}], "labels": {"app": "web"}, "createdAt": "2026-11-26T09:30:01Z"}))]
pub struct PodView {
    pub name: String,
    pub namespace: String,
    /// `status.phase`: Pending, Running, Succeeded, Failed, Unknown.
    pub phase: String,
    /// kubectl's STATUS column (e.g. `Running`, `ImagePullBackOff`, `CrashLoopBackOff`, `Terminating`).
    pub status: String,
    pub ready_containers: usize,
    pub total_containers: usize,
    pub restarts: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    pub containers: Vec<ContainerView>,
    pub labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"items": []}))]
pub struct PodList {
    pub items: Vec<PodView>,
}

impl From<&Pod> for PodView {
    fn from(p: &Pod) -> Self {
        let status = p.status.clone().unwrap_or_default();
        let images: BTreeMap<String, String> = p
            .spec
            .as_ref()
            .map(|s| {
                s.containers
                    .iter()
                    .map(|c| (c.name.clone(), c.image.clone().unwrap_or_default()))
                    .collect()
            })
            .unwrap_or_default();
        let statuses = status.container_statuses.clone().unwrap_or_default();
        let containers: Vec<ContainerView> = images
            .iter()
            .map(|(name, image)| {
                let cs = statuses.iter().find(|c| &c.name == name);
                let state = cs.and_then(|c| c.state.clone()).unwrap_or_default();
                let (state_name, reason, message) = if let Some(w) = state.waiting {
                    ("waiting", w.reason, w.message)
                } else if let Some(t) = state.terminated {
                    ("terminated", t.reason, t.message)
                } else if state.running.is_some() {
                    ("running", None, None)
                } else {
                    ("waiting", None, None)
                };
                ContainerView {
                    name: name.clone(),
                    image: image.clone(),
                    ready: cs.is_some_and(|c| c.ready),
                    restart_count: cs.map(|c| c.restart_count).unwrap_or(0),
                    state: state_name.into(),
                    reason,
                    message,
                    last_termination: cs
                        .and_then(|c| c.last_state.as_ref())
                        .and_then(|l| l.terminated.as_ref())
                        .map(|t| Termination {
                            reason: t.reason.clone(),
                            exit_code: t.exit_code,
                            finished_at: t.finished_at.as_ref().map(rfc3339),
                        }),
                }
            })
            .collect();
        // kubectl's printPod: phase, overridden by the pod's reason, then by container reasons.
        let mut shown = status
            .reason
            .clone()
            .unwrap_or_else(|| status.phase.clone().unwrap_or_else(|| "Unknown".into()));
        for c in &containers {
            if let Some(r) = &c.reason {
                shown = r.clone();
            }
        }
        if p.metadata.deletion_timestamp.is_some() {
            shown = "Terminating".into();
        }
        Self {
            name: p.metadata.name.clone().unwrap_or_default(),
            namespace: p.metadata.namespace.clone().unwrap_or_default(),
            phase: status.phase.clone().unwrap_or_else(|| "Unknown".into()),
            status: shown,
            ready_containers: containers.iter().filter(|c| c.ready).count(),
            total_containers: containers.len(),
            restarts: containers.iter().map(|c| c.restart_count).sum(),
            node: p.spec.as_ref().and_then(|s| s.node_name.clone()),
            ip: status.pod_ip.clone(),
            containers,
            labels: p.metadata.labels.clone().unwrap_or_default(),
            created_at: p.metadata.creation_timestamp.as_ref().map(rfc3339),
        }
    }
}

/// `kubectl get all`: a list of each kind it shows.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"pods": {"items": []}, "services": {"items": []}, "deployments": {"items": []}, "replicaSets": {"items": []}, "statefulSets": [], "daemonSets": [], "jobs": [], "cronJobs": [], "horizontalPodAutoscalers": []}))]
pub struct AllView {
    pub pods: PodList,
    pub services: ServiceList,
    pub deployments: DeploymentList,
    pub replica_sets: ReplicaSetList,
    pub stateful_sets: Vec<StatefulSetView>,
    pub daemon_sets: Vec<DaemonSetView>,
    pub jobs: Vec<JobView>,
    pub cron_jobs: Vec<CronJobView>,
    pub horizontal_pod_autoscalers: Vec<AutoscalerView>,
}

/// A StatefulSet (`kubectl get statefulsets`: READY is `ready/desired`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"name": "db", "desired": 3, "ready": 3, "createdAt": "2026-11-26T09:30:01Z"}))]
pub struct StatefulSetView {
    pub name: String,
    pub desired: i32,
    pub ready: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
}

/// A DaemonSet (`kubectl get daemonsets`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"name": "agent", "desired": 1, "current": 1, "ready": 1, "upToDate": 1, "available": 1, "nodeSelector": {}, "createdAt": "2026-11-26T09:30:01Z"}))]
pub struct DaemonSetView {
    pub name: String,
    pub desired: i32,
    pub current: i32,
    pub ready: i32,
    pub up_to_date: i32,
    pub available: i32,
    pub node_selector: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
}

/// A Job (`kubectl get jobs`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"name": "migrate", "status": "Complete", "completions": "1/1", "durationSeconds": 12, "createdAt": "2026-11-26T09:30:01Z"}))]
pub struct JobView {
    pub name: String,
    /// kubectl's STATUS: `Complete`, `Failed`, `Terminating`, `Suspended`, `FailureTarget`,
    /// `SuccessCriteriaMet` or `Running`.
    pub status: String,
    /// kubectl's COMPLETIONS: `succeeded/completions` (`succeeded/1 of parallelism` without).
    pub completions: String,
    /// From its start to its completion (or to now while it runs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
}

/// A CronJob (`kubectl get cronjobs`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"name": "backup", "schedule": "0 3 * * *", "suspend": false, "active": 0, "lastSchedule": "2026-11-26T03:00:00Z", "createdAt": "2026-11-20T09:30:01Z"}))]
pub struct CronJobView {
    pub name: String,
    pub schedule: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    pub suspend: bool,
    /// Jobs it has running now.
    pub active: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_schedule: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
}

/// A HorizontalPodAutoscaler (`kubectl get hpa`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"name": "web", "reference": "Deployment/web", "targets": "cpu: 20%/80%", "minReplicas": 2, "maxReplicas": 10, "replicas": 3, "createdAt": "2026-11-26T09:30:01Z"}))]
pub struct AutoscalerView {
    pub name: String,
    /// What it scales: `KIND/NAME`.
    pub reference: String,
    /// kubectl's TARGETS: each metric's current value over its target.
    pub targets: String,
    pub min_replicas: i32,
    pub max_replicas: i32,
    pub replicas: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
}

impl From<&StatefulSet> for StatefulSetView {
    fn from(s: &StatefulSet) -> Self {
        let status = s.status.clone().unwrap_or_default();
        Self {
            name: s.metadata.name.clone().unwrap_or_default(),
            desired: s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
            ready: status.ready_replicas.unwrap_or(0),
            created_at: s.metadata.creation_timestamp.as_ref().map(rfc3339),
        }
    }
}

impl From<&DaemonSet> for DaemonSetView {
    fn from(d: &DaemonSet) -> Self {
        let status = d.status.clone().unwrap_or_default();
        Self {
            name: d.metadata.name.clone().unwrap_or_default(),
            desired: status.desired_number_scheduled,
            current: status.current_number_scheduled,
            ready: status.number_ready,
            up_to_date: status.updated_number_scheduled.unwrap_or(0),
            available: status.number_available.unwrap_or(0),
            node_selector: d
                .spec
                .as_ref()
                .and_then(|s| s.template.spec.as_ref())
                .and_then(|s| s.node_selector.clone())
                .unwrap_or_default(),
            created_at: d.metadata.creation_timestamp.as_ref().map(rfc3339),
        }
    }
}

impl From<&Job> for JobView {
    fn from(j: &Job) -> Self {
        let status = j.status.clone().unwrap_or_default();
        let has = |t: &str| {
            status
                .conditions
                .iter()
                .flatten()
                .any(|c| c.type_ == t && c.status == "True")
        };
        // kubectl's printJob, in its order.
        let shown = if has("Complete") {
            "Complete"
        } else if has("Failed") {
            "Failed"
        } else if j.metadata.deletion_timestamp.is_some() {
            "Terminating"
        } else if has("Suspended") {
            "Suspended"
        } else if has("FailureTarget") {
            "FailureTarget"
        } else if has("SuccessCriteriaMet") {
            "SuccessCriteriaMet"
        } else {
            "Running"
        };
        let spec = j.spec.clone().unwrap_or_default();
        let succeeded = status.succeeded.unwrap_or(0);
        let completions = match (spec.completions, spec.parallelism.unwrap_or(1)) {
            (Some(c), _) => format!("{succeeded}/{c}"),
            (None, p) if p > 1 => format!("{succeeded}/1 of {p}"),
            (None, _) => format!("{succeeded}/1"),
        };
        let duration_seconds = status.start_time.as_ref().map(|start| {
            let end = status
                .completion_time
                .as_ref()
                .map(|t| t.0)
                .unwrap_or_else(jiff::Timestamp::now);
            end.as_second() - start.0.as_second()
        });
        Self {
            name: j.metadata.name.clone().unwrap_or_default(),
            status: shown.into(),
            completions,
            duration_seconds,
            created_at: j.metadata.creation_timestamp.as_ref().map(rfc3339),
        }
    }
}

impl From<&CronJob> for CronJobView {
    fn from(c: &CronJob) -> Self {
        let spec = c.spec.clone().unwrap_or_default();
        let status = c.status.clone().unwrap_or_default();
        Self {
            name: c.metadata.name.clone().unwrap_or_default(),
            schedule: spec.schedule,
            time_zone: spec.time_zone,
            suspend: spec.suspend.unwrap_or(false),
            active: status.active.map(|a| a.len()).unwrap_or(0),
            last_schedule: status.last_schedule_time.as_ref().map(rfc3339),
            created_at: c.metadata.creation_timestamp.as_ref().map(rfc3339),
        }
    }
}

impl From<&HorizontalPodAutoscaler> for AutoscalerView {
    fn from(h: &HorizontalPodAutoscaler) -> Self {
        let spec = h.spec.clone().unwrap_or_default();
        let status = h.status.clone().unwrap_or_default();
        Self {
            name: h.metadata.name.clone().unwrap_or_default(),
            reference: format!(
                "{}/{}",
                spec.scale_target_ref.kind, spec.scale_target_ref.name
            ),
            targets: hpa_targets(
                &spec.metrics.unwrap_or_default(),
                &status.current_metrics.unwrap_or_default(),
            ),
            min_replicas: spec.min_replicas.unwrap_or(1),
            max_replicas: spec.max_replicas,
            replicas: status.current_replicas.unwrap_or(0),
            created_at: h.metadata.creation_timestamp.as_ref().map(rfc3339),
        }
    }
}

/// kubectl's formatHPAMetrics for resource metrics (`cpu: 20%/80%`, `<unknown>` before the
/// first reading); other metric kinds show `<unknown>/<target>`; more than two end
/// `+ N more...`; none, `<none>`.
fn hpa_targets(specs: &[MetricSpec], current: &[MetricStatus]) -> String {
    if specs.is_empty() {
        return "<none>".into();
    }
    let quantity = |q: &Option<Quantity>| q.as_ref().map(|q| q.0.clone());
    let mut shown: Vec<String> = specs
        .iter()
        .map(|m| {
            let Some(r) = &m.resource else {
                let target = quantity(
                    &m.pods
                        .as_ref()
                        .and_then(|p| p.target.average_value.clone())
                        .or_else(|| m.external.as_ref().and_then(|e| e.target.value.clone()))
                        .or_else(|| m.object.as_ref().and_then(|o| o.target.value.clone())),
                )
                .unwrap_or_else(|| "<unknown>".into());
                return format!("<unknown>/{target}");
            };
            let now = current
                .iter()
                .filter_map(|c| c.resource.as_ref())
                .find(|c| c.name == r.name);
            match r.target.average_utilization {
                Some(target) => {
                    let now = now
                        .and_then(|c| c.current.average_utilization)
                        .map(|u| format!("{u}%"))
                        .unwrap_or_else(|| "<unknown>".into());
                    format!("{}: {now}/{target}%", r.name)
                }
                None => {
                    let now = now
                        .and_then(|c| quantity(&c.current.average_value))
                        .unwrap_or_else(|| "<unknown>".into());
                    let target =
                        quantity(&r.target.average_value).unwrap_or_else(|| "<unknown>".into());
                    format!("{}: {now}/{target}", r.name)
                }
            }
        })
        .collect();
    if shown.len() > 2 {
        let more = shown.len() - 2;
        shown.truncate(2);
        return format!("{} + {more} more...", shown.join(", "));
    }
    shown.join(", ")
}

/// The answer to a read, as its REST operation documents it (`list_pods` a `PodList`, ...): one
/// conversion for the REST endpoints and the chat commands alike.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum FoundView {
    Deployments(DeploymentList),
    ReplicaSets(ReplicaSetList),
    Pods(PodList),
    Services(ServiceList),
    Deployment(Box<DeploymentView>),
    ReplicaSet(Box<ReplicaSetView>),
    Pod(Box<PodView>),
    Service(Box<ServiceView>),
    All(Box<AllView>),
    Logs(String),
    Rollout(Box<RolloutView>),
    Revisions(RevisionList),
    Events(EventList),
}

/// An object, by kind and name.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"kind": "Pod", "name": "web-5d8c7b9f4c-x2k9p"}))]
pub struct ObjectRef {
    pub kind: String,
    pub name: String,
}

/// An event (`kubectl get events`, the Events of `kubectl describe`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Event)]
#[schema(example = json!({"type": "Warning", "reason": "Failed", "message": "Failed to pull image \"nginx:nope\": not found", "object": {"kind": "Pod", "name": "web-5d8c7b9f4c-x2k9p"}, "count": 3, "firstSeen": "2026-11-26T09:30:01Z", "lastSeen": "2026-11-26T09:31:12Z", "source": "kubelet, node-1"}))]
pub struct EventView {
    /// `Normal` or `Warning`.
    #[serde(rename = "type")]
    pub type_: String,
    pub reason: String,
    pub message: String,
    pub object: ObjectRef,
    /// How many times it happened (1 for a single one).
    pub count: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_seen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<String>,
    /// Who reported it: `component, host` as kubectl shows FROM.
    pub source: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"items": []}))]
pub struct EventList {
    /// Oldest last seen first.
    pub items: Vec<EventView>,
}

impl From<&Event> for EventView {
    fn from(e: &Event) -> Self {
        let source = e.source.clone().unwrap_or_default();
        let component = source
            .component
            .filter(|c| !c.is_empty())
            .or_else(|| e.reporting_component.clone().filter(|c| !c.is_empty()))
            .unwrap_or_default();
        let host = source
            .host
            .filter(|h| !h.is_empty())
            .or_else(|| e.reporting_instance.clone().filter(|h| !h.is_empty()));
        let first = e
            .first_timestamp
            .as_ref()
            .map(|t| t.0)
            .or_else(|| e.event_time.as_ref().map(|t| t.0));
        Self {
            type_: e.type_.clone().unwrap_or_else(|| "Normal".into()),
            reason: e.reason.clone().unwrap_or_default(),
            message: e.message.clone().unwrap_or_default(),
            object: ObjectRef {
                kind: e.involved_object.kind.clone().unwrap_or_default(),
                name: e.involved_object.name.clone().unwrap_or_default(),
            },
            // Events of the newer API carry no count, or a series with one.
            count: e
                .series
                .as_ref()
                .and_then(|s| s.count)
                .or(e.count)
                .filter(|c| *c > 0)
                .unwrap_or(1),
            first_seen: first.map(|t| t.to_string()),
            last_seen: crate::gateway::last_seen(e).map(|t| t.to_string()),
            source: match host {
                Some(h) => format!("{component}, {h}"),
                None => component,
            },
        }
    }
}

/// A pod in detail (`kubectl describe pod`): the pod, its conditions, who owns it, its events.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"pod": {"name": "web-5d8c7b9f4c-x2k9p", "namespace": "shop", "phase": "Running", "status": "Running", "readyContainers": 1, "totalContainers": 1, "restarts": 1, "containers": [{"name": "web", "image": "nginx:1.27", "ready": true, "restartCount": 1, "state": "running", "lastTermination": {"reason": "OOMKilled", "exitCode": 137}}], "labels": {"app": "web"}}, "conditions": [{"type": "Ready", "status": "True"}], "owners": [{"kind": "ReplicaSet", "name": "web-5d8c7b9f4c"}, {"kind": "Deployment", "name": "web"}], "events": []}))]
pub struct PodDescription {
    pub pod: PodView,
    /// PodScheduled, Initialized, ContainersReady, Ready, with their reasons when not True.
    pub conditions: Vec<Condition>,
    /// Who controls it, nearest first: its ReplicaSet, then that ReplicaSet's Deployment.
    pub owners: Vec<ObjectRef>,
    /// Its events, oldest last seen first.
    pub events: Vec<EventView>,
}

/// A Deployment in detail (`kubectl describe deployment`): the Deployment, its ReplicaSets as
/// kubectl names them, its events.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"deployment": {"name": "web", "namespace": "shop", "revision": 2, "replicas": {"desired": 3, "updated": 3, "ready": 3, "available": 3, "unavailable": 0}, "images": [{"container": "web", "image": "nginx:1.27"}], "selector": "app=web", "strategy": {"type": "RollingUpdate"}, "paused": false, "generation": 2, "observedGeneration": 2, "conditions": [], "labels": {}, "annotations": {}}, "newReplicaSet": {"name": "web-5d8c7b9f4c", "revision": 2, "desired": 3, "current": 3, "ready": 3, "available": 3, "owner": "Deployment/web", "images": [], "labels": {}}, "oldReplicaSets": [], "events": []}))]
pub struct DeploymentDescription {
    pub deployment: DeploymentView,
    /// The ReplicaSet of the current template (kubectl's NewReplicaSet).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_replica_set: Option<ReplicaSetView>,
    /// Older ReplicaSets that still want or have pods (kubectl's OldReplicaSets).
    pub old_replica_sets: Vec<ReplicaSetView>,
    /// Its events, oldest last seen first.
    pub events: Vec<EventView>,
}

/// A Service in detail (`kubectl describe service`): the Service with its ready endpoints, and
/// its events.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"service": {"name": "web", "namespace": "shop", "type": "ClusterIP", "clusterIp": "10.96.0.12", "ports": [{"port": 80, "targetPort": "80", "protocol": "TCP"}], "selector": {"app": "web"}, "readyEndpoints": 1, "loadBalancerIngress": [], "labels": {}}, "events": []}))]
pub struct ServiceDescription {
    pub service: ServiceView,
    /// Its events, oldest last seen first.
    pub events: Vec<EventView>,
}

/// A ReplicaSet in detail (`kubectl describe replicaset`): the ReplicaSet, its pods, its events.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"replicaSet": {"name": "web-5d8c7b9f4c", "revision": 2, "desired": 1, "current": 1, "ready": 1, "available": 1, "owner": "Deployment/web", "images": [], "labels": {}}, "pods": [], "events": []}))]
pub struct ReplicaSetDescription {
    pub replica_set: ReplicaSetView,
    /// The pods its selector matches.
    pub pods: Vec<PodView>,
    /// Its events (pods created and deleted, refusals), oldest last seen first.
    pub events: Vec<EventView>,
}

impl From<Found> for FoundView {
    fn from(found: Found) -> Self {
        match found {
            Found::Deployments(d) => Self::Deployments(DeploymentList {
                items: d.iter().map(DeploymentView::from).collect(),
            }),
            Found::ReplicaSets(r) => Self::ReplicaSets(ReplicaSetList {
                items: r.iter().map(ReplicaSetView::from).collect(),
            }),
            Found::Pods(p) => Self::Pods(PodList {
                items: p.iter().map(PodView::from).collect(),
            }),
            Found::Services { services, pods } => Self::Services(ServiceList {
                items: services.iter().map(|s| service_view(s, &pods)).collect(),
            }),
            Found::Deployment(d) => Self::Deployment(Box::new(DeploymentView::from(&*d))),
            Found::ReplicaSet(r) => Self::ReplicaSet(Box::new(ReplicaSetView::from(&*r))),
            Found::Pod(p) => Self::Pod(Box::new(PodView::from(&*p))),
            Found::Service { service, pods } => {
                Self::Service(Box::new(service_view(&service, &pods)))
            }
            Found::All {
                pods,
                services,
                deployments,
                replica_sets,
                workloads,
            } => Self::All(Box::new(AllView {
                stateful_sets: workloads
                    .stateful_sets
                    .iter()
                    .map(StatefulSetView::from)
                    .collect(),
                daemon_sets: workloads
                    .daemon_sets
                    .iter()
                    .map(DaemonSetView::from)
                    .collect(),
                jobs: workloads.jobs.iter().map(JobView::from).collect(),
                cron_jobs: workloads.cron_jobs.iter().map(CronJobView::from).collect(),
                horizontal_pod_autoscalers: workloads
                    .autoscalers
                    .iter()
                    .map(AutoscalerView::from)
                    .collect(),
                services: ServiceList {
                    items: services.iter().map(|s| service_view(s, &pods)).collect(),
                },
                pods: PodList {
                    items: pods.iter().map(PodView::from).collect(),
                },
                deployments: DeploymentList {
                    items: deployments.iter().map(DeploymentView::from).collect(),
                },
                replica_sets: ReplicaSetList {
                    items: replica_sets.iter().map(ReplicaSetView::from).collect(),
                },
            })),
            Found::Logs(text) => Self::Logs(text),
            Found::Rollout(r) => Self::Rollout(Box::new(RolloutView::from(&*r))),
            Found::Revisions { history, current } => Self::Revisions(RevisionList {
                items: history
                    .iter()
                    .map(|r| revision_view(r, current.as_deref()))
                    .collect(),
            }),
            Found::Events(events) => Self::Events(EventList {
                items: events.iter().map(EventView::from).collect(),
            }),
        }
    }
}
