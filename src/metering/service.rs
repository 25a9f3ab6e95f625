//! The metering middleware.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Request, Response};
use pin_project_lite::pin_project;
use tokio::time::Instant;
use tower::{Layer, Service};

use super::body::{StripUsage, UsageTap};
use super::postgres::PostgresSink;
use super::price::PriceTable;
use super::record::{failure_outcome, Unfinished, UsageRecord};
use super::settings::{MeteringSettings, SinkKind};
use super::sink::UsageSink;
use super::span::TraceLog;
use super::sqlite::SqliteSink;
use super::writer::Meter;
use super::UsageHook;
use crate::alias::ResolvedModel;
use crate::auth::{KeyId, Team};
use crate::body::Body;
use crate::cache::CacheVerdict;
use crate::error::GatewayError;
use crate::executor::{ComboAttempts, ResponseCost, Target};
use crate::idempotency::IdempotentReplay;
use crate::request::{LlmRequest, X_REQUEST_ID};
use crate::server::Shutdown;
use crate::settings::SettingsError;
use crate::tap::Tap;
use crate::telemetry::Tracer;

/// Layer that applies the [`Metering`] middleware.
#[derive(Clone, Debug)]
pub struct MeteringLayer {
    meter: Option<Meter>,
}

impl MeteringLayer {
    /// Meters into `meter`.
    pub fn new(meter: Meter) -> Self {
        Self { meter: Some(meter) }
    }

    /// A layer that meters nothing (and adds nothing to a request).
    pub fn disabled() -> Self {
        Self { meter: None }
    }

    /// The layer `metering` describes: its ledger opened (schema migrated) and its writer
    /// started as a task on the current runtime; without `enabled`, a layer that meters
    /// nothing. Errors name the field (`sqlite_path`, `postgres_url`, `prices`).
    pub fn from_settings(metering: &MeteringSettings) -> Result<Self, SettingsError> {
        Self::traced(metering, None)
    }

    /// [`MeteringLayer::from_settings`], each request's span exported by `tracer` (which
    /// also starts the request's trace context).
    pub fn traced(
        metering: &MeteringSettings,
        tracer: Option<Tracer>,
    ) -> Result<Self, SettingsError> {
        metering.validate()?;
        if !metering.enabled {
            return Ok(Self { meter: None });
        }
        let sink: Option<Arc<dyn UsageSink>> = match metering.sink {
            SinkKind::None => None,
            SinkKind::Sqlite => Some(Arc::new(
                SqliteSink::open(&metering.sqlite_path)
                    .map_err(|e| SettingsError::new("sqlite_path", e.to_string()))?,
            )),
            SinkKind::Postgres => Some(Arc::new(
                PostgresSink::new(metering.postgres_url.as_deref().unwrap_or_default())
                    .map_err(|e| SettingsError::new("postgres_url", e.to_string()))?,
            )),
        };
        let prices = PriceTable::load(metering.prices.as_deref().map(Path::new))?
            .with(&metering.model_prices);
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(SettingsError::new(
                "",
                "the gateway must be built inside a tokio runtime (its usage writer is a task)",
            ));
        }
        Ok(Self::new(Meter::spawn(
            sink,
            prices,
            metering.queue,
            metering.batch,
            tracer,
        )))
    }

    /// The writer's handle (to flush on shutdown, or to query the ledger).
    pub fn meter(&self) -> Option<&Meter> {
        self.meter.as_ref()
    }
}

impl<S> Layer<S> for MeteringLayer {
    type Service = Metering<S>;
    fn layer(&self, inner: S) -> Metering<S> {
        Metering {
            inner,
            meter: self.meter.clone(),
        }
    }
}

/// Records the usage, cost and latency of every LLM request, including cache hits,
/// replays and failures, when its response body ends (or the client leaves).
#[derive(Clone, Debug)]
pub struct Metering<S> {
    inner: S,
    meter: Option<Meter>,
}

pin_project! {
    /// The future of [`Metering`].
    pub struct MeteringFuture<F> {
        #[pin]
        inner: F,
        pending: Option<Box<Pending>>,
    }

    impl<F> PinnedDrop for MeteringFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            // Dropped before the answer: the client left (or the server cut it at
            // shutdown) while the request was in flight. It is recorded all the same.
            if let Some(pending) = this.project().pending.take() {
                let Pending { meter, started, mut record, request, shutdown, log, .. } = *pending;
                record.status = 499;
                record.latency_ms = started.elapsed().as_secs_f64() * 1e3;
                record.outcome = if shutdown.as_ref().is_some_and(Shutdown::is_cut) {
                    record.error_type = Some("server_shutting_down".to_owned());
                    "error"
                } else {
                    "cancelled"
                };
                meter.submit(Box::new(Unfinished {
                    record,
                    request,
                    log,
                    ..Unfinished::default()
                }));
            }
        }
    }
}

/// What is known when the request starts.
pub struct Pending {
    meter: Meter,
    started: Instant,
    record: UsageRecord,
    request: Bytes,
    strip: bool,
    shutdown: Option<Shutdown>,
    log: Option<TraceLog>,
}

impl<S> Service<Request<Bytes>> for Metering<S>
where
    S: Service<Request<Bytes>, Response = Response<Body>, Error = GatewayError>,
{
    type Response = Response<Body>;
    type Error = GatewayError;
    type Future = MeteringFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), GatewayError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Bytes>) -> Self::Future {
        let pending = match (&self.meter, req.extensions().get::<LlmRequest>()) {
            (Some(meter), Some(llm)) => {
                let mut record = UsageRecord {
                    request_id: req
                        .headers()
                        .get(X_REQUEST_ID)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned(),
                    started_at_ms: SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map_or(0, |d| d.as_millis() as i64),
                    key: req
                        .extensions()
                        .get::<KeyId>()
                        .map_or("anonymous", |k| &k.0)
                        .to_owned(),
                    team: req.extensions().get::<Team>().map(|t| t.0.to_string()),
                    requested_model: llm.model().to_owned(),
                    endpoint: llm.endpoint().as_str().to_owned(),
                    stream: llm.stream(),
                    attempts: 1,
                    outcome: "ok",
                    usage_source: "none",
                    ..UsageRecord::default()
                };
                record.trace = meter.tracer().map(|tracer| tracer.start(&mut req));
                // With a trace, the layers below log their work and the registry each
                // upstream call, for its child spans; auth began the log of phases.
                let log = record.trace.map(|_| TraceLog::start(&mut req));
                // Ask for the usage chunk the client did not ask for; it is removed again
                // on the way back.
                let mut body = std::mem::take(req.body_mut());
                let strip = req
                    .extensions_mut()
                    .get_mut::<LlmRequest>()
                    .is_some_and(|llm| llm.request_usage(&mut body));
                *req.body_mut() = body;
                Some(Box::new(Pending {
                    meter: meter.clone(),
                    started: Instant::now(),
                    record,
                    request: req.body().clone(),
                    strip,
                    shutdown: req.extensions().get::<Shutdown>().cloned(),
                    log,
                }))
            }
            _ => None,
        };
        MeteringFuture {
            inner: self.inner.call(req),
            pending,
        }
    }
}

impl<F> Future for MeteringFuture<F>
where
    F: Future<Output = Result<Response<Body>, GatewayError>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let output = std::task::ready!(this.inner.poll(cx));
        let Some(pending) = this.pending.take() else {
            return Poll::Ready(output);
        };
        let Pending {
            meter,
            started,
            mut record,
            request,
            strip,
            shutdown,
            log,
        } = *pending;
        match output {
            Ok(response) => {
                let (mut parts, body) = response.into_parts();
                record.status = parts.status.as_u16();
                if let Some(target) = parts.extensions.get::<Target>() {
                    record.provider = Some(target.provider.to_string());
                    record.upstream_model = Some(target.model.to_string());
                }
                if let Some(resolved) = parts.extensions.get::<ResolvedModel>() {
                    record.route = Some(resolved.resolved.to_string());
                }
                if let Some(combo) = parts.extensions.get::<ComboAttempts>() {
                    record.route = Some(combo.combo.to_string());
                    record.attempts = combo.attempts;
                }
                record.replay = parts.extensions.get::<IdempotentReplay>().is_some();
                let verdict = parts.extensions.get::<CacheVerdict>().copied();
                record.cache = verdict.map(|v| v.as_str().to_owned());
                if record.replay || verdict.is_some_and(CacheVerdict::is_hit) {
                    record.attempts = 0;
                }
                let sse = crate::sse::is_event_stream(&parts.headers);
                let unfinished = Box::new(Unfinished {
                    record,
                    request,
                    sse,
                    reported_cost: parts.extensions.get::<ResponseCost>().map(|c| c.0),
                    hook: parts.extensions.remove::<UsageHook>(),
                    log,
                    ..Unfinished::default()
                });
                let tap = Tap::new(
                    body,
                    UsageTap {
                        unfinished,
                        meter,
                        started,
                        shutdown,
                    },
                )
                .error_events(sse);
                let body = if strip && sse {
                    Body::new(StripUsage::new(tap))
                } else {
                    Body::new(tap)
                };
                Poll::Ready(Ok(Response::from_parts(parts, body)))
            }
            Err(err) => {
                record.status = err.status().as_u16();
                if let Some((provider, model)) = err.upstream() {
                    record.provider = Some(provider.to_owned());
                    record.upstream_model = Some(model.to_owned());
                }
                record.outcome = failure_outcome(err.kind(), record.status);
                record.error_type = Some(err.error_type().to_owned());
                record.latency_ms = started.elapsed().as_secs_f64() * 1e3;
                meter.submit(Box::new(Unfinished {
                    record,
                    log,
                    ..Unfinished::default()
                }));
                Poll::Ready(Err(err))
            }
        }
    }
}
