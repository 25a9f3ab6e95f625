//! Shared by the tests of the native APIs: the recorded fixtures, mock native upstreams
//! that replay them over real HTTP (streams paced event by event), and field-by-field JSON
//! comparison.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use llm_tower::translate::{Native, StreamTranslation};
use llm_tower::Body;
use serde_json::Value;
use tokio::sync::mpsc;

/// A fixture file's bytes (`tests/fixtures/<path>`).
pub fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(format!("tests/fixtures/{path}"))
        .unwrap_or_else(|e| panic!("fixture {path}: {e} (the fixtures live in tests/fixtures)"))
}

pub fn fixture_json(path: &str) -> Value {
    serde_json::from_slice(&fixture(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every difference between two JSON values, as `path: expected != actual` lines.
pub fn diff(expected: &Value, actual: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk("$", expected, actual, &mut out);
    out
}

fn walk(path: &str, e: &Value, a: &Value, out: &mut Vec<String>) {
    match (e, a) {
        (Value::Object(e), Value::Object(a)) => {
            for (k, ev) in e {
                match a.get(k) {
                    Some(av) => walk(&format!("{path}.{k}"), ev, av, out),
                    None => out.push(format!("{path}.{k}: missing (expected {ev})")),
                }
            }
            for k in a.keys().filter(|k| !e.contains_key(*k)) {
                out.push(format!("{path}.{k}: unexpected {}", a[k]));
            }
        }
        (Value::Array(e), Value::Array(a)) if e.len() == a.len() => {
            for (i, (ev, av)) in e.iter().zip(a).enumerate() {
                walk(&format!("{path}[{i}]"), ev, av, out);
            }
        }
        (Value::Number(x), Value::Number(y)) if x.as_f64() == y.as_f64() => {}
        _ if e == a => {}
        _ => {
            let short = |v: &Value| {
                let s = v.to_string();
                if s.len() > 200 {
                    format!("{}…", &s[..200])
                } else {
                    s
                }
            };
            out.push(format!(
                "{path}: expected {} != actual {}",
                short(e),
                short(a)
            ));
        }
    }
}

#[track_caller]
pub fn assert_same(expected: &Value, actual: &Value) {
    let d = diff(expected, actual);
    assert!(d.is_empty(), "differences:\n{}", d.join("\n"));
}

/// The `data:` payloads of an OpenAI SSE body: JSON values, and `[DONE]` as a string.
pub fn chunks(body: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(body)
        .split("\n\n")
        .filter_map(|e| e.lines().find_map(|l| l.strip_prefix("data: ")))
        .map(|d| serde_json::from_str(d).unwrap_or_else(|_| Value::String(d.to_owned())))
        .collect()
}

/// A stream translated in frames of the given sizes (the last size repeats).
pub fn translate(native: Native, stream: &[u8], sizes: &[usize], include_usage: bool) -> Vec<u8> {
    let mut t = StreamTranslation::new(native, "requested-model", include_usage);
    let mut out = Vec::new();
    let mut rest = stream;
    let mut i = 0;
    while !rest.is_empty() {
        let n = sizes
            .get(i)
            .or(sizes.last())
            .copied()
            .unwrap_or(rest.len())
            .clamp(1, rest.len());
        i += 1;
        out.extend_from_slice(&t.feed(&rest[..n]));
        rest = &rest[n..];
    }
    out.extend_from_slice(&t.finish());
    out
}

/// The translation with the per-stream `created` stamp and minted ids normalised, so two
/// runs compare equal.
pub fn normalised(out: &[u8]) -> Vec<Value> {
    chunks(out)
        .into_iter()
        .map(|mut v| {
            if let Some(o) = v.as_object_mut() {
                o.insert("created".into(), 0.into());
            }
            let choices = v.get_mut("choices").and_then(Value::as_array_mut);
            for choice in choices.into_iter().flatten() {
                for call in choice["delta"]["tool_calls"]
                    .as_array_mut()
                    .into_iter()
                    .flatten()
                {
                    // Ids the gateway mints (`call_` + 24 random characters) differ per run.
                    if let Some(id) = call["id"]
                        .as_str()
                        .filter(|id| id.starts_with("call_") && id.len() >= 29)
                    {
                        call["id"] = format!("call_*{}", &id[29..]).into();
                    }
                }
            }
            v
        })
        .collect()
}

/// Asserts that 1-byte frames and random frame sizes give the same output as one frame.
pub fn assert_split_invariant(native: Native, stream: &[u8], include_usage: bool) -> Vec<u8> {
    let whole = translate(native, stream, &[stream.len()], include_usage);
    let expected = normalised(&whole);
    assert_eq!(
        normalised(&translate(native, stream, &[1], include_usage)),
        expected,
        "1-byte frames"
    );
    for seed in 0..50u64 {
        let mut rng = fastrand::Rng::with_seed(seed);
        let sizes: Vec<usize> = (0..stream.len()).map(|_| rng.usize(1..64)).collect();
        assert_eq!(
            normalised(&translate(native, stream, &sizes, include_usage)),
            expected,
            "random frames, seed {seed}"
        );
    }
    whole
}

/// Joins the content / reasoning / tool calls of a translated stream the way the openai SDK
/// accumulates them.
#[derive(Debug, Default)]
pub struct Accumulated {
    pub role: Option<String>,
    pub content: String,
    pub reasoning: String,
    pub refusal: String,
    pub tool_calls: Vec<(String, String, String)>,
    pub finish: Option<String>,
    pub usage: Option<Value>,
    pub done: bool,
    pub error: Option<Value>,
}

pub fn accumulate(out: &[u8]) -> Accumulated {
    let mut acc = Accumulated::default();
    for c in chunks(out) {
        if c == "[DONE]" {
            acc.done = true;
            continue;
        }
        if c.get("error").is_some() {
            acc.error = Some(c["error"].clone());
            continue;
        }
        assert_eq!(c["object"], "chat.completion.chunk", "{c}");
        if !c["usage"].is_null() {
            assert_eq!(
                c["choices"],
                serde_json::json!([]),
                "usage chunk has no choices"
            );
            acc.usage = Some(c["usage"].clone());
        }
        for choice in c["choices"].as_array().unwrap() {
            let d = &choice["delta"];
            if let Some(r) = d["role"].as_str() {
                acc.role = Some(r.to_owned());
            }
            acc.content.push_str(d["content"].as_str().unwrap_or(""));
            acc.reasoning
                .push_str(d["reasoning_content"].as_str().unwrap_or(""));
            acc.refusal.push_str(d["refusal"].as_str().unwrap_or(""));
            for call in d["tool_calls"].as_array().into_iter().flatten() {
                let index = call["index"].as_u64().unwrap() as usize;
                if index == acc.tool_calls.len() {
                    assert!(
                        call["id"].is_string() && call["function"]["name"].is_string(),
                        "first delta names the call: {call}"
                    );
                    acc.tool_calls.push(Default::default());
                } else {
                    assert!(
                        call.get("id").is_none() && call["function"].get("name").is_none(),
                        "later deltas carry only arguments: {call}"
                    );
                }
                let slot = &mut acc.tool_calls[index];
                if let Some(id) = call["id"].as_str() {
                    slot.0 = id.to_owned();
                }
                if let Some(name) = call["function"]["name"].as_str() {
                    slot.1 = name.to_owned();
                }
                slot.2
                    .push_str(call["function"]["arguments"].as_str().unwrap_or(""));
            }
            if let Some(f) = choice["finish_reason"].as_str() {
                assert!(acc.finish.is_none(), "one finish chunk");
                acc.finish = Some(f.to_owned());
            }
        }
    }
    acc
}

/// The SSE body cut into one frame per event (the pacing of a real upstream).
pub fn event_frames(stream: &[u8]) -> Vec<Bytes> {
    let mut frames = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < stream.len() {
        let rest = &stream[i..];
        let len = if rest.starts_with(b"\r\n\r\n") {
            4
        } else if rest.starts_with(b"\n\n") {
            2
        } else {
            0
        };
        if len > 0 {
            frames.push(Bytes::copy_from_slice(&stream[start..i + len]));
            i += len;
            start = i;
        } else {
            i += 1;
        }
    }
    if start < stream.len() {
        frames.push(Bytes::copy_from_slice(&stream[start..]));
    }
    frames
}

/// One canned answer of the replaying upstream.
pub struct Canned {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub frames: Vec<Bytes>,
    pub pace: Duration,
}

impl Canned {
    pub fn json(status: u16, body: Vec<u8>) -> Self {
        Self {
            status,
            headers: vec![("content-type", "application/json".into())],
            frames: vec![body.into()],
            pace: Duration::ZERO,
        }
    }

    pub fn sse(body: &[u8]) -> Self {
        Self {
            status: 200,
            headers: vec![("content-type", "text/event-stream".into())],
            frames: event_frames(body),
            pace: Duration::from_millis(3),
        }
    }

    pub fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }
}

/// What the replaying upstream received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub uri: String,
    pub headers: HeaderMap,
    pub body: Value,
}

/// A mock Anthropic / Gemini server: answers each request with the next canned answer,
/// streaming SSE frames with a pause between events, and records what it was sent.
#[derive(Clone, Default)]
pub struct Replay {
    queue: Arc<Mutex<VecDeque<Canned>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Replay {
    pub fn push(&self, canned: Canned) {
        self.queue.lock().unwrap().push_back(canned);
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

struct ChannelBody(mpsc::Receiver<Bytes>);

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b))))
    }
}

impl tower::Service<Request<Incoming>> for Replay {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Incoming>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            let bytes = body
                .collect()
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            this.seen.lock().unwrap().push(Seen {
                uri: parts.uri.to_string(),
                headers: parts.headers,
                body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            });
            let canned = this.queue.lock().unwrap().pop_front();
            let Some(canned) = canned else {
                return Ok(Response::builder()
                    .status(StatusCode::INTERNAL_SERVER_ERROR)
                    .body(Body::from("no canned answer left"))
                    .unwrap());
            };
            let mut response = Response::builder().status(canned.status);
            for (k, v) in &canned.headers {
                response = response.header(*k, v.as_str());
            }
            let (tx, rx) = mpsc::channel(4);
            tokio::spawn(async move {
                for frame in canned.frames {
                    if tx.send(frame).await.is_err() {
                        return;
                    }
                    if !canned.pace.is_zero() {
                        tokio::time::sleep(canned.pace).await;
                    }
                }
            });
            Ok(response.body(Body::new(ChannelBody(rx))).unwrap())
        })
    }
}

/// A mock Anthropic: the upstream model `X` gets `tests/fixtures/anthropic/X.sse` when
/// streamed, else `X.response.json`; `error-NNN-…` models get `X.json` with status NNN;
/// `count_tokens` answers 42.
#[derive(Clone)]
pub struct Fixtures;

impl tower::Service<Request<Incoming>> for Fixtures {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Incoming>) -> Self::Future {
        Box::pin(async move {
            let path = req.uri().path().to_owned();
            let body = req.into_body().collect().await.unwrap().to_bytes();
            let request: Value = serde_json::from_slice(&body).unwrap();
            let model = request["model"].as_str().unwrap().to_owned();
            let json = |status: u16, body: Vec<u8>| {
                Response::builder()
                    .status(status)
                    .header("content-type", "application/json")
                    .header("request-id", "req_fixture")
                    .body(Body::full(body))
                    .unwrap()
            };
            if path.ends_with("/count_tokens") {
                return Ok(json(200, br#"{"input_tokens":42}"#.to_vec()));
            }
            if let Some(rest) = model.strip_prefix("error-") {
                let status: u16 = rest[..3].parse().unwrap();
                return Ok(json(status, fixture(&format!("anthropic/{model}.json"))));
            }
            if request["stream"] == true {
                let frames = event_frames(&fixture(&format!("anthropic/{model}.sse")));
                let stream = futures_util::stream::iter(
                    frames
                        .into_iter()
                        .map(|f| Ok::<_, Infallible>(http_body::Frame::data(f))),
                );
                return Ok(Response::builder()
                    .header("content-type", "text/event-stream")
                    .body(Body::new(http_body_util::StreamBody::new(stream)))
                    .unwrap());
            }
            Ok(json(
                200,
                fixture(&format!("anthropic/{model}.response.json")),
            ))
        })
    }
}
