//! The whole gateway as one service: the routes, the LLM stack behind them, and the admin
//! endpoints beside it.
//!
//! ```
//! # fn demo() -> Result<(), llm_tower::ConfigError> {
//! let config = llm_tower::Config::from_yaml("providers: { mock: { kind: mock } }")?;
//! let gateway = llm_tower::Gateway::from_config(&config)?.into_service();
//! # let _ = gateway; Ok(()) }
//! ```
//!
//! Routes: `POST /v1/chat/completions` and `POST /v1/embeddings` go through the LLM stack
//! (auth → parse → metering → alias → idempotency → cache → combo → executors);
//! `GET /v1/models`, `GET /v1/usage`, `GET /health`, `GET /health/readiness` and
//! `GET /metrics` are answered beside it ([`admin`](self) endpoints). Anything else is a
//! 404 (405 for a known path with another method) in OpenAI's error shape.
//!
//! Building a gateway has no side effect: it installs no `metrics` recorder and spawns no
//! task. `GET /metrics` renders the [`PrometheusHandle`](metrics_exporter_prometheus::PrometheusHandle)
//! handed to [`Gateway::with_prometheus`] (the binary installs one with
//! [`install_prometheus`]); metrics always go to whatever recorder the process has.

mod admin;
mod build;
mod metrics;
mod request_id;
mod router;

pub(crate) use self::admin::json_response;
pub use self::admin::PanicResponse;
pub use self::build::{served, Gateway, GatewayBuilder, GatewayService, Served};
pub use self::metrics::{install_prometheus, prometheus_upkeep, MetricsAuth, MetricsSettings};
pub use self::request_id::{MakeRequestIds, RequestSpan};
pub(crate) use self::router::read_body;
pub use self::router::GatewayFuture;
