//! Label selectors as the API server parses them (k8s.io/apimachinery/pkg/labels/selector.go):
//! `a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a`, `!a`, comma-separated (AND).
//! Written independently of kubegate's own parser so the two check each other.

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq)]
pub enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selector(pub Vec<Requirement>);

impl Selector {
    pub fn parse(input: &str) -> Result<Self, String> {
        let mut reqs = Vec::new();
        let mut rest = input.trim();
        while !rest.is_empty() {
            // Split at the next comma that is not inside parentheses.
            let mut depth = 0;
            let mut end = rest.len();
            for (i, c) in rest.char_indices() {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    ',' if depth == 0 => {
                        end = i;
                        break;
                    }
                    _ => {}
                }
            }
            let term = rest[..end].trim();
            rest = if end < rest.len() {
                let after = rest[end + 1..].trim_start();
                if after.is_empty() {
                    return Err(format!(
                        "unable to parse requirement: found '', expected: identifier in {input:?}"
                    ));
                }
                after
            } else {
                ""
            };
            if term.is_empty() {
                return Err(format!(
                    "unable to parse requirement: found ',' in {input:?}"
                ));
            }
            reqs.push(parse_term(term)?);
        }
        Ok(Self(reqs))
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|r| match r {
            Requirement::Equals(k, v) => labels.get(k) == Some(v),
            Requirement::NotEquals(k, v) => labels.get(k) != Some(v),
            Requirement::In(k, vs) => labels.get(k).is_some_and(|l| vs.contains(l)),
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|l| !vs.contains(l)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::NotExists(k) => !labels.contains_key(k),
        })
    }

    /// From a `metav1.LabelSelector` JSON object (matchLabels + matchExpressions).
    pub fn from_label_selector(sel: &serde_json::Value) -> Self {
        let mut reqs = Vec::new();
        if let Some(m) = sel.get("matchLabels").and_then(|m| m.as_object()) {
            for (k, v) in m {
                reqs.push(Requirement::Equals(
                    k.clone(),
                    v.as_str().unwrap_or("").to_owned(),
                ));
            }
        }
        if let Some(exprs) = sel.get("matchExpressions").and_then(|m| m.as_array()) {
            for e in exprs {
                let key = e["key"].as_str().unwrap_or("").to_owned();
                let values: Vec<String> = e["values"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                reqs.push(match e["operator"].as_str().unwrap_or("") {
                    "In" => Requirement::In(key, values),
                    "NotIn" => Requirement::NotIn(key, values),
                    "Exists" => Requirement::Exists(key),
                    _ => Requirement::NotExists(key),
                });
            }
        }
        Self(reqs)
    }
}

fn valid_key(k: &str) -> bool {
    let name = k.rsplit('/').next().unwrap_or("");
    !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && k.matches('/').count() <= 1
}

fn valid_value(v: &str) -> bool {
    v.len() <= 63
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn parse_term(term: &str) -> Result<Requirement, String> {
    let check_key = |k: &str| -> Result<String, String> {
        let k = k.trim();
        if valid_key(k) {
            Ok(k.to_owned())
        } else {
            Err(format!("invalid label key {k:?}"))
        }
    };
    let check_value = |v: &str| -> Result<String, String> {
        let v = v.trim();
        if valid_value(v) {
            Ok(v.to_owned())
        } else {
            Err(format!("invalid label value: {v:?}"))
        }
    };
    if let Some(k) = term.strip_prefix('!') {
        return Ok(Requirement::NotExists(check_key(k)?));
    }
    if let Some((k, v)) = term.split_once("!=") {
        return Ok(Requirement::NotEquals(check_key(k)?, check_value(v)?));
    }
    if let Some((k, v)) = term.split_once("==") {
        return Ok(Requirement::Equals(check_key(k)?, check_value(v)?));
    }
    if let Some((k, v)) = term.split_once('=') {
        return Ok(Requirement::Equals(check_key(k)?, check_value(v)?));
    }
    for (op, notin) in [(" notin ", true), (" in ", false)] {
        if let Some((k, set)) = term.split_once(op) {
            let set = set.trim();
            let inner = set
                .strip_prefix('(')
                .and_then(|s| s.strip_suffix(')'))
                .ok_or_else(|| format!("found '{set}', expected: '('"))?;
            let values = inner
                .split(',')
                .map(check_value)
                .collect::<Result<Vec<_>, _>>()?;
            let key = check_key(k)?;
            return Ok(if notin {
                Requirement::NotIn(key, values)
            } else {
                Requirement::In(key, values)
            });
        }
    }
    Ok(Requirement::Exists(check_key(term)?))
}

/// Labels of an object as a map.
pub fn labels_of(obj: &serde_json::Value) -> BTreeMap<String, String> {
    obj["metadata"]["labels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_owned()))
                .collect()
        })
        .unwrap_or_default()
}
