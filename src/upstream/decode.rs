//! An upstream body in the identity encoding, whatever the upstream chose.
//!
//! The gateway asks for no encoding (the client's `Accept-Encoding` never crosses), but a
//! server or a proxy in front of it may compress anyway. Metering, the cache, translation
//! and the end-of-stream checks read the bytes, so a `gzip` or `deflate` body is decoded
//! frame by frame as it arrives (a stream stays a stream); any other encoding is a 502.

use std::io::Write;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use flate2::write::{GzDecoder, ZlibDecoder};
use http::header::{HeaderMap, CONTENT_ENCODING, CONTENT_LENGTH};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use crate::body::BoxError;
use crate::error::GatewayError;

/// The body of an upstream response, decoded.
#[derive(Debug)]
pub struct UpstreamIncoming {
    inner: Incoming,
    // Boxed: the decoders' state is large and rare.
    decoder: Option<Box<Decoder>>,
    finished: bool,
}

#[derive(Debug)]
enum Decoder {
    Gzip(GzDecoder<Vec<u8>>),
    Deflate(ZlibDecoder<Vec<u8>>),
}

impl Decoder {
    fn write(&mut self, data: &[u8]) -> std::io::Result<Vec<u8>> {
        match self {
            Self::Gzip(d) => {
                d.write_all(data)?;
                Ok(std::mem::take(d.get_mut()))
            }
            Self::Deflate(d) => {
                d.write_all(data)?;
                Ok(std::mem::take(d.get_mut()))
            }
        }
    }

    fn finish(&mut self) -> std::io::Result<Vec<u8>> {
        match self {
            Self::Gzip(d) => {
                d.try_finish()?;
                Ok(std::mem::take(d.get_mut()))
            }
            Self::Deflate(d) => {
                d.try_finish()?;
                Ok(std::mem::take(d.get_mut()))
            }
        }
    }
}

impl UpstreamIncoming {
    /// `inner` as `headers` describe it; a decoded body loses its `Content-Encoding` and
    /// `Content-Length`. An encoding other than gzip, deflate or identity is an error.
    pub(crate) fn new(
        inner: Incoming,
        headers: &mut HeaderMap,
        provider: &str,
    ) -> Result<Self, GatewayError> {
        let decoder = match headers.get(CONTENT_ENCODING).map(|v| v.as_bytes()) {
            None => None,
            Some(e) if e.eq_ignore_ascii_case(b"identity") => None,
            Some(e) if e.eq_ignore_ascii_case(b"gzip") || e.eq_ignore_ascii_case(b"x-gzip") => {
                Some(Decoder::Gzip(GzDecoder::new(Vec::new())))
            }
            Some(e) if e.eq_ignore_ascii_case(b"deflate") => {
                Some(Decoder::Deflate(ZlibDecoder::new(Vec::new())))
            }
            Some(other) => {
                return Err(GatewayError::upstream_protocol(
                    provider,
                    format_args!(
                        "unsupported content-encoding `{}`",
                        String::from_utf8_lossy(other)
                    ),
                ))
            }
        };
        if decoder.is_some() {
            headers.remove(CONTENT_ENCODING);
            headers.remove(CONTENT_LENGTH);
        }
        Ok(Self {
            inner,
            decoder: decoder.map(Box::new),
            finished: false,
        })
    }
}

impl Body for UpstreamIncoming {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let Some(decoder) = this.decoder.as_mut() else {
            return Pin::new(&mut this.inner)
                .poll_frame(cx)
                .map_err(BoxError::from);
        };
        loop {
            if this.finished {
                return Poll::Ready(None);
            }
            let decoded = match std::task::ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => decoder.write(&data),
                    Err(trailers) => return Poll::Ready(Some(Ok(trailers))),
                },
                Some(Err(err)) => return Poll::Ready(Some(Err(err.into()))),
                None => {
                    this.finished = true;
                    decoder.finish()
                }
            };
            match decoded {
                Ok(out) if out.is_empty() => continue,
                Ok(out) => return Poll::Ready(Some(Ok(Frame::data(Bytes::from(out))))),
                Err(err) => {
                    this.finished = true;
                    return Poll::Ready(Some(Err(format!("cannot decode the body: {err}").into())));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self.decoder {
            None => self.inner.is_end_stream(),
            Some(_) => self.finished,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self.decoder {
            None => self.inner.size_hint(),
            Some(_) => SizeHint::default(),
        }
    }
}
