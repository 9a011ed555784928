//! Exec sessions: the same checks as every action (validated, authorized, intent committed before
//! the cluster hears anything), then a relay between the client and the API server in
//! Kubernetes' own channel protocol (`v5.channel.k8s.io`, or `v4`): frames whose first byte is
//! the channel (0 stdin, 1 stdout, 2 stderr, 3 status, 4 resize, 255 close, v5 only). Everything
//! the pod writes is recorded (`audit::Recorder`) as it passes; input is counted, and recorded
//! only when configured. If the recording cannot be written the session ends, with a status
//! saying why. The outcome entry carries the exit code and the recording's digest.
//!
//! A one-shot exec (`run_once`) is the same relay with kubegate as the client.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

pub use super::state::SessionLimits;
use super::{Error, finished};
use crate::action::Target;
use crate::audit::{Entry, Recorder, now_us};
use crate::auth::Principal;
use crate::cluster::ClusterError;
use crate::context;
use crate::validate::{self, Errors};

pub const STDIN: u8 = 0;
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
pub const STATUS: u8 = 3;
pub const RESIZE: u8 = 4;
pub const CLOSE: u8 = 255;

/// The channel protocols a client may speak, preferred first.
pub const PROTOCOLS: [&str; 2] = ["v5.channel.k8s.io", "v4.channel.k8s.io"];

/// An exec, as asked.
#[derive(Debug, Clone)]
pub struct ExecRequest {
    pub target: Target,
    pub pod: String,
    pub container: Option<String>,
    pub command: Vec<String>,
    pub stdin: bool,
    pub tty: bool,
    /// Over a WebSocket (the person's terminal) rather than one-shot.
    pub interactive: bool,
    pub dry_run: bool,
}

impl ExecRequest {
    fn validate(&self) -> Errors {
        let mut e = Errors::default();
        if let Err(m) = validate::dns1123_label(&self.target.namespace) {
            e.add("namespace", m);
        }
        if let Err(m) = validate::dns1123_subdomain(&self.pod) {
            e.add("pod", m);
        }
        if let Some(c) = &self.container
            && let Err(m) = validate::dns1123_label(c)
        {
            e.add("container", m);
        }
        e.check(!self.command.is_empty(), "command", "at least one word");
        e.check(self.command.len() <= 256, "command", "at most 256 words");
        let total: usize = self.command.iter().map(String::len).sum();
        e.check(total <= 32 * 1024, "command", "at most 32 KiB in all");
        e.check(
            !self.command.iter().any(|w| w.contains('\0')),
            "command",
            "no NUL characters",
        );
        e.check(
            !self.command.first().is_some_and(String::is_empty),
            "command",
            "the program is not empty",
        );
        e
    }

    /// The audit summary: the command as typed is what an auditor looks for.
    fn summary(&self) -> Value {
        json!({
            "container": self.container,
            "command": self.command,
            "stdin": self.stdin,
            "tty": self.tty,
            "interactive": self.interactive,
        })
    }
}

/// How a session ended.
#[derive(Debug, Clone, Default)]
pub struct Ended {
    /// The command's exit code, when it exited.
    pub exit_code: Option<i32>,
    /// The `Status` the API server sent on the status channel, as sent.
    pub status: Option<Value>,
    /// Why the relay stopped: `exited`, `client-closed`, `cluster-closed`, `timed-out`, `idle`,
    /// `recording-failed`.
    pub reason: &'static str,
    /// Output dropped past the limit, per stream (one-shot only).
    pub truncated: bool,
    /// When the command could not run at all: the API server's message.
    pub failure: Option<String>,
}

/// What the client side of a relay sends: raw channel frames, or the end.
pub type FromClient = mpsc::Receiver<Vec<u8>>;
/// Frames to the client (the relay closes it when the session ends).
pub type ToClient = mpsc::Sender<Vec<u8>>;

/// An admitted session: intent committed, upstream connected.
pub struct Opened {
    pub audit_id: uuid::Uuid,
    intent: Entry,
    upstream: crate::cluster::Upstream,
}

/// Validate, authorize (`exec`), commit the intent, connect to the pod. A dry run stops after
/// authorization (nothing is recorded but the decision) and answers `Ok(None)`.
pub async fn open_exec(
    state: &super::AppState,
    principal: &Principal,
    req: &ExecRequest,
) -> Result<Option<Opened>, Error> {
    let audit_id = crate::audit::new_id();
    let ctx = context::current();
    if let Some(c) = &ctx {
        *c.audit_id.lock().expect("audit id") = Some(audit_id.to_string());
    }
    let base = super::entry_for(
        audit_id,
        principal,
        ctx.as_deref(),
        &req.target,
        "exec",
        ("pod", req.pod.clone()),
        req.summary(),
        req.dry_run,
    );
    let errors = req.validate();
    let admitted = if errors.is_empty() {
        state
            .auth
            .authorize(
                principal,
                "exec",
                &req.target.cluster,
                Some(&req.target.namespace),
            )
            .map_err(Error::from)
    } else {
        Err(Error::from(errors))
    };
    let intent = super::commit_intent(state, principal, &req.target, base, admitted).await?;
    let cluster = state.cluster(principal, &req.target.cluster)?;
    if req.dry_run {
        state
            .audit
            .pending(intent)
            .finish(|intent| Entry {
                stage: "outcome".into(),
                outcome: "succeeded".into(),
                completed_at_us: Some(now_us()),
                http_status: Some(200),
                result: Some(json!({"dryRun": true}).to_string()),
                ..intent
            })
            .await;
        return Ok(None);
    }
    tracing::info!(subject = %principal.subject, cluster = %req.target.cluster, namespace = %req.target.namespace, pod = %req.pod, %audit_id, "exec");
    let connected = cluster
        .exec(
            &req.target.namespace,
            &req.pod,
            req.container.as_deref(),
            &req.command,
            req.stdin,
            req.tty,
        )
        .await
        .map_err(exec_error);
    match connected {
        // The session's outcome is written when `relay` ends it.
        Ok(upstream) => Ok(Some(Opened {
            audit_id,
            intent,
            upstream,
        })),
        Err(e) => {
            state
                .audit
                .pending(intent)
                .finish(|intent| {
                    finished(
                        Entry {
                            stage: "outcome".into(),
                            outcome: "failed".into(),
                            upstream_error: Some(e.to_string()),
                            ..intent
                        },
                        &e,
                    )
                })
                .await;
            Err(e)
        }
    }
}

/// The API server's refusals of an exec, in the caller's terms.
fn exec_error(e: ClusterError) -> Error {
    match e {
        ClusterError::BadRequest { message } if message.contains("is not valid for pod") => {
            Error::NotFound { detail: message }
        }
        ClusterError::BadRequest { message }
            if message.contains("does not have a host assigned")
                || message.contains("not running")
                || message.contains("container not found") =>
        {
            Error::Conflict {
                detail: format!("the pod is not running: {message}"),
            }
        }
        ClusterError::Conflict { message } => Error::Conflict { detail: message },
        other => Error::Cluster(other),
    }
}

/// Relay a session until it ends, recording it; then write its outcome. `output_limit`: bytes
/// passed on per stream (one-shot), `None` for all of them. Each direction runs on its own (a
/// command that reads while it writes, like `cat`, never waits on the other direction), and
/// the recording is written beside them.
pub async fn relay(
    state: &super::AppState,
    opened: Opened,
    mut from_client: FromClient,
    to_client: ToClient,
    deadline: Duration,
    idle: Duration,
    output_limit: Option<usize>,
) -> Ended {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
    let Opened {
        audit_id,
        intent,
        upstream,
    } = opened;
    let started = std::time::Instant::now();
    let pending = state.audit.pending(intent);
    let closes_streams = upstream.supports_stream_close();
    let (mut up_tx, mut up_rx) = upstream.into_stream().split();
    let recorder = Recorder::new(state.db.clone(), audit_id, state.sessions.record_input);
    let mut ended = Ended::default();
    let mut client_open = true;
    let exited = AtomicBool::new(false);
    // Milliseconds since `started` of the last traffic either way.
    let last_traffic = AtomicU64::new(0);
    let touch = || last_traffic.store(started.elapsed().as_millis() as u64, Relaxed);
    let down = async {
        let mut passed = [0usize; 3];
        loop {
            let mut data = match up_rx.next().await {
                Some(Ok(Message::Binary(data))) => data.to_vec(),
                Some(Ok(Message::Text(text))) => text.as_bytes().to_vec(),
                Some(Ok(Message::Close(_))) | None => break,
                Some(Ok(_)) => continue,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, %audit_id, "exec stream from the cluster broke");
                    break;
                }
            };
            touch();
            let Some((&channel, payload)) = data.split_first() else {
                continue;
            };
            let mut cut = None;
            match channel {
                STDOUT | STDERR => {
                    let i = usize::from(channel);
                    let mut kept = payload;
                    if let Some(limit) = output_limit {
                        let room = limit.saturating_sub(passed[i]);
                        if payload.len() > room {
                            ended.truncated = true;
                            if room == 0 {
                                continue;
                            }
                            kept = &payload[..room];
                            cut = Some(1 + room);
                        }
                    }
                    passed[i] += kept.len();
                    recorder.output(if channel == STDOUT { 'o' } else { 'e' }, kept);
                }
                STATUS => {
                    if let Ok(status) = serde_json::from_slice::<Value>(payload) {
                        ended.exit_code = exit_code(&status);
                        if status["status"] != "Success" && ended.exit_code.is_none() {
                            ended.failure = Some(
                                status["message"]
                                    .as_str()
                                    .unwrap_or("the command could not run")
                                    .to_owned(),
                            );
                        }
                        ended.status = Some(status);
                        exited.store(true, Relaxed);
                    }
                }
                CLOSE => continue,
                _ => {}
            }
            if let Some(n) = cut {
                data.truncate(n);
            }
            if client_open && to_client.send(data).await.is_err() {
                client_open = false;
            }
            recorder.room().await;
        }
        if exited.load(Relaxed) {
            "exited"
        } else {
            "cluster-closed"
        }
    };
    let up = async {
        loop {
            let Some(frame) = from_client.recv().await else {
                if exited.load(Relaxed) {
                    // The command has ended: the cluster closes the stream.
                    return std::future::pending().await;
                }
                return "client-closed";
            };
            touch();
            let Some((&channel, payload)) = frame.split_first() else {
                continue;
            };
            match channel {
                STDIN => recorder.input(payload),
                RESIZE => {
                    if let Ok(size) = serde_json::from_slice::<Value>(payload) {
                        let dim = |k: &str| size[k].as_u64().and_then(|v| u16::try_from(v).ok());
                        if let (Some(w), Some(h)) = (dim("Width"), dim("Height")) {
                            recorder.resize(w, h);
                        }
                    }
                }
                CLOSE if !closes_streams => continue,
                _ => {}
            }
            if up_tx.send(Message::Binary(frame.into())).await.is_err() {
                return "cluster-closed";
            }
        }
    };
    let watch = limits(
        started,
        deadline,
        idle,
        &last_traffic,
        Duration::from_millis(100),
    );
    let session = async {
        let why = tokio::select! {
            why = down => why,
            why = up => why,
            why = watch => why,
            () = recorder.failed() => "recording-failed",
        };
        recorder.stop();
        why
    };
    let (reason, written) = tokio::join!(session, recorder.keep_writing());
    ended.reason = reason;
    if let Err(e) = written {
        tracing::error!(error = %e, %audit_id, "session recording not written; the session is ended");
        ended.reason = "recording-failed";
    }
    // The client learns why kubegate ended a session that had not ended by itself.
    let why = match ended.reason {
        "timed-out" => Some("kubegate ended the session: it reached its time limit"),
        "idle" => Some("kubegate ended the session: no traffic within the idle timeout"),
        "recording-failed" => {
            Some("kubegate ended the session: its recording could not be written")
        }
        _ => None,
    };
    if let Some(message) = why {
        let status = json!({"metadata": {}, "status": "Failure", "message": message, "reason": "Timeout", "code": 500});
        let mut frame = vec![STATUS];
        frame.extend_from_slice(status.to_string().as_bytes());
        if client_open {
            let _ = to_client.send(frame).await;
        }
    }
    drop(to_client);
    let _ = up_tx.close().await;
    let mut result = json!({
        "ended": ended.reason,
        "exitCode": ended.exit_code,
        "durationMs": started.elapsed().as_millis() as u64,
        "truncated": ended.truncated,
        "recording": recorder.summary(),
    });
    if let Some(f) = &ended.failure {
        result["failure"] = json!(f);
    }
    let failed = ended.reason == "recording-failed" || ended.failure.is_some();
    pending
        .finish(|intent| Entry {
            stage: "outcome".into(),
            outcome: if failed { "failed" } else { "succeeded" }.into(),
            completed_at_us: Some(now_us()),
            http_status: Some(if failed { 500 } else { 200 }),
            upstream_error: ended.failure.clone(),
            result: Some(result.to_string()),
            ..intent
        })
        .await;
    ended
}

/// Ends a session (looking `every` so often): `timed-out` at `deadline` after `started`, `idle`
/// once `idle` has passed since `last_traffic` (milliseconds after `started`).
async fn limits(
    started: std::time::Instant,
    deadline: Duration,
    idle: Duration,
    last_traffic: &std::sync::atomic::AtomicU64,
    every: Duration,
) -> &'static str {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if started.elapsed() >= deadline {
            return "timed-out";
        }
        let since = last_traffic.load(std::sync::atomic::Ordering::Relaxed);
        let quiet = (started.elapsed().as_millis() as u64).saturating_sub(since);
        if Duration::from_millis(quiet) >= idle {
            return "idle";
        }
    }
}

/// The exit code a status carries: 0 for Success, the `ExitCode` cause of a NonZeroExitCode.
fn exit_code(status: &Value) -> Option<i32> {
    if status["status"] == "Success" {
        return Some(0);
    }
    if status["reason"] != "NonZeroExitCode" {
        return None;
    }
    status["details"]["causes"]
        .as_array()?
        .iter()
        .find(|c| c["reason"] == "ExitCode")
        .and_then(|c| c["message"].as_str())
        .and_then(|m| m.parse().ok())
}

/// What a one-shot exec answers.
#[derive(Debug, Clone)]
pub struct Output {
    pub audit_id: String,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub exit_code: Option<i32>,
    pub truncated: bool,
    pub timed_out: bool,
}

/// A one-shot exec: send `stdin` (then close it), collect the output up to the limit, until the
/// command exits or `timeout` passes. A non-zero exit code is an answer, not an error; a command
/// that cannot start at all is an `exec-failed` error.
pub async fn run_once(
    state: &super::AppState,
    principal: &Principal,
    req: ExecRequest,
    stdin: Option<Vec<u8>>,
    timeout: Duration,
) -> Result<Option<Output>, Error> {
    let Some(opened) = open_exec(state, principal, &req).await? else {
        return Ok(None);
    };
    let audit_id = opened.audit_id.to_string();
    let (client_tx, from_client) = mpsc::channel(4);
    let (to_client, mut client_rx) = mpsc::channel::<Vec<u8>>(64);
    if req.stdin {
        // The input, in order, then the end of it (v5's close; with v4 the command gets no EOF).
        let tx = client_tx.clone();
        let input = stdin.unwrap_or_default();
        tokio::spawn(async move {
            for piece in input.chunks(32 * 1024) {
                let mut frame = vec![STDIN];
                frame.extend_from_slice(piece);
                if tx.send(frame).await.is_err() {
                    return;
                }
            }
            let _ = tx.send(vec![CLOSE, STDIN]).await;
        });
    }
    let collect = async move {
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        while let Some(frame) = client_rx.recv().await {
            match frame.split_first() {
                Some((&STDOUT, data)) => stdout.extend_from_slice(data),
                Some((&STDERR, data)) => stderr.extend_from_slice(data),
                _ => {}
            }
        }
        (stdout, stderr)
    };
    // The client side stays open (without sending more) until the command ends.
    let relayed = relay(
        state,
        opened,
        from_client,
        to_client,
        timeout,
        timeout,
        Some(state.sessions.exec_output_max),
    );
    let (ended, (stdout, stderr)) = tokio::join!(relayed, collect);
    drop(client_tx);
    if ended.reason == "recording-failed" {
        return Err(Error::AuditUnavailable {
            detail: "the exec's recording could not be written, so its output is not shown".into(),
        });
    }
    if let Some(message) = ended.failure {
        return Err(Error::ExecFailed { detail: message });
    }
    Ok(Some(Output {
        audit_id,
        stdout,
        stderr,
        exit_code: ended.exit_code,
        truncated: ended.truncated,
        timed_out: ended.reason == "timed-out",
    }))
}

/// A port-forward, as asked.
#[derive(Debug, Clone)]
pub struct PortForwardRequest {
    pub target: Target,
    pub pod: String,
    pub ports: Vec<u16>,
}

/// An admitted port-forward: intent committed, upstream connected.
pub struct OpenedForward {
    pub audit_id: uuid::Uuid,
    intent: Entry,
    upstream: crate::cluster::Upstream,
    ports: Vec<u16>,
}

/// The subprotocol of port-forward sessions (the kubelet's WebSocket port-forward): per port,
/// a data channel (2i) and an error channel (2i+1); each starts, from the pod's side, with the
/// port as two bytes, little endian.
pub const PORTFORWARD_PROTOCOL: &str = "v4.channel.k8s.io";

/// Validate, authorize (`portforward`), commit the intent, connect.
pub async fn open_portforward(
    state: &super::AppState,
    principal: &Principal,
    req: &PortForwardRequest,
) -> Result<OpenedForward, Error> {
    let audit_id = crate::audit::new_id();
    let ctx = context::current();
    if let Some(c) = &ctx {
        *c.audit_id.lock().expect("audit id") = Some(audit_id.to_string());
    }
    let base = super::entry_for(
        audit_id,
        principal,
        ctx.as_deref(),
        &req.target,
        "portforward",
        ("pod", req.pod.clone()),
        json!({"ports": req.ports}),
        false,
    );
    let mut errors = Errors::default();
    if let Err(m) = validate::dns1123_label(&req.target.namespace) {
        errors.add("namespace", m);
    }
    if let Err(m) = validate::dns1123_subdomain(&req.pod) {
        errors.add("pod", m);
    }
    errors.check(!req.ports.is_empty(), "ports", "at least one port");
    errors.check(req.ports.len() <= 16, "ports", "at most 16 ports");
    errors.check(!req.ports.contains(&0), "ports", "ports are 1-65535");
    let mut unique = req.ports.clone();
    unique.sort_unstable();
    unique.dedup();
    errors.check(unique.len() == req.ports.len(), "ports", "each port once");
    let admitted = if errors.is_empty() {
        state
            .auth
            .authorize(
                principal,
                "portforward",
                &req.target.cluster,
                Some(&req.target.namespace),
            )
            .map_err(Error::from)
    } else {
        Err(Error::from(errors))
    };
    let intent = super::commit_intent(state, principal, &req.target, base, admitted).await?;
    let cluster = state.cluster(principal, &req.target.cluster)?;
    tracing::info!(subject = %principal.subject, cluster = %req.target.cluster, namespace = %req.target.namespace, pod = %req.pod, ports = ?req.ports, %audit_id, "port-forward");
    match cluster
        .portforward(&req.target.namespace, &req.pod, &req.ports)
        .await
        .map_err(exec_error)
    {
        Ok(upstream) => Ok(OpenedForward {
            audit_id,
            intent,
            upstream,
            ports: req.ports.clone(),
        }),
        Err(e) => {
            state
                .audit
                .pending(intent)
                .finish(|intent| {
                    finished(
                        Entry {
                            stage: "outcome".into(),
                            outcome: "failed".into(),
                            upstream_error: Some(e.to_string()),
                            ..intent
                        },
                        &e,
                    )
                })
                .await;
            Err(e)
        }
    }
}

/// Relay a port-forward until either side ends it, then write its outcome: bytes each way,
/// how long, and what the pod side reported on its error channels.
pub async fn relay_portforward(
    state: &super::AppState,
    opened: OpenedForward,
    mut from_client: FromClient,
    to_client: ToClient,
    deadline: Duration,
    idle: Duration,
) {
    let OpenedForward {
        intent,
        upstream,
        ports,
        ..
    } = opened;
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    let started = std::time::Instant::now();
    let pending = state.audit.pending(intent);
    // Each direction runs on its own: a peer that writes while it waits for its own writes to
    // be read (an echo, a bulk upload with answers) never stalls the other direction.
    let (mut up_tx, mut up_rx) = upstream.into_stream().split();
    let (to_pod, from_pod) = (AtomicU64::new(0), AtomicU64::new(0));
    // Milliseconds since `started` of the last traffic either way.
    let last_traffic = AtomicU64::new(0);
    let touch = || last_traffic.store(started.elapsed().as_millis() as u64, Relaxed);
    let errors = std::sync::Mutex::new(Vec::<String>::new());
    let down = async {
        // The first message of each channel from the pod's side is its port (not data).
        let mut prefixed = vec![false; ports.len() * 2];
        loop {
            let data = match up_rx.next().await {
                Some(Ok(Message::Binary(data))) => data.to_vec(),
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return "pod-closed",
                Some(Ok(_)) => continue,
            };
            touch();
            if let Some((&channel, payload)) = data.split_first() {
                let c = usize::from(channel);
                let mut body = payload;
                if c < prefixed.len() && !prefixed[c] {
                    prefixed[c] = true;
                    body = payload.get(2..).unwrap_or_default();
                }
                if c % 2 == 0 {
                    from_pod.fetch_add(body.len() as u64, Relaxed);
                } else if !body.is_empty() {
                    let mut e = errors.lock().expect("errors");
                    if e.len() < 16 {
                        e.push(String::from_utf8_lossy(body).chars().take(512).collect());
                    }
                }
            }
            if to_client.send(data).await.is_err() {
                return "client-closed";
            }
        }
    };
    let up = async {
        loop {
            let Some(frame) = from_client.recv().await else {
                return "client-closed";
            };
            touch();
            if let Some((&channel, payload)) = frame.split_first()
                && channel % 2 == 0
            {
                to_pod.fetch_add(payload.len() as u64, Relaxed);
            }
            if up_tx.send(Message::Binary(frame.into())).await.is_err() {
                return "pod-closed";
            }
        }
    };
    let watch = limits(
        started,
        deadline,
        idle,
        &last_traffic,
        Duration::from_secs(1),
    );
    let ended = tokio::select! {
        why = down => why,
        why = up => why,
        why = watch => why,
    };
    let (to_pod, from_pod) = (to_pod.load(Relaxed), from_pod.load(Relaxed));
    let errors = errors.into_inner().expect("errors");
    drop(to_client);
    let _ = up_tx.close().await;
    let result = json!({
        "ended": ended,
        "ports": ports,
        "bytesToPod": to_pod,
        "bytesFromPod": from_pod,
        "durationMs": started.elapsed().as_millis() as u64,
        "errors": errors,
    });
    pending
        .finish(|intent| Entry {
            stage: "outcome".into(),
            outcome: "succeeded".into(),
            completed_at_us: Some(now_us()),
            http_status: Some(101),
            upstream_error: errors.first().cloned(),
            result: Some(result.to_string()),
            ..intent
        })
        .await;
}
