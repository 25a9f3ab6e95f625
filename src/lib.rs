//! # llm-tower
//!
//! An LLM gateway built as a library of [tower] layers around one terminal service per
//! upstream. Clients speak the OpenAI API (`/v1/chat/completions`, `/v1/embeddings`,
//! `/v1/models`) or Anthropic's Messages API (`/v1/messages`); the gateway answers from OpenAI-compatible servers, Anthropic and Gemini
//! (translated), a LiteLLM proxy, its built-in mock or the application's own executor,
//! passing same-format streams through frame by frame.
//!
//! The LLM routes are this stack, outermost first; each layer is built from its own
//! settings type, usable without any YAML:
//!
//! | layer | from | does |
//! |---|---|---|
//! | [`auth::AuthLayer`] | [`auth::Keys`] | who may call (`Authorization: Bearer`, `x-api-key`) |
//! | [`parse::ParseLayer`] | a body limit | reads and parses the body once into an [`LlmRequest`] |
//! | [`metering::MeteringLayer`] | [`metering::MeteringSettings`] | usage, cost and latency of everything below |
//! | [`alias::AliasLayer`] | [`alias::Aliases`] | model names rewritten to targets |
//! | [`idempotency::IdempotencyLayer`] | [`idempotency::IdempotencySettings`] | `Idempotency-Key` replay and coalescing |
//! | [`cache::CacheLayer`] | [`cache::CacheSettings`] | exact and semantic response cache |
//! | [`combo::ComboLayer`] | [`combo::Combos`] | fallback and load balancing across targets |
//! | [`executor::Executors`] | [`executor::ExecutorsBuilder`] | a registry of executor services by provider name |
//!
//! Layers share what they learn as typed extensions ([`alias::ResolvedModel`],
//! [`executor::Target`], [`cache::CacheVerdict`], [`combo::ComboAttempts`], …); bodies that
//! watch a response use the one [`tap`].
//!
//! The whole gateway from its YAML config, as the `llm-tower` binary runs it:
//!
//! ```no_run
//! # async fn demo() -> Result<(), llm_tower::BoxError> {
//! let config = llm_tower::Config::from_file("examples/gateway.yaml")?;
//! let gateway = llm_tower::Gateway::from_config(&config)?
//!     .with_prometheus(llm_tower::install_prometheus());
//! llm_tower::run(&config, gateway).await?;
//! # Ok(()) }
//! ```
//!
//! Or built in code, around executors of your own ([`Gateway::builder`]), or any subset of
//! the layers around your own service (each module's docs show one; `examples/axum_layers.rs`
//! mounts parse + metering + combo in an axum router, `examples/axum_app.rs` the whole
//! gateway).

#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod admin;
pub mod alias;
pub mod auth;
mod body;
pub mod cache;
pub mod combo;
pub mod config;
mod error;
pub mod executor;
mod future;
#[cfg(feature = "test-util")]
#[doc(hidden)]
pub mod fuzz;
pub mod gateway;
pub mod glob;
pub mod idempotency;
pub mod metering;
pub mod parse;
mod protocol;
pub mod reload;
mod request;
pub mod responses;
pub mod server;
mod settings;
pub mod sse;
pub mod store;
pub mod tap;
pub mod telemetry;
pub mod tenancy;
mod tokens;
pub mod translate;
pub mod upstream;

use std::net::SocketAddr;

pub use body::{Body, BoxError};
pub use config::{Config, ConfigError};
pub use error::{ErrorKind, GatewayError};
pub use future::LayerFuture;
pub use gateway::{
    install_prometheus, prometheus_upkeep, Gateway, GatewayFuture, GatewayService, MakeRequestIds,
};
pub use protocol::Protocol;
pub use request::{Endpoint, LlmRequest};
pub use settings::SettingsError;

/// Serves `gateway` as `config` says (`listen`, `server`) until SIGINT or SIGTERM, then
/// lets in-flight requests finish and writes the usage of every request served.
pub async fn run(config: &Config, gateway: Gateway) -> Result<(), BoxError> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let addr = listener.local_addr()?;
    let shutdown = server::shutdown_signal();
    warn_if_open(config, addr);
    tracing::info!(%addr, providers = config.providers.len(), "llm-tower listening");
    server::serve(
        listener,
        gateway.clone().into_service(),
        &config.server,
        shutdown,
    )
    .await?;
    gateway.flush_usage().await;
    Ok(())
}

/// Serves the gateway of `reloader` as its config says, reloading it on `SIGHUP` and when
/// its files change ([`reload`]), until SIGINT or SIGTERM; then lets in-flight requests
/// finish and writes the usage of every request served.
pub async fn run_reloading(reloader: reload::Reloader) -> Result<(), BoxError> {
    let config = reloader.config();
    let watch = tokio::spawn(reloader.clone().watch());
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let addr = listener.local_addr()?;
    let shutdown = server::shutdown_signal();
    warn_if_open(&config, addr);
    tracing::info!(%addr, providers = config.providers.len(), config = %reloader.source().file().display(), "llm-tower listening");
    server::serve(
        listener,
        admin::service(reloader.clone()),
        &config.server,
        shutdown,
    )
    .await?;
    watch.abort();
    reloader.current().gateway().flush_usage().await;
    Ok(())
}

/// A gateway without keys is open to anyone who can reach it: say so when that is more
/// than this machine.
fn warn_if_open(config: &Config, addr: SocketAddr) {
    if !config.requires_auth() && !addr.ip().is_loopback() {
        tracing::warn!(
            %addr,
            "no master_key or keys configured: the gateway is open to every client that can reach {addr}"
        );
    }
}
