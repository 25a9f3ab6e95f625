//! The admin side of a reloading gateway: the admin API under `/admin/` ([`api`]) and the
//! web UI under `/ui/` ([`ui`]), beside the gateway's own routes.
//!
//! ```no_run
//! # async fn demo() -> Result<(), llm_tower::BoxError> {
//! use llm_tower::reload::{ConfigSource, Reloader};
//! let reloader = Reloader::open(ConfigSource::new("gateway.yaml"), None, None)?;
//! let service = llm_tower::admin::service(reloader.clone()); // serve it
//! tokio::spawn(reloader.watch()); // file changes and SIGHUP
//! # let _ = service; Ok(()) }
//! ```
//!
//! Every admin route needs the master key (a config without one has no admin API); the UI
//! signs in with it and keeps it in the browser's session storage only.

pub mod api;
mod redact;
pub mod ui;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tower::Service;

use crate::body::{Body, BoxError};
use crate::gateway::{served, Gateway, Served};
use crate::reload::{Reloadable, Reloader};

/// The largest admin request body.
const MAX_BODY: usize = 1 << 20;

/// The gateway of `reloader` with the admin API and the UI, ready to serve.
pub fn service(reloader: Reloader) -> Served<Admin> {
    served(Admin::new(reloader))
}

/// Answers `/admin/*` and `/ui/*`, and passes everything else to the current gateway.
#[derive(Clone)]
pub struct Admin {
    reloader: Reloader,
    gateway: Reloadable,
}

impl Admin {
    /// Over `reloader`'s gateway.
    pub fn new(reloader: Reloader) -> Self {
        Self {
            gateway: reloader.service(),
            reloader,
        }
    }
}

pin_project! {
    /// The future of [`Admin`].
    pub struct AdminFuture<F> {
        #[pin]
        inner: Inner<F>,
    }
}

pin_project! {
    #[project = InnerProj]
    enum Inner<F> {
        Gateway { #[pin] future: F },
        Admin { future: Pin<Box<dyn Future<Output = Response<Body>> + Send>> },
    }
}

impl<F> AdminFuture<F> {
    fn admin(future: impl Future<Output = Response<Body>> + Send + 'static) -> Self {
        Self {
            inner: Inner::Admin {
                future: Box::pin(future),
            },
        }
    }
}

impl<F> Future for AdminFuture<F>
where
    F: Future<Output = Result<Response<Body>, Infallible>>,
{
    type Output = Result<Response<Body>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().inner.project() {
            InnerProj::Gateway { future } => future.poll(cx),
            InnerProj::Admin { future } => future.as_mut().poll(cx).map(Ok),
        }
    }
}

impl<B> Service<Request<B>> for Admin
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = AdminFuture<<Gateway as Service<Request<B>>>::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        <Reloadable as Service<Request<B>>>::poll_ready(&mut self.gateway, cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let path = req.uri().path();
        if path == "/ui" || path.starts_with("/ui/") {
            let response = ui::asset(req.method(), path);
            return AdminFuture::admin(async move { response });
        }
        if path != "/admin" && !path.starts_with("/admin/") {
            return AdminFuture {
                inner: Inner::Gateway {
                    future: self.gateway.call(req),
                },
            };
        }
        let reloader = self.reloader.clone();
        let (parts, body) = req.into_parts();
        AdminFuture::admin(async move {
            let body = match crate::gateway::read_body(body, MAX_BODY).await {
                Ok(body) => body,
                Err(err) => return err.into_response(),
            };
            let answer = api::serve(
                &reloader,
                &parts.method,
                parts.uri.path(),
                &parts.headers,
                body,
            )
            .await;
            match answer {
                Ok(value) => crate::gateway::json_response(
                    StatusCode::OK,
                    serde_json::to_vec(&value).expect("json").into(),
                ),
                Err(err) => err.into_response(),
            }
        })
    }
}
