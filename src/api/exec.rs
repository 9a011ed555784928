//! `kubectl exec`: one-shot for bots and SDKs (`POST .../pods/{name}/exec`, JSON in and out) and
//! interactive over a WebSocket (`GET` with an upgrade) that speaks Kubernetes' own channel
//! protocol, so a client written for the Kubernetes API works unchanged. Both are checked,
//! audited and recorded by `gateway::session`.

use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use futures::FutureExt;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use utoipa::{IntoParams, ToSchema};

use super::common::ObjectPath;
use super::problem::{ApiError, Problem};
use crate::auth::Principal;
use crate::gateway::session::{self, ExecRequest, PROTOCOLS};
use crate::gateway::{AppState, Error};

/// `POST .../pods/{name}/exec`
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"command": ["sh", "-c", "cat /etc/hostname; id -u"], "timeoutSeconds": 10}))]
pub struct ExecBody {
    /// The program and its arguments (no shell unless you name one).
    pub command: Vec<String>,
    /// The container; may be omitted when the pod has one.
    pub container: Option<String>,
    /// Sent to the command's standard input, which is then closed.
    pub stdin: Option<String>,
    /// Stop waiting after this long (default 30, capped by KUBEGATE_EXEC_TIMEOUT_MAX); the answer
    /// then says `timedOut` with the output so far.
    #[schema(minimum = 1, maximum = 86400)]
    #[serde(default, deserialize_with = "crate::action::integral::option")]
    pub timeout_seconds: Option<u64>,
}

/// `?dryRun=true`: check the caller may exec there; nothing runs.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExecQuery {
    #[serde(default)]
    pub dry_run: bool,
}

/// What the command did.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"stdout": "web-7c5d9\n10001\n", "stderr": "", "exitCode": 0, "truncated": false, "timedOut": false, "auditId": "2f1c0b7e-5d33-4a8e-9d0e-8b1f7f6c2a10"}))]
pub struct ExecResult {
    /// Standard output (bytes that are not UTF-8 shown as U+FFFD).
    pub stdout: String,
    pub stderr: String,
    /// The exit code; absent when the command did not finish in time (or on a dry run).
    pub exit_code: Option<i32>,
    /// Output past KUBEGATE_EXEC_OUTPUT_MAX_BYTES per stream was dropped.
    pub truncated: bool,
    /// `timeoutSeconds` passed before the command ended.
    pub timed_out: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
    /// The session's audit entry; its recording is at `/v1/audit/{auditId}/recording`.
    pub audit_id: String,
}

/// Run a command in a pod's container and answer its output and exit code (`kubectl exec POD --
/// CMD`). A non-zero exit code is an answer, not an error. Needs the `exec` permission (admin).
#[utoipa::path(
    post, path = "/v1/clusters/{cluster}/namespaces/{namespace}/pods/{name}/exec", tag = "pods", operation_id = "exec_in_pod",
    params(ObjectPath, ExecQuery),
    request_body = ExecBody,
    responses(
        (status = 200, description = "The command ran (whatever its exit code), or timed out", body = ExecResult),
        (status = 403, description = "No `exec` permission here", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown cluster, pod or container", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The pod is not running", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid request, or the command could not start (no such program)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The audit log or the recording cannot be written: nothing ran, or its output is withheld", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn exec_once(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<ObjectPath>,
    query: web::Query<ExecQuery>,
    body: web::Json<ExecBody>,
) -> Result<web::Json<ExecResult>, ApiError> {
    let body = body.into_inner();
    let timeout = match body.timeout_seconds {
        Some(0) => return Err(Error::invalid("timeoutSeconds", "at least 1").into()),
        Some(s) => Duration::from_secs(s.min(86_400)),
        None => Duration::from_secs(30),
    }
    .min(state.sessions.exec_timeout_max);
    let req = ExecRequest {
        target: path.target(),
        pod: path.name.clone(),
        container: body.container,
        command: body.command,
        stdin: body.stdin.is_some(),
        tty: false,
        interactive: false,
        dry_run: query.dry_run,
    };
    let stdin = body.stdin.map(String::into_bytes);
    let audit_id = || {
        crate::context::current()
            .and_then(|c| c.audit_id.lock().expect("audit id").clone())
            .unwrap_or_default()
    };
    match session::run_once(&state, &principal, req, stdin, timeout).await? {
        None => Ok(web::Json(ExecResult {
            stdout: String::new(),
            stderr: String::new(),
            exit_code: None,
            truncated: false,
            timed_out: false,
            dry_run: true,
            audit_id: audit_id(),
        })),
        Some(out) => Ok(web::Json(ExecResult {
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            exit_code: out.exit_code,
            truncated: out.truncated,
            timed_out: out.timed_out,
            dry_run: false,
            audit_id: out.audit_id,
        })),
    }
}

/// The query of an interactive exec, as Kubernetes clients send it.
#[derive(Debug, Default, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExecSessionQuery {
    /// The program and its arguments, one `command=` each, in order.
    #[param(explode = true)]
    pub command: Vec<String>,
    /// The container; may be omitted when the pod has one.
    pub container: Option<String>,
    /// Send standard input (channel 0).
    pub stdin: Option<bool>,
    /// Allocate a terminal; its output comes on channel 1, resizes go on channel 4.
    pub tty: Option<bool>,
    /// Accepted for compatibility (standard output is always on).
    pub stdout: Option<bool>,
    /// Accepted for compatibility (standard error is on without a terminal).
    pub stderr: Option<bool>,
}

fn parse_session_query(raw: &str) -> Result<ExecSessionQuery, Error> {
    let mut q = ExecSessionQuery::default();
    let flag = |key: &str, value: &str| match value {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(Error::invalid(key, "true or false")),
    };
    for (key, value) in url::form_urlencoded::parse(raw.as_bytes()) {
        match key.as_ref() {
            "command" => q.command.push(value.into_owned()),
            "container" => q.container = Some(value.into_owned()),
            "stdin" => q.stdin = Some(flag("stdin", &value)?),
            "tty" => q.tty = Some(flag("tty", &value)?),
            "stdout" => q.stdout = Some(flag("stdout", &value)?),
            "stderr" => q.stderr = Some(flag("stderr", &value)?),
            "dryRun" => return Err(Error::invalid("dryRun", "use POST .../exec?dryRun=true")),
            other => return Err(Error::invalid(other, "unknown parameter")),
        }
    }
    Ok(q)
}

/// An interactive exec (`kubectl exec -it POD -- sh`) over a WebSocket speaking Kubernetes'
/// channel protocol: subprotocol `v5.channel.k8s.io` (or `v4.channel.k8s.io`); each binary
/// message starts with its channel: 0 stdin, 1 stdout, 2 stderr, 3 the final `Status` (JSON, with
/// the exit code), 4 terminal size (`{"Width":80,"Height":24}`), and with v5, 255 to close a
/// stream (`[255, 0]` ends stdin). Everything the pod writes is recorded. Ended by kubegate after
/// KUBEGATE_SESSION_IDLE_TIMEOUT without traffic or KUBEGATE_SESSION_MAX_DURATION, with a
/// `Status` saying why. Needs the `exec` permission (admin).
#[utoipa::path(
    get, path = "/v1/clusters/{cluster}/namespaces/{namespace}/pods/{name}/exec", tag = "pods", operation_id = "exec_session",
    params(
        ObjectPath, ExecSessionQuery,
        ("Upgrade" = String, Header, description = "`websocket`", pattern = "^[Ww][Ee][Bb][Ss][Oo][Cc][Kk][Ee][Tt]$"),
        ("Connection" = String, Header, description = "`Upgrade`", pattern = "^[Uu][Pp][Gg][Rr][Aa][Dd][Ee]$"),
        ("Sec-WebSocket-Version" = String, Header, description = "`13`", pattern = "^13$"),
        ("Sec-WebSocket-Key" = String, Header, description = "16 random bytes in base64 (RFC 6455)", pattern = "^[A-Za-z0-9+/]{21}[AQgw]==$"),
        ("Sec-WebSocket-Protocol" = String, Header, description = "`v5.channel.k8s.io` and/or `v4.channel.k8s.io`", pattern = "^v[45]\\.channel\\.k8s\\.io$"),
    ),
    responses(
        (status = 101, description = "Upgraded to a WebSocket in the negotiated channel protocol"),
        (status = 400, description = "Not a WebSocket upgrade, or no channel protocol kubegate speaks", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "No `exec` permission here", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown cluster, pod or container", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The pod is not running", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid parameters", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The audit log cannot be written: nothing ran", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn exec_session(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<ObjectPath>,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    upgrade_offered(
        &req,
        &PROTOCOLS,
        "an interactive exec (for a one-shot command, POST a JSON body to this path)",
    )?;
    exec_over_websocket(
        state,
        principal,
        path.target(),
        path.name.clone(),
        req,
        body,
    )
    .await
}

/// An interactive exec over a WebSocket offering a channel protocol kubegate speaks, from the
/// REST path or the Kubernetes API's (`kubectl exec`): the same checks, audit and recording.
pub(super) async fn exec_over_websocket(
    state: web::Data<AppState>,
    principal: Principal,
    target: crate::action::Target,
    pod: String,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let q = parse_session_query(req.query_string())?;
    let tty = q.tty.unwrap_or(false);
    let exec = ExecRequest {
        target,
        pod,
        container: q.container,
        command: q.command,
        stdin: q.stdin.unwrap_or(false),
        tty,
        interactive: true,
        dry_run: false,
    };
    // Checked, audited and connected before the upgrade: a refusal is an ordinary answer.
    let Some(opened) = session::open_exec(&state, &principal, &exec).await? else {
        return Err(ApiError::internal(anyhow::anyhow!(
            "an interactive exec was a dry run"
        )));
    };
    let (response, client, messages) = actix_ws::handle_with_protocols(&req, body, &PROTOCOLS)
        .map_err(|e| ApiError::from(Error::bad_request(format!("WebSocket handshake: {e}"))))?;
    let (to_relay, from_client) = mpsc::channel::<Vec<u8>>(64);
    let (to_client, for_client) = mpsc::channel::<Vec<u8>>(64);
    let limits = state.sessions.clone();
    actix_web::rt::spawn(async move {
        let relay = session::relay(
            &state,
            opened,
            from_client,
            to_client,
            limits.max_duration,
            limits.idle_timeout,
            None,
        );
        tokio::join!(relay, pump(client, messages, to_relay, for_client));
    });
    Ok(response)
}

/// Move binary messages between a client's WebSocket and a relay: the client's frames to
/// `to_relay` (until the client closes), the relay's frames to the client (until the relay ends,
/// then the WebSocket is closed). Each direction runs on its own, so a client that reads only
/// after its writes are taken (or the reverse) never stalls the other way.
pub(super) async fn pump(
    client: actix_ws::Session,
    messages: actix_ws::MessageStream,
    to_relay: mpsc::Sender<Vec<u8>>,
    mut for_client: mpsc::Receiver<Vec<u8>>,
) {
    let mut messages = messages
        .max_frame_size(1024 * 1024)
        .aggregate_continuations();
    let mut ponger = client.clone();
    let inbound = async move {
        while let Some(message) = messages.recv().await {
            match message {
                Ok(actix_ws::AggregatedMessage::Binary(data)) => {
                    if to_relay.send(data.to_vec()).await.is_err() {
                        break;
                    }
                }
                Ok(actix_ws::AggregatedMessage::Ping(p)) => {
                    let _ = ponger.pong(&p).await;
                }
                Ok(actix_ws::AggregatedMessage::Text(_))
                | Ok(actix_ws::AggregatedMessage::Pong(_)) => {}
                Ok(actix_ws::AggregatedMessage::Close(_)) | Err(_) => break,
            }
        }
        // Dropping `to_relay` tells the relay the client has gone.
    };
    let mut writer = client.clone();
    let outbound = async move {
        let mut open = true;
        while let Some(frame) = for_client.recv().await {
            if open && writer.binary(frame).await.is_err() {
                open = false;
            }
        }
    };
    let (inbound, outbound) = (inbound.fuse(), outbound.fuse());
    futures::pin_mut!(inbound, outbound);
    loop {
        futures::select! {
            () = inbound => {}
            () = outbound => break,
        }
    }
    // A normal closure (1000): client-go reads a close without a code (1005) on the error
    // stream as a failure, after the command's output and status.
    let _ = client
        .close(Some(actix_ws::CloseReason {
            code: actix_ws::CloseCode::Normal,
            description: None,
        }))
        .await;
}

/// The ports of a port-forward: `ports=8080,9090` or repeated, as Kubernetes clients send them.
fn parse_ports(raw: &str) -> Result<Vec<u16>, Error> {
    let mut ports = Vec::new();
    for (key, value) in url::form_urlencoded::parse(raw.as_bytes()) {
        if key != "ports" {
            return Err(Error::invalid(key.as_ref(), "unknown parameter"));
        }
        for p in value.split(',') {
            let port: u16 = p
                .trim()
                .parse()
                .map_err(|_| Error::invalid("ports", format!("{p:?} is not a port (1-65535)")))?;
            ports.push(port);
        }
    }
    Ok(ports)
}

/// The query of a port-forward.
#[derive(Debug, Default, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PortForwardQuery {
    /// The pod's ports, comma-separated or repeated (at most 16).
    #[param(explode = true)]
    pub ports: Vec<u16>,
}

/// Forward to a pod's ports (`kubectl port-forward`) over a WebSocket in the kubelet's
/// port-forward protocol (subprotocol `v4.channel.k8s.io`, what kube-rs's `portforward` speaks):
/// per port, in the order asked, a data channel (2i) and an error channel (2i+1); the first
/// message on each from the pod's side is the port as two bytes, little endian. One TCP
/// connection per port per session; `kubegate port-forward` opens a session per local
/// connection. Audited: who, which pod and ports, when opened and closed, bytes each way. Needs
/// the `portforward` permission (admin).
#[utoipa::path(
    get, path = "/v1/clusters/{cluster}/namespaces/{namespace}/pods/{name}/portforward", tag = "pods", operation_id = "portforward_session",
    params(
        ObjectPath, PortForwardQuery,
        ("Upgrade" = String, Header, description = "`websocket`", pattern = "^[Ww][Ee][Bb][Ss][Oo][Cc][Kk][Ee][Tt]$"),
        ("Connection" = String, Header, description = "`Upgrade`", pattern = "^[Uu][Pp][Gg][Rr][Aa][Dd][Ee]$"),
        ("Sec-WebSocket-Version" = String, Header, description = "`13`", pattern = "^13$"),
        ("Sec-WebSocket-Key" = String, Header, description = "16 random bytes in base64 (RFC 6455)", pattern = "^[A-Za-z0-9+/]{21}[AQgw]==$"),
        ("Sec-WebSocket-Protocol" = String, Header, description = "`v4.channel.k8s.io`", pattern = "^v4\\.channel\\.k8s\\.io$"),
    ),
    responses(
        (status = 101, description = "Upgraded to a WebSocket in the port-forward protocol"),
        (status = 400, description = "Not a WebSocket upgrade, or not the port-forward protocol", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "No `portforward` permission here", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown cluster or pod", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The pod is not running", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid ports", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The audit log cannot be written: nothing was opened", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn portforward_session(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<ObjectPath>,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    upgrade_offered(&req, &[session::PORTFORWARD_PROTOCOL], "a port-forward")?;
    let ports = parse_ports(req.query_string())?;
    let forward = session::PortForwardRequest {
        target: path.target(),
        pod: path.name.clone(),
        ports,
    };
    let opened = session::open_portforward(&state, &principal, &forward).await?;
    let (response, client, messages) =
        actix_ws::handle_with_protocols(&req, body, &[session::PORTFORWARD_PROTOCOL])
            .map_err(|e| ApiError::from(Error::bad_request(format!("WebSocket handshake: {e}"))))?;
    let (to_relay, from_client) = mpsc::channel::<Vec<u8>>(64);
    let (to_client, for_client) = mpsc::channel::<Vec<u8>>(64);
    let limits = state.sessions.clone();
    actix_web::rt::spawn(async move {
        let relay = session::relay_portforward(
            &state,
            opened,
            from_client,
            to_client,
            limits.max_duration,
            limits.idle_timeout,
        );
        tokio::join!(relay, pump(client, messages, to_relay, for_client));
    });
    Ok(response)
}

/// A WebSocket upgrade offering one of `protocols`, or a 400 saying what is expected.
pub(super) fn upgrade_offered(
    req: &HttpRequest,
    protocols: &[&str],
    what: &str,
) -> Result<(), Error> {
    let offered: Vec<String> = req
        .headers()
        .get_all(actix_web::http::header::SEC_WEBSOCKET_PROTOCOL)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|p| p.trim().to_owned()))
        .collect();
    let upgrade = req
        .headers()
        .get(actix_web::http::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if !upgrade {
        return Err(Error::bad_request(format!(
            "{what} is a WebSocket upgrade (GET with Upgrade: websocket)"
        )));
    }
    if !offered.iter().any(|p| protocols.contains(&p.as_str())) {
        return Err(Error::bad_request(format!(
            "Sec-WebSocket-Protocol must offer {} (offered: {})",
            protocols.join(" or "),
            if offered.is_empty() {
                "none".to_owned()
            } else {
                offered.join(", ")
            }
        )));
    }
    Ok(())
}
