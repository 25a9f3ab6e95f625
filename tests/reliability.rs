//! Faults of upstreams, over real TCP (issue 13's fault suite): each fault × {JSON,
//! stream} × {direct provider, combo}, asserting what the client gets and what the ledger
//! records. Every byte an upstream sent reaches the client; a failure is told as one (an
//! error status, or an `error` event once a stream has started) and recorded as one.

mod support;

use std::time::Duration;

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What a raw upstream does on each connection, in order, after reading the request.
#[derive(Clone)]
enum Step {
    Send(Vec<u8>),
    Wait(Duration),
    /// Close with a TCP reset (SO_LINGER 0).
    Reset,
}

/// An upstream that answers every request with the raw HTTP `response` bytes, then closes.
async fn raw_upstream(response: Vec<u8>) -> String {
    scripted(vec![Step::Send(response)]).await
}

/// An upstream that plays `steps` on every connection, then closes it.
async fn scripted(steps: Vec<Step>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let steps = steps.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                let mut seen = Vec::new();
                // Read the request head and its Content-Length body.
                loop {
                    let n = socket.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    seen.extend_from_slice(&buf[..n]);
                    if let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&seen[..end]).to_ascii_lowercase();
                        let len: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .map_or(0, |v| v.trim().parse().unwrap());
                        if seen.len() >= end + 4 + len {
                            break;
                        }
                    }
                }
                for step in steps {
                    match step {
                        Step::Send(bytes) => {
                            if socket.write_all(&bytes).await.is_err() {
                                return;
                            }
                        }
                        Step::Wait(pause) => tokio::time::sleep(pause).await,
                        Step::Reset => {
                            let _ = socket.set_zero_linger();
                            return;
                        }
                    }
                }
                let _ = socket.shutdown().await;
            });
        }
    });
    format!("http://{addr}")
}

fn sse_with_content_length(body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

const CHUNK: &str = r#"data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}"#;
const FINISH: &str = r#"data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#;

#[tokio::test]
async fn the_last_unterminated_event_of_a_stream_reaches_the_client() {
    for (body, last) in [
        (
            format!("{CHUNK}\n\n{FINISH}\n\ndata: [DONE]"),
            "data: [DONE]",
        ),
        (format!("{CHUNK}\n\n{FINISH}"), FINISH),
        (format!("{CHUNK}\n\n{FINISH}\n"), FINISH),
    ] {
        let url = raw_upstream(sse_with_content_length(&body)).await;
        let gw = gateway(&format!(
            "providers:\n  up: {{ kind: openai, api_base: '{url}/v1' }}\n"
        ))
        .await;
        for include_usage in [false, true] {
            let request = serde_json::json!({"model": "up/m", "stream": true,
                "stream_options": {"include_usage": include_usage},
                "messages": [{"role": "user", "content": "hi"}]});
            let answer = post(
                &format!("{}/v1/chat/completions", gw.url()),
                &request.to_string(),
                &[],
            )
            .await;
            assert_eq!(answer.status, 200, "{}", answer.text());
            let text = answer.text();
            assert!(
                text.contains(last),
                "include_usage {include_usage}: the end is missing:\n{text}"
            );
        }
    }
}

const ANSWER: &str = r#"{"id":"c1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}"#;

fn json_response(body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn chunked_sse_head() -> Vec<u8> {
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
        .to_vec()
}

fn chunk(data: &str) -> Vec<u8> {
    format!("{:x}\r\n{data}\r\n", data.len()).into_bytes()
}

/// A gateway with the faulty upstream `bad`, the mock as `good`, a combo `both` that falls
/// back from one to the other, and a SQLite ledger.
struct Faulty {
    gw: Running,
    _good: Running,
    ledger: TempPath,
}

impl Faulty {
    async fn new(steps: Vec<Step>) -> Self {
        Self::speaking("openai", steps).await
    }

    /// The faulty upstream is of `kind` (`openai`, `anthropic` or `gemini`): its answers are
    /// translated.
    async fn speaking(kind: &str, steps: Vec<Step>) -> Self {
        let bad = scripted(steps).await;
        let (good, _mock) = mock_upstream().await;
        let ledger = TempPath::new("llm-tower-faults", "db");
        let version = if kind == "gemini" { "v1beta" } else { "v1" };
        let gw = gateway(&format!(
            "providers:\n  bad: {{ kind: {kind}, api_base: '{bad}/{version}', api_key: k, first_byte_timeout: 500ms, idle_timeout: 500ms }}\n  good: {{ kind: openai, api_base: '{}/v1' }}\ncombos: {{ both: {{ targets: [bad/m, good/echo] }} }}\nmetering: {{ sqlite_path: '{}' }}\n",
            good.url(),
            ledger.display()
        ))
        .await;
        Self {
            gw,
            _good: good,
            ledger,
        }
    }

    async fn ask(&self, model: &str, stream: bool) -> Answer {
        post(
            &format!("{}/v1/chat/completions", self.gw.url()),
            &chat_body(model, "hello there", stream),
            &[],
        )
        .await
    }

    /// (status, outcome, error_type, attempts) of the ledger's rows, once there are `count`.
    async fn rows(&self, count: usize) -> Vec<(i64, String, Option<String>, i64)> {
        for _ in 0..100 {
            let rows: Vec<_> = rusqlite::Connection::open(&self.ledger)
                .and_then(|conn| {
                    let mut select = conn.prepare(
                        "SELECT status, outcome, error_type, attempts FROM llm_usage ORDER BY id",
                    )?;
                    let rows = select
                        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
                    rows.collect()
                })
                .unwrap_or_default();
            if rows.len() >= count {
                return rows;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("fewer than {count} ledger rows");
    }

    /// Asks `bad/m` then `both`, as JSON or a stream; returns the direct answer and checks
    /// that the combo's came from `good` and was recorded ok after 2 attempts.
    async fn direct_and_combo(&self, stream: bool) -> (Answer, (i64, String, Option<String>, i64)) {
        let direct = self.ask("bad/m", stream).await;
        let combo = self.ask("both", stream).await;
        assert_eq!(combo.status, 200, "combo: {}", combo.text());
        let rows = self.rows(2).await;
        assert_eq!(
            rows[1],
            (200, "ok".to_owned(), None, 2),
            "the combo fell back"
        );
        (direct, rows[0].clone())
    }
}

fn failure(status: i64, outcome: &str) -> (i64, String, Option<String>, i64) {
    (
        status,
        outcome.to_owned(),
        Some("upstream_error".to_owned()),
        1,
    )
}

#[tokio::test]
async fn a_200_with_malformed_json_is_a_502_and_a_combo_falls_back() {
    for body in [r#"{"id":"c1","choices":[{"#, "<html>Bad gateway</html>", ""] {
        let f = Faulty::new(vec![Step::Send(json_response(body))]).await;
        let (direct, row) = f.direct_and_combo(false).await;
        assert_eq!(
            direct.error(http::StatusCode::BAD_GATEWAY)["code"],
            "upstream_protocol_error"
        );
        assert_eq!(row, failure(502, "upstream_error"), "{body}");
    }
}

#[tokio::test]
async fn a_json_answer_cut_mid_body_is_a_502_and_a_combo_falls_back() {
    let whole = json_response(ANSWER);
    let f = Faulty::new(vec![
        Step::Send(whole[..whole.len() - 40].to_vec()),
        Step::Reset,
    ])
    .await;
    let (direct, row) = f.direct_and_combo(false).await;
    assert_eq!(
        direct.error(http::StatusCode::BAD_GATEWAY)["code"],
        "upstream_protocol_error"
    );
    assert_eq!(row, failure(502, "upstream_error"));
}

#[tokio::test]
async fn a_reset_before_the_headers_is_a_502_json_and_stream() {
    for stream in [false, true] {
        let f = Faulty::new(vec![Step::Reset]).await;
        let (direct, row) = f.direct_and_combo(stream).await;
        assert_eq!(direct.status, 502, "{}", direct.text());
        assert_eq!(row, failure(502, "upstream_error"));
    }
}

#[tokio::test]
async fn an_upstream_that_never_answers_is_a_504_timeout_json_and_stream() {
    for stream in [false, true] {
        let f = Faulty::new(vec![Step::Wait(Duration::from_secs(5))]).await;
        let (direct, row) = f.direct_and_combo(stream).await;
        assert_eq!(
            direct.error(http::StatusCode::GATEWAY_TIMEOUT)["code"],
            "upstream_timeout"
        );
        assert_eq!(row, failure(504, "timeout"));
    }
}

#[tokio::test]
async fn a_stream_reset_mid_way_ends_with_an_error_event_recorded_as_an_upstream_error() {
    let mut steps = vec![Step::Send(chunked_sse_head())];
    steps.push(Step::Send(chunk(&format!("{CHUNK}\n\n"))));
    steps.push(Step::Wait(Duration::from_millis(50)));
    steps.push(Step::Reset);
    let f = Faulty::new(steps).await;
    let answer = f.ask("bad/m", true).await;
    let text = answer.text();
    assert_eq!(answer.status, 200);
    assert!(
        text.contains("\"Hi\"") && text.contains("event: error"),
        "{text}"
    );
    assert_eq!(f.rows(1).await[0], failure(200, "upstream_error"));
}

#[tokio::test]
async fn a_stream_that_goes_silent_ends_with_an_error_event_recorded_as_a_timeout() {
    let steps = vec![
        Step::Send(chunked_sse_head()),
        Step::Send(chunk(&format!("{CHUNK}\n\n"))),
        Step::Wait(Duration::from_secs(5)),
    ];
    let f = Faulty::new(steps).await;
    let answer = f.ask("bad/m", true).await;
    let text = answer.text();
    assert!(
        text.contains("event: error") && text.contains("upstream_timeout"),
        "{text}"
    );
    assert_eq!(f.rows(1).await[0], failure(200, "timeout"));
}

#[tokio::test]
async fn a_stream_that_ends_cleanly_without_done_ends_with_an_error_event() {
    // Chunked, terminated properly, but the upstream stopped before `[DONE]`.
    let steps = vec![
        Step::Send(chunked_sse_head()),
        Step::Send(chunk(&format!("{CHUNK}\n\n"))),
        Step::Send(b"0\r\n\r\n".to_vec()),
    ];
    let f = Faulty::new(steps).await;
    for include_usage in [false, true] {
        let request = serde_json::json!({"model": "bad/m", "stream": true,
            "stream_options": {"include_usage": include_usage},
            "messages": [{"role": "user", "content": "hi"}]});
        let answer = post(
            &format!("{}/v1/chat/completions", f.gw.url()),
            &request.to_string(),
            &[],
        )
        .await;
        let text = answer.text();
        assert!(text.contains("\"Hi\""), "{text}");
        assert!(
            text.trim_end().ends_with('}') && text.contains("event: error\ndata: {\"error\""),
            "ends with an error event: {text}"
        );
        assert!(text.contains("upstream_protocol_error"), "{text}");
    }
    let rows = f.rows(2).await;
    assert!(
        rows.iter().all(|r| *r == failure(200, "upstream_error")),
        "{rows:?}"
    );
}

/// A recorded native stream (`tests/fixtures/…`), cut cleanly before the event named `before`.
fn fixture_stream_cut(path: &str, before: &str) -> Vec<u8> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let sse = std::fs::read_to_string(root.join(path)).unwrap();
    let cut = sse
        .find(before)
        .unwrap_or_else(|| panic!("{before} in {path}"));
    let mut steps = chunked_sse_head();
    steps.extend(chunk(&sse[..cut]));
    steps.extend(b"0\r\n\r\n");
    steps
}

#[tokio::test]
async fn a_translated_stream_that_stops_before_its_end_ends_with_an_error_event() {
    // Anthropic's stream before `message_delta` (which carries the stop reason), Gemini's
    // before the chunk with `finishReason`: the content so far, then an error event.
    for (kind, path, before, said) in [
        (
            "anthropic",
            "anthropic/stream-text.sse",
            "event: message_delta",
            "Hello there!",
        ),
        (
            "gemini",
            "gemini/stream-text.sse",
            "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \" is Paris",
            "The capital of France",
        ),
    ] {
        let f = Faulty::speaking(kind, vec![Step::Send(fixture_stream_cut(path, before))]).await;
        let answer = f.ask("bad/m", true).await;
        let text = answer.text();
        assert_eq!(answer.status, 200, "{kind}");
        assert_eq!(content(&events(&text)), said, "{kind}: {text}");
        assert!(
            text.ends_with("\n\n") && text.contains("event: error\ndata: {\"error\""),
            "{kind}: {text}"
        );
        assert!(!text.contains("[DONE]"), "{kind}: {text}");
        assert!(text.contains("upstream_protocol_error"), "{kind}: {text}");
        assert_eq!(f.rows(1).await[0], failure(200, "upstream_error"), "{kind}");
    }
}

#[tokio::test]
async fn a_translated_stream_error_event_is_recorded_with_its_type() {
    // Anthropic's `overloaded_error` mid-stream, after some content.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let text = std::fs::read_to_string(root.join("anthropic/stream-text.sse")).unwrap();
    let error =
        std::fs::read_to_string(root.join("anthropic/stream-error-overloaded.sse")).unwrap();
    let cut = text.find("event: content_block_stop").unwrap();
    let mut steps = chunked_sse_head();
    steps.extend(chunk(&format!("{}{error}", &text[..cut])));
    steps.extend(b"0\r\n\r\n");
    let f = Faulty::speaking("anthropic", vec![Step::Send(steps)]).await;
    let answer = f.ask("bad/m", true).await;
    let body = answer.text();
    assert_eq!(content(&events(&body)), "Hello there!", "{body}");
    assert!(body.contains("\"code\":\"overloaded\""), "{body}");
    let row = &f.rows(1).await[0];
    assert_eq!(
        (row.0, row.1.as_str(), row.2.as_deref()),
        (200, "upstream_error", Some("server_error")),
        "{row:?}"
    );
}

#[tokio::test]
async fn a_gzip_encoded_error_answer_reaches_the_client_decoded() {
    let error = r#"{"error":{"message":"max_tokens is too large: 999999","type":"invalid_request_error","param":"max_tokens","code":null}}"#;
    let mut response = format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-encoding: gzip\r\ncontent-length: {}\r\n\r\n",
        gzip(error.as_bytes()).len()
    )
    .into_bytes();
    response.extend(gzip(error.as_bytes()));
    let f = Faulty::new(vec![Step::Send(response)]).await;
    for stream in [false, true] {
        let answer = f.ask("bad/m", stream).await;
        let got = answer.error(http::StatusCode::BAD_REQUEST);
        assert_eq!(got["message"], "max_tokens is too large: 999999", "{got}");
        assert_eq!(got["param"], "max_tokens", "{got}");
    }
}

#[tokio::test]
async fn a_429_with_retry_after_reaches_the_client_and_a_combo_falls_back() {
    let body = r#"{"error":{"message":"slow down","type":"rate_limit_error","code":"rate_limit_exceeded"}}"#;
    let f = Faulty::new(vec![Step::Send(
        format!("HTTP/1.1 429 Too Many Requests\r\nretry-after: 7\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}", body.len()).into_bytes(),
    )])
    .await;
    let (direct, row) = f.direct_and_combo(false).await;
    assert_eq!(direct.status, 429);
    assert_eq!(direct.headers.get("retry-after").unwrap(), "7");
    assert_eq!(
        row,
        (
            429,
            "error".to_owned(),
            Some("rate_limit_error".to_owned()),
            1
        )
    );
}

#[tokio::test]
async fn a_json_answer_larger_than_the_checked_size_passes_through_whole() {
    // 20 MiB of content: past the 16 MiB read whole and checked, so streamed through.
    let content = "x".repeat(20 << 20);
    let body = ANSWER.replace("\"Hi\"", &format!("\"{content}\""));
    let f = Faulty::new(vec![Step::Send(json_response(&body))]).await;
    let answer = f.ask("bad/m", false).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body.len(), body.len());
    assert_eq!(
        answer.json()["choices"][0]["message"]["content"]
            .as_str()
            .map(str::len),
        Some(20 << 20)
    );
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

fn encoded_response(encoding: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ncontent-encoding: {encoding}\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

#[tokio::test]
async fn a_gzip_encoded_answer_is_decoded_json_and_stream() {
    let stream = format!("{CHUNK}\n\n{FINISH}\n\ndata: [DONE]\n\n");
    let f = Faulty::new(vec![Step::Send(encoded_response(
        "gzip",
        "text/event-stream",
        &gzip(stream.as_bytes()),
    ))])
    .await;
    for include_usage in [false, true] {
        let request = serde_json::json!({"model": "bad/m", "stream": true,
            "stream_options": {"include_usage": include_usage},
            "messages": [{"role": "user", "content": "hi"}]});
        let answer = post(
            &format!("{}/v1/chat/completions", f.gw.url()),
            &request.to_string(),
            &[],
        )
        .await;
        assert_eq!(answer.headers.get("content-encoding"), None);
        assert_eq!(answer.text(), stream, "include_usage {include_usage}");
    }
    let f = Faulty::new(vec![Step::Send(encoded_response(
        "gzip",
        "application/json",
        &gzip(ANSWER.as_bytes()),
    ))])
    .await;
    let answer = f.ask("bad/m", false).await;
    assert_eq!(answer.headers.get("content-encoding"), None);
    assert_eq!(answer.text(), ANSWER);
    let rows = f.rows(1).await;
    assert_eq!(rows[0], (200, "ok".to_owned(), None, 1));
}

#[tokio::test]
async fn an_answer_in_an_unknown_encoding_is_a_502_and_a_combo_falls_back() {
    let f = Faulty::new(vec![Step::Send(encoded_response(
        "br",
        "application/json",
        b"\x0b\x02\x80",
    ))])
    .await;
    let (direct, row) = f.direct_and_combo(false).await;
    let error = direct.error(http::StatusCode::BAD_GATEWAY);
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("content-encoding `br`"),
        "{error}"
    );
    assert_eq!(row, failure(502, "upstream_error"));
}

/// The SSE events of a body, as (name, data) pairs.
fn events(body: &str) -> Vec<(Option<String>, String)> {
    let mut out = Vec::new();
    llm_tower::sse::each_event(body.as_bytes(), &mut |e| {
        out.push((
            e.name.map(|n| String::from_utf8_lossy(n).into_owned()),
            String::from_utf8_lossy(&e.data).into_owned(),
        ));
        true
    });
    out
}

/// Content text of a chat stream's events.
fn content(events: &[(Option<String>, String)]) -> String {
    events
        .iter()
        .filter_map(|(_, data)| serde_json::from_str::<serde_json::Value>(data).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect()
}

const USAGE: &str = r#"data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}"#;

/// Every event the upstream sent reaches the client, whatever the frame splits, the last
/// event's terminator, and the layers on the way (include_usage, metering, cache,
/// idempotency); a replay (cache hit or idempotent) carries the same answer.
#[tokio::test]
async fn every_event_reaches_the_client_over_random_splits_and_layers() {
    let mut rng = fastrand::Rng::with_seed(13);
    for case in 0..48u32 {
        // No stream_options (the gateway then asks for usage itself when it meters, and
        // removes the usage chunk again), or include_usage false / true.
        let include_usage = [None, Some(false), Some(true)][(case % 3) as usize];
        let metering = case & 2 == 2;
        let cache = case & 4 == 4;
        let idempotent = case & 8 == 8;
        let done = rng.u8(..4) != 0;
        let upstream_usage = rng.bool();
        let terminator = ["", "\n", "\n\n", "\r\n\r\n"][rng.usize(..4)];
        let words: Vec<String> = (0..rng.usize(1..6))
            .map(|i| format!("w{case}x{i} "))
            .collect();
        let mut stream = String::new();
        for word in &words {
            stream.push_str(&CHUNK.replace("\"Hi\"", &format!("\"{word}\"")));
            stream.push_str("\n\n");
        }
        stream.push_str(FINISH);
        if upstream_usage {
            stream.push_str("\n\n");
            stream.push_str(USAGE);
        }
        if done {
            stream.push_str("\n\ndata: [DONE]");
        }
        stream.push_str(terminator);
        // Random frames, each its own chunk, a little apart.
        let mut steps = vec![Step::Send(chunked_sse_head())];
        let mut rest = stream.as_str();
        while !rest.is_empty() {
            let mut cut = rng.usize(1..=rest.len().min(80));
            while !rest.is_char_boundary(cut) {
                cut += 1;
            }
            steps.push(Step::Send(chunk(&rest[..cut])));
            steps.push(Step::Wait(Duration::from_millis(1)));
            rest = &rest[cut..];
        }
        steps.push(Step::Send(b"0\r\n\r\n".to_vec()));
        let upstream = scripted(steps).await;
        let metering = if metering {
            "sqlite_path: ':memory:'"
        } else {
            "enabled: false"
        };
        let gw = gateway(&format!(
            "providers:\n  up: {{ kind: openai, api_base: '{upstream}/v1' }}\nmetering: {{ {metering} }}\ncache: {{ enabled: {cache} }}\n"
        ))
        .await;
        let mut request = serde_json::json!({"model": "up/m", "stream": true,
            "messages": [{"role": "user", "content": format!("case {case}")}]});
        if let Some(include_usage) = include_usage {
            request["stream_options"] = serde_json::json!({ "include_usage": include_usage });
        }
        let headers: &[(&str, &str)] = if idempotent {
            &[("idempotency-key", "same-key")]
        } else {
            &[]
        };
        let url = format!("{}/v1/chat/completions", gw.url());
        let first = post(&url, &request.to_string(), headers).await;
        let label = format!("case {case}: usage {include_usage:?}, metering {metering}, cache {cache}, idempotent {idempotent}, done {done}, upstream usage {upstream_usage}, terminator {terminator:?}\n{stream:?}");
        assert_eq!(first.status, 200, "{label}");
        let got = events(&first.text());
        let mut sent = events(&stream);
        let stripped = metering.starts_with("sqlite") && include_usage.is_none();
        if stripped {
            // The usage chunk the gateway asked for on the client's behalf is removed.
            sent.retain(|(_, data)| !data.contains("\"choices\":[]"));
        }
        if !done {
            // Cut short: the gateway says so after everything the upstream sent.
            let last = got.last().unwrap_or_else(|| panic!("{label}: nothing"));
            assert_eq!(
                last.0.as_deref(),
                Some("error"),
                "{label}\n{:?}",
                first.text()
            );
            assert!(last.1.contains("upstream_protocol_error"), "{label}");
            assert_eq!(
                &got[..got.len() - 1],
                &sent[..],
                "{label}\n{:?}",
                first.text()
            );
            continue;
        }
        assert_eq!(got, sent, "{label}\n{}", first.text());
        if cache || idempotent {
            let again = post(&url, &request.to_string(), headers).await;
            assert_eq!(again.status, 200, "{label}");
            let replayed = events(&again.text());
            assert_eq!(content(&replayed), words.concat(), "{label}: replay");
            assert_eq!(
                replayed.last().map(|e| e.1.as_str()),
                Some("[DONE]"),
                "{label}"
            );
        }
    }
}

/// A "Redis" that accepts connections and never answers.
async fn hung_redis() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    addr
}

#[tokio::test]
async fn a_hung_redis_costs_one_request_one_timeout_then_is_skipped() {
    let redis = hung_redis().await;
    let (upstream, _mock) = mock_upstream().await;
    let gw = gateway(&format!(
        "providers:\n  up: {{ kind: openai, api_base: '{}/v1' }}\nredis: {{ url: 'redis://{redis}', timeout: 400ms, cooldown: 3s }}\nidempotency: {{ store: redis }}\ncache: {{ enabled: true, store: redis }}\n",
        upstream.url()
    ))
    .await;
    let url = format!("{}/v1/chat/completions", gw.url());
    let mut took = Vec::new();
    for i in 0..5 {
        let started = std::time::Instant::now();
        let answer = post(
            &url,
            &chat_body("up/echo", &format!("hello {i}"), false),
            &[("idempotency-key", &format!("k{i}"))],
        )
        .await;
        took.push(started.elapsed());
        assert_eq!(answer.status, 200, "{}", answer.text());
    }
    // Idempotency and the cache each wait for Redis: the first request waits for one
    // timeout (the cache then skips it), the next ones for none.
    assert!(took[0] < Duration::from_millis(700), "{took:?}");
    assert!(
        took[1..].iter().all(|t| *t < Duration::from_millis(150)),
        "{took:?}"
    );
}

/// SIGTERM with a stream and a JSON request that outlive the grace period: the stream ends
/// with an error event, the JSON request's connection is dropped, the process exits 0, and
/// both are in the ledger as cut by the shutdown.
#[tokio::test]
async fn requests_cut_at_the_end_of_the_grace_period_are_told_and_recorded() {
    use tokio::io::AsyncBufReadExt;
    let (upstream, _mock) = mock_upstream().await;
    // An upstream that never answers, and says when the JSON request has reached it.
    let silent_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent = format!("http://{}", silent_listener.local_addr().unwrap());
    let (arrived, arrival) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let (socket, _) = silent_listener.accept().await.unwrap();
        let _ = arrived.send(());
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(socket);
    });
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let ledger = TempPath::new("llm-tower-cut", "db");
    let config = TempPath::new("llm-tower-cut", "yaml");
    std::fs::write(
        &config,
        format!(
            "providers:\n  up: {{ kind: openai, api_base: '{}/v1' }}\n  silent: {{ kind: openai, api_base: '{silent}/v1' }}\nmetering: {{ sqlite_path: '{}' }}\nserver: {{ shutdown_grace_period: 1s }}\n",
            upstream.url(),
            ledger.display()
        ),
    )
    .unwrap();
    let mut child = tokio::process::Command::new(gateway_binary())
        .args(["--config", config.to_str().unwrap()])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    while let Some(line) = stdout.next_line().await.unwrap() {
        if line.contains("listening") {
            break;
        }
    }
    let url = format!("http://127.0.0.1:{port}/v1/chat/completions");
    let words = "a ".repeat(100);
    let stream = tokio::spawn({
        let url = url.clone();
        async move {
            post(
                &url,
                &chat_body("up/echo?chunk_delay=100ms", &words, true),
                &[],
            )
            .await
        }
    });
    let json = tokio::spawn(async move {
        let req = request(&url, chat_body("silent/m", "hi", false), &[]);
        client().request(req).await.map(|r| r.status())
    });
    // Both requests are in flight (the stream has its first events by then too).
    tokio::time::timeout(Duration::from_secs(10), arrival)
        .await
        .expect("the JSON request reached its upstream")
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pid = child.id().unwrap().to_string();
    assert!(tokio::process::Command::new("kill")
        .arg(&pid)
        .status()
        .await
        .unwrap()
        .success());
    let answer = stream.await.unwrap();
    let text = answer.text();
    assert!(text.contains(r#"{"content":"You"}"#), "{text}");
    assert!(
        text.trim_end().ends_with('}') && text.contains("server_shutting_down"),
        "the stream ends with the cut's error event: {}",
        &text[text.len().saturating_sub(400)..]
    );
    assert!(
        json.await.unwrap().is_err(),
        "the JSON request's connection was dropped"
    );
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("exits after the grace period and the cut")
        .unwrap();
    assert!(status.success(), "{status:?}");
    let conn = rusqlite::Connection::open(&ledger).unwrap();
    let mut rows: Vec<(i64, String, Option<String>, bool)> = conn
        .prepare("SELECT status, outcome, error_type, stream FROM llm_usage")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    rows.sort();
    let cut = Some("server_shutting_down".to_owned());
    assert_eq!(
        rows,
        [
            (200, "error".to_owned(), cut.clone(), true),
            (499, "error".to_owned(), cut, false)
        ]
    );
}
