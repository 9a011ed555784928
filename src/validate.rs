//! Input validation, done before any cluster call: names, labels and selectors, image references,
//! ports, quantities. Rules follow the API server's (k8s.io/apimachinery/pkg/util/validation) and
//! the OCI distribution reference grammar, so kubegate refuses what the cluster would refuse, with
//! the field named.

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::ToSchema;

/// One invalid field of a request.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"field": "containers[0].image", "message": "\"NGINX\" is not a valid image reference: repository path components are lower case letters, digits and separators"}))]
pub struct FieldError {
    /// The field, as a JSON path or parameter name (e.g. `spec.replicas`, `cluster`).
    pub field: String,
    /// Why it is invalid.
    pub message: String,
}

/// Collects field errors; `finish()` turns them into a 422.
#[derive(Debug, Default)]
pub struct Errors(pub Vec<FieldError>);

impl Errors {
    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }
    pub fn check(&mut self, ok: bool, field: impl Into<String>, message: impl Into<String>) {
        if !ok {
            self.add(field, message);
        }
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// RFC 1123 label: what container and namespace names must be.
pub fn dns1123_label(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{s:?} is not a valid name: at most 63 lower case alphanumeric characters or '-', starting and ending with an alphanumeric character"
        ))
    }
}

/// RFC 1123 subdomain: what Deployment and pod names must be.
pub fn dns1123_subdomain(s: &str) -> Result<(), String> {
    let ok = !s.is_empty() && s.len() <= 253 && s.split('.').all(|l| dns1123_label(l).is_ok());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{s:?} is not a valid name: at most 253 lower case alphanumeric characters, '-' or '.', starting and ending with an alphanumeric character"
        ))
    }
}

/// RFC 1035 label: what Service names must be (starts with a letter).
pub fn dns1035_label(s: &str) -> Result<(), String> {
    let ok = dns1123_label(s).is_ok() && s.as_bytes()[0].is_ascii_lowercase();
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{s:?} is not a valid service name: at most 63 lower case alphanumeric characters or '-', starting with a letter and ending with an alphanumeric character"
        ))
    }
}

fn qualified_name_part(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric()
}

/// A label (or annotation) key: `[prefix/]name`, prefix a DNS subdomain.
pub fn label_key(k: &str) -> Result<(), String> {
    let (prefix, name) = match k.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    let ok = qualified_name_part(name) && prefix.is_none_or(|p| dns1123_subdomain(p).is_ok());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{k:?} is not a valid label key: [prefix/]name, name at most 63 alphanumeric characters, '-', '_' or '.', starting and ending with an alphanumeric character"
        ))
    }
}

pub fn label_value(v: &str) -> Result<(), String> {
    if v.is_empty() || qualified_name_part(v) {
        Ok(())
    } else {
        Err(format!(
            "{v:?} is not a valid label value: empty, or at most 63 alphanumeric characters, '-', '_' or '.', starting and ending with an alphanumeric character"
        ))
    }
}

pub fn labels(errors: &mut Errors, field: &str, labels: &BTreeMap<String, String>) {
    for (k, v) in labels {
        if let Err(e) = label_key(k) {
            errors.add(format!("{field}.{k}"), e);
        }
        if let Err(e) = label_value(v) {
            errors.add(format!("{field}.{k}"), e);
        }
    }
}

pub fn annotations(errors: &mut Errors, field: &str, annotations: &BTreeMap<String, String>) {
    let mut total = 0;
    for (k, v) in annotations {
        if let Err(e) = label_key(k) {
            errors.add(
                format!("{field}.{k}"),
                e.replace("label key", "annotation key"),
            );
        }
        total += k.len() + v.len();
    }
    errors.check(
        total <= 256 * 1024,
        field,
        "annotations may not exceed 256 KiB in total",
    );
}

/// A label selector in the API server's syntax (`a=b,c!=d,e in (x,y),!f`). Returns it normalised.
pub fn label_selector(input: &str) -> Result<String, String> {
    let mut terms = Vec::new();
    let mut rest = input.trim();
    while !rest.is_empty() {
        let mut depth = 0i32;
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
                return Err("a label selector may not end with ','".into());
            }
            after
        } else {
            ""
        };
        terms.push(selector_term(term)?);
    }
    if terms.is_empty() {
        return Err("the label selector is empty".into());
    }
    Ok(terms.join(","))
}

fn selector_term(term: &str) -> Result<String, String> {
    if term.is_empty() {
        return Err("empty term in label selector".into());
    }
    if let Some(k) = term.strip_prefix('!') {
        label_key(k.trim())?;
        return Ok(format!("!{}", k.trim()));
    }
    for op in ["!=", "==", "="] {
        if let Some((k, v)) = term.split_once(op) {
            let (k, v) = (k.trim(), v.trim());
            label_key(k)?;
            label_value(v)?;
            return Ok(format!("{k}{op}{v}"));
        }
    }
    for op in [" notin ", " in "] {
        if let Some((k, set)) = term.split_once(op) {
            let k = k.trim();
            label_key(k)?;
            let inner = set
                .trim()
                .strip_prefix('(')
                .and_then(|s| s.strip_suffix(')'))
                .ok_or_else(|| format!("{term:?}: expected a parenthesised set of values"))?;
            let values: Vec<&str> = inner.split(',').map(str::trim).collect();
            for v in &values {
                label_value(v)?;
            }
            return Ok(format!("{k}{op}({})", values.join(",")));
        }
    }
    label_key(term)?;
    Ok(term.to_owned())
}

/// An OCI image reference: `[registry[:port]/]path[:tag][@algorithm:hex]`.
pub fn image_reference(image: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("{image:?} is not a valid image reference: {why}"));
    if image.is_empty() {
        return bad("empty");
    }
    if image.len() > 4096 || image.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("contains whitespace or is too long");
    }
    let (rest, digest) = match image.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (image, None),
    };
    if let Some(d) = digest {
        let Some((algo, hex)) = d.split_once(':') else {
            return bad("digest must be algorithm:hex");
        };
        let algo_ok = !algo.is_empty()
            && algo.bytes().all(|b| {
                b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || matches!(b, b'+' | b'.' | b'_' | b'-')
            });
        let hex_ok = hex.len() >= 32 && hex.bytes().all(|b| b.is_ascii_hexdigit());
        if !algo_ok || !hex_ok {
            return bad("invalid digest");
        }
    }
    // The tag is after the last ':' that follows the last '/'.
    let last_slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
        None => (rest, None),
    };
    if let Some(t) = tag {
        let ok = !t.is_empty()
            && t.len() <= 128
            && (t.as_bytes()[0].is_ascii_alphanumeric() || t.as_bytes()[0] == b'_')
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if !ok {
            return bad("invalid tag");
        }
    }
    let mut components: Vec<&str> = name.split('/').collect();
    if components.len() > 1 {
        let first = components[0];
        // A registry host: has a '.' or ':' or is localhost; may be upper case.
        if first.contains('.') || first.contains(':') || first == "localhost" {
            let (host, port) = match first.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (first, None),
            };
            let host_ok = !host.is_empty()
                && host.split('.').all(|l| {
                    !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                });
            if !host_ok || port.is_some_and(|p| p.parse::<u16>().is_err()) {
                return bad("invalid registry host");
            }
            components.remove(0);
        }
    }
    for c in &components {
        // path-component: [a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*
        let ok = !c.is_empty()
            && c.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
            })
            && c.as_bytes()[0].is_ascii_alphanumeric()
            && c.as_bytes()[c.len() - 1].is_ascii_alphanumeric()
            && !c.contains("..")
            && !c.contains("___");
        if !ok {
            return bad("repository path components are lower case letters, digits and separators");
        }
    }
    if components.is_empty() {
        return bad("no repository");
    }
    Ok(())
}

/// A resource quantity (`100m`, `1.5Gi`, `2`).
pub fn quantity(q: &str) -> bool {
    let q = q.trim();
    let digits_end = q
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_digit() || *c == '.' || *c == '+' || *c == '-'))
        .map(|(i, _)| i)
        .unwrap_or(q.len());
    let (num, suffix) = q.split_at(digits_end);
    let num_ok = !num.is_empty() && num.trim_start_matches(['+', '-']).parse::<f64>().is_ok();
    let suffix_ok = matches!(
        suffix,
        "" | "m"
            | "k"
            | "M"
            | "G"
            | "T"
            | "P"
            | "E"
            | "Ki"
            | "Mi"
            | "Gi"
            | "Ti"
            | "Pi"
            | "Ei"
            | "n"
            | "u"
    ) || (suffix.starts_with(['e', 'E'])
        && suffix[1..]
            .trim_start_matches(['+', '-'])
            .parse::<u32>()
            .is_ok());
    num_ok && suffix_ok
}

/// Environment variable names (the API server's C identifier-ish rule, relaxed as in 1.30+).
pub fn env_name(n: &str) -> bool {
    !n.is_empty() && n.len() <= 4096 && !n.contains('=') && n.chars().all(|c| c.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references_follow_the_distribution_grammar() {
        for ok in [
            "nginx",
            "nginx:1.27",
            "library/nginx:latest",
            "ghcr.io/org/app:v1.2.3",
            "localhost:5000/app",
            "registry.example.com:443/team/app_x:2024-01",
            "nginx@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert!(image_reference(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Nginx",
            "nginx:",
            "nginx:-x",
            "ng inx",
            "nginx@sha256:xyz",
            "a//b",
            "-app",
            "app:tag with space",
        ] {
            assert!(image_reference(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn label_selectors_are_parsed_and_normalised() {
        assert_eq!(
            label_selector("a=b, c!=d,e in (x, y),!f,g").unwrap(),
            "a=b,c!=d,e in (x,y),!f,g"
        );
        assert!(label_selector("").is_err());
        assert!(label_selector("a=b,").is_err());
        assert!(label_selector("a in (x").is_err());
        assert!(label_selector("bad key=1").is_err());
    }

    #[test]
    fn names_and_quantities() {
        assert!(dns1123_subdomain("web.v2").is_ok());
        assert!(dns1123_subdomain("Web").is_err());
        assert!(dns1035_label("1web").is_err());
        assert!(quantity("100m") && quantity("1.5Gi") && quantity("2") && !quantity("lots"));
    }
}
