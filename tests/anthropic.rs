//! Anthropic Messages ⇄ OpenAI: every applicable fixture of `tests/fixtures/anthropic`
//! (requests field by field, responses, streams in any framing, errors), end to end over
//! real HTTP against a mock Anthropic that replays the recorded bytes, the real openai SDK
//! (with LLM_TOWER_PYTHON), and proptest fuzzing of the translators.

mod native_replay;
mod support;

use http::{HeaderMap, StatusCode};
use llm_tower::translate::{self, Native, StreamTranslation};
use native_replay::*;
use proptest::prelude::*;
use serde_json::{json, Value};
use support::{gateway, post, pytest, serve};

const A: Native = Native::Anthropic;

fn openai_tools(native: &Value) -> Value {
    native["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            json!({"type": "function", "function": {
                "name": t["name"], "description": t["description"], "parameters": t["input_schema"],
            }})
        })
        .collect()
}

fn request(openai: &Value, model: &str, stream: bool) -> Value {
    translate::request(A, openai.to_string().as_bytes(), model, stream).unwrap()
}

fn without_stream_false(mut v: Value) -> Value {
    if v["stream"] == false {
        v.as_object_mut().unwrap().remove("stream");
    }
    v
}

#[test]
fn request_text_and_tools_matches_the_recording() {
    let native = fixture_json("anthropic/message-text-and-tool-use.request.json");
    let openai = json!({
        "model": "claude/claude-haiku-4-5",
        "messages": [{"role": "user", "content": native["messages"][0]["content"]}],
        "tools": openai_tools(&native),
        "max_tokens": 1024,
    });
    assert_same(&native, &request(&openai, "claude-haiku-4-5", false));
}

#[test]
fn request_thinking_tool_round_trip_matches_both_recorded_turns() {
    let turn1 = fixture_json("anthropic/message-thinking-tool-use-roundtrip.turn1.request.json");
    let mut openai = json!({
        "model": "claude/claude-sonnet-4-20250514",
        "messages": [
            {"role": "system", "content": [{"type": "text", "text": "You are a helpful assistant"}]},
            {"role": "user", "content": [{"type": "text", "text": "What's the weather in Florence, Italy?"}]},
        ],
        "max_completion_tokens": 4096,
        "thinking": {"type": "enabled", "budget_tokens": 4000},
        "tool_choice": "auto",
        "parallel_tool_calls": true,
        "tools": openai_tools(&turn1),
    });
    assert_same(&turn1, &request(&openai, "claude-sonnet-4-20250514", false));

    // The client appends the assistant message exactly as the gateway answered it (the
    // openai SDK keeps unknown fields such as `thinking_blocks`), then the tool result.
    let response = fixture("anthropic/message-thinking-tool-use-roundtrip.turn1.response.json");
    let completion: Value =
        serde_json::from_slice(&translate::response(A, &response, "m").unwrap()).unwrap();
    let message = completion["choices"][0]["message"].clone();
    assert_eq!(message["content"], Value::Null);
    assert!(message["reasoning_content"]
        .as_str()
        .unwrap()
        .starts_with("The user is asking"));
    let messages = openai["messages"].as_array_mut().unwrap();
    messages.push(message);
    messages.push(
        json!({"role": "tool", "tool_call_id": "toolu_014azqsWLU8Djh6RhmBGRC2u",
        "content": [{"type": "text", "text": "40 C"}]}),
    );
    let turn2 = fixture_json("anthropic/message-thinking-tool-use-roundtrip.turn2.request.json");
    assert_same(&turn2, &request(&openai, "claude-sonnet-4-20250514", false));
}

#[test]
fn request_prompt_cache_turns_match_with_the_default_max_tokens() {
    let turn2 = fixture_json("anthropic/message-prompt-cache-usage.turn2.request.json");
    let m = &turn2["messages"];
    let openai = json!({
        "model": "claude/claude-sonnet-4-5",
        "messages": [
            {"role": "system", "content": turn2["system"]},
            {"role": "user", "content": [{"type": "text", "text": m[0]["content"][0]["text"]}]},
            {"role": "assistant", "content": [{"type": "text", "text": m[1]["content"][0]["text"]}]},
            {"role": "user", "content": [{"type": "text", "text": m[2]["content"][0]["text"]}]},
        ],
        "cache_control": {"type": "ephemeral", "ttl": "5m"},
    });
    assert_same(
        &without_stream_false(turn2),
        &request(&openai, "claude-sonnet-4-5", false),
    );
}

#[test]
fn request_streams_with_thinking_match_the_recordings() {
    for name in ["stream-thinking", "stream-redacted-thinking"] {
        let native = fixture_json(&format!("anthropic/{name}.request.json"));
        let openai = json!({
            "model": "x/y",
            "messages": [{"role": "user", "content": native["messages"][0]["content"]}],
            "thinking": native["thinking"],
            "stream": true,
        });
        assert_same(
            &native,
            &request(&openai, native["model"].as_str().unwrap(), true),
        );
    }
}

#[test]
fn request_rules_merge_roles_drop_empties_and_refuse_what_anthropic_cannot_do() {
    let openai = json!({
        "model": "m",
        "messages": [
            {"role": "system", "content": "a"},
            {"role": "developer", "content": "b"},
            {"role": "user", "content": "one"},
            {"role": "user", "content": [{"type": "text", "text": ""}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}}]},
            {"role": "assistant", "content": "", "tool_calls": [
                {"id": "call.1/x", "type": "function", "function": {"name": "f", "arguments": ""}},
                {"id": "call_2", "type": "function", "function": {"name": "g", "arguments": "{\"a\":1}"}}]},
            {"role": "tool", "tool_call_id": "call_2", "content": "two"},
            {"role": "tool", "tool_call_id": "call.1/x", "content": "one"},
            {"role": "user", "content": "thanks"},
        ],
        "temperature": 1.7, "top_p": 0.5, "stop": ["END", "  "], "user": "u-1",
        "tool_choice": {"type": "function", "function": {"name": "f"}},
        "parallel_tool_calls": false,
        "tools": [{"type": "function", "function": {"name": "f"}}],
        "reasoning_effort": "low",
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
    });
    let r = request(&openai, "claude-x", false);
    assert_eq!(
        r["system"],
        json!([{"type": "text", "text": "a"}, {"type": "text", "text": "b"}])
    );
    let m = r["messages"].as_array().unwrap();
    assert_eq!(m.len(), 3, "{r}");
    assert_eq!(m[0]["content"][0], json!({"type": "text", "text": "one"}));
    assert_eq!(
        m[0]["content"][1]["source"],
        json!({"type": "base64", "media_type": "image/png", "data": "iVBO"})
    );
    assert_eq!(
        m[1]["content"][0],
        json!({"type": "tool_use", "id": "call_1_x", "name": "f", "input": {}})
    );
    assert_eq!(m[1]["content"][1]["input"], json!({"a": 1}));
    assert_eq!(m[2]["content"][0]["tool_use_id"], "call_2");
    assert_eq!(m[2]["content"][1]["tool_use_id"], "call_1_x");
    assert_eq!(
        m[2]["content"][2],
        json!({"type": "text", "text": "thanks"})
    );
    assert_eq!(r["temperature"], 1.0);
    assert!(r.get("top_p").is_none());
    assert_eq!(r["stop_sequences"], json!(["END"]));
    assert_eq!(r["metadata"], json!({"user_id": "u-1"}));
    assert_eq!(
        r["tool_choice"],
        json!({"type": "tool", "name": "f", "disable_parallel_tool_use": true})
    );
    assert_eq!(
        r["tools"][0]["input_schema"],
        json!({"type": "object", "properties": {}})
    );
    assert_eq!(r["output_config"]["format"]["type"], "json_schema");
    // The last tool turn's thinking blocks are unknown: Anthropic would reject `thinking`.
    assert!(r.get("thinking").is_none());
    assert_eq!(r["max_tokens"], 1024 + 4096);
    let simple = json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
        "reasoning_effort": "high", "max_completion_tokens": 20000});
    let r = request(&simple, "claude-x", false);
    assert_eq!(
        r["thinking"],
        json!({"type": "enabled", "budget_tokens": 16384})
    );
    assert_eq!(r["max_tokens"], 20000);

    for (body, param) in [
        (
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "n": 2}),
            "n",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "reasoning_effort": "max"}),
            "reasoning_effort",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x"}}]}]}),
            "messages[0].content",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 100, "reasoning_effort": "high"}),
            "max_completion_tokens",
        ),
    ] {
        let err = translate::request(A, body.to_string().as_bytes(), "m", false).unwrap_err();
        assert_eq!(err.status(), StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(err.param(), Some(param), "{body}");
    }
}

fn completion(path: &str) -> Value {
    serde_json::from_slice(&translate::response(A, &fixture(path), "m").unwrap()).unwrap()
}

#[test]
fn responses_translate_with_the_openai_shape_and_usage() {
    let target = fixture_json("openai/chat-tool-call-strict.response.json");
    let c = completion("anthropic/message-text-and-tool-use.response.json");
    for key in target.as_object().unwrap().keys() {
        assert!(c.get(key).is_some(), "missing top-level `{key}`: {c}");
    }
    for key in target["choices"][0].as_object().unwrap().keys() {
        assert!(c["choices"][0].get(key).is_some(), "missing choice `{key}`");
    }
    for key in target["choices"][0]["message"].as_object().unwrap().keys() {
        assert!(
            c["choices"][0]["message"].get(key).is_some(),
            "missing message `{key}`"
        );
    }
    assert_eq!(c["object"], "chat.completion");
    assert_eq!(c["id"], "msg_01UBZt9MX63Tk3v1gKvgxk3A");
    assert_eq!(c["model"], "claude-haiku-4-5-20251001");
    let m = &c["choices"][0]["message"];
    assert_eq!(
        m["content"],
        "I'll get the weather for each of those cities. Let me start by checking San Francisco."
    );
    assert_eq!(m["tool_calls"][0]["id"], "toolu_01LRanfq6DmHn1yDTB4d1SAh");
    assert_eq!(m["tool_calls"][0]["type"], "function");
    assert_eq!(m["tool_calls"][0]["function"]["name"], "get_weather");
    let args: Value = serde_json::from_str(
        m["tool_calls"][0]["function"]["arguments"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(args, json!({"location": "San Francisco, CA", "units": "f"}));
    assert_eq!(c["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(c["usage"]["prompt_tokens"], 701);
    assert_eq!(c["usage"]["completion_tokens"], 93);
    assert_eq!(c["usage"]["total_tokens"], 794);

    let c = completion("anthropic/message-text.response.json");
    assert_eq!(c["choices"][0]["finish_reason"], "stop");
    assert!(c["choices"][0]["message"].get("tool_calls").is_none());
    assert_eq!(c["usage"]["total_tokens"], 41);

    // input_tokens excludes the cache: prompt = 3 + 418 + 1111.
    let c = completion("anthropic/message-prompt-cache-usage.turn2.response.json");
    assert_same(
        &json!({"prompt_tokens": 1532, "completion_tokens": 33, "total_tokens": 1565,
            "prompt_tokens_details": {"cached_tokens": 1111, "cache_creation_tokens": 418},
            "completion_tokens_details": {"reasoning_tokens": 0}}),
        &c["usage"],
    );
    let c = completion("anthropic/message-prompt-cache-usage.turn1.response.json");
    assert_eq!(c["usage"]["prompt_tokens"], 3 + 1111);
    assert_eq!(c["usage"]["prompt_tokens_details"]["cached_tokens"], 1111);
}

#[test]
fn stop_reasons_and_refusals_map() {
    for (stop, finish) in [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("pause_turn", "stop"),
    ] {
        let body = json!({"id": "msg_1", "model": "c", "content": [], "stop_reason": stop,
            "stop_details": {"explanation": "no"}, "usage": {"input_tokens": 1, "output_tokens": 0}});
        let c: Value = serde_json::from_slice(
            &translate::response(A, body.to_string().as_bytes(), "m").unwrap(),
        )
        .unwrap();
        assert_eq!(c["choices"][0]["finish_reason"], finish, "{stop}");
        assert_eq!(c["choices"][0]["message"]["content"], Value::Null);
        if stop == "refusal" {
            assert_eq!(c["choices"][0]["message"]["refusal"], "no");
        }
    }
}

/// The same answer as a Message and as its event stream gives the same finish and refusal
/// (the stream translation once dropped a refusal's explanation).
#[test]
fn every_stop_reason_streams_as_it_translates_whole() {
    for stop in [
        "end_turn",
        "stop_sequence",
        "max_tokens",
        "tool_use",
        "refusal",
        "pause_turn",
        "model_context_window_exceeded",
    ] {
        let details = json!({"type": "refusal", "explanation": "This request was declined."});
        let whole = json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "c", "content": [],
            "stop_reason": stop, "stop_details": details, "usage": {"input_tokens": 1, "output_tokens": 2}});
        let c: Value = serde_json::from_slice(
            &translate::response(A, whole.to_string().as_bytes(), "m").unwrap(),
        )
        .unwrap();
        let start = json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "model": "c",
            "content": [], "stop_reason": null, "usage": {"input_tokens": 1, "output_tokens": 0}}});
        let delta = json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null, "stop_details": details},
            "usage": {"output_tokens": 2}});
        let sse = format!(
            "event: message_start\ndata: {start}\n\nevent: message_delta\ndata: {delta}\n\nevent: message_stop\ndata: {{\"type\":\"message_stop\"}}\n\n"
        );
        let acc = accumulate(&assert_split_invariant(A, sse.as_bytes(), true));
        let message = &c["choices"][0]["message"];
        assert_eq!(
            acc.finish.as_deref(),
            c["choices"][0]["finish_reason"].as_str(),
            "{stop}"
        );
        assert_eq!(
            acc.refusal,
            message["refusal"].as_str().unwrap_or(""),
            "{stop}"
        );
        assert_eq!(
            acc.usage.as_ref().unwrap()["completion_tokens"],
            c["usage"]["completion_tokens"],
            "{stop}"
        );
    }
}

#[test]
fn stream_text_translates_event_by_event_in_any_framing() {
    let sse = fixture("anthropic/stream-text.sse");
    let out = assert_split_invariant(A, &sse, true);
    let chunks = chunks(&out);
    assert_eq!(
        chunks[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    assert_eq!(chunks[0]["id"], "msg_4QpJur2dWWDjF6C758FbBw5vm12BaVipnK");
    assert_eq!(chunks[0]["model"], "claude-3-opus-latest");
    assert_eq!(
        chunks[1]["choices"][0]["delta"],
        json!({"content": "Hello"})
    );
    let acc = accumulate(&out);
    assert_eq!(acc.content, "Hello there!");
    assert_eq!(acc.finish.as_deref(), Some("stop"));
    assert_eq!(acc.usage.as_ref().unwrap()["prompt_tokens"], 11);
    assert_eq!(acc.usage.as_ref().unwrap()["completion_tokens"], 6);
    assert!(acc.done);
    // The same bytes as OpenAI would frame them: the usage chunk, then [DONE], last.
    let n = chunks.len();
    assert_eq!(chunks[n - 2]["choices"], json!([]));
    assert_eq!(chunks[n - 1], "[DONE]");
    let text = String::from_utf8(out).unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"));

    let without_usage = accumulate(&translate(A, &sse, &[7], false));
    assert!(without_usage.usage.is_none() && without_usage.done);
}

#[test]
fn stream_tool_use_has_openai_index_semantics() {
    let out = assert_split_invariant(
        A,
        &fixture("anthropic/stream-text-then-tool-use.sse"),
        false,
    );
    let acc = accumulate(&out);
    assert_eq!(
        acc.content,
        "I'll check the current weather in Paris for you."
    );
    assert_eq!(acc.tool_calls.len(), 1, "tool block 1 is tool call index 0");
    let (id, name, args) = &acc.tool_calls[0];
    assert_eq!(
        (id.as_str(), name.as_str()),
        ("toolu_01NRLabsLyVHZPKxbKvkfSMn", "get_weather")
    );
    assert_eq!(
        serde_json::from_str::<Value>(args).unwrap(),
        json!({"location": "Paris"})
    );
    assert_eq!(acc.finish.as_deref(), Some("tool_calls"));
    let first = chunks(&out)
        .into_iter()
        .find(|c| c["choices"][0]["delta"]["tool_calls"].is_array())
        .unwrap();
    assert_eq!(
        first["choices"][0]["delta"]["tool_calls"][0]["function"],
        json!({"name": "get_weather", "arguments": ""})
    );
}

#[test]
fn stream_no_arg_tool_gets_empty_object_arguments() {
    // The fixture holds the payloads one per line; on the wire each is an SSE event.
    let lines =
        String::from_utf8(fixture("anthropic/stream-tool-use-no-args.chunks.jsonl")).unwrap();
    let mut sse = String::new();
    for line in lines.lines().filter(|l| !l.trim().is_empty()) {
        let kind: Value = serde_json::from_str(line).unwrap();
        sse.push_str(&format!(
            "event: {}\ndata: {line}\n\n",
            kind["type"].as_str().unwrap()
        ));
    }
    let acc = accumulate(&assert_split_invariant(A, sse.as_bytes(), true));
    assert_eq!(acc.tool_calls[0].1, "updateIssueList");
    assert_eq!(acc.tool_calls[0].2, "{}");
    assert_eq!(acc.content, "I'll update the issue list for you.");
    assert_eq!(acc.usage.unwrap()["prompt_tokens"], 565);
}

#[test]
fn stream_thinking_becomes_reasoning_content() {
    let acc = accumulate(&assert_split_invariant(
        A,
        &fixture("anthropic/stream-thinking.sse"),
        true,
    ));
    assert!(
        acc.reasoning
            .starts_with("This is a straightforward question about pedestrian safety."),
        "{}",
        acc.reasoning
    );
    assert!(!acc.content.is_empty() && !acc.content.contains("straightforward question"));
    assert_eq!(acc.finish.as_deref(), Some("stop"));

    let acc = accumulate(&assert_split_invariant(
        A,
        &fixture("anthropic/stream-redacted-thinking.sse"),
        true,
    ));
    assert!(acc.reasoning.is_empty());
    assert!(acc
        .content
        .starts_with("I notice that you've sent what appears to be some"));
    assert!(acc.done);
}

#[test]
fn stream_errors_end_with_an_openai_error_event() {
    let out = translate(
        A,
        &fixture("anthropic/stream-error-overloaded.sse"),
        &[5],
        true,
    );
    let acc = accumulate(&out);
    let err = acc.error.expect("error event");
    assert_eq!(
        (err["type"].as_str(), err["code"].as_str()),
        (Some("server_error"), Some("overloaded"))
    );
    assert_eq!(err["message"], "Overloaded");
    assert!(!acc.done, "no [DONE] after an error");
    assert!(String::from_utf8_lossy(&out).starts_with("event: error\ndata: "));

    // After content: the content so far, then the error; later bytes are ignored.
    let text = fixture("anthropic/stream-text.sse");
    let cut = String::from_utf8_lossy(&text)
        .find("event: content_block_stop")
        .unwrap();
    let mut stream = text[..cut].to_vec();
    stream.extend_from_slice(&fixture("anthropic/stream-error-overloaded.sse"));
    stream.extend_from_slice(&text[cut..]);
    let acc = accumulate(&assert_split_invariant(A, &stream, true));
    assert_eq!(acc.content, "Hello there!");
    assert!(acc.error.is_some() && !acc.done && acc.finish.is_none());

    // Cut short: a protocol error, not a silent end.
    let acc = accumulate(&translate(A, &text[..cut], &[9], true));
    assert_eq!(acc.error.unwrap()["code"], "upstream_protocol_error");
}

fn native_error(status: u16, body: &[u8], headers: &HeaderMap) -> llm_tower::GatewayError {
    translate::error(A, StatusCode::from_u16(status).unwrap(), headers, body)
}

#[test]
fn errors_keep_status_message_and_request_id_with_the_mapping() {
    let none = HeaderMap::new();
    let e = native_error(529, &fixture("anthropic/error-529-overloaded.json"), &none);
    assert_eq!(e.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        (e.error_type(), e.code()),
        ("server_error", Some("overloaded"))
    );
    assert!(
        e.message().starts_with("Overloaded")
            && e.message().contains("req_011CZAZuCr9hV42toiCdnnKB")
    );
    assert_eq!(e.kind(), llm_tower::ErrorKind::UpstreamStatus);

    let e = native_error(
        400,
        &fixture("anthropic/error-400-prompt-too-long.json"),
        &none,
    );
    assert_eq!(
        (e.status(), e.code()),
        (StatusCode::BAD_REQUEST, Some("context_length_exceeded"))
    );
    assert!(
        e.is_context_window_exceeded(),
        "a combo moves to its fallbacks"
    );
    assert!(e
        .message()
        .starts_with("prompt is too long: 210266 tokens > 200000 maximum"));

    for name in [
        "error-400-empty-text-block",
        "error-400-temperature-and-top-p",
    ] {
        let e = native_error(400, &fixture(&format!("anthropic/{name}.json")), &none);
        assert_eq!(
            (e.status(), e.error_type(), e.code()),
            (StatusCode::BAD_REQUEST, "invalid_request_error", None)
        );
    }
    let e = native_error(
        404,
        &fixture("anthropic/error-404-model-not-found.json"),
        &none,
    );
    assert_eq!(
        (e.status(), e.code()),
        (StatusCode::NOT_FOUND, Some("model_not_found"))
    );
    assert!(e.message().starts_with("model: claude-does-not-exist"));

    let recorded = fixture_json("anthropic/error-429-rate-limit.http.json");
    let mut headers = HeaderMap::new();
    headers.insert("retry-after", "17".parse().unwrap());
    let e = native_error(429, recorded["body"].to_string().as_bytes(), &headers);
    assert_eq!(
        (e.status(), e.code()),
        (StatusCode::TOO_MANY_REQUESTS, Some("rate_limit_exceeded"))
    );
    assert_eq!(e.retry_after().unwrap(), "17");
    assert!(e
        .message()
        .contains("rate limit of 20,000,000 prompt bytes per hour"));

    for (status, kind, out, code) in [
        (401, "authentication_error", 401, Some("invalid_api_key")),
        (402, "billing_error", 429, Some("insufficient_quota")),
        (403, "permission_error", 403, None),
        (413, "request_too_large", 413, None),
        (500, "api_error", 500, None),
        (504, "timeout_error", 504, None),
    ] {
        let body = json!({"type": "error", "error": {"type": kind, "message": "m"}});
        let e = native_error(status, body.to_string().as_bytes(), &none);
        assert_eq!((e.status().as_u16(), e.code()), (out, code), "{kind}");
    }
    let e = native_error(502, b"<html>bad gateway</html>", &none);
    assert_eq!(e.status(), StatusCode::BAD_GATEWAY);
    assert!(e.message().contains("<html>bad gateway</html>"));
}

// ---------------------------------------------------------------------------------------
// End to end over HTTP

async fn setup() -> (support::Running, support::Running, Replay) {
    let replay = Replay::default();
    let upstream = serve(replay.clone(), llm_tower::server::ServerSettings::default()).await;
    let yaml = format!(
        "providers:\n  claude: {{ kind: anthropic, api_base: '{}/v1', api_key: sk-ant-test, max_tokens: 333, models: [claude-sonnet-4-5] }}\nmetering: {{ sink: none }}\n",
        upstream.url()
    );
    (gateway(&yaml).await, upstream, replay)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_json_tool_round_trip_with_thinking_kept_by_the_gateway() {
    let (gw, _up, replay) = setup().await;
    let url = format!("{}/v1/chat/completions", gw.url());
    replay.push(
        Canned::json(
            200,
            fixture("anthropic/message-thinking-tool-use-roundtrip.turn1.response.json"),
        )
        .header("request-id", "req_up_1"),
    );
    let turn1 = json!({
        "model": "claude/claude-sonnet-4-20250514",
        "messages": [{"role": "user", "content": "What's the weather in Florence, Italy?"}],
        "tools": [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object", "properties": {"location": {"type": "string"}}}}}],
        "reasoning_effort": "medium",
    });
    let answer = post(
        &url,
        &turn1.to_string(),
        &[("authorization", "Bearer client-key")],
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(answer.headers["x-gateway-provider"], "claude");
    assert_eq!(answer.headers["x-upstream-request-id"], "req_up_1");
    assert_eq!(answer.headers["content-type"], "application/json");
    let c = answer.json();
    let call = &c["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["id"], "toolu_014azqsWLU8Djh6RhmBGRC2u");
    assert_eq!(c["choices"][0]["finish_reason"], "tool_calls");

    let seen = replay.seen();
    assert_eq!(seen[0].uri, "/v1/messages");
    assert_eq!(seen[0].headers["x-api-key"], "sk-ant-test");
    assert_eq!(seen[0].headers["anthropic-version"], "2023-06-01");
    assert!(
        seen[0].headers.get("authorization").is_none(),
        "the client's key stays behind"
    );
    assert_eq!(seen[0].body["model"], "claude-sonnet-4-20250514");
    assert_eq!(
        seen[0].body["thinking"],
        json!({"type": "enabled", "budget_tokens": 4096})
    );
    assert_eq!(seen[0].body["max_tokens"], 4096 + 333);

    // Turn 2 without `thinking_blocks`: the gateway replays the blocks it kept.
    replay.push(Canned::json(
        200,
        fixture("anthropic/message-thinking-tool-use-roundtrip.turn2.response.json"),
    ));
    let mut turn2 = turn1.clone();
    let messages = turn2["messages"].as_array_mut().unwrap();
    messages.push(json!({"role": "assistant", "content": null, "tool_calls": [call]}));
    messages.push(json!({"role": "tool", "tool_call_id": call["id"], "content": "40 C"}));
    let answer = post(&url, &turn2.to_string(), &[]).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let sent = &replay.seen()[1].body;
    let assistant = &sent["messages"][1]["content"];
    assert_eq!(assistant[0]["type"], "thinking");
    assert!(assistant[0]["signature"]
        .as_str()
        .unwrap()
        .starts_with("Es8DCkYICxgCKkBROcM3239oIjVRtMTZin6UAjoE9xO0SXVQMr4U"));
    assert_eq!(assistant[1]["type"], "tool_use");
    assert_eq!(sent["messages"][2]["content"][0]["type"], "tool_result");
    assert!(answer.json()["choices"][0]["message"]["content"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_streams_are_translated_as_they_arrive() {
    let (gw, _up, replay) = setup().await;
    let url = format!("{}/v1/chat/completions", gw.url());
    for include_usage in [true, false] {
        replay.push(Canned::sse(&fixture(
            "anthropic/stream-text-then-tool-use.sse",
        )));
        let mut body = json!({"model": "claude/claude-sonnet-4-20250514", "stream": true,
            "messages": [{"role": "user", "content": "weather in Paris?"}]});
        if include_usage {
            body["stream_options"] = json!({"include_usage": true});
        }
        let answer = post(&url, &body.to_string(), &[]).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        assert!(answer.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream"));
        let acc = accumulate(&answer.body);
        assert_eq!(acc.tool_calls[0].1, "get_weather");
        assert_eq!(acc.finish.as_deref(), Some("tool_calls"));
        assert!(acc.done);
        // The gateway asks for usage for metering, but the client sees it only on request.
        assert_eq!(acc.usage.is_some(), include_usage, "{}", answer.text());
        assert_eq!(replay.seen().last().unwrap().body["stream"], true);
        assert_eq!(replay.seen().last().unwrap().body["max_tokens"], 333);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_errors_keep_their_status_as_openai_errors() {
    let (gw, _up, replay) = setup().await;
    let url = format!("{}/v1/chat/completions", gw.url());
    let body = support::chat_body("claude/claude-sonnet-4-5", "hi", false);
    replay.push(Canned::json(
        529,
        fixture("anthropic/error-529-overloaded.json"),
    ));
    let err = post(&url, &body, &[])
        .await
        .error(StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(err["code"], "overloaded");

    let recorded = fixture_json("anthropic/error-429-rate-limit.http.json");
    replay.push(
        Canned::json(429, recorded["body"].to_string().into_bytes()).header("retry-after", "9"),
    );
    let answer = post(&url, &body, &[]).await;
    assert_eq!(
        answer.error(StatusCode::TOO_MANY_REQUESTS)["code"],
        "rate_limit_exceeded"
    );
    assert_eq!(answer.headers["retry-after"], "9");

    // An error event right after HTTP 200, before any content: a plain HTTP error.
    replay.push(Canned::sse(&fixture(
        "anthropic/stream-error-overloaded.sse",
    )));
    let stream = support::chat_body("claude/claude-sonnet-4-5", "hi", true);
    let err = post(&url, &stream, &[])
        .await
        .error(StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(err["message"], "Overloaded");

    // n > 1 never reaches Anthropic.
    let seen = replay.seen().len();
    let n2 = json!({"model": "claude/claude-sonnet-4-5", "n": 2, "messages": [{"role": "user", "content": "x"}]});
    assert_eq!(
        post(&url, &n2.to_string(), &[])
            .await
            .error(StatusCode::BAD_REQUEST)["param"],
        "n"
    );
    assert_eq!(replay.seen().len(), seen);

    // Unreachable upstream: the same 502 as an OpenAI provider.
    let dead = gateway("providers:\n  claude: { kind: anthropic, api_base: 'http://127.0.0.1:9/v1' }\nmetering: { sink: none }\n").await;
    let err = post(&format!("{}/v1/chat/completions", dead.url()), &body, &[])
        .await
        .error(StatusCode::BAD_GATEWAY);
    assert_eq!(err["code"], "upstream_unreachable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the openai SDK venv at LLM_TOWER_PYTHON: .ci/run installs it"]
async fn e2e_the_openai_python_sdk_cannot_tell() {
    let (gw, _up, replay) = setup().await;
    let gemini_replay = Replay::default();
    let gemini_up = serve(
        gemini_replay.clone(),
        llm_tower::server::ServerSettings::default(),
    )
    .await;
    let yaml = format!(
        "providers:\n  claude: {{ kind: anthropic, api_base: '{}/v1', api_key: k }}\n  gemini: {{ kind: gemini, api_base: '{}/v1beta', api_key: k }}\nmetering: {{ sink: none }}\n",
        _up.url(),
        gemini_up.url()
    );
    drop(gw);
    let gw = gateway(&yaml).await;
    // The canned answers, in the order tests/sdk/test_translated.py asks for them.
    replay.push(Canned::json(
        200,
        fixture("anthropic/message-text.response.json"),
    ));
    replay.push(Canned::sse(&fixture("anthropic/stream-text.sse")));
    replay.push(Canned::json(
        200,
        fixture("anthropic/message-text-and-tool-use.response.json"),
    ));
    replay.push(Canned::json(
        200,
        fixture("anthropic/message-text.response.json"),
    ));
    replay.push(Canned::sse(&fixture(
        "anthropic/stream-text-then-tool-use.sse",
    )));
    replay.push(Canned::json(
        529,
        fixture("anthropic/error-529-overloaded.json"),
    ));
    gemini_replay.push(Canned::json(
        200,
        fixture("gemini/generate-text-2.5-flash.response.json"),
    ));
    gemini_replay.push(Canned::sse(&fixture("gemini/stream-text.sse")));
    gemini_replay.push(Canned::json(
        200,
        fixture("gemini/generate-function-call-roundtrip.turn1.response.json"),
    ));
    gemini_replay.push(Canned::json(
        200,
        fixture("gemini/generate-text-2.5-flash.response.json"),
    ));
    gemini_replay.push(Canned::json(
        429,
        fixture("gemini/error-429-resource-exhausted.json"),
    ));
    pytest(
        &["tests/sdk/test_translated.py"],
        &[("TRANSLATED_GATEWAY_URL", format!("{}/v1", gw.url()))],
    )
    .await;
    // The tool round trip reached Anthropic with the tool result after the tool_use.
    let sent = &replay.seen()[3].body;
    assert_eq!(
        sent["messages"][1]["content"][1]["type"], "tool_use",
        "{sent}"
    );
    assert_eq!(
        sent["messages"][2]["content"][0]["type"], "tool_result",
        "{sent}"
    );
    let sent = &gemini_replay.seen()[3].body;
    assert!(
        sent["contents"][1]["parts"][0]["thoughtSignature"].is_string(),
        "{sent}"
    );
}

// ---------------------------------------------------------------------------------------
// Fuzzing

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        "[a-z_ ]{0,8}".prop_map(Value::from),
        prop::sample::select(vec![
            "user",
            "assistant",
            "tool",
            "system",
            "text",
            "image_url",
            "function",
            "tool_use",
            "message_start",
            "content_block_delta",
            "thinking"
        ])
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "model",
                    "messages",
                    "role",
                    "content",
                    "type",
                    "text",
                    "tools",
                    "tool_calls",
                    "function",
                    "name",
                    "arguments",
                    "id",
                    "tool_call_id",
                    "index",
                    "delta",
                    "message",
                    "usage",
                    "stop_reason",
                    "content_block",
                    "partial_json",
                    "image_url",
                    "url",
                    "max_tokens",
                    "n",
                    "stop",
                    "tool_choice",
                    "response_format",
                    "parameters",
                    "error"
                ])
                .prop_map(str::to_owned),
                inner,
                0..5,
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn fuzz_arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512), cut in 1usize..64) {
        let _ = translate::request(A, &bytes, "m", true);
        let _ = translate::response(A, &bytes, "m");
        let _ = translate::error(A, StatusCode::BAD_REQUEST, &HeaderMap::new(), &bytes);
        let mut t = StreamTranslation::new(A, "m", true);
        for frame in bytes.chunks(cut) {
            let _ = t.feed(frame);
        }
        let _ = t.finish();
    }

    #[test]
    fn fuzz_valid_json_translates_or_fails_cleanly(value in arb_json()) {
        let bytes = value.to_string();
        match translate::request(A, bytes.as_bytes(), "m", false) {
            Ok(native) => prop_assert!(native.is_object()),
            Err(e) => prop_assert!(e.status().is_client_error(), "{e}"),
        }
        match translate::response(A, bytes.as_bytes(), "m") {
            Ok(c) => prop_assert!(serde_json::from_slice::<Value>(&c).is_ok()),
            Err(e) => prop_assert!(e.status().is_server_error(), "{e}"),
        }
        let e = translate::error(A, StatusCode::INTERNAL_SERVER_ERROR, &HeaderMap::new(), bytes.as_bytes());
        prop_assert!(e.status().is_server_error());
        // As stream events, with and without the event name.
        let mut t = StreamTranslation::new(A, "m", true);
        let out = t.feed(format!("event: message_start\ndata: {bytes}\n\ndata: {bytes}\n\n").as_bytes());
        let out = [out, t.finish()].concat();
        for c in chunks(&out) {
            prop_assert!(c.is_object() || c == "[DONE]");
        }
    }
}

/// One content block of a generated answer.
#[derive(Debug, Clone)]
enum GenBlock {
    Text(String),
    Thinking(String),
    Tool(String, Value),
}

fn arb_block() -> impl Strategy<Value = GenBlock> {
    let text = "[ a-zA-Z0-9.,!?é\"\\\\\n{}]{0,40}";
    prop_oneof![
        text.prop_map(GenBlock::Text),
        text.prop_map(GenBlock::Thinking),
        (
            "[a-z_]{1,12}",
            prop::collection::btree_map(
                "[a-z]{1,6}",
                prop_oneof![
                    any::<i32>().prop_map(Value::from),
                    text.prop_map(Value::from),
                    any::<bool>().prop_map(Value::from)
                ],
                0..4
            )
        )
            .prop_map(|(name, args)| GenBlock::Tool(
                name,
                Value::Object(args.into_iter().collect())
            )),
    ]
}

/// The answer as a Message, and as the event stream Anthropic sends for it (each delta
/// cut into pieces of `piece` bytes or fewer, on character boundaries).
fn message_and_stream(
    blocks: &[GenBlock],
    stop: &str,
    input: u64,
    output: u64,
    piece: usize,
) -> (Value, String) {
    let details =
        (stop == "refusal").then(|| json!({"type": "refusal", "explanation": "Declined: policy."}));
    let mut content = Vec::new();
    let mut sse = String::new();
    let mut event =
        |name: &str, data: Value| sse.push_str(&format!("event: {name}\ndata: {data}\n\n"));
    event(
        "message_start",
        json!({"type": "message_start", "message": {"id": "msg_gen", "type": "message", "role": "assistant",
        "model": "claude-gen", "content": [], "stop_reason": null, "usage": {"input_tokens": input, "output_tokens": 1}}}),
    );
    let pieces = |text: &str| -> Vec<String> {
        let chars: Vec<char> = text.chars().collect();
        chars
            .chunks(piece.max(1))
            .map(|c| c.iter().collect())
            .collect()
    };
    for (index, block) in blocks.iter().enumerate() {
        match block {
            GenBlock::Text(text) => {
                content.push(json!({"type": "text", "text": text}));
                event(
                    "content_block_start",
                    json!({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}),
                );
                for p in pieces(text) {
                    event(
                        "content_block_delta",
                        json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": p}}),
                    );
                }
            }
            GenBlock::Thinking(text) => {
                content.push(json!({"type": "thinking", "thinking": text, "signature": "sig-gen"}));
                event(
                    "content_block_start",
                    json!({"type": "content_block_start", "index": index, "content_block": {"type": "thinking", "thinking": "", "signature": ""}}),
                );
                for p in pieces(text) {
                    event(
                        "content_block_delta",
                        json!({"type": "content_block_delta", "index": index, "delta": {"type": "thinking_delta", "thinking": p}}),
                    );
                }
                event(
                    "content_block_delta",
                    json!({"type": "content_block_delta", "index": index, "delta": {"type": "signature_delta", "signature": "sig-gen"}}),
                );
            }
            GenBlock::Tool(name, args) => {
                let id = format!("toolu_gen_{index}");
                content.push(json!({"type": "tool_use", "id": id, "name": name, "input": args}));
                event(
                    "content_block_start",
                    json!({"type": "content_block_start", "index": index, "content_block": {"type": "tool_use", "id": id, "name": name, "input": {}}}),
                );
                let json_text = if args.as_object().is_some_and(|m| m.is_empty()) {
                    String::new()
                } else {
                    args.to_string()
                };
                for p in pieces(&json_text)
                    .into_iter()
                    .chain(json_text.is_empty().then(String::new))
                {
                    event(
                        "content_block_delta",
                        json!({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": p}}),
                    );
                }
            }
        }
        event(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": index}),
        );
    }
    let mut delta = json!({"stop_reason": stop, "stop_sequence": null});
    if let Some(d) = &details {
        delta["stop_details"] = d.clone();
    }
    event(
        "message_delta",
        json!({"type": "message_delta", "delta": delta, "usage": {"output_tokens": output}}),
    );
    event("message_stop", json!({"type": "message_stop"}));
    let mut message = json!({"id": "msg_gen", "type": "message", "role": "assistant", "model": "claude-gen", "content": content,
        "stop_reason": stop, "stop_sequence": null, "usage": {"input_tokens": input, "output_tokens": output}});
    if let Some(d) = details {
        message["stop_details"] = d;
    }
    (message, sse)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Translating a Message and assembling the translated stream of the same answer give
    /// the same chat completion: content, reasoning, tool calls, refusal, finish, usage.
    #[test]
    fn a_message_and_its_stream_translate_to_the_same_completion(
        blocks in prop::collection::vec(arb_block(), 0..5),
        stop in prop::sample::select(vec!["end_turn", "stop_sequence", "max_tokens", "tool_use", "refusal", "pause_turn", "model_context_window_exceeded"]),
        input in 0u64..5000,
        output in 1u64..5000,
        piece in 1usize..12,
        frame in 1usize..200,
    ) {
        let (message, sse) = message_and_stream(&blocks, stop, input, output, piece);
        let whole: Value = serde_json::from_slice(&translate::response(A, message.to_string().as_bytes(), "m").unwrap()).unwrap();
        let sizes: Vec<usize> = std::iter::repeat_n(frame, sse.len() / frame + 1).collect();
        let acc = accumulate(&native_replay::translate(A, sse.as_bytes(), &sizes, true));
        let m = &whole["choices"][0]["message"];
        prop_assert_eq!(acc.content.as_str(), m["content"].as_str().unwrap_or(""));
        prop_assert_eq!(acc.reasoning.as_str(), m["reasoning_content"].as_str().unwrap_or(""));
        prop_assert_eq!(acc.refusal.as_str(), m["refusal"].as_str().unwrap_or(""));
        prop_assert_eq!(acc.finish.as_deref(), whole["choices"][0]["finish_reason"].as_str());
        let calls: Vec<(String, String, Value)> = m["tool_calls"].as_array().into_iter().flatten()
            .map(|c| (c["id"].as_str().unwrap().to_owned(), c["function"]["name"].as_str().unwrap().to_owned(),
                serde_json::from_str(c["function"]["arguments"].as_str().unwrap()).unwrap()))
            .collect();
        let streamed: Vec<(String, String, Value)> = acc.tool_calls.iter()
            .map(|(id, name, args)| (id.clone(), name.clone(), serde_json::from_str(args).unwrap_or_else(|e| panic!("{e}: {args}"))))
            .collect();
        prop_assert_eq!(streamed, calls);
        let usage = acc.usage.as_ref().unwrap();
        prop_assert_eq!(&usage["prompt_tokens"], &whole["usage"]["prompt_tokens"]);
        prop_assert_eq!(&usage["completion_tokens"], &whole["usage"]["completion_tokens"]);
    }
}
