//! Which headers cross the gateway, in each direction.

use http::header::{self, HeaderMap, HeaderName};

use crate::request::X_REQUEST_ID;

/// Hop-by-hop headers (RFC 9110 §7.6.1) and their common non-standard kin.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

/// Client headers the upstream must never see: the client's credentials for the gateway,
/// its `Host`, what the gateway recomputes, and what would change the body's encoding.
const CLIENT_ONLY: [HeaderName; 7] = [
    header::HOST,
    header::AUTHORIZATION,
    HeaderName::from_static("x-api-key"),
    header::COOKIE,
    header::CONTENT_LENGTH,
    header::ACCEPT_ENCODING,
    header::UPGRADE,
];

fn named_by_connection(headers: &HeaderMap, name: &HeaderName) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case(name.as_str()))
}

/// Copies the client's request headers that may reach the upstream.
pub(crate) fn forward_request_headers(from: &HeaderMap, to: &mut HeaderMap) {
    let has_connection = from.contains_key(header::CONNECTION);
    for (name, value) in from {
        if HOP_BY_HOP.contains(name) || CLIENT_ONLY.contains(name) {
            continue;
        }
        if has_connection && named_by_connection(from, name) {
            continue;
        }
        to.append(name.clone(), value.clone());
    }
}

/// Removes from an upstream response what must not reach the client: hop-by-hop headers,
/// cookies, and — for streams, which may get an error event appended — `Content-Length`.
/// The upstream's own request id is kept as `x-upstream-request-id` (the gateway's
/// `x-request-id` is the client's).
pub(crate) fn clean_response_headers(headers: &mut HeaderMap, stream: bool) {
    // Room for what the gateway's layers add on the way out (the provider, model and
    // attempts, the cache's three, the request id, the six rate limits): one growth of
    // the map here instead of one or two later.
    headers.reserve(14);
    let unwanted = |name: &HeaderName| {
        HOP_BY_HOP.contains(name) || name == header::SET_COOKIE || name == header::UPGRADE
    };
    // Most answers have none of them: one pass over the names instead of ten removals.
    if headers.keys().any(unwanted) {
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|t| HeaderName::try_from(t.trim()).ok())
            .collect();
        for name in HOP_BY_HOP
            .iter()
            .chain(&named)
            .chain([&header::SET_COOKIE, &header::UPGRADE])
        {
            headers.remove(name);
        }
    }
    if stream {
        headers.remove(header::CONTENT_LENGTH);
    }
    if let Some(id) = headers.remove(X_REQUEST_ID) {
        headers.insert(HeaderName::from_static("x-upstream-request-id"), id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn client_credentials_host_and_hop_by_hop_headers_stay_behind() {
        let mut from = HeaderMap::new();
        for (k, v) in [
            ("authorization", "Bearer gateway-key"),
            ("x-api-key", "gateway-key"),
            ("host", "gateway.local"),
            ("connection", "keep-alive, x-secret-hop"),
            ("x-secret-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("content-length", "12"),
            ("accept-encoding", "gzip"),
            ("openai-organization", "org-1"),
            ("x-request-id", "abc"),
            ("content-type", "application/json"),
        ] {
            from.append(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        let mut to = HeaderMap::new();
        forward_request_headers(&from, &mut to);
        let mut kept: Vec<_> = to.keys().map(|k| k.as_str()).collect();
        kept.sort();
        assert_eq!(
            kept,
            ["content-type", "openai-organization", "x-request-id"]
        );
    }

    #[test]
    fn response_headers_are_cleaned() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("content-length", "10"),
            ("transfer-encoding", "chunked"),
            ("set-cookie", "a=b"),
            ("x-request-id", "req_1"),
            ("openai-processing-ms", "12"),
        ] {
            h.append(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        clean_response_headers(&mut h, true);
        assert!(h.get("content-length").is_none() && h.get("set-cookie").is_none());
        assert!(h.get("transfer-encoding").is_none());
        assert_eq!(h["x-upstream-request-id"], "req_1");
        assert_eq!(h["openai-processing-ms"], "12");
    }

    #[test]
    fn headers_named_by_connection_go_and_a_clean_answer_keeps_everything() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("connection", "close, x-hop"),
            ("x-hop", "1"),
            ("content-length", "10"),
            ("openai-version", "2020-10-01"),
        ] {
            h.append(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        clean_response_headers(&mut h, false);
        let mut kept: Vec<_> = h.keys().map(HeaderName::as_str).collect();
        kept.sort_unstable();
        assert_eq!(kept, ["content-length", "openai-version"]);

        let mut clean = HeaderMap::new();
        clean.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        clean.insert(header::CONTENT_LENGTH, HeaderValue::from_static("10"));
        clean_response_headers(&mut clean, false);
        assert_eq!(clean.len(), 2);
    }
}
