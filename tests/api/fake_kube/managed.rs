//! Field ownership and the merge rules of the API server, for the parts of the schema kubegate
//! touches: server-side apply (field managers, conflicts, removal of fields a manager stops
//! applying), update ownership transfer (so a `/scale` takes `spec.replicas` away from the applier),
//! strategic merge patch, and `metadata.managedFields` rendering.
//!
//! Lists are merged the way the built-in OpenAPI schema says (`x-kubernetes-list-map-keys`):
//! containers/env/volumes by `name`, container ports by `containerPort`+`protocol`, service ports by
//! `port`+`protocol`, volume mounts by `mountPath`, conditions by `type`; every other list is atomic.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Pe {
    /// A map field.
    F(String),
    /// A list item, by its canonical key object (compact JSON, sorted keys).
    K(String),
}

pub type Path = Vec<Pe>;

#[derive(Clone, Debug)]
pub struct ManagedEntry {
    pub manager: String,
    pub operation: &'static str,
    pub subresource: String,
    pub api_version: String,
    pub time: String,
    pub fields: BTreeSet<Path>,
}

/// Keys of an associative list at this path of field names, or None when the list is atomic.
fn list_keys(fields: &[&str]) -> Option<&'static [&'static str]> {
    let last = *fields.last()?;
    let in_container = fields
        .iter()
        .any(|f| matches!(*f, "containers" | "initContainers" | "ephemeralContainers"));
    Some(match last {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets" => &["name"],
        "ports" if in_container => &["containerPort", "protocol"],
        "ports" => &["port", "protocol"],
        "volumeMounts" => &["mountPath"],
        "volumeDevices" => &["devicePath"],
        "conditions" => &["type"],
        _ => return None,
    })
}

fn item_key(item: &Value, keys: &[&str]) -> String {
    let mut m = Map::new();
    for k in keys {
        let v = match item.get(*k) {
            Some(v) => v.clone(),
            None if *k == "protocol" => json!("TCP"),
            None => continue,
        };
        m.insert((*k).to_owned(), v);
    }
    Value::Object(m).to_string()
}

fn field_names(path: &Path) -> Vec<&str> {
    path.iter()
        .filter_map(|p| match p {
            Pe::F(f) => Some(f.as_str()),
            Pe::K(_) => None,
        })
        .collect()
}

/// Every owned leaf of an object: labels, annotations and spec (status and identity are not owned).
pub fn leaves(obj: &Value) -> BTreeSet<Path> {
    let mut out = BTreeSet::new();
    for root in [
        &["metadata", "labels"][..],
        &["metadata", "annotations"][..],
        &["spec"][..],
        &["data"][..],
    ] {
        let Some(v) = root.iter().try_fold(obj, |acc, f| acc.get(*f)) else {
            continue;
        };
        if v.is_null() {
            continue;
        }
        let prefix: Path = root.iter().map(|f| Pe::F((*f).to_owned())).collect();
        collect(v, &prefix, &mut out);
    }
    out
}

fn collect(v: &Value, path: &Path, out: &mut BTreeSet<Path>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, child) in m {
                let mut p = path.clone();
                p.push(Pe::F(k.clone()));
                collect(child, &p, out);
            }
        }
        Value::Array(items) if !items.is_empty() => match list_keys(&field_names(path)) {
            Some(keys) => {
                for item in items {
                    let mut p = path.clone();
                    p.push(Pe::K(item_key(item, keys)));
                    out.insert(p.clone());
                    collect(item, &p, out);
                }
            }
            None => {
                out.insert(path.clone());
            }
        },
        _ => {
            out.insert(path.clone());
        }
    }
}

const OWNED_ROOTS: [&[&str]; 4] = [
    &["metadata", "labels"],
    &["metadata", "annotations"],
    &["spec"],
    &["data"],
];

fn owned_root<'a>(obj: &'a Value, root: &[&str]) -> Option<&'a Value> {
    root.iter()
        .try_fold(obj, |acc, f| acc.get(*f))
        .filter(|v| !v.is_null())
}

/// The leaves of `leaves(old) ∪ leaves(new)` whose values differ, found by descending only into
/// the parts that differ (a `/scale` changes one field of a large spec; listing every leaf of
/// both objects was most of the cost of a write).
fn changed_leaves(old: &Value, new: &Value) -> BTreeSet<Path> {
    let mut out = BTreeSet::new();
    for root in OWNED_ROOTS {
        let (o, n) = (owned_root(old, root), owned_root(new, root));
        if o != n {
            let prefix: Path = root.iter().map(|f| Pe::F((*f).to_owned())).collect();
            diff_into(o, n, &prefix, (old, new), &mut out);
        }
    }
    out
}

fn diff_into(
    o: Option<&Value>,
    n: Option<&Value>,
    path: &Path,
    whole: (&Value, &Value),
    out: &mut BTreeSet<Path>,
) {
    match (o, n) {
        // Both objects with fields: collect() only descends into them, so only the fields that
        // differ can hold changed leaves.
        (Some(Value::Object(a)), Some(Value::Object(b))) if !a.is_empty() && !b.is_empty() => {
            for k in a.keys().chain(b.keys().filter(|k| !a.contains_key(*k))) {
                let (x, y) = (a.get(k), b.get(k));
                if x != y {
                    let mut p = path.clone();
                    p.push(Pe::F(k.clone()));
                    diff_into(x, y, &p, whole, out);
                }
            }
        }
        _ => {
            let mut both = BTreeSet::new();
            for v in [o, n].into_iter().flatten() {
                collect(v, path, &mut both);
            }
            out.extend(
                both.into_iter()
                    .filter(|p| get_at(whole.0, p) != get_at(whole.1, p)),
            );
        }
    }
}

/// Whether `leaves(obj)` holds `p`, without listing them.
fn in_leaves(obj: &Value, p: &Path) -> bool {
    for root in OWNED_ROOTS {
        let under = p.len() >= root.len()
            && root
                .iter()
                .zip(p)
                .all(|(r, e)| matches!(e, Pe::F(f) if f == r));
        if under {
            let Some(v) = owned_root(obj, root) else {
                return false;
            };
            return leaf_at(v, root.to_vec(), &p[root.len()..]);
        }
    }
    false
}

/// Mirrors `collect`: whether collecting `v` at a path with these field names inserts that path
/// followed by `rest`.
fn leaf_at<'a>(v: &'a Value, mut names: Vec<&'a str>, rest: &'a [Pe]) -> bool {
    let Some((first, rest)) = rest.split_first() else {
        return match v {
            Value::Object(m) => m.is_empty(),
            Value::Array(items) => items.is_empty() || list_keys(&names).is_none(),
            _ => true,
        };
    };
    match (v, first) {
        (Value::Object(m), Pe::F(k)) => match m.get(k) {
            Some(child) => {
                names.push(k);
                leaf_at(child, names, rest)
            }
            None => false,
        },
        (Value::Array(items), Pe::K(key)) => {
            let Some(keys) = list_keys(&names) else {
                return false;
            };
            items.iter().any(|item| {
                &item_key(item, keys) == key
                    && (rest.is_empty() || leaf_at(item, names.clone(), rest))
            })
        }
        _ => false,
    }
}

pub fn get_at<'a>(obj: &'a Value, path: &Path) -> Option<&'a Value> {
    let mut cur = obj;
    let mut names: Vec<&str> = Vec::new();
    for pe in path {
        match pe {
            Pe::F(f) => {
                cur = cur.get(f)?;
                names.push(f);
            }
            Pe::K(k) => {
                let keys = list_keys(&names)?;
                cur = cur.as_array()?.iter().find(|i| &item_key(i, keys) == k)?;
            }
        }
    }
    Some(cur)
}

pub fn remove_at(obj: &mut Value, path: &Path) {
    let Some((last, parent_path)) = path.split_last() else {
        return;
    };
    let mut names: Vec<String> = Vec::new();
    let mut cur = obj;
    for pe in parent_path {
        match pe {
            Pe::F(f) => {
                names.push(f.clone());
                cur = match cur.get_mut(f) {
                    Some(x) => x,
                    None => return,
                };
            }
            Pe::K(k) => {
                let refs: Vec<&str> = names.iter().map(String::as_str).collect();
                let Some(keys) = list_keys(&refs) else { return };
                let Some(arr) = cur.as_array_mut() else {
                    return;
                };
                cur = match arr.iter_mut().find(|i| &item_key(i, keys) == k) {
                    Some(x) => x,
                    None => return,
                };
            }
        }
    }
    match last {
        Pe::F(f) => {
            if let Some(m) = cur.as_object_mut() {
                m.remove(f);
            }
        }
        Pe::K(k) => {
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            if let (Some(keys), Some(arr)) = (list_keys(&refs), cur.as_array_mut()) {
                arr.retain(|i| &item_key(i, keys) != k);
            }
        }
    }
}

/// Merge an applied configuration (or a strategic merge patch when `strategic`) into `live`.
pub fn merge_into(live: &mut Value, patch: &Value, names: &mut Vec<String>, strategic: bool) {
    match (live, patch) {
        (Value::Object(l), Value::Object(p)) => {
            for (k, pv) in p {
                if strategic && k.starts_with('$') {
                    continue;
                }
                if pv.is_null() {
                    if strategic {
                        l.remove(k);
                    }
                    continue;
                }
                names.push(k.clone());
                match l.get_mut(k) {
                    Some(lv) => merge_into(lv, pv, names, strategic),
                    None => {
                        let mut fresh = pv.clone();
                        strip_directives(&mut fresh);
                        l.insert(k.clone(), fresh);
                    }
                }
                names.pop();
            }
        }
        (live @ Value::Array(_), Value::Array(p)) => {
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            match list_keys(&refs) {
                Some(keys) => {
                    let arr = live.as_array_mut().expect("checked");
                    for item in p {
                        let key = item_key(item, keys);
                        let delete = strategic
                            && item.get("$patch").and_then(Value::as_str) == Some("delete");
                        match arr.iter().position(|i| item_key(i, keys) == key) {
                            Some(pos) if delete => {
                                arr.remove(pos);
                            }
                            Some(pos) => merge_into(&mut arr[pos], item, names, strategic),
                            None if delete => {}
                            None => {
                                let mut fresh = item.clone();
                                strip_directives(&mut fresh);
                                arr.push(fresh);
                            }
                        }
                    }
                }
                None => *live = Value::Array(p.clone()),
            }
        }
        (live, p) => {
            let mut fresh = p.clone();
            strip_directives(&mut fresh);
            *live = fresh;
        }
    }
}

fn strip_directives(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|k, _| !k.starts_with('$'));
            m.values_mut().for_each(strip_directives);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_directives),
        _ => {}
    }
}

pub fn format_path(path: &Path) -> String {
    let mut s = String::new();
    for pe in path {
        match pe {
            Pe::F(f) => {
                s.push('.');
                s.push_str(f);
            }
            Pe::K(k) => {
                let m: Map<String, Value> = serde_json::from_str(k).unwrap_or_default();
                let inner: Vec<String> = m.iter().map(|(k, v)| format!("{k}={v}")).collect();
                s.push_str(&format!("[{}]", inner.join(",")));
            }
        }
    }
    s
}

/// Ownership after a non-apply write (create, update, patch, subresource) by `manager`: it takes
/// the fields whose value changed; every other manager loses them.
pub fn record_update(
    entries: &mut Vec<ManagedEntry>,
    manager: &str,
    subresource: &str,
    api_version: &str,
    now: &str,
    old: &Value,
    new: &Value,
) {
    // Only labels, annotations, spec and data are owned: when none of them changed (a status
    // write, say), neither does ownership.
    let owned_equal = |a: &Value, b: &Value| {
        a["metadata"].get("labels") == b["metadata"].get("labels")
            && a["metadata"].get("annotations") == b["metadata"].get("annotations")
            && a.get("spec") == b.get("spec")
            && a.get("data") == b.get("data")
    };
    if owned_equal(old, new) {
        return;
    }
    let changed = changed_leaves(old, new);
    if changed.is_empty() {
        return;
    }
    for e in entries.iter_mut() {
        e.fields
            .retain(|p| !changed.contains(p) && in_leaves(new, p));
    }
    let gained: BTreeSet<Path> = changed
        .iter()
        .filter(|p| in_leaves(new, p))
        .cloned()
        .collect();
    let idx = entries.iter().position(|e| {
        e.manager == manager && e.operation == "Update" && e.subresource == subresource
    });
    let entry = match idx {
        Some(i) => &mut entries[i],
        None => {
            entries.push(ManagedEntry {
                manager: manager.to_owned(),
                operation: "Update",
                subresource: subresource.to_owned(),
                api_version: api_version.to_owned(),
                time: now.to_owned(),
                fields: BTreeSet::new(),
            });
            entries.last_mut().expect("pushed")
        }
    };
    entry.fields.extend(gained);
    entry.time = now.to_owned();
    entries.retain(|e| !e.fields.is_empty());
}

/// A field manager conflict of a server-side apply.
pub struct Conflict {
    pub manager: String,
    pub subresource: String,
    pub api_version: String,
    pub path: Path,
}

/// Server-side apply of `applied` by `manager` onto `live` (None: the object is being created).
/// Returns the merged object, or the conflicts when `force` is false.
pub fn apply(
    entries: &mut Vec<ManagedEntry>,
    manager: &str,
    api_version: &str,
    now: &str,
    live: Option<&Value>,
    applied: &Value,
    force: bool,
) -> Result<Value, Vec<Conflict>> {
    let wanted = leaves(applied);
    let empty = json!({});
    let live_obj = live.unwrap_or(&empty);
    let mut conflicts = Vec::new();
    for e in entries.iter() {
        if e.manager == manager && e.operation == "Apply" {
            continue;
        }
        for p in e.fields.intersection(&wanted) {
            if get_at(live_obj, p) != get_at(applied, p) {
                conflicts.push(Conflict {
                    manager: e.manager.clone(),
                    subresource: e.subresource.clone(),
                    api_version: e.api_version.clone(),
                    path: p.clone(),
                });
            }
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(conflicts);
    }
    for c in &conflicts {
        for e in entries.iter_mut().filter(|e| e.manager == c.manager) {
            e.fields.remove(&c.path);
        }
    }
    let previous: BTreeSet<Path> = entries
        .iter()
        .find(|e| e.manager == manager && e.operation == "Apply")
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    let mut obj = live_obj.clone();
    // Shallowest first: a dropped list item goes whole (removing its key fields first would make it
    // unfindable), and whatever lies under a removed path needs no removal of its own.
    let mut dropped: Vec<&Path> = previous.difference(&wanted).collect();
    dropped.sort_by_key(|p| p.len());
    let mut removed: Vec<&Path> = Vec::new();
    for p in dropped {
        if removed.iter().any(|r| p.starts_with(r)) {
            continue;
        }
        let owned_by_other = entries
            .iter()
            .filter(|e| !(e.manager == manager && e.operation == "Apply"))
            .any(|e| e.fields.iter().any(|f| f.starts_with(p)));
        if !owned_by_other {
            remove_at(&mut obj, p);
            removed.push(p);
        }
    }
    merge_into(&mut obj, applied, &mut Vec::new(), false);
    match entries
        .iter_mut()
        .find(|e| e.manager == manager && e.operation == "Apply")
    {
        Some(e) => {
            e.fields = wanted;
            e.time = now.to_owned();
        }
        None => entries.push(ManagedEntry {
            manager: manager.to_owned(),
            operation: "Apply",
            subresource: String::new(),
            api_version: api_version.to_owned(),
            time: now.to_owned(),
            fields: wanted,
        }),
    }
    entries.retain(|e| !e.fields.is_empty());
    Ok(obj)
}

/// `metadata.managedFields` as the API server renders it (FieldsV1).
pub fn render(entries: &[ManagedEntry]) -> Value {
    Value::Array(
        entries
            .iter()
            .map(|e| {
                let mut root = Map::new();
                for p in &e.fields {
                    let mut cur = &mut root;
                    for pe in p {
                        let key = match pe {
                            Pe::F(f) => format!("f:{f}"),
                            Pe::K(k) => format!("k:{k}"),
                        };
                        cur = cur
                            .entry(key)
                            .or_insert_with(|| json!({}))
                            .as_object_mut()
                            .expect("object");
                    }
                    if matches!(p.last(), Some(Pe::K(_))) {
                        cur.insert(".".into(), json!({}));
                    }
                }
                let mut m = json!({
                    "manager": e.manager,
                    "operation": e.operation,
                    "apiVersion": e.api_version,
                    "time": e.time,
                    "fieldsType": "FieldsV1",
                    "fieldsV1": Value::Object(root),
                });
                if !e.subresource.is_empty() {
                    m["subresource"] = json!(e.subresource);
                }
                m
            })
            .collect(),
    )
}
