//! OpenTelemetry trace export (cargo feature `otel`, and KUBEGATE_OTEL_ENDPOINT at run time): each
//! request's span (request id, method, path; the log events in it) goes to an OTLP/HTTP collector
//! as protobuf, batched. It is sent with the reqwest client the build already has, on the service's
//! tokio runtime, so the feature adds no second HTTP or TLS stack.

use std::future::Future;
use std::pin::Pin;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::SdkTracerProvider;

/// Sends the exporter's requests with reqwest, on the runtime that was current at start-up (the
/// SDK's batch processor runs on a thread of its own, without a tokio reactor).
#[derive(Debug)]
struct ReqwestOnRuntime {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

impl HttpClient for ReqwestOnRuntime {
    fn send_bytes<'life0, 'async_trait>(
        &'life0 self,
        request: Request<Bytes>,
    ) -> Pin<Box<dyn Future<Output = Result<Response<Bytes>, HttpError>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        let client = self.client.clone();
        let runtime = self.runtime.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let mut req = client
                .request(parts.method, parts.uri.to_string())
                .body(body);
            for (name, value) in &parts.headers {
                req = req.header(name, value);
            }
            let sent = runtime
                .spawn(async move {
                    let res = req.send().await?;
                    let status = res.status();
                    let headers = res.headers().clone();
                    let body = res.bytes().await?;
                    Ok::<_, reqwest::Error>((status, headers, body))
                })
                .await?;
            let (status, headers, body) = sent?;
            let mut response = Response::builder().status(status).body(body)?;
            *response.headers_mut() = headers;
            Ok(response)
        })
    }
}

/// The tracer provider exporting to `endpoint` (an OTLP/HTTP base URL such as
/// `http://otel-collector:4318`; spans go to `/v1/traces` under it).
pub fn provider(endpoint: &str) -> anyhow::Result<SdkTracerProvider> {
    let runtime = tokio::runtime::Handle::try_current()
        .map_err(|_| anyhow::anyhow!("KUBEGATE_OTEL_ENDPOINT: no tokio runtime at start-up"))?;
    let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(ReqwestOnRuntime {
            client: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(10))
                .build()?,
            runtime,
        })
        .with_endpoint(url)
        .build()
        .map_err(|e| anyhow::anyhow!("KUBEGATE_OTEL_ENDPOINT: {e}"))?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name("kubegate")
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

/// The tracing layer that turns spans into OpenTelemetry spans.
pub fn layer(
    provider: &SdkTracerProvider,
) -> Box<dyn tracing_subscriber::Layer<tracing_subscriber::Registry> + Send + Sync> {
    use tracing_subscriber::Layer;
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("kubegate"))
        .boxed()
}
