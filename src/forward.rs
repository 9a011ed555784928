//! `kubegate port-forward`: local ports to a pod's, through a kubegate server, the way
//! `kubectl port-forward` does it. Each local connection opens its own session
//! (`GET .../pods/{name}/portforward?ports=P`, the kubelet's port-forward protocol over a
//! WebSocket), so many connections run at once; each is audited by the server. Ctrl-C ends it.

use std::net::SocketAddr;

use anyhow::{Context, bail};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::config::PortForwardArgs;

const PROTOCOL: &str = "v4.channel.k8s.io";

/// Run until Ctrl-C (exit 0) or until a listener cannot be opened.
pub async fn run(args: PortForwardArgs) -> anyhow::Result<()> {
    let token = match &args.token_file {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("reading the token from {}", path.display()))?
            .trim()
            .to_owned(),
        None => std::env::var("KUBEGATE_TOKEN")
            .context("no token: set KUBEGATE_TOKEN or pass --token-file")?,
    };
    let pod = args
        .pod
        .strip_prefix("pod/")
        .unwrap_or(&args.pod)
        .to_owned();
    if pod.is_empty() || pod.contains('/') {
        bail!("{:?} is not a pod: give pod/NAME or NAME", args.pod);
    }
    let cluster = match &args.cluster {
        Some(c) => c.clone(),
        None => only_cluster(&args.server, &token).await?,
    };
    let mut tasks = Vec::new();
    for spec in &args.ports {
        let (local, remote) = parse_mapping(spec)?;
        let listener = TcpListener::bind(SocketAddr::new(args.address, local))
            .await
            .with_context(|| format!("listening on {}:{local}", args.address))?;
        let bound = listener.local_addr()?;
        println!("Forwarding from {bound} -> {remote}");
        let mut url = args.server.clone();
        url.set_scheme(if args.server.scheme() == "https" {
            "wss"
        } else {
            "ws"
        })
        .map_err(|_| anyhow::anyhow!("the server URL must be http or https"))?;
        url.set_path(&format!(
            "/v1/clusters/{cluster}/namespaces/{}/pods/{pod}/portforward",
            args.namespace
        ));
        url.set_query(Some(&format!("ports={remote}")));
        let token = token.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let (socket, peer) = match listener.accept().await {
                    Ok(s) => s,
                    Err(e) => {
                        eprintln!("accepting on {bound}: {e}");
                        continue;
                    }
                };
                println!("Handling connection for {remote}");
                let (url, token) = (url.clone(), token.clone());
                tokio::spawn(async move {
                    if let Err(e) = forward(socket, &url, &token).await {
                        eprintln!("error forwarding {peer} -> {remote}: {e:#}");
                    }
                });
            }
        }));
    }
    tokio::signal::ctrl_c().await?;
    for t in tasks {
        t.abort();
    }
    Ok(())
}

/// `LOCAL:REMOTE`, `PORT` or `:REMOTE` (a free local port).
fn parse_mapping(spec: &str) -> anyhow::Result<(u16, u16)> {
    let port = |s: &str| -> anyhow::Result<u16> {
        s.parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .with_context(|| format!("{s:?} is not a port (1-65535)"))
    };
    match spec.split_once(':') {
        Some(("", remote)) => Ok((0, port(remote)?)),
        Some((local, remote)) => Ok((port(local)?, port(remote)?)),
        None => {
            let p = port(spec)?;
            Ok((p, p))
        }
    }
}

/// The one cluster the server shows this token, or an error naming them.
async fn only_cluster(server: &url::Url, token: &str) -> anyhow::Result<String> {
    let url = server.join("/v1/clusters")?;
    let res = reqwest::Client::new()
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .context("asking the server for its clusters")?;
    if !res.status().is_success() {
        bail!("the server answered {} to GET /v1/clusters", res.status());
    }
    let body: serde_json::Value = res.json().await?;
    let names: Vec<String> = body["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str().map(str::to_owned))
        .collect();
    match names.as_slice() {
        [one] => Ok(one.clone()),
        _ => bail!(
            "choose a cluster with --cluster (the server has: {})",
            names.join(", ")
        ),
    }
}

/// After the local side stops sending, how long the pod may stay silent before the session is
/// ended (this protocol has no half-close to tell the pod the local side is done).
const LINGER: std::time::Duration = std::time::Duration::from_secs(2);

/// One local connection over one session: the port prefix of each channel's first message is
/// dropped, data goes both ways, messages on the error channel are printed. The session ends
/// when the pod's side closes, or once the local side has stopped sending and the pod has been
/// silent for a moment.
async fn forward(socket: TcpStream, url: &url::Url, token: &str) -> anyhow::Result<()> {
    let mut request = url.as_str().into_client_request()?;
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    request
        .headers_mut()
        .insert("sec-websocket-protocol", PROTOCOL.parse()?);
    let (mut ws, _) = match tokio_tungstenite::connect_async(request).await {
        Ok(ok) => ok,
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => {
            let body = res
                .body()
                .as_deref()
                .map(String::from_utf8_lossy)
                .unwrap_or_default();
            let detail = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["detail"].as_str().map(str::to_owned))
                .unwrap_or_else(|| body.into_owned());
            bail!("the server refused ({}): {detail}", res.status());
        }
        Err(e) => return Err(e.into()),
    };
    let (mut tcp_rx, mut tcp_tx) = socket.into_split();
    let mut buf = vec![0u8; 32 * 1024];
    let mut seen = [false; 2];
    let mut local_done = false;
    let linger = tokio::time::sleep(LINGER);
    tokio::pin!(linger);
    loop {
        tokio::select! {
            read = tcp_rx.read(&mut buf), if !local_done => {
                let n = read?;
                if n == 0 {
                    local_done = true;
                    linger.as_mut().reset(tokio::time::Instant::now() + LINGER);
                    continue;
                }
                let mut frame = Vec::with_capacity(n + 1);
                frame.push(0u8);
                frame.extend_from_slice(&buf[..n]);
                ws.send(Message::Binary(frame.into())).await?;
            }
            message = ws.next() => {
                let data = match message {
                    Some(Ok(Message::Binary(d))) => d,
                    Some(Ok(Message::Close(_))) | None => break,
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => return Err(e.into()),
                };
                if local_done {
                    linger.as_mut().reset(tokio::time::Instant::now() + LINGER);
                }
                let Some((&channel, mut body)) = data.split_first() else {
                    continue;
                };
                if channel > 1 {
                    continue;
                }
                if !seen[usize::from(channel)] {
                    seen[usize::from(channel)] = true;
                    body = body.get(2..).unwrap_or_default();
                }
                if channel == 0 {
                    tcp_tx.write_all(body).await?;
                } else if !body.is_empty() {
                    eprintln!("{}", String::from_utf8_lossy(body));
                }
            }
            _ = &mut linger, if local_done => break,
        }
    }
    let _ = ws.close(None).await;
    tcp_tx.shutdown().await.ok();
    Ok(())
}
