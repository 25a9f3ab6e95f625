//! Server-sent events as the OpenAI API frames them: `data: {json}\n\n`, ending with
//! `data: [DONE]\n\n`.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::GatewayError;

/// The event that ends every OpenAI stream.
pub const DONE: &[u8] = b"data: [DONE]\n\n";

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_event_carries_the_openai_error_body() {
        let event = error_event(&GatewayError::internal("boom"));
        let text = std::str::from_utf8(&event).unwrap();
        assert!(text.starts_with("event: error\ndata: {\"error\":{\"message\":\"boom\""));
        assert!(text.ends_with("}\n\n"));
    }
}
