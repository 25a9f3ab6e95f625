//! Native event streams → OpenAI chunks, one event at a time, as pure functions of the
//! bytes fed in.

use bytes::BytesMut;

use super::Native;
use crate::error::GatewayError;
use crate::protocol::Protocol;
use crate::sse::{self, Decoder};

/// Turns a native event stream into OpenAI chunks, one event at a time.
pub(crate) trait StreamTranslator {
    /// Translates one event (its `event:` name, if any, and its `data:`), appending what
    /// the client gets to `out`. `Ok(false)`: the stream is complete, ignore the rest.
    /// `Err`: the upstream reported a failure; the stream ends with it as an error event.
    fn event(
        &mut self,
        name: Option<&[u8]>,
        data: &[u8],
        out: &mut BytesMut,
    ) -> Result<bool, GatewayError>;

    /// The upstream ended without a final event: finish the stream, or fail it.
    fn end(&mut self, out: &mut BytesMut) -> Result<(), GatewayError>;

    /// The API the client reads: the shape of the error event that ends a failed stream.
    fn protocol(&self) -> Protocol {
        Protocol::OpenAi
    }

    /// Ends a failed stream with `err`: by default the protocol's error event.
    fn fail(&mut self, err: &GatewayError, out: &mut BytesMut) {
        out.extend_from_slice(&sse::error_event_as(self.protocol(), err));
    }

    /// What to send while the upstream is silent, if the client's protocol has it
    /// (Anthropic's `ping`), once the stream has started.
    fn keepalive(&self) -> Option<&'static [u8]> {
        None
    }
}

/// What [`feed`] left.
pub(crate) enum Fed {
    /// More events may follow.
    More,
    /// The upstream reported a failure.
    Failed(GatewayError),
    /// The stream is complete.
    Ended,
}

/// Feeds one upstream frame through the decoder into the translator, appending the
/// client's bytes to `out`.
pub(crate) fn feed<T: StreamTranslator>(
    decoder: &mut Decoder,
    translator: &mut T,
    data: &[u8],
    out: &mut BytesMut,
) -> Fed {
    let mut failure = None;
    let mut ended = false;
    decoder.feed(
        data,
        &mut |event| match translator.event(event.name, &event.data, out) {
            Ok(true) => true,
            Ok(false) => {
                ended = true;
                false
            }
            Err(err) => {
                failure = Some(err);
                false
            }
        },
    );
    match failure {
        Some(err) => Fed::Failed(err),
        None if ended => Fed::Ended,
        None => Fed::More,
    }
}

/// The end of the upstream body: the last (unterminated) event, then the translator's
/// own end; a failure becomes an SSE `error` event.
pub(crate) fn finish<T: StreamTranslator>(
    decoder: &mut Decoder,
    translator: &mut T,
    out: &mut BytesMut,
) {
    let mut failure = None;
    let mut ended = false;
    decoder.finish(
        &mut |event| match translator.event(event.name, &event.data, out) {
            Ok(more) => {
                ended = !more;
                more
            }
            Err(err) => {
                failure = Some(err);
                false
            }
        },
    );
    if let Some(err) = failure {
        translator.fail(&err, out);
    } else if !ended {
        if let Err(err) = translator.end(out) {
            translator.fail(&err, out);
        }
    }
}

/// A native SSE stream translated frame by frame, outside any HTTP body: what
/// the executors' translated bodies do, for tests, benches and embedding.
pub struct StreamTranslation {
    translator: Box<dyn StreamTranslator + Send>,
    decoder: Decoder,
    done: bool,
}

impl std::fmt::Debug for StreamTranslation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamTranslation")
            .field("done", &self.done)
            .finish()
    }
}

impl StreamTranslator for Box<dyn StreamTranslator + Send> {
    fn event(
        &mut self,
        name: Option<&[u8]>,
        data: &[u8],
        out: &mut BytesMut,
    ) -> Result<bool, GatewayError> {
        (**self).event(name, data, out)
    }
    fn end(&mut self, out: &mut BytesMut) -> Result<(), GatewayError> {
        (**self).end(out)
    }
    fn protocol(&self) -> Protocol {
        (**self).protocol()
    }
    fn fail(&mut self, err: &GatewayError, out: &mut BytesMut) {
        (**self).fail(err, out);
    }
    fn keepalive(&self) -> Option<&'static [u8]> {
        (**self).keepalive()
    }
}

impl StreamTranslation {
    /// A translation for a stream of `native` answering `model`; the usage chunk is
    /// emitted when `include_usage`.
    pub fn new(native: Native, model: &str, include_usage: bool) -> Self {
        let translator: Box<dyn StreamTranslator + Send> = match native {
            Native::Anthropic => Box::new(super::anthropic::AnthropicStream::new(
                "anthropic".into(),
                include_usage,
                None,
            )),
            Native::Gemini => Box::new(super::gemini::GeminiStream::new(
                "gemini".into(),
                model,
                include_usage,
            )),
        };
        Self {
            translator,
            decoder: Decoder::default(),
            done: false,
        }
    }

    /// The translation of an OpenAI chat stream into Anthropic's Messages events, as a
    /// Messages client served by a chat upstream gets it.
    pub fn chat_to_messages(model: &str) -> Self {
        Self {
            translator: Box::new(super::messages::MessagesStream::new(model, "chat".into())),
            decoder: Decoder::default(),
            done: false,
        }
    }

    /// The translation of an OpenAI chat stream into the Responses API's events, as a
    /// Responses client served by a chat upstream gets it.
    pub fn chat_to_responses(model: &str) -> Self {
        let request = serde_json::json!({"model": model, "input": "", "stream": true});
        let echo = super::responses::Echo::new(request.as_object().expect("an object"), model);
        Self {
            translator: Box::new(super::responses::ResponsesStream::new(echo, "chat".into())),
            decoder: Decoder::default(),
            done: false,
        }
    }

    /// What the client gets for one more upstream frame.
    pub fn feed(&mut self, frame: &[u8]) -> bytes::Bytes {
        let mut out = BytesMut::new();
        if !self.done {
            match feed(&mut self.decoder, &mut self.translator, frame, &mut out) {
                Fed::More => {}
                Fed::Ended => self.done = true,
                Fed::Failed(err) => {
                    self.translator.fail(&err, &mut out);
                    self.done = true;
                }
            }
        }
        out.freeze()
    }

    /// What the client gets when the upstream body ends.
    pub fn finish(&mut self) -> bytes::Bytes {
        let mut out = BytesMut::new();
        if !self.done {
            self.done = true;
            finish(&mut self.decoder, &mut self.translator, &mut out);
        }
        out.freeze()
    }
}
