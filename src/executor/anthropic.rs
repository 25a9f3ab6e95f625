//! Executor for the Anthropic Messages API (`kind: anthropic`).
//!
//! Clients keep speaking OpenAI Chat Completions: each request is translated to
//! `POST {api_base}/messages` (see [`translate`](super::translate) for the rules), the
//! answer back to a `chat.completion`, a stream event by event to `chat.completion.chunk`s,
//! and errors to OpenAI's shape with their status (529 → 503).
//!
//! ```
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let config = llm_tower::Config::from_yaml(
//!     "providers: { claude: { kind: anthropic, api_key: sk-ant-x, max_tokens: 2048 } }",
//! )?;
//! let executors = llm_tower::executor::Executors::from_config(&config)?;
//! # let _ = executors; Ok(()) }
//! ```

use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{Request, Response};

use super::client::UpstreamClient;
use super::translate::anthropic::{self, AnthropicStream, ThinkingStore};
use super::translate::http::{Settings, Upstream};
use super::translate::Chat;
use crate::body::Body;
use crate::config::{AnthropicProviderConfig, ConfigError, UpstreamConfig};
use crate::error::GatewayError;
use crate::request::{Endpoint, LlmRequest};

/// Largest Anthropic JSON response read.
const MAX_RESPONSE: usize = 32 * 1024 * 1024;

/// Sends OpenAI-style chat requests to the Anthropic Messages API, translated both ways.
#[derive(Debug, Clone)]
pub struct AnthropicExecutor {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    upstream: Upstream,
    version: HeaderValue,
    max_tokens: u32,
    thinking: ThinkingStore,
}

impl AnthropicExecutor {
    pub(crate) fn new(
        name: &str,
        config: &AnthropicProviderConfig,
        upstream: &UpstreamConfig,
        client: UpstreamClient,
    ) -> Result<Self, ConfigError> {
        let upstream = Upstream::new(
            name,
            Settings {
                api_base: &config.api_base,
                key_header: ("x-api-key", config.api_key.as_ref()),
                headers: &config.headers,
                first_byte_timeout: config.first_byte_timeout,
                idle_timeout: config.idle_timeout,
            },
            upstream,
            client,
        )?;
        let version = HeaderValue::try_from(config.version.as_str()).map_err(|_| {
            ConfigError::new(format!(
                "providers.{name}.version: not a valid header value"
            ))
        })?;
        Ok(Self {
            inner: Arc::new(Inner {
                upstream,
                version,
                max_tokens: config.max_tokens,
                thinking: ThinkingStore::default(),
            }),
        })
    }

    /// Answers `req` with `model` as the Anthropic model.
    pub async fn execute(
        &self,
        req: Request<Bytes>,
        llm: &LlmRequest,
        model: &str,
    ) -> Result<Response<Body>, GatewayError> {
        let inner = &*self.inner;
        let upstream = &inner.upstream;
        if llm.endpoint() != Endpoint::ChatCompletions {
            return Err(GatewayError::bad_request(format!(
                "Provider `{}` (Anthropic) has no embeddings endpoint.",
                upstream.name
            ))
            .with_code("unsupported_endpoint"));
        }
        let (parts, body) = req.into_parts();
        let chat = Chat::parse(&body)?;
        let native = anthropic::request(
            &chat,
            model,
            llm.stream(),
            inner.max_tokens,
            &inner.thinking,
        )?;
        let native = serde_json::to_vec(&native).expect("a request serialises");
        let uri = upstream.uri("/messages")?;
        let extra = [(
            HeaderName::from_static("anthropic-version"),
            inner.version.clone(),
        )];
        let response = match upstream.post(uri, &parts.headers, &extra, native).await? {
            Ok(response) => response,
            Err((parts, body)) => {
                return Err(anthropic::error(
                    &upstream.name,
                    parts.status,
                    &parts.headers,
                    &body,
                ))
            }
        };
        if llm.stream() {
            let translator = AnthropicStream::new(
                upstream.name.clone(),
                llm.include_usage(),
                Some(inner.thinking.clone()),
            );
            return upstream.stream_response(response, translator).await;
        }
        let (parts, incoming) = response.into_parts();
        let bytes = upstream.read_body(incoming, MAX_RESPONSE).await?;
        let json = anthropic::response(&bytes, &upstream.name, &inner.thinking)?;
        Ok(upstream.json_response(parts, json))
    }
}
