//! Manifests as `kubectl apply -f` reads them: multi-document YAML, or JSON (an object, an array,
//! or a `List`), turned into the objects to apply, each checked for what apply needs
//! (`apiVersion`, `kind`, `metadata.name`) before any cluster hears of it. Hostile input is
//! bounded: anchors and aliases (a "billion laughs" document), depth, the number of objects;
//! duplicate keys are refused in both formats (YAML forbids them and JSON parsers disagree on
//! which one wins, so the API server could apply what the author did not read).
//!
//! Also the order of application (`tier`): namespaces and CRDs first, then what workloads refer
//! to (service accounts, config maps, secrets, RBAC, storage), then the rest.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::validate::{self, FieldError};

/// The body's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Yaml,
    Json,
}

/// One object of a manifest, in the order written (`index`: its position among the objects,
/// `source`: where it was written, for error messages).
#[derive(Debug, Clone)]
pub struct Object {
    pub index: usize,
    pub source: String,
    pub group: String,
    pub version: String,
    pub kind: String,
    pub name: String,
    /// As written; apply fills in the request's namespace for namespaced kinds without one.
    pub namespace: Option<String>,
    pub body: Value,
}

impl Object {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `Deployment shop/web`, `Namespace shop`.
    pub fn describe(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{} {ns}/{}", self.kind, self.name),
            None => format!("{} {}", self.kind, self.name),
        }
    }

    pub fn is_secret(&self) -> bool {
        self.group.is_empty() && self.kind == "Secret"
    }
}

/// Why a body is not a manifest: malformed (400) or well-formed but unusable (422); each with
/// the failing document or object named.
#[derive(Debug)]
pub enum Invalid {
    Malformed(Vec<FieldError>),
    Unusable(Vec<FieldError>),
}

/// YAML limits: anchors may be used, not multiplied (a few hundred thousand replayed events
/// already make a document far larger than any manifest).
fn yaml_options() -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_aliases = 10_000;
    budget.max_anchors = 10_000;
    budget.max_depth = 64;
    budget.max_documents = 10_000;
    budget.max_nodes = 2_000_000;
    let mut aliases = serde_saphyr::options::AliasLimits::default();
    aliases.max_total_replayed_events = 200_000;
    aliases.max_replay_stack_depth = 16;
    serde_saphyr::options! {
        budget: Some(budget),
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::Error,
        alias_limits: aliases,
        // YAML 1.1 as Kubernetes reads it (sigs.k8s.io/yaml): `defaultMode: 0644` is octal.
        legacy_octal_numbers: true,
        // Error messages never quote the document (a Secret's values are in it).
        with_snippet: false,
    }
}

/// The objects of a manifest body, at most `max_objects`.
pub fn parse(body: &[u8], format: Format, max_objects: usize) -> Result<Vec<Object>, Invalid> {
    let documents: Vec<(String, Value)> = match format {
        Format::Json => {
            let v = strict_json(body).map_err(|e| {
                Invalid::Malformed(vec![FieldError {
                    field: "body".into(),
                    message: format!("invalid JSON: {e}"),
                }])
            })?;
            match v {
                Value::Array(items) => items
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| (format!("[{i}]"), v))
                    .collect(),
                v => vec![("body".to_owned(), v)],
            }
        }
        Format::Yaml => {
            let text = std::str::from_utf8(body).map_err(|e| {
                Invalid::Malformed(vec![FieldError {
                    field: "body".into(),
                    message: format!("not UTF-8: {e}"),
                }])
            })?;
            let docs: Vec<Value> = serde_saphyr::from_multiple_with_options(text, yaml_options())
                .map_err(|e| {
                Invalid::Malformed(vec![FieldError {
                    field: yaml_error_place(&e),
                    message: format!("invalid YAML: {}", first_line(&e.to_string())),
                }])
            })?;
            docs.into_iter()
                .enumerate()
                .map(|(i, v)| (format!("documents[{i}]"), v))
                .collect()
        }
    };

    let mut flat = Vec::new();
    for (source, doc) in documents {
        flatten(source, doc, &mut flat, 0)?;
        if flat.len() > max_objects {
            return Err(Invalid::Unusable(vec![FieldError {
                field: "body".into(),
                message: format!("more than {max_objects} objects; split the manifest"),
            }]));
        }
    }
    if flat.is_empty() {
        return Err(Invalid::Unusable(vec![FieldError {
            field: "body".into(),
            message: "no objects to apply".into(),
        }]));
    }

    let mut errors = Vec::new();
    let mut objects = Vec::new();
    for (index, (source, body)) in flat.into_iter().enumerate() {
        match object(index, source, body) {
            Ok(o) => objects.push(o),
            Err(mut e) => errors.append(&mut e),
        }
    }
    // One object twice would be applied twice, the second silently winning.
    for (i, a) in objects.iter().enumerate() {
        if let Some(b) = objects[..i].iter().find(|b| {
            b.group == a.group && b.kind == a.kind && b.name == a.name && b.namespace == a.namespace
        }) {
            errors.push(FieldError {
                field: a.source.clone(),
                message: format!("{} is also at {}", a.describe(), b.source),
            });
        }
    }
    if errors.is_empty() {
        Ok(objects)
    } else {
        Err(Invalid::Unusable(errors))
    }
}

/// `kind: List` (and `FooList` with `items`) become their items; empty documents are skipped.
fn flatten(
    source: String,
    doc: Value,
    out: &mut Vec<(String, Value)>,
    depth: usize,
) -> Result<(), Invalid> {
    match doc {
        Value::Null => Ok(()),
        Value::Object(ref m)
            if m.get("kind")
                .and_then(Value::as_str)
                .is_some_and(|k| k.ends_with("List"))
                && m.get("items").is_some_and(Value::is_array) =>
        {
            if depth > 2 {
                return Err(Invalid::Unusable(vec![FieldError {
                    field: source,
                    message: "lists nested more than two deep".into(),
                }]));
            }
            let Value::Object(mut m) = doc else {
                unreachable!()
            };
            let Some(Value::Array(items)) = m.remove("items") else {
                unreachable!()
            };
            for (i, item) in items.into_iter().enumerate() {
                flatten(format!("{source}.items[{i}]"), item, out, depth + 1)?;
            }
            Ok(())
        }
        doc => {
            out.push((source, doc));
            Ok(())
        }
    }
}

/// Check what apply needs of one object.
fn object(index: usize, source: String, body: Value) -> Result<Object, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut err = |field: &str, message: String| {
        errors.push(FieldError {
            field: if field.is_empty() {
                source.clone()
            } else {
                format!("{source}.{field}")
            },
            message,
        })
    };
    let Value::Object(map) = &body else {
        err(
            "",
            "not an object (a mapping with apiVersion, kind and metadata)".into(),
        );
        return Err(errors);
    };
    let text = |k: &str| map.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    let (api_version, kind) = (text("apiVersion"), text("kind"));
    if api_version.is_empty() {
        err("apiVersion", "required".into());
    }
    if kind.is_empty() {
        err("kind", "required".into());
    } else if !kind.chars().all(|c| c.is_ascii_alphanumeric()) || kind.len() > 63 {
        err("kind", format!("{kind:?} is not a kind"));
    }
    let (group, version) = match api_version.split_once('/') {
        Some((g, v)) => (g.to_owned(), v.to_owned()),
        None => (String::new(), api_version.clone()),
    };
    let gv_ok = |s: &str| {
        s.len() <= 253
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
    };
    if !api_version.is_empty()
        && (version.is_empty() || !gv_ok(&group) || !gv_ok(&version) || version.contains('.'))
    {
        err(
            "apiVersion",
            format!("{api_version:?} is not an API version (group/version or v1)"),
        );
    }
    let metadata = map.get("metadata");
    if metadata.is_some_and(|m| !m.is_object()) {
        err("metadata", "must be an object".into());
    }
    let meta = |k: &str| metadata.and_then(|m| m.get(k));
    let name = meta("name").and_then(Value::as_str).unwrap_or("");
    if name.is_empty() {
        if meta("generateName").is_some() {
            err(
                "metadata.name",
                "required: apply needs a name (generateName is for create)".into(),
            );
        } else {
            err("metadata.name", "required".into());
        }
    } else if name.len() > 253 || name.contains(['/', '%']) || name == "." || name == ".." {
        err(
            "metadata.name",
            format!("{name:?} may not be used as a name in a URL path"),
        );
    }
    let namespace = match meta("namespace") {
        None | Some(Value::Null) => None,
        Some(Value::String(ns)) if ns.is_empty() => None,
        Some(Value::String(ns)) => {
            if let Err(m) = validate::dns1123_label(ns) {
                err("metadata.namespace", m);
            }
            Some(ns.clone())
        }
        Some(_) => {
            err("metadata.namespace", "must be a string".into());
            None
        }
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Object {
        index,
        source,
        group,
        version,
        kind,
        name: name.to_owned(),
        namespace,
        body,
    })
}

/// The order of application: lower first, the manifest's order within a tier. Namespaces and
/// CRDs, then what workloads refer to, then the rest (kubectl applies in file order; Helm and
/// Argo CD order by kind much like this).
pub fn tier(group: &str, kind: &str) -> u8 {
    match (group, kind) {
        ("", "Namespace") => 0,
        ("apiextensions.k8s.io", "CustomResourceDefinition") => 1,
        ("", "ServiceAccount" | "ConfigMap" | "Secret" | "ResourceQuota" | "LimitRange")
        | ("", "PersistentVolume" | "PersistentVolumeClaim")
        | ("storage.k8s.io", "StorageClass")
        | ("scheduling.k8s.io", "PriorityClass")
        | ("rbac.authorization.k8s.io", _) => 2,
        _ => 3,
    }
}

/// YAML as kubectl writes it: long strings on one line (not folded, which would add a line
/// break a reader keeps), multi-line ones as literal blocks.
pub fn to_yaml(v: &Value) -> String {
    let mut options = serde_saphyr::SerializerOptions::default();
    options.folded_wrap_chars = usize::MAX;
    serde_saphyr::to_string_with_options(v, options).unwrap_or_default()
}

/// The first line of a parser error (the rest is a source snippet with the document's text,
/// which may hold secret values: never echoed).
fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").chars().take(300).collect()
}

/// `documents[i]`-style place of a YAML error: the line, as the parser reports it.
fn yaml_error_place(e: &serde_saphyr::Error) -> String {
    match e.location() {
        Some(l) => format!("body (line {}, column {})", l.line(), l.column()),
        None => "body".into(),
    }
}

/// JSON into a `Value`, refusing duplicate keys (serde_json keeps the last one silently).
fn strict_json(body: &[u8]) -> Result<Value, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let v = StrictValue::deserialize_strict(&mut de)?;
    de.end()?;
    Ok(v)
}

struct StrictValue;

impl StrictValue {
    fn deserialize_strict<'de, D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
        d.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

struct Strict(Value);

impl<'de> de::Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(de::Error::custom(format!("duplicate key {key:?}")));
            }
            let Strict(v) = map.next_value()?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(s: &str) -> Result<Vec<Object>, Invalid> {
        parse(s.as_bytes(), Format::Yaml, 200)
    }

    #[test]
    fn documents_lists_and_empty_documents() {
        let objs = yaml(
            "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n---\napiVersion: v1\nkind: List\nitems:\n- {apiVersion: apps/v1, kind: Deployment, metadata: {name: b, namespace: x}}\n",
        )
        .unwrap();
        assert_eq!(objs.len(), 2);
        assert_eq!(objs[1].group, "apps");
        // Empty documents are not counted.
        assert_eq!(objs[1].source, "documents[1].items[0]");
        assert_eq!(objs[1].namespace.as_deref(), Some("x"));
    }

    #[test]
    fn octal_modes_read_as_kubernetes_reads_them() {
        let objs = yaml("apiVersion: v1\nkind: Secret\nmetadata: {name: a}\nx: 0644\n").unwrap();
        assert_eq!(objs[0].body["x"], 420);
    }

    #[test]
    fn bombs_duplicates_and_missing_fields_are_refused() {
        let mut bomb = String::from("a: &a [x,x,x,x,x,x,x,x,x,x]\n");
        for i in 1..10 {
            let prev = (b'a' + i - 1) as char;
            let cur = (b'a' + i) as char;
            bomb.push_str(&format!(
                "{cur}: &{cur} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"
            ));
        }
        assert!(matches!(yaml(&bomb), Err(Invalid::Malformed(_))));
        assert!(matches!(
            yaml("apiVersion: v1\nkind: A\nkind: B\n"),
            Err(Invalid::Malformed(_))
        ));
        assert!(matches!(
            parse(
                br#"{"apiVersion":"v1","kind":"A","kind":"B"}"#,
                Format::Json,
                10
            ),
            Err(Invalid::Malformed(_))
        ));
        let Err(Invalid::Unusable(e)) = yaml("apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n")
        else {
            panic!()
        };
        assert_eq!(e[0].field, "documents[0].metadata.name");
    }

    #[test]
    fn long_strings_stay_on_one_line() {
        let token = "x".repeat(300);
        let yaml = to_yaml(&serde_json::json!({"token": token, "script": "a\nb\n"}));
        assert!(yaml.contains(&format!("token: {token}\n")), "{yaml}");
        assert!(yaml.contains("script: |"), "{yaml}");
    }

    #[test]
    fn too_many_objects() {
        let doc = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n".repeat(3);
        assert!(matches!(
            parse(doc.as_bytes(), Format::Yaml, 2),
            Err(Invalid::Unusable(_))
        ));
    }
}
