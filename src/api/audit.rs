//! The audit log over HTTP (auditors and admins on every cluster): query with filters and cursor
//! pagination, NDJSON export, one request's entries, chain verification, signed checkpoints.

use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::problem::{ApiError, FieldError, Problem};
use crate::audit::verify::Verification;
use crate::audit::{self, Checkpoint, Filter, Stored, hex};
use crate::auth::Principal;
use crate::gateway::AppState;

/// One audit entry.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"seq": 42, "auditId": "0b9c5a2e-6f0d-4c8e-9a51-2f8d7c1e4b3a", "stage": "outcome", "outcome": "succeeded", "receivedAt": "2026-11-26T09:30:00.123456Z", "completedAt": "2026-11-26T09:30:00.164012Z", "requestId": "bot-7f3a", "subject": "alice", "issuer": "kubegate", "groups": ["sre"], "decision": null, "sourceIp": "10.0.3.7", "userAgent": "shop-bot/1.2", "action": "scale", "method": "PUT", "path": "/v1/clusters/dev/namespaces/shop/deployments/web/replicas", "cluster": "dev", "namespace": "shop", "resourceKind": "deployment", "resourceName": "web", "request": {"replicas": 3}, "interface": "rest", "httpStatus": 200, "problemType": null, "upstreamError": null, "result": {"replicasBefore": 1, "replicasAfter": 3}, "dryRun": false, "replay": false, "idempotencyKey": null, "prevHash": "5f0c…", "hash": "9a7e…"}))]
pub struct AuditEntry {
    /// Position in the hash chain.
    pub seq: i64,
    /// The request's audit id (`X-Audit-Id`); an intent and its outcome share it.
    pub audit_id: String,
    /// `intent`, `outcome`, `rejected`, `outcome_unknown` or `read`.
    pub stage: String,
    /// `pending`, `succeeded`, `failed`, `denied`, `unauthenticated`, `invalid` or `unknown`.
    pub outcome: String,
    pub received_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<String>,
    pub request_id: Option<String>,
    /// Who the action is for: the caller, or the person a bot acted for.
    pub subject: Option<String>,
    pub issuer: Option<String>,
    pub groups: Vec<String>,
    /// The subject of the bot that acted for `subject` (`X-On-Behalf-Of`, or a chat integration).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delegated_by: Option<String>,
    /// The grant that allowed it, or why it was refused.
    pub decision: Option<String>,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
    pub action: Option<String>,
    pub method: Option<String>,
    pub path: Option<String>,
    pub cluster: Option<String>,
    pub namespace: Option<String>,
    pub resource_kind: Option<String>,
    pub resource_name: Option<String>,
    /// The request, redacted.
    #[schema(value_type = Option<Object>)]
    pub request: Option<serde_json::Value>,
    /// The door it came through: `rest` (the REST API), `kubernetes` (a kubectl through
    /// `/k8s/{cluster}`) or `chat` (chat commands).
    pub interface: String,
    pub http_status: Option<i32>,
    pub problem_type: Option<String>,
    pub upstream_error: Option<String>,
    /// What changed.
    #[schema(value_type = Option<Object>)]
    pub result: Option<serde_json::Value>,
    pub dry_run: bool,
    pub replay: bool,
    pub idempotency_key: Option<String>,
    /// SHA-256 (hex) of the previous entry.
    pub prev_hash: String,
    /// SHA-256 (hex) of (prevHash || this entry's canonical form).
    pub hash: String,
}

/// The door of a request, from its path.
fn interface_of(path: Option<&str>) -> &'static str {
    match path {
        Some(p) if p.starts_with("/k8s/") => "kubernetes",
        Some(p) if p.ends_with("/commands") || p.starts_with("/v1/integrations/") => "chat",
        _ => "rest",
    }
}

fn time(us: i64) -> String {
    jiff::Timestamp::from_microsecond(us)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

impl From<Stored> for AuditEntry {
    fn from(s: Stored) -> Self {
        let e = s.entry;
        let interface = interface_of(e.http_path.as_deref()).to_owned();
        let json = |t: Option<String>| t.and_then(|t| serde_json::from_str(&t).ok());
        Self {
            seq: s.seq,
            audit_id: e.audit_id.to_string(),
            stage: e.stage,
            outcome: e.outcome,
            received_at: time(e.received_at_us),
            completed_at: e.completed_at_us.map(time),
            request_id: e.request_id,
            subject: e.subject,
            issuer: e.issuer,
            groups: e.groups,
            delegated_by: e.delegated_by,
            decision: e.decision,
            source_ip: e.source_ip,
            user_agent: e.user_agent,
            action: e.action,
            method: e.http_method,
            path: e.http_path,
            cluster: e.cluster,
            namespace: e.namespace,
            resource_kind: e.resource_kind,
            resource_name: e.resource_name,
            interface,
            request: json(e.request_summary),
            http_status: e.http_status,
            problem_type: e.problem_type,
            upstream_error: e.upstream_error,
            result: json(e.result),
            dry_run: e.dry_run,
            replay: e.replay,
            idempotency_key: e.idempotency_key,
            prev_hash: hex(&s.prev_hash),
            hash: hex(&s.hash),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"items": [], "nextCursor": "41"}))]
pub struct AuditPage {
    /// Newest first.
    pub items: Vec<AuditEntry>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Filters of `GET /v1/audit`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    pub subject: Option<String>,
    /// Entries a bot sent for someone (the bot's subject).
    pub delegated_by: Option<String>,
    /// The action verb, e.g. `scale`.
    pub action: Option<String>,
    pub cluster: Option<String>,
    pub namespace: Option<String>,
    /// The resource name.
    pub resource: Option<String>,
    /// `succeeded`, `failed`, `denied`, `unauthenticated`, `invalid`, `pending` or `unknown`.
    pub outcome: Option<String>,
    pub request_id: Option<String>,
    /// Received at or after (RFC 3339).
    #[param(format = DateTime)]
    pub from: Option<String>,
    /// Received before (RFC 3339).
    #[param(format = DateTime)]
    pub to: Option<String>,
    /// Page size, 1–1000 (default 100). Ignored by the NDJSON export, which streams every match.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
    /// From the previous page's `nextCursor`.
    pub cursor: Option<String>,
}

fn authorize(state: &AppState, principal: &Principal) -> Result<(), ApiError> {
    state
        .auth
        .authorize(principal, "read_audit", "*", Some("*"))?;
    Ok(())
}

fn invalid(field: &str, message: &str) -> ApiError {
    ApiError::from(crate::gateway::Error::Validation {
        errors: vec![FieldError {
            field: field.into(),
            message: message.into(),
        }],
    })
}

fn filter(q: &AuditQuery) -> Result<Filter, ApiError> {
    let ts = |field: &str, v: &Option<String>| -> Result<Option<i64>, ApiError> {
        v.as_deref()
            .map(|t| {
                t.parse::<jiff::Timestamp>()
                    .map(|t| t.as_microsecond())
                    .map_err(|_| invalid(field, "an RFC 3339 time, e.g. 2026-11-26T09:00:00Z"))
            })
            .transpose()
    };
    if let Some(Err(m)) = q.namespace.as_deref().map(crate::validate::dns1123_label) {
        return Err(invalid("namespace", &m));
    }
    let cluster_name = |c: &str| {
        !c.is_empty()
            && c.len() <= 253
            && c.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._@:-".contains(c))
    };
    if q.cluster.as_deref().is_some_and(|c| !cluster_name(c)) {
        return Err(invalid("cluster", "not a cluster name"));
    }
    let before_seq = q
        .cursor
        .as_deref()
        .map(|c| {
            c.parse::<i64>()
                .map_err(|_| invalid("cursor", "not a cursor from nextCursor"))
        })
        .transpose()?;
    // Entries are stored with each NUL as U+FFFD (PostgreSQL's text has none); so are filters.
    let text = |v: &Option<String>| {
        v.clone().map(|mut s| {
            audit::scrub(&mut s);
            s
        })
    };
    Ok(Filter {
        subject: text(&q.subject),
        delegated_by: text(&q.delegated_by),
        action: text(&q.action),
        cluster: text(&q.cluster),
        namespace: text(&q.namespace),
        resource: text(&q.resource),
        outcome: text(&q.outcome),
        request_id: text(&q.request_id),
        audit_id: None,
        from_us: ts("from", &q.from)?,
        to_us: ts("to", &q.to)?,
        before_seq,
    })
}

/// Query the audit log, newest first (`Accept: application/x-ndjson` streams every match).
#[utoipa::path(
    get, path = "/v1/audit", tag = "audit", operation_id = "list_audit_entries",
    params(AuditQuery),
    responses(
        (status = 200, description = "A page of entries (or, with Accept: application/x-ndjson, all of them, one per line)", body = AuditPage),
        (status = 422, description = "Invalid filter", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database is unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_audit_entries(
    req: HttpRequest,
    state: web::Data<AppState>,
    principal: Principal,
    query: web::Query<AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    authorize(&state, &principal)?;
    let f = filter(&query)?;
    settle(&state).await;
    let ndjson = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/x-ndjson"));
    if ndjson {
        let rows = audit::stream(state.audit.pool().clone(), f).map(|r| {
            r.map(|s| {
                let mut line = serde_json::to_vec(&AuditEntry::from(s)).unwrap_or_default();
                line.push(b'\n');
                Bytes::from(line)
            })
            .map_err(|e| actix_web::error::ErrorServiceUnavailable(crate::db::short_db_error(&e)))
        });
        return Ok(HttpResponse::Ok()
            .content_type("application/x-ndjson")
            .streaming(rows));
    }
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(invalid("limit", "between 1 and 1000"));
    }
    let rows = audit::query(state.audit.pool(), &f, limit + 1)
        .await
        .map_err(db_error)?;
    let more = rows.len() as i64 > limit;
    let items: Vec<AuditEntry> = rows
        .into_iter()
        .take(limit as usize)
        .map(AuditEntry::from)
        .collect();
    let next_cursor = more
        .then(|| items.last().map(|e| e.seq.to_string()))
        .flatten();
    Ok(HttpResponse::Ok().json(AuditPage { items, next_cursor }))
}

/// Outcomes are queued rather than waited for (`AuditLog::record`): a read first waits for what
/// this replica queued before it, so that an answer's outcome is in what a client reads next. A
/// failed write is the writer's to report; the read goes on with what was written.
async fn settle(state: &AppState) {
    let _ = state.audit.flush().await;
}

fn db_error(e: sqlx::Error) -> ApiError {
    ApiError::DatabaseUnavailable {
        detail: crate::db::short_db_error(&e),
    }
}

/// The entries of one request (its intent and outcome, or its refusal).
#[utoipa::path(
    get, path = "/v1/audit/{auditId}", tag = "audit", operation_id = "get_audit_entry",
    params(("auditId" = String, Path, description = "The X-Audit-Id of a request")),
    responses(
        (status = 200, description = "The request's entries, newest first", body = AuditPage),
        (status = 404, description = "No such audit id", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not a UUID", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_audit_entry(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<String>,
) -> Result<web::Json<AuditPage>, ApiError> {
    authorize(&state, &principal)?;
    let id = uuid::Uuid::parse_str(&path).map_err(|_| invalid("auditId", "not a UUID"))?;
    settle(&state).await;
    let rows = audit::query(
        state.audit.pool(),
        &Filter {
            audit_id: Some(id),
            ..Filter::default()
        },
        100,
    )
    .await
    .map_err(db_error)?;
    if rows.is_empty() {
        return Err(ApiError::from(crate::gateway::Error::NotFound {
            detail: format!("no audit entry with id {id}"),
        }));
    }
    Ok(web::Json(AuditPage {
        items: rows.into_iter().map(AuditEntry::from).collect(),
        next_cursor: None,
    }))
}

/// An exec session's recording, as asciicast v2: `asciinema play` replays it as the person saw
/// it. What the pod wrote (standard error included), the terminal's resizes, and what was typed
/// only when input recording is on. Its digest is in the session's outcome entry, which the hash
/// chain covers: `/v1/audit/verify` finds an edited recording.
#[utoipa::path(
    get, path = "/v1/audit/{auditId}/recording", tag = "audit", operation_id = "get_audit_recording",
    params(("auditId" = String, Path, description = "The X-Audit-Id of an exec session")),
    responses(
        (status = 200, description = "The recording (asciicast v2: a JSON header line, then one JSON array per event)", body = String, content_type = "application/x-asciicast"),
        (status = 404, description = "No exec session with that audit id", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not a UUID", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_audit_recording(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<String>,
) -> Result<actix_web::HttpResponse, ApiError> {
    authorize(&state, &principal)?;
    let id = uuid::Uuid::parse_str(&path).map_err(|_| invalid("auditId", "not a UUID"))?;
    settle(&state).await;
    let rows = audit::query(
        state.audit.pool(),
        &Filter {
            audit_id: Some(id),
            ..Filter::default()
        },
        100,
    )
    .await
    .map_err(db_error)?;
    let Some(session) = rows
        .iter()
        .map(|r| &r.entry)
        .find(|e| e.action.as_deref() == Some("exec") && e.stage == "intent")
    else {
        return Err(ApiError::from(crate::gateway::Error::NotFound {
            detail: format!("no exec session with audit id {id}"),
        }));
    };
    let command: Vec<String> = session
        .request_summary
        .as_deref()
        .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
        .and_then(|v| serde_json::from_value(v["command"].clone()).ok())
        .unwrap_or_default();
    let title = format!(
        "kubectl exec {} -n {} -- {} ({}, {})",
        session.resource_name.as_deref().unwrap_or(""),
        session.namespace.as_deref().unwrap_or(""),
        command.join(" "),
        session.subject.as_deref().unwrap_or(""),
        session.cluster.as_deref().unwrap_or(""),
    );
    let cast = audit::asciicast(state.audit.pool(), id, session.received_at_us, &title)
        .await
        .map_err(db_error)?;
    Ok(actix_web::HttpResponse::Ok()
        .content_type("application/x-asciicast")
        .body(cast))
}

/// `from`/`to` of a verification.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct VerifyQuery {
    /// First sequence number (default 1).
    pub from: Option<i64>,
    /// Last sequence number (default: the head).
    pub to: Option<i64>,
}

/// Walk the hash chain (or a range) and report the first entry where it breaks.
#[utoipa::path(
    get, path = "/v1/audit/verify", tag = "audit", operation_id = "verify_audit_log",
    params(VerifyQuery),
    responses((status = 200, description = "The verification; `intact` false names the first break", body = Verification))
)]
pub async fn verify_audit_log(
    state: web::Data<AppState>,
    principal: Principal,
    query: web::Query<VerifyQuery>,
) -> Result<web::Json<Verification>, ApiError> {
    authorize(&state, &principal)?;
    settle(&state).await;
    let key = state.checkpoint_key.as_ref().map(|k| k.public_key());
    let v = audit::verify::verify(state.audit.pool(), query.from, query.to, key.as_deref())
        .await
        .map_err(db_error)?;
    Ok(web::Json(v))
}

/// A signed statement of the chain head.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"seq": 42, "hash": "9a7e0c…", "signedAt": "2026-11-26T10:00:00Z", "keyId": "3f2a9c1d0b8e7f65", "signature": "c0ffee…", "signedAtUs": 1795687200000000_i64}))]
pub struct CheckpointView {
    pub seq: i64,
    /// The head's hash (hex).
    pub hash: String,
    pub signed_at: String,
    /// First 8 bytes (hex) of SHA-256 of the Ed25519 public key.
    pub key_id: String,
    /// Ed25519 signature (hex) of `kubegate-audit-checkpoint:v1:<seq>:<hash>:<signedAt in µs>`.
    pub signature: String,
    pub signed_at_us: i64,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"items": []}))]
pub struct CheckpointList {
    pub items: Vec<CheckpointView>,
}

impl From<Checkpoint> for CheckpointView {
    fn from(c: Checkpoint) -> Self {
        Self {
            seq: c.seq,
            hash: hex(&c.hash),
            signed_at: time(c.signed_at_us),
            key_id: c.key_id,
            signature: hex(&c.signature),
            signed_at_us: c.signed_at_us,
        }
    }
}

/// Sign the current head with the configured Ed25519 key (KUBEGATE_AUDIT_SIGNING_KEY).
#[utoipa::path(
    post, path = "/v1/audit/checkpoints", tag = "audit", operation_id = "create_audit_checkpoint",
    responses(
        (status = 201, description = "The signed checkpoint", body = CheckpointView),
        (status = 409, description = "No signing key is configured", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_audit_checkpoint(
    state: web::Data<AppState>,
    principal: Principal,
) -> Result<HttpResponse, ApiError> {
    authorize(&state, &principal)?;
    settle(&state).await;
    let key = state.checkpoint_key.as_ref().ok_or_else(|| {
        ApiError::from(crate::gateway::Error::Conflict {
            detail: "no signing key is configured (KUBEGATE_AUDIT_SIGNING_KEY)".into(),
        })
    })?;
    let cp = key.sign_head(state.audit.pool()).await.map_err(db_error)?;
    Ok(HttpResponse::Created().json(CheckpointView::from(cp)))
}

/// The signed checkpoints, oldest first.
#[utoipa::path(
    get, path = "/v1/audit/checkpoints", tag = "audit", operation_id = "list_audit_checkpoints",
    responses((status = 200, description = "The checkpoints", body = CheckpointList))
)]
pub async fn list_audit_checkpoints(
    state: web::Data<AppState>,
    principal: Principal,
) -> Result<web::Json<CheckpointList>, ApiError> {
    authorize(&state, &principal)?;
    let items = audit::checkpoints(state.audit.pool())
        .await
        .map_err(db_error)?;
    Ok(web::Json(CheckpointList {
        items: items.into_iter().map(CheckpointView::from).collect(),
    }))
}
