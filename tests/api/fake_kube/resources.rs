//! The resources the fake API server serves, with the API server's defaulting and validation for the
//! fields kubegate uses (k8s.io/kubernetes pkg/apis/apps/v1/defaults.go, pkg/apis/core/v1/defaults.go,
//! pkg/apis/{apps,core}/validation). Messages follow the API server's wording.

use serde_json::{Value, json};

use super::selector::{Selector, labels_of};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Namespace,
    Node,
    Deployment,
    ReplicaSet,
    Pod,
    Service,
    Event,
    StatefulSet,
    DaemonSet,
    Job,
    CronJob,
    HorizontalPodAutoscaler,
    ConfigMap,
    Secret,
}

pub const ALL: [Kind; 14] = [
    Kind::Namespace,
    Kind::Node,
    Kind::Deployment,
    Kind::ReplicaSet,
    Kind::Pod,
    Kind::Service,
    Kind::Event,
    Kind::StatefulSet,
    Kind::DaemonSet,
    Kind::Job,
    Kind::CronJob,
    Kind::HorizontalPodAutoscaler,
    Kind::ConfigMap,
    Kind::Secret,
];

impl Kind {
    pub fn plural(self) -> &'static str {
        match self {
            Kind::Namespace => "namespaces",
            Kind::Node => "nodes",
            Kind::Deployment => "deployments",
            Kind::ReplicaSet => "replicasets",
            Kind::Pod => "pods",
            Kind::Service => "services",
            Kind::Event => "events",
            Kind::StatefulSet => "statefulsets",
            Kind::DaemonSet => "daemonsets",
            Kind::Job => "jobs",
            Kind::CronJob => "cronjobs",
            Kind::HorizontalPodAutoscaler => "horizontalpodautoscalers",
            Kind::ConfigMap => "configmaps",
            Kind::Secret => "secrets",
        }
    }
    pub fn kind(self) -> &'static str {
        match self {
            Kind::Namespace => "Namespace",
            Kind::Node => "Node",
            Kind::Deployment => "Deployment",
            Kind::ReplicaSet => "ReplicaSet",
            Kind::Pod => "Pod",
            Kind::Service => "Service",
            Kind::Event => "Event",
            Kind::StatefulSet => "StatefulSet",
            Kind::DaemonSet => "DaemonSet",
            Kind::Job => "Job",
            Kind::CronJob => "CronJob",
            Kind::HorizontalPodAutoscaler => "HorizontalPodAutoscaler",
            Kind::ConfigMap => "ConfigMap",
            Kind::Secret => "Secret",
        }
    }
    pub fn group(self) -> &'static str {
        match self {
            Kind::Deployment | Kind::ReplicaSet | Kind::StatefulSet | Kind::DaemonSet => "apps",
            Kind::Job | Kind::CronJob => "batch",
            Kind::HorizontalPodAutoscaler => "autoscaling",
            _ => "",
        }
    }
    pub fn api_version(self) -> &'static str {
        match self.group() {
            "apps" => "apps/v1",
            "batch" => "batch/v1",
            "autoscaling" => "autoscaling/v2",
            _ => "v1",
        }
    }
    pub fn namespaced(self) -> bool {
        !matches!(self, Kind::Namespace | Kind::Node)
    }
    pub fn has_generation(self) -> bool {
        matches!(self, Kind::Deployment | Kind::ReplicaSet)
    }
    pub fn short_names(self) -> &'static [&'static str] {
        match self {
            Kind::Namespace => &["ns"],
            Kind::Node => &["no"],
            Kind::Deployment => &["deploy"],
            Kind::ReplicaSet => &["rs"],
            Kind::Pod => &["po"],
            Kind::Service => &["svc"],
            Kind::Event => &["ev"],
            Kind::StatefulSet => &["sts"],
            Kind::DaemonSet => &["ds"],
            Kind::Job => &[],
            Kind::CronJob => &["cj"],
            Kind::HorizontalPodAutoscaler => &["hpa"],
            Kind::ConfigMap => &["cm"],
            Kind::Secret => &[],
        }
    }
    /// `deployments.apps`, `pods`: how the API server names the resource in messages.
    pub fn qualified(self) -> String {
        if self.group().is_empty() {
            self.plural().to_owned()
        } else {
            format!("{}.{}", self.plural(), self.group())
        }
    }
    /// `Deployment.apps`: how validation errors name the kind.
    pub fn qualified_kind(self) -> String {
        if self.group().is_empty() {
            self.kind().to_owned()
        } else {
            format!("{}.{}", self.kind(), self.group())
        }
    }
    pub fn from_path(group_version: &str, plural: &str) -> Option<Kind> {
        ALL.into_iter()
            .find(|k| k.plural() == plural && (k.api_version() == group_version))
    }
    pub fn subresources(self) -> &'static [&'static str] {
        match self {
            Kind::Deployment | Kind::ReplicaSet => &["status", "scale"],
            Kind::Pod => &["status", "log"],
            Kind::Service | Kind::Namespace | Kind::Node => &["status"],
            Kind::Event | Kind::ConfigMap | Kind::Secret => &[],
            Kind::StatefulSet | Kind::DaemonSet | Kind::Job | Kind::CronJob => &["status"],
            Kind::HorizontalPodAutoscaler => &["status"],
        }
    }
}

fn set_default(obj: &mut Value, path: &[&str], value: Value) {
    let mut cur = obj;
    for (i, key) in path.iter().enumerate() {
        if !cur.is_object() {
            return;
        }
        if i == path.len() - 1 {
            if cur.get(*key).is_none_or(Value::is_null) {
                cur[*key] = value;
            }
            return;
        }
        if cur.get(*key).is_none_or(Value::is_null) {
            cur[*key] = json!({});
        }
        cur = &mut cur[*key];
    }
}

/// The API server's defaulting for the fields kubegate and kubectl read back.
pub fn default(kind: Kind, obj: &mut Value) {
    match kind {
        Kind::Deployment => {
            set_default(obj, &["spec", "replicas"], json!(1));
            set_default(obj, &["spec", "revisionHistoryLimit"], json!(10));
            set_default(obj, &["spec", "progressDeadlineSeconds"], json!(600));
            set_default(obj, &["spec", "strategy", "type"], json!("RollingUpdate"));
            if obj["spec"]["strategy"]["type"] == "RollingUpdate" {
                set_default(
                    obj,
                    &["spec", "strategy", "rollingUpdate", "maxSurge"],
                    json!("25%"),
                );
                set_default(
                    obj,
                    &["spec", "strategy", "rollingUpdate", "maxUnavailable"],
                    json!("25%"),
                );
            }
            default_pod_spec(&mut obj["spec"]["template"]["spec"]);
        }
        Kind::ReplicaSet => {
            set_default(obj, &["spec", "replicas"], json!(1));
            default_pod_spec(&mut obj["spec"]["template"]["spec"]);
        }
        Kind::Pod => default_pod_spec(&mut obj["spec"]),
        Kind::Service => {
            set_default(obj, &["spec", "type"], json!("ClusterIP"));
            if obj["spec"]["type"] != "ExternalName" {
                set_default(obj, &["spec", "sessionAffinity"], json!("None"));
                set_default(obj, &["spec", "ipFamilies"], json!(["IPv4"]));
                set_default(obj, &["spec", "ipFamilyPolicy"], json!("SingleStack"));
                set_default(obj, &["spec", "internalTrafficPolicy"], json!("Cluster"));
            }
            if matches!(
                obj["spec"]["type"].as_str(),
                Some("NodePort" | "LoadBalancer")
            ) {
                set_default(obj, &["spec", "externalTrafficPolicy"], json!("Cluster"));
            }
            if let Some(ports) = obj["spec"]["ports"].as_array_mut() {
                for p in ports {
                    set_default(p, &["protocol"], json!("TCP"));
                    if p.get("targetPort").is_none_or(Value::is_null) {
                        p["targetPort"] = p["port"].clone();
                    }
                }
            }
        }
        Kind::Event
        | Kind::StatefulSet
        | Kind::DaemonSet
        | Kind::Job
        | Kind::CronJob
        | Kind::HorizontalPodAutoscaler
        | Kind::ConfigMap => {}
        Kind::Secret => {
            // pkg/apis/core/v1/conversion.go: stringData is merged into data, base64, and gone.
            set_default(obj, &["type"], json!("Opaque"));
            if let Some(Value::Object(plain)) =
                obj.as_object_mut().and_then(|o| o.remove("stringData"))
            {
                use base64::Engine as _;
                for (k, v) in plain {
                    let text = v.as_str().unwrap_or_default().to_owned();
                    obj["data"][k] = json!(base64::engine::general_purpose::STANDARD.encode(text));
                }
            }
        }
        Kind::Namespace => {
            set_default(obj, &["spec", "finalizers"], json!(["kubernetes"]));
            set_default(obj, &["status", "phase"], json!("Active"));
            let name = obj["metadata"]["name"].clone();
            set_default(
                obj,
                &["metadata", "labels", "kubernetes.io/metadata.name"],
                name,
            );
        }
        Kind::Node => {}
    }
}

fn default_pod_spec(spec: &mut Value) {
    if !spec.is_object() {
        return;
    }
    set_default(spec, &["restartPolicy"], json!("Always"));
    set_default(spec, &["terminationGracePeriodSeconds"], json!(30));
    set_default(spec, &["dnsPolicy"], json!("ClusterFirst"));
    set_default(spec, &["securityContext"], json!({}));
    set_default(spec, &["schedulerName"], json!("default-scheduler"));
    if let Some(containers) = spec["containers"].as_array_mut() {
        for c in containers {
            let image = c["image"].as_str().unwrap_or("").to_owned();
            // pkg/apis/core/v1/defaults.go: Always for :latest or no tag, else IfNotPresent.
            let last = image.rsplit('/').next().unwrap_or("");
            let untagged_or_latest =
                !image.contains('@') && (!last.contains(':') || last.ends_with(":latest"));
            let policy = if untagged_or_latest {
                "Always"
            } else {
                "IfNotPresent"
            };
            set_default(c, &["imagePullPolicy"], json!(policy));
            set_default(
                c,
                &["terminationMessagePath"],
                json!("/dev/termination-log"),
            );
            set_default(c, &["terminationMessagePolicy"], json!("File"));
            set_default(c, &["resources"], json!({}));
            if let Some(ports) = c["ports"].as_array_mut() {
                for p in ports {
                    set_default(p, &["protocol"], json!("TCP"));
                }
            }
        }
    }
}

pub type Causes = Vec<(String, String, &'static str)>;

const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1035_LABEL_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";

pub fn is_dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

pub fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

fn is_dns1035_label(s: &str) -> bool {
    is_dns1123_label(s) && s.as_bytes()[0].is_ascii_lowercase()
}

fn invalid(causes: &mut Causes, field: &str, value: &Value, msg: &str) {
    causes.push((
        field.to_owned(),
        format!("Invalid value: {value}: {msg}"),
        "FieldValueInvalid",
    ));
}

fn required(causes: &mut Causes, field: &str) {
    causes.push((
        field.to_owned(),
        "Required value".to_owned(),
        "FieldValueRequired",
    ));
}

/// Validation of a create (old = None) or update.
pub fn validate(kind: Kind, obj: &Value, old: Option<&Value>) -> Causes {
    let mut causes = Causes::new();
    let name = obj["metadata"]["name"].as_str().unwrap_or("");
    let name_ok = match kind {
        Kind::Service => is_dns1035_label(name),
        Kind::Namespace => is_dns1123_label(name),
        _ => is_dns1123_subdomain(name),
    };
    if name.is_empty() {
        causes.push((
            "metadata.name".into(),
            "Required value: name or generateName is required".into(),
            "FieldValueRequired",
        ));
    } else if !name_ok {
        let msg = match kind {
            Kind::Service => DNS1035_LABEL_MSG,
            Kind::Namespace => DNS1123_LABEL_MSG,
            _ => DNS1123_SUBDOMAIN_MSG,
        };
        invalid(&mut causes, "metadata.name", &json!(name), msg);
    }
    match kind {
        Kind::Deployment | Kind::ReplicaSet => {
            let spec = &obj["spec"];
            if let Some(r) = spec["replicas"].as_i64()
                && r < 0
            {
                invalid(
                    &mut causes,
                    "spec.replicas",
                    &json!(r),
                    "must be greater than or equal to 0",
                );
            }
            let selector = &spec["selector"];
            if selector.is_null() || selector.as_object().is_some_and(|m| m.is_empty()) {
                required(&mut causes, "spec.selector");
            } else {
                let sel = Selector::from_label_selector(selector);
                let labels = labels_of(&spec["template"]);
                if sel.0.is_empty() {
                    causes.push((
                        "spec.selector".into(),
                        "Invalid value: \"null\": empty selector is invalid for deployment".into(),
                        "FieldValueInvalid",
                    ));
                } else if !sel.matches(&labels) {
                    invalid(
                        &mut causes,
                        "spec.template.metadata.labels",
                        &json!(labels),
                        "`selector` does not match template `labels`",
                    );
                }
                if let Some(old) = old
                    && old["spec"]["selector"] != *selector
                {
                    invalid(&mut causes, "spec.selector", selector, "field is immutable");
                }
            }
            validate_pod_spec(&spec["template"]["spec"], "spec.template.spec", &mut causes);
            if let Some(policy) = spec["template"]["spec"]["restartPolicy"].as_str()
                && policy != "Always"
            {
                causes.push((
                    "spec.template.spec.restartPolicy".into(),
                    format!("Unsupported value: \"{policy}\": supported values: \"Always\""),
                    "FieldValueNotSupported",
                ));
            }
        }
        Kind::Pod => validate_pod_spec(&obj["spec"], "spec", &mut causes),
        Kind::Service => validate_service(obj, old, &mut causes),
        _ => {}
    }
    causes
}

fn validate_pod_spec(spec: &Value, at: &str, causes: &mut Causes) {
    let containers = spec["containers"].as_array().cloned().unwrap_or_default();
    if containers.is_empty() {
        required(causes, &format!("{at}.containers"));
    }
    let mut seen = Vec::new();
    for (i, c) in containers.iter().enumerate() {
        let field = format!("{at}.containers[{i}]");
        match c["name"].as_str() {
            None | Some("") => required(causes, &format!("{field}.name")),
            Some(n) if !is_dns1123_label(n) => invalid(
                causes,
                &format!("{field}.name"),
                &json!(n),
                DNS1123_LABEL_MSG,
            ),
            Some(n) if seen.contains(&n) => causes.push((
                format!("{field}.name"),
                format!("Duplicate value: \"{n}\""),
                "FieldValueDuplicate",
            )),
            Some(n) => seen.push(n),
        }
        if c["image"].as_str().is_none_or(|s| s.trim().is_empty()) {
            required(causes, &format!("{field}.image"));
        }
        for (j, p) in c["ports"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let port = p["containerPort"].as_i64().unwrap_or(0);
            if !(1..=65535).contains(&port) {
                invalid(
                    causes,
                    &format!("{field}.ports[{j}].containerPort"),
                    &json!(port),
                    "must be between 1 and 65535, inclusive",
                );
            }
        }
    }
}

fn validate_service(obj: &Value, old: Option<&Value>, causes: &mut Causes) {
    let spec = &obj["spec"];
    let ty = spec["type"].as_str().unwrap_or("ClusterIP");
    if !matches!(
        ty,
        "ClusterIP" | "NodePort" | "LoadBalancer" | "ExternalName"
    ) {
        causes.push(("spec.type".into(), format!("Unsupported value: \"{ty}\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\""), "FieldValueNotSupported"));
    }
    let ports = spec["ports"].as_array().cloned().unwrap_or_default();
    if ty == "ExternalName" {
        if spec["externalName"].as_str().is_none_or(str::is_empty) {
            required(causes, "spec.externalName");
        }
    } else if ports.is_empty() {
        required(causes, "spec.ports");
    }
    let mut seen = Vec::new();
    for (i, p) in ports.iter().enumerate() {
        let port = p["port"].as_i64().unwrap_or(0);
        if !(1..=65535).contains(&port) {
            invalid(
                causes,
                &format!("spec.ports[{i}].port"),
                &json!(port),
                "must be between 1 and 65535, inclusive",
            );
        }
        let key = (port, p["protocol"].as_str().unwrap_or("TCP").to_owned());
        if seen.contains(&key) {
            causes.push((
                format!("spec.ports[{i}]"),
                format!(
                    "Duplicate value: core.ServicePort{{Name:\"\", Protocol:\"{}\", Port:{port}}}",
                    key.1
                ),
                "FieldValueDuplicate",
            ));
        }
        seen.push(key);
        if ports.len() > 1 && p["name"].as_str().is_none_or(str::is_empty) {
            required(causes, &format!("spec.ports[{i}].name"));
        }
        if let Some(np) = p["nodePort"].as_i64() {
            if np != 0 && ty == "ClusterIP" {
                causes.push((
                    format!("spec.ports[{i}].nodePort"),
                    "Forbidden: may not be used when `type` is 'ClusterIP'".into(),
                    "FieldValueForbidden",
                ));
            } else if np != 0 && !(30000..=32767).contains(&np) {
                invalid(
                    causes,
                    &format!("spec.ports[{i}].nodePort"),
                    &json!(np),
                    "provided port is not in the valid range. The range of valid ports is 30000-32767",
                );
            }
        }
        if let Some(tp) = p["targetPort"].as_i64()
            && !(1..=65535).contains(&tp)
        {
            invalid(
                causes,
                &format!("spec.ports[{i}].targetPort"),
                &json!(tp),
                "must be between 1 and 65535, inclusive",
            );
        }
    }
    if let Some(old) = old {
        let (oip, nip) = (&old["spec"]["clusterIP"], &spec["clusterIP"]);
        if !oip.is_null()
            && !nip.is_null()
            && oip != nip
            && old["spec"]["type"] != "ExternalName"
            && ty != "ExternalName"
        {
            invalid(causes, "spec.clusterIPs[0]", nip, "may not change once set");
        }
    }
}
