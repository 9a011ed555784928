//! The fake API server's storage and its write semantics: uid, one resourceVersion counter,
//! generation bumped only on spec changes, creationTimestamp, optimistic concurrency, no-op writes
//! that change nothing (not even resourceVersion), dry runs, cascading deletion through
//! ownerReferences, field ownership, and the watch event log.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::managed::{self, ManagedEntry};
use super::resources::{self, Kind};
use super::selector::{Selector, labels_of};

/// A Kubernetes `Status` failure.
#[derive(Debug, Clone)]
pub struct ApiErr {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Value,
}

impl ApiErr {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            details: Value::Null,
        }
    }
    pub fn not_found(kind: Kind, name: &str) -> Self {
        let mut e = Self::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", kind.qualified()),
        );
        e.details = json!({"name": name, "group": kind.group(), "kind": kind.plural()});
        e
    }
    pub fn namespace_not_found(ns: &str) -> Self {
        let mut e = Self::new(404, "NotFound", format!("namespaces \"{ns}\" not found"));
        e.details = json!({"name": ns, "kind": "namespaces"});
        e
    }
    pub fn already_exists(kind: Kind, name: &str) -> Self {
        let mut e = Self::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", kind.qualified()),
        );
        e.details = json!({"name": name, "group": kind.group(), "kind": kind.plural()});
        e
    }
    pub fn conflict(kind: Kind, name: &str) -> Self {
        let mut e = Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                kind.qualified()
            ),
        );
        e.details = json!({"name": name, "group": kind.group(), "kind": kind.plural()});
        e
    }
    pub fn invalid(kind: Kind, name: &str, causes: resources::Causes) -> Self {
        let rendered: Vec<String> = causes.iter().map(|(f, m, _)| format!("{f}: {m}")).collect();
        let summary = if rendered.len() == 1 {
            rendered[0].clone()
        } else {
            format!("[{}]", rendered.join(", "))
        };
        let mut e = Self::new(
            422,
            "Invalid",
            format!("{} \"{name}\" is invalid: {summary}", kind.qualified_kind()),
        );
        e.details = json!({
            "name": name, "group": kind.group(), "kind": kind.kind(),
            "causes": causes.iter().map(|(f, m, r)| json!({"reason": r, "message": m, "field": f})).collect::<Vec<_>>(),
        });
        e
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }
    pub fn to_json(&self) -> Value {
        let mut s = json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": self.message, "reason": self.reason, "code": self.code,
        });
        if !self.details.is_null() {
            s["details"] = self.details.clone();
        }
        s
    }
}

#[derive(Debug)]
pub struct Event {
    pub rv: u64,
    pub kind: Kind,
    pub namespace: String,
    pub event_type: &'static str,
    pub object: Value,
}

#[derive(Clone)]
pub struct Stored {
    pub value: Value,
    pub managed: Vec<ManagedEntry>,
    /// `managed` as `metadata.managedFields`, rendered once per change (every read and watch
    /// event shows it; rendering it each time was most of the fake's cost).
    managed_json: Option<Value>,
}

impl Stored {
    pub fn new(value: Value, managed: Vec<ManagedEntry>) -> Self {
        let mut s = Self {
            value,
            managed,
            managed_json: None,
        };
        s.managed_changed();
        s
    }

    /// Call after changing `managed` in place.
    pub fn managed_changed(&mut self) {
        self.managed_json = (!self.managed.is_empty()).then(|| managed::render(&self.managed));
    }
}

/// What a pod of a given image does once created (set by tests).
#[derive(Debug, Clone, PartialEq)]
pub enum PodBehavior {
    /// Running and ready at once (the default).
    Ready,
    /// Running, ready after this long.
    ReadyAfter(std::time::Duration),
    /// Running, never ready (a failing readiness probe).
    NeverReady,
    /// A container stuck waiting with this reason: ImagePullBackOff, ErrImagePull,
    /// CrashLoopBackOff, CreateContainerConfigError.
    Waiting(String),
    /// The scheduler finds no node.
    Unschedulable,
    /// The API server refuses the pods (a quota, an admission check), with this reason: the
    /// ReplicaSet cannot create them.
    Forbidden(String),
}

pub type Key = (Kind, String, String);

/// How many events the fake keeps for watches that resume from a resourceVersion.
pub const EVENT_WINDOW: usize = 10_000;

/// Parsed field selector terms: (dotted path, value, negated).
pub type FieldSelector = Vec<(String, String, bool)>;

pub struct State {
    pub objects: BTreeMap<Key, Stored>,
    pub rv: u64,
    /// The most recent events (kube-apiserver's watch cache window); a watch from an older
    /// resourceVersion gets 410 Expired, as from the real one.
    pub events: VecDeque<Arc<Event>>,
    /// The resourceVersion of the newest event that fell out of the window.
    pub compacted_rv: u64,
    /// How many events the window holds (EVENT_WINDOW unless a test shrinks it).
    pub event_window: usize,
    pub tx: broadcast::Sender<Arc<Event>>,
    next_ip: u32,
    pub behaviors: HashMap<String, PodBehavior>,
    /// (namespace, deployment, generation) whose progress deadline a test declared exceeded.
    pub deadline_exceeded: HashSet<(String, String, i64)>,
    /// Pods whose delayed readiness has come due.
    pub ready_due: HashSet<String>,
    /// Log lines by (namespace, pod, container).
    pub logs: HashMap<(String, String, String), Vec<String>>,
}

pub fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

pub fn random_suffix(len: usize) -> String {
    use rand::Rng;
    // The alphabet of k8s.io/apimachinery/pkg/util/rand: no vowels, no confusable characters.
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Go's decoding drops JSON nulls for optional fields; what the API server stores has none
/// (kubectl sends `creationTimestamp: null` inside pod templates, for one).
fn strip_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, x| !x.is_null());
            m.values_mut().for_each(strip_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

/// Equal but for `metadata.resourceVersion` and `metadata.managedFields` (compared in place:
/// cloning both objects to strip them was a measurable part of every write).
fn same_but_volatile(a: &Value, b: &Value) -> bool {
    const VOLATILE: [&str; 2] = ["resourceVersion", "managedFields"];
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return a == b;
    };
    let meta_eq = |x: &Value, y: &Value| match (x.as_object(), y.as_object()) {
        (Some(x), Some(y)) => {
            let kept = |m: &serde_json::Map<String, Value>| {
                m.iter()
                    .filter(|(k, _)| !VOLATILE.contains(&k.as_str()))
                    .count()
            };
            kept(x) == kept(y)
                && x.iter()
                    .filter(|(k, _)| !VOLATILE.contains(&k.as_str()))
                    .all(|(k, v)| y.get(k) == Some(v))
        }
        _ => x == y,
    };
    a.len() == b.len()
        && a.iter().all(|(k, v)| match b.get(k) {
            Some(w) if k == "metadata" => meta_eq(v, w),
            Some(w) => v == w,
            None => false,
        })
}

impl State {
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(4096);
        let mut s = Self {
            objects: BTreeMap::new(),
            rv: 100,
            events: VecDeque::new(),
            compacted_rv: 0,
            event_window: EVENT_WINDOW,
            tx,
            next_ip: 1,
            behaviors: HashMap::new(),
            deadline_exceeded: HashSet::new(),
            ready_due: HashSet::new(),
            logs: HashMap::new(),
        };
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            s.create(
                Kind::Namespace,
                "",
                json!({"metadata": {"name": ns}}),
                "kube-apiserver",
                false,
            )
            .expect("seed namespace");
        }
        s
    }

    pub fn bump(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    pub fn render(&self, kind: Kind, stored: &Stored) -> Value {
        let mut v = stored.value.clone();
        if let Some(m) = v.as_object_mut() {
            m.insert("apiVersion".into(), json!(kind.api_version()));
            m.insert("kind".into(), json!(kind.kind()));
        }
        if let Some(m) = &stored.managed_json {
            v["metadata"]["managedFields"] = m.clone();
        }
        v
    }

    pub fn get(&self, kind: Kind, ns: &str, name: &str) -> Option<Value> {
        self.objects
            .get(&(kind, ns.to_owned(), name.to_owned()))
            .map(|s| self.render(kind, s))
    }

    /// Whether `get` would find it (without rendering it).
    pub fn exists(&self, kind: Kind, ns: &str, name: &str) -> bool {
        self.objects
            .contains_key(&(kind, ns.to_owned(), name.to_owned()))
    }

    /// An object as stored, without apiVersion, kind and managedFields: what the controllers
    /// inside the fake read (rendering managedFields for them was most of their cost).
    pub fn peek(&self, kind: Kind, ns: &str, name: &str) -> Option<Value> {
        self.objects
            .get(&(kind, ns.to_owned(), name.to_owned()))
            .map(|s| s.value.clone())
    }

    /// The objects of one kind (in one namespace, when given), in key order: a range of the map,
    /// not a pass over everything (Events pile up by the thousand in a long run).
    pub fn of_kind<'a>(
        &'a self,
        kind: Kind,
        ns: Option<&'a str>,
    ) -> impl Iterator<Item = (&'a Key, &'a Stored)> + 'a {
        let from = (kind, ns.unwrap_or_default().to_owned(), String::new());
        self.objects
            .range(from..)
            .take_while(move |((k, n, _), _)| *k == kind && ns.is_none_or(|ns| ns == n))
    }

    /// Every object but the Events, which neither own nor are owned by anything (and are most of
    /// the objects in a long run): what owner references are looked for in.
    pub fn ownable(&self) -> impl Iterator<Item = (&Key, &Stored)> {
        self.objects
            .iter()
            .filter(|((k, _, _), _)| *k != Kind::Event)
    }

    /// Objects of a kind in a namespace matching a label selector, as stored (see `peek`).
    pub fn select(&self, kind: Kind, ns: &str, labels: &Selector) -> Vec<Value> {
        self.of_kind(kind, Some(ns))
            .filter(|(_, s)| labels.matches(&labels_of(&s.value)))
            .map(|(_, s)| s.value.clone())
            .collect()
    }

    fn emit(&mut self, kind: Kind, ns: &str, event_type: &'static str, object: Value, rv: u64) {
        let ev = Arc::new(Event {
            rv,
            kind,
            namespace: ns.to_owned(),
            event_type,
            object,
        });
        while self.events.len() >= self.event_window
            && let Some(old) = self.events.pop_front()
        {
            self.compacted_rv = old.rv;
        }
        self.events.push_back(ev.clone());
        let _ = self.tx.send(ev);
    }

    pub fn list(
        &self,
        kind: Kind,
        ns: Option<&str>,
        labels: &Selector,
        fields: &[(String, String, bool)],
    ) -> Vec<Value> {
        // Selectors see the stored object (labels and the selectable fields are all in it);
        // only matches are rendered.
        self.of_kind(kind, ns)
            .filter(|(_, s)| labels.matches(&labels_of(&s.value)) && field_match(&s.value, fields))
            .map(|(_, s)| self.render(kind, s))
            .collect()
    }

    fn check_namespace(&self, kind: Kind, ns: &str) -> Result<(), ApiErr> {
        if kind.namespaced()
            && !self
                .objects
                .contains_key(&(Kind::Namespace, String::new(), ns.to_owned()))
        {
            return Err(ApiErr::namespace_not_found(ns));
        }
        Ok(())
    }

    /// POST: create an object (or validate it only, for `dryRun=All`).
    pub fn create(
        &mut self,
        kind: Kind,
        ns: &str,
        mut body: Value,
        manager: &str,
        dry_run: bool,
    ) -> Result<Value, ApiErr> {
        check_type(kind, &body)?;
        if !body.is_object() {
            return Err(ApiErr::bad_request(
                "the body of the request was in an unknown format",
            ));
        }
        if body["metadata"].is_null() {
            body["metadata"] = json!({});
        }
        if let Some(bns) = body["metadata"]["namespace"].as_str()
            && kind.namespaced()
            && bns != ns
        {
            return Err(ApiErr::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        if body["metadata"]["name"].as_str().is_none_or(str::is_empty)
            && let Some(prefix) = body["metadata"]["generateName"].as_str()
        {
            body["metadata"]["name"] = json!(format!("{prefix}{}", random_suffix(5)));
        }
        let name = body["metadata"]["name"].as_str().unwrap_or("").to_owned();
        self.check_namespace(kind, ns)?;
        if self
            .objects
            .contains_key(&(kind, key_ns(kind, ns), name.clone()))
        {
            return Err(ApiErr::already_exists(kind, &name));
        }
        let mut managed = Vec::new();
        let obj = self.prepare_create(kind, ns, body)?;
        managed::record_update(
            &mut managed,
            manager,
            "",
            kind.api_version(),
            &now(),
            &json!({}),
            &obj,
        );
        self.insert_new(kind, ns, obj, managed, dry_run)
    }

    fn prepare_create(&mut self, kind: Kind, ns: &str, mut obj: Value) -> Result<Value, ApiErr> {
        strip_nulls(&mut obj);
        let name = obj["metadata"]["name"].as_str().unwrap_or("").to_owned();
        resources::default(kind, &mut obj);
        if kind == Kind::Service {
            self.allocate_service(&mut obj, None)?;
        }
        let causes = resources::validate(kind, &obj, None);
        if !causes.is_empty() {
            return Err(ApiErr::invalid(kind, &name, causes));
        }
        let meta = obj["metadata"]
            .as_object_mut()
            .expect("metadata is an object");
        meta.remove("resourceVersion");
        meta.remove("managedFields");
        meta.remove("deletionTimestamp");
        meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        meta.insert("creationTimestamp".into(), json!(now()));
        if kind.namespaced() {
            meta.insert("namespace".into(), json!(ns));
        } else {
            meta.remove("namespace");
        }
        if kind.has_generation() {
            meta.insert("generation".into(), json!(1));
        }
        match kind {
            // The API server drops status on create for these (their status is the controllers').
            Kind::Deployment | Kind::ReplicaSet => {
                obj["status"] = json!({});
            }
            Kind::Service => {
                obj["status"] = json!({"loadBalancer": {}});
            }
            _ => {}
        }
        Ok(obj)
    }

    fn insert_new(
        &mut self,
        kind: Kind,
        ns: &str,
        mut obj: Value,
        managed: Vec<ManagedEntry>,
        dry_run: bool,
    ) -> Result<Value, ApiErr> {
        let name = obj["metadata"]["name"].as_str().unwrap_or("").to_owned();
        if dry_run {
            let stored = Stored::new(obj, managed);
            return Ok(self.render(kind, &stored));
        }
        let rv = self.bump();
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        let stored = Stored::new(obj, managed);
        let rendered = self.render(kind, &stored);
        self.objects.insert((kind, key_ns(kind, ns), name), stored);
        self.emit(kind, ns, "ADDED", rendered.clone(), rv);
        Ok(rendered)
    }

    /// Finish an update of `key` to `new` (already patched/replaced), with ownership either
    /// recorded for `manager` or already computed (`managed` = Some, for apply).
    #[allow(clippy::too_many_arguments)]
    pub fn finish_update(
        &mut self,
        kind: Kind,
        ns: &str,
        name: &str,
        new: Value,
        manager: &str,
        subresource: &str,
        managed: Option<Vec<ManagedEntry>>,
        dry_run: bool,
    ) -> Result<Value, ApiErr> {
        let key = (kind, key_ns(kind, ns), name.to_owned());
        // The old object is taken out of the map (not cloned) while the new one is made, and put
        // back unless replaced; a Service stays in place, as its ports are allocated against
        // every Service in the map.
        let in_place = kind == Kind::Service;
        let old = if in_place {
            self.objects.get(&key).cloned()
        } else {
            self.objects.remove(&key)
        }
        .ok_or_else(|| ApiErr::not_found(kind, name))?;
        match self.updated(kind, name, new, manager, subresource, managed, &old) {
            Err(e) => {
                if !in_place {
                    self.objects.insert(key, old);
                }
                Err(e)
            }
            Ok((new, entries)) => {
                let unchanged = same_but_volatile(&old.value, &new);
                if dry_run || unchanged {
                    // A no-op write changes nothing, not even resourceVersion; a dry run stores
                    // nothing.
                    let stored =
                        Stored::new(if unchanged { old.value.clone() } else { new }, entries);
                    let rendered = self.render(kind, &stored);
                    let mut live = old;
                    if unchanged && !dry_run {
                        live.managed = stored.managed;
                        live.managed_changed();
                    }
                    self.objects.insert(key, live);
                    return Ok(rendered);
                }
                let mut new = new;
                let rv = self.bump();
                new["metadata"]["resourceVersion"] = json!(rv.to_string());
                let stored = Stored::new(new, entries);
                let rendered = self.render(kind, &stored);
                self.objects.insert(key, stored);
                self.emit(kind, ns, "MODIFIED", rendered.clone(), rv);
                Ok(rendered)
            }
        }
    }

    /// The object an update of `old` to `new` leaves, and its managed fields (see
    /// `finish_update`).
    #[allow(clippy::too_many_arguments)]
    fn updated(
        &mut self,
        kind: Kind,
        name: &str,
        mut new: Value,
        manager: &str,
        subresource: &str,
        managed: Option<Vec<ManagedEntry>>,
        old: &Stored,
    ) -> Result<(Value, Vec<ManagedEntry>), ApiErr> {
        let old_value = &old.value;
        let current_rv = old_value["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        if let Some(rv) = new["metadata"]["resourceVersion"].as_str()
            && !rv.is_empty()
            && rv != current_rv
        {
            return Err(ApiErr::conflict(kind, name));
        }
        if new["metadata"]["name"].as_str().is_some_and(|n| n != name) {
            return Err(ApiErr::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                new["metadata"]["name"].as_str().unwrap_or("")
            )));
        }
        check_type(kind, &new)?;
        strip_nulls(&mut new);
        // Identity and system fields are the server's.
        for f in [
            "uid",
            "creationTimestamp",
            "generation",
            "namespace",
            "name",
            "ownerReferences",
            "deletionTimestamp",
        ] {
            match old_value["metadata"].get(f) {
                Some(v) if f != "ownerReferences" || new["metadata"].get(f).is_none() => {
                    new["metadata"][f] = v.clone()
                }
                _ => {}
            }
        }
        // Writes of the object keep its status (kinds without one have none).
        if subresource != "status" {
            match old_value.get("status") {
                Some(status) => new["status"] = status.clone(),
                None => {
                    if let Some(o) = new.as_object_mut() {
                        o.remove("status");
                    }
                }
            }
        }
        resources::default(kind, &mut new);
        if kind == Kind::Service {
            self.allocate_service(&mut new, Some(old_value))?;
        }
        let causes = resources::validate(kind, &new, Some(old_value));
        if !causes.is_empty() {
            return Err(ApiErr::invalid(kind, name, causes));
        }
        if kind.has_generation() && old_value["spec"] != new["spec"] {
            let g = old_value["metadata"]["generation"].as_i64().unwrap_or(1);
            new["metadata"]["generation"] = json!(g + 1);
        }
        new["metadata"]["resourceVersion"] = json!(current_rv);
        if let Some(m) = new["metadata"].as_object_mut() {
            m.remove("managedFields");
            if m.get("annotations")
                .is_some_and(|a| a.as_object().is_some_and(|a| a.is_empty()))
            {
                m.remove("annotations");
            }
        }
        let entries = match managed {
            Some(m) => m,
            None => {
                let mut entries = old.managed.clone();
                managed::record_update(
                    &mut entries,
                    manager,
                    subresource,
                    kind.api_version(),
                    &now(),
                    old_value,
                    &new,
                );
                entries
            }
        };
        Ok((new, entries))
    }

    /// PUT.
    #[allow(clippy::too_many_arguments)]
    pub fn replace(
        &mut self,
        kind: Kind,
        ns: &str,
        name: &str,
        body: Value,
        manager: &str,
        subresource: &str,
        dry_run: bool,
    ) -> Result<Value, ApiErr> {
        let current = self
            .get(kind, ns, name)
            .ok_or_else(|| ApiErr::not_found(kind, name))?;
        let new = if subresource == "status" {
            let mut n = current.clone();
            n["status"] = body["status"].clone();
            if let Some(rv) = body["metadata"]["resourceVersion"].as_str() {
                n["metadata"]["resourceVersion"] = json!(rv);
            }
            n
        } else {
            body
        };
        self.finish_update(kind, ns, name, new, manager, subresource, None, dry_run)
    }

    /// PATCH with one of the four patch types.
    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        &mut self,
        kind: Kind,
        ns: &str,
        name: &str,
        content_type: &str,
        body: &[u8],
        manager: Option<&str>,
        force: bool,
        subresource: &str,
        dry_run: bool,
    ) -> Result<Value, ApiErr> {
        let ct = content_type.split(';').next().unwrap_or("").trim();
        if ct == "application/apply-patch+yaml" || ct == "application/apply-patch+cbor" {
            let manager = manager.filter(|m| !m.is_empty()).ok_or_else(|| {
                ApiErr::invalid_plain("PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch")
            })?;
            let applied: Value = serde_json::from_slice(body)
                .or_else(|_| serde_yaml_like(body))
                .map_err(|e| ApiErr::bad_request(format!("error decoding YAML: {e}")))?;
            return self.apply(kind, ns, name, applied, manager, force, dry_run);
        }
        let manager = manager.unwrap_or("unknown");
        // A subresource's patch changes one part of the object as stored (finish_update renders
        // the answer); a patch of the object itself sees it as a client would.
        let mut current = if subresource.is_empty() {
            self.get(kind, ns, name)
        } else {
            self.peek(kind, ns, name)
        }
        .ok_or_else(|| ApiErr::not_found(kind, name))?;
        let patch: Value = serde_json::from_slice(body)
            .map_err(|e| ApiErr::bad_request(format!("error decoding patch: {e}")))?;
        let mut patched = match subresource {
            "scale" => scale_of(kind, &current),
            // Not needed again on this path.
            "" => std::mem::take(&mut current),
            _ => current.clone(),
        };
        match ct {
            "application/json-patch+json" => {
                let p: json_patch::Patch = serde_json::from_value(patch)
                    .map_err(|e| ApiErr::bad_request(e.to_string()))?;
                json_patch::patch(&mut patched, &p.0).map_err(|e| match e.kind {
                    json_patch::PatchErrorKind::TestFailed => ApiErr::new(422, "Invalid", format!("the server rejected our request due to an error in our request: testing value {} failed", e.path)),
                    _ => ApiErr::bad_request(e.to_string()),
                })?;
            }
            "application/merge-patch+json" => json_patch::merge(&mut patched, &patch),
            "application/strategic-merge-patch+json" => {
                managed::merge_into(&mut patched, &patch, &mut Vec::new(), true)
            }
            other => {
                return Err(ApiErr::new(
                    415,
                    "UnsupportedMediaType",
                    format!(
                        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {other:?})"
                    ),
                ));
            }
        }
        if subresource == "scale" {
            let replicas = patched["spec"]["replicas"].clone();
            let mut new = current;
            new["spec"]["replicas"] = replicas;
            if let Some(rv) = patched["metadata"]["resourceVersion"].as_str() {
                new["metadata"]["resourceVersion"] = json!(rv);
            }
            let out = self.finish_update(kind, ns, name, new, manager, "scale", None, dry_run)?;
            return Ok(scale_of(kind, &out));
        }
        if subresource == "status" {
            let mut new = current;
            new["status"] = patched["status"].clone();
            return self.finish_update(kind, ns, name, new, manager, "status", None, dry_run);
        }
        self.finish_update(kind, ns, name, patched, manager, "", None, dry_run)
    }

    /// Server-side apply (creates when missing).
    #[allow(clippy::too_many_arguments)]
    fn apply(
        &mut self,
        kind: Kind,
        ns: &str,
        name: &str,
        applied: Value,
        manager: &str,
        force: bool,
        dry_run: bool,
    ) -> Result<Value, ApiErr> {
        check_type(kind, &applied)?;
        if applied["metadata"]["name"]
            .as_str()
            .is_some_and(|n| n != name)
        {
            return Err(ApiErr::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                applied["metadata"]["name"].as_str().unwrap_or("")
            )));
        }
        let key = (kind, key_ns(kind, ns), name.to_owned());
        let now = now();
        match self.objects.get(&key) {
            None => {
                self.check_namespace(kind, ns)?;
                let mut entries = Vec::new();
                let mut obj = managed::apply(
                    &mut entries,
                    manager,
                    kind.api_version(),
                    &now,
                    None,
                    &applied,
                    force,
                )
                .map_err(|c| conflict_error(kind, name, &c))?;
                obj["metadata"]["name"] = json!(name);
                let obj = self.prepare_create(kind, ns, obj)?;
                self.insert_new(kind, ns, obj, entries, dry_run)
            }
            Some(stored) => {
                let mut entries = stored.managed.clone();
                let live = stored.value.clone();
                let mut merged = managed::apply(
                    &mut entries,
                    manager,
                    kind.api_version(),
                    &now,
                    Some(&live),
                    &applied,
                    force,
                )
                .map_err(|c| conflict_error(kind, name, &c))?;
                // Apply never carries a resourceVersion precondition unless the config has one.
                if applied["metadata"]["resourceVersion"].is_null() {
                    merged["metadata"]["resourceVersion"] =
                        live["metadata"]["resourceVersion"].clone();
                }
                self.finish_update(kind, ns, name, merged, manager, "", Some(entries), dry_run)
            }
        }
    }

    /// DELETE one object, cascading to dependents unless orphaned.
    pub fn delete(
        &mut self,
        kind: Kind,
        ns: &str,
        name: &str,
        propagation: &str,
        dry_run: bool,
    ) -> Result<Value, ApiErr> {
        let key = (kind, key_ns(kind, ns), name.to_owned());
        let stored = self
            .objects
            .get(&key)
            .ok_or_else(|| ApiErr::not_found(kind, name))?;
        let uid = stored.value["metadata"]["uid"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        let rendered = self.render(kind, stored);
        if !dry_run {
            self.remove(&key);
            match propagation {
                "Orphan" => self.orphan_dependents(&uid),
                _ => self.delete_dependents(&uid),
            }
        }
        let _ = rendered;
        Ok(json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
            "details": {"name": name, "group": kind.group(), "kind": kind.plural(), "uid": uid},
        }))
    }

    pub fn remove(&mut self, key: &Key) -> Option<Value> {
        let stored = self.objects.remove(key)?;
        let rv = self.bump();
        let mut rendered = self.render(key.0, &stored);
        rendered["metadata"]["resourceVersion"] = json!(rv.to_string());
        self.emit(key.0, &key.1, "DELETED", rendered.clone(), rv);
        Some(rendered)
    }

    fn dependents(&self, owner_uid: &str) -> Vec<Key> {
        self.ownable()
            .filter(|(_, s)| {
                s.value["metadata"]["ownerReferences"]
                    .as_array()
                    .is_some_and(|refs| refs.iter().any(|r| r["uid"] == owner_uid))
            })
            .map(|(k, _)| k.clone())
            .collect()
    }

    fn delete_dependents(&mut self, owner_uid: &str) {
        for key in self.dependents(owner_uid) {
            let uid = self.objects[&key].value["metadata"]["uid"]
                .as_str()
                .unwrap_or("")
                .to_owned();
            self.remove(&key);
            self.delete_dependents(&uid);
        }
    }

    fn orphan_dependents(&mut self, owner_uid: &str) {
        for key in self.dependents(owner_uid) {
            let (kind, ns, name) = key.clone();
            let _ = self.internal_update(kind, &ns, &name, "kube-controller-manager", |o| {
                if let Some(refs) = o["metadata"]["ownerReferences"].as_array_mut() {
                    refs.retain(|r| r["uid"] != owner_uid);
                }
                if o["metadata"]["ownerReferences"]
                    .as_array()
                    .is_some_and(|r| r.is_empty())
                {
                    o["metadata"]
                        .as_object_mut()
                        .expect("object")
                        .remove("ownerReferences");
                }
            });
        }
    }

    /// A write by a controller inside the fake (no validation of the user-facing kind).
    /// Returns whether anything changed.
    pub fn internal_update(
        &mut self,
        kind: Kind,
        ns: &str,
        name: &str,
        manager: &str,
        f: impl FnOnce(&mut Value),
    ) -> bool {
        let key = (kind, key_ns(kind, ns), name.to_owned());
        let Some(stored) = self.objects.get(&key) else {
            return false;
        };
        let mut new = stored.value.clone();
        f(&mut new);
        if new == stored.value {
            return false;
        }
        let mut stored = self.objects.remove(&key).expect("exists");
        managed::record_update(
            &mut stored.managed,
            manager,
            "",
            kind.api_version(),
            &now(),
            &stored.value,
            &new,
        );
        stored.managed_changed();
        if kind.has_generation() && stored.value["spec"] != new["spec"] {
            let g = stored.value["metadata"]["generation"].as_i64().unwrap_or(1);
            new["metadata"]["generation"] = json!(g + 1);
        }
        let rv = self.bump();
        new["metadata"]["resourceVersion"] = json!(rv.to_string());
        stored.value = new;
        let rendered = self.render(kind, &stored);
        self.objects.insert(key, stored);
        self.emit(kind, ns, "MODIFIED", rendered, rv);
        true
    }

    /// A create by a controller inside the fake.
    pub fn internal_create(
        &mut self,
        kind: Kind,
        ns: &str,
        obj: Value,
        manager: &str,
    ) -> Result<Value, ApiErr> {
        self.create(kind, ns, obj, manager, false)
    }

    fn allocate_service(&mut self, obj: &mut Value, old: Option<&Value>) -> Result<(), ApiErr> {
        let ty = obj["spec"]["type"]
            .as_str()
            .unwrap_or("ClusterIP")
            .to_owned();
        if ty == "ExternalName" {
            if let Some(spec) = obj["spec"].as_object_mut() {
                spec.remove("clusterIP");
                spec.remove("clusterIPs");
            }
            return Ok(());
        }
        if obj["spec"]["clusterIP"].is_null() || obj["spec"]["clusterIP"] == "" {
            let ip = match old.and_then(|o| o["spec"]["clusterIP"].as_str()) {
                Some(ip) => ip.to_owned(),
                None => {
                    self.next_ip += 1;
                    format!("10.96.{}.{}", self.next_ip / 250, self.next_ip % 250 + 1)
                }
            };
            obj["spec"]["clusterIP"] = json!(ip);
        }
        obj["spec"]["clusterIPs"] = json!([obj["spec"]["clusterIP"].clone()]);
        let name = obj["metadata"]["name"].as_str().unwrap_or("").to_owned();
        let ns = obj["metadata"]["namespace"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        let used: HashSet<i64> = self
            .of_kind(Kind::Service, None)
            .filter(|((_, n, nm), _)| !(n == &ns && nm == &name))
            .flat_map(|(_, s)| {
                s.value["spec"]["ports"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .filter_map(|p| p["nodePort"].as_i64())
            .collect();
        let needs_node_port = matches!(ty.as_str(), "NodePort" | "LoadBalancer");
        let old_ports = old
            .map(|o| o["spec"]["ports"].clone())
            .unwrap_or(Value::Null);
        if let Some(ports) = obj["spec"]["ports"].as_array_mut() {
            let mut taken = used.clone();
            for (i, p) in ports.iter_mut().enumerate() {
                if !needs_node_port {
                    continue;
                }
                match p["nodePort"].as_i64() {
                    Some(np) if np != 0 => {
                        if used.contains(&np) {
                            return Err(ApiErr::invalid(
                                Kind::Service,
                                &name,
                                vec![(
                                    format!("spec.ports[{i}].nodePort"),
                                    format!(
                                        "Invalid value: {np}: provided port is already allocated"
                                    ),
                                    "FieldValueInvalid",
                                )],
                            ));
                        }
                    }
                    _ => {
                        let reuse = old_ports.as_array().and_then(|ops| {
                            ops.iter()
                                .find(|op| op["port"] == p["port"])
                                .and_then(|op| op["nodePort"].as_i64())
                        });
                        let np = reuse.unwrap_or_else(|| {
                            (30000..=32767)
                                .find(|n| !taken.contains(n))
                                .unwrap_or(30000)
                        });
                        taken.insert(np);
                        p["nodePort"] = json!(np);
                    }
                }
            }
        }
        Ok(())
    }
}

impl ApiErr {
    pub fn invalid_plain(message: &str) -> Self {
        Self::new(422, "Invalid", message)
    }
}

fn conflict_error(kind: Kind, name: &str, conflicts: &[managed::Conflict]) -> ApiErr {
    let lines: Vec<String> = conflicts
        .iter()
        .map(|c| {
            let sub = if c.subresource.is_empty() {
                String::new()
            } else {
                format!(" with subresource \"{}\"", c.subresource)
            };
            format!(
                "conflict with \"{}\" using {}{sub}: {}",
                c.manager,
                c.api_version,
                managed::format_path(&c.path)
            )
        })
        .collect();
    let n = conflicts.len();
    let message = if n == 1 {
        format!("Apply failed with 1 conflict: {}", lines[0])
    } else {
        format!("Apply failed with {n} conflicts: {}", lines.join("\n"))
    };
    let mut e = ApiErr::new(409, "Conflict", message);
    e.details = json!({
        "name": name, "group": kind.group(), "kind": kind.plural(),
        "causes": conflicts.iter().map(|c| json!({"reason": "FieldManagerConflict", "message": format!("conflict with \"{}\"", c.manager), "field": managed::format_path(&c.path)})).collect::<Vec<_>>(),
    });
    e
}

/// kube-rs sends apply bodies as JSON; YAML bodies from other clients are not emulated.
fn serde_yaml_like(body: &[u8]) -> Result<Value, String> {
    Err(format!(
        "only JSON apply bodies are emulated ({} bytes)",
        body.len()
    ))
}

fn key_ns(kind: Kind, ns: &str) -> String {
    if kind.namespaced() {
        ns.to_owned()
    } else {
        String::new()
    }
}

fn check_type(kind: Kind, body: &Value) -> Result<(), ApiErr> {
    let av = body["apiVersion"].as_str();
    let k = body["kind"].as_str();
    if av.is_some_and(|a| a != kind.api_version()) || k.is_some_and(|x| x != kind.kind()) {
        return Err(ApiErr::bad_request(format!(
            "the API version in the data ({}) does not match the expected API version ({})",
            av.unwrap_or(""),
            kind.api_version()
        )));
    }
    Ok(())
}

/// The `autoscaling/v1` Scale of a deployment or replica set.
pub fn scale_of(_kind: Kind, obj: &Value) -> Value {
    let sel = obj["spec"]["selector"]["matchLabels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    json!({
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": obj["metadata"]["name"], "namespace": obj["metadata"]["namespace"],
            "uid": obj["metadata"]["uid"], "resourceVersion": obj["metadata"]["resourceVersion"],
            "creationTimestamp": obj["metadata"]["creationTimestamp"],
        },
        "spec": {"replicas": obj["spec"]["replicas"]},
        "status": {"replicas": obj["status"]["replicas"].as_i64().unwrap_or(0), "selector": sel},
    })
}

/// Field selectors: `metadata.name`, `metadata.namespace`, and dotted paths such as
/// `spec.nodeName` / `status.phase` (pods); (path, value, negated).
pub fn field_match(obj: &Value, fields: &[(String, String, bool)]) -> bool {
    fields.iter().all(|(path, value, negated)| {
        let mut cur = obj;
        for part in path.split('.') {
            cur = &cur[part];
        }
        let actual = cur.as_str().map(str::to_owned).unwrap_or_else(|| {
            if cur.is_null() {
                String::new()
            } else {
                cur.to_string()
            }
        });
        (actual == *value) != *negated
    })
}

pub fn parse_field_selector(
    kind: Kind,
    input: &str,
) -> Result<Vec<(String, String, bool)>, ApiErr> {
    let mut out = Vec::new();
    for term in input.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let (path, value, negated) = if let Some((p, v)) = term.split_once("!=") {
            (p, v, true)
        } else if let Some((p, v)) = term.split_once("==") {
            (p, v, false)
        } else if let Some((p, v)) = term.split_once('=') {
            (p, v, false)
        } else {
            return Err(ApiErr::bad_request(format!(
                "invalid selector: '{input}'; can't understand '{term}'"
            )));
        };
        let supported = matches!(path, "metadata.name" | "metadata.namespace")
            || (kind == Kind::Pod
                && matches!(
                    path,
                    "spec.nodeName" | "status.phase" | "spec.restartPolicy"
                ))
            || (kind == Kind::Service && path == "spec.type")
            || (kind == Kind::Event
                && (path.starts_with("involvedObject.")
                    || matches!(path, "type" | "reason" | "source")));
        if !supported {
            return Err(ApiErr::bad_request(format!(
                "field label not supported: {path}"
            )));
        }
        out.push((path.to_owned(), value.to_owned(), negated));
    }
    Ok(out)
}
