//! The vocabulary of what kubegate can do: an [`Action`] on a [`Target`]. Every mutating request,
//! whatever its entry point (REST today; chatops or batch later), becomes one of these values and
//! goes through `gateway::execute`, so validation, authorization, audit and dry-run behave the same.
//! `validate()` runs before anything touches a cluster.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::validate::{self, Errors};

/// Where an action applies.
#[derive(Debug, Clone)]
pub struct Target {
    pub cluster: String,
    pub namespace: String,
}

/// Something kubegate does to a cluster.
#[derive(Debug, Clone)]
pub enum Action {
    Deploy {
        name: String,
        spec: DeploySpec,
    },
    /// `kubectl create deployment` / `kubectl run`: like deploy, but an existing Deployment is a
    /// conflict (409) and nothing changes.
    Create {
        name: String,
        spec: DeploySpec,
    },
    Scale {
        name: String,
        replicas: i32,
    },
    SetImage {
        name: String,
        container: Option<String>,
        image: String,
    },
    Restart {
        name: String,
    },
    Rollback {
        name: String,
        to_revision: i64,
        expect_revision: Option<i64>,
    },
    Expose {
        deployment: String,
        spec: ExposeSpec,
    },
    PutService {
        name: String,
        spec: ServiceSpec,
    },
    /// `kubectl delete KIND NAME`.
    Delete {
        kind: Kind,
        name: String,
    },
    /// `kubectl delete KIND -l SELECTOR`, refused when more than `max_affected` match.
    DeleteSelected {
        kind: Kind,
        selector: String,
        max_affected: usize,
    },
    Label {
        kind: Kind,
        name: String,
        change: LabelChange,
    },
}

/// The kinds of object kubegate reads and changes, one row each: how the API and kubectl name
/// them, which naming rule their names follow, and what may be done to them. A new kind is a new
/// row here (and a view), not a copy of another kind's handlers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Deployment,
    ReplicaSet,
    Service,
    Pod,
}

impl Kind {
    /// kubectl's word for one (`kubectl get deployment`), also the audit log's resource kind.
    pub fn singular(self) -> &'static str {
        match self {
            Self::Deployment => "deployment",
            Self::ReplicaSet => "replicaset",
            Self::Service => "service",
            Self::Pod => "pod",
        }
    }

    /// The API's resource name, as in REST paths (`.../deployments`).
    pub fn plural(self) -> &'static str {
        match self {
            Self::Deployment => "deployments",
            Self::ReplicaSet => "replicasets",
            Self::Service => "services",
            Self::Pod => "pods",
        }
    }

    /// How kubectl names an object of this kind in its answers: `deployment.apps/web scaled`.
    pub fn kubectl(self) -> &'static str {
        match self {
            Self::Deployment => "deployment.apps",
            Self::ReplicaSet => "replicaset.apps",
            Self::Service => "service",
            Self::Pod => "pod",
        }
    }

    /// The API server's rule for names of this kind: a Service's name is a DNS-1035 label (it
    /// becomes a DNS name), the others' DNS-1123 subdomains.
    pub fn check_name(self, name: &str) -> Result<(), String> {
        match self {
            Self::Service => validate::dns1035_label(name),
            _ => validate::dns1123_subdomain(name),
        }
    }

    /// ReplicaSets belong to their Deployment: kubegate reads them and changes them only through it.
    pub fn changeable(self) -> bool {
        self != Self::ReplicaSet
    }
}

impl Action {
    /// Stable machine name, e.g. for logs and the audit log.
    pub fn verb(&self) -> &'static str {
        match self {
            Self::Deploy { .. } => "deploy",
            Self::Create { .. } => "create",
            Self::Scale { .. } => "scale",
            Self::SetImage { .. } => "set_image",
            Self::Restart { .. } => "restart",
            Self::Rollback { .. } => "rollback",
            Self::Expose { .. } => "expose",
            Self::PutService { .. } => "put_service",
            Self::Delete { kind, .. } => match kind {
                Kind::Deployment => "delete_deployment",
                Kind::ReplicaSet => "delete_replicaset",
                Kind::Service => "delete_service",
                Kind::Pod => "delete_pod",
            },
            Self::DeleteSelected { kind, .. } => match kind {
                Kind::Deployment => "delete_deployments",
                Kind::ReplicaSet => "delete_replicasets",
                Kind::Service => "delete_services",
                Kind::Pod => "delete_pods",
            },
            Self::Label { .. } => "label",
        }
    }

    /// What a human reads in `kubectl rollout history` (the change cause's "what").
    pub fn describe(&self) -> String {
        match self {
            Self::Deploy { name, spec } | Self::Create { name, spec } => {
                let images: Vec<String> = spec
                    .containers
                    .iter()
                    .map(|c| format!("{}={}", c.name, c.image))
                    .collect();
                format!("{} {name} {}", self.verb(), images.join(","))
            }
            Self::Scale { name, replicas } => format!("scale {name} --replicas={replicas}"),
            Self::SetImage {
                name,
                container,
                image,
            } => {
                format!(
                    "set image {name} {}={image}",
                    container.as_deref().unwrap_or("*")
                )
            }
            Self::Restart { name } => format!("rollout restart {name}"),
            Self::Rollback {
                name, to_revision, ..
            } => format!("rollout undo {name} --to-revision={to_revision}"),
            Self::Expose { deployment, .. } => format!("expose deployment {deployment}"),
            Self::PutService { name, .. } => format!("put service {name}"),
            Self::Delete { kind, name } => format!("delete {} {name}", kind.singular()),
            Self::DeleteSelected { kind, selector, .. } => {
                format!("delete {} -l {selector}", kind.plural())
            }
            Self::Label { name, .. } => format!("label {name}"),
        }
    }

    /// Check every field; the errors name the fields.
    pub fn validate(&self, target: &Target, limits: &Limits) -> Errors {
        let mut e = Errors::default();
        if let Err(m) = validate::dns1123_label(&target.namespace) {
            e.add("namespace", m);
        }
        let deployment_name = |e: &mut Errors, n: &str| {
            if let Err(m) = validate::dns1123_subdomain(n) {
                e.add("name", m);
            }
        };
        match self {
            Self::Deploy { name, spec } | Self::Create { name, spec } => {
                deployment_name(&mut e, name);
                spec.validate(&mut e, limits);
            }
            Self::Scale { name, replicas } => {
                deployment_name(&mut e, name);
                replicas_in_range(&mut e, "replicas", *replicas, limits);
            }
            Self::SetImage {
                name,
                container,
                image,
            } => {
                deployment_name(&mut e, name);
                if let Some(c) = container
                    && let Err(m) = validate::dns1123_label(c)
                {
                    e.add("container", m);
                }
                if let Err(m) = validate::image_reference(image) {
                    e.add("image", m);
                }
            }
            Self::Restart { name } => deployment_name(&mut e, name),
            Self::Rollback {
                name,
                to_revision,
                expect_revision,
            } => {
                deployment_name(&mut e, name);
                e.check(
                    *to_revision >= 0,
                    "toRevision",
                    "must be 0 (the previous revision) or a revision number",
                );
                e.check(
                    expect_revision.is_none_or(|r| r > 0),
                    "expectRevision",
                    "must be a revision number (> 0)",
                );
            }
            Self::Expose { deployment, spec } => {
                deployment_name(&mut e, deployment);
                spec.validate(&mut e);
            }
            Self::PutService { name, spec } => {
                if let Err(m) = validate::dns1035_label(name) {
                    e.add("name", m);
                }
                spec.validate(&mut e);
            }
            Self::Delete { kind, name } => {
                changeable(&mut e, *kind);
                if let Err(m) = kind.check_name(name) {
                    e.add("name", m);
                }
            }
            Self::DeleteSelected {
                kind,
                selector,
                max_affected,
            } => {
                changeable(&mut e, *kind);
                if let Err(m) = validate::label_selector(selector) {
                    e.add("labelSelector", m);
                }
                e.check(
                    (1..=limits.max_affected_cap).contains(max_affected),
                    "maxAffected",
                    format!("must be between 1 and {}", limits.max_affected_cap),
                );
            }
            Self::Label { kind, name, change } => {
                changeable(&mut e, *kind);
                if let Err(m) = kind.check_name(name) {
                    e.add("name", m);
                }
                validate::labels(&mut e, "set", &change.set);
                for k in &change.remove {
                    if let Err(m) = validate::label_key(k) {
                        e.add(format!("remove.{k}"), m);
                    }
                    e.check(
                        !change.set.contains_key(k),
                        format!("remove.{k}"),
                        "cannot both set and remove a label",
                    );
                }
                e.check(
                    !change.set.is_empty() || !change.remove.is_empty(),
                    "set",
                    "nothing to change: give labels to set or remove",
                );
            }
        }
        e
    }
}

/// How many objects a delete by selector may remove when the request does not say.
pub const DEFAULT_MAX_AFFECTED: usize = 50;

/// Configurable bounds of validation.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_replicas: i32,
    pub max_affected_cap: usize,
}

fn changeable(e: &mut Errors, kind: Kind) {
    e.check(
        kind.changeable(),
        "kind",
        format!("{} are changed through their Deployment", kind.plural()),
    );
}

fn replicas_in_range(e: &mut Errors, field: &str, replicas: i32, limits: &Limits) {
    e.check(
        (0..=limits.max_replicas).contains(&replicas),
        field,
        format!("must be between 0 and {}", limits.max_replicas),
    );
}

/// Deploy: the desired Deployment (created or updated with server-side apply).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"containers": [{"name": "web", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}], "replicas": 3, "changeCause": "first release"}))]
pub struct DeploySpec {
    /// The pod's containers (at least one).
    pub containers: Vec<ContainerSpec>,
    /// Desired replicas. Omitted: a new Deployment gets 1; an existing one keeps its current count.
    #[schema(minimum = 0)]
    #[serde(default, deserialize_with = "integral::option")]
    pub replicas: Option<i32>,
    /// Labels of the Deployment (the selector label `app: <name>` is always added).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Annotations of the Deployment.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    pub strategy: Option<StrategySpec>,
    /// Seconds a new pod must be ready before it counts as available.
    #[schema(minimum = 0)]
    #[serde(default, deserialize_with = "integral::option")]
    pub min_ready_seconds: Option<i32>,
    /// Why (goes into `kubernetes.io/change-cause` when the pod template changes).
    pub change_cause: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"name": "web", "image": "nginx:1.27", "ports": [{"containerPort": 80}], "env": [{"name": "LOG_LEVEL", "value": "info"}], "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}))]
pub struct ContainerSpec {
    #[schema(pattern = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")]
    pub name: String,
    #[schema(
        pattern = "^([A-Za-z0-9-]+(\\.[A-Za-z0-9-]+)+(:[0-9]{1,4})?/|localhost(:[0-9]{1,4})?/)?[a-z0-9]+([_-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$"
    )]
    pub image: String,
    #[serde(default)]
    pub ports: Vec<ContainerPortSpec>,
    #[serde(default)]
    pub env: Vec<EnvVarSpec>,
    pub resources: Option<ResourcesSpec>,
    #[serde(default)]
    pub command: Vec<String>,
    #[serde(default)]
    pub args: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"containerPort": 8080, "name": "http", "protocol": "TCP"}))]
pub struct ContainerPortSpec {
    #[schema(minimum = 1, maximum = 65535)]
    #[serde(deserialize_with = "integral::plain")]
    pub container_port: i32,
    pub name: Option<String>,
    pub protocol: Option<Protocol>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[schema(example = "TCP")]
pub enum Protocol {
    #[serde(rename = "TCP")]
    Tcp,
    #[serde(rename = "UDP")]
    Udp,
    #[serde(rename = "SCTP")]
    Sctp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "TCP",
            Self::Udp => "UDP",
            Self::Sctp => "SCTP",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"name": "LOG_LEVEL", "value": "info"}))]
pub struct EnvVarSpec {
    pub name: String,
    #[serde(default)]
    pub value: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}}))]
pub struct ResourcesSpec {
    /// e.g. `{"cpu": "100m", "memory": "128Mi"}`
    #[serde(default)]
    pub requests: BTreeMap<String, String>,
    #[serde(default)]
    pub limits: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"type": "RollingUpdate", "maxSurge": 1, "maxUnavailable": "0%"}))]
pub struct StrategySpec {
    #[serde(rename = "type")]
    pub strategy_type: StrategyType,
    /// Integer or percentage (`"25%"`); RollingUpdate only.
    pub max_surge: Option<IntOrPercent>,
    /// Integer or percentage (`"25%"`); RollingUpdate only.
    pub max_unavailable: Option<IntOrPercent>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = "RollingUpdate")]
pub enum StrategyType {
    RollingUpdate,
    Recreate,
}

/// An integer or a percentage string such as `"25%"`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(untagged)]
#[schema(example = "25%")]
pub enum IntOrPercent {
    Int(i32),
    Percent(String),
}

impl<'de> Deserialize<'de> for IntOrPercent {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::String(s) => Ok(Self::Percent(s)),
            v => integral::from_value(&v)
                .map(Self::Int)
                .map_err(serde::de::Error::custom),
        }
    }
}

/// Integers that also accept JSON numbers with an integral value (`3.0`), as JSON Schema's
/// `integer` does and as some clients and fuzzers send them.
pub mod integral {
    use serde::{Deserialize, Deserializer};
    use serde_json::Value;

    pub fn from_value<T: TryFrom<i64>>(v: &Value) -> Result<T, String> {
        let n = match v {
            Value::Number(n) => n
                .as_i64()
                .or_else(|| {
                    n.as_f64()
                        .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                        .map(|f| f as i64)
                })
                .ok_or_else(|| format!("{n} is not an integer"))?,
            other => return Err(format!("expected an integer, found {other}")),
        };
        T::try_from(n).map_err(|_| format!("{n} is out of range"))
    }

    pub fn plain<'de, D: Deserializer<'de>, T: TryFrom<i64>>(d: D) -> Result<T, D::Error> {
        from_value(&Value::deserialize(d)?).map_err(serde::de::Error::custom)
    }

    pub fn option<'de, D: Deserializer<'de>, T: TryFrom<i64>>(d: D) -> Result<Option<T>, D::Error> {
        match Value::deserialize(d)? {
            Value::Null => Ok(None),
            v => from_value(&v).map(Some).map_err(serde::de::Error::custom),
        }
    }
}

impl IntOrPercent {
    fn valid(&self) -> bool {
        match self {
            Self::Int(i) => *i >= 0,
            Self::Percent(p) => p
                .strip_suffix('%')
                .and_then(|n| n.parse::<u32>().ok())
                .is_some_and(|n| n <= 100),
        }
    }
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Self::Int(i) => serde_json::json!(i),
            Self::Percent(p) => serde_json::json!(p),
        }
    }
}

impl DeploySpec {
    /// What `kubectl create deployment NAME --image=I [--replicas=N] [--port=P]` asks for: one
    /// container, and the replicas and port when given.
    pub fn simple(
        container: String,
        image: String,
        replicas: Option<i32>,
        port: Option<i32>,
    ) -> Self {
        Self {
            containers: vec![ContainerSpec {
                name: container,
                image,
                ports: port
                    .map(|p| ContainerPortSpec {
                        container_port: p,
                        name: None,
                        protocol: None,
                    })
                    .into_iter()
                    .collect(),
                env: Vec::new(),
                resources: None,
                command: Vec::new(),
                args: Vec::new(),
            }],
            replicas,
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            strategy: None,
            min_ready_seconds: None,
            change_cause: None,
        }
    }

    fn validate(&self, e: &mut Errors, limits: &Limits) {
        e.check(
            !self.containers.is_empty(),
            "containers",
            "at least one container is required",
        );
        let mut names = std::collections::HashSet::new();
        for (i, c) in self.containers.iter().enumerate() {
            let at = format!("containers[{i}]");
            if let Err(m) = validate::dns1123_label(&c.name) {
                e.add(format!("{at}.name"), m);
            }
            e.check(
                names.insert(c.name.as_str()),
                format!("{at}.name"),
                format!("duplicate container name {:?}", c.name),
            );
            if let Err(m) = validate::image_reference(&c.image) {
                e.add(format!("{at}.image"), m);
            }
            let mut ports = std::collections::HashSet::new();
            for (j, p) in c.ports.iter().enumerate() {
                e.check(
                    (1..=65535).contains(&p.container_port),
                    format!("{at}.ports[{j}].containerPort"),
                    "must be between 1 and 65535",
                );
                e.check(
                    ports.insert((p.container_port, p.protocol.unwrap_or(Protocol::Tcp))),
                    format!("{at}.ports[{j}]"),
                    "duplicate port",
                );
                if let Some(n) = &p.name {
                    let ok = !n.is_empty()
                        && n.len() <= 15
                        && n.bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                        && n.bytes().any(|b| b.is_ascii_lowercase());
                    e.check(ok, format!("{at}.ports[{j}].name"), "a port name is at most 15 lower case letters, digits or '-', with at least one letter");
                }
            }
            for (j, v) in c.env.iter().enumerate() {
                e.check(
                    validate::env_name(&v.name),
                    format!("{at}.env[{j}].name"),
                    "must be a non-empty name of printable characters without '='",
                );
            }
            if let Some(r) = &c.resources {
                for (k, q) in r
                    .requests
                    .iter()
                    .map(|x| ("requests", x))
                    .chain(r.limits.iter().map(|x| ("limits", x)))
                {
                    e.check(
                        validate::quantity(q.1),
                        format!("{at}.resources.{k}.{}", q.0),
                        format!("{:?} is not a quantity (e.g. 100m, 128Mi)", q.1),
                    );
                }
            }
        }
        if let Some(r) = self.replicas {
            replicas_in_range(e, "replicas", r, limits);
        }
        validate::labels(e, "labels", &self.labels);
        validate::annotations(e, "annotations", &self.annotations);
        if let Some(s) = &self.strategy {
            for (field, v) in [
                ("strategy.maxSurge", &s.max_surge),
                ("strategy.maxUnavailable", &s.max_unavailable),
            ] {
                if let Some(v) = v {
                    e.check(
                        v.valid(),
                        field,
                        "an integer >= 0 or a percentage such as \"25%\"",
                    );
                    e.check(
                        s.strategy_type == StrategyType::RollingUpdate,
                        field,
                        "only for the RollingUpdate strategy",
                    );
                }
            }
            if s.max_surge == Some(IntOrPercent::Int(0))
                && s.max_unavailable == Some(IntOrPercent::Int(0))
            {
                e.add("strategy", "maxSurge and maxUnavailable cannot both be 0");
            }
        }
        e.check(
            self.min_ready_seconds.is_none_or(|s| s >= 0),
            "minReadySeconds",
            "must be >= 0",
        );
        e.check(
            self.change_cause.as_ref().is_none_or(|c| c.len() <= 1024),
            "changeCause",
            "at most 1024 characters",
        );
    }
}

/// `kubectl expose deployment`: a Service selecting the Deployment's pods.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"port": 80, "targetPort": 8080, "type": "NodePort"}))]
pub struct ExposeSpec {
    /// The Service's port.
    #[schema(minimum = 1, maximum = 65535)]
    #[serde(deserialize_with = "integral::plain")]
    pub port: i32,
    /// The container port traffic goes to (defaults to `port`).
    #[schema(minimum = 1, maximum = 65535)]
    #[serde(default, deserialize_with = "integral::option")]
    pub target_port: Option<i32>,
    pub protocol: Option<Protocol>,
    #[serde(rename = "type")]
    pub service_type: Option<ServiceType>,
    /// A fixed node port (30000–32767), NodePort and LoadBalancer only.
    #[schema(minimum = 30000, maximum = 32767)]
    #[serde(default, deserialize_with = "integral::option")]
    pub node_port: Option<i32>,
    /// The Service's name (defaults to the Deployment's).
    pub name: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = "NodePort")]
pub enum ServiceType {
    ClusterIP,
    NodePort,
    LoadBalancer,
    ExternalName,
}

impl ServiceType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClusterIP => "ClusterIP",
            Self::NodePort => "NodePort",
            Self::LoadBalancer => "LoadBalancer",
            Self::ExternalName => "ExternalName",
        }
    }
}

fn port_checks(
    e: &mut Errors,
    at: &str,
    port: i32,
    target: Option<i32>,
    node_port: Option<i32>,
    ty: ServiceType,
) {
    e.check(
        (1..=65535).contains(&port),
        format!("{at}port"),
        "must be between 1 and 65535",
    );
    e.check(
        target.is_none_or(|t| (1..=65535).contains(&t)),
        format!("{at}targetPort"),
        "must be between 1 and 65535",
    );
    if let Some(np) = node_port {
        e.check(
            matches!(ty, ServiceType::NodePort | ServiceType::LoadBalancer),
            format!("{at}nodePort"),
            "only for NodePort and LoadBalancer services",
        );
        e.check(
            (30000..=32767).contains(&np),
            format!("{at}nodePort"),
            "must be between 30000 and 32767",
        );
    }
}

impl ExposeSpec {
    fn validate(&self, e: &mut Errors) {
        let ty = self.service_type.unwrap_or(ServiceType::ClusterIP);
        e.check(
            ty != ServiceType::ExternalName,
            "type",
            "an ExternalName service selects no pods: create it with PUT services/{name}",
        );
        port_checks(e, "", self.port, self.target_port, self.node_port, ty);
        if let Some(n) = &self.name
            && let Err(m) = validate::dns1035_label(n)
        {
            e.add("name", m);
        }
    }
}

/// A Service (created or updated with server-side apply).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"type": "ClusterIP", "selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}))]
pub struct ServiceSpec {
    #[serde(rename = "type")]
    pub service_type: Option<ServiceType>,
    /// Pods selected (not for ExternalName).
    #[serde(default)]
    pub selector: BTreeMap<String, String>,
    #[serde(default)]
    pub ports: Vec<ServicePortSpec>,
    /// The DNS name an ExternalName service aliases.
    pub external_name: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}))]
pub struct ServicePortSpec {
    #[schema(minimum = 1, maximum = 65535)]
    #[serde(deserialize_with = "integral::plain")]
    pub port: i32,
    #[schema(minimum = 1, maximum = 65535)]
    #[serde(default, deserialize_with = "integral::option")]
    pub target_port: Option<i32>,
    pub protocol: Option<Protocol>,
    #[schema(minimum = 30000, maximum = 32767)]
    #[serde(default, deserialize_with = "integral::option")]
    pub node_port: Option<i32>,
    /// Required when there is more than one port.
    pub name: Option<String>,
}

impl ServiceSpec {
    fn validate(&self, e: &mut Errors) {
        let ty = self.service_type.unwrap_or(ServiceType::ClusterIP);
        if ty == ServiceType::ExternalName {
            match &self.external_name {
                Some(n) => {
                    if let Err(m) = validate::dns1123_subdomain(n) {
                        e.add("externalName", m);
                    }
                }
                None => e.add("externalName", "required for an ExternalName service"),
            }
            e.check(
                self.selector.is_empty(),
                "selector",
                "an ExternalName service has no selector",
            );
        } else {
            e.check(
                !self.ports.is_empty(),
                "ports",
                "at least one port is required",
            );
            e.check(
                self.external_name.is_none(),
                "externalName",
                "only for ExternalName services",
            );
        }
        for (i, p) in self.ports.iter().enumerate() {
            port_checks(
                e,
                &format!("ports[{i}]."),
                p.port,
                p.target_port,
                p.node_port,
                ty,
            );
            if self.ports.len() > 1 {
                e.check(
                    p.name
                        .as_ref()
                        .is_some_and(|n| validate::dns1123_label(n).is_ok()),
                    format!("ports[{i}].name"),
                    "each port needs a name when there are several",
                );
            }
        }
        validate::labels(e, "selector", &self.selector);
        validate::labels(e, "labels", &self.labels);
    }
}

/// `kubectl label`: labels to set and to remove.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"set": {"tier": "frontend"}, "remove": ["canary"], "overwrite": false}))]
pub struct LabelChange {
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    #[serde(default)]
    pub remove: Vec<String>,
    /// Like `kubectl label --overwrite`: without it, changing an existing label's value is a 409.
    #[serde(default)]
    pub overwrite: bool,
}

/// Annotation and label keys whose values are never written to the audit log.
fn secret_like(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "token",
        "secret",
        "password",
        "passwd",
        "credential",
        "apikey",
        "api-key",
        "api_key",
        "private",
    ]
    .iter()
    .any(|s| k.contains(s))
}

const MASK: &str = "***";

impl Action {
    /// The kind and name of the object acted on (for a selector: the selector).
    pub fn resource(&self) -> (&'static str, String) {
        match self {
            Self::Deploy { name, .. }
            | Self::Create { name, .. }
            | Self::Scale { name, .. }
            | Self::SetImage { name, .. }
            | Self::Restart { name }
            | Self::Rollback { name, .. } => ("deployment", name.clone()),
            Self::Expose { deployment, spec } => (
                "service",
                spec.name.clone().unwrap_or_else(|| deployment.clone()),
            ),
            Self::PutService { name, .. } => ("service", name.clone()),
            Self::Delete { kind, name } | Self::Label { kind, name, .. } => {
                (kind.singular(), name.clone())
            }
            Self::DeleteSelected { kind, selector, .. } => {
                (kind.singular(), format!("-l {selector}"))
            }
        }
    }

    /// The request for the audit log: what was asked, with environment values and secret-looking
    /// annotations masked. Tokens never reach an action.
    pub fn summary(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            Self::Deploy { spec, .. } | Self::Create { spec, .. } => {
                let mut v = serde_json::to_value(spec).unwrap_or_default();
                if let Some(cs) = v["containers"].as_array_mut() {
                    for c in cs {
                        if let Some(env) = c["env"].as_array_mut() {
                            for e in env {
                                e["value"] = json!(MASK);
                            }
                        }
                    }
                }
                if let Some(a) = v["annotations"].as_object_mut() {
                    for (k, val) in a.iter_mut() {
                        if secret_like(k) {
                            *val = json!(MASK);
                        }
                    }
                }
                json!({ self.verb(): v })
            }
            Self::Scale { replicas, .. } => json!({"replicas": replicas}),
            Self::SetImage {
                container, image, ..
            } => json!({"container": container, "image": image}),
            Self::Restart { .. } | Self::Delete { .. } => json!({}),
            Self::Rollback {
                to_revision,
                expect_revision,
                ..
            } => json!({"toRevision": to_revision, "expectRevision": expect_revision}),
            Self::Expose { spec, .. } => serde_json::to_value(spec).unwrap_or_default(),
            Self::PutService { spec, .. } => serde_json::to_value(spec).unwrap_or_default(),
            Self::DeleteSelected {
                selector,
                max_affected,
                ..
            } => {
                json!({"labelSelector": selector, "maxAffected": max_affected})
            }
            Self::Label { change, .. } => {
                let set: std::collections::BTreeMap<&String, &str> = change
                    .set
                    .iter()
                    .map(|(k, v)| (k, if secret_like(k) { MASK } else { v.as_str() }))
                    .collect();
                json!({"set": set, "remove": change.remove, "overwrite": change.overwrite})
            }
        }
    }
}
