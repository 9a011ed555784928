//! A person's own kubectl through kubegate: `/k8s/{cluster}/...` is the cluster's Kubernetes API
//! (discovery, OpenAPI, every verb, watches and log streams, subresources, CRDs), answered as
//! the API server answers (errors as its `Status`); `GET /v1/clusters/{cluster}/kubeconfig`
//! gives the kubeconfig that points kubectl there. An exec over a WebSocket in a channel
//! protocol is kubegate's recorded session; other upgrades (port-forward, attach, SPDY) are
//! passed through, audited.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::json;
use utoipa::IntoParams;

use super::problem::{ApiError, Problem};
use crate::auth::Principal;
use crate::gateway::AppState;
use crate::gateway::kubeapi::{self, KubeAnswer, KubeRequest, Upgrade};

/// `/k8s/{cluster}` and everything under it.
pub async fn handle(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    match serve(state, principal, &req, payload).await {
        Ok(res) => res,
        Err(e) => status_answer(&e),
    }
}

async fn serve(
    state: web::Data<AppState>,
    principal: Principal,
    req: &HttpRequest,
    mut payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let cluster = req.match_info().get("cluster").unwrap_or("").to_owned();
    // The API server's path, as the client encoded it: what follows `/k8s/{cluster}`.
    let raw = req.uri().path();
    let path = raw
        .match_indices('/')
        .nth(2)
        .map(|(i, _)| raw[i..].to_owned())
        .unwrap_or_else(|| "/".to_owned());
    let upgrade = req
        .headers()
        .get(header::CONNECTION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
        });
    let attrs = kubeapi::attributes(req.method().as_str(), &path, req.query_string());
    // kubectl exec over a WebSocket in a channel protocol: kubegate's own recorded session.
    if upgrade
        && attrs.subresource == "exec"
        && attrs.resource == "pods"
        && attrs.group.is_empty()
        && super::exec::upgrade_offered(req, &crate::gateway::session::PROTOCOLS, "exec").is_ok()
        && let (Some(ns), Some(pod)) = (attrs.namespace.clone(), attrs.name.clone())
    {
        let target = crate::action::Target {
            cluster,
            namespace: ns,
        };
        return super::exec::exec_over_websocket(
            state,
            principal,
            target,
            pod,
            req.clone(),
            payload,
        )
        .await;
    }
    // A manifest's object may be as large as apply takes; an upgrade's body is the connection.
    let body = if upgrade {
        Vec::new()
    } else {
        super::proxy::read_body(&mut payload, state.apply.max_body_bytes).await?
    };
    let (method, headers) = super::proxy::method_and_headers(req)?;
    let request = KubeRequest {
        cluster,
        method,
        path,
        query: req.query_string().to_owned(),
        headers,
        body,
    };
    let decided = kubeapi::decide(&state, &principal, request).await?;
    if upgrade {
        return match kubeapi::upgrade(&state, &principal, decided).await? {
            Upgrade::Refused(answer) => Ok(super::proxy::streamed(answer)),
            Upgrade::Switched { head, io, done } => Ok(splice(head, io, payload, done)),
        };
    }
    Ok(match kubeapi::forward(&state, &principal, decided).await? {
        KubeAnswer::Forwarded(answer) => super::proxy::streamed(answer),
        KubeAnswer::Own(status, body) => HttpResponse::build(
            actix_web::http::StatusCode::from_u16(status)
                .unwrap_or(actix_web::http::StatusCode::OK),
        )
        .json(body),
    })
}

/// Answer 101 with the API server's head and pass bytes both ways until either side ends; then
/// `done` records the bytes each way.
fn splice(
    head: http::response::Parts,
    io: hyper::upgrade::Upgraded,
    mut payload: web::Payload,
    done: Box<dyn FnOnce(u64, u64) -> futures::future::BoxFuture<'static, ()> + Send>,
) -> HttpResponse {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut from_upstream, mut to_upstream) = tokio::io::split(hyper_util::rt::TokioIo::new(io));
    let (up, down) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (tx, rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(16);
    let sent = up.clone();
    let writer = async move {
        while let Some(Ok(chunk)) = payload.next().await {
            sent.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            if to_upstream.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = to_upstream.shutdown().await;
    };
    let received = down.clone();
    let reader = async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match from_upstream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    received.fetch_add(n as u64, Ordering::Relaxed);
                    if tx
                        .send(bytes::Bytes::copy_from_slice(&buf[..n]))
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
    };
    actix_web::rt::spawn(async move {
        // Each way ends on its own: the client's end of input reaches the API server as a
        // shutdown, the API server's end closes the answer (and with it the connection).
        tokio::join!(writer, reader);
        done(up.load(Ordering::Relaxed), down.load(Ordering::Relaxed)).await;
    });
    let mut res = HttpResponse::build(actix_web::http::StatusCode::SWITCHING_PROTOCOLS);
    if let Some(u) = head.headers.get(http::header::UPGRADE) {
        res.upgrade(u.as_bytes());
    }
    for (name, value) in &head.headers {
        if crate::gateway::proxy::HOP_BY_HOP.contains(&name.as_str())
            || name == http::header::CONTENT_LENGTH
        {
            continue;
        }
        res.append_header((name.as_str(), value.as_bytes()));
    }
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, actix_web::Error>(b), rx))
    });
    res.streaming(stream)
}

/// An error as the API server would answer it (a `Status`), which kubectl prints as
/// `Error from server (Forbidden): ...`.
fn status_answer(e: &ApiError) -> HttpResponse {
    use actix_web::ResponseError;
    let p = e.problem();
    let reason = match p.status {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        409 => "Conflict",
        413 => "RequestEntityTooLarge",
        415 => "UnsupportedMediaType",
        422 => "Invalid",
        429 => "TooManyRequests",
        504 => "Timeout",
        503 => "ServiceUnavailable",
        _ => "InternalError",
    };
    let mut res = HttpResponse::build(e.status_code());
    if let Some(after) = e.error_response().headers().get(header::RETRY_AFTER) {
        res.insert_header((header::RETRY_AFTER, after.clone()));
    }
    res.json(json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": p.detail, "reason": reason, "code": p.status,
        "details": {"kubegateProblem": p.problem_type},
    }))
}

/// `GET /v1/clusters/{cluster}/kubeconfig` options.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct KubeconfigQuery {
    /// Put the caller's own bearer token in the kubeconfig (else an `exec` entry runs
    /// `kubegate credential`, which reads KUBEGATE_TOKEN).
    #[serde(default)]
    pub embed_token: bool,
    /// The context's namespace (default: the cluster's).
    #[param(pattern = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", max_length = 63)]
    pub namespace: Option<String>,
}

/// A kubeconfig for your own kubectl: its server is kubegate's Kubernetes API endpoint for
/// this cluster (`/k8s/{cluster}`), its user authenticates with a kubegate token. YAML, or JSON
/// with `Accept: application/json`.
#[utoipa::path(
    get, path = "/v1/clusters/{cluster}/kubeconfig", tag = "clusters", operation_id = "get_kubeconfig",
    params(super::apply::ClusterPath, KubeconfigQuery),
    responses(
        (status = 200, description = "The kubeconfig", content(
            (String = "application/yaml", example = "apiVersion: v1\nkind: Config\nclusters:\n- name: kubegate-dev\n  cluster:\n    server: https://kubegate.example.com/k8s/dev\ncontexts:\n- name: kubegate-dev\n  context:\n    cluster: kubegate-dev\n    user: kubegate\n    namespace: default\ncurrent-context: kubegate-dev\nusers:\n- name: kubegate\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: kubegate\n      args: [credential]\n      interactiveMode: Never\n"),
            (serde_json::Value = "application/json"),
        )),
        (status = 404, description = "Unknown cluster", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_kubeconfig(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<super::apply::ClusterPath>,
    query: web::Query<KubeconfigQuery>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let cluster = state.cluster(&principal, &path.cluster)?;
    if !state.auth.sees_cluster(&principal, &path.cluster) {
        return Err(ApiError::forbidden(format!(
            "no grant names cluster {:?}",
            path.cluster
        )));
    }
    let info = req.connection_info();
    let server = match &state.public_url {
        Some(url) => format!("{}/k8s/{}", url.trim_end_matches('/'), path.cluster),
        None => format!("{}://{}/k8s/{}", info.scheme(), info.host(), path.cluster),
    };
    let name = format!("kubegate-{}", path.cluster);
    let user = if query.embed_token {
        let token = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        json!({"token": token})
    } else {
        json!({"exec": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": "kubegate",
            "args": ["credential"],
            "interactiveMode": "Never",
            "provideClusterInfo": false,
        }})
    };
    let namespace = query
        .namespace
        .clone()
        .unwrap_or_else(|| cluster.default_namespace.clone());
    let mut cluster_entry = json!({"server": server});
    if state.public_url.is_none()
        && let Some(ca) = &state.tls_ca
    {
        use base64::Engine as _;
        cluster_entry["certificate-authority-data"] =
            json!(base64::engine::general_purpose::STANDARD.encode(ca));
    }
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": cluster_entry}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": "kubegate", "namespace": namespace}}],
        "current-context": name,
        "users": [{"name": "kubegate", "user": user}],
        "preferences": {},
    });
    let json_wanted = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/json") && !a.contains("yaml"));
    let mut res = HttpResponse::Ok();
    // It may hold the caller's token.
    res.insert_header((header::CACHE_CONTROL, "no-store"));
    Ok(if json_wanted {
        res.json(config)
    } else {
        res.content_type("application/yaml")
            .body(crate::manifest::to_yaml(&config))
    })
}
