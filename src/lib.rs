//! # llm-tower
//!
//! An LLM gateway built as a library of [tower] layers around one terminal service per
//! upstream. Clients speak the OpenAI API (`/v1/chat/completions`, `/v1/embeddings`,
//! `/v1/models`); the gateway answers from OpenAI-compatible servers, a LiteLLM proxy or
//! its built-in mock, passing streams through frame by frame. Model aliases and combos
//! (fallback and load balancing across targets) sit in front of the executors.
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
//! The pieces compose on their own too: [`auth::AuthLayer`], [`parse::ParseLayer`],
//! [`alias::AliasLayer`] and [`combo::ComboLayer`] in front of [`executor::Executors`] is
//! the LLM route of [`Gateway`]; see
//! `examples/axum_app.rs` for the gateway inside an existing axum router.

#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod alias;
pub mod auth;
mod body;
pub mod cache;
pub mod combo;
pub mod config;
mod error;
pub mod executor;
mod future;
pub mod gateway;
pub mod glob;
pub mod idempotency;
pub mod metering;
pub mod parse;
mod request;
pub mod server;
mod settings;
pub mod sse;
pub mod store;
pub mod tap;
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
pub use request::{Endpoint, LlmRequest};
pub use settings::SettingsError;

/// Serves `gateway` as `config` says (`listen`, `server`) until SIGINT or SIGTERM, then
/// lets in-flight requests finish and writes the usage of every request served.
pub async fn run(config: &Config, gateway: Gateway) -> Result<(), BoxError> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let addr = listener.local_addr()?;
    warn_if_open(config, addr);
    tracing::info!(%addr, providers = config.providers.len(), "llm-tower listening");
    server::serve(
        listener,
        gateway.clone().into_service(),
        &config.server,
        server::shutdown_signal(),
    )
    .await?;
    gateway.flush_usage().await;
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
