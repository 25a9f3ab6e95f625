//! Every failure becomes an OpenAI-style error response.
//!
//! ```json
//! {"error":{"message":"…","type":"invalid_request_error","param":null,"code":"model_not_found"}}
//! ```
//!
//! [`GatewayError`] carries the status and the four fields of that body, plus an
//! [`ErrorKind`] that says what happened, so layers such as a fallback combo can decide
//! whether another upstream might do better without parsing the message.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use http::{Response, StatusCode};
use serde::Serialize;

use crate::body::Body;
use crate::protocol::Protocol;

/// What went wrong, coarsely: the part a retrying layer needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The client's request is malformed (400), too large (413) or names nothing (404).
    InvalidRequest,
    /// Missing or wrong gateway key (401).
    Unauthorized,
    /// The upstream could not be reached (502).
    UpstreamUnreachable,
    /// The upstream did not answer in time (504).
    UpstreamTimeout,
    /// The upstream answered with an error status, kept as is.
    UpstreamStatus,
    /// The upstream's answer could not be read or made sense of (502).
    UpstreamProtocol,
    /// A bug or an unexpected state inside the gateway (500).
    Internal,
    /// The key's rate limits (429) or budget (400) refused the request.
    Limited,
}

/// An error on its way to the client as an OpenAI-style body.
///
/// Boxed so that `Result<_, GatewayError>` stays one pointer wide on the hot path.
#[derive(Debug, Clone)]
pub struct GatewayError(Box<Fields>);

#[derive(Debug, Clone)]
struct Fields {
    kind: ErrorKind,
    status: StatusCode,
    message: String,
    error_type: String,
    param: Option<String>,
    code: Option<String>,
    retry_after: Option<HeaderValue>,
    context_window_exceeded: bool,
    /// The provider and upstream model that failed, when an executor did.
    upstream: Option<(std::sync::Arc<str>, std::sync::Arc<str>)>,
}

impl GatewayError {
    /// An error with every field given.
    pub fn new(
        kind: ErrorKind,
        status: StatusCode,
        error_type: &str,
        message: impl Into<String>,
    ) -> Self {
        Self(Box::new(Fields {
            kind,
            status,
            message: message.into(),
            error_type: error_type.to_owned(),
            param: None,
            code: None,
            retry_after: None,
            context_window_exceeded: false,
            upstream: None,
        }))
    }

    /// Names the provider and upstream model that failed (kept if already named).
    pub fn with_upstream(
        mut self,
        provider: &std::sync::Arc<str>,
        model: &std::sync::Arc<str>,
    ) -> Self {
        self.0
            .upstream
            .get_or_insert_with(|| (provider.clone(), model.clone()));
        self
    }

    /// The provider and upstream model that failed, when an executor did.
    pub fn upstream(&self) -> Option<(&str, &str)> {
        self.0.upstream.as_ref().map(|(p, m)| (&**p, &**m))
    }

    /// 400 `invalid_request_error`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(
            ErrorKind::InvalidRequest,
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            message,
        )
    }

    /// 400 for a field that is missing or has the wrong type.
    pub fn invalid_param(param: &str, message: impl Into<String>) -> Self {
        Self::bad_request(message).with_param(param)
    }

    /// 404 `invalid_request_error` for a thing the request names that does not exist (a
    /// stored response, for instance).
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(
            ErrorKind::InvalidRequest,
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            message,
        )
    }

    /// 404 for a model no provider, alias or combo answers to.
    pub fn model_not_found(model: &str) -> Self {
        Self::new(
            ErrorKind::InvalidRequest,
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            format!("The model `{model}` does not exist: use `provider/model`, an alias or a combo (GET /v1/models lists them)."),
        )
        .with_param("model")
        .with_code("model_not_found")
    }

    /// 404 for a path the gateway does not serve.
    pub fn route_not_found(method: &http::Method, path: &str) -> Self {
        Self::new(
            ErrorKind::InvalidRequest,
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            format!("Unknown request URL: {method} {path}."),
        )
        .with_code("unknown_url")
    }

    /// 405 for a known path asked with the wrong method.
    pub fn method_not_allowed(method: &http::Method, path: &str) -> Self {
        Self::new(
            ErrorKind::InvalidRequest,
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request_error",
            format!("{method} is not allowed on {path}."),
        )
        .with_code("method_not_allowed")
    }

    /// 408 for a request body not received within `after`.
    pub fn request_timeout(after: Duration) -> Self {
        Self::new(
            ErrorKind::InvalidRequest,
            StatusCode::REQUEST_TIMEOUT,
            "invalid_request_error",
            format!(
                "The request body was not received within {} s.",
                after.as_secs_f64()
            ),
        )
        .with_code("request_timeout")
    }

    /// 413 for a body over the configured limit.
    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            ErrorKind::InvalidRequest,
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            format!("Request body is larger than the gateway's limit of {limit} bytes."),
        )
        .with_code("request_too_large")
    }

    /// 401 for a missing or unknown gateway key. The key itself is never echoed.
    pub fn unauthorized(presented: bool) -> Self {
        let message = if presented {
            "Incorrect API key provided."
        } else {
            "Missing API key: send `Authorization: Bearer KEY` or `x-api-key: KEY`."
        };
        Self::new(
            ErrorKind::Unauthorized,
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            message,
        )
        .with_code("invalid_api_key")
    }

    /// 502 when the upstream of `provider` cannot be reached.
    pub fn upstream_unreachable(provider: &str, cause: impl fmt::Display) -> Self {
        Self::new(
            ErrorKind::UpstreamUnreachable,
            StatusCode::BAD_GATEWAY,
            "upstream_error",
            format!("Upstream `{provider}` is unreachable: {cause}"),
        )
        .with_code("upstream_unreachable")
    }

    /// 504 when the upstream of `provider` did not answer within `after`.
    pub fn upstream_timeout(provider: &str, what: &str, after: Duration) -> Self {
        Self::new(
            ErrorKind::UpstreamTimeout,
            StatusCode::GATEWAY_TIMEOUT,
            "upstream_error",
            format!("Upstream `{provider}` timed out: no {what} within {after:?}."),
        )
        .with_code("upstream_timeout")
    }

    /// 502 when the upstream's answer cannot be read.
    pub fn upstream_protocol(provider: &str, cause: impl fmt::Display) -> Self {
        Self::new(
            ErrorKind::UpstreamProtocol,
            StatusCode::BAD_GATEWAY,
            "upstream_error",
            format!("Upstream `{provider}` sent an unreadable response: {cause}"),
        )
        .with_code("upstream_protocol_error")
    }

    /// 500 for the gateway's own failures.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(
            ErrorKind::Internal,
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            message,
        )
    }

    /// Replaces the message.
    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.0.message = message.into();
        self
    }

    /// Sets `param`.
    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.0.param = Some(param.into());
        self
    }

    /// Sets `code`.
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.0.code = Some(code.into());
        self
    }

    /// Marks the error as "the request does not fit this model's context window", as the
    /// code that read the upstream's answer recognised it (combos then move to their
    /// `context_window_fallbacks`).
    pub fn with_context_window_exceeded(mut self) -> Self {
        self.0.context_window_exceeded = true;
        self
    }

    /// Whether the upstream said the request does not fit its context window.
    pub fn is_context_window_exceeded(&self) -> bool {
        self.0.context_window_exceeded
    }

    /// Sets the `Retry-After` header sent with the error.
    pub fn with_retry_after(mut self, value: HeaderValue) -> Self {
        self.0.retry_after = Some(value);
        self
    }

    /// What happened.
    pub fn kind(&self) -> ErrorKind {
        self.0.kind
    }
    /// The HTTP status the client gets.
    pub fn status(&self) -> StatusCode {
        self.0.status
    }
    /// The human-readable message.
    pub fn message(&self) -> &str {
        &self.0.message
    }
    /// The error body's `type`.
    pub fn error_type(&self) -> &str {
        &self.0.error_type
    }
    /// The error body's `code`, if any.
    pub fn code(&self) -> Option<&str> {
        self.0.code.as_deref()
    }
    /// The error body's `param`, if any.
    pub fn param(&self) -> Option<&str> {
        self.0.param.as_deref()
    }
    /// The `Retry-After` the upstream asked for, if any.
    pub fn retry_after(&self) -> Option<&HeaderValue> {
        self.0.retry_after.as_ref()
    }

    /// The JSON error body.
    pub fn to_json(&self) -> Bytes {
        #[derive(Serialize)]
        struct Envelope<'a> {
            error: Body<'a>,
        }
        #[derive(Serialize)]
        struct Body<'a> {
            message: &'a str,
            #[serde(rename = "type")]
            error_type: &'a str,
            param: Option<&'a str>,
            code: Option<&'a str>,
        }
        let body = Envelope {
            error: Body {
                message: &self.0.message,
                error_type: &self.0.error_type,
                param: self.0.param.as_deref(),
                code: self.0.code.as_deref(),
            },
        };
        Bytes::from(serde_json::to_vec(&body).expect("error body serialises"))
    }

    /// The status and error `type` an Anthropic client expects for this error: Anthropic's
    /// own names, 529 for an overloaded upstream, 402 for exhausted credit.
    pub fn anthropic_status(&self) -> (StatusCode, &'static str) {
        let status = self.0.status;
        let kind = match status.as_u16() {
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            413 => "request_too_large",
            429 if self.code() == Some("insufficient_quota") => {
                return (StatusCode::PAYMENT_REQUIRED, "billing_error")
            }
            429 => "rate_limit_error",
            503 if self.code() == Some("overloaded") => {
                let overloaded = StatusCode::from_u16(529).expect("a valid status");
                return (overloaded, "overloaded_error");
            }
            504 => "timeout_error",
            s if s >= 500 => "api_error",
            _ => "invalid_request_error",
        };
        (status, kind)
    }

    /// The JSON error body in `protocol`'s shape.
    pub fn to_json_as(&self, protocol: Protocol) -> Bytes {
        match protocol {
            Protocol::OpenAi => self.to_json(),
            Protocol::Anthropic => {
                let body = serde_json::json!({
                    "type": "error",
                    "error": { "type": self.anthropic_status().1, "message": self.0.message },
                });
                Bytes::from(serde_json::to_vec(&body).expect("error body serialises"))
            }
        }
    }

    /// The error as a complete HTTP response.
    pub fn into_response(self) -> Response<Body> {
        self.into_response_as(Protocol::OpenAi)
    }

    /// The error as a complete HTTP response in `protocol`'s shape.
    pub fn into_response_as(self, protocol: Protocol) -> Response<Body> {
        let status = match protocol {
            Protocol::OpenAi => self.0.status,
            Protocol::Anthropic => self.anthropic_status().0,
        };
        let mut response = Response::new(Body::full(self.to_json_as(protocol)));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(retry_after) = self.0.retry_after {
            headers.insert(RETRY_AFTER, retry_after);
        }
        if let Some((provider, model)) = &self.0.upstream {
            for (name, value) in [("x-gateway-provider", provider), ("x-gateway-model", model)] {
                if let Ok(value) = HeaderValue::try_from(&**value) {
                    headers.insert(name, value);
                }
            }
        }
        response
    }
}

impl fmt::Display for GatewayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.0.status.as_u16(),
            self.0.error_type,
            self.0.message
        )
    }
}

impl std::error::Error for GatewayError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_the_openai_shape() {
        let err = GatewayError::model_not_found("nope/x");
        let value: serde_json::Value = serde_json::from_slice(&err.to_json()).unwrap();
        assert_eq!(value["error"]["type"], "invalid_request_error");
        assert_eq!(value["error"]["code"], "model_not_found");
        assert_eq!(value["error"]["param"], "model");
        assert!(value["error"]["message"]
            .as_str()
            .unwrap()
            .contains("nope/x"));
        assert_eq!(err.into_response().status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn anthropic_clients_get_anthropic_shapes_and_statuses() {
        let overloaded = GatewayError::new(
            ErrorKind::UpstreamStatus,
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "Overloaded",
        )
        .with_code("overloaded");
        let response = overloaded.into_response_as(Protocol::Anthropic);
        assert_eq!(response.status().as_u16(), 529);
        for (err, status, kind) in [
            (
                GatewayError::unauthorized(false),
                401,
                "authentication_error",
            ),
            (GatewayError::model_not_found("x/y"), 404, "not_found_error"),
            (
                GatewayError::payload_too_large(10),
                413,
                "request_too_large",
            ),
            (
                GatewayError::bad_request("no"),
                400,
                "invalid_request_error",
            ),
            (
                GatewayError::upstream_timeout("p", "data", Duration::from_secs(1)),
                504,
                "timeout_error",
            ),
            (
                GatewayError::upstream_unreachable("p", "refused"),
                502,
                "api_error",
            ),
        ] {
            let value: serde_json::Value =
                serde_json::from_slice(&err.to_json_as(Protocol::Anthropic)).unwrap();
            assert_eq!(value["type"], "error");
            assert_eq!(value["error"]["type"], kind, "{err}");
            assert_eq!(value["error"]["message"], err.message());
            assert_eq!(err.anthropic_status().0.as_u16(), status);
        }
    }

    #[test]
    fn unauthorized_never_echoes_the_key() {
        let value: serde_json::Value =
            serde_json::from_slice(&GatewayError::unauthorized(true).to_json()).unwrap();
        assert_eq!(value["error"]["code"], "invalid_api_key");
        assert_eq!(value["error"]["param"], serde_json::Value::Null);
    }
}
