//! Roles, grants and the decision. Deny by default: a request is allowed only by a grant whose
//! role includes the permission and whose cluster and namespace patterns match; the most specific
//! such grant is named in the decision. Grants come from the policy file (subjects and groups bound
//! to grants, reloaded on change) and, for simple setups, from a token claim.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use crate::role::Role;

/// What a request needs: reads need `viewer`, changes `deployer`, deletes, interactive access
/// to pods (`exec`, `portforward`, `proxy`) and applying privileged kinds `admin`, the audit log
/// `auditor`.
pub fn role_for(verb: &str) -> Role {
    match verb {
        "read" => Role::Viewer,
        "read_audit" | "verify_audit" => Role::Auditor,
        "delegate" => Role::Delegate,
        v if v.starts_with("delete") => Role::Admin,
        "exec" | "portforward" | "proxy" => Role::Admin,
        // Cluster-scoped kinds, and kinds beyond what a deployer may apply (see apply's policy).
        "apply_privileged" => Role::Admin,
        "review_access_of_others" => Role::Admin,
        _ => Role::Deployer,
    }
}

/// A role on clusters and namespaces (glob patterns: `*` any run, `?` one character).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"role": "deployer", "clusters": ["dev", "staging-*"], "namespaces": ["shop-*"], "source": "policy:shop-team"}))]
pub struct Grant {
    pub role: Role,
    #[serde(default = "everything")]
    pub clusters: Vec<String>,
    #[serde(default = "everything")]
    pub namespaces: Vec<String>,
    /// Where the grant comes from (`policy:<binding>` or `token`); set by kubegate (a value in a
    /// policy file is replaced).
    #[serde(default)]
    pub source: String,
}

fn everything() -> Vec<String> {
    vec!["*".to_owned()]
}

/// `*` matches any run of characters, `?` exactly one.
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

impl Grant {
    /// How well this grant matches: None if not at all, else higher is more specific.
    fn specificity(&self, cluster: &str, namespace: Option<&str>) -> Option<u32> {
        let c = self
            .clusters
            .iter()
            .filter(|p| glob(p, cluster))
            .map(|p| score(p))
            .max()?;
        let n = match namespace {
            Some(ns) => self
                .namespaces
                .iter()
                .filter(|p| glob(p, ns))
                .map(|p| score(p))
                .max()?,
            // Cluster-scoped reads (nodes, namespaces) need the grant on all namespaces.
            None => self.namespaces.iter().any(|p| p == "*").then_some(0)?,
        };
        Some(c * 1000 + n)
    }

    pub fn describe(&self) -> String {
        format!(
            "{} on clusters {} namespaces {} ({})",
            self.role.as_str(),
            self.clusters.join(","),
            self.namespaces.join(","),
            self.source
        )
    }
}

/// Exact names beat patterns; longer literal parts beat shorter ones.
fn score(pattern: &str) -> u32 {
    if pattern.contains(['*', '?']) {
        pattern.chars().filter(|c| *c != '*' && *c != '?').count() as u32
    } else {
        500
    }
}

/// Grants from a `role` or `role@cluster/namespace` token claim entry (globs allowed).
pub fn grant_from_claim(entry: &str) -> Option<Grant> {
    let (role, scope) = match entry.split_once('@') {
        Some((r, s)) => (r, Some(s)),
        None => (entry, None),
    };
    let role = Role::parse(role)?;
    let (clusters, namespaces) = match scope {
        None => (everything(), everything()),
        Some(s) => {
            let (c, n) = s.split_once('/').unwrap_or((s, "*"));
            if c.is_empty() || n.is_empty() {
                return None;
            }
            (vec![c.to_owned()], vec![n.to_owned()])
        }
    };
    Some(Grant {
        role,
        clusters,
        namespaces,
        source: "token".into(),
    })
}

/// The policy file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    #[serde(default)]
    pub bindings: Vec<Binding>,
    /// People a bot may act for, with their groups and chat identities.
    #[serde(default)]
    pub people: Vec<Person>,
    /// Chat channels allowed to run commands, and what each may touch. None listed: any channel
    /// (grants still decide); some listed: only those.
    #[serde(default)]
    pub channels: Vec<Channel>,
}

/// A person a bot may name in `X-On-Behalf-Of` (by subject or alias).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Person {
    pub subject: String,
    /// The person's groups (no token of theirs tells them).
    #[serde(default)]
    pub groups: Vec<String>,
    /// Other names, e.g. chat user ids: `slack:U024BE7LH` or `slack:T0001/U024BE7LH`.
    #[serde(default)]
    pub aliases: Vec<String>,
}

/// A chat channel's reach.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Channel {
    /// `slack:C0123ABC` (or `slack:T0001/C0123ABC`).
    pub id: String,
    #[serde(default = "everything")]
    pub clusters: Vec<String>,
    #[serde(default = "everything")]
    pub namespaces: Vec<String>,
    /// The cluster a command without `--context` goes to.
    pub default_cluster: Option<String>,
    /// The namespace a command without `-n` goes to.
    pub default_namespace: Option<String>,
}

impl Channel {
    pub fn allows(&self, cluster: &str, namespace: &str) -> bool {
        self.clusters.iter().any(|p| glob(p, cluster))
            && self.namespaces.iter().any(|p| glob(p, namespace))
    }
}

/// Subjects and groups, and what they are granted.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Binding {
    /// Optional name, shown in decisions.
    pub name: Option<String>,
    #[serde(default)]
    pub subjects: Vec<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    pub grants: Vec<Grant>,
}

impl Policy {
    /// Parse YAML (or TOML, for a `.toml` file).
    pub fn parse(text: &str, toml_format: bool) -> Result<Self, String> {
        let mut policy: Policy = if toml_format {
            toml::from_str(text).map_err(|e| e.to_string())?
        } else {
            serde_saphyr::from_str(text).map_err(|e| e.to_string())?
        };
        for p in &policy.people {
            if p.subject.is_empty() {
                return Err("people: a person needs a subject".into());
            }
        }
        for c in &policy.channels {
            if c.clusters.is_empty() || c.namespaces.is_empty() {
                return Err(format!(
                    "channel {}: needs clusters and namespaces (use \"*\" for all)",
                    c.id
                ));
            }
        }
        for (i, b) in policy.bindings.iter_mut().enumerate() {
            let name = b
                .name
                .clone()
                .unwrap_or_else(|| format!("binding {}", i + 1));
            if b.subjects.is_empty() && b.groups.is_empty() {
                return Err(format!("{name}: binds no subject and no group"));
            }
            for g in &mut b.grants {
                if g.clusters.is_empty() || g.namespaces.is_empty() {
                    return Err(format!(
                        "{name}: a grant needs clusters and namespaces (use \"*\" for all)"
                    ));
                }
                g.source = format!("policy:{name}");
            }
        }
        Ok(policy)
    }

    /// The person a bot names: by subject or alias among `people`, or a subject some binding
    /// names (with no groups). Returns the subject and groups.
    pub fn person(&self, name: &str) -> Option<(String, BTreeSet<String>)> {
        if let Some(p) = self
            .people
            .iter()
            .find(|p| p.subject == name || p.aliases.iter().any(|a| a == name))
        {
            return Some((p.subject.clone(), p.groups.iter().cloned().collect()));
        }
        self.bindings
            .iter()
            .any(|b| b.subjects.iter().any(|s| s == name))
            .then(|| (name.to_owned(), BTreeSet::new()))
    }

    /// The channel entry for a chat channel id (the first of the ids given that is listed).
    pub fn channel(&self, ids: &[String]) -> Option<&Channel> {
        ids.iter()
            .find_map(|id| self.channels.iter().find(|c| &c.id == id))
    }

    /// Grants the policy gives this subject and these groups.
    pub fn grants_for(&self, subject: &str, groups: &BTreeSet<String>) -> Vec<Grant> {
        self.bindings
            .iter()
            .filter(|b| {
                b.subjects.iter().any(|s| s == subject)
                    || b.groups.iter().any(|g| groups.contains(g))
            })
            .flat_map(|b| b.grants.iter().cloned())
            .collect()
    }
}

/// The outcome of an authorization check.
#[derive(Debug, Clone)]
pub struct Decision {
    pub allowed: bool,
    /// The grant that allowed it.
    pub grant: Option<Grant>,
    /// Why, in words (names the missing role when denied).
    pub reason: String,
}

/// Decide `verb` on `cluster`/`namespace` (None: cluster-scoped) given these grants.
pub fn decide(grants: &[Grant], verb: &str, cluster: &str, namespace: Option<&str>) -> Decision {
    decide_role(grants, verb, role_for(verb), cluster, namespace)
}

/// Decide what needs the role `needed` (`what` names it in the reason).
pub fn decide_role(
    grants: &[Grant],
    verb: &str,
    needed: Role,
    cluster: &str,
    namespace: Option<&str>,
) -> Decision {
    let best = grants
        .iter()
        .filter(|g| g.role.includes(needed))
        .filter_map(|g| g.specificity(cluster, namespace).map(|s| (s, g)))
        .max_by_key(|(s, _)| *s);
    let place = match namespace {
        Some(ns) => format!("namespace {ns:?} of cluster {cluster:?}"),
        None => format!("cluster {cluster:?} (all namespaces)"),
    };
    match best {
        Some((_, g)) => Decision {
            allowed: true,
            grant: Some(g.clone()),
            reason: format!("{verb} allowed by {}", g.describe()),
        },
        None => Decision {
            allowed: false,
            grant: None,
            reason: format!(
                "{verb} needs the {} role on {place}, and no grant gives it",
                needed.as_str()
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob("*", "anything"));
        assert!(glob("team-*", "team-a"));
        assert!(!glob("team-*", "teams"));
        assert!(glob("d?v", "dev"));
        assert!(glob("*-prod-*", "eu-prod-1"));
        assert!(!glob("dev", "dev2"));
    }

    #[test]
    fn the_most_specific_grant_decides_and_roles_nest() {
        let grants = vec![
            grant_from_claim("viewer").unwrap(),
            grant_from_claim("deployer@dev/team-*").unwrap(),
            grant_from_claim("admin@dev/team-a").unwrap(),
        ];
        let d = decide(&grants, "scale", "dev", Some("team-b"));
        assert!(d.allowed);
        assert_eq!(d.grant.unwrap().namespaces, ["team-*"]);
        let d = decide(&grants, "delete_deployment", "dev", Some("team-a"));
        assert!(d.allowed);
        assert!(!decide(&grants, "delete_deployment", "dev", Some("team-b")).allowed);
        assert!(!decide(&grants, "scale", "prod", Some("team-a")).allowed);
        assert!(
            decide(&grants, "read", "prod", None).allowed,
            "viewer everywhere reads nodes"
        );
        assert!(
            !decide(&grants[1..], "read", "dev", None).allowed,
            "namespace grants do not reach cluster scope"
        );
        assert!(!decide(&grants, "read_audit", "dev", None).allowed);
        assert!(grant_from_claim("Admin").is_none());
        assert!(grant_from_claim("admin@").is_none());
    }
}
