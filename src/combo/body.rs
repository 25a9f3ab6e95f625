//! Committing to an attempt: an answer counts once its first content has arrived. Until
//! then nothing has reached the client and the combo may still try another target.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::Response;
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;

use super::health::InFlight;
use crate::body::{Body, BoxError};
use crate::error::GatewayError;
use crate::sse;
use crate::tap::{End, Observer, Tap};

/// What an attempt has read of its answer before committing to it.
pub(crate) struct Opening {
    /// Frames already read, in order.
    head: Vec<Bytes>,
    /// The rest of the body, unread (pinned where it is, since an upstream body is `!Unpin`).
    rest: Pin<Box<Body>>,
}

/// Reads the answer until it is worth committing to: a JSON body whole (small, and
/// useless to the client until complete), an SSE stream up to its first content event.
/// A body that fails or ends before that is an upstream failure, as is a first event that
/// is an error.
pub(crate) async fn open(
    response: Response<Body>,
    provider: &str,
) -> Result<(http::response::Parts, Opening), GatewayError> {
    let (parts, body) = response.into_parts();
    let mut body = Box::pin(body);
    let sse = parts
        .headers
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    if !sse {
        let whole = body
            .collect()
            .await
            .map_err(|e| {
                GatewayError::upstream_protocol(provider, format_args!("body broken: {e}"))
            })?
            .to_bytes();
        let opening = Opening {
            head: vec![whole],
            rest: Box::pin(Body::empty()),
        };
        return Ok((parts, opening));
    }
    let mut head: Vec<Bytes> = Vec::new();
    let mut decoder = sse::Decoder::default();
    loop {
        let frame = match body.as_mut().frame().await {
            None => {
                // The whole stream may have come without its last blank line.
                let mut first = None;
                decoder.finish(&mut |event| {
                    first = first_event(event.name, &event.data, provider);
                    first.is_none()
                });
                return match first {
                    Some(Ok(())) => Ok((
                        parts,
                        Opening {
                            head,
                            rest: Box::pin(Body::empty()),
                        },
                    )),
                    Some(Err(err)) => Err(err),
                    None => Err(GatewayError::upstream_protocol(
                        provider,
                        "the stream ended before its first event",
                    )),
                };
            }
            Some(Err(e)) => {
                return Err(GatewayError::upstream_protocol(
                    provider,
                    format_args!("stream broken before its first event: {e}"),
                ))
            }
            Some(Ok(frame)) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let mut first: Option<Result<(), GatewayError>> = None;
        decoder.feed(&data, &mut |event| {
            first = first_event(event.name, &event.data, provider);
            first.is_none()
        });
        head.push(data);
        match first {
            Some(Ok(())) => return Ok((parts, Opening { head, rest: body })),
            Some(Err(err)) => return Err(err),
            None => {}
        }
    }
}

/// What the first event with data says: `Ok` for content, `Err` for an error event or a
/// `[DONE]` before any content.
fn first_event(
    name: Option<&[u8]>,
    payload: &[u8],
    provider: &str,
) -> Option<Result<(), GatewayError>> {
    let is_error = name == Some(b"error") || payload.starts_with(b"{\"error\"");
    if is_error {
        let message = serde_json::from_slice::<serde_json::Value>(payload)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(payload).into_owned());
        return Some(Err(GatewayError::upstream_protocol(
            provider,
            format_args!("the stream failed before its first event: {message}"),
        )));
    }
    if payload.trim_ascii() == b"[DONE]" {
        return Some(Err(GatewayError::upstream_protocol(
            provider,
            "the stream ended before its first event",
        )));
    }
    Some(Ok(()))
}

/// The committed answer: what was read while opening it, then the rest as it comes,
/// frame by frame, through the one [`Tap`]: the target's in-flight count ends when the
/// body does (or when the client leaves).
pub(crate) struct ComboBody {
    head: std::vec::IntoIter<Bytes>,
    rest: Tap<Pin<Box<Body>>, InFlight>,
}

impl Observer for InFlight {
    fn end(self, _: End) {} // dropped: no longer in flight
}

impl ComboBody {
    pub(crate) fn new(opening: Opening, in_flight: InFlight) -> Self {
        Self {
            head: opening.head.into_iter(),
            rest: Tap::new(opening.rest, in_flight),
        }
    }
}

impl http_body::Body for ComboBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if let Some(data) = this.head.next() {
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        Pin::new(&mut this.rest).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.head.len() == 0 && self.rest.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let head: u64 = self.head.as_slice().iter().map(|b| b.len() as u64).sum();
        let rest = self.rest.size_hint();
        let mut hint = SizeHint::new();
        hint.set_lower(head + rest.lower());
        if let Some(upper) = rest.upper() {
            hint.set_upper(head + upper);
        }
        hint
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use http_body_util::BodyExt;

    use super::*;
    use crate::combo::health::TargetState;
    use crate::combo::CircuitBreakerSettings;
    use crate::executor::Target;

    #[tokio::test]
    async fn a_target_is_no_longer_busy_once_its_answer_ended() {
        let state = Arc::new(TargetState::new(
            Target {
                provider: "p".into(),
                model: "m".into(),
            },
            &CircuitBreakerSettings::default(),
        ));
        let opening = Opening {
            head: vec![Bytes::from_static(b"data: {}\n\n")],
            rest: Box::pin(Body::from("data: [DONE]\n\n")),
        };
        let mut body = Box::pin(ComboBody::new(opening, InFlight::start(&state)));
        assert_eq!(state.in_flight(), 1);
        while let Some(frame) = body.frame().await {
            frame.unwrap();
        }
        assert_eq!(state.in_flight(), 0, "ended, though not yet dropped");
    }
}
