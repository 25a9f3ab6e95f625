//! W3C trace context (`traceparent`): what an incoming request continues, and what the
//! gateway sends upstream.

/// One request's place in a trace: its trace, its own span, the caller's span (when the
/// request came with a `traceparent`), and whether the trace is sampled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    /// The trace (16 bytes, never all zero).
    pub trace_id: [u8; 16],
    /// The request's span.
    pub span_id: [u8; 8],
    /// The caller's span, from its `traceparent`.
    pub parent_id: Option<[u8; 8]>,
    /// Whether the request's span is recorded and exported.
    pub sampled: bool,
    /// When the request's span started.
    pub started: std::time::SystemTime,
}

fn hex_into<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out).filter(|b| b.iter().any(|&x| x != 0))
}

/// Random ids (a thread-local generator: ids need to be unique, not secret, and a
/// system call per request would cost more than the rest of the context).
fn random<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    while out.iter().all(|&b| b == 0) {
        for chunk in out.chunks_mut(8) {
            chunk.copy_from_slice(&fastrand::u64(..).to_le_bytes()[..chunk.len()]);
        }
    }
    out
}

/// A new span id, for a child of a request's span.
pub(crate) fn new_span_id() -> [u8; 8] {
    random()
}

impl TraceContext {
    /// The context of a request with this `traceparent` header (`None`: or an unreadable
    /// one): the caller's trace continues, with a new span; the caller's sampling decision
    /// holds. Without a caller, a new trace, sampled when `sample` says so of its id.
    pub fn start(traceparent: Option<&[u8]>, sample: impl Fn(&[u8; 16]) -> bool) -> Self {
        if let Some((trace_id, parent, flags)) = traceparent.and_then(parse) {
            return Self {
                trace_id,
                span_id: random(),
                parent_id: Some(parent),
                sampled: flags & 1 == 1,
                started: std::time::SystemTime::now(),
            };
        }
        let trace_id = random();
        Self {
            sampled: sample(&trace_id),
            trace_id,
            span_id: random(),
            parent_id: None,
            started: std::time::SystemTime::now(),
        }
    }

    /// The `traceparent` the upstream gets: this trace, this request's span as its parent.
    pub fn traceparent(&self) -> String {
        // On the request path: written digit by digit (`format!` cost ~8k instructions).
        let mut out = String::with_capacity(55);
        out.push_str("00-");
        push_hex(&mut out, &self.trace_id);
        out.push('-');
        push_hex(&mut out, &self.span_id);
        out.push_str(if self.sampled { "-01" } else { "-00" });
        out
    }

    /// The trace id as 32 hex digits (what logs print).
    pub fn trace_hex(&self) -> String {
        hex(&self.trace_id)
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    push_hex(&mut out, bytes);
    out
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
}

/// `version-traceid-parentid-flags`, version `00` (or a later one, read as `00`).
fn parse(value: &[u8]) -> Option<([u8; 16], [u8; 8], u8)> {
    let text = std::str::from_utf8(value).ok()?.trim();
    let mut parts = text.split('-');
    let version = parts.next()?;
    if version.len() != 2 || version == "ff" || !version.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let trace_id = hex_into::<16>(parts.next()?)?;
    let parent = hex_into::<8>(parts.next()?)?;
    let flags = parts.next().filter(|f| f.len() == 2)?;
    let flags = u8::from_str_radix(flags, 16).ok()?;
    if version == "00" && parts.next().is_some() {
        return None;
    }
    Some((trace_id, parent, flags))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_callers_trace_continues_and_a_new_one_is_made_otherwise() {
        let incoming = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let ctx = TraceContext::start(Some(incoming), |_| false);
        assert_eq!(ctx.trace_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(
            ctx.parent_id,
            Some([0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7])
        );
        assert!(ctx.sampled, "the caller's decision holds");
        let out = ctx.traceparent();
        assert!(
            out.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-") && out.ends_with("-01"),
            "{out}"
        );
        assert_ne!(&out[36..52], "00f067aa0ba902b7", "a span of its own");

        for bad in [
            &b"00-00000000000000000000000000000000-00f067aa0ba902b7-01"[..],
            b"zz",
            b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
        ] {
            let ctx = TraceContext::start(Some(bad), |_| true);
            assert_eq!(ctx.parent_id, None, "{}", String::from_utf8_lossy(bad));
            assert!(ctx.sampled);
        }
        let unsampled = TraceContext::start(None, |_| false);
        assert!(!unsampled.sampled && unsampled.traceparent().ends_with("-00"));
    }
}
