//! Executor for the Gemini API (`kind: gemini`).
//!
//! Clients keep speaking OpenAI: chat requests become `POST
//! {api_base}/models/{model}:generateContent` (streams: `:streamGenerateContent?alt=sse`),
//! embeddings `:batchEmbedContents`; answers, streams and errors come back in OpenAI's
//! shapes (see [`translate`](super::translate)).
//!
//! ```
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let config = llm_tower::Config::from_yaml(
//!     "providers: { gemini: { kind: gemini, api_key: AIza-test } }",
//! )?;
//! let executors = llm_tower::executor::Executors::from_config(&config)?;
//! # let _ = executors; Ok(()) }
//! ```

use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};

use super::client::UpstreamClient;
use super::translate::gemini::{self, GeminiStream};
use super::translate::http::{Settings, Upstream};
use super::translate::Chat;
use crate::body::Body;
use crate::config::{ConfigError, GeminiProviderConfig, UpstreamConfig};
use crate::error::GatewayError;
use crate::request::{Endpoint, LlmRequest};

/// Largest Gemini JSON response read.
const MAX_RESPONSE: usize = 32 * 1024 * 1024;

/// Sends OpenAI-style requests to the Gemini API, translated both ways.
#[derive(Debug, Clone)]
pub struct GeminiExecutor {
    inner: Arc<Upstream>,
}

impl GeminiExecutor {
    pub(crate) fn new(
        name: &str,
        config: &GeminiProviderConfig,
        upstream: &UpstreamConfig,
        client: UpstreamClient,
    ) -> Result<Self, ConfigError> {
        let upstream = Upstream::new(
            name,
            Settings {
                api_base: &config.api_base,
                key_header: ("x-goog-api-key", config.api_key.as_ref()),
                headers: &config.headers,
                first_byte_timeout: config.first_byte_timeout,
                idle_timeout: config.idle_timeout,
            },
            upstream,
            client,
        )?;
        Ok(Self {
            inner: Arc::new(upstream),
        })
    }

    /// Answers `req` with `model` as the Gemini model.
    pub async fn execute(
        &self,
        req: Request<Bytes>,
        llm: &LlmRequest,
        model: &str,
    ) -> Result<Response<Body>, GatewayError> {
        let upstream = &*self.inner;
        let (parts, body) = req.into_parts();
        if model.is_empty() || model.contains(['/', '?', '#', ' ']) {
            return Err(GatewayError::model_not_found(llm.model()));
        }
        if llm.endpoint() == Endpoint::Embeddings {
            let native = gemini::embeddings_request(&body, model)?;
            let base64 = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("encoding_format").cloned())
                .is_some_and(|f| f == "base64");
            let uri = upstream.uri(&format!("/models/{model}:batchEmbedContents"))?;
            let native = serde_json::to_vec(&native).expect("a request serialises");
            let response = match upstream.post(uri, &parts.headers, &[], native).await? {
                Ok(response) => response,
                Err((parts, body)) => {
                    return Err(gemini::error(&upstream.name, parts.status, &body))
                }
            };
            let (parts, incoming) = response.into_parts();
            let bytes = upstream.read_body(incoming, MAX_RESPONSE).await?;
            let json = gemini::embeddings_response(&bytes, &upstream.name, model, base64)?;
            return Ok(upstream.json_response(parts, json));
        }
        let chat = Chat::parse(&body)?;
        let native = gemini::request(&chat)?;
        let native = serde_json::to_vec(&native).expect("a request serialises");
        let path = if llm.stream() {
            format!("/models/{model}:streamGenerateContent?alt=sse")
        } else {
            format!("/models/{model}:generateContent")
        };
        let uri = upstream.uri(&path)?;
        let response = match upstream.post(uri, &parts.headers, &[], native).await? {
            Ok(response) => response,
            Err((parts, body)) => return Err(gemini::error(&upstream.name, parts.status, &body)),
        };
        if llm.stream() {
            let translator = GeminiStream::new(upstream.name.clone(), model, llm.include_usage());
            return upstream.stream_response(response, translator).await;
        }
        let (parts, incoming) = response.into_parts();
        let bytes = upstream.read_body(incoming, MAX_RESPONSE).await?;
        let json = gemini::response(&bytes, &upstream.name, model)?;
        Ok(upstream.json_response(parts, json))
    }
}
