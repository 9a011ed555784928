//! WebSocket streams to the API server (exec, port-forward), opened the way kube-rs's
//! `Client::connect` opens them (same headers, same checks of the answer, the API server's
//! `Status` as the error) but with a WebSocket configuration of kubegate's own: tungstenite's
//! default 128 KiB read buffer, zero-filled on the first read, would be most of what an idle
//! session costs.

use http::header::{self, HeaderValue};
use hyper_util::rt::TokioIo;
use kube::client::Body;
use kube::core::Status;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::client::generate_key;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

/// The channel protocols asked for, preferred first (v5 can close a stream on its own).
const PROTOCOLS: &str = "v5.channel.k8s.io, v4.channel.k8s.io";
/// Bytes read from the socket at a time (a larger frame still arrives whole).
const READ_BUFFER: usize = 16 * 1024;

/// An upgraded connection to the API server.
pub struct Upstream {
    stream: WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>,
    v5: bool,
}

impl Upstream {
    /// v5 of the channel protocol: a stream can be closed (stdin's end) on its own.
    pub fn supports_stream_close(&self) -> bool {
        self.v5
    }

    pub fn into_stream(self) -> WebSocketStream<TokioIo<hyper::upgrade::Upgraded>> {
        self.stream
    }
}

/// Upgrade `request` (an exec or port-forward URL) to a WebSocket.
pub(super) async fn connect(
    client: &kube::Client,
    request: http::Request<Vec<u8>>,
) -> Result<Upstream, kube::Error> {
    let (mut parts, body) = request.into_parts();
    let key = generate_key();
    let h = &mut parts.headers;
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(
        header::SEC_WEBSOCKET_VERSION,
        HeaderValue::from_static("13"),
    );
    h.insert(
        header::SEC_WEBSOCKET_KEY,
        HeaderValue::from_str(&key).expect("a generated key is a header value"),
    );
    h.insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static(PROTOCOLS),
    );
    let res = client
        .send(http::Request::from_parts(parts, Body::from(body)))
        .await?;
    let status = res.status();
    if status.is_client_error() || status.is_server_error() {
        let body = res.into_body().collect_bytes().await?;
        let text = String::from_utf8_lossy(&body);
        let parsed = serde_json::from_str::<Status>(&text).unwrap_or_else(|_| {
            Status::failure(text.trim(), "Failed to parse error data").with_code(status.as_u16())
        });
        return Err(kube::Error::Api(parsed.boxed()));
    }
    let refused = |what: String| {
        kube::Error::Api(
            Status::failure(&what, "UpgradeFailed")
                .with_code(502)
                .boxed(),
        )
    };
    if status != http::StatusCode::SWITCHING_PROTOCOLS {
        return Err(refused(format!(
            "the API server answered {status} instead of switching to a WebSocket"
        )));
    }
    let headers = res.headers();
    let accept = derive_accept_key(key.as_bytes());
    if headers
        .get(header::SEC_WEBSOCKET_ACCEPT)
        .map(|v| v.as_bytes())
        != Some(accept.as_bytes())
    {
        return Err(refused(
            "the API server's WebSocket accept key does not match".into(),
        ));
    }
    let v5 = match headers
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
    {
        Some("v5.channel.k8s.io") => true,
        Some("v4.channel.k8s.io") => false,
        other => {
            return Err(refused(format!(
                "the API server chose the subprotocol {other:?}, not v5 or v4.channel.k8s.io"
            )));
        }
    };
    let upgraded = hyper::upgrade::on(res)
        .await
        .map_err(|e| refused(format!("the WebSocket upgrade failed: {e}")))?;
    let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER);
    let stream =
        WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Client, Some(config)).await;
    Ok(Upstream { stream, v5 })
}
