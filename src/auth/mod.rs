//! Gateway keys: who may use the gateway, and under which name.
//!
//! Clients present a key as `Authorization: Bearer KEY` or `x-api-key: KEY`. Keys are
//! compared in constant time; the request then carries the key's name as a [`KeyId`]
//! extension (`master` for the master key), which metering and logs use instead of the key.
//! With no key configured every request passes, as [`KeyId`] `anonymous`.
//!
//! ```
//! use llm_tower::auth::{AuthLayer, KeyId, Keys};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let keys = Keys::new(Some("sk-master".into()), vec![("team-a".into(), "sk-a".into())]);
//! let service = ServiceBuilder::new()
//!     .layer(AuthLayer::new(keys))
//!     .service_fn(|req: http::Request<()>| async move {
//!         let who = req.extensions().get::<KeyId>().unwrap().0.to_string();
//!         Ok::<_, std::convert::Infallible>(http::Response::new(llm_tower::Body::from(who)))
//!     });
//! let req = http::Request::get("/").header("authorization", "Bearer sk-a").body(()).unwrap();
//! assert!(service.clone().oneshot(req).await.unwrap().status().is_success());
//! let anonymous = http::Request::get("/").body(()).unwrap();
//! assert_eq!(service.oneshot(anonymous).await.unwrap().status(), 401);
//! # });
//! ```

use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::{self, Either, Ready};
use http::header::AUTHORIZATION;
use http::{HeaderMap, Request, Response};
use subtle::ConstantTimeEq;
use tower::{Layer, Service};

use crate::body::Body;
use crate::error::GatewayError;
use crate::protocol::Protocol;
use crate::request::Endpoint;

/// The name of the key a request was made with.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyId(pub Arc<str>);

/// The configured keys.
#[derive(Debug, Clone)]
pub struct Keys {
    keys: Arc<[(KeyId, Box<[u8]>)]>,
    anonymous: KeyId,
}

impl Keys {
    /// The master key (named `master`) and named keys.
    pub fn new(master: Option<String>, named: Vec<(String, String)>) -> Self {
        let keys = master
            .map(|key| ("master".to_owned(), key))
            .into_iter()
            .chain(named)
            .map(|(name, key)| (KeyId(name.into()), key.into_bytes().into_boxed_slice()))
            .collect();
        Self {
            keys,
            anonymous: KeyId("anonymous".into()),
        }
    }

    /// Whether a master key is configured.
    pub fn has_master(&self) -> bool {
        self.keys.iter().any(|(id, _)| &*id.0 == "master")
    }

    /// Whether any key is configured (otherwise the gateway is open).
    pub fn is_enabled(&self) -> bool {
        !self.keys.is_empty()
    }

    /// The key the request presents, checked against every configured key.
    pub fn check(&self, headers: &HeaderMap) -> Result<KeyId, GatewayError> {
        if !self.is_enabled() {
            return Ok(self.anonymous.clone());
        }
        let presented = presented_key(headers).ok_or_else(|| GatewayError::unauthorized(false))?;
        // Compare against every key without stopping early, so timing says nothing about
        // which key (or how much of one) matched.
        let mut found = None;
        for (id, key) in self.keys.iter() {
            if bool::from(key.as_ref().ct_eq(presented)) {
                found = Some(id);
            }
        }
        found
            .cloned()
            .ok_or_else(|| GatewayError::unauthorized(true))
    }
}

fn presented_key(headers: &HeaderMap) -> Option<&[u8]> {
    if let Some(value) = headers.get(AUTHORIZATION) {
        let value = value.as_bytes();
        let token = value
            .get(..7)
            .filter(|p| p.eq_ignore_ascii_case(b"bearer "))
            .map(|_| &value[7..]);
        return token.map(<[u8]>::trim_ascii).filter(|t| !t.is_empty());
    }
    headers
        .get("x-api-key")
        .map(|v| v.as_bytes().trim_ascii())
        .filter(|t| !t.is_empty())
}

/// Layer that applies the [`Auth`] middleware.
#[derive(Debug, Clone)]
pub struct AuthLayer {
    keys: Keys,
}

impl AuthLayer {
    /// Checks requests against `keys`.
    pub fn new(keys: Keys) -> Self {
        Self { keys }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Auth<S>;
    fn layer(&self, inner: S) -> Auth<S> {
        Auth {
            inner,
            keys: self.keys.clone(),
        }
    }
}

/// Rejects requests without a valid gateway key (401) and tags the rest with their [`KeyId`].
#[derive(Debug, Clone)]
pub struct Auth<S> {
    inner: S,
    keys: Keys,
}

impl<S, B> Service<Request<B>> for Auth<S>
where
    S: Service<Request<B>, Response = Response<Body>>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Either<Ready<Result<Response<Body>, S::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        match self.keys.check(req.headers()) {
            Ok(id) => {
                req.extensions_mut().insert(id);
                Either::Right(self.inner.call(req))
            }
            Err(err) => {
                let protocol = Endpoint::from_path(req.uri().path())
                    .map_or(Protocol::OpenAi, Endpoint::protocol);
                Either::Left(future::ready(Ok(err.into_response_as(protocol))))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(name: &str, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
        h
    }

    #[test]
    fn accepts_bearer_and_x_api_key_and_names_the_key() {
        let keys = Keys::new(
            Some("sk-master".into()),
            vec![("team-a".into(), "sk-a".into())],
        );
        assert_eq!(
            &*keys
                .check(&headers("authorization", "Bearer sk-master"))
                .unwrap()
                .0,
            "master"
        );
        assert_eq!(
            &*keys
                .check(&headers("authorization", "bearer sk-a"))
                .unwrap()
                .0,
            "team-a"
        );
        assert_eq!(
            &*keys.check(&headers("x-api-key", "sk-a")).unwrap().0,
            "team-a"
        );
    }

    #[test]
    fn rejects_missing_wrong_and_prefix_keys() {
        let keys = Keys::new(Some("sk-master".into()), vec![]);
        for h in [
            HeaderMap::new(),
            headers("authorization", "Bearer sk-maste"),
            headers("authorization", "Bearer sk-master2"),
            headers("authorization", "Basic sk-master"),
            headers("authorization", "Bearer "),
            headers("x-api-key", "nope"),
        ] {
            let err = keys.check(&h).unwrap_err();
            assert_eq!(err.status(), http::StatusCode::UNAUTHORIZED);
        }
    }

    #[test]
    fn open_without_keys() {
        let keys = Keys::new(None, vec![]);
        assert!(!keys.is_enabled());
        assert_eq!(&*keys.check(&HeaderMap::new()).unwrap().0, "anonymous");
    }
}
