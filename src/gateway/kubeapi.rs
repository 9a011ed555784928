//! The Kubernetes API through kubegate (a person's own kubectl): each request's attributes read
//! as the API server reads them (`RequestInfo`), decided by kubegate's roles through one table
//! (`need`), every change audited write-ahead (the intent before it is sent, the outcome with the
//! API server's status), then forwarded with kubegate's credentials (optionally impersonating the
//! caller). `kubectl auth can-i` and `auth whoami` are answered by kubegate itself: the cluster
//! would answer for kubegate's own account.

use serde_json::{Value, json};

use super::{AppState, Error};
use crate::action::Target;
use crate::audit::{Entry, hex, now_us};
use crate::auth::Principal;
use crate::auth::policy::glob;
use crate::context;
use crate::role::Role;

/// A request's attributes, as the API server's `RequestInfoFactory` reads a path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attributes {
    /// A resource request (`/api/...`, `/apis/...` naming a resource), else a non-resource one
    /// (discovery, `/version`, `/openapi/...`, `/healthz`).
    pub resource_request: bool,
    /// get, list, watch, create, update, patch, delete, deletecollection (resource requests);
    /// the lower-cased method otherwise.
    pub verb: String,
    pub group: String,
    pub version: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: Option<String>,
    pub name: Option<String>,
}

impl Attributes {
    /// `deployments.apps/scale`, `pods`: as RBAC and kubectl's errors name a resource.
    pub fn resource_name(&self) -> String {
        let mut r = if self.group.is_empty() {
            self.resource.clone()
        } else {
            format!("{}.{}", self.resource, self.group)
        };
        if !self.subresource.is_empty() {
            r.push('/');
            r.push_str(&self.subresource);
        }
        r
    }

    /// Who am I, may I: questions about oneself, which kubegate answers.
    pub fn is_self_review(&self) -> bool {
        self.verb == "create"
            && matches!(
                (self.group.as_str(), self.resource.as_str()),
                ("authentication.k8s.io", "selfsubjectreviews")
                    | (
                        "authorization.k8s.io",
                        "selfsubjectaccessreviews" | "selfsubjectrulesreviews"
                    )
            )
    }

    /// Reads are not audited here (unless read auditing is on); exec, attach and port-forward
    /// are sessions even when they start with a GET (a WebSocket upgrade).
    pub fn is_read(&self) -> bool {
        matches!(
            self.verb.as_str(),
            "get" | "list" | "watch" | "head" | "options"
        ) && !matches!(self.subresource.as_str(), "exec" | "attach" | "portforward")
    }
}

/// Read a request's attributes (k8s.io/apiserver/pkg/endpoints/request/requestinfo.go).
pub fn attributes(method: &str, path: &str, query: &str) -> Attributes {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let non_resource = || Attributes {
        verb: method.to_ascii_lowercase(),
        ..Attributes::default()
    };
    let (group, version, mut rest) = match parts.as_slice() {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return non_resource(),
    };
    let mut info = Attributes {
        resource_request: true,
        group: group.to_owned(),
        version: version.to_owned(),
        ..Attributes::default()
    };
    // The deprecated `/watch/` prefix.
    let mut watch_prefix = false;
    if rest.first() == Some(&"watch") {
        watch_prefix = true;
        rest = &rest[1..];
    }
    if rest.is_empty() {
        // `/api/v1`, `/apis/apps/v1`: discovery.
        return non_resource();
    }
    if rest[0] == "namespaces" && rest.len() > 1 {
        info.namespace = Some(rest[1].to_owned());
        // `namespaces/NS/RESOURCE...`; but `namespaces/NS/status|finalize` are the namespace's.
        if rest.len() > 2 && !matches!(rest[2], "status" | "finalize") {
            rest = &rest[2..];
        }
    }
    info.resource = rest[0].to_owned();
    info.name = rest.get(1).map(|s| (*s).to_owned());
    info.subresource = rest.get(2).map(|s| (*s).to_owned()).unwrap_or_default();
    let watch = watch_prefix
        || url::form_urlencoded::parse(query.as_bytes())
            .any(|(k, v)| k == "watch" && (v == "true" || v == "1"));
    info.verb = match method {
        "POST" => "create",
        "PUT" => "update",
        "PATCH" => "patch",
        "DELETE" if info.name.is_some() => "delete",
        "DELETE" => "deletecollection",
        "GET" | "HEAD" if watch => "watch",
        "GET" | "HEAD" if info.name.is_some() => "get",
        "GET" | "HEAD" => "list",
        other => {
            return Attributes {
                verb: other.to_ascii_lowercase(),
                ..info
            };
        }
    }
    .to_owned();
    info
}

/// What a request needs: kubegate's permission (named in decisions and the audit) and the role.
/// `kind`: the resource's kind and whether it is namespaced, from the cluster's discovery (None
/// when the cluster does not serve it). The README has the same table.
pub fn need(
    a: &Attributes,
    kind: Option<(&str, bool)>,
    deployer_kinds: &[String],
) -> (&'static str, Role) {
    if !a.resource_request || a.is_self_review() {
        return ("discover", Role::Viewer);
    }
    let core = a.group.is_empty();
    match (a.verb.as_str(), a.subresource.as_str()) {
        (_, "exec" | "attach") if core && a.resource == "pods" => ("exec", Role::Admin),
        (_, "portforward") if core && a.resource == "pods" => ("portforward", Role::Admin),
        (_, "proxy") if core => ("proxy", Role::Admin),
        ("get" | "list" | "watch", _) if core && a.resource == "secrets" => {
            ("read secrets", Role::Admin)
        }
        ("get" | "list" | "watch", "" | "log" | "status" | "scale") => ("read", Role::Viewer),
        ("delete" | "deletecollection", _) => ("delete", Role::Admin),
        ("create" | "update" | "patch", "" | "scale") => {
            let deployer = kind.is_some_and(|(kind, namespaced)| {
                let name = format!("{}/{kind}", if core { "core" } else { &a.group });
                namespaced && deployer_kinds.iter().any(|p| glob(p, &name))
            });
            if deployer {
                ("change", Role::Deployer)
            } else {
                ("change cluster-wide or privileged kinds", Role::Admin)
            }
        }
        _ => ("administer", Role::Admin),
    }
}

/// One request for the cluster's API server.
#[derive(Debug)]
pub struct KubeRequest {
    pub cluster: String,
    pub method: http::Method,
    /// The API server's path (`/api/v1/namespaces/x/pods`), as the client encoded it.
    pub path: String,
    pub query: String,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
}

/// Headers never passed on: kubegate's credentials, any the caller would use to pose as
/// someone else, the caller's cookies, and those of one hop.
fn forwarded(name: &http::HeaderName) -> bool {
    let n = name.as_str();
    !(n.starts_with("impersonate-")
        || n.starts_with("x-remote-")
        || matches!(
            n,
            "authorization"
                | "cookie"
                | "host"
                | "connection"
                | "keep-alive"
                | "proxy-authenticate"
                | "proxy-authorization"
                | "te"
                | "trailer"
                | "transfer-encoding"
                | "upgrade"
                | "content-length"
                | "accept-encoding"
                | "x-on-behalf-of"
                | "idempotency-key"
        ))
}

/// The answer to a request kubegate decided (and audited) or forwarded.
pub enum KubeAnswer {
    /// The API server's answer, to stream back.
    Forwarded(http::Response<kube::client::Body>),
    /// kubegate's own answer (an access review): status and JSON.
    Own(u16, Value),
}

/// A decided request, ready to send.
pub struct Decided<'a> {
    pub attrs: Attributes,
    pub target: Target,
    request: KubeRequest,
    /// The intent, for a change (reads are not audited here).
    pending: Option<crate::audit::Pending<'a>>,
    impersonate: Option<(String, Vec<String>)>,
}

impl Decided<'_> {
    /// The request as it goes to the API server.
    fn build(&self, upgrade: bool) -> Result<http::Request<Vec<u8>>, Error> {
        let r = &self.request;
        let uri = if r.query.is_empty() {
            r.path.clone()
        } else {
            format!("{}?{}", r.path, r.query)
        };
        let mut b = http::Request::builder().method(r.method.clone()).uri(uri);
        for (name, value) in &r.headers {
            if forwarded(name) {
                b = b.header(name, value);
            }
        }
        if upgrade {
            for name in [http::header::CONNECTION, http::header::UPGRADE] {
                if let Some(v) = r.headers.get(&name) {
                    b = b.header(name, v);
                }
            }
        }
        if let Some((user, groups)) = &self.impersonate {
            b = b.header("Impersonate-User", user);
            for g in groups {
                b = b.header("Impersonate-Group", g);
            }
        }
        b.body(r.body.clone())
            .map_err(|e| Error::bad_request(format!("cannot forward this request: {e}")))
    }
}

/// Decide a request: its attributes, kubegate's decision (deny by default), and for a change
/// the committed intent. Refusals are audited (changes) as any refused request is.
pub async fn decide<'a>(
    state: &'a AppState,
    principal: &Principal,
    req: KubeRequest,
) -> Result<Decided<'a>, Error> {
    let attrs = attributes(req.method.as_str(), &req.path, &req.query);
    let cluster = state.cluster(principal, &req.cluster)?;
    let target = Target {
        cluster: req.cluster.clone(),
        namespace: attrs.namespace.clone().unwrap_or_default(),
    };
    let kind = if attrs.resource_request && !attrs.is_read() && !attrs.is_self_review() {
        cluster
            .resolve_resource(&attrs.group, &attrs.version, &attrs.resource)
            .await?
    } else {
        None
    };
    let kind_ref = kind
        .as_ref()
        .map(|k| (k.resource.kind.as_str(), k.namespaced));
    let (what, role) = need(&attrs, kind_ref, &state.apply.deployer_kinds);
    let verb = format!("{} {}", attrs.verb, attrs.resource_name());
    let decision = if what == "discover" {
        if state.auth.sees_cluster(principal, &req.cluster) {
            Ok(crate::auth::Decision {
                allowed: true,
                grant: None,
                reason: "discovery: a grant on the cluster".into(),
            })
        } else {
            Err(Error::Forbidden {
                detail: format!("no grant names cluster {:?}", req.cluster),
            })
        }
    } else {
        // A namespaced resource in a namespace needs the grant there; the rest (cluster-scoped
        // kinds, lists across namespaces) a grant on every namespace.
        let ns = attrs.namespace.as_deref().filter(|_| {
            kind.as_ref().is_none_or(|k| k.namespaced) || attrs.resource == "namespaces"
        });
        state
            .auth
            .authorize_role(
                principal,
                &format!("{verb} ({what})"),
                role,
                &req.cluster,
                ns,
            )
            .map_err(Error::from)
    };
    let impersonate = state
        .impersonate
        .iter()
        .any(|p| glob(p, &req.cluster))
        .then(|| {
            (
                format!("{}#{}", principal.issuer, principal.subject),
                principal.groups.iter().cloned().collect(),
            )
        });
    if attrs.is_read() || !attrs.resource_request || attrs.is_self_review() {
        decision?;
        return Ok(Decided {
            attrs,
            target,
            request: req,
            pending: None,
            impersonate,
        });
    }
    let audit_id = crate::audit::new_id();
    let ctx = context::current();
    if let Some(c) = &ctx {
        *c.audit_id.lock().expect("audit id") = Some(audit_id.to_string());
    }
    let dry_run =
        url::form_urlencoded::parse(req.query.as_bytes()).any(|(k, v)| k == "dryRun" && v == "All");
    let mut summary = json!({
        "interface": "kubernetes",
        "verb": attrs.verb, "group": attrs.group, "version": attrs.version,
        "resource": attrs.resource, "subresource": attrs.subresource,
        "bodyBytes": req.body.len(),
    });
    if !req.body.is_empty() {
        summary["bodySha256"] = json!(hex(
            ring::digest::digest(&ring::digest::SHA256, &req.body).as_ref()
        ));
    }
    if attrs.subresource == "exec" || attrs.subresource == "attach" {
        let command: Vec<String> = url::form_urlencoded::parse(req.query.as_bytes())
            .filter(|(k, _)| k == "command")
            .map(|(_, v)| v.into_owned())
            .collect();
        summary["command"] = json!(command);
    }
    let mut base = super::entry_for(
        audit_id,
        principal,
        ctx.as_deref(),
        &target,
        &format!("kubectl {}", attrs.verb),
        (
            &attrs.resource_name(),
            attrs.name.clone().unwrap_or_default(),
        ),
        summary,
        dry_run,
    );
    if attrs.namespace.is_none() {
        base.namespace = None;
    }
    let intent = super::commit_intent(state, principal, &target, base, decision).await?;
    Ok(Decided {
        attrs,
        target,
        request: req,
        pending: Some(state.audit.pending(intent)),
        impersonate,
    })
}

/// Send a decided request; the outcome of a change is audited with the API server's status.
pub async fn forward(
    state: &AppState,
    principal: &Principal,
    d: Decided<'_>,
) -> Result<KubeAnswer, Error> {
    if let Some(own) = own_answer(state, principal, &d).await? {
        if let Some(p) = d.pending {
            p.finish(|intent| Entry {
                stage: "outcome".into(),
                outcome: "succeeded".into(),
                completed_at_us: Some(now_us()),
                http_status: Some(i32::from(own.0)),
                ..intent
            })
            .await;
        }
        return Ok(KubeAnswer::Own(own.0, own.1));
    }
    let cluster = state.cluster(principal, &d.target.cluster)?;
    let request = d.build(false)?;
    let result = cluster.proxy(request).await.map_err(Error::from);
    if let Some(p) = d.pending {
        p.finish(|intent| outcome(intent, &result.as_ref().map(|r| r.status().as_u16())))
            .await;
    }
    result.map(KubeAnswer::Forwarded)
}

/// The outcome entry of a change the API server answered with `status` (or failed to answer).
fn outcome(intent: Entry, status: &Result<u16, &Error>) -> Entry {
    match status {
        Ok(code) => Entry {
            stage: "outcome".into(),
            outcome: if *code < 400 { "succeeded" } else { "failed" }.into(),
            completed_at_us: Some(now_us()),
            http_status: Some(i32::from(*code)),
            result: Some(json!({"status": code}).to_string()),
            ..intent
        },
        Err(e) => super::failed_outcome(intent, e),
    }
}

/// An upgraded connection to the API server (exec, attach, port-forward over SPDY or a
/// WebSocket), with its answer's head; or the API server's refusal.
pub enum Upgrade {
    Switched {
        head: http::response::Parts,
        io: hyper::upgrade::Upgraded,
        /// Closes the audit entry when the connection ends.
        done: Box<dyn FnOnce(u64, u64) -> futures::future::BoxFuture<'static, ()> + Send>,
    },
    Refused(http::Response<kube::client::Body>),
}

/// Open an upgrade for a decided request: the intent is already committed; its outcome is
/// written when the connection ends (`done` with the bytes each way), or now if refused.
pub async fn upgrade(
    state: &AppState,
    principal: &Principal,
    d: Decided<'_>,
) -> Result<Upgrade, Error> {
    let cluster = state.cluster(principal, &d.target.cluster)?;
    let request = d.build(true)?;
    let result = cluster.upgrade(request).await.map_err(Error::from);
    let pending = d.pending;
    match result {
        Ok(Ok((head, io))) => {
            let code = head.status.as_u16();
            let pending = pending.map(crate::audit::Pending::into_owned);
            let done = Box::new(move |up: u64, down: u64| {
                let fut: futures::future::BoxFuture<'static, ()> = Box::pin(async move {
                    if let Some(p) = pending {
                        p.finish(|intent| Entry {
                            stage: "outcome".into(),
                            outcome: "succeeded".into(),
                            completed_at_us: Some(now_us()),
                            http_status: Some(i32::from(code)),
                            result: Some(
                                json!({"status": code, "bytesIn": up, "bytesOut": down})
                                    .to_string(),
                            ),
                            ..intent
                        })
                        .await;
                    }
                });
                fut
            });
            Ok(Upgrade::Switched { head, io, done })
        }
        Ok(Err(refused)) => {
            if let Some(p) = pending {
                p.finish(|intent| outcome(intent, &Ok(refused.status().as_u16())))
                    .await;
            }
            Ok(Upgrade::Refused(refused))
        }
        Err(e) => {
            if let Some(p) = pending {
                p.finish(|intent| outcome(intent, &Err(&e))).await;
            }
            Err(e)
        }
    }
}

/// Requests kubegate answers itself: who am I (`kubectl auth whoami`), may I (`kubectl auth
/// can-i`, from kubegate's roles), and the list of rules, which kubegate cannot give.
async fn own_answer(
    state: &AppState,
    principal: &Principal,
    d: &Decided<'_>,
) -> Result<Option<(u16, Value)>, Error> {
    let a = &d.attrs;
    if a.verb != "create" || !a.resource_request {
        return Ok(None);
    }
    // kubectl sends these in protobuf (`application/vnd.kubernetes.protobuf`); others in JSON.
    let body: Value = serde_json::from_slice(&d.request.body)
        .ok()
        .or_else(|| protobuf_review(&d.request.body))
        .unwrap_or(Value::Null);
    match (a.group.as_str(), a.resource.as_str()) {
        ("authentication.k8s.io", "selfsubjectreviews") => Ok(Some((
            201,
            json!({
                "apiVersion": format!("authentication.k8s.io/{}", a.version),
                "kind": "SelfSubjectReview",
                "metadata": {"creationTimestamp": null},
                "status": {"userInfo": {"username": principal.subject, "groups": principal.groups}},
            }),
        ))),
        ("authorization.k8s.io", "selfsubjectaccessreviews") => {
            let spec = &body["spec"];
            let (allowed, reason) = review(state, principal, &d.target.cluster, spec).await?;
            Ok(Some((
                201,
                json!({
                    "apiVersion": format!("authorization.k8s.io/{}", a.version),
                    "kind": "SelfSubjectAccessReview",
                    "metadata": {"creationTimestamp": null},
                    "spec": spec,
                    "status": {"allowed": allowed, "reason": reason},
                }),
            )))
        }
        ("authorization.k8s.io", "selfsubjectrulesreviews") => Ok(Some((
            201,
            json!({
                "apiVersion": format!("authorization.k8s.io/{}", a.version),
                "kind": "SelfSubjectRulesReview",
                "metadata": {"creationTimestamp": null},
                "spec": body["spec"],
                "status": {"resourceRules": [], "nonResourceRules": [], "incomplete": true,
                           "evaluationError": "kubegate decides by its roles, not RBAC rules: ask for one permission (kubectl auth can-i VERB RESOURCE)"},
            }),
        ))),
        _ => Ok(None),
    }
}

/// May the caller do what a `SelfSubjectAccessReview` spec asks, by kubegate's roles?
pub async fn review(
    state: &AppState,
    principal: &Principal,
    cluster_name: &str,
    spec: &Value,
) -> Result<(bool, String), Error> {
    let text = |v: &Value| v.as_str().unwrap_or("").to_owned();
    let Some(r) = spec.get("resourceAttributes").filter(|r| r.is_object()) else {
        // Non-resource URLs: discovery and friends, open to anyone with a grant on the cluster.
        let seen = state.auth.sees_cluster(principal, cluster_name);
        return Ok((seen, "non-resource URLs: any grant on the cluster".into()));
    };
    let attrs = Attributes {
        resource_request: true,
        verb: text(&r["verb"]),
        group: text(&r["group"]),
        version: text(&r["version"]),
        resource: text(&r["resource"]),
        subresource: text(&r["subresource"]),
        namespace: Some(text(&r["namespace"])).filter(|n| !n.is_empty()),
        name: Some(text(&r["name"])).filter(|n| !n.is_empty()),
    };
    let need = requirement(state, principal, cluster_name, attrs).await?;
    let d = state.auth.decide_role(
        principal,
        &need.verb,
        need.role,
        cluster_name,
        need.namespace.as_deref(),
    );
    Ok((d.allowed, d.reason))
}

/// What a Kubernetes request with these attributes needs of kubegate's roles, and where.
#[derive(Debug, Clone)]
pub struct Requirement {
    /// `delete pods (delete)`: the request and kubegate's permission, as decisions name it.
    pub verb: String,
    pub role: Role,
    /// The namespace the grant must cover (None: every namespace).
    pub namespace: Option<String>,
}

/// The requirement of a request (its kind resolved through the cluster's discovery).
pub async fn requirement(
    state: &AppState,
    principal: &Principal,
    cluster_name: &str,
    mut attrs: Attributes,
) -> Result<Requirement, Error> {
    let cluster = state.cluster(principal, cluster_name)?;
    let mut kind = None;
    if !attrs.resource.is_empty() {
        if attrs.version.is_empty() {
            attrs.version = preferred_version(&attrs.group);
        }
        kind = cluster
            .resolve_resource(&attrs.group, &attrs.version, &attrs.resource)
            .await?;
    }
    let (what, role) = need(
        &attrs,
        kind.as_ref()
            .map(|k| (k.resource.kind.as_str(), k.namespaced)),
        &state.apply.deployer_kinds,
    );
    let namespace = attrs
        .namespace
        .clone()
        .filter(|_| kind.as_ref().is_none_or(|k| k.namespaced));
    Ok(Requirement {
        verb: format!("{} {} ({what})", attrs.verb, attrs.resource_name()),
        role,
        namespace,
    })
}

/// The `spec` of a `SelfSubjectAccessReview` in Kubernetes' protobuf encoding, as JSON: the
/// `k8s\0` envelope (`runtime.Unknown`: typeMeta 1, raw 2), then the review (spec 2), its spec
/// (resourceAttributes 1, nonResourceAttributes 2) and their strings (field numbers of
/// k8s.io/api/authorization/v1/types.go). None when it is not that.
fn protobuf_review(body: &[u8]) -> Option<Value> {
    let unknown = body.strip_prefix(b"k8s\0")?;
    let raw = protobuf_field(unknown, 2)?;
    let spec = protobuf_field(raw, 2).unwrap_or(&[]);
    let strings = |m: &[u8], names: &[&str]| {
        let mut out = serde_json::Map::new();
        for (i, name) in names.iter().enumerate() {
            if let Some(v) = protobuf_field(m, i as u64 + 1) {
                out.insert((*name).to_owned(), json!(String::from_utf8_lossy(v)));
            }
        }
        Value::Object(out)
    };
    let mut out = json!({});
    if let Some(r) = protobuf_field(spec, 1) {
        out["resourceAttributes"] = strings(
            r,
            &[
                "namespace",
                "verb",
                "group",
                "version",
                "resource",
                "subresource",
                "name",
            ],
        );
    }
    if let Some(n) = protobuf_field(spec, 2) {
        out["nonResourceAttributes"] = strings(n, &["path", "verb"]);
    }
    Some(json!({"spec": out}))
}

/// The bytes of the (last) length-delimited field `number` of a protobuf message.
fn protobuf_field(mut m: &[u8], number: u64) -> Option<&[u8]> {
    fn varint(m: &mut &[u8]) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = m.split_first()?;
            *m = rest;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Some(v);
            }
        }
        None
    }
    let mut found = None;
    while !m.is_empty() {
        let key = varint(&mut m)?;
        match key & 7 {
            0 => {
                varint(&mut m)?;
            }
            1 => m = m.get(8..)?,
            5 => m = m.get(4..)?,
            2 => {
                let len = usize::try_from(varint(&mut m)?).ok()?;
                let (value, rest) = (m.get(..len)?, m.get(len..)?);
                if key >> 3 == number {
                    found = Some(value);
                }
                m = rest;
            }
            _ => return None,
        }
    }
    found
}

/// The version kubectl means when it names a group without one (can-i sends none).
fn preferred_version(group: &str) -> String {
    match group {
        "autoscaling" => "v2",
        _ => "v1",
    }
    .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(
        method: &str,
        path: &str,
        query: &str,
    ) -> (String, String, String, Option<String>, Option<String>) {
        let i = attributes(method, path, query);
        let r = i.resource_name();
        (i.verb, r, i.group, i.namespace, i.name)
    }

    #[test]
    fn paths_read_as_the_api_server_reads_them() {
        assert_eq!(
            a("GET", "/api/v1/namespaces/shop/pods", ""),
            (
                "list".into(),
                "pods".into(),
                "".into(),
                Some("shop".into()),
                None
            )
        );
        assert_eq!(
            a("GET", "/api/v1/namespaces/shop/pods", "watch=true"),
            (
                "watch".into(),
                "pods".into(),
                "".into(),
                Some("shop".into()),
                None
            )
        );
        assert_eq!(
            a(
                "PATCH",
                "/apis/apps/v1/namespaces/shop/deployments/web/scale",
                ""
            ),
            (
                "patch".into(),
                "deployments.apps/scale".into(),
                "apps".into(),
                Some("shop".into()),
                Some("web".into())
            )
        );
        assert_eq!(
            a("DELETE", "/api/v1/namespaces/shop/pods", "labelSelector=a"),
            (
                "deletecollection".into(),
                "pods".into(),
                "".into(),
                Some("shop".into()),
                None
            )
        );
        assert_eq!(
            a("GET", "/api/v1/namespaces/shop", ""),
            (
                "get".into(),
                "namespaces".into(),
                "".into(),
                Some("shop".into()),
                Some("shop".into())
            )
        );
        assert_eq!(
            a("PUT", "/api/v1/namespaces/shop/finalize", ""),
            (
                "update".into(),
                "namespaces/finalize".into(),
                "".into(),
                Some("shop".into()),
                Some("shop".into())
            )
        );
        assert!(!attributes("GET", "/apis/apps/v1", "").resource_request);
        assert!(!attributes("GET", "/version", "").resource_request);
        assert!(!attributes("GET", "/openapi/v3", "").resource_request);
    }

    #[test]
    fn a_protobuf_review_reads_as_its_json() {
        // A length-delimited field: key (number << 3 | 2), length, bytes.
        fn field(n: u8, v: &[u8]) -> Vec<u8> {
            [vec![n << 3 | 2, v.len() as u8], v.to_vec()].concat()
        }
        let attrs = [field(1, b"shop"), field(2, b"delete"), field(5, b"pods")].concat();
        let review = field(2, &field(1, &attrs));
        let unknown = [
            field(1, &field(2, b"SelfSubjectAccessReview")),
            field(2, &review),
        ]
        .concat();
        let body = [b"k8s\0".to_vec(), unknown].concat();
        assert_eq!(
            protobuf_review(&body).unwrap(),
            json!({"spec": {"resourceAttributes": {"namespace": "shop", "verb": "delete", "resource": "pods"}}})
        );
        assert!(protobuf_review(b"{}").is_none());
    }

    #[test]
    fn the_table() {
        let kinds: Vec<String> = crate::config::DEFAULT_APPLY_DEPLOYER_KINDS
            .split(',')
            .map(str::to_owned)
            .collect();
        let need_of = |m: &str, p: &str, kind: Option<(&str, bool)>| {
            need(&attributes(m, p, ""), kind, &kinds).1
        };
        assert_eq!(
            need_of("GET", "/api/v1/namespaces/a/pods", None),
            Role::Viewer
        );
        assert_eq!(
            need_of("GET", "/api/v1/namespaces/a/secrets/s", None),
            Role::Admin
        );
        assert_eq!(
            need_of("GET", "/api/v1/namespaces/a/pods/p/log", None),
            Role::Viewer
        );
        assert_eq!(
            need_of(
                "PATCH",
                "/apis/apps/v1/namespaces/a/deployments/d",
                Some(("Deployment", true))
            ),
            Role::Deployer
        );
        assert_eq!(
            need_of(
                "PATCH",
                "/apis/apps/v1/namespaces/a/deployments/d/scale",
                Some(("Deployment", true))
            ),
            Role::Deployer
        );
        assert_eq!(
            need_of(
                "POST",
                "/apis/rbac.authorization.k8s.io/v1/namespaces/a/roles",
                Some(("Role", true))
            ),
            Role::Admin
        );
        assert_eq!(
            need_of("POST", "/api/v1/namespaces", Some(("Namespace", false))),
            Role::Admin
        );
        assert_eq!(
            need_of("DELETE", "/api/v1/namespaces/a/pods/p", Some(("Pod", true))),
            Role::Admin
        );
        assert_eq!(
            need_of("GET", "/api/v1/namespaces/a/pods/p/exec", None),
            Role::Admin
        );
        assert_eq!(need_of("GET", "/version", None), Role::Viewer);
    }
}
