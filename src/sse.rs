//! Server-sent events: writing them as the OpenAI API frames them (`data: {json}\n\n`,
//! ending with `data: [DONE]\n\n`), and the one incremental decoder every reader uses.
//!
//! [`Decoder`] cuts events out of each frame in place (memchr over the frame's bytes); only
//! an event that a frame leaves unfinished is copied, into a carry buffer that the next
//! frame completes. Lines may end in `\n` or `\r\n` (Gemini frames with CRLF), and the last
//! event counts even without its terminating blank line ([`Decoder::finish`]).

use std::borrow::Cow;

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::GatewayError;
use crate::protocol::Protocol;

/// The event that ends every OpenAI stream.
pub const DONE: &[u8] = b"data: [DONE]\n\n";

/// Whether a response's `content-type` is `text/event-stream`.
pub fn is_event_stream(headers: &http::HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"))
}

/// `data: {json}\n\n` for one serialised payload.
pub fn data_event(json: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(json.len() + 8);
    out.put_slice(b"data: ");
    out.put_slice(json);
    out.put_slice(b"\n\n");
    out.freeze()
}

/// The event that ends a stream which failed after it started: an `error` event whose data
/// is the OpenAI error body, so SDKs raise it as an API error.
pub fn error_event(error: &GatewayError) -> Bytes {
    error_event_as(Protocol::OpenAi, error)
}

/// The `error` event in `protocol`'s shape (Anthropic's: `event: error` with
/// `{"type":"error","error":{…}}`).
pub fn error_event_as(protocol: Protocol, error: &GatewayError) -> Bytes {
    let json = error.to_json_as(protocol);
    let mut out = BytesMut::with_capacity(json.len() + 22);
    out.put_slice(b"event: error\ndata: ");
    out.put_slice(&json);
    out.put_slice(b"\n\n");
    out.freeze()
}

/// One decoded event: its `event:` name and its `data:` (lines joined by `\n`).
#[derive(Debug, PartialEq)]
pub struct Event<'a> {
    /// The `event:` field, if any.
    pub name: Option<&'a [u8]>,
    /// The `data:` lines, joined by `\n`.
    pub data: Cow<'a, [u8]>,
}

/// Splits a byte stream into SSE events.
#[derive(Debug, Default)]
pub struct Decoder {
    carry: BytesMut,
}

/// Whether the caller wants more events.
pub type More = bool;

impl Decoder {
    /// Feeds one frame, calling `on_event` for every event it completes, in order. Stops
    /// early (dropping the rest) when `on_event` returns `false`; returns whether it did not.
    pub fn feed(&mut self, mut frame: &[u8], on_event: &mut dyn FnMut(Event<'_>) -> More) -> More {
        // Finish the event a previous frame left open, one line at a time.
        while !self.carry.is_empty() {
            let Some(nl) = memchr::memchr(b'\n', frame) else {
                self.carry.extend_from_slice(frame);
                return true;
            };
            self.carry.extend_from_slice(&frame[..=nl]);
            frame = &frame[nl + 1..];
            if ends_with_blank_line(&self.carry) {
                let event = std::mem::take(&mut self.carry);
                let more = dispatch(&event, on_event);
                self.carry = event;
                self.carry.clear();
                if !more {
                    return false;
                }
            }
        }
        // Whole events straight out of the frame.
        let mut start = 0;
        let mut pos = 0;
        while let Some(i) = memchr::memchr(b'\n', &frame[pos..]) {
            let nl = pos + i;
            let line = &frame[pos..nl];
            if line.is_empty() || line == b"\r" {
                if !dispatch(&frame[start..pos], on_event) {
                    return false;
                }
                start = nl + 1;
            }
            pos = nl + 1;
        }
        self.carry.extend_from_slice(&frame[start..]);
        true
    }

    /// At the end of the stream: the last event if it was not terminated by a blank line.
    pub fn finish(&mut self, on_event: &mut dyn FnMut(Event<'_>) -> More) -> More {
        let rest = std::mem::take(&mut self.carry);
        dispatch(&rest, on_event)
    }
}

/// Whether `buf` (ending in `\n`) ends with an empty line.
fn ends_with_blank_line(buf: &[u8]) -> bool {
    let body = &buf[..buf.len() - 1];
    let body = body.strip_suffix(b"\r").unwrap_or(body);
    body.is_empty() || body.ends_with(b"\n")
}

/// Parses the lines of one event and hands it over; empty and comment-only events are
/// skipped.
fn dispatch(event: &[u8], on_event: &mut dyn FnMut(Event<'_>) -> More) -> More {
    let mut name = None;
    let mut data: Option<Cow<'_, [u8]>> = None;
    // Lines found with memchr: a byte-by-byte split costs about as much as parsing the
    // event's JSON.
    let mut start = 0;
    let ends = memchr::memchr_iter(b'\n', event).chain(std::iter::once(event.len()));
    for end in ends {
        let line = &event[start..end];
        start = end + 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Some(value) = line.strip_prefix(b"data:") {
            let value = value.strip_prefix(b" ").unwrap_or(value);
            data = Some(match data {
                None => Cow::Borrowed(value),
                Some(prev) => {
                    let mut joined = prev.into_owned();
                    joined.push(b'\n');
                    joined.extend_from_slice(value);
                    Cow::Owned(joined)
                }
            });
        } else if let Some(value) = line.strip_prefix(b"event:") {
            name = Some(value.trim_ascii());
        }
    }
    match data {
        Some(data) => on_event(Event { name, data }),
        None => true,
    }
}

/// Every event of a whole body, in order, the last one included even without its blank
/// line; stops early when `on_event` returns `false`.
pub fn each_event(body: &[u8], on_event: &mut dyn FnMut(Event<'_>) -> More) {
    let mut decoder = Decoder::default();
    if decoder.feed(body, on_event) {
        decoder.finish(on_event);
    }
}

/// The bytes of the event around position `at` of a body: from after the blank line before
/// it (or the start) to after the blank line that ends it (or the end). Walks line ends
/// with `memrchr`/`memchr` (a reverse substring search is scalar, and would scan the whole
/// body before `at` for a `\r\n` an OpenAI stream never has).
pub(crate) fn event_around(body: &[u8], at: usize) -> std::ops::Range<usize> {
    let (before, after) = body.split_at(at);
    // A line end that follows a line end (`\n\n`, `\n\r\n`) is a blank line.
    let start = memchr::memrchr_iter(b'\n', before)
        .find(|&nl| before[..nl].ends_with(b"\n") || before[..nl].ends_with(b"\n\r"))
        .map_or(0, |nl| nl + 1);
    let end = memchr::memchr_iter(b'\n', after)
        .find_map(|nl| {
            let rest = &after[nl + 1..];
            (rest.starts_with(b"\n") || rest.starts_with(b"\r\n"))
                .then(|| at + nl + 1 + if rest[0] == b'\n' { 1 } else { 2 })
        })
        .unwrap_or(body.len());
    start..end
}

/// How a Responses stream event ends the stream, if it does.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ResponseEvent {
    /// `response.completed` or `response.incomplete`: the whole response.
    Final,
    /// `response.failed` or `error`.
    Failed,
}

/// Whether an event ends a Responses stream: by its `event:` name, or (for servers that
/// send none) by its data's leading `type`.
pub(crate) fn response_event(name: Option<&[u8]>, data: &[u8]) -> Option<ResponseEvent> {
    let kind = match name {
        Some(name) => name,
        None => {
            let rest = data.strip_prefix(b"{\"type\":\"")?;
            &rest[..memchr::memchr(b'"', rest)?]
        }
    };
    match kind {
        b"response.completed" | b"response.incomplete" => Some(ResponseEvent::Final),
        b"response.failed" | b"error" => Some(ResponseEvent::Failed),
        _ => None,
    }
}

/// A stream is whole when its last event is the one that ends its API's streams (OpenAI's
/// `[DONE]`, Anthropic's `message_stop`, the Responses API's `response.completed` or
/// `response.incomplete`); anything else was cut short.
pub(crate) fn ends_whole(body: &[u8]) -> bool {
    let trimmed = body.trim_ascii_end();
    // The last event starts after the last blank line (`\n\n`, or `\r\n\r\n`).
    let last = memchr::memmem::rfind(trimmed, b"\n\n")
        .map(|i| i + 2)
        .max(memchr::memmem::rfind(trimmed, b"\n\r\n").map(|i| i + 3))
        .unwrap_or(0);
    let mut whole = false;
    each_event(&trimmed[last..], &mut |event| {
        let data = event.data.trim_ascii();
        whole = data == b"[DONE]"
            || event.name == Some(b"message_stop")
            || data.starts_with(b"{\"type\":\"message_stop\"")
            || response_event(event.name, data) == Some(ResponseEvent::Final);
        true
    });
    whole
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_event_of_a_whole_body_includes_an_unterminated_last_one() {
        let mut seen = Vec::new();
        each_event(
            b": ping\n\ndata: {}\r\n\r\nevent: error\ndata: x\ndata: y\n\ndata: [DONE]",
            &mut |e| {
                seen.push((e.name.map(<[u8]>::to_vec), e.data.into_owned()));
                true
            },
        );
        assert_eq!(
            seen,
            [
                (None, b"{}".to_vec()),
                (Some(b"error".to_vec()), b"x\ny".to_vec()),
                (None, b"[DONE]".to_vec()),
            ]
        );
    }

    #[test]
    fn the_event_around_a_position_is_cut_at_its_blank_lines() {
        let body = b"data: a\n\nevent: x\r\ndata: bcd\r\n\r\ndata: e";
        let at = |needle: &[u8]| memchr::memmem::find(body, needle).unwrap();
        assert_eq!(&body[event_around(body, at(b"a"))], b"data: a\n\n");
        assert_eq!(
            &body[event_around(body, at(b"bcd"))],
            b"event: x\r\ndata: bcd\r\n\r\n"
        );
        assert_eq!(&body[event_around(body, body.len() - 1)], b"data: e");
    }

    #[test]
    fn error_event_carries_the_openai_error_body() {
        let event = error_event(&GatewayError::internal("boom"));
        let text = std::str::from_utf8(&event).unwrap();
        assert!(text.starts_with("event: error\ndata: {\"error\":{\"message\":\"boom\""));
        assert!(text.ends_with("}\n\n"));
    }
}

#[cfg(test)]
mod decoder_tests {
    use super::*;

    fn run(frames: &[&[u8]]) -> Vec<(Option<String>, String)> {
        let mut out = Vec::new();
        let mut decoder = Decoder::default();
        let mut push = |e: Event<'_>| {
            out.push((
                e.name.map(|n| String::from_utf8_lossy(n).into_owned()),
                String::from_utf8_lossy(&e.data).into_owned(),
            ));
            true
        };
        for frame in frames {
            decoder.feed(frame, &mut push);
        }
        decoder.finish(&mut push);
        out
    }

    #[test]
    fn events_are_the_same_however_the_bytes_are_split() {
        let stream: &[u8] = b": comment\n\nevent: a\ndata: {\"x\":1}\n\ndata: {}\r\n\r\ndata: l1\ndata: l2\n\nevent: b\r\ndata: [9]\r\n\r\ndata: tail";
        let whole = run(&[stream]);
        assert_eq!(
            whole,
            [
                (Some("a".into()), "{\"x\":1}".into()),
                (None, "{}".into()),
                (None, "l1\nl2".into()),
                (Some("b".into()), "[9]".into()),
                (None, "tail".into()),
            ]
        );
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(run(&bytes), whole);
        for seed in 0..200 {
            let mut rng = fastrand::Rng::with_seed(seed);
            let mut frames = Vec::new();
            let mut rest = stream;
            while !rest.is_empty() {
                let n = rng.usize(1..=rest.len().min(12));
                frames.push(&rest[..n]);
                rest = &rest[n..];
            }
            assert_eq!(run(&frames), whole, "seed {seed}");
        }
    }
}
