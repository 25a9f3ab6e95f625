//! Executor for any OpenAI-compatible server (and, with its own flavour, LiteLLM).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;

use super::client::UpstreamClient;
use super::headers::{clean_response_headers, forward_request_headers};
use super::litellm;
use super::stream::UpstreamBody;
use crate::body::Body;
use crate::config::{ConfigError, HttpProviderConfig, UpstreamConfig};
use crate::error::{ErrorKind, GatewayError};
use crate::request::{Endpoint, LlmRequest};

/// Largest upstream error body the gateway reads to build its own error.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// Which dialect of the OpenAI API the upstream speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    OpenAi,
    LiteLlm,
}

/// Sends requests to an OpenAI-compatible upstream and passes its answers through.
#[derive(Debug, Clone)]
pub struct OpenAiExecutor {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    name: Arc<str>,
    flavor: Flavor,
    client: UpstreamClient,
    chat_uri: Uri,
    embeddings_uri: Uri,
    health_uri: Option<Uri>,
    headers: HeaderMap,
    first_byte_timeout: Duration,
    idle_timeout: Duration,
}

impl OpenAiExecutor {
    pub(crate) fn new(
        name: &str,
        flavor: Flavor,
        config: &HttpProviderConfig,
        upstream: &UpstreamConfig,
        client: UpstreamClient,
    ) -> Result<Self, ConfigError> {
        let base = config.api_base.trim_end_matches('/');
        // LiteLLM's `api_base` is the proxy's root; its OpenAI routes live under /v1.
        let (root, v1) = match flavor {
            Flavor::OpenAi => (base.to_owned(), base.to_owned()),
            Flavor::LiteLlm => match base.strip_suffix("/v1") {
                Some(root) => (root.to_owned(), base.to_owned()),
                None => (base.to_owned(), format!("{base}/v1")),
            },
        };
        let uri = |path: String| {
            path.parse::<Uri>()
                .map_err(|e| ConfigError::new(format!("providers.{name}.api_base: {e}")))
        };
        let mut headers = HeaderMap::new();
        if let Some(key) = &config.api_key {
            let value = HeaderValue::try_from(format!("Bearer {key}")).map_err(|_| {
                ConfigError::new(format!(
                    "providers.{name}.api_key: not a valid header value"
                ))
            })?;
            headers.insert(AUTHORIZATION, sensitive(value));
        }
        for (k, v) in &config.headers {
            let name_ = HeaderName::try_from(k.as_str()).map_err(|_| {
                ConfigError::new(format!(
                    "providers.{name}.headers: `{k}` is not a header name"
                ))
            })?;
            let value = HeaderValue::try_from(v.as_str()).map_err(|_| {
                ConfigError::new(format!(
                    "providers.{name}.headers.{k}: not a valid header value"
                ))
            })?;
            headers.insert(name_, sensitive(value));
        }
        Ok(Self {
            inner: Arc::new(Inner {
                name: name.into(),
                flavor,
                client,
                chat_uri: uri(format!("{v1}{}", Endpoint::ChatCompletions.path()))?,
                embeddings_uri: uri(format!("{v1}{}", Endpoint::Embeddings.path()))?,
                health_uri: match flavor {
                    Flavor::OpenAi => None,
                    Flavor::LiteLlm => Some(uri(format!("{root}{}", litellm::LIVELINESS_PATH))?),
                },
                headers,
                first_byte_timeout: config
                    .first_byte_timeout
                    .unwrap_or(upstream.first_byte_timeout),
                idle_timeout: config.idle_timeout.unwrap_or(upstream.idle_timeout),
            }),
        })
    }

    /// Forwards `req` with `model` as the upstream model name.
    pub async fn execute(
        &self,
        req: Request<Bytes>,
        llm: &LlmRequest,
        model: &str,
    ) -> Result<Response<Body>, GatewayError> {
        let inner = &*self.inner;
        let (parts, body) = req.into_parts();
        let uri = match llm.endpoint() {
            Endpoint::ChatCompletions => inner.chat_uri.clone(),
            Endpoint::Embeddings => inner.embeddings_uri.clone(),
        };
        let mut upstream = Request::new(Full::new(llm.body_with_model(&body, model)));
        *upstream.method_mut() = Method::POST;
        *upstream.uri_mut() = uri;
        let headers = upstream.headers_mut();
        forward_request_headers(&parts.headers, headers);
        for (name, value) in &inner.headers {
            headers.insert(name, value.clone());
        }
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));

        let response = self.send(upstream).await?;
        if !response.status().is_success() {
            return Err(self.error_from(response).await);
        }
        let (mut parts, incoming) = response.into_parts();
        let sse = parts
            .headers
            .get(CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
        clean_response_headers(&mut parts.headers, sse);
        if inner.flavor == Flavor::LiteLlm {
            if let Some(cost) = litellm::response_cost(&parts.headers) {
                parts.extensions.insert(cost);
            }
        }
        let body = UpstreamBody::new(incoming, inner.idle_timeout, sse, inner.name.clone());
        Ok(Response::from_parts(parts, Body::upstream(body)))
    }

    /// Whether the upstream is up: LiteLLM's `/health/liveliness`; other servers have no
    /// standard probe and count as ready.
    pub async fn ready(&self) -> Result<(), GatewayError> {
        let Some(uri) = self.inner.health_uri.clone() else {
            return Ok(());
        };
        let mut req = Request::new(Full::new(Bytes::new()));
        *req.uri_mut() = uri;
        for (name, value) in &self.inner.headers {
            req.headers_mut().insert(name, value.clone());
        }
        let response = self.send(req).await?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(self.error_from(response).await)
        }
    }

    async fn send(&self, req: Request<Full<Bytes>>) -> Result<Response<Incoming>, GatewayError> {
        let inner = &*self.inner;
        send(&inner.client, &inner.name, inner.first_byte_timeout, req).await
    }

    /// The upstream's error answer as a [`GatewayError`] with its status and message.
    async fn error_from(&self, response: Response<Incoming>) -> GatewayError {
        let inner = &*self.inner;
        let (parts, body) = response.into_parts();
        let bytes = read_error_body(body, inner.idle_timeout).await;
        let mut err = upstream_error(&inner.name, parts.status, &bytes);
        if let Some(value) = parts.headers.get(RETRY_AFTER) {
            err = err.with_retry_after(value.clone());
        }
        match inner.flavor {
            Flavor::OpenAi => err,
            Flavor::LiteLlm => litellm::tidy_error(err, &parts.headers),
        }
    }
}

/// Sends one request to `provider`, mapping failures to the gateway's upstream errors
/// (unreachable, timeout before the response headers, protocol).
pub(crate) async fn send(
    client: &UpstreamClient,
    provider: &str,
    first_byte_timeout: Duration,
    req: Request<Full<Bytes>>,
) -> Result<Response<Incoming>, GatewayError> {
    match tokio::time::timeout(first_byte_timeout, client.request(req)).await {
        Err(_) => Err(GatewayError::upstream_timeout(
            provider,
            "response",
            first_byte_timeout,
        )),
        Ok(Err(err)) if err.is_connect() => {
            Err(GatewayError::upstream_unreachable(provider, chain(&err)))
        }
        Ok(Err(err)) => Err(GatewayError::upstream_protocol(provider, chain(&err))),
        Ok(Ok(response)) => Ok(response),
    }
}

/// Reads an upstream error body (at most 64 KiB, within `idle_timeout`); empty on failure.
pub(crate) async fn read_error_body(body: Incoming, idle_timeout: Duration) -> Bytes {
    let read = Limited::new(body, MAX_ERROR_BODY).collect();
    match tokio::time::timeout(idle_timeout, read).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(_)) | Err(_) => Bytes::new(),
    }
}

pub(crate) fn sensitive(mut value: HeaderValue) -> HeaderValue {
    value.set_sensitive(true);
    value
}

/// An error and its causes on one line (hyper-util's top-level message alone says little).
fn chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

/// Builds the client's error from an upstream error body: OpenAI's `{"error":{…}}` (and
/// the usual variants: `{"error":"…"}`, `{"detail":…}`, `{"message":…}`), or the raw text.
pub(crate) fn upstream_error(provider: &str, status: StatusCode, body: &[u8]) -> GatewayError {
    let default_type = match status.as_u16() {
        400 | 404 | 409 | 413 | 422 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        429 => "rate_limit_error",
        _ => "api_error",
    };
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let as_string = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    let object = parsed
        .as_ref()
        .and_then(|v| v.get("error"))
        .filter(|e| e.is_object());
    let message = object
        .and_then(|e| e.get("message"))
        .and_then(as_string)
        .or_else(|| {
            parsed
                .as_ref()
                .and_then(|v| v.get("error"))
                .and_then(as_string)
        })
        .or_else(|| {
            parsed
                .as_ref()
                .and_then(|v| v.get("detail"))
                .map(|d| as_string(d).unwrap_or_else(|| d.to_string()))
        })
        .or_else(|| {
            parsed
                .as_ref()
                .and_then(|v| v.get("message"))
                .and_then(as_string)
        })
        .unwrap_or_else(|| {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            if text.is_empty() {
                format!("Upstream `{provider}` answered {status} with an empty body.")
            } else {
                let snippet: String = text.chars().take(500).collect();
                format!("Upstream `{provider}` answered {status}: {snippet}")
            }
        });
    let field = |name: &str| object.and_then(|e| e.get(name)).and_then(as_string);
    let error_type = field("type").unwrap_or_else(|| default_type.to_owned());
    let mut err = GatewayError::new(ErrorKind::UpstreamStatus, status, &error_type, message);
    if let Some(param) = field("param") {
        err = err.with_param(param);
    }
    if let Some(code) = field("code") {
        err = err.with_code(code);
    }
    err
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_error_bodies_keep_every_field_and_the_status() {
        let body = std::fs::read("tests/fixtures/openai/error-429-rate-limit-exceeded.json")
            .expect("the recorded fixture");
        let err = upstream_error("openai", StatusCode::TOO_MANY_REQUESTS, &body);
        assert_eq!(err.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(err.error_type(), "tokens");
        assert_eq!(err.code(), Some("rate_limit_exceeded"));
        assert!(err.message().starts_with("Request too large"));
        assert_eq!(err.kind(), ErrorKind::UpstreamStatus);
    }

    #[test]
    fn other_error_shapes_become_openai_errors() {
        let err = upstream_error(
            "local",
            StatusCode::BAD_GATEWAY,
            b"<html>bad gateway</html>",
        );
        assert_eq!(err.error_type(), "api_error");
        assert!(
            err.message().contains("<html>bad gateway</html>"),
            "{}",
            err.message()
        );
        let err = upstream_error(
            "local",
            StatusCode::UNPROCESSABLE_ENTITY,
            br#"{"detail":[{"loc":["body"]}]}"#,
        );
        assert_eq!(err.error_type(), "invalid_request_error");
        assert!(err.message().contains("loc"));
        let err = upstream_error(
            "local",
            StatusCode::NOT_FOUND,
            br#"{"error":"model not found"}"#,
        );
        assert_eq!(err.message(), "model not found");
        let err = upstream_error("local", StatusCode::SERVICE_UNAVAILABLE, b"");
        assert!(err.message().contains("empty body"));
    }
}
