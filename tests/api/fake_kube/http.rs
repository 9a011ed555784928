//! The wire protocol: routing of `/api/v1/...` and `/apis/{apps/v1,batch/v1,autoscaling/v2}/...`
//! paths, discovery (of core and apps), `/version`,
//! list/get/create/replace/patch/delete/deletecollection/watch, `/scale`, `/status`, pod `/log`
//! (with follow), `Status` error bodies, and the test hooks (request log, injected faults).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::{Method, StatusCode};
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use super::resources::{ALL, Kind};
use super::selector::{Selector, labels_of};
use super::store::{ApiErr, FieldSelector, parse_field_selector, scale_of};
use super::{Recorded, Shared};

fn respond(code: u16, body: &Value) -> HttpResponse {
    HttpResponse::build(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .content_type("application/json")
        .body(body.to_string())
}

fn error(e: &ApiErr) -> HttpResponse {
    respond(e.code, &e.to_json())
}

pub async fn dispatch(
    req: HttpRequest,
    body: Bytes,
    shared: web::Data<Arc<Shared>>,
) -> HttpResponse {
    let query: HashMap<String, String> = url::form_urlencoded::parse(req.query_string().as_bytes())
        .into_owned()
        .collect();
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    if shared.recording.load(std::sync::atomic::Ordering::Relaxed) {
        shared.requests.lock().unwrap().push(Recorded {
            method: req.method().to_string(),
            path: req.path().to_owned(),
            query: query.clone(),
            content_type: content_type.clone(),
            body: String::from_utf8_lossy(&body).into_owned(),
            headers: req
                .headers()
                .iter()
                .map(|(n, v)| {
                    (
                        n.as_str().to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
        });
    }

    let (latency, fault) = {
        let mut f = shared.faults.lock().unwrap();
        let fault = f.queue.iter_mut().position(|x| {
            x.times > 0
                && x.path_contains
                    .as_ref()
                    .is_none_or(|p| req.path().contains(p.as_str()))
                && x.method.is_none_or(|m| m == req.method().as_str())
        });
        let fault = fault.map(|i| {
            f.queue[i].times -= 1;
            f.queue[i].clone()
        });
        (f.latency, fault)
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if let Some(fault) = fault {
        let (reason, message) = match fault.status {
            429 => (
                "TooManyRequests",
                "the server has received too many requests and has asked us to try again later",
            ),
            409 => (
                "Conflict",
                "Operation cannot be fulfilled: the object has been modified; please apply your changes to the latest version and try again",
            ),
            503 => (
                "ServiceUnavailable",
                "the server is currently unable to handle the request",
            ),
            504 => (
                "Timeout",
                "the server was unable to return a response in the time allotted",
            ),
            _ => (
                "InternalError",
                "an error on the server (\"injected fault\") has prevented the request from succeeding",
            ),
        };
        let mut e = ApiErr::new(fault.status, reason, message);
        let mut res = HttpResponse::build(
            StatusCode::from_u16(fault.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        );
        if let Some(after) = fault.retry_after {
            e.details = json!({"retryAfterSeconds": after});
            res.insert_header(("Retry-After", after.to_string()));
        }
        return res
            .content_type("application/json")
            .body(e.to_json().to_string());
    }

    let path = req.path().trim_end_matches('/').to_owned();
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segs.as_slice() {
        ["version"] => return respond(200, &shared.version),
        ["api"] => {
            return respond(
                200,
                &json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}]}),
            );
        }
        ["apis"] => {
            return respond(
                200,
                &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": (["apps/v1", "batch/v1", "autoscaling/v2"].map(|gv| {
                    let (group, version) = gv.split_once('/').unwrap();
                    json!({"name": group, "versions": [{"groupVersion": gv, "version": version}], "preferredVersion": {"groupVersion": gv, "version": version}})
                }))}),
            );
        }
        ["api", "v1"] => return respond(200, &discovery("v1")),
        ["apis", "apps"] => {
            return respond(
                200,
                &json!({"kind": "APIGroup", "apiVersion": "v1", "name": "apps", "versions": [{"groupVersion": "apps/v1", "version": "v1"}], "preferredVersion": {"groupVersion": "apps/v1", "version": "v1"}}),
            );
        }
        ["apis", "apps", "v1"] => return respond(200, &discovery("apps/v1")),
        ["apis", "batch", "v1"] => return respond(200, &discovery("batch/v1")),
        ["apis", "autoscaling", "v2"] => return respond(200, &discovery("autoscaling/v2")),
        _ => {}
    }
    let (gv, rest) = match segs.as_slice() {
        ["api", "v1", rest @ ..] => ("v1", rest),
        ["apis", "apps", "v1", rest @ ..] => ("apps/v1", rest),
        ["apis", "batch", "v1", rest @ ..] => ("batch/v1", rest),
        ["apis", "autoscaling", "v2", rest @ ..] => ("autoscaling/v2", rest),
        _ => {
            return error(&ApiErr::new(
                404,
                "NotFound",
                "the server could not find the requested resource",
            ));
        }
    };
    // /namespaces/{ns}/{plural}[/{name}[/{sub}]] or /{plural}[/{name}[/{sub}]]
    let (ns, plural, name, sub) = match rest {
        ["namespaces", ns, plural, tail @ ..]
            if Kind::from_path(gv, plural).is_some_and(Kind::namespaced) =>
        {
            (
                Some(*ns),
                *plural,
                tail.first().copied(),
                tail.get(1).copied(),
            )
        }
        [plural, tail @ ..] => (None, *plural, tail.first().copied(), tail.get(1).copied()),
        [] => {
            return error(&ApiErr::new(
                404,
                "NotFound",
                "the server could not find the requested resource",
            ));
        }
    };
    let Some(kind) = Kind::from_path(gv, plural) else {
        return error(&ApiErr::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ));
    };
    if let Some(s) = sub
        && !kind.subresources().contains(&s)
    {
        return error(&ApiErr::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ));
    }
    let ns_str = ns.unwrap_or("");
    let dry_run = query.get("dryRun").is_some_and(|v| v == "All");
    let manager = query.get("fieldManager").cloned().or_else(|| {
        // The API server's default manager: the user agent up to the first '/'.
        req.headers()
            .get("user-agent")
            .and_then(|v| v.to_str().ok())
            .map(|ua| ua.split('/').next().unwrap_or(ua).to_owned())
    });
    let method = req.method().clone();
    let notify = |shared: &Shared| shared.notify.notify_one();

    let result: Result<(u16, Value), ApiErr> = match (method, name, sub) {
        (Method::GET, None, None)
            if query.get("watch").is_some_and(|w| w == "true" || w == "1") =>
        {
            return watch(
                shared.get_ref().clone(),
                kind,
                ns.map(str::to_owned),
                &query,
            );
        }
        (Method::GET, None, None) => list(&shared, kind, ns, &query).map(|v| (200, v)),
        (Method::GET, Some(name), Some("log")) => {
            return logs(shared.get_ref().clone(), ns_str, name, &query).await;
        }
        (Method::GET, Some(name), sub) => {
            let st = shared.state.lock().unwrap();
            st.get(kind, ns_str, name)
                .map(|o| {
                    (
                        200,
                        if sub == Some("scale") {
                            scale_of(kind, &o)
                        } else {
                            o
                        },
                    )
                })
                .ok_or_else(|| ApiErr::not_found(kind, name))
        }
        (Method::POST, None, None) => {
            let parsed = parse_body(&body);
            let mut st = shared.state.lock().unwrap();
            let r = parsed
                .and_then(|b| {
                    st.create(
                        kind,
                        ns_str,
                        b,
                        manager.as_deref().unwrap_or("unknown"),
                        dry_run,
                    )
                })
                .map(|v| (201, v));
            drop(st);
            notify(&shared);
            r
        }
        (Method::PUT, Some(name), sub) => {
            let parsed = parse_body(&body);
            let mut st = shared.state.lock().unwrap();
            let mgr = manager.as_deref().unwrap_or("unknown");
            let r = parsed.and_then(|b| match sub {
                Some("scale") => {
                    let current = st
                        .get(kind, ns_str, name)
                        .ok_or_else(|| ApiErr::not_found(kind, name))?;
                    let mut new = current;
                    new["spec"]["replicas"] = b["spec"]["replicas"].clone();
                    if let Some(rv) = b["metadata"]["resourceVersion"].as_str() {
                        new["metadata"]["resourceVersion"] = json!(rv);
                    }
                    st.finish_update(kind, ns_str, name, new, mgr, "scale", None, dry_run)
                        .map(|o| scale_of(kind, &o))
                }
                Some(s) => st.replace(kind, ns_str, name, b, mgr, s, dry_run),
                None => st.replace(kind, ns_str, name, b, mgr, "", dry_run),
            });
            drop(st);
            notify(&shared);
            r.map(|v| (200, v))
        }
        (Method::PATCH, Some(name), sub) => {
            let force = query.get("force").is_some_and(|f| f == "true");
            let mut st = shared.state.lock().unwrap();
            let existed = st.exists(kind, ns_str, name);
            let r = st.patch(
                kind,
                ns_str,
                name,
                &content_type,
                &body,
                manager.as_deref(),
                force,
                sub.unwrap_or(""),
                dry_run,
            );
            drop(st);
            notify(&shared);
            r.map(|v| (if existed || dry_run { 200 } else { 201 }, v))
        }
        (Method::DELETE, Some(name), None) => {
            let options: Value = serde_json::from_slice(&body).unwrap_or(json!({}));
            let propagation = query
                .get("propagationPolicy")
                .cloned()
                .or_else(|| options["propagationPolicy"].as_str().map(str::to_owned))
                .unwrap_or_else(|| "Background".into());
            let dry = dry_run
                || options["dryRun"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|v| v == "All"));
            let mut st = shared.state.lock().unwrap();
            let r = st.delete(kind, ns_str, name, &propagation, dry);
            drop(st);
            notify(&shared);
            r.map(|v| (200, v))
        }
        (Method::DELETE, None, None) => {
            let selector = match query.get("labelSelector").map(|s| Selector::parse(s)) {
                Some(Err(e)) => {
                    return error(&ApiErr::bad_request(format!(
                        "unable to parse requirement: {e}"
                    )));
                }
                Some(Ok(s)) => s,
                None => Selector::default(),
            };
            let fields = match parse_field_selector(
                kind,
                query.get("fieldSelector").map(String::as_str).unwrap_or(""),
            ) {
                Ok(f) => f,
                Err(e) => return error(&e),
            };
            let mut st = shared.state.lock().unwrap();
            let matching = st.list(kind, ns, &selector, &fields);
            let mut items = Vec::new();
            for o in matching {
                let n = o["metadata"]["name"].as_str().unwrap_or("").to_owned();
                if st.delete(kind, ns_str, &n, "Background", dry_run).is_ok() {
                    items.push(o);
                }
            }
            let rv = st.rv;
            drop(st);
            notify(&shared);
            Ok((
                200,
                json!({"kind": format!("{}List", kind.kind()), "apiVersion": kind.api_version(), "metadata": {"resourceVersion": rv.to_string()}, "items": items}),
            ))
        }
        _ => Err(ApiErr::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource".to_string(),
        )),
    };
    match result {
        Ok((code, v)) => respond(code, &v),
        Err(e) => error(&e),
    }
}

fn parse_body(body: &[u8]) -> Result<Value, ApiErr> {
    serde_json::from_slice(body).map_err(|e| {
        ApiErr::bad_request(format!(
            "the body of the request was in an unknown format: {e}"
        ))
    })
}

fn selectors(
    kind: Kind,
    query: &HashMap<String, String>,
) -> Result<(Selector, FieldSelector), ApiErr> {
    let labels = match query.get("labelSelector") {
        Some(s) => Selector::parse(s)
            .map_err(|e| ApiErr::bad_request(format!("unable to parse requirement: {e}")))?,
        None => Selector::default(),
    };
    let fields = parse_field_selector(
        kind,
        query.get("fieldSelector").map(String::as_str).unwrap_or(""),
    )?;
    Ok((labels, fields))
}

fn list(
    shared: &Shared,
    kind: Kind,
    ns: Option<&str>,
    query: &HashMap<String, String>,
) -> Result<Value, ApiErr> {
    let (labels, fields) = selectors(kind, query)?;
    let st = shared.state.lock().unwrap();
    let mut items = st.list(kind, ns, &labels, &fields);
    let mut meta = json!({"resourceVersion": st.rv.to_string()});
    drop(st);
    // limit/continue: the continue token is the index of the next item.
    let start: usize = query
        .get("continue")
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let limit: usize = query
        .get("limit")
        .and_then(|l| l.parse().ok())
        .filter(|l| *l > 0)
        .unwrap_or(usize::MAX);
    let total = items.len();
    items = items.into_iter().skip(start).take(limit).collect();
    if start + items.len() < total {
        meta["continue"] = json!((start + items.len()).to_string());
        meta["remainingItemCount"] = json!(total - start - items.len());
    }
    Ok(
        json!({"kind": format!("{}List", kind.kind()), "apiVersion": kind.api_version(), "metadata": meta, "items": items}),
    )
}

/// One watch event as a line of the stream (serialized without copying the object).
fn line(event_type: &str, object: &Value) -> Bytes {
    let mut out = format!("{{\"type\":\"{event_type}\",\"object\":").into_bytes();
    serde_json::to_writer(&mut out, object).expect("a JSON value serializes");
    out.extend_from_slice(b"}\n");
    Bytes::from(out)
}

fn watch(
    shared: Arc<Shared>,
    kind: Kind,
    ns: Option<String>,
    query: &HashMap<String, String>,
) -> HttpResponse {
    let (labels, fields) = match selectors(kind, query) {
        Ok(s) => s,
        Err(e) => return error(&e),
    };
    let timeout = Duration::from_secs(
        query
            .get("timeoutSeconds")
            .and_then(|t| t.parse().ok())
            .unwrap_or(1800),
    );
    let from_rv: Option<u64> = query
        .get("resourceVersion")
        .and_then(|r| r.parse().ok())
        .filter(|r| *r != 0);
    let initial_events = query.get("sendInitialEvents").is_some_and(|v| v == "true");
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(256);
    let matches = move |ev_kind: Kind, ev_ns: &str, obj: &Value| {
        ev_kind == kind
            && ns.as_deref().is_none_or(|n| n == ev_ns)
            && labels.matches(&labels_of(obj))
            && super::store::field_match(obj, &fields)
    };
    let (mut sub, backlog, current_rv) = {
        let st = shared.state.lock().unwrap();
        if let Some(rv) = from_rv.filter(|rv| !initial_events && *rv < st.compacted_rv) {
            // The event window no longer reaches back to `rv`: the watch starts and at once
            // ends with a 410 Expired error event, as kube-apiserver's does.
            let e = ApiErr::new(
                410,
                "Expired",
                format!("too old resource version: {rv} ({})", st.compacted_rv + 1),
            );
            return HttpResponse::Ok()
                .content_type("application/json")
                .body(line("ERROR", &e.to_json()));
        }
        let sub = st.tx.subscribe();
        let backlog: Vec<(String, Value)> = match from_rv {
            Some(rv) if !initial_events => st
                .events
                .iter()
                .filter(|e| e.rv > rv && matches(e.kind, &e.namespace, &e.object))
                .map(|e| (e.event_type.to_owned(), e.object.clone()))
                .collect(),
            _ => st
                .of_kind(kind, None)
                .map(|(k, s)| (k.1.clone(), st.render(kind, s)))
                .filter(|(n, o)| matches(kind, n, o))
                .map(|(_, o)| ("ADDED".to_owned(), o))
                .collect(),
        };
        (sub, backlog, st.rv)
    };
    let bookmark = initial_events.then(|| {
        json!({"kind": kind.kind(), "apiVersion": kind.api_version(), "metadata": {"resourceVersion": current_rv.to_string(), "annotations": {"k8s.io/initial-events-end": "true"}}})
    });
    let last_sent = from_rv.filter(|_| !initial_events).unwrap_or(current_rv);
    tokio::spawn(async move {
        for (t, o) in &backlog {
            if tx.send(line(t, o)).await.is_err() {
                return;
            }
        }
        if let Some(b) = bookmark
            && tx.send(line("BOOKMARK", &b)).await.is_err()
        {
            return;
        }
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut last = last_sent.max(
            backlog
                .iter()
                .filter_map(|(_, o)| {
                    o["metadata"]["resourceVersion"]
                        .as_str()?
                        .parse::<u64>()
                        .ok()
                })
                .max()
                .unwrap_or(0),
        );
        loop {
            tokio::select! {
                _ = &mut deadline => return,
                _ = tx.closed() => return,
                ev = sub.recv() => match ev {
                    Ok(ev) => {
                        if ev.rv <= last || !matches(ev.kind, &ev.namespace, &ev.object) {
                            continue;
                        }
                        last = ev.rv;
                        let delay = shared.faults.lock().unwrap().watch_delay;
                        if !delay.is_zero() {
                            tokio::time::sleep(delay).await;
                        }
                        if tx.send(line(ev.event_type, &ev.object)).await.is_err() {
                            return;
                        }
                    }
                    Err(_) => return,
                },
            }
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, actix_web::Error>(b), rx))
    });
    HttpResponse::Ok()
        .content_type("application/json")
        .streaming(stream)
}

async fn logs(
    shared: Arc<Shared>,
    ns: &str,
    name: &str,
    query: &HashMap<String, String>,
) -> HttpResponse {
    let pod = { shared.state.lock().unwrap().get(Kind::Pod, ns, name) };
    let Some(pod) = pod else {
        return error(&ApiErr::not_found(Kind::Pod, name));
    };
    let containers: Vec<String> = pod["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|c| c["name"].as_str().map(str::to_owned))
        .collect();
    let container = match query.get("container") {
        Some(c) if containers.contains(c) => c.clone(),
        Some(c) => {
            return error(&ApiErr::bad_request(format!(
                "container {c} is not valid for pod {name}"
            )));
        }
        None if containers.len() == 1 => containers[0].clone(),
        None => {
            return error(&ApiErr::bad_request(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                containers.join(" ")
            )));
        }
    };
    let status = pod["status"]["containerStatuses"]
        .as_array()
        .and_then(|s| s.iter().find(|c| c["name"] == container.as_str()).cloned())
        .unwrap_or(Value::Null);
    if let Some(reason) = status["state"]["waiting"]["reason"].as_str()
        && (reason != "CrashLoopBackOff" || query.get("previous").is_none_or(|p| p != "true"))
    {
        let why = match reason {
            "ImagePullBackOff" | "ErrImagePull" => "trying and failing to pull image",
            "ContainerCreating" => "ContainerCreating",
            other => other,
        };
        return error(&ApiErr::bad_request(format!(
            "container \"{container}\" in pod \"{name}\" is waiting to start: {why}"
        )));
    }
    if query.get("previous").is_some_and(|p| p == "true")
        && status["restartCount"].as_i64().unwrap_or(0) == 0
    {
        return error(&ApiErr::bad_request(format!(
            "previous terminated container \"{container}\" in pod \"{name}\" not found"
        )));
    }
    let key = (ns.to_owned(), name.to_owned(), container);
    let timestamps = query.get("timestamps").is_some_and(|t| t == "true");
    let stamp = pod["status"]["startTime"]
        .as_str()
        .unwrap_or("2026-01-01T00:00:00Z")
        .replace('Z', ".000000000Z");
    let fmt = move |l: &str| {
        if timestamps {
            format!("{stamp} {l}\n")
        } else {
            format!("{l}\n")
        }
    };
    let lines = {
        shared
            .state
            .lock()
            .unwrap()
            .logs
            .get(&key)
            .cloned()
            .unwrap_or_default()
    };
    let tail: usize = query
        .get("tailLines")
        .and_then(|t| t.parse().ok())
        .unwrap_or(usize::MAX);
    let first: Vec<String> = lines
        .iter()
        .skip(lines.len().saturating_sub(tail))
        .map(|l| fmt(l))
        .collect();
    if query.get("follow").is_none_or(|f| f != "true") {
        return HttpResponse::Ok()
            .content_type("text/plain")
            .body(first.concat());
    }
    // follow: stream what exists, then new lines until the pod goes away or the client leaves.
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    let uid = pod["metadata"]["uid"].clone();
    tokio::spawn(async move {
        let mut sent = lines.len();
        if !first.is_empty() && tx.send(Bytes::from(first.concat())).await.is_err() {
            return;
        }
        loop {
            tokio::select! {
                _ = tx.closed() => return,
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
            let (now_lines, alive) = {
                let st = shared.state.lock().unwrap();
                let alive = st
                    .get(Kind::Pod, &key.0, &key.1)
                    .is_some_and(|p| p["metadata"]["uid"] == uid);
                (st.logs.get(&key).cloned().unwrap_or_default(), alive)
            };
            if now_lines.len() > sent {
                let chunk: String = now_lines[sent..].iter().map(|l| fmt(l)).collect();
                sent = now_lines.len();
                if tx.send(Bytes::from(chunk)).await.is_err() {
                    return;
                }
            }
            if !alive {
                return;
            }
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, actix_web::Error>(b), rx))
    });
    HttpResponse::Ok()
        .content_type("text/plain")
        .streaming(stream)
}

fn discovery(group_version: &str) -> Value {
    let mut resources = Vec::new();
    for k in ALL.into_iter().filter(|k| k.api_version() == group_version) {
        let singular = k.kind().to_lowercase();
        let mut verbs = vec![
            "create", "delete", "get", "list", "patch", "update", "watch",
        ];
        if k.namespaced() {
            verbs.insert(1, "deletecollection");
        }
        resources.push(json!({"name": k.plural(), "singularName": singular, "namespaced": k.namespaced(), "kind": k.kind(), "verbs": verbs, "shortNames": k.short_names()}));
        for s in k.subresources() {
            let (kind, group, version, verbs) = match *s {
                "scale" => ("Scale", "autoscaling", "v1", vec!["get", "patch", "update"]),
                "log" => ("Pod", "", "", vec!["get"]),
                _ => (k.kind(), "", "", vec!["get", "patch", "update"]),
            };
            let mut r = json!({"name": format!("{}/{s}", k.plural()), "singularName": "", "namespaced": k.namespaced(), "kind": kind, "verbs": verbs});
            if !group.is_empty() {
                r["group"] = json!(group);
                r["version"] = json!(version);
            }
            resources.push(r);
        }
    }
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources})
}
