//! `POST /v1/clusters/{cluster}/commands`: kubectl command lines for chatops. A command is parsed
//! (never run by a shell), then handled by the very handler of the REST operation with the same
//! meaning, called with the same principal: validation, authorization, the audit entry,
//! idempotency and dry run cannot differ between the two doors. The answer carries that
//! operation's body (`result`) and a short rendering close to what kubectl prints (`output`).

use std::collections::BTreeMap;
use std::time::Duration;

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::common::{
    DeleteCollectionQuery, ListQuery, MutationQuery, NamespacePath, ObjectPath, cluster,
};
use super::problem::{ApiError, FieldError, Problem};
use super::views::{
    DeploymentList, DeploymentView, PodList, PodView, ReplicaSetList, RevisionList, RolloutView,
    ServiceList, ServiceView,
};
use super::{clusters, deployments, pods, services};
use crate::action::{LabelledKind, Target};
use crate::auth::Principal;
use crate::chatops::command::{self, Command, GetResource, Parsed};
use crate::gateway::AppState;

/// `POST /v1/clusters/{cluster}/commands`
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"command": "kubectl scale deployment/web --replicas=3 -n shop"}))]
pub struct CommandRequest {
    /// A kubectl command line: `get`, `describe`, `logs`, `create deployment`, `run`, `expose`,
    /// `scale`, `set image`, `rollout status|history|undo|restart`, `label`, `delete`, `version`,
    /// `cluster-info`, with `-n`, `--dry-run=server` and a leading `kubectl` optional. Quoted like
    /// a shell line; no shell runs it.
    #[schema(min_length = 1, max_length = 2048)]
    pub command: String,
    /// The namespace when the command has no `-n` (default: the cluster's default namespace).
    #[schema(pattern = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")]
    pub namespace: Option<String>,
}

/// What a command did.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"operation": "scale_deployment", "cluster": "dev", "namespace": "shop", "dryRun": false, "auditId": "0b9c5a2e-6f0d-4c8e-9a51-2f8d7c1e4b3a", "output": "deployment.apps/web scaled", "result": {"deployment": {"name": "web"}, "created": false, "templateChanged": false, "replicasBefore": 1, "auditId": "0b9c5a2e-6f0d-4c8e-9a51-2f8d7c1e4b3a", "dryRun": false}}))]
pub struct CommandResult {
    /// The REST operation (operationId) the command ran as; `result` is its answer.
    pub operation: String,
    pub cluster: String,
    pub namespace: String,
    /// `--dry-run=server`: nothing changed.
    pub dry_run: bool,
    /// The audit id of a change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audit_id: Option<String>,
    /// Close to what kubectl prints, ready to paste into a chat.
    pub output: String,
    /// The answer of `operation`, as its REST endpoint gives it (`get all`: an object of lists;
    /// `logs`: the text).
    #[schema(value_type = Object)]
    pub result: serde_json::Value,
}

/// Run a kubectl command line.
#[utoipa::path(
    post, path = "/v1/clusters/{cluster}/commands", tag = "commands", operation_id = "run_command",
    description = "Run a kubectl command line as the REST operation with the same meaning: same grants, same audit entry, same validation. Supported: get [deployments|pods|services|replicasets|nodes|all] [-l SELECTOR]; describe deployment|pod|service NAME; logs POD [-c C] [--tail N]; create deployment NAME --image=I [--replicas=N] [--port=P]; run NAME --image=I [--port=P] (a Deployment); expose deployment NAME --port P [--target-port T] [--type T] [--name S]; scale deployment/NAME --replicas=N; set image deployment/NAME C=I; rollout status|history|undo|restart deployment/NAME [--to-revision=N]; label deployment|pod|service NAME k=v [k-]... [--overwrite]; delete deployment|service|pod NAME; delete service|pod -l SELECTOR; version; cluster-info. Each takes -n NS and --dry-run=server; changes that roll out take --wait [--timeout=90s]; rollout status waits like kubectl unless --watch=false. Anything else (exec, port-forward, apply -f, unknown flags) is refused with 400 naming what is supported.",
    params(("cluster" = String, Path, description = "Cluster name")),
    request_body = CommandRequest,
    responses(
        (status = 200, description = "Done (a change, a read, or a dry run)", body = CommandResult),
        (status = 201, description = "Created (create deployment, run, expose)", body = CommandResult),
        (status = 400, description = "Not a supported command line, or malformed", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not allowed", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown cluster, or the object does not exist", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Conflict with the cluster's state (e.g. create of an existing Deployment)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid names or values", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn run_command(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<String>,
    body: web::Json<CommandRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let parsed = parse(&body.command)?;
    if let Some(ctx) = &parsed.context
        && *ctx != *path
    {
        return Err(bad_request(format!(
            "--context {ctx} names another cluster than the path's {:?}",
            path.as_str()
        )));
    }
    let (status, result) = execute(&state, &principal, &path, parsed, body.namespace).await?;
    Ok(HttpResponse::build(status).json(result))
}

/// A command line, or the 400 that says what is supported.
pub fn parse(line: &str) -> Result<Parsed, ApiError> {
    command::parse(line).map_err(|e| bad_request(e.to_string()))
}

fn bad_request(detail: String) -> ApiError {
    ApiError::from(crate::gateway::Error::BadRequest {
        errors: vec![FieldError {
            field: "command".into(),
            message: detail.clone(),
        }],
        detail,
    })
}

/// Whether a command waits for a rollout (chat answers those later).
pub fn waits(p: &Parsed) -> bool {
    p.wait || matches!(p.command, Command::RolloutStatus { watch: true, .. })
}

/// Logs in a command's answer are bounded: the last lines when `--tail` is not given.
const DEFAULT_TAIL: i64 = 200;

/// Run a parsed command on `cluster` as `principal`; the status its REST operation answers.
pub async fn execute(
    state: &web::Data<AppState>,
    principal: &Principal,
    cluster_name: &str,
    parsed: Parsed,
    default_namespace: Option<String>,
) -> Result<(actix_web::http::StatusCode, CommandResult), ApiError> {
    use actix_web::http::StatusCode;
    let namespace = match parsed.namespace.clone().or(default_namespace) {
        Some(ns) => ns,
        None => state
            .cluster(principal, cluster_name)?
            .default_namespace
            .clone(),
    };
    let dry_run = parsed.dry_run;
    let reads = parsed.command.action(0).is_none()
        && !matches!(parsed.command, Command::CreateDeployment { .. });
    if dry_run && reads {
        return Err(bad_request(
            "--dry-run=server applies to changes, not to reads".into(),
        ));
    }
    if reads && let Some(ctx) = super::middleware::current() {
        ctx.read_only
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }
    let st = || state.clone();
    let p = || principal.clone();
    let ns_path = || {
        web::Path::from(NamespacePath {
            cluster: cluster_name.to_owned(),
            namespace: namespace.clone(),
        })
    };
    let obj = |name: &str| {
        web::Path::from(ObjectPath {
            cluster: cluster_name.to_owned(),
            namespace: namespace.clone(),
            name: name.to_owned(),
        })
    };
    let mutation = || {
        web::Query(MutationQuery {
            dry_run,
            wait: parsed.wait,
            timeout_seconds: parsed.timeout.map(|t| t.as_secs()),
        })
    };
    let dry = if dry_run { " (server dry run)" } else { "" };
    let mut status = StatusCode::OK;
    let (operation, output, result): (&str, String, serde_json::Value) = match parsed
        .command
        .clone()
    {
        Command::Get { resource, selector } => {
            let list = || {
                web::Query(ListQuery {
                    label_selector: selector.clone(),
                })
            };
            match resource {
                GetResource::Deployments => {
                    let l = deployments::list_deployments(st(), p(), ns_path(), list()).await?;
                    (
                        "list_deployments",
                        deployment_table(&l, &namespace, false),
                        json(&l.0),
                    )
                }
                GetResource::Pods => {
                    let l = pods::list_pods(st(), p(), ns_path(), list()).await?;
                    ("list_pods", pod_table(&l, &namespace, false), json(&l.0))
                }
                GetResource::Services => {
                    let l = services::list_services(st(), p(), ns_path(), list()).await?;
                    (
                        "list_services",
                        service_table(&l, &namespace, false),
                        json(&l.0),
                    )
                }
                GetResource::ReplicaSets => {
                    let l = deployments::list_replicasets(st(), p(), ns_path(), list()).await?;
                    (
                        "list_replicasets",
                        replicaset_table(&l, &namespace, false),
                        json(&l.0),
                    )
                }
                GetResource::Nodes => {
                    if selector.is_some() {
                        return Err(bad_request("`get nodes` takes no -l here".into()));
                    }
                    let l =
                        clusters::list_nodes(st(), p(), web::Path::from(cluster_name.to_owned()))
                            .await?;
                    ("list_nodes", node_table(&l.0), json(&l.0))
                }
                GetResource::All => {
                    let pl = pods::list_pods(st(), p(), ns_path(), list()).await?;
                    let sl = services::list_services(st(), p(), ns_path(), list()).await?;
                    let dl = deployments::list_deployments(st(), p(), ns_path(), list()).await?;
                    let rl = deployments::list_replicasets(st(), p(), ns_path(), list()).await?;
                    let sections: Vec<String> = [
                        pod_table(&pl, &namespace, true),
                        service_table(&sl, &namespace, true),
                        deployment_table(&dl, &namespace, true),
                        replicaset_table(&rl, &namespace, true),
                    ]
                    .into_iter()
                    .filter(|s| !s.is_empty())
                    .collect();
                    let text = if sections.is_empty() {
                        format!("No resources found in {namespace} namespace.")
                    } else {
                        sections.join("\n\n")
                    };
                    (
                        "list_all",
                        text,
                        serde_json::json!({"pods": pl.0, "services": sl.0, "deployments": dl.0, "replicaSets": rl.0}),
                    )
                }
            }
        }
        Command::Describe { kind, name } => match kind {
            LabelledKind::Deployment => {
                let d = deployments::get_deployment(st(), p(), obj(&name)).await?;
                ("get_deployment", describe_deployment(&d.0), json(&d.0))
            }
            LabelledKind::Pod => {
                let v = pods::get_pod(st(), p(), obj(&name)).await?;
                ("get_pod", describe_pod(&v.0), json(&v.0))
            }
            LabelledKind::Service => {
                let v = services::get_service(st(), p(), obj(&name)).await?;
                ("get_service", describe_service(&v.0), json(&v.0))
            }
        },
        Command::Logs {
            pod,
            container,
            tail,
        } => {
            let res = pods::get_pod_logs(
                st(),
                p(),
                obj(&pod),
                web::Query(pods::LogsQuery {
                    container,
                    tail_lines: Some(tail.unwrap_or(DEFAULT_TAIL)),
                    ..Default::default()
                }),
            )
            .await?;
            let text = String::from_utf8_lossy(&body_bytes(res).await?).into_owned();
            (
                "get_pod_logs",
                text.clone(),
                serde_json::Value::String(text),
            )
        }
        Command::CreateDeployment { .. } => {
            let action = parsed
                .command
                .action(0)
                .ok_or_else(|| ApiError::internal(anyhow::anyhow!("create has an action")))?;
            let target = Target {
                cluster: cluster_name.to_owned(),
                namespace: namespace.clone(),
            };
            let e = super::common::run(state, principal, target, action, &mutation(), None).await?;
            let (created, r) = deployments::deployment_result(e, dry_run)?;
            // Not created: another request created it between the check and the apply, which
            // then updated it (server-side apply cannot create only), so say what happened.
            let verb = if created {
                status = StatusCode::CREATED;
                "created"
            } else {
                "configured"
            };
            let out = format!("deployment.apps/{} {verb}{dry}", r.deployment.name);
            (
                "create_deployment",
                with_rollout(out, r.rollout.as_ref()),
                json(&r),
            )
        }
        Command::Expose { deployment, .. } => {
            let Some(crate::action::Action::Expose { spec, .. }) = parsed.command.action(0) else {
                return Err(ApiError::internal(anyhow::anyhow!("expose has an action")));
            };
            let res = services::expose_deployment(
                st(),
                p(),
                obj(&deployment),
                mutation(),
                web::Json(spec),
            )
            .await?;
            status = res.status();
            let v: serde_json::Value =
                serde_json::from_slice(&body_bytes(res).await?).map_err(ApiError::internal)?;
            let name = v["service"]["name"].as_str().unwrap_or_default().to_owned();
            (
                "expose_deployment",
                format!("service/{name} exposed{dry}"),
                v,
            )
        }
        Command::Scale { name, replicas } => {
            let r = deployments::scale_deployment(
                st(),
                p(),
                obj(&name),
                mutation(),
                web::Json(deployments::ScaleRequest {
                    replicas,
                    reason: None,
                }),
            )
            .await?;
            let out = format!("deployment.apps/{name} scaled{dry}");
            (
                "scale_deployment",
                with_rollout(out, r.rollout.as_ref()),
                json(&r.0),
            )
        }
        Command::SetImage {
            name,
            container,
            image,
        } => {
            let r = deployments::set_deployment_image(
                st(),
                p(),
                obj(&name),
                mutation(),
                web::Json(deployments::SetImageRequest {
                    container,
                    image,
                    reason: None,
                }),
            )
            .await?;
            let out = format!("deployment.apps/{name} image updated{dry}");
            (
                "set_deployment_image",
                with_rollout(out, r.rollout.as_ref()),
                json(&r.0),
            )
        }
        Command::RolloutStatus { name, watch } => {
            let c = cluster(state, principal, cluster_name, &namespace)?;
            super::common::check_names(
                &namespace,
                Some((&name, crate::validate::dns1123_subdomain)),
            )?;
            let report = if watch {
                let t = parsed
                    .timeout
                    .unwrap_or(Duration::from_secs(300))
                    .min(state.max_wait);
                c.wait_for_rollout(&namespace, &name, t).await?
            } else {
                c.rollout(&namespace, &name).await?
            };
            let v = RolloutView::from(&report);
            let mut out = v.message.clone();
            if v.timed_out {
                out.push_str("\nerror: timed out waiting for the condition");
            }
            ("get_deployment_rollout", out, json(&v))
        }
        Command::RolloutHistory { name } => {
            let r = deployments::list_deployment_revisions(st(), p(), obj(&name)).await?;
            (
                "list_deployment_revisions",
                history(&name, &r.0),
                json(&r.0),
            )
        }
        Command::RolloutUndo { name, to_revision } => {
            let r = deployments::rollback_deployment(
                st(),
                p(),
                obj(&name),
                mutation(),
                Some(web::Json(deployments::RollbackRequest {
                    to_revision,
                    expect_revision: None,
                    reason: None,
                })),
            )
            .await?;
            let out = format!("{}{dry}", r.message);
            (
                "rollback_deployment",
                with_rollout(out, r.rollout.as_ref()),
                json(&r.0),
            )
        }
        Command::RolloutRestart { name } => {
            let r =
                deployments::restart_deployment(st(), p(), obj(&name), mutation(), None).await?;
            let out = format!("deployment.apps/{name} restarted{dry}");
            (
                "restart_deployment",
                with_rollout(out, r.rollout.as_ref()),
                json(&r.0),
            )
        }
        Command::Label { kind, name, change } => {
            let body = web::Json(change);
            let (op, r) = match kind {
                LabelledKind::Deployment => (
                    "label_deployment",
                    pods::label_deployment(st(), p(), obj(&name), mutation(), body).await?,
                ),
                LabelledKind::Service => (
                    "label_service",
                    pods::label_service(st(), p(), obj(&name), mutation(), body).await?,
                ),
                LabelledKind::Pod => (
                    "label_pod",
                    pods::label_pod(st(), p(), obj(&name), mutation(), body).await?,
                ),
            };
            (
                op,
                format!("{}/{name} labeled{dry}", kind_ref(kind)),
                json(&r.0),
            )
        }
        Command::Delete { kind, name } => {
            let (op, r) = match kind {
                LabelledKind::Deployment => (
                    "delete_deployment",
                    deployments::delete_deployment(st(), p(), obj(&name), mutation()).await?,
                ),
                LabelledKind::Service => (
                    "delete_service",
                    services::delete_service(st(), p(), obj(&name), mutation()).await?,
                ),
                LabelledKind::Pod => (
                    "delete_pod",
                    pods::delete_pod(st(), p(), obj(&name), mutation()).await?,
                ),
            };
            (op, deleted(kind, &r.deleted, dry, &namespace), json(&r.0))
        }
        Command::DeleteSelected { kind, selector } => {
            let q = || {
                web::Query(DeleteCollectionQuery {
                    label_selector: Some(selector.clone()),
                    max_affected: None,
                    dry_run,
                })
            };
            let (op, r) = match kind {
                LabelledKind::Service => (
                    "delete_services",
                    services::delete_services(st(), p(), ns_path(), q()).await?,
                ),
                _ => (
                    "delete_pods",
                    pods::delete_pods(st(), p(), ns_path(), q()).await?,
                ),
            };
            (op, deleted(kind, &r.deleted, dry, &namespace), json(&r.0))
        }
        Command::Version => {
            let v =
                clusters::get_cluster(st(), p(), web::Path::from(cluster_name.to_owned())).await?;
            let out = match &v.version {
                Some(ver) => format!("Server Version: {}", ver.git_version),
                None => format!(
                    "error: the server could not be reached: {}",
                    v.error.clone().unwrap_or_default()
                ),
            };
            ("get_cluster", out, json(&v.0))
        }
        Command::ClusterInfo => {
            let v =
                clusters::get_cluster(st(), p(), web::Path::from(cluster_name.to_owned())).await?;
            let out = format!("Kubernetes control plane is running at {}", v.server);
            ("get_cluster", out, json(&v.0))
        }
    };
    let audit_id = result
        .get("auditId")
        .and_then(|a| a.as_str())
        .map(str::to_owned);
    Ok((
        status,
        CommandResult {
            operation: operation.to_owned(),
            cluster: cluster_name.to_owned(),
            namespace,
            dry_run,
            audit_id,
            output,
            result,
        },
    ))
}

fn json<T: Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or_default()
}

async fn body_bytes(res: HttpResponse) -> Result<web::Bytes, ApiError> {
    actix_web::body::to_bytes(res.into_body())
        .await
        .map_err(|e| ApiError::internal(anyhow::anyhow!("reading a response body: {e}")))
}

/// After a change with `--wait`: what `kubectl rollout status` would add.
fn with_rollout(out: String, rollout: Option<&RolloutView>) -> String {
    match rollout {
        None => out,
        Some(r) if r.timed_out => format!(
            "{out}\n{}\nerror: timed out waiting for the condition",
            r.message
        ),
        Some(r) => format!("{out}\n{}", r.message),
    }
}

fn kind_ref(kind: LabelledKind) -> &'static str {
    match kind {
        LabelledKind::Deployment => "deployment.apps",
        LabelledKind::Service => "service",
        LabelledKind::Pod => "pod",
    }
}

fn deleted(kind: LabelledKind, names: &[String], dry: &str, namespace: &str) -> String {
    if names.is_empty() {
        return format!("No resources found in {namespace} namespace.");
    }
    names
        .iter()
        .map(|n| format!("{} {n:?} deleted{dry}", kind_ref(kind)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// kubectl's tables: columns padded to the widest cell plus three spaces, the last not padded.
fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let last = cells.len().saturating_sub(1);
        cells
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                if i == last {
                    c
                } else {
                    let pad = widths[i] + 3 - c.chars().count();
                    format!("{c}{}", " ".repeat(pad))
                }
            })
            .collect::<String>()
    };
    std::iter::once(line(header.iter().map(|h| (*h).to_owned()).collect()))
        .chain(rows.into_iter().map(line))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `kubectl get` of an empty namespace; with `all`, empty kinds print nothing.
fn listing(
    rows: Vec<Vec<String>>,
    header: &[&str],
    namespace: &str,
    all: bool,
    prefix: &str,
) -> String {
    if rows.is_empty() {
        return if all {
            String::new()
        } else {
            format!("No resources found in {namespace} namespace.")
        };
    }
    let rows = rows
        .into_iter()
        .map(|mut r| {
            if all {
                r[0] = format!("{prefix}/{}", r[0]);
            }
            r
        })
        .collect();
    table(header, rows)
}

fn age(created: Option<&str>) -> String {
    let Some(t) = created.and_then(|c| c.parse::<jiff::Timestamp>().ok()) else {
        return "<unknown>".into();
    };
    let secs = jiff::Timestamp::now().as_second() - t.as_second();
    human_duration(secs)
}

/// kubectl's `duration.HumanDuration` (the AGE column).
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

fn deployment_table(l: &DeploymentList, ns: &str, all: bool) -> String {
    let rows = l
        .items
        .iter()
        .map(|d| {
            vec![
                d.name.clone(),
                format!("{}/{}", d.replicas.ready, d.replicas.desired),
                d.replicas.updated.to_string(),
                d.replicas.available.to_string(),
                age(d.created_at.as_deref()),
            ]
        })
        .collect();
    listing(
        rows,
        &["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
        ns,
        all,
        "deployment.apps",
    )
}

fn pod_table(l: &PodList, ns: &str, all: bool) -> String {
    let rows = l
        .items
        .iter()
        .map(|p| {
            vec![
                p.name.clone(),
                format!("{}/{}", p.ready_containers, p.total_containers),
                p.status.clone(),
                p.restarts.to_string(),
                age(p.created_at.as_deref()),
            ]
        })
        .collect();
    listing(
        rows,
        &["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
        ns,
        all,
        "pod",
    )
}

fn ports(s: &ServiceView) -> String {
    if s.ports.is_empty() {
        return "<none>".into();
    }
    s.ports
        .iter()
        .map(|p| match p.node_port {
            Some(n) => format!("{}:{n}/{}", p.port, p.protocol),
            None => format!("{}/{}", p.port, p.protocol),
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn external_ip(s: &ServiceView) -> String {
    match s.service_type.as_str() {
        "ExternalName" => s.external_name.clone().unwrap_or_else(|| "<none>".into()),
        "LoadBalancer" if s.load_balancer_ingress.is_empty() => "<pending>".into(),
        "LoadBalancer" => s.load_balancer_ingress.join(","),
        _ => "<none>".into(),
    }
}

fn service_table(l: &ServiceList, ns: &str, all: bool) -> String {
    let rows = l
        .items
        .iter()
        .map(|s| {
            vec![
                s.name.clone(),
                s.service_type.clone(),
                s.cluster_ip.clone().unwrap_or_else(|| "<none>".into()),
                external_ip(s),
                ports(s),
                age(s.created_at.as_deref()),
            ]
        })
        .collect();
    listing(
        rows,
        &[
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE",
        ],
        ns,
        all,
        "service",
    )
}

fn replicaset_table(l: &ReplicaSetList, ns: &str, all: bool) -> String {
    let rows = l
        .items
        .iter()
        .map(|r| {
            vec![
                r.name.clone(),
                r.desired.to_string(),
                r.current.to_string(),
                r.ready.to_string(),
                age(r.created_at.as_deref()),
            ]
        })
        .collect();
    listing(
        rows,
        &["NAME", "DESIRED", "CURRENT", "READY", "AGE"],
        ns,
        all,
        "replicaset.apps",
    )
}

fn node_table(l: &clusters::NodeList) -> String {
    if l.items.is_empty() {
        return "No resources found".into();
    }
    let rows = l
        .items
        .iter()
        .map(|n| {
            vec![
                n.name.clone(),
                n.status.clone(),
                if n.roles.is_empty() {
                    "<none>".into()
                } else {
                    n.roles.join(",")
                },
                age(n.created_at.as_deref()),
                n.kubelet_version.clone(),
            ]
        })
        .collect();
    table(&["NAME", "STATUS", "ROLES", "AGE", "VERSION"], rows)
}

fn history(name: &str, r: &RevisionList) -> String {
    let rows = r
        .items
        .iter()
        .map(|v| {
            vec![
                v.revision.to_string(),
                v.change_cause.clone().unwrap_or_else(|| "<none>".into()),
            ]
        })
        .collect();
    format!(
        "deployment.apps/{name} \n{}",
        table(&["REVISION", "CHANGE-CAUSE"], rows)
    )
}

fn map_text(m: &BTreeMap<String, String>) -> String {
    if m.is_empty() {
        return "<none>".into();
    }
    m.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("\n                   ")
}

/// `kubectl describe`'s key-value block, with the values aligned.
fn fields(pairs: Vec<(&str, String)>) -> String {
    pairs
        .into_iter()
        .map(|(k, v)| format!("{:<19}{v}", format!("{k}:")))
        .collect::<Vec<_>>()
        .join("\n")
}

fn describe_deployment(d: &DeploymentView) -> String {
    let r = &d.replicas;
    let mut out = fields(vec![
        ("Name", d.name.clone()),
        ("Namespace", d.namespace.clone()),
        (
            "CreationTimestamp",
            d.created_at.clone().unwrap_or_default(),
        ),
        ("Labels", map_text(&d.labels)),
        ("Selector", d.selector.clone()),
        (
            "Replicas",
            format!(
                "{} desired | {} updated | {} ready | {} available | {} unavailable",
                r.desired, r.updated, r.ready, r.available, r.unavailable
            ),
        ),
        ("StrategyType", d.strategy.strategy_type.clone()),
        (
            "Revision",
            d.revision.map(|r| r.to_string()).unwrap_or_default(),
        ),
        (
            "Change-Cause",
            d.change_cause.clone().unwrap_or_else(|| "<none>".into()),
        ),
    ]);
    out.push_str("\nContainers:");
    for c in &d.images {
        out.push_str(&format!("\n  {}:\n    Image:  {}", c.container, c.image));
    }
    if !d.conditions.is_empty() {
        out.push_str("\nConditions:\n");
        let rows = d
            .conditions
            .iter()
            .map(|c| {
                vec![
                    c.condition_type.clone(),
                    c.status.clone(),
                    c.reason.clone().unwrap_or_default(),
                ]
            })
            .collect();
        let t = table(&["Type", "Status", "Reason"], rows);
        out.push_str(
            &t.lines()
                .map(|l| format!("  {l}"))
                .collect::<Vec<_>>()
                .join("\n"),
        );
    }
    out
}

fn describe_pod(p: &PodView) -> String {
    let mut out = fields(vec![
        ("Name", p.name.clone()),
        ("Namespace", p.namespace.clone()),
        ("Node", p.node.clone().unwrap_or_else(|| "<none>".into())),
        ("Start Time", p.created_at.clone().unwrap_or_default()),
        ("Labels", map_text(&p.labels)),
        ("Status", p.phase.clone()),
        ("IP", p.ip.clone().unwrap_or_default()),
    ]);
    out.push_str("\nContainers:");
    for c in &p.containers {
        out.push_str(&format!(
            "\n  {}:\n    Image:          {}\n    State:          {}{}\n    Ready:          {}\n    Restart Count:  {}",
            c.name,
            c.image,
            c.state,
            c.reason
                .as_ref()
                .map(|r| format!("\n      Reason:       {r}"))
                .unwrap_or_default(),
            if c.ready { "True" } else { "False" },
            c.restart_count
        ));
    }
    out
}

fn describe_service(s: &ServiceView) -> String {
    let mut pairs = vec![
        ("Name", s.name.clone()),
        ("Namespace", s.namespace.clone()),
        ("Labels", map_text(&s.labels)),
        ("Selector", map_text(&s.selector)),
        ("Type", s.service_type.clone()),
        ("IP", s.cluster_ip.clone().unwrap_or_else(|| "None".into())),
    ];
    if let Some(e) = &s.external_name {
        pairs.push(("External Name", e.clone()));
    }
    if !s.load_balancer_ingress.is_empty() {
        pairs.push(("LoadBalancer Ingress", s.load_balancer_ingress.join(", ")));
    }
    for port in &s.ports {
        let name = port.name.clone().unwrap_or_else(|| "<unset>".into());
        pairs.push(("Port", format!("{name}  {}/{}", port.port, port.protocol)));
        pairs.push((
            "TargetPort",
            format!("{}/{}", port.target_port, port.protocol),
        ));
        if let Some(n) = port.node_port {
            pairs.push(("NodePort", format!("{name}  {n}/{}", port.protocol)));
        }
    }
    pairs.push(("Endpoints", s.ready_endpoints.to_string()));
    fields(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_like_kubectl() {
        for (s, want) in [
            (-5, "<invalid>"),
            (0, "0s"),
            (119, "119s"),
            (120, "2m"),
            (150, "2m30s"),
            (600, "10m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 60 * 5, "3h5m"),
            (9 * 3600, "9h"),
            (50 * 3600, "2d2h"),
            (10 * 86400, "10d"),
            (800 * 86400, "2y70d"),
        ] {
            assert_eq!(human_duration(s), want, "{s}");
        }
    }

    #[test]
    fn tables_pad_like_kubectl() {
        let t = table(
            &["NAME", "READY"],
            vec![
                vec!["web".into(), "1/1".into()],
                vec!["a-much-longer".into(), "0/1".into()],
            ],
        );
        assert_eq!(
            t,
            "NAME            READY\nweb             1/1\na-much-longer   0/1"
        );
    }
}
