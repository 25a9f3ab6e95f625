//! Sending to an upstream, and reading what it answers when it fails.

use std::time::Duration;

use bytes::Bytes;
use http::header::HeaderValue;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;

use super::client::UpstreamClient;
use super::decode::UpstreamIncoming;
use crate::error::{ErrorKind, GatewayError};

/// Largest upstream error body the gateway reads to build its own error.
const MAX_ERROR_BODY: usize = 64 * 1024;

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
pub(crate) async fn read_error_body(body: UpstreamIncoming, idle_timeout: Duration) -> Bytes {
    let read = Limited::new(body, MAX_ERROR_BODY).collect();
    match tokio::time::timeout(idle_timeout, read).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(_)) | Err(_) => Bytes::new(),
    }
}

/// A header value that is never logged (credentials).
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
    if is_context_window_exceeded(&err) {
        err = err.with_context_window_exceeded();
    }
    err
}

/// Recognises "the prompt does not fit this model" in an error body read from an
/// OpenAI-compatible upstream (OpenAI's `context_length_exceeded`, vLLM's and LiteLLM's
/// wordings, and Anthropic's and Gemini's as a LiteLLM proxy passes them on).
fn is_context_window_exceeded(err: &GatewayError) -> bool {
    if err.kind() != ErrorKind::UpstreamStatus || !err.status().is_client_error() {
        return false;
    }
    if err.code() == Some("context_length_exceeded") {
        return true;
    }
    let message = err.message().to_ascii_lowercase();
    [
        "context_length_exceeded",
        "maximum context length",
        "context window",
        "contextwindowexceeded",
        "prompt is too long",
        "exceeds the maximum number of tokens",
        "input is too long",
    ]
    .iter()
    .any(|needle| message.contains(needle))
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

    #[test]
    fn context_window_errors_are_recognised_from_every_provider() {
        let is_cw = |e: &GatewayError| e.is_context_window_exceeded();
        let read = |path: &str| {
            std::fs::read(format!("tests/fixtures/{path}"))
                .unwrap_or_else(|e| panic!("{path}: {e}"))
        };
        // OpenAI's and Anthropic's recorded bodies.
        {
            let body = read("openai/error-400-context-length-exceeded.json");
            assert!(is_cw(&upstream_error(
                "openai",
                StatusCode::BAD_REQUEST,
                &body
            )));
        }
        {
            let body = read("anthropic/error-400-prompt-too-long.json");
            assert!(is_cw(&upstream_error(
                "claude",
                StatusCode::BAD_REQUEST,
                &body
            )));
        }
        for body in [
            br#"{"error":{"message":"This model's maximum context length is 4097 tokens. However, your messages resulted in 4363 tokens.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#.as_slice(),
            br#"{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 210266 tokens > 200000 maximum"}}"#,
            br#"{"error":{"code":400,"message":"The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).","status":"INVALID_ARGUMENT"}}"#,
            br#"{"error":{"message":"litellm.ContextWindowExceededError: litellm.BadRequestError: ...","type":null,"param":null,"code":"400"}}"#,
        ] {
            let err = upstream_error("p", StatusCode::BAD_REQUEST, body);
            assert!(err.is_context_window_exceeded(), "{}", err.message());
        }
        let other = upstream_error(
            "p",
            StatusCode::BAD_REQUEST,
            br#"{"error":{"message":"bad"}}"#,
        );
        assert!(!other.is_context_window_exceeded());
        let ours = upstream_error(
            "p",
            StatusCode::SERVICE_UNAVAILABLE,
            b"maximum context length",
        );
        assert!(
            !ours.is_context_window_exceeded(),
            "only a client error says so"
        );
    }
}
