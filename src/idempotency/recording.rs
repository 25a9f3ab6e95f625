//! A response in flight, recorded as it passes so that duplicates can join it: they get
//! the head once it is known, every frame already sent, then the rest as it arrives.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Response, StatusCode};
use http_body::{Frame, SizeHint};
use tokio::sync::watch;

use super::key::Fingerprint;
use crate::body::{Body, BoxError};
use crate::error::GatewayError;
use crate::protocol::Protocol;
use crate::sse;
use crate::tap::{self, Observer};

/// One key's response while it is produced.
pub(crate) struct Recording {
    pub(crate) fingerprint: Fingerprint,
    /// The client's API: the shape of the errors made here.
    pub(crate) protocol: Protocol,
    state: Mutex<State>,
    /// Bumped whenever `state` changes.
    changed: watch::Sender<()>,
}

#[derive(Default)]
struct State {
    head: Option<(StatusCode, HeaderMap)>,
    frames: Vec<Bytes>,
    size: usize,
    end: Option<End>,
}

/// How a recorded response ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// Whole.
    Complete,
    /// The body failed partway (upstream failure, or the first client left).
    Broken,
    /// No response at all: the first client left before it started. Joiners start over.
    Abandoned,
}

impl Recording {
    pub(crate) fn new(fingerprint: Fingerprint, protocol: Protocol) -> Arc<Self> {
        Arc::new(Self {
            fingerprint,
            protocol,
            state: Mutex::new(State::default()),
            changed: watch::Sender::new(()),
        })
    }

    fn update(&self, f: impl FnOnce(&mut State)) {
        f(&mut self.state.lock().expect("not poisoned"));
        self.changed.send_replace(());
    }

    pub(crate) fn set_head(&self, status: StatusCode, headers: HeaderMap) {
        self.update(|s| s.head = Some((status, headers)));
    }

    pub(crate) fn push(&self, data: &Bytes) {
        self.update(|s| {
            s.size += data.len();
            s.frames.push(data.clone());
        });
    }

    pub(crate) fn end(&self, end: End) {
        self.update(|s| {
            if s.end.is_none() {
                s.end = Some(end);
            }
        });
    }

    /// A whole response at once (a replay, or an error made here).
    pub(crate) fn fill(&self, status: StatusCode, headers: HeaderMap, body: Bytes) {
        self.update(|s| {
            s.head = Some((status, headers));
            s.size = body.len();
            s.frames = vec![body];
            s.end = Some(End::Complete);
        });
    }

    pub(crate) fn ended(&self) -> Option<End> {
        self.state.lock().expect("not poisoned").end
    }

    /// The recorded body so far, as one buffer, with its head.
    pub(crate) fn snapshot(&self) -> Option<(StatusCode, HeaderMap, Bytes)> {
        let state = self.state.lock().expect("not poisoned");
        let (status, headers) = state.head.clone()?;
        let mut body = BytesMut::with_capacity(state.size);
        state.frames.iter().for_each(|f| body.extend_from_slice(f));
        Some((status, headers, body.freeze()))
    }

    /// Waits for the head, then answers with a body that follows the recording; `None`
    /// when there will be no response to join (the first client left before it started).
    pub(crate) async fn join(self: &Arc<Self>) -> Option<Response<Body>> {
        let mut changed = self.changed.subscribe();
        loop {
            {
                let state = self.state.lock().expect("not poisoned");
                if let Some((status, headers)) = &state.head {
                    let mut response = Response::new(Body::new(JoinBody {
                        recording: self.clone(),
                        changed: changed.clone(),
                        next: 0,
                        sse: is_sse(headers),
                        done: false,
                        wait: None,
                    }));
                    *response.status_mut() = *status;
                    *response.headers_mut() = headers.clone();
                    return Some(response);
                }
                if state.end.is_some() {
                    return None;
                }
            }
            if changed.changed().await.is_err() {
                return None;
            }
        }
    }
}

pub(crate) use crate::sse::is_event_stream as is_sse;

type Wait = Pin<Box<dyn std::future::Future<Output = Result<(), watch::error::RecvError>> + Send>>;

/// A joiner's body: the recorded frames from the start, then each new one.
struct JoinBody {
    recording: Arc<Recording>,
    changed: watch::Receiver<()>,
    next: usize,
    sse: bool,
    done: bool,
    wait: Option<Wait>,
}

impl http_body::Body for JoinBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            if let Some(wait) = &mut this.wait {
                match wait.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(_) => this.wait = None,
                }
            }
            // Mark the current version seen before reading, so no change is missed.
            this.changed.borrow_and_update();
            let state = this.recording.state.lock().expect("not poisoned");
            if let Some(frame) = state.frames.get(this.next) {
                this.next += 1;
                return Poll::Ready(Some(Ok(Frame::data(frame.clone()))));
            }
            match state.end {
                Some(End::Complete) => {
                    this.done = true;
                    return Poll::Ready(None);
                }
                Some(End::Broken | End::Abandoned) => {
                    this.done = true;
                    let failure = GatewayError::upstream_protocol(
                        "idempotency",
                        "the original request of this Idempotency-Key failed mid-response",
                    );
                    return Poll::Ready(Some(if this.sse {
                        Ok(Frame::data(sse::error_event_as(
                            this.recording.protocol,
                            &failure,
                        )))
                    } else {
                        Err(Box::new(failure))
                    }));
                }
                None => {}
            }
            drop(state);
            let mut changed = this.changed.clone();
            this.wait = Some(Box::pin(async move { changed.changed().await }));
        }
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

/// Taps the first request's body (see [`Tap`](crate::tap::Tap)): every frame goes to the
/// client and into the recording; `on_end` runs once, when the body ends, fails, or is
/// dropped (the client left). A stream that reported a failure in band is recorded whole
/// (joiners get what the client got) and, without its `[DONE]`, never stored.
pub(crate) struct Recorder<F: FnOnce(End)> {
    recording: Arc<Recording>,
    on_end: F,
}

impl<F: FnOnce(End)> Recorder<F> {
    pub(crate) fn new(recording: Arc<Recording>, on_end: F) -> Self {
        Self { recording, on_end }
    }
}

impl<F: FnOnce(End)> Observer for Recorder<F> {
    fn frame(&mut self, data: &Bytes) {
        self.recording.push(data);
    }

    fn end(self, end: tap::End) {
        // In-band errors are not looked for: recorded as sent, and never stored without `[DONE]`.
        let end = match end {
            tap::End::Complete | tap::End::ErrorEvent => End::Complete,
            tap::End::Failed | tap::End::Cancelled => End::Broken,
        };
        self.recording.end(end);
        (self.on_end)(end);
    }
}
