//! Traces over OTLP (HTTP/protobuf or gRPC) with the OpenTelemetry GenAI semantic
//! conventions.
//!
//! ```yaml
//! telemetry:
//!   otlp_endpoint: http://127.0.0.1:4318   # or OTEL_EXPORTER_OTLP_ENDPOINT; off without one
//!   protocol: http/protobuf                # or grpc (then http://127.0.0.1:4317)
//!   service_name: llm-tower
//!   sample_ratio: 0.1                      # new traces; a caller's traceparent decides its own
//!   headers: { x-api-key: os.environ/COLLECTOR_KEY }
//! ```
//!
//! Each LLM request is one `SERVER` span named `{operation} {model}` (`chat gpt-4o`), with
//! an `INTERNAL` child per layer that did work (`auth`, `rate limits`, `idempotency`,
//! `cache lookup`, each with its `llm_tower.outcome`: `request::Phases`) and a `CLIENT`
//! child per upstream call (`executor::UpstreamCalls`), made
//! by the metering writer from the request's finished usage record, off the request path
//! (`metering::span`):
//! `gen_ai.operation.name`, `gen_ai.provider.name`, `gen_ai.request.model`,
//! `gen_ai.response.model`, `gen_ai.usage.input_tokens` / `output_tokens`,
//! `gen_ai.request.temperature` / `max_tokens`, and the gateway's own `llm_tower.*`
//! (provider name, key alias, team, cache, attempts, cost, outcome), and
//! `gen_ai.response.finish_reasons`; the HTTP status, and an error status for failures.
//! Never a key; the prompt and the answer only with `capture_content: true`. Spans
//! queue for a task that exports them in batches; a full queue or a failed export drops
//! them, counted in `llm_tower_telemetry_spans_dropped_total`.
//!
//! W3C trace context: a request's `traceparent` continues the caller's trace (and its
//! sampling decision); the upstream request carries `traceparent` naming the request's own
//! span.
//!
//! Traces come with metering (`metering.enabled`, the default): the span is the record's.

mod context;
mod settings;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use http_body_util::{BodyExt, Full, Limited};
use opentelemetry::InstrumentationScope;
use opentelemetry_otlp::tonic_types::metadata::MetadataMap;
use opentelemetry_otlp::tonic_types::transport::ClientTlsConfig;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::trace::{SpanData, SpanExporter as _};
use tokio::sync::mpsc;

pub(crate) use self::context::new_span_id;
pub use self::context::TraceContext;
pub use self::settings::{OtlpProtocol, TelemetrySettings};
use crate::settings::SettingsError;
use crate::upstream::UpstreamClient;

/// How long one export may take.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the export task waits for more spans before sending a batch.
const BATCH_WINDOW: Duration = Duration::from_secs(1);

/// Starts each request's trace context and exports its span once its record is finished.
/// Cheap to clone.
#[derive(Clone)]
pub struct Tracer {
    inner: Arc<Inner>,
}

struct Inner {
    tx: mpsc::Sender<SpanData>,
    sample_ratio: f64,
    capture_content: bool,
    /// Provider name → its kind's `gen_ai.provider.name`.
    kinds: HashMap<String, &'static str>,
    scope: InstrumentationScope,
    dropped: metrics::Counter,
}

impl std::fmt::Debug for Tracer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracer").finish_non_exhaustive()
    }
}

/// The value of `gen_ai.provider.name` for a provider kind.
fn provider_name(kind: &str) -> &'static str {
    match kind {
        "openai" => "openai",
        "anthropic" => "anthropic",
        "gemini" => "gcp.gemini",
        "litellm" => "litellm",
        "mock" => "mock",
        _ => "other",
    }
}

impl Tracer {
    /// The tracer `settings` describe (`None` when no endpoint is set there or in the
    /// `OTEL_EXPORTER_OTLP_*` variables `env` reads), exporting through `client`; `kinds`
    /// gives each provider's kind. Starts its export task on the current tokio runtime.
    pub fn from_settings(
        settings: &TelemetrySettings,
        client: &UpstreamClient,
        kinds: impl IntoIterator<Item = (String, &'static str)>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, SettingsError> {
        settings.validate()?;
        let Some(url) = settings.traces_url(env) else {
            return Ok(None);
        };
        let service = settings
            .service_name
            .clone()
            .or_else(|| env("OTEL_SERVICE_NAME"))
            .unwrap_or_else(|| "llm-tower".to_owned());
        let headers = settings.headers.clone().into_iter();
        let exporter = match settings.protocol(env)? {
            OtlpProtocol::HttpProtobuf => opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_http_client(OtlpClient(client.clone()))
                .with_endpoint(url)
                .with_headers(headers.collect())
                .with_timeout(EXPORT_TIMEOUT)
                .build(),
            OtlpProtocol::Grpc => {
                let metadata = headers
                    .map(|(name, value)| {
                        let name = http::HeaderName::try_from(&name)
                            .map_err(|e| SettingsError::new("headers", format!("`{name}`: {e}")))?;
                        let value = HeaderValue::try_from(&value).map_err(|e| {
                            SettingsError::new("headers", format!("`{name}`'s value: {e}"))
                        })?;
                        Ok((name, value))
                    })
                    .collect::<Result<http::HeaderMap, SettingsError>>()?;
                let mut builder = opentelemetry_otlp::SpanExporter::builder()
                    .with_tonic()
                    .with_metadata(MetadataMap::from_headers(metadata))
                    .with_timeout(EXPORT_TIMEOUT);
                if url.starts_with("https://") {
                    builder = builder.with_tls_config(ClientTlsConfig::new().with_webpki_roots());
                }
                builder.with_endpoint(url).build()
            }
        };
        let mut exporter =
            exporter.map_err(|e| SettingsError::new("otlp_endpoint", e.to_string()))?;
        exporter.set_resource(
            &opentelemetry_sdk::Resource::builder()
                .with_service_name(service)
                .build(),
        );
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(SettingsError::new(
                "",
                "traces need a tokio runtime (their exporter is a task)",
            ));
        }
        let (tx, rx) = mpsc::channel(settings.queue);
        let dropped = metrics::counter!("llm_tower_telemetry_spans_dropped_total");
        tokio::spawn(export(rx, exporter, settings.batch, dropped.clone()));
        Ok(Some(Self {
            inner: Arc::new(Inner {
                tx,
                sample_ratio: settings.sample_ratio,
                capture_content: settings.capture_content,
                kinds: kinds
                    .into_iter()
                    .map(|(name, kind)| (name, provider_name(kind)))
                    .collect(),
                scope: InstrumentationScope::builder("llm-tower")
                    .with_version(env!("CARGO_PKG_VERSION"))
                    .build(),
                dropped,
            }),
        }))
    }

    /// The trace context of a request starting now, continuing its `traceparent`; the
    /// request's own `traceparent` then names its span, for the upstream.
    pub(crate) fn start<B>(&self, req: &mut Request<B>) -> TraceContext {
        let ratio = self.inner.sample_ratio;
        let ctx = TraceContext::start(
            req.headers().get("traceparent").map(HeaderValue::as_bytes),
            |trace_id| {
                // The trace id's last 8 bytes against the ratio, as TraceIdRatioBased does.
                let low = u64::from_be_bytes(trace_id[8..].try_into().expect("8 bytes"));
                ratio >= 1.0 || (low >> 1) < ((ratio * (1u64 << 63) as f64) as u64)
            },
        );
        if let Ok(value) = HeaderValue::try_from(ctx.traceparent()) {
            req.headers_mut().insert("traceparent", value);
        }
        ctx
    }

    /// Queues a span for export (dropped and counted when the queue is full).
    pub(crate) fn send(&self, span: SpanData) {
        if self.inner.tx.try_send(span).is_err() {
            self.inner.dropped.increment(1);
        }
    }

    /// Whether spans carry the prompt and the answer.
    pub(crate) fn captures_content(&self) -> bool {
        self.inner.capture_content
    }

    /// `gen_ai.provider.name` of provider `name`.
    pub(crate) fn provider_kind(&self, name: &str) -> &'static str {
        self.inner.kinds.get(name).copied().unwrap_or("other")
    }

    /// The instrumentation scope of the gateway's spans.
    pub(crate) fn scope(&self) -> &InstrumentationScope {
        &self.inner.scope
    }
}

/// Sends queued spans in batches until every tracer is gone.
async fn export(
    mut rx: mpsc::Receiver<SpanData>,
    exporter: opentelemetry_otlp::SpanExporter,
    batch: usize,
    dropped: metrics::Counter,
) {
    let mut spans = Vec::with_capacity(batch);
    let mut last_warning: Option<tokio::time::Instant> = None;
    while rx.recv_many(&mut spans, batch).await > 0 {
        let deadline = tokio::time::Instant::now() + BATCH_WINDOW;
        while spans.len() < batch {
            let room = batch - spans.len();
            match tokio::time::timeout_at(deadline, rx.recv_many(&mut spans, room)).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        let count = spans.len() as u64;
        if let Err(err) = exporter.export(std::mem::take(&mut spans)).await {
            dropped.increment(count);
            let now = tokio::time::Instant::now();
            if last_warning.is_none_or(|t| now - t > Duration::from_secs(10)) {
                last_warning = Some(now);
                tracing::warn!(error = %err, lost = count, "telemetry: spans could not be exported");
            }
        }
    }
}

/// The gateway's own upstream client as the OTLP exporter's HTTP client (no second HTTP
/// stack in the binary).
#[derive(Debug)]
struct OtlpClient(UpstreamClient);

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for OtlpClient {
    async fn send_bytes(
        &self,
        request: Request<Bytes>,
    ) -> Result<Response<Bytes>, opentelemetry_http::HttpError> {
        let (parts, body) = request.into_parts();
        let response = tokio::time::timeout(
            EXPORT_TIMEOUT,
            self.0.request(Request::from_parts(parts, Full::new(body))),
        )
        .await
        .map_err(|_| "the collector did not answer in time")??;
        let (parts, body) = response.into_parts();
        let body = tokio::time::timeout(EXPORT_TIMEOUT, Limited::new(body, 1 << 20).collect())
            .await
            .map_err(|_| "the collector's answer did not end in time")??
            .to_bytes();
        Ok(Response::from_parts(parts, body))
    }
}
