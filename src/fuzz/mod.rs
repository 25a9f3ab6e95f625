//! Fuzzing on the stable toolchain: every parser and translator the gateway runs on bytes
//! from a client or an upstream, driven by mutated recorded inputs (the wire fixtures and
//! the example config), each case under `catch_unwind`.
//!
//! `cargo run --release --features test-util --example fuzz -- TARGET ITERATIONS` runs one
//! target (`fuzz/run.sh` runs them all for 10 million each); `tests/fuzz.rs` runs each for
//! a few thousand in CI. A target fails on a panic, or on a property it checks (the SSE
//! decoder's events do not depend on how the bytes are split).
//!
//! Only with the `test-util` feature: not part of the library's API.

mod mutate;

use std::panic::{catch_unwind, AssertUnwindSafe};

pub use self::mutate::Mutator;
use crate::request::{Endpoint, LlmRequest};
use crate::translate::{self, Native, StreamTranslation};

/// What can be fuzzed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The SSE decoder: same events for any split of the bytes.
    Sse,
    /// The request parser, for every endpoint.
    Request,
    /// OpenAI chat request → Anthropic and Gemini requests.
    NativeRequest,
    /// Anthropic and Gemini JSON responses → chat.
    NativeResponse,
    /// Anthropic and Gemini error bodies → the client's error.
    NativeError,
    /// Anthropic and Gemini streams → chat chunks, split at random.
    NativeStream,
    /// A chat stream → Messages and Responses events, split at random.
    InboundStream,
    /// Messages and Responses requests → chat; chat responses → Messages and Responses.
    Inbound,
    /// The YAML config loader.
    Config,
}

impl Target {
    /// Every target.
    pub const ALL: [Target; 9] = [
        Target::Sse,
        Target::Request,
        Target::NativeRequest,
        Target::NativeResponse,
        Target::NativeError,
        Target::NativeStream,
        Target::InboundStream,
        Target::Inbound,
        Target::Config,
    ];

    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Target::Sse => "sse",
            Target::Request => "request",
            Target::NativeRequest => "native-request",
            Target::NativeResponse => "native-response",
            Target::NativeError => "native-error",
            Target::NativeStream => "native-stream",
            Target::InboundStream => "inbound-stream",
            Target::Inbound => "inbound",
            Target::Config => "config",
        }
    }

    /// The target called `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Which recorded inputs it starts from: JSON bodies, SSE streams or YAML.
    fn seeds(self) -> Seeds {
        match self {
            Target::Sse | Target::NativeStream | Target::InboundStream => Seeds::Streams,
            Target::Config => Seeds::Yaml,
            _ => Seeds::Json,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Seeds {
    Json,
    Streams,
    Yaml,
}

/// One run's count of executions, and the first input that failed, if any.
#[derive(Debug)]
pub struct Report {
    /// Inputs tried.
    pub executions: u64,
    /// The input that panicked or broke a property, and what it said.
    pub failure: Option<(Vec<u8>, String)>,
}

/// Runs `target` on `iterations` mutated inputs from `mutator`; stops at the first failure.
pub fn run(target: Target, mutator: &mut Mutator, iterations: u64) -> Report {
    let corpus = target.seeds();
    for executions in 0..iterations {
        let input = mutator.next(corpus);
        let split = mutator.split_points(input.len());
        let outcome = catch_unwind(AssertUnwindSafe(|| execute(target, &input, &split)));
        if let Err(panic) = outcome {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "panic".to_owned());
            return Report {
                executions: executions + 1,
                failure: Some((input, message)),
            };
        }
    }
    Report {
        executions: iterations,
        failure: None,
    }
}

/// One input through `target`; `split` says where to cut it into frames.
pub fn execute(target: Target, input: &[u8], split: &[usize]) {
    match target {
        Target::Sse => sse_split_invariance(input, split),
        Target::Request => {
            for endpoint in [
                Endpoint::ChatCompletions,
                Endpoint::Embeddings,
                Endpoint::Messages,
                Endpoint::CountTokens,
                Endpoint::Responses,
            ] {
                if let Ok(mut llm) = LlmRequest::parse(endpoint, input) {
                    let mut body = bytes::Bytes::copy_from_slice(input);
                    llm.request_usage(&mut body);
                    llm.rewrite_model(&mut body, "other/model");
                    // The rewritten body is still the request, under another model.
                    let again =
                        LlmRequest::parse(endpoint, &body).expect("a rewritten body parses");
                    assert_eq!(again.model(), "other/model");
                }
            }
        }
        Target::NativeRequest => {
            for native in [Native::Anthropic, Native::Gemini] {
                for stream in [false, true] {
                    let _ = translate::request(native, input, "m", stream);
                }
            }
        }
        Target::NativeResponse => {
            for native in [Native::Anthropic, Native::Gemini] {
                if let Ok(chat) = translate::response(native, input, "m") {
                    serde_json::from_slice::<serde_json::Value>(&chat).expect("chat JSON");
                }
            }
        }
        Target::NativeError => {
            for native in [Native::Anthropic, Native::Gemini] {
                for status in [400, 401, 404, 429, 500, 529] {
                    let status = http::StatusCode::from_u16(status).expect("valid");
                    let _ = translate::error(native, status, &http::HeaderMap::new(), input);
                }
            }
        }
        Target::NativeStream => {
            for native in [Native::Anthropic, Native::Gemini] {
                for include_usage in [false, true] {
                    let mut t = StreamTranslation::new(native, "m", include_usage);
                    stream_through(&mut t, input, split);
                }
            }
        }
        Target::InboundStream => {
            stream_through(&mut StreamTranslation::chat_to_messages("m"), input, split);
            stream_through(&mut StreamTranslation::chat_to_responses("m"), input, split);
        }
        Target::Inbound => translate::fuzz_inbound(input),
        Target::Config => {
            if let Ok(yaml) = std::str::from_utf8(input) {
                let _ = crate::Config::from_yaml(yaml);
            }
        }
    }
}

fn stream_through(t: &mut StreamTranslation, input: &[u8], split: &[usize]) {
    let mut at = 0;
    for &cut in split.iter().chain(std::iter::once(&input.len())) {
        let _ = t.feed(&input[at..cut]);
        at = cut;
    }
    let _ = t.finish();
}

/// The events of `input` fed whole equal those of `input` fed in the frames of `split`.
fn sse_split_invariance(input: &[u8], split: &[usize]) {
    type Events = Vec<(Option<Vec<u8>>, Vec<u8>)>;
    fn collect(frames: &[&[u8]]) -> Events {
        let mut decoder = crate::sse::Decoder::default();
        let mut events = Vec::new();
        let mut on_event = |e: crate::sse::Event<'_>| {
            events.push((e.name.map(<[u8]>::to_vec), e.data.into_owned()));
            true
        };
        for frame in frames {
            decoder.feed(frame, &mut on_event);
        }
        decoder.finish(&mut on_event);
        events
    }
    let mut frames = Vec::new();
    let mut at = 0;
    for &cut in split.iter().chain(std::iter::once(&input.len())) {
        frames.push(&input[at..cut]);
        at = cut;
    }
    let whole = collect(&[input]);
    let split = collect(&frames);
    assert!(
        whole == split,
        "the events depend on the frame splits: {frames:?}"
    );
}
