//! The web UI: static assets embedded in the binary, served at `/ui/` (no Node toolchain to
//! build or run it; no third-party code). The pages talk to the admin API and
//! `/v1/usage` with the master key the user signs in with.

use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Method, Response, StatusCode};

use crate::body::Body;
use crate::error::GatewayError;

/// `(path under /ui/, content type, bytes)`.
const ASSETS: [(&str, &str, &[u8]); 3] = [
    (
        "index.html",
        "text/html; charset=utf-8",
        include_bytes!("index.html"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("app.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_bytes!("style.css"),
    ),
];

/// The answer to `GET /ui/…`.
pub fn asset(method: &Method, path: &str) -> Response<Body> {
    if method != Method::GET && method != Method::HEAD {
        return GatewayError::method_not_allowed(method, path).into_response();
    }
    let name = path.trim_start_matches("/ui").trim_start_matches('/');
    let name = if name.is_empty() { "index.html" } else { name };
    let Some((_, content_type, bytes)) = ASSETS.iter().find(|(n, _, _)| *n == name) else {
        return GatewayError::route_not_found(method, path).into_response();
    };
    let mut response = Response::new(Body::full(bytes::Bytes::from_static(bytes)));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
        ),
    );
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    response
}
