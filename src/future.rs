//! The future of a layer that passes most requests straight to its inner service and
//! handles the others in a future of its own: the pass-through stays unboxed.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Response;
use pin_project_lite::pin_project;

use crate::body::Body;
use crate::error::GatewayError;

type BoxFuture = Pin<Box<dyn Future<Output = Result<Response<Body>, GatewayError>> + Send>>;

pin_project! {
    /// The inner service's future `F` as is, or the layer's own, boxed.
    pub struct LayerFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Direct { #[pin] future: F },
        Boxed { future: BoxFuture },
    }
}

impl<F> LayerFuture<F> {
    /// The inner service's future, untouched.
    pub(crate) fn direct(future: F) -> Self {
        Self {
            kind: Kind::Direct { future },
        }
    }

    /// The layer's own handling of the request.
    pub(crate) fn boxed(
        future: impl Future<Output = Result<Response<Body>, GatewayError>> + Send + 'static,
    ) -> Self {
        Self {
            kind: Kind::Boxed {
                future: Box::pin(future),
            },
        }
    }
}

impl<F> Future for LayerFuture<F>
where
    F: Future<Output = Result<Response<Body>, GatewayError>>,
{
    type Output = Result<Response<Body>, GatewayError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Direct { future } => future.poll(cx),
            KindProj::Boxed { future } => future.as_mut().poll(cx),
        }
    }
}
