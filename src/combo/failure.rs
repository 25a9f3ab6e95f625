//! What a failed attempt means for the combo: move on, move to the context-window
//! fallbacks, or give the answer to the client.

use std::time::Duration;

use super::settings::FallbackOn;
use crate::error::{ErrorKind, GatewayError};

/// Which failures move a combo on, from its `fallback_on`.
#[derive(Debug, Clone)]
pub(crate) struct FallbackPolicy {
    kinds: Vec<FallbackOn>,
}

/// The verdict on one failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Try the next target.
    Next,
    /// The request is too long for this model: try the context-window fallbacks.
    ContextWindow,
    /// The answer is the client's (a bad request): no other target would do better.
    Final,
}

impl FallbackPolicy {
    pub(crate) fn new(kinds: Option<&[FallbackOn]>) -> Self {
        let kinds = kinds.map_or_else(
            || {
                vec![
                    FallbackOn::Connect,
                    FallbackOn::Timeout,
                    FallbackOn::Stream,
                    FallbackOn::Status(408),
                    FallbackOn::Status(429),
                    FallbackOn::Status5xx,
                ]
            },
            <[_]>::to_vec,
        );
        Self { kinds }
    }

    fn allows(&self, kind: FallbackOn) -> bool {
        self.kinds.iter().any(|k| match (*k, kind) {
            (FallbackOn::Status4xx, FallbackOn::Status(code)) => (400..500).contains(&code),
            (FallbackOn::Status5xx, FallbackOn::Status(code)) => (500..600).contains(&code),
            (k, kind) => k == kind,
        })
    }

    pub(crate) fn judge(&self, err: &GatewayError) -> Verdict {
        if is_context_window_exceeded(err) {
            return Verdict::ContextWindow;
        }
        let kind = match err.kind() {
            ErrorKind::UpstreamUnreachable => FallbackOn::Connect,
            ErrorKind::UpstreamTimeout => FallbackOn::Timeout,
            ErrorKind::UpstreamProtocol => FallbackOn::Stream,
            ErrorKind::UpstreamStatus => FallbackOn::Status(err.status().as_u16()),
            _ => return Verdict::Final,
        };
        if self.allows(kind) {
            Verdict::Next
        } else {
            Verdict::Final
        }
    }
}

/// Whether a failure says the upstream is unwell (and counts towards its circuit breaker),
/// as opposed to the request being wrong for it.
pub(crate) fn is_upstream_fault(err: &GatewayError) -> bool {
    match err.kind() {
        ErrorKind::UpstreamUnreachable
        | ErrorKind::UpstreamTimeout
        | ErrorKind::UpstreamProtocol => true,
        ErrorKind::UpstreamStatus => {
            let code = err.status().as_u16();
            code == 408 || code == 429 || code >= 500
        }
        _ => false,
    }
}

/// The upstream's `Retry-After` in seconds, when it gave one.
pub(crate) fn retry_after(err: &GatewayError) -> Option<Duration> {
    let value = err.retry_after()?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// Recognises "the prompt does not fit this model" in the error bodies of OpenAI
/// (`context_length_exceeded`), Anthropic (`prompt is too long`), Gemini (`input token
/// count … exceeds the maximum`) and LiteLLM (`ContextWindowExceededError`).
pub(crate) fn is_context_window_exceeded(err: &GatewayError) -> bool {
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
    use http::StatusCode;

    use super::*;
    use crate::upstream::upstream_error;

    fn status(code: u16) -> GatewayError {
        GatewayError::new(
            ErrorKind::UpstreamStatus,
            StatusCode::from_u16(code).unwrap(),
            "x",
            "failed",
        )
    }

    #[test]
    fn the_default_policy_moves_on_for_upstream_faults_only() {
        let policy = FallbackPolicy::new(None);
        for code in [408, 429, 500, 502, 503, 504, 529] {
            assert_eq!(policy.judge(&status(code)), Verdict::Next, "{code}");
        }
        for code in [400, 401, 403, 404, 422] {
            assert_eq!(policy.judge(&status(code)), Verdict::Final, "{code}");
        }
        let timeout = GatewayError::upstream_timeout("p", "response", Duration::from_secs(1));
        assert_eq!(policy.judge(&timeout), Verdict::Next);
        assert_eq!(
            policy.judge(&GatewayError::upstream_unreachable("p", "refused")),
            Verdict::Next
        );
        assert_eq!(
            policy.judge(&GatewayError::bad_request("no")),
            Verdict::Final
        );

        let only_429 = FallbackPolicy::new(Some(&[FallbackOn::Status(429), FallbackOn::Status4xx]));
        assert_eq!(only_429.judge(&status(503)), Verdict::Final);
        assert_eq!(only_429.judge(&status(401)), Verdict::Next);
    }

    #[test]
    fn context_window_errors_are_recognised_from_every_provider() {
        let read = |path: &str| {
            std::fs::read(format!("tests/fixtures/{path}"))
                .unwrap_or_else(|e| panic!("{path}: {e}"))
        };
        // OpenAI's and Anthropic's recorded bodies.
        {
            let body = read("openai/error-400-context-length-exceeded.json");
            assert!(is_context_window_exceeded(&upstream_error(
                "openai",
                StatusCode::BAD_REQUEST,
                &body
            )));
        }
        {
            let body = read("anthropic/error-400-prompt-too-long.json");
            assert!(is_context_window_exceeded(&upstream_error(
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
            assert!(is_context_window_exceeded(&err), "{}", err.message());
            assert_eq!(FallbackPolicy::new(None).judge(&err), Verdict::ContextWindow);
        }
        assert!(!is_context_window_exceeded(&status(400)));
        assert!(!is_context_window_exceeded(&GatewayError::bad_request(
            "maximum context length"
        )));
    }
}
