//! `POST /v1/clusters/{cluster}/commands`: kubectl command lines for chatops. A line is parsed
//! (`chatops`, never run by a shell) into a read or the very `Action` of the REST operation with
//! the same meaning, run through `gateway::read` or `gateway::execute` with the same principal:
//! validation, authorization, the audit entry, idempotency and dry run cannot differ between the
//! two doors. The answer carries that operation's body (`result`) and what kubectl would print
//! (`output`, from `render`).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::clusters::ClusterFoundView;
use super::common::{MutationQuery, run};
use super::problem::{ApiError, FieldError, Problem};
use super::render;
use super::results::Answer;
use super::views::FoundView;
use crate::action::Target;
use crate::auth::Principal;
use crate::chatops::{self, Command, Parsed, Plan};
use crate::gateway::session::{self, ExecRequest};
use crate::gateway::{self, AppState, EventFilter};

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
    chatops::parse(line).map_err(|e| bad_request(e.to_string()))
}

fn bad_request(detail: String) -> ApiError {
    gateway::Error::BadRequest {
        errors: vec![FieldError {
            field: "command".into(),
            message: detail.clone(),
        }],
        detail,
    }
    .into()
}

/// Run a parsed command on `cluster` as `principal`; the status its REST operation answers.
pub async fn execute(
    state: &AppState,
    principal: &Principal,
    cluster: &str,
    parsed: Parsed,
    default_namespace: Option<String>,
) -> Result<(StatusCode, CommandResult), ApiError> {
    let namespace = match parsed.namespace.clone().or(default_namespace) {
        Some(ns) => ns,
        None => state.cluster(principal, cluster)?.default_namespace.clone(),
    };
    let target = Target {
        cluster: cluster.to_owned(),
        namespace: namespace.clone(),
    };
    let plan = parsed.plan();
    let command = &parsed.command;
    let dry_run = parsed.dry_run;
    let changes = matches!(plan, Plan::Change(_) | Plan::Exec { .. });
    if dry_run && !changes {
        return Err(bad_request(
            "--dry-run=server applies to changes, not to reads".into(),
        ));
    }
    if !changes && let Some(ctx) = crate::context::current() {
        ctx.read_only
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }
    let mut status = StatusCode::OK;
    let (output, result) = match plan {
        Plan::Help(text) => (text.clone(), serde_json::Value::String(text)),
        Plan::Read(read) => {
            let found = FoundView::from(gateway::read(state, principal, &target, read).await?);
            let mut text = render::read(command, &found, &namespace);
            let mut result = json(&found);
            // `describe` ends with the object's events, as kubectl's does.
            if let Command::Describe { kind, name } = command {
                let object = Some((*kind, name.clone()));
                let list = super::events::read_events(
                    state,
                    principal,
                    &target,
                    object,
                    EventFilter::default(),
                )
                .await?;
                text = format!("{text}\n{}", render::events_section(&list));
                result["events"] = json(&list.items);
            }
            (text, result)
        }
        Plan::ReadCluster(read) => {
            let found = gateway::read_cluster(state, principal, cluster, read).await?;
            let found = ClusterFoundView::from(found);
            let text = match &found {
                ClusterFoundView::Cluster(c) => render::cluster(command, c),
                ClusterFoundView::Nodes(n) => render::nodes(n),
                ClusterFoundView::Namespaces(_) => String::new(),
            };
            (text, json(&found))
        }
        Plan::Exec {
            pod,
            container,
            command: words,
        } => {
            let req = ExecRequest {
                target,
                pod,
                container,
                command: words,
                stdin: false,
                tty: false,
                interactive: false,
                dry_run,
            };
            let timeout = state.sessions.exec_timeout_max.min(CHAT_EXEC_TIMEOUT);
            match session::run_once(state, principal, req, None, timeout).await? {
                None => (
                    "exec allowed (dry run: nothing ran)\n".to_owned(),
                    serde_json::json!({"dryRun": true, "auditId": current_audit_id()}),
                ),
                Some(out) => (
                    render::exec(&out, CHAT_OUTPUT_CHARS),
                    serde_json::json!({
                        "stdout": String::from_utf8_lossy(&out.stdout),
                        "stderr": String::from_utf8_lossy(&out.stderr),
                        "exitCode": out.exit_code,
                        "truncated": out.truncated,
                        "timedOut": out.timed_out,
                        "auditId": out.audit_id,
                    }),
                ),
            }
        }
        Plan::Change(action) => {
            let options = MutationQuery {
                dry_run,
                wait: parsed.wait,
                timeout_seconds: parsed.timeout.map(|t| t.as_secs()),
            };
            let executed = run(state, principal, target, action, &options, None).await?;
            let answer = Answer::of(executed, dry_run);
            if answer.created() {
                status = StatusCode::CREATED;
            }
            (
                render::change(command, &answer, &namespace, dry_run),
                json(&answer),
            )
        }
    };
    let audit_id = result
        .get("auditId")
        .and_then(|a| a.as_str())
        .map(str::to_owned);
    Ok((
        status,
        CommandResult {
            operation: operation(command).to_owned(),
            cluster: cluster.to_owned(),
            namespace,
            dry_run,
            audit_id,
            output,
            result,
        },
    ))
}

/// How long a chat exec may run, and how much of its output a chat answer shows.
const CHAT_EXEC_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
const CHAT_OUTPUT_CHARS: usize = 3000;

fn current_audit_id() -> Option<String> {
    crate::context::current().and_then(|c| c.audit_id.lock().expect("audit id").clone())
}

/// The REST operation (its operationId) a command runs as.
fn operation(command: &Command) -> String {
    use crate::chatops::GetResource;
    match command {
        Command::Get { resource, .. } => match resource {
            GetResource::Kind(k) => format!("list_{}", k.plural()),
            GetResource::Nodes => "list_nodes".into(),
            GetResource::All => "list_all".into(),
            GetResource::Events => "list_events".into(),
        },
        Command::Describe { kind, .. } => format!("get_{}", kind.singular()),
        Command::Logs { .. } => "get_pod_logs".into(),
        Command::Exec { .. } => "exec_in_pod".into(),
        Command::CreateDeployment { .. } => "create_deployment".into(),
        Command::Expose { .. } => "expose_deployment".into(),
        Command::Scale { .. } => "scale_deployment".into(),
        Command::SetImage { .. } => "set_deployment_image".into(),
        Command::RolloutStatus { .. } => "get_deployment_rollout".into(),
        Command::RolloutHistory { .. } => "list_deployment_revisions".into(),
        Command::RolloutUndo { .. } => "rollback_deployment".into(),
        Command::RolloutRestart { .. } => "restart_deployment".into(),
        Command::Label { kind, .. } => format!("label_{}", kind.singular()),
        Command::Delete { kind, .. } => format!("delete_{}", kind.singular()),
        Command::DeleteSelected { kind, .. } => format!("delete_{}", kind.plural()),
        Command::Version | Command::ClusterInfo => "get_cluster".into(),
        Command::Help(_) => "help".into(),
    }
}

fn json<T: Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or_default()
}
