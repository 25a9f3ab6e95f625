//! `x-request-id` values and the tracing span each request runs in.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use http::header::HeaderValue;
use http::Request;
use tower_http::request_id::{MakeRequestId, RequestId};
use tower_http::trace::MakeSpan;

use crate::request::X_REQUEST_ID;

/// Makes `x-request-id` values: a per-process random prefix and a counter.
#[derive(Clone)]
pub struct MakeRequestIds {
    prefix: u32,
    next: Arc<AtomicU64>,
}

impl Default for MakeRequestIds {
    fn default() -> Self {
        use std::hash::{BuildHasher, Hasher};
        let prefix = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish() as u32;
        Self {
            prefix,
            next: Arc::new(AtomicU64::new(1)),
        }
    }
}

impl MakeRequestId for MakeRequestIds {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<RequestId> {
        // `req_` + 8 hex digits of the prefix + 12 of the counter, written without `format!`
        // (per request, it showed in the profile).
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let mut id = *b"req_00000000000000000000";
        let digits = (u128::from(self.prefix) << 48) | u128::from(n & 0xffff_ffff_ffff);
        for (i, byte) in id[4..].iter_mut().enumerate() {
            *byte = HEX[((digits >> (4 * (19 - i))) & 0xf) as usize];
        }
        HeaderValue::from_bytes(&id).ok().map(RequestId::new)
    }
}

/// The span of one request: method, path and request id (never a header that may hold a
/// key). At `DEBUG`, so it costs nothing unless that level is enabled.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestSpan;

impl<B> MakeSpan<B> for RequestSpan {
    fn make_span(&mut self, req: &Request<B>) -> tracing::Span {
        let id = req
            .headers()
            .get(X_REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        tracing::debug_span!("request", method = %req.method(), path = req.uri().path(), request_id = id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_the_prefix_and_a_counter_in_hex() {
        let mut ids = MakeRequestIds {
            prefix: 0xdeadbeef,
            next: Arc::new(AtomicU64::new(0x2a)),
        };
        let req = Request::new(());
        let id = ids.make_request_id(&req).unwrap();
        assert_eq!(id.header_value(), "req_deadbeef00000000002a");
        let id = ids.make_request_id(&req).unwrap();
        assert_eq!(id.header_value(), "req_deadbeef00000000002b");
    }
}
