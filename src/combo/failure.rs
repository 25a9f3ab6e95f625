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
        if err.is_context_window_exceeded() {
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

#[cfg(test)]
mod tests {
    use http::StatusCode;

    use super::*;

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
    fn a_context_window_error_moves_to_the_fallbacks() {
        let err = status(400).with_context_window_exceeded();
        assert_eq!(
            FallbackPolicy::new(None).judge(&err),
            Verdict::ContextWindow
        );
        assert_eq!(
            FallbackPolicy::new(None).judge(&status(400)),
            Verdict::Final
        );
    }
}
