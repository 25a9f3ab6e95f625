//! Executors: the terminal services that answer a request from an upstream, in a
//! registry by provider name.
//!
//! Each executor is a `tower::Service<Request<Bytes>>` that reads the parsed
//! [`LlmRequest`](crate::LlmRequest) and the [`Target`] from the request's extensions (see
//! [`take_request`]). The built-in kinds are constructors from their own settings:
//! [`OpenAiExecutor`] (any OpenAI-compatible server, and a LiteLLM proxy),
//! [`AnthropicExecutor`], [`GeminiExecutor`] and [`MockExecutor`]. [`Executors`] sends each
//! request to the one its target names; an application registers its own service the
//! same way, and aliases and combos can then name it:
//!
//! ```
//! use llm_tower::executor::{Executors, MockExecutor};
//!
//! let executors = Executors::builder()
//!     .service("mock", MockExecutor::new())
//!     .service("mine", tower::service_fn(|_req: http::Request<bytes::Bytes>| async {
//!         Ok::<_, llm_tower::GatewayError>(http::Response::new(llm_tower::Body::from("{}")))
//!     }))
//!     .build()
//!     .unwrap();
//! assert!(executors.contains("mine"));
//! ```
//!
//! A new provider kind is a file here with its settings, its `execute` and its
//! [`ProviderSettings`], plus one variant in the YAML config's `ProviderConfig`.

mod anthropic;
mod gemini;
mod health;
mod inbound;
mod litellm;
mod metrics;
mod mock;
mod openai_compatible;
mod params;
mod probe;
mod provider;
mod registry;
mod translated;

use std::sync::Arc;

pub use self::anthropic::{AnthropicExecutor, AnthropicSettings};
pub use self::gemini::{GeminiExecutor, GeminiSettings};
pub use self::health::{HealthReport, LastError, ProviderHealth};
pub use self::litellm::ResponseCost;
pub use self::metrics::{UpstreamMetrics, UpstreamMetricsLayer};
#[cfg(feature = "test-util")]
pub use self::mock::MockUpstream;
pub use self::mock::{MockBody, MockExecutor, MockSettings};
pub use self::openai_compatible::{ApiMode, Flavor, OpenAiExecutor, OpenAiSettings};
pub use self::params::DefaultParams;
pub use self::probe::ModelListing;
pub use self::provider::{LiteLlmSettings, ProviderSettings};
pub(crate) use self::registry::executor_service;
pub use self::registry::{
    take_request, BoxExecutor, ExecutorFuture, Executors, ExecutorsBuilder, ReadinessCheck,
};

/// The number of upstream attempts behind a combo's answer, in its response extensions
/// (and the `x-gateway-attempts` header). Defined here, beside [`Target`], so that the
/// layers that read it (metering) need not depend on the combo layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComboAttempts {
    /// The combo's name.
    pub combo: Arc<str>,
    /// Attempts made, the answering one included.
    pub attempts: u32,
}

/// The upstream calls a request made, when a layer above (metering, for its trace) put an
/// empty log in the request's extensions: the registry adds one entry per call it routes
/// (each combo attempt). Without the extension nothing is recorded.
#[derive(Debug, Clone, Default)]
pub struct UpstreamCalls(pub Arc<std::sync::Mutex<Vec<UpstreamCall>>>);

impl UpstreamCalls {
    /// Logs a call.
    pub fn push(&self, call: UpstreamCall) {
        self.0.lock().expect("not poisoned").push(call);
    }

    /// The calls logged so far, in the order they ended.
    pub fn take(&self) -> Vec<UpstreamCall> {
        std::mem::take(&mut *self.0.lock().expect("not poisoned"))
    }
}

/// One upstream call.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamCall {
    /// Where it went.
    pub target: Target,
    /// When it started.
    pub started: std::time::SystemTime,
    /// Until the response headers (or the failure).
    pub elapsed: std::time::Duration,
    /// The upstream's status, or the gateway's for a failure.
    pub status: u16,
    /// The error's type, for a failure.
    pub error: Option<String>,
}

/// Where a request goes: a provider and the model name the upstream gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The provider's name in the registry.
    pub provider: Arc<str>,
    /// The model as the upstream knows it.
    pub model: Arc<str>,
}
