//! Server-sent events as the OpenAI API frames them: `data: {json}\n\n`, ending with
//! `data: [DONE]\n\n`.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::GatewayError;

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
    let json = error.to_json();
    let mut out = BytesMut::with_capacity(json.len() + 22);
    out.put_slice(b"event: error\ndata: ");
    out.put_slice(&json);
    out.put_slice(b"\n\n");
    out.freeze()
}

/// The complete events at the start of `buf` (each without its blank-line terminator),
/// and where the unfinished rest begins. Accepts `\n\n` and `\r\n\r\n` framing.
pub fn complete_events(buf: &[u8]) -> (Vec<&[u8]>, usize) {
    let mut events = Vec::new();
    let mut start = 0;
    loop {
        let rest = &buf[start..];
        let lf = memchr::memmem::find(rest, b"\n\n").map(|i| (i, 2));
        let crlf = memchr::memmem::find(rest, b"\r\n\r\n").map(|i| (i, 4));
        let Some((at, len)) = [lf, crlf].into_iter().flatten().min_by_key(|(i, _)| *i) else {
            return (events, start);
        };
        events.push(&rest[..at]);
        start += at + len;
    }
}

/// The `data:` payload of one event (its lines joined), and its `event:` name if any.
pub fn parse_event(event: &[u8]) -> (Option<&[u8]>, Vec<&[u8]>) {
    let mut name = None;
    let mut data = Vec::new();
    for line in event.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Some(value) = line.strip_prefix(b"event:") {
            name = Some(value.trim_ascii());
        } else if let Some(value) = line.strip_prefix(b"data:") {
            data.push(value.strip_prefix(b" ").unwrap_or(value));
        }
    }
    (name, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complete_events_splits_on_blank_lines_and_keeps_the_rest() {
        let (events, rest) =
            complete_events(b": ping\n\ndata: {}\r\n\r\nevent: error\ndata: x\n\ndata: par");
        assert_eq!(
            events,
            [&b": ping"[..], b"data: {}", b"event: error\ndata: x"]
        );
        assert_eq!(rest, 42);
        let (name, data) = parse_event(events[2]);
        assert_eq!((name, data), (Some(&b"error"[..]), vec![&b"x"[..]]));
    }

    #[test]
    fn error_event_carries_the_openai_error_body() {
        let event = error_event(&GatewayError::internal("boom"));
        let text = std::str::from_utf8(&event).unwrap();
        assert!(text.starts_with("event: error\ndata: {\"error\":{\"message\":\"boom\""));
        assert!(text.ends_with("}\n\n"));
    }
}
