//! Who is calling and what they may do. `jwt` verifies bearer tokens into a [`Principal`];
//! `policy` holds roles, grants and the decision. The policy file is reloaded when it changes; a
//! broken edit keeps the previous policy (and says so in the log). Token parsing lives only here.

pub mod jwt;
pub mod limits;
pub mod policy;

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

pub use jwt::{AuthError, Authenticator, Principal};
pub use policy::{Decision, Grant, Policy, Role};

/// The header a bot names the person it acts for with.
pub const ON_BEHALF_OF: &str = "x-on-behalf-of";

use crate::config::AuthConfig;

/// A refusal (answered 403); the text names what was missing.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Denied(pub String);

/// Token verification plus the current policy.
pub struct Auth {
    pub authenticator: Authenticator,
    pub limits: limits::RateLimits,
    policy: RwLock<Arc<Policy>>,
    policy_file: Option<PathBuf>,
    /// Changes of the policy file seen, by result (`applied`, `invalid`: the previous policy
    /// stays); registered in the application's metrics as `kubegate_policy_reloads_total`.
    pub policy_reloads: prometheus::IntCounterVec,
}

impl Auth {
    pub fn from_config(c: &AuthConfig, limits: limits::RateLimits) -> anyhow::Result<Self> {
        let authenticator = Authenticator::from_config(c)?;
        let policy = match &c.policy_file {
            Some(path) => {
                load_policy(path).map_err(|e| anyhow::anyhow!("KUBEGATE_POLICY_FILE: {e}"))?
            }
            None => Policy::default(),
        };
        Ok(Self {
            authenticator,
            limits,
            policy: RwLock::new(Arc::new(policy)),
            policy_file: c.policy_file.clone(),
            policy_reloads: prometheus::IntCounterVec::new(
                prometheus::Opts::new(
                    "policy_reloads_total",
                    "Changes of the policy file seen: applied, or invalid (the previous policy stays)",
                ),
                &["result"],
            )?,
        })
    }

    pub fn policy(&self) -> Arc<Policy> {
        self.policy.read().expect("policy lock").clone()
    }

    /// Every grant of a principal: the policy's for its subject and groups, and its token's.
    pub fn grants(&self, p: &Principal) -> Vec<Grant> {
        let mut grants = self.policy().grants_for(&p.subject, &p.groups);
        grants.extend(p.token_grants.iter().cloned());
        grants
    }

    /// The decision for a caller; for a bot acting for a person, all three must hold: the bot
    /// may delegate here, the bot itself may do it, and the person may do it. The person's grant
    /// is the one named.
    pub fn decide(
        &self,
        p: &Principal,
        verb: &str,
        cluster: &str,
        namespace: Option<&str>,
    ) -> Decision {
        self.decide_role(p, verb, policy::role_for(verb), cluster, namespace)
    }

    /// Decide what needs the role `needed` (`verb` names it in the reason).
    pub fn decide_role(
        &self,
        p: &Principal,
        verb: &str,
        needed: Role,
        cluster: &str,
        namespace: Option<&str>,
    ) -> Decision {
        let person = policy::decide_role(&self.grants(p), verb, needed, cluster, namespace);
        let Some(bot) = &p.delegated_by else {
            return person;
        };
        let bot_grants = self.grants(bot);
        let deny = |reason: String| Decision {
            allowed: false,
            grant: None,
            reason,
        };
        let may_delegate = policy::decide(&bot_grants, "delegate", cluster, namespace);
        if !may_delegate.allowed {
            return deny(format!(
                "{} may not act for others here: {}",
                bot.subject, may_delegate.reason
            ));
        }
        let own = policy::decide_role(&bot_grants, verb, needed, cluster, namespace);
        if !own.allowed {
            return deny(format!(
                "acting for {}, {} is limited to its own grants: {}",
                p.subject, bot.subject, own.reason
            ));
        }
        if !person.allowed {
            return deny(format!("{} (acting for {})", person.reason, p.subject));
        }
        Decision {
            reason: format!(
                "{} for {} via {} (within {})",
                person.reason,
                p.subject,
                bot.subject,
                own.grant.as_ref().map(Grant::describe).unwrap_or_default()
            ),
            ..person
        }
    }

    /// The person a bot acts for. Refused (403) unless the bot holds `delegate` somewhere and
    /// the policy file knows the person.
    pub fn on_behalf_of(&self, bot: Principal, name: &str) -> Result<Principal, Denied> {
        if !self.grants(&bot).iter().any(|g| g.role == Role::Delegate) {
            return Err(Denied(format!(
                "X-On-Behalf-Of needs the delegate role, and {} has no grant of it",
                bot.subject
            )));
        }
        if name.is_empty() || name.len() > 256 || name.chars().any(char::is_control) {
            return Err(Denied(
                "X-On-Behalf-Of names nobody (1-256 printable characters)".into(),
            ));
        }
        let Some((subject, groups)) = self.policy().person(name) else {
            return Err(Denied(format!(
                "X-On-Behalf-Of: {name:?} is not a person the policy file knows"
            )));
        };
        Ok(Principal {
            subject,
            issuer: bot.issuer.clone(),
            groups,
            token_grants: Vec::new(),
            delegated_by: Some(Box::new(bot)),
        })
    }

    /// Allowed, or the 403 to answer.
    pub fn authorize(
        &self,
        p: &Principal,
        verb: &str,
        cluster: &str,
        namespace: Option<&str>,
    ) -> Result<Decision, Denied> {
        self.authorize_role(p, verb, policy::role_for(verb), cluster, namespace)
    }

    /// Allow what needs the role `needed` (`verb` names it), or say why not.
    pub fn authorize_role(
        &self,
        p: &Principal,
        verb: &str,
        needed: Role,
        cluster: &str,
        namespace: Option<&str>,
    ) -> Result<Decision, Denied> {
        let d = self.decide_role(p, verb, needed, cluster, namespace);
        if d.allowed {
            Ok(d)
        } else {
            tracing::info!(subject = %p.subject, verb, cluster, namespace, "denied");
            Err(Denied(d.reason))
        }
    }

    /// May the principal see this cluster at all (any grant naming it; a bot's too)?
    pub fn sees_cluster(&self, p: &Principal, cluster: &str) -> bool {
        let sees = |p: &Principal| {
            self.grants(p)
                .iter()
                .any(|g| g.clusters.iter().any(|c| policy::glob(c, cluster)))
        };
        sees(p) && p.delegated_by.as_deref().is_none_or(sees)
    }

    /// Reload the policy file whenever its modification time changes.
    pub fn watch_policy(self: &Arc<Self>, every: Duration) {
        let Some(path) = self.policy_file.clone() else {
            return;
        };
        let auth = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut seen = modified(&path);
            loop {
                tokio::time::sleep(every).await;
                let Some(auth) = auth.upgrade() else { return };
                let now = modified(&path);
                if now == seen {
                    continue;
                }
                seen = now;
                match load_policy(&path) {
                    Ok(p) => {
                        tracing::info!(path = %path.display(), bindings = p.bindings.len(), "policy reloaded");
                        *auth.policy.write().expect("policy lock") = Arc::new(p);
                        auth.policy_reloads.with_label_values(&["applied"]).inc();
                    }
                    Err(e) => {
                        tracing::error!(path = %path.display(), error = %e, "policy file invalid; keeping the previous policy");
                        auth.policy_reloads.with_label_values(&["invalid"]).inc();
                    }
                }
            }
        });
    }
}

fn modified(path: &PathBuf) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn load_policy(path: &PathBuf) -> Result<Policy, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let toml = path.extension().is_some_and(|e| e == "toml");
    Policy::parse(&text, toml).map_err(|e| format!("{}: {e}", path.display()))
}
