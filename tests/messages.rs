//! The inbound Anthropic Messages API over real HTTP: translated to the project's mock (an
//! OpenAI-style upstream) and passed through byte for byte to a mock Anthropic replaying
//! the recorded fixtures; errors in Anthropic's shape; the ledger's records.

mod native_replay;
mod support;

use http::StatusCode;
use native_replay::{fixture, Canned, Replay};
use serde_json::{json, Value};
use support::*;

const KEY: &str = "sk-messages-test";

/// A gateway with the mock, a wildcard alias for Claude model names, and one key.
async fn translating(extra: &str) -> Running {
    gateway(&format!(
        r#"
master_key: {KEY}
providers:
  mock: {{ kind: mock, models: [echo] }}
aliases:
  "claude-*": mock/echo
  sonnet: mock/echo
{extra}
"#
    ))
    .await
}

fn message(model: &str, text: &str, stream: bool) -> String {
    json!({"model": model, "max_tokens": 100, "stream": stream,
           "messages": [{"role": "user", "content": text}]})
    .to_string()
}

const HEADERS: &[(&str, &str)] = &[("x-api-key", KEY), ("anthropic-version", "2023-06-01")];

/// The events of an Anthropic stream: `(event name, data)`, the name matching the data's type.
fn events(body: &str) -> Vec<(String, Value)> {
    body.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let name = e.lines().find_map(|l| l.strip_prefix("event: ")).unwrap();
            let data: Value =
                serde_json::from_str(e.lines().find_map(|l| l.strip_prefix("data: ")).unwrap())
                    .unwrap();
            assert_eq!(data["type"], name, "{e}");
            (name.to_owned(), data)
        })
        .collect()
}

/// An Anthropic error body of this status, returning its `error` object.
fn anthropic_error(answer: &Answer, status: u16) -> Value {
    assert_eq!(answer.status.as_u16(), status, "{}", answer.text());
    let body = answer.json();
    assert_eq!(body["type"], "error", "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
    assert!(
        answer.headers.contains_key("request-id"),
        "{:?}",
        answer.headers
    );
    body["error"].clone()
}

#[tokio::test]
async fn a_message_to_a_chat_upstream_is_translated() {
    let gw = translating("").await;
    let url = format!("{}/v1/messages?beta=true", gw.url());
    let answer = post(
        &url,
        &message("claude-sonnet-4-5", "hello there", false),
        HEADERS,
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let request_id = answer.headers["request-id"].to_str().unwrap();
    assert_eq!(request_id, answer.headers["x-request-id"].to_str().unwrap());
    let body = answer.json();
    assert_eq!(body["type"], "message");
    assert_eq!(body["role"], "assistant");
    assert!(body["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(
        body["content"],
        json!([{"type": "text", "text": "You said: hello there"}])
    );
    assert_eq!(body["stop_reason"], "end_turn");
    assert_eq!(body["stop_sequence"], Value::Null);
    // The mock counts words: 2 in, 4 out.
    assert_eq!(body["usage"]["input_tokens"], 2);
    assert_eq!(body["usage"]["output_tokens"], 4);

    // Bearer auth works as on every route, and max_tokens cuts the answer.
    let short = json!({"model": "mock/echo", "max_tokens": 2, "messages": [{"role": "user", "content": "one two three"}]});
    let auth = format!("Bearer {KEY}");
    let answer = post(&url, &short.to_string(), &[("authorization", &auth)]).await;
    assert_eq!(answer.json()["stop_reason"], "max_tokens");
}

#[tokio::test]
async fn a_streamed_message_is_anthropics_event_sequence() {
    let gw = translating("").await;
    let url = format!("{}/v1/messages", gw.url());
    let answer = post(
        &url,
        &message("claude-haiku-4-5", "stream me please", true),
        HEADERS,
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert!(answer.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let events = events(&answer.text());
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names[..3], ["message_start", "ping", "content_block_start"]);
    assert_eq!(
        names[names.len() - 3..],
        ["content_block_stop", "message_delta", "message_stop"]
    );
    let text: String = events
        .iter()
        .filter(|(n, _)| n == "content_block_delta")
        .map(|(_, d)| d["delta"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(text, "You said: stream me please");
    let delta = &events[events.len() - 2].1;
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    assert_eq!(delta["usage"]["output_tokens"], 5);
    assert_eq!(delta["usage"]["input_tokens"], 3);
}

#[tokio::test]
async fn a_tool_use_round_trip_through_a_chat_upstream() {
    let gw = translating("").await;
    let url = format!("{}/v1/messages", gw.url());
    let tools = json!([{"name": "Glob", "description": "Find files", "input_schema": {"type": "object", "properties": {"pattern": {"type": "string"}}}}]);
    for stream in [false, true] {
        let turn1 = json!({"model": "mock/echo?tool=Glob", "max_tokens": 100, "stream": stream, "tools": tools,
            "messages": [{"role": "user", "content": [{"type": "text", "text": "{\"pattern\":\"*.rs\"}"}]}]});
        let answer = post(&url, &turn1.to_string(), HEADERS).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        let tool_use = if stream {
            let events = events(&answer.text());
            let start = events
                .iter()
                .find(|(n, d)| {
                    n == "content_block_start" && d["content_block"]["type"] == "tool_use"
                })
                .expect("a tool_use block");
            let partial: String = events
                .iter()
                .filter(|(_, d)| d["delta"]["type"] == "input_json_delta")
                .map(|(_, d)| d["delta"]["partial_json"].as_str().unwrap())
                .collect();
            let stop = events.iter().find(|(n, _)| n == "message_delta").unwrap();
            assert_eq!(stop.1["delta"]["stop_reason"], "tool_use");
            let mut block = start.1["content_block"].clone();
            block["input"] = serde_json::from_str(&partial).unwrap();
            block
        } else {
            let body = answer.json();
            assert_eq!(body["stop_reason"], "tool_use");
            body["content"][0].clone()
        };
        assert_eq!(tool_use["name"], "Glob");
        assert_eq!(tool_use["input"], json!({"pattern": "*.rs"}));
        let id = tool_use["id"].as_str().unwrap();

        let turn2 = json!({"model": "mock/echo?tool=Glob", "max_tokens": 100, "tools": tools, "messages": [
            turn1["messages"][0],
            {"role": "assistant", "content": [tool_use]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": id, "content": "src/main.rs"}]}
        ]});
        let answer = post(&url, &turn2.to_string(), HEADERS).await;
        assert_eq!(
            answer.json()["content"][0]["text"],
            "Tool said: src/main.rs",
            "stream: {stream}"
        );
    }
}

#[tokio::test]
async fn errors_reach_anthropic_clients_in_anthropics_shape() {
    let gw = translating("").await;
    let url = format!("{}/v1/messages", gw.url());
    let body = message("mock/echo", "hi", false);

    let err = anthropic_error(&post(&url, &body, &[]).await, 401);
    assert_eq!(err["type"], "authentication_error");
    let err = anthropic_error(&post(&url, &body, &[("x-api-key", "sk-wrong")]).await, 401);
    assert_eq!(err["type"], "authentication_error");

    let no_max = json!({"model": "mock/echo", "messages": [{"role": "user", "content": "hi"}]});
    let err = anthropic_error(&post(&url, &no_max.to_string(), HEADERS).await, 400);
    assert_eq!(err["type"], "invalid_request_error");
    assert_eq!(err["message"], "max_tokens: Field required");
    let err = anthropic_error(&post(&url, "{not json", HEADERS).await, 400);
    assert_eq!(err["type"], "invalid_request_error");

    let err = anthropic_error(
        &post(&url, &message("nobody/x", "hi", false), HEADERS).await,
        404,
    );
    assert_eq!(err["type"], "not_found_error");
    let err = anthropic_error(
        &post(&url, &message("mock/echo?status=429", "hi", false), HEADERS).await,
        429,
    );
    assert_eq!(err["type"], "rate_limit_error");
    let err = anthropic_error(
        &post(&url, &message("mock/echo?status=500", "hi", false), HEADERS).await,
        500,
    );
    assert_eq!(err["type"], "api_error");

    // Anthropic's server tools cannot run elsewhere: a 400 naming the tool.
    let tools = json!({"model": "mock/echo", "max_tokens": 5, "tools": [{"type": "web_search_20250305", "name": "web_search"}],
        "messages": [{"role": "user", "content": "hi"}]});
    let err = anthropic_error(&post(&url, &tools.to_string(), HEADERS).await, 400);
    assert!(
        err["message"].as_str().unwrap().contains("web_search"),
        "{err}"
    );

    // The chat route keeps OpenAI's shape.
    let chat = post(
        &format!("{}/v1/chat/completions", gw.url()),
        &chat_body("nobody/x", "hi", false),
        HEADERS,
    )
    .await;
    chat.error(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn tokens_are_counted_for_a_chat_upstream() {
    let gw = translating("").await;
    let url = format!("{}/v1/messages/count_tokens", gw.url());
    let short =
        json!({"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "Hello"}]});
    let long = json!({"model": "claude-sonnet-4-5", "system": "You are a careful assistant.",
        "messages": [{"role": "user", "content": "Hello, how are you doing on this fine morning?"}]});
    let count = |answer: Answer| {
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        answer.json()["input_tokens"].as_u64().unwrap()
    };
    let short = count(post(&url, &short.to_string(), HEADERS).await);
    let long = count(post(&url, &long.to_string(), HEADERS).await);
    assert_eq!(short, 1);
    assert!(long > 10, "{long}");
}

#[tokio::test]
async fn models_are_listed_and_retrieved_in_either_shape() {
    let gw = translating("").await;
    let openai = [("authorization", "Bearer sk-messages-test")];
    for path in ["mock/echo", "mock%2Fecho"] {
        let answer = get(&format!("{}/v1/models/{path}", gw.url()), &openai).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        assert_eq!(answer.json()["id"], "mock/echo");
        assert_eq!(answer.json()["object"], "model");
    }
    let alias = get(&format!("{}/v1/models/sonnet", gw.url()), &openai).await;
    assert_eq!(alias.json()["owned_by"], "llm-tower-alias");
    get(&format!("{}/v1/models/mock/other", gw.url()), &openai)
        .await
        .error(StatusCode::NOT_FOUND);
    get(&format!("{}/v1/models/mock/echo", gw.url()), &[])
        .await
        .error(StatusCode::UNAUTHORIZED);

    let one = get(&format!("{}/v1/models/mock/echo", gw.url()), HEADERS).await;
    assert_eq!(one.json()["type"], "model");
    assert_eq!(one.json()["display_name"], "mock/echo");
    let list = get(&format!("{}/v1/models", gw.url()), HEADERS)
        .await
        .json();
    assert_eq!(list["data"][0]["type"], "model");
    assert_eq!(list["has_more"], false);
    assert_eq!(list["first_id"], "mock/echo");
}

/// A gateway whose `claude` provider is a mock Anthropic replaying fixtures.
async fn passing_through(extra: &str) -> (Running, Running, Replay) {
    let replay = Replay::default();
    let upstream = serve(replay.clone(), llm_tower::server::ServerSettings::default()).await;
    let gw = gateway(&format!(
        r#"
master_key: {KEY}
providers:
  claude: {{ kind: anthropic, api_base: "{}/v1", api_key: sk-ant-upstream, models: [claude-sonnet-4-5] }}
{extra}
"#,
        upstream.url()
    ))
    .await;
    (gw, upstream, replay)
}

#[tokio::test]
async fn messages_to_anthropic_pass_through_byte_for_byte() {
    let (gw, _upstream, replay) = passing_through("").await;
    let url = format!("{}/v1/messages?beta=true", gw.url());
    let stream = fixture("anthropic/stream-text.sse");
    replay.push(Canned::sse(&stream).header("request-id", "req_upstream_1"));
    let body = r#"{"model":"claude/claude-sonnet-4-5","max_tokens":50,"stream":true,"messages":[{"role":"user","content":[{"type":"text","text":"Hi","cache_control":{"type":"ephemeral"}}]}],"top_k":3}"#;
    let headers = [
        ("x-api-key", KEY),
        ("anthropic-version", "2023-06-01"),
        ("anthropic-beta", "prompt-caching-2024-07-31"),
    ];
    let answer = post(&url, body, &headers).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(
        &answer.body[..],
        &stream[..],
        "the stream passes through as recorded"
    );
    assert_eq!(answer.headers["request-id"], "req_upstream_1");

    let seen = replay.seen().pop().unwrap();
    assert_eq!(
        seen.uri,
        "/v1/messages?beta=true".split('?').next().unwrap()
    );
    let mut expected: Value = serde_json::from_str(body).unwrap();
    expected["model"] = "claude-sonnet-4-5".into();
    assert_eq!(seen.body, expected, "only the model is rewritten");
    assert_eq!(seen.headers["x-api-key"], "sk-ant-upstream");
    assert_eq!(seen.headers["anthropic-version"], "2023-06-01");
    assert_eq!(seen.headers["anthropic-beta"], "prompt-caching-2024-07-31");

    // JSON, and without the client's version the configured one goes.
    let json = fixture("anthropic/message-text.response.json");
    replay.push(Canned::json(200, json.clone()));
    let plain = r#"{"model":"claude/claude-sonnet-4-5","max_tokens":50,"messages":[{"role":"user","content":"Hi"}]}"#;
    let answer = post(&url, plain, &[("x-api-key", KEY)]).await;
    assert_eq!(&answer.body[..], &json[..]);
    assert_eq!(
        replay.seen().pop().unwrap().headers["anthropic-version"],
        "2023-06-01"
    );

    // Token counting is Anthropic's own.
    replay.push(Canned::json(200, br#"{"input_tokens":42}"#.to_vec()));
    let count =
        r#"{"model":"claude/claude-sonnet-4-5","messages":[{"role":"user","content":"Hi"}]}"#;
    let answer = post(
        &format!("{}/v1/messages/count_tokens", gw.url()),
        count,
        HEADERS,
    )
    .await;
    assert_eq!(answer.json(), json!({"input_tokens": 42}));
    assert_eq!(
        replay.seen().pop().unwrap().uri,
        "/v1/messages/count_tokens"
    );
}

#[tokio::test]
async fn anthropic_errors_keep_their_type_and_status() {
    let (gw, _upstream, replay) = passing_through("").await;
    let url = format!("{}/v1/messages", gw.url());
    let body = message("claude/claude-sonnet-4-5", "hi", false);
    replay.push(Canned::json(
        529,
        fixture("anthropic/error-529-overloaded.json"),
    ));
    let err = anthropic_error(&post(&url, &body, HEADERS).await, 529);
    assert_eq!(err["type"], "overloaded_error");
    assert!(err["message"].as_str().unwrap().contains("Overloaded"));
    replay.push(Canned::json(
        404,
        fixture("anthropic/error-404-model-not-found.json"),
    ));
    let err = anthropic_error(&post(&url, &body, HEADERS).await, 404);
    assert_eq!(err["type"], "not_found_error");
}

#[tokio::test]
async fn messages_are_metered_with_their_endpoint_and_anthropic_usage() {
    let ledger = TempPath::new("llm-tower-messages", "db");
    let extra = format!("metering: {{ sqlite_path: \"{}\" }}", ledger.display());
    let (gw, _upstream, replay) = passing_through(&extra).await;
    replay.push(Canned::sse(&fixture("anthropic/stream-text.sse")));
    let body = message("claude/claude-sonnet-4-5", "hi", true);
    let answer = post(&format!("{}/v1/messages", gw.url()), &body, HEADERS).await;
    assert_eq!(answer.status, StatusCode::OK);
    replay.push(Canned::json(200, br#"{"input_tokens":42}"#.to_vec()));
    let count =
        r#"{"model":"claude/claude-sonnet-4-5","messages":[{"role":"user","content":"Hi"}]}"#;
    let counted = post(
        &format!("{}/v1/messages/count_tokens", gw.url()),
        count,
        HEADERS,
    )
    .await;
    assert_eq!(counted.status, StatusCode::OK);
    let rows = ledger_rows(&ledger, 2).await;
    // Counting tokens uses none.
    assert_eq!(
        rows[1],
        json!({"endpoint": "count_tokens", "prompt_tokens": 0, "completion_tokens": 0,
        "usage_source": "none", "outcome": "ok", "stream": false})
    );
    // stream-text.sse: message_start reports 11 input tokens, message_delta 6 output.
    assert_eq!(
        rows[0],
        json!({"endpoint": "messages", "prompt_tokens": 11, "completion_tokens": 6,
        "usage_source": "upstream", "outcome": "ok", "stream": true})
    );
}

#[tokio::test]
async fn a_streamed_message_is_replayed_for_its_idempotency_key() {
    let (gw, _upstream, replay) = passing_through("").await;
    let url = format!("{}/v1/messages", gw.url());
    let stream = fixture("anthropic/stream-text.sse");
    replay.push(Canned::sse(&stream));
    let body = message("claude/claude-sonnet-4-5", "hi", true);
    let headers = [("x-api-key", KEY), ("idempotency-key", "messages-key-1")];
    let first = post(&url, &body, &headers).await;
    assert_eq!(&first.body[..], &stream[..]);
    // Stored once whole (its `message_stop`), then replayed without the upstream.
    let again = post(&url, &body, &headers).await;
    assert_eq!(
        again.headers["idempotency-replayed"], "true",
        "{:?}",
        again.headers
    );
    assert_eq!(&again.body[..], &stream[..]);
    assert_eq!(replay.seen().len(), 1);
    // A different body under the same key is Anthropic's kind of error.
    let other = message("claude/claude-sonnet-4-5", "something else", true);
    let err = anthropic_error(&post(&url, &other, &headers).await, 422);
    assert_eq!(err["type"], "invalid_request_error");
}

#[tokio::test]
async fn the_http_mock_answers_messages_itself_for_anthropic_providers() {
    // What benches/e2e.sh measures pass-through Messages against; and an OpenAI-compatible
    // server with its own Messages API (`messages: native`, as LiteLLM's) gets it as is.
    let (upstream, mock) = mock_upstream().await;
    let gw = gateway(&format!(
        "master_key: {KEY}\nproviders:\n  claude: {{ kind: anthropic, api_base: '{0}/v1', api_key: sk-ant }}\n  lite: {{ kind: openai, api_base: '{0}/v1', api_key: sk-lite, messages: native }}\n",
        upstream.url()
    ))
    .await;
    let url = format!("{}/v1/messages", gw.url());
    let answer = post(&url, &message("claude/echo", "pass me", false), HEADERS).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(answer.json()["content"][0]["text"], "You said: pass me");
    let (headers, sent) = mock.last_request().unwrap();
    assert_eq!(headers["x-api-key"], "sk-ant");
    assert_eq!(
        serde_json::from_slice::<Value>(&sent).unwrap()["model"],
        "echo"
    );
    let answer = post(&url, &message("claude/echo?words=3", "x", true), HEADERS).await;
    let names: Vec<String> = events(&answer.text()).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names.first().map(String::as_str), Some("message_start"));
    assert_eq!(names.last().map(String::as_str), Some("message_stop"));
    let failing = post(
        &url,
        &message("claude/echo?status=529", "x", false),
        HEADERS,
    )
    .await;
    assert_eq!(anthropic_error(&failing, 529)["type"], "overloaded_error");
}

#[tokio::test]
async fn the_cache_answers_a_repeated_message_in_either_form() {
    let gw = translating("cache: { enabled: true }").await;
    let url = format!("{}/v1/messages", gw.url());
    let first = post(
        &url,
        &message("sonnet", "cache this message", false),
        HEADERS,
    )
    .await;
    assert_eq!(first.headers["x-gateway-cache"], "miss");
    let hit = post(
        &url,
        &message("sonnet", "cache this message", false),
        HEADERS,
    )
    .await;
    assert_eq!(hit.headers["x-gateway-cache"], "hit");
    assert_eq!(hit.json(), first.json());
    let streamed = post(
        &url,
        &message("sonnet", "cache this message", true),
        HEADERS,
    )
    .await;
    assert_eq!(streamed.headers["x-gateway-cache"], "hit");
    let events = events(&streamed.text());
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert_eq!(
        events[2].1["delta"]["text"],
        first.json()["content"][0]["text"]
    );
    assert_eq!(events[4].1["delta"]["stop_reason"], "end_turn");
}
