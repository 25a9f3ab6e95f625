//! Upstream metrics as a layer around each executor: requests, time to response headers
//! and errors, per provider and model.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use pin_project_lite::pin_project;
use tokio::time::Instant;
use tower::{Layer, Service};

use super::health::ProviderHealth;
use super::Target;
use crate::body::Body;
use crate::error::GatewayError;

/// Model names come from clients: per provider, this many get their own Prometheus series;
/// the rest are counted as `other`.
const MAX_MODEL_SERIES: usize = 200;

/// Layer that applies the [`UpstreamMetrics`] middleware: `llm_tower_upstream_requests_total`,
/// `llm_tower_upstream_response_seconds` and `llm_tower_upstream_errors_total` for one
/// provider, by the model of the request's [`Target`].
#[derive(Debug, Clone)]
pub struct UpstreamMetricsLayer {
    series: Arc<Series>,
}

impl UpstreamMetricsLayer {
    /// The metrics of provider `provider`.
    pub fn new(provider: &str) -> Self {
        Self::with_health(provider, Arc::default())
    }

    /// The metrics of provider `provider`, its recent health recorded into `health`.
    pub fn with_health(provider: &str, health: Arc<ProviderHealth>) -> Self {
        Self {
            series: Arc::new(Series {
                provider: provider.into(),
                by_model: Mutex::new(HashMap::new()),
                health,
            }),
        }
    }
}

impl<S> Layer<S> for UpstreamMetricsLayer {
    type Service = UpstreamMetrics<S>;

    fn layer(&self, inner: S) -> UpstreamMetrics<S> {
        UpstreamMetrics {
            inner,
            series: self.series.clone(),
        }
    }
}

/// Records one provider's upstream metrics around its executor.
#[derive(Debug, Clone)]
pub struct UpstreamMetrics<S> {
    inner: S,
    series: Arc<Series>,
}

/// A provider's Prometheus series by model, registered once each, so that recording a
/// request costs a map lookup rather than building labels.
#[derive(Debug)]
struct Series {
    provider: Arc<str>,
    by_model: Mutex<HashMap<Arc<str>, ModelSeries>>,
    health: Arc<ProviderHealth>,
}

#[derive(Debug, Clone)]
struct ModelSeries {
    label: Arc<str>,
    requests: metrics::Counter,
    seconds: metrics::Histogram,
}

impl Series {
    fn of(&self, model: &Arc<str>) -> ModelSeries {
        let mut by_model = self.by_model.lock().expect("not poisoned");
        if let Some(series) = by_model.get(model) {
            return series.clone();
        }
        let label: Arc<str> = if by_model.len() < MAX_MODEL_SERIES {
            model.clone()
        } else {
            Arc::from("other")
        };
        let labels = [
            ("provider", self.provider.to_string()),
            ("model", label.to_string()),
        ];
        let series = ModelSeries {
            requests: metrics::counter!("llm_tower_upstream_requests_total", &labels),
            seconds: metrics::histogram!("llm_tower_upstream_response_seconds", &labels),
            label,
        };
        if by_model.len() < MAX_MODEL_SERIES {
            by_model.insert(model.clone(), series.clone());
        }
        series
    }
}

impl<S> Service<Request<Bytes>> for UpstreamMetrics<S>
where
    S: Service<Request<Bytes>, Response = Response<Body>, Error = GatewayError>,
{
    type Response = Response<Body>;
    type Error = GatewayError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), GatewayError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Bytes>) -> Self::Future {
        let model = req
            .extensions()
            .get::<Target>()
            .map_or_else(|| Arc::from("unknown"), |t| t.model.clone());
        ResponseFuture {
            inner: self.inner.call(req),
            series: self.series.clone(),
            model,
            started: Instant::now(),
        }
    }
}

pin_project! {
    /// The future of [`UpstreamMetrics`].
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        series: Arc<Series>,
        model: Arc<str>,
        started: Instant,
    }
}

impl<F> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<Body>, GatewayError>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let result = std::task::ready!(this.inner.poll(cx));
        let (status, message) = match &result {
            Ok(response) => (response.status(), None),
            Err(err) => (err.status(), Some(err.message())),
        };
        let series = this.series.of(this.model);
        let elapsed = this.started.elapsed();
        series.requests.increment(1);
        series.seconds.record(elapsed.as_secs_f64());
        this.series.health.record(status, elapsed, message);
        if !status.is_success() {
            let labels = [
                ("provider", this.series.provider.to_string()),
                ("model", series.label.to_string()),
                ("status", status.as_str().to_owned()),
            ];
            metrics::counter!("llm_tower_upstream_errors_total", &labels).increment(1);
        }
        Poll::Ready(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_chosen_model_names_cannot_grow_the_series_without_bound() {
        let series = Series {
            provider: "p".into(),
            by_model: Mutex::new(HashMap::new()),
            health: Arc::default(),
        };
        let labels: Vec<Arc<str>> = (0..MAX_MODEL_SERIES + 50)
            .map(|i| series.of(&Arc::from(format!("model-{i}"))).label)
            .collect();
        assert_eq!(&*labels[0], "model-0");
        assert_eq!(
            &*labels[MAX_MODEL_SERIES - 1],
            format!("model-{}", MAX_MODEL_SERIES - 1)
        );
        assert!(labels[MAX_MODEL_SERIES..].iter().all(|l| &**l == "other"));
        assert_eq!(
            &*series.of(&Arc::from("model-3")).label,
            "model-3",
            "known ones keep theirs"
        );
    }
}
