//! Structured logging. JSON lines by default (each carrying the request's span fields, including
//! `request_id`), human-readable with `--log-format pretty`. Tokens and secrets are never logged:
//! nothing here records headers or bodies. With the `otel` feature and KUBEGATE_OTEL_ENDPOINT,
//! the same spans are exported as OpenTelemetry traces (`src/otel.rs`).

use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::LogFormat;

/// Keeps trace export running; `shutdown` (or, off a runtime, dropping it) flushes what is
/// batched.
#[derive(Default)]
pub struct Telemetry {
    #[cfg(feature = "otel")]
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Telemetry {
    /// Flush what is batched and stop exporting. The flush blocks until the export is sent, and
    /// the export runs on the runtime that was current at start-up (one thread in `main`): it
    /// blocks on another thread, so that this runtime goes on running the export.
    pub async fn shutdown(self) {
        #[cfg(feature = "otel")]
        {
            let mut this = self;
            if let Some(p) = this.provider.take() {
                let _ = tokio::task::spawn_blocking(move || flush(p)).await;
            }
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        #[cfg(feature = "otel")]
        if let Some(p) = self.provider.take() {
            flush(p);
        }
    }
}

#[cfg(feature = "otel")]
fn flush(provider: opentelemetry_sdk::trace::SdkTracerProvider) {
    if let Err(e) = provider.shutdown() {
        eprintln!("kubegate: flushing traces failed: {e}");
    }
}

/// Install the global subscriber. Call once, from `main` (inside the tokio runtime).
pub fn init(
    format: LogFormat,
    filter: &str,
    otel_endpoint: Option<&str>,
) -> anyhow::Result<Telemetry> {
    let filter = EnvFilter::try_new(filter)
        .map_err(|e| anyhow::anyhow!("invalid KUBEGATE_LOG filter {filter:?}: {e}"))?;
    let fmt = match format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .boxed(),
        LogFormat::Pretty => tracing_subscriber::fmt::layer().boxed(),
    };
    let mut telemetry = Telemetry::default();
    #[cfg(feature = "otel")]
    let traces = match otel_endpoint {
        Some(endpoint) => {
            let provider = crate::otel::provider(endpoint)?;
            let layer = crate::otel::layer(&provider);
            telemetry.provider = Some(provider);
            Some(layer)
        }
        None => None,
    };
    #[cfg(not(feature = "otel"))]
    let traces: Option<Box<dyn Layer<tracing_subscriber::Registry> + Send + Sync>> =
        match otel_endpoint {
            Some(_) => anyhow::bail!(
                "KUBEGATE_OTEL_ENDPOINT is set, but this kubegate was built without the `otel` feature (cargo build --features otel)"
            ),
            None => None,
        };
    tracing_subscriber::registry()
        .with(traces)
        .with(filter)
        .with(fmt)
        .try_init()
        .map_err(|e| anyhow::anyhow!("installing the log subscriber: {e}"))?;
    let _ = &mut telemetry;
    Ok(telemetry)
}
