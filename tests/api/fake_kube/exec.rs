//! `GET .../pods/{name}/exec` as kube-apiserver 1.30+ serves it over a WebSocket
//! (staging/src/k8s.io/apiserver/pkg/util/proxy/websocket.go and streamtranslator.go): the pod and
//! container are checked before the upgrade (404, 400 "container X is not valid for pod Y", 400
//! "pod X does not have a host assigned"); the only subprotocol is `v5.channel.k8s.io`; once
//! upgraded, an empty message on the lowest writable channel says the streams are open; the
//! command's end is a `Status` on channel 3 (Success, or NonZeroExitCode with an `ExitCode`
//! cause; other failures an InternalError), then a close frame, and the server waits for the
//! client to close. `[255, 0]` closes stdin; channel 4 carries `{"Width","Height"}`.
//!
//! The container is a small shell: `sh -c SCRIPT` or an interactive `sh` (reading lines from
//! stdin, `$ ` prompts, input echoed with a terminal), and `echo`, `cat`, `seq N`, `sleep S`,
//! `exit N`, `stty size`; `>&2` sends a statement's output to stderr. Another program, or `sh`
//! in an image whose name has `distroless`, fails as runc does.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::Shared;
use super::resources::Kind;
use super::store::ApiErr;

const PROTOCOL: &str = "v5.channel.k8s.io";

fn problem(e: &ApiErr) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(e.code).unwrap())
        .content_type("application/json")
        .body(e.to_json().to_string())
}

pub async fn exec(
    req: HttpRequest,
    body: web::Payload,
    shared: web::Data<Arc<Shared>>,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let (ns, name) = path.into_inner();
    let mut command = Vec::new();
    let mut query = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(req.query_string().as_bytes()) {
        if k == "command" {
            command.push(v.into_owned());
        } else {
            query.insert(k.into_owned(), v.into_owned());
        }
    }
    if shared.recording.load(std::sync::atomic::Ordering::Relaxed) {
        shared.requests.lock().unwrap().push(super::Recorded {
            method: "GET".into(),
            path: req.path().to_owned(),
            query: query.clone(),
            content_type: String::new(),
            body: String::new(),
            headers: Vec::new(),
        });
    }
    let pod = { shared.state.lock().unwrap().get(Kind::Pod, &ns, &name) };
    let Some(pod) = pod else {
        return problem(&ApiErr::not_found(Kind::Pod, &name));
    };
    let containers: Vec<(String, String)> = pod["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap_or("").to_owned(),
                c["image"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let image = match query.get("container") {
        Some(c) => match containers.iter().find(|(n, _)| n == c) {
            Some((_, image)) => image.clone(),
            None => {
                return problem(&ApiErr::bad_request(format!(
                    "container {c} is not valid for pod {name}"
                )));
            }
        },
        None if containers.len() == 1 => containers[0].1.clone(),
        None => {
            return problem(&ApiErr::bad_request(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                containers
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            )));
        }
    };
    if pod["spec"]["nodeName"].as_str().is_none_or(str::is_empty) {
        return problem(&ApiErr::bad_request(format!(
            "pod {name} does not have a host assigned"
        )));
    }
    let flag = |k: &str| query.get(k).is_some_and(|v| v == "true" || v == "1");
    let (stdin, stdout, stderr, tty) = (flag("stdin"), flag("stdout"), flag("stderr"), flag("tty"));
    let (response, mut session, messages) =
        match actix_ws::handle_with_protocols(&req, body, &[PROTOCOL]) {
            Ok(r) => r,
            Err(e) => return HttpResponse::BadRequest().body(e.to_string()),
        };
    if response.headers().get("sec-websocket-protocol").is_none() {
        // Like the apiserver: no v5 offered, no session.
        return HttpResponse::BadRequest().body("requested protocol(s) are not supported");
    }
    let mut messages = messages.aggregate_continuations();
    actix_web::rt::spawn(async move {
        let (stdin_tx, stdin_rx) = mpsc::unbounded_channel::<Option<Vec<u8>>>();
        let (out_tx, mut out_rx) = mpsc::unbounded_channel::<(u8, Vec<u8>)>();
        let size = Arc::new(std::sync::Mutex::new((80u16, 24u16)));
        // Open: an empty message on the lowest writable channel.
        let first = if stdout {
            1
        } else if stderr {
            2
        } else {
            3
        };
        let _ = session.binary(vec![first]).await;
        let container = Container {
            out: out_tx,
            stdin: stdin_rx,
            tty,
            size: size.clone(),
            no_shell: image.contains("distroless"),
            stderr_open: stderr,
        };
        let run = tokio::spawn(container.run(command));
        let mut stdin_open = stdin;
        loop {
            tokio::select! {
                out = out_rx.recv() => match out {
                    Some((channel, data)) => {
                        let mut frame = vec![channel];
                        frame.extend_from_slice(&data);
                        if session.binary(frame).await.is_err() { break; }
                    }
                    None => break,
                },
                msg = messages.recv() => match msg {
                    Some(Ok(actix_ws::AggregatedMessage::Binary(data))) => {
                        match data.split_first() {
                            Some((0, d)) if stdin_open => { let _ = stdin_tx.send(Some(d.to_vec())); }
                            Some((255, [0])) => { stdin_open = false; let _ = stdin_tx.send(None); }
                            Some((4, d)) => {
                                if let Ok(v) = serde_json::from_slice::<Value>(d)
                                    && let (Some(w), Some(h)) = (v["Width"].as_u64(), v["Height"].as_u64()) {
                                    *size.lock().unwrap() = (w as u16, h as u16);
                                }
                            }
                            _ => {}
                        }
                    }
                    Some(Ok(_)) => {}
                    // The client went away: the command is killed, as the kubelet does.
                    _ => { run.abort(); return; }
                }
            }
        }
        let status = match run.await {
            Ok(Ok(0)) => json!({"metadata": {}, "status": "Success"}),
            Ok(Ok(code)) => json!({
                "metadata": {}, "status": "Failure",
                "message": format!("command terminated with non-zero exit code: error executing command [{}], exit code {code}", "..."),
                "reason": "NonZeroExitCode",
                "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
            }),
            Ok(Err(message)) => json!({
                "metadata": {}, "status": "Failure", "message": message,
                "reason": "InternalError",
                "details": {"causes": [{"message": message}]}, "code": 500,
            }),
            Err(_) => return,
        };
        let mut frame = vec![3u8];
        frame.extend_from_slice(status.to_string().as_bytes());
        let _ = session.binary(frame).await;
        let _ = session.close(None).await;
        // The apiserver waits for the client to close; reading until it does.
        let _ = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(Ok(_)) = messages.recv().await {}
        })
        .await;
    });
    response
}

struct Container {
    out: mpsc::UnboundedSender<(u8, Vec<u8>)>,
    stdin: mpsc::UnboundedReceiver<Option<Vec<u8>>>,
    tty: bool,
    size: Arc<std::sync::Mutex<(u16, u16)>>,
    no_shell: bool,
    stderr_open: bool,
}

impl Container {
    fn write(&self, to_stderr: bool, text: impl Into<Vec<u8>>) {
        // With a terminal (or no stderr stream), stderr is part of stdout.
        let channel = if to_stderr && self.stderr_open && !self.tty {
            2
        } else {
            1
        };
        let _ = self.out.send((channel, text.into()));
    }

    /// Next bytes of stdin; None at its end.
    async fn read(&mut self) -> Option<Vec<u8>> {
        self.stdin.recv().await.flatten()
    }

    async fn run(mut self, command: Vec<String>) -> Result<i32, String> {
        let not_found = |program: &str| {
            format!(
                "Internal error occurred: error executing command in container: failed to exec in container: failed to start exec \"0\": OCI runtime exec failed: exec failed: unable to start container process: exec: \"{program}\": executable file not found in $PATH: unknown"
            )
        };
        let program = command.first().cloned().unwrap_or_default();
        match program.as_str() {
            "sh" | "/bin/sh" if self.no_shell => Err(not_found(&program)),
            "sh" | "/bin/sh" => match command.get(1).map(String::as_str) {
                Some("-c") => Ok(self
                    .script(command.get(2).map(String::as_str).unwrap_or(""))
                    .await),
                _ => Ok(self.interactive().await),
            },
            "echo" | "cat" | "seq" | "sleep" | "stty" => {
                Ok(match self.statement(&command.join(" ")).await {
                    Flow::Exit(code) | Flow::Status(code) => code,
                })
            }
            _ => Err(not_found(&program)),
        }
    }

    async fn interactive(&mut self) -> i32 {
        let mut line = Vec::new();
        // A shell prompts only on a terminal.
        let prompt = |c: &Self| {
            if c.tty {
                c.write(false, "$ ");
            }
        };
        prompt(self);
        while let Some(data) = self.read().await {
            for byte in data {
                if self.tty {
                    // A terminal echoes what is typed (and turns Enter into a new line).
                    let echo: &[u8] = if byte == b'\r' {
                        b"\r\n"
                    } else {
                        std::slice::from_ref(&byte)
                    };
                    self.write(false, echo.to_vec());
                }
                if byte == b'\n' || byte == b'\r' {
                    let text = String::from_utf8_lossy(&line).into_owned();
                    line.clear();
                    if let Flow::Exit(code) = self.script_line(&text).await {
                        return code;
                    }
                    prompt(self);
                } else {
                    line.push(byte);
                }
            }
        }
        0
    }

    async fn script(&mut self, script: &str) -> i32 {
        let mut status = 0;
        for line in script.lines() {
            match self.script_line(line).await {
                Flow::Exit(code) => return code,
                Flow::Status(code) => status = code,
            }
        }
        status
    }

    /// Run the `;`-separated statements of a line.
    async fn script_line(&mut self, line: &str) -> Flow {
        let mut status = 0;
        for statement in line.split(';') {
            let statement = statement.trim();
            if statement.is_empty() {
                continue;
            }
            match self.statement(statement).await {
                Flow::Exit(code) => return Flow::Exit(code),
                Flow::Status(code) => status = code,
            }
        }
        Flow::Status(status)
    }

    /// One statement.
    async fn statement(&mut self, statement: &str) -> Flow {
        let (statement, to_stderr) = match statement.strip_suffix(">&2") {
            Some(s) => (s.trim(), true),
            None => (statement, false),
        };
        let words: Vec<&str> = statement.split_whitespace().collect();
        match words.as_slice() {
            ["exit"] => return Flow::Exit(0),
            ["exit", code] => return Flow::Exit(code.parse().unwrap_or(2)),
            ["echo", rest @ ..] => {
                let text = rest.join(" ");
                let text = text.trim_matches(|c| c == '\'' || c == '"');
                self.write(to_stderr, format!("{text}\n"));
            }
            ["cat"] => {
                while let Some(data) = self.read().await {
                    self.write(to_stderr, data);
                }
            }
            ["seq", n] => {
                let n: u64 = n.parse().unwrap_or(0);
                let mut text = String::new();
                for i in 1..=n {
                    text.push_str(&format!("{i}\n"));
                    if text.len() >= 32 * 1024 {
                        self.write(to_stderr, std::mem::take(&mut text));
                    }
                }
                self.write(to_stderr, text);
            }
            ["sleep", s] => {
                tokio::time::sleep(Duration::from_secs_f64(s.parse().unwrap_or(0.0))).await;
            }
            ["stty", "size"] => {
                let (w, h) = *self.size.lock().unwrap();
                self.write(to_stderr, format!("{h} {w}\n"));
            }
            [program, ..] => {
                self.write(true, format!("sh: {program}: not found\n"));
                return Flow::Status(127);
            }
            [] => {}
        }
        Flow::Status(0)
    }
}

enum Flow {
    Exit(i32),
    Status(i32),
}

/// `GET .../pods/{name}/portforward?ports=P[,Q]` as the kubelet serves it over a WebSocket
/// (pkg/kubelet/cri/streaming/portforward/websocket.go), reached through the API server: the pod
/// is checked first (404, 400 without a node); the subprotocol is `v4.channel.k8s.io`; per port a
/// data channel (2i) and an error channel (2i+1), each opened with the port as two bytes, little
/// endian. The pod listens on 80 and 8080 (HTTP: `hello from POD at PATH`, then it closes) and 7
/// (echo); another port fails on its error channel, as a refused connection does.
pub async fn portforward(
    req: HttpRequest,
    body: web::Payload,
    shared: web::Data<Arc<Shared>>,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let (ns, name) = path.into_inner();
    let mut ports: Vec<u16> = Vec::new();
    for (k, v) in url::form_urlencoded::parse(req.query_string().as_bytes()) {
        if k == "ports" {
            ports.extend(v.split(',').filter_map(|p| p.parse::<u16>().ok()));
        }
    }
    if shared.recording.load(std::sync::atomic::Ordering::Relaxed) {
        shared.requests.lock().unwrap().push(super::Recorded {
            method: "GET".into(),
            path: req.path().to_owned(),
            query: HashMap::from([("ports".to_owned(), format!("{ports:?}"))]),
            content_type: String::new(),
            body: String::new(),
            headers: Vec::new(),
        });
    }
    let pod = { shared.state.lock().unwrap().get(Kind::Pod, &ns, &name) };
    let Some(pod) = pod else {
        return problem(&ApiErr::not_found(Kind::Pod, &name));
    };
    if pod["spec"]["nodeName"].as_str().is_none_or(str::is_empty) {
        return problem(&ApiErr::bad_request(format!(
            "pod {name} does not have a host assigned"
        )));
    }
    if ports.is_empty() {
        return problem(&ApiErr::bad_request(
            "query parameter \"ports\" is required".to_owned(),
        ));
    }
    let (response, mut session, messages) =
        match actix_ws::handle_with_protocols(&req, body, &["v4.channel.k8s.io"]) {
            Ok(r) => r,
            Err(e) => return HttpResponse::BadRequest().body(e.to_string()),
        };
    let mut messages = messages.aggregate_continuations();
    actix_web::rt::spawn(async move {
        let (out_tx, mut out_rx) = mpsc::unbounded_channel::<(u8, Vec<u8>)>();
        let mut inputs = Vec::new();
        let mut open = ports.len();
        for (i, port) in ports.iter().copied().enumerate() {
            let (data, error) = (2 * i as u8, 2 * i as u8 + 1);
            for channel in [data, error] {
                let mut f = vec![channel];
                f.extend_from_slice(&port.to_le_bytes());
                let _ = session.binary(f).await;
            }
            let (in_tx, in_rx) = mpsc::unbounded_channel::<Vec<u8>>();
            inputs.push(in_tx);
            tokio::spawn(pod_port(name.clone(), port, data, in_rx, out_tx.clone()));
        }
        drop(out_tx);
        // Each direction on its own, as the kubelet's goroutines do.
        let mut writer = session.clone();
        let writing = async move {
            while let Some((channel, data)) = out_rx.recv().await {
                // An empty message with the channel u8::MAX: that port is done.
                if data.is_empty() && channel == u8::MAX {
                    open -= 1;
                    if open == 0 {
                        break;
                    }
                    continue;
                }
                let mut f = vec![channel];
                f.extend_from_slice(&data);
                if writer.binary(f).await.is_err() {
                    return;
                }
            }
            let _ = writer.close(None).await;
        };
        let reading = async move {
            while let Some(Ok(msg)) = messages.recv().await {
                if let actix_ws::AggregatedMessage::Binary(d) = msg
                    && let Some((&channel, rest)) = d.split_first()
                    && channel % 2 == 0
                    && let Some(tx) = inputs.get(usize::from(channel / 2))
                {
                    let _ = tx.send(rest.to_vec());
                }
            }
        };
        tokio::select! {
            () = writing => {}
            () = reading => {}
        }
    });
    response
}

/// What listens on a port of the fake pod. Sends (u8::MAX, []) when the connection ends.
async fn pod_port(
    pod: String,
    port: u16,
    data: u8,
    mut input: mpsc::UnboundedReceiver<Vec<u8>>,
    out: mpsc::UnboundedSender<(u8, Vec<u8>)>,
) {
    match port {
        7 => {
            while let Some(bytes) = input.recv().await {
                let _ = out.send((data, bytes));
            }
        }
        80 | 8080 => {
            let mut request = Vec::new();
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match input.recv().await {
                    Some(bytes) => request.extend_from_slice(&bytes),
                    None => break,
                }
            }
            let text = String::from_utf8_lossy(&request);
            let path = text.split_whitespace().nth(1).unwrap_or("/").to_owned();
            let body = format!("hello from {pod} at {path}\n");
            let answer = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = out.send((data, answer.into_bytes()));
        }
        _ => {
            let _ = out.send((
                data + 1,
                format!("error forwarding port {port} to pod {pod}, uid : failed to connect to localhost:{port} inside namespace: connection refused").into_bytes(),
            ));
        }
    }
    let _ = out.send((u8::MAX, Vec::new()));
}

/// `.../pods/{name}/proxy/{path}` and `.../services/{name}/proxy/{path}` as the API server
/// forwards them: the object must exist (else its 404 `Status`); `NAME:PORT` names the port.
/// The target answers with what it received as JSON (method, path, query, headers, body);
/// `/stream` answers `first` at once and `second` once the test opens the gate
/// (`FakeKube::open_proxy_gate`), to show the answer streams.
pub async fn proxy(
    req: HttpRequest,
    body: web::Bytes,
    shared: web::Data<Arc<Shared>>,
    path: web::Path<(String, String, String, String)>,
) -> HttpResponse {
    let (ns, plural, name, _) = path.into_inner();
    // The path as sent (the route's parameter is decoded).
    // After /api/v1/namespaces/NS/KIND/NAME/proxy.
    let tail = req
        .path()
        .match_indices('/')
        .nth(7)
        .map(|(i, _)| req.path()[i..].to_owned())
        .unwrap_or_default();
    if shared.recording.load(std::sync::atomic::Ordering::Relaxed) {
        shared.requests.lock().unwrap().push(super::Recorded {
            method: req.method().to_string(),
            path: req.path().to_owned(),
            query: HashMap::new(),
            content_type: String::new(),
            body: String::from_utf8_lossy(&body).into_owned(),
            headers: Vec::new(),
        });
    }
    let kind = if plural == "pods" {
        Kind::Pod
    } else {
        Kind::Service
    };
    let parts: Vec<&str> = name.split(':').collect();
    let (object, port) = match parts.as_slice() {
        [n] => (*n, ""),
        [n, p] => (*n, *p),
        [_, n, p] => (*n, *p),
        _ => (name.as_str(), ""),
    };
    let exists = {
        shared
            .state
            .lock()
            .unwrap()
            .get(kind, &ns, object)
            .is_some()
    };
    if !exists {
        return problem(&ApiErr::not_found(kind, object));
    }
    if tail == "/stream" {
        let shared = shared.get_ref().clone();
        let stream = futures::stream::unfold(0u8, move |step| {
            let shared = shared.clone();
            async move {
                match step {
                    0 => Some((Ok::<_, actix_web::Error>(web::Bytes::from("first\n")), 1)),
                    1 => {
                        shared.proxy_gate.notified().await;
                        Some((Ok(web::Bytes::from("second\n")), 2))
                    }
                    _ => None,
                }
            }
        });
        return HttpResponse::Ok()
            .content_type("text/plain")
            .streaming(stream);
    }
    let headers: serde_json::Map<String, Value> = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), json!(v.to_str().unwrap_or(""))))
        .collect();
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header(("x-served-by", format!("{plural}/{object}")))
        .body(
            json!({
                "target": format!("{plural}/{object}"),
                "port": port,
                "method": req.method().as_str(),
                "path": tail,
                "query": req.query_string(),
                "headers": headers,
                "body": String::from_utf8_lossy(&body),
            })
            .to_string(),
        )
}
