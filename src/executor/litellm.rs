//! What the LiteLLM proxy adds to the OpenAI wire format.
//!
//! A `kind: litellm` provider is an [`OpenAiExecutor`](super::OpenAiExecutor) in LiteLLM
//! flavour: routes under the proxy's `/v1`, readiness from `/health/liveliness`, the
//! `x-litellm-response-cost` header surfaced as a [`ResponseCost`] response extension, and
//! LiteLLM's error bodies tidied into OpenAI's shape (upstream status kept).

use http::HeaderMap;

use crate::error::GatewayError;

/// LiteLLM's liveness probe, below the proxy's root.
pub(crate) const LIVELINESS_PATH: &str = "/health/liveliness";

/// The cost in USD an upstream reported for a response (LiteLLM's
/// `x-litellm-response-cost`), in the response's extensions for metering.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ResponseCost(pub f64);

pub(crate) fn response_cost(headers: &HeaderMap) -> Option<ResponseCost> {
    let value = headers.get("x-litellm-response-cost")?.to_str().ok()?;
    let cost: f64 = value.trim().parse().ok()?;
    (cost.is_finite() && cost >= 0.0).then_some(ResponseCost(cost))
}

/// LiteLLM puts the HTTP status in `code` as a string (`"429"`) and sometimes `"None"` in
/// `type`/`param`; OpenAI clients expect a symbolic code or null. It also renames the
/// provider's `retry-after` to `llm_provider-retry-after`; the client gets it back as
/// `Retry-After`.
pub(crate) fn tidy_error(err: GatewayError, headers: &HeaderMap) -> GatewayError {
    let numeric_code = err
        .code()
        .is_some_and(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit()));
    let none = |s: Option<&str>| s.is_none_or(|s| s == "None" || s.is_empty());
    let error_type = if err.error_type() == "None" || err.error_type().is_empty() {
        default_type(err.status())
    } else {
        err.error_type()
    };
    let mut tidy = GatewayError::new(err.kind(), err.status(), error_type, err.message());
    if err.is_context_window_exceeded() {
        tidy = tidy.with_context_window_exceeded();
    }
    if !none(err.param()) {
        tidy = tidy.with_param(err.param().unwrap_or_default());
    }
    if !numeric_code && !none(err.code()) {
        tidy = tidy.with_code(err.code().unwrap_or_default());
    }
    let retry_after = err
        .retry_after()
        .or_else(|| headers.get("llm_provider-retry-after"));
    if let Some(retry_after) = retry_after {
        tidy = tidy.with_retry_after(retry_after.clone());
    }
    tidy
}

fn default_type(status: http::StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "authentication_error",
        429 => "rate_limit_error",
        400..=499 => "invalid_request_error",
        _ => "api_error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::upstream_error;
    use http::StatusCode;

    #[test]
    fn status_codes_in_code_are_dropped_and_the_rest_kept() {
        // As LiteLLM 1.108 answers an upstream 429.
        let body = br#"{"error":{"message":"litellm.RateLimitError: RateLimitError: OpenAIException - mock error 429\n\nLiteLLM: model group 'echo-429' failed with the error above. No fallback was attempted.","type":"throttling_error","param":null,"code":"429"}}"#;
        let mut headers = HeaderMap::new();
        headers.insert("llm_provider-retry-after", "1".parse().unwrap());
        let err = tidy_error(
            upstream_error("litellm", StatusCode::TOO_MANY_REQUESTS, body),
            &headers,
        );
        assert_eq!(err.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(err.message().starts_with(
            "litellm.RateLimitError: RateLimitError: OpenAIException - mock error 429"
        ));
        assert_eq!(err.error_type(), "throttling_error");
        assert_eq!(err.code(), None);
        assert_eq!(err.param(), None);
        assert_eq!(err.retry_after().unwrap(), "1");

        let body = br#"{"error":{"message":"Authentication Error, No api key passed in.","type":"auth_error","param":"None","code":"401"}}"#;
        let err = tidy_error(
            upstream_error("litellm", StatusCode::UNAUTHORIZED, body),
            &HeaderMap::new(),
        );
        assert_eq!(
            (err.error_type(), err.param(), err.code()),
            ("auth_error", None, None)
        );
    }

    #[test]
    fn cost_header_is_read() {
        let mut h = HeaderMap::new();
        h.insert("x-litellm-response-cost", "0.00012".parse().unwrap());
        assert_eq!(response_cost(&h), Some(ResponseCost(0.00012)));
        h.insert("x-litellm-response-cost", "nan".parse().unwrap());
        assert_eq!(response_cost(&h), None);
    }
}
