//! The alias middleware.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use super::table::{Aliases, ResolvedModel};
use crate::request::LlmRequest;

/// Layer that applies the [`Alias`] middleware.
#[derive(Debug, Clone)]
pub struct AliasLayer {
    aliases: Arc<Aliases>,
}

impl AliasLayer {
    /// Rewrites with `aliases`.
    pub fn new(aliases: Aliases) -> Self {
        Self {
            aliases: Arc::new(aliases),
        }
    }
}

impl<S> Layer<S> for AliasLayer {
    type Service = Alias<S>;
    fn layer(&self, inner: S) -> Alias<S> {
        Alias {
            inner,
            aliases: self.aliases.clone(),
        }
    }
}

/// Rewrites an aliased model name to its target, in the body and in the parsed
/// [`LlmRequest`], and records both names as a [`ResolvedModel`]. Requests for anything
/// else pass through untouched, with the inner service's own future.
#[derive(Debug, Clone)]
pub struct Alias<S> {
    inner: S,
    aliases: Arc<Aliases>,
}

pin_project! {
    /// The future of [`Alias`]: the inner future, which also puts the [`ResolvedModel`]
    /// into the response's extensions for the layers outside (metering).
    pub struct AliasFuture<F> {
        #[pin]
        inner: F,
        resolved: Option<ResolvedModel>,
    }
}

impl<F, B, E> Future for AliasFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut output = std::task::ready!(this.inner.poll(cx));
        if let (Ok(response), Some(resolved)) = (&mut output, this.resolved.take()) {
            response.extensions_mut().insert(resolved);
        }
        Poll::Ready(output)
    }
}

impl<S, B> Service<Request<Bytes>> for Alias<S>
where
    S: Service<Request<Bytes>, Response = Response<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = AliasFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Bytes>) -> Self::Future {
        let aliases = &self.aliases;
        let resolved = req
            .extensions()
            .get::<LlmRequest>()
            .and_then(|llm| aliases.resolve(llm.model()));
        if let Some(resolved) = resolved {
            // `Request` lends its body and extensions one at a time: move the body out.
            let mut body = std::mem::take(req.body_mut());
            let llm = req
                .extensions_mut()
                .get_mut::<LlmRequest>()
                .expect("checked above");
            let requested = Arc::from(llm.model());
            llm.rewrite_model(&mut body, &resolved);
            *req.body_mut() = body;
            let resolved = ResolvedModel {
                requested,
                resolved,
            };
            req.extensions_mut().insert(resolved.clone());
            return AliasFuture {
                inner: self.inner.call(req),
                resolved: Some(resolved),
            };
        }
        AliasFuture {
            inner: self.inner.call(req),
            resolved: None,
        }
    }
}
