//! Gateway keys: who may use the gateway, and under which name.
//!
//! Clients present a key as `Authorization: Bearer KEY` or `x-api-key: KEY`. Keys are
//! compared in constant time; the request then carries the key's name as a [`KeyId`]
//! extension (`master` for the master key), which metering and logs use instead of the key.
//! With no key configured every request passes, as [`KeyId`] `anonymous`.
//!
//! Keys beyond the configured ones (virtual keys, created at run time) come from a
//! [`KeyLookup`]: asked only for a key that is not configured, it answers from memory
//! when it can and otherwise asynchronously, and adds its own extensions to the request.
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

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::AUTHORIZATION;
use http::{Extensions, HeaderMap, Request, Response};
use pin_project_lite::pin_project;
use subtle::ConstantTimeEq;
use tower::{Layer, Service};

use crate::body::Body;
use crate::error::GatewayError;
use crate::protocol::Protocol;
use crate::request::{end_phase, Endpoint, Phases};

/// The name of the key a request was made with.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyId(pub Arc<str>);

/// The team of the key a request was made with, when it has one (a request extension).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Team(pub Arc<str>);

/// A key found by a [`KeyLookup`]: its name and what the request carries for it.
#[derive(Debug, Clone)]
pub struct Authorized {
    /// The key's name.
    pub id: KeyId,
    /// Added to the request's extensions.
    pub extensions: Extensions,
}

/// What [`KeyLookup::fetch`] returns.
pub type LookupFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Authorized, GatewayError>> + Send + 'a>>;

/// Keys that are not configured but may exist (virtual keys): asked for a presented key
/// that none of the configured ones matched.
pub trait KeyLookup: Send + Sync + 'static {
    /// The answer, when it is known without waiting (`None`: call [`KeyLookup::fetch`]):
    /// the key's name, with what the request carries for it put in `extensions` (the
    /// request's own: on the request path nothing is built to be moved there).
    fn cached(&self, key: &str, extensions: &mut Extensions)
        -> Option<Result<KeyId, GatewayError>>;
    /// The answer, asking whatever stores the keys.
    fn fetch<'a>(&'a self, key: &'a str) -> LookupFuture<'a>;
}

/// The configured keys.
#[derive(Clone)]
pub struct Keys {
    keys: Arc<[(KeyId, Box<[u8]>)]>,
    anonymous: KeyId,
    lookup: Option<Arc<dyn KeyLookup>>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("keys", &self.keys.len())
            .field("lookup", &self.lookup.is_some())
            .finish()
    }
}

/// Who a request is, as far as the configured keys tell.
enum Checked {
    Configured(KeyId),
    /// Presented, not configured: for the lookup (see [`presented_secret`]).
    Other,
}

/// The presented key as text (a key that is not is no key anyone was given).
fn presented_secret(headers: &HeaderMap) -> Option<&str> {
    presented_key(headers).and_then(|key| std::str::from_utf8(key).ok())
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
            lookup: None,
        }
    }

    /// Asks `lookup` about keys that are not configured.
    #[must_use]
    pub fn with_lookup(mut self, lookup: Arc<dyn KeyLookup>) -> Self {
        self.lookup = Some(lookup);
        self
    }

    /// Whether a master key is configured.
    pub fn has_master(&self) -> bool {
        self.keys.iter().any(|(id, _)| &*id.0 == "master")
    }

    /// Whether any key is configured (otherwise the gateway is open).
    pub fn is_enabled(&self) -> bool {
        !self.keys.is_empty() || self.lookup.is_some()
    }

    /// The key the request presents, checked against every configured key (not the
    /// lookup's: see [`Keys::authorize`]).
    pub fn check(&self, headers: &HeaderMap) -> Result<KeyId, GatewayError> {
        match self.check_configured(headers)? {
            Checked::Configured(id) => Ok(id),
            Checked::Other => Err(GatewayError::unauthorized(true)),
        }
    }

    /// The key the request presents: a configured one, or one the lookup knows.
    pub async fn authorize(&self, headers: &HeaderMap) -> Result<Authorized, GatewayError> {
        match self.check_configured(headers)? {
            Checked::Configured(id) => Ok(Authorized {
                id,
                extensions: Extensions::new(),
            }),
            Checked::Other => match (&self.lookup, presented_secret(headers)) {
                (Some(lookup), Some(key)) => {
                    let mut extensions = Extensions::new();
                    match lookup.cached(key, &mut extensions) {
                        Some(known) => known.map(|id| Authorized { id, extensions }),
                        None => lookup.fetch(key).await,
                    }
                }
                _ => Err(GatewayError::unauthorized(true)),
            },
        }
    }

    fn check_configured(&self, headers: &HeaderMap) -> Result<Checked, GatewayError> {
        if !self.is_enabled() {
            return Ok(Checked::Configured(self.anonymous.clone()));
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
        match found {
            Some(id) => Ok(Checked::Configured(id.clone())),
            None if self.lookup.is_some() => Ok(Checked::Other),
            None => Err(GatewayError::unauthorized(true)),
        }
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
    traced: bool,
}

impl AuthLayer {
    /// Checks requests against `keys`.
    pub fn new(keys: Keys) -> Self {
        Self {
            keys,
            traced: false,
        }
    }

    /// With `traced`, each request gets a [`Phases`] log, the key check its first entry.
    pub fn traced(mut self, traced: bool) -> Self {
        self.traced = traced;
        self
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Auth<S>;
    fn layer(&self, inner: S) -> Auth<S> {
        Auth {
            inner,
            keys: self.keys.clone(),
            traced: self.traced,
        }
    }
}

/// Rejects requests without a valid gateway key (401) and tags the rest with their [`KeyId`].
#[derive(Debug, Clone)]
pub struct Auth<S> {
    inner: S,
    keys: Keys,
    traced: bool,
}

pin_project! {
    /// The future of [`Auth`]: the inner service's own for a configured key (or one the
    /// lookup knew), boxed only when the lookup has to wait.
    pub struct AuthFuture<F> {
        #[pin]
        kind: AuthKind<F>,
    }
}

pin_project! {
    #[project = AuthKindProj]
    enum AuthKind<F> {
        Inner { #[pin] future: F },
        Refused { response: Option<Response<Body>> },
        Lookup { future: Pin<Box<dyn Future<Output = Response<Body>> + Send>> },
    }
}

impl<F, E> Future for AuthFuture<F>
where
    F: Future<Output = Result<Response<Body>, E>>,
{
    type Output = Result<Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            AuthKindProj::Inner { future } => future.poll(cx),
            AuthKindProj::Refused { response } => {
                Poll::Ready(Ok(response.take().expect("polled after completion")))
            }
            AuthKindProj::Lookup { future } => future.as_mut().poll(cx).map(Ok),
        }
    }
}

fn refused<F>(err: GatewayError, path: &str) -> AuthFuture<F> {
    let protocol = Endpoint::from_path(path).map_or(Protocol::OpenAi, Endpoint::protocol);
    AuthFuture {
        kind: AuthKind::Refused {
            response: Some(err.into_response_as(protocol)),
        },
    }
}

impl<S, B> Service<Request<B>> for Auth<S>
where
    S: Service<Request<B>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: std::fmt::Display,
    B: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = AuthFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let timer = self.traced.then(|| {
            let phases = Phases::default();
            req.extensions_mut().insert(phases.clone());
            phases.timer("auth")
        });
        match self.keys.check_configured(req.headers()) {
            Ok(Checked::Configured(id)) => {
                req.extensions_mut().insert(id);
                if self.keys.is_enabled() {
                    end_phase(timer, "configured key");
                }
                return AuthFuture {
                    kind: AuthKind::Inner {
                        future: self.inner.call(req),
                    },
                };
            }
            Ok(Checked::Other) => {}
            Err(err) => return refused(err, req.uri().path()),
        }
        let lookup = self.keys.lookup.as_ref().expect("only with a lookup");
        let (mut parts, body) = req.into_parts();
        let Some(secret) = presented_secret(&parts.headers) else {
            return refused(GatewayError::unauthorized(true), parts.uri.path());
        };
        match lookup.cached(secret, &mut parts.extensions) {
            Some(Ok(id)) => {
                parts.extensions.insert(id);
                end_phase(timer, "key cached");
                AuthFuture {
                    kind: AuthKind::Inner {
                        future: self.inner.call(Request::from_parts(parts, body)),
                    },
                }
            }
            Some(Err(err)) => refused(err, parts.uri.path()),
            None => {
                // Not known here: ask the store, in a future of its own. The service that
                // was made ready goes with the request; a clone stays.
                let key = secret.to_owned();
                let lookup = lookup.clone();
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                let mut req = Request::from_parts(parts, body);
                AuthFuture {
                    kind: AuthKind::Lookup {
                        future: Box::pin(async move {
                            let protocol = Endpoint::from_path(req.uri().path())
                                .map_or(Protocol::OpenAi, Endpoint::protocol);
                            match lookup.fetch(&key).await {
                                Ok(authorized) => {
                                    req.extensions_mut().insert(authorized.id);
                                    req.extensions_mut().extend(authorized.extensions);
                                    end_phase(timer, "key fetched");
                                    match inner.call(req).await {
                                        Ok(response) => response,
                                        Err(err) => GatewayError::internal(err.to_string())
                                            .into_response_as(protocol),
                                    }
                                }
                                Err(err) => err.into_response_as(protocol),
                            }
                        }),
                    },
                }
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
