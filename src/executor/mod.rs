//! Executors: the terminal services that answer a request from an upstream.
//!
//! [`Executors`] holds one [`Executor`] per configured provider and sends each request to
//! the one its target names: the [`Target`] in the request's extensions (set by a layer
//! such as an alias or combo), or else the request's own `provider/model`. The upstream
//! sees the model without the provider prefix.
//!
//! ```
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let config = llm_tower::Config::from_yaml("providers: { mock: { kind: mock } }")?;
//! let executors = llm_tower::executor::Executors::from_config(&config)?;
//! # let _ = executors; Ok(()) }
//! ```

pub(crate) mod anthropic;
mod client;
pub(crate) mod gemini;
mod headers;
pub(crate) mod litellm;
pub(crate) mod mock;
pub(crate) mod openai;
pub(crate) mod stream;
pub mod translate;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::HeaderValue;
use http::{Request, Response};
use tokio::time::Instant;
use tower::Service;

pub use self::anthropic::AnthropicExecutor;
pub use self::client::UpstreamClient;
pub use self::gemini::GeminiExecutor;
pub use self::litellm::ResponseCost;
#[cfg(feature = "test-util")]
pub use self::mock::MockUpstream;
pub use self::mock::{MockBody, MockExecutor};
use self::openai::Flavor;
pub use self::openai::OpenAiExecutor;
pub use self::stream::UpstreamBody;
use crate::body::Body;
use crate::config::{Config, ConfigError, ProviderConfig};
use crate::error::GatewayError;
use crate::request::LlmRequest;

/// Where a request goes: a provider and the model name the upstream gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The provider's name in the config.
    pub provider: Arc<str>,
    /// The model as the upstream knows it.
    pub model: Arc<str>,
}

/// One upstream executor.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Executor {
    /// An OpenAI-compatible server, or a LiteLLM proxy.
    OpenAi(OpenAiExecutor),
    /// The built-in mock.
    Mock(MockExecutor),
    /// The Anthropic Messages API, translated.
    Anthropic(AnthropicExecutor),
    /// The Gemini API, translated.
    Gemini(GeminiExecutor),
}

impl Executor {
    /// Answers `req` with `model` as the upstream model.
    pub async fn execute(
        &self,
        req: Request<Bytes>,
        llm: &LlmRequest,
        model: &str,
    ) -> Result<Response<Body>, GatewayError> {
        match self {
            Self::OpenAi(e) => e.execute(req, llm, model).await,
            Self::Mock(e) => e.execute(req, llm, model).await,
            Self::Anthropic(e) => e.execute(req, llm, model).await,
            Self::Gemini(e) => e.execute(req, llm, model).await,
        }
    }

    /// Whether the upstream is ready to serve.
    pub async fn ready(&self) -> Result<(), GatewayError> {
        match self {
            Self::OpenAi(e) => e.ready().await,
            Self::Mock(_) | Self::Anthropic(_) | Self::Gemini(_) => Ok(()),
        }
    }
}

/// The terminal service: every configured provider's executor, chosen per request.
#[derive(Debug, Clone)]
pub struct Executors {
    providers: Arc<HashMap<Arc<str>, Provider>>,
}

#[derive(Debug)]
struct Provider {
    executor: Executor,
    metrics: UpstreamMetrics,
}

/// Model names come from clients: per provider, this many get their own Prometheus series;
/// the rest are counted as `other`.
const MAX_MODEL_SERIES: usize = 200;

/// A provider's Prometheus series by model, registered once each, so that recording a
/// request costs a map lookup rather than building labels.
#[derive(Debug)]
struct UpstreamMetrics {
    provider: Arc<str>,
    by_model: std::sync::Mutex<HashMap<Arc<str>, ModelSeries>>,
}

#[derive(Debug, Clone)]
struct ModelSeries {
    label: Arc<str>,
    requests: metrics::Counter,
    seconds: metrics::Histogram,
}

impl UpstreamMetrics {
    fn new(provider: &str) -> Self {
        Self {
            provider: provider.into(),
            by_model: std::sync::Mutex::new(HashMap::new()),
        }
    }

    fn series(&self, model: &Arc<str>) -> ModelSeries {
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

/// The future of [`Executors`].
pub type ExecutorFuture =
    Pin<Box<dyn Future<Output = Result<Response<Body>, GatewayError>> + Send>>;

impl Executors {
    /// One executor per provider, sharing one upstream client.
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        let client = UpstreamClient::new(&config.upstream)?;
        let mut providers = HashMap::new();
        for (name, provider) in &config.providers {
            let executor = match provider {
                ProviderConfig::Openai(http) => Executor::OpenAi(OpenAiExecutor::new(
                    name,
                    Flavor::OpenAi,
                    http,
                    &config.upstream,
                    client.clone(),
                )?),
                ProviderConfig::Litellm(http) => Executor::OpenAi(OpenAiExecutor::new(
                    name,
                    Flavor::LiteLlm,
                    http,
                    &config.upstream,
                    client.clone(),
                )?),
                ProviderConfig::Mock(_) => Executor::Mock(MockExecutor::new()),
                ProviderConfig::Anthropic(c) => Executor::Anthropic(AnthropicExecutor::new(
                    name,
                    c,
                    &config.upstream,
                    client.clone(),
                )?),
                ProviderConfig::Gemini(c) => Executor::Gemini(GeminiExecutor::new(
                    name,
                    c,
                    &config.upstream,
                    client.clone(),
                )?),
            };
            providers.insert(
                Arc::from(name.as_str()),
                Provider {
                    executor,
                    metrics: UpstreamMetrics::new(name),
                },
            );
        }
        Ok(Self {
            providers: Arc::new(providers),
        })
    }

    /// The executor of a provider.
    pub fn get(&self, provider: &str) -> Option<&Executor> {
        self.providers.get(provider).map(|p| &p.executor)
    }

    /// Every provider's executor, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Executor)> {
        self.providers
            .iter()
            .map(|(name, p)| (&**name, &p.executor))
    }
}

impl Service<Request<Bytes>> for Executors {
    type Response = Response<Body>;
    type Error = GatewayError;
    type Future = ExecutorFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), GatewayError>> {
        // The shared client queues internally; executors are always ready.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<Bytes>) -> ExecutorFuture {
        let providers = self.providers.clone();
        Box::pin(async move {
            let llm = req.extensions_mut().remove::<LlmRequest>().ok_or_else(|| {
                GatewayError::internal("request reached the executors without being parsed")
            })?;
            let (provider, model, executor) = match req.extensions().get::<Target>() {
                Some(target) => {
                    let executor = providers
                        .get(&target.provider)
                        .ok_or_else(|| GatewayError::model_not_found(llm.model()))?;
                    (target.provider.clone(), target.model.clone(), executor)
                }
                None => {
                    let (provider, model) = llm
                        .model()
                        .split_once('/')
                        .ok_or_else(|| GatewayError::model_not_found(llm.model()))?;
                    let (name, executor) = providers
                        .get_key_value(provider)
                        .filter(|_| !model.is_empty())
                        .ok_or_else(|| GatewayError::model_not_found(llm.model()))?;
                    (name.clone(), Arc::from(model), executor)
                }
            };
            let started = Instant::now();
            let result = executor.executor.execute(req, &llm, &model).await;
            let status = match &result {
                Ok(response) => response.status(),
                Err(err) => err.status(),
            };
            let series = executor.metrics.series(&model);
            series.requests.increment(1);
            series.seconds.record(started.elapsed().as_secs_f64());
            if !status.is_success() {
                let labels = [
                    ("provider", provider.to_string()),
                    ("model", series.label.to_string()),
                    ("status", status.as_str().to_owned()),
                ];
                metrics::counter!("llm_tower_upstream_errors_total", &labels).increment(1);
            }
            let mut response = result?;
            let headers = response.headers_mut();
            if let Ok(value) = HeaderValue::try_from(&*provider) {
                headers.insert("x-gateway-provider", value);
            }
            if let Ok(value) = HeaderValue::try_from(&*model) {
                headers.insert("x-gateway-model", value);
            }
            response.extensions_mut().insert(Target { provider, model });
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_chosen_model_names_cannot_grow_the_series_without_bound() {
        let metrics = UpstreamMetrics::new("p");
        let labels: Vec<Arc<str>> = (0..MAX_MODEL_SERIES + 50)
            .map(|i| metrics.series(&Arc::from(format!("model-{i}"))).label)
            .collect();
        assert_eq!(&*labels[0], "model-0");
        assert_eq!(
            &*labels[MAX_MODEL_SERIES - 1],
            format!("model-{}", MAX_MODEL_SERIES - 1)
        );
        assert!(labels[MAX_MODEL_SERIES..].iter().all(|l| &**l == "other"));
        assert_eq!(
            &*metrics.series(&Arc::from("model-3")).label,
            "model-3",
            "known ones keep theirs"
        );
    }
}
