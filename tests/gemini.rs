//! Gemini generateContent ⇄ OpenAI: every applicable fixture of `tests/fixtures/gemini`
//! (requests field by field, responses, CRLF streams in any framing, errors), end to end
//! over real HTTP against a mock Gemini replaying the recorded bytes, and proptest fuzzing.

mod native_replay;
mod support;

use http::{HeaderMap, StatusCode};
use llm_tower::translate::{self, Native, StreamTranslation};
use native_replay::*;
use proptest::prelude::*;
use serde_json::{json, Value};
use support::{gateway, post, serve};

const G: Native = Native::Gemini;

fn request(openai: &Value, stream: bool) -> Value {
    translate::request(G, openai.to_string().as_bytes(), "m", stream).unwrap()
}

fn completion(path: &str) -> Value {
    serde_json::from_slice(&translate::response(G, &fixture(path), "requested").unwrap()).unwrap()
}

/// The weather tool as an OpenAI client declares it (JSON Schema, lower-case types).
fn weather_tool() -> Value {
    json!({"type": "function", "function": {
        "name": "weather", "description": "Get weather information for a location",
        "parameters": {"type": "object", "$schema": "http://json-schema.org/draft-07/schema#",
            "additionalProperties": false,
            "properties": {"location": {"type": "string", "description": "the city"}},
            "required": ["location"]},
    }})
}

/// What the test expects the gateway to mint from a signature (base64url in the id).
fn id_with_signature(id: &str, signature: &str) -> String {
    let url: String = signature
        .trim_end_matches('=')
        .chars()
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        })
        .collect();
    format!("{id}_sig_{url}")
}

#[test]
fn request_text_and_image_match_the_recordings_from_the_openai_requests() {
    // The same OpenAI requests that produced the OpenAI fixtures.
    let openai = fixture_json("openai/chat-text-gpt-5-reasoning-tokens.request.json");
    assert_same(
        &fixture_json("gemini/generate-text-2.5-flash.request.json"),
        &request(&openai, false),
    );
    let openai = fixture_json("openai/image-input.request.json");
    assert_same(
        &fixture_json("gemini/generate-image-input.request.json"),
        &request(&openai, false),
    );

    let openai = json!({"model": "g/x", "temperature": 0, "messages": [
        {"role": "system", "content": "You are a helpful chatbot."},
        {"role": "user", "content": "What is the capital of France?"}]});
    assert_same(
        &fixture_json("gemini/stream-text.request.json"),
        &request(&openai, true),
    );
}

#[test]
fn request_json_schemas_match_the_recordings() {
    for name in ["generate-json-schema", "generate-json-schema-complex"] {
        let native = fixture_json(&format!("gemini/{name}.request.json"));
        let openai = json!({"model": "g/x", "max_tokens": 4000,
            "messages": [{"role": "user", "content": native["contents"][0]["parts"][0]["text"]}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "out",
                "schema": native["generationConfig"]["responseJsonSchema"]}}});
        assert_same(&native, &request(&openai, false));
    }
}

#[test]
fn request_function_call_round_trips_replay_the_thought_signature() {
    for (name, response_part, thinking) in [
        (
            "generate-function-call-roundtrip",
            "turn1.response.json",
            None,
        ),
        ("stream-function-call-roundtrip", "turn1.sse", None),
        (
            "generate-thinking-include-thoughts",
            "turn1.response.json",
            Some(128),
        ),
        ("stream-thinking-include-thoughts", "turn1.sse", Some(128)),
    ] {
        let turn1 = fixture_json(&format!("gemini/{name}.turn1.request.json"));
        let question = turn1["contents"][0]["parts"][0]["text"].clone();
        let mut openai = json!({"model": "g/x", "tool_choice": "auto", "tools": [weather_tool()],
            "messages": [{"role": "system", "content": "You are a helpful assistant"},
                {"role": "user", "content": question}]});
        if let Some(budget) = thinking {
            openai["thinking"] = json!({"type": "enabled", "budget_tokens": budget});
        } else {
            openai["max_tokens"] = json!(4000);
        }
        assert_same(&turn1, &request(&openai, false));

        // The gateway's answer carries the signature in the tool-call id.
        let answer = fixture(&format!("gemini/{name}.{response_part}"));
        let (call_id, args) = if response_part.ends_with(".sse") {
            let acc = accumulate(&translate(G, &answer, &[answer.len()], false));
            (acc.tool_calls[0].0.clone(), acc.tool_calls[0].2.clone())
        } else {
            let c: Value =
                serde_json::from_slice(&translate::response(G, &answer, "m").unwrap()).unwrap();
            let call = &c["choices"][0]["message"]["tool_calls"][0];
            (
                call["id"].as_str().unwrap().to_owned(),
                call["function"]["arguments"].as_str().unwrap().to_owned(),
            )
        };
        let turn2 = fixture_json(&format!("gemini/{name}.turn2.request.json"));
        let part = &turn2["contents"][1]["parts"][0];
        let signature = part["thoughtSignature"].as_str().unwrap();
        let suffix = id_with_signature("", signature);
        assert!(
            call_id.starts_with("call_") && call_id.ends_with(&suffix),
            "{call_id}"
        );
        // The recording's client named its call "1"; so does this one.
        let id = id_with_signature("1", signature);
        let messages = openai["messages"].as_array_mut().unwrap();
        messages.push(json!({"role": "assistant", "content": null, "tool_calls": [
            {"id": id, "type": "function", "function": {"name": "weather", "arguments": args}}]}));
        messages.push(json!({"role": "tool", "tool_call_id": id, "content": "40 C"}));
        assert_same(&turn2, &request(&openai, false));
    }
}

#[test]
fn request_rules_roles_schemas_and_limits() {
    let openai = json!({"model": "g/x", "messages": [
            {"role": "user", "content": "a"}, {"role": "user", "content": "b"},
            {"role": "assistant", "content": "c"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "x1", "type": "function", "function": {"name": "f", "arguments": "{\"q\":1}"}},
                {"id": "x2", "type": "function", "function": {"name": "g", "arguments": ""}}]},
            {"role": "tool", "tool_call_id": "x1", "content": "{\"ok\":true}"},
            {"role": "tool", "tool_call_id": "x2", "content": [{"type": "text", "text": "plain"}]},
        ],
        "n": 2, "stop": "END", "seed": 7, "top_p": 0.9, "reasoning_effort": "low",
        "tool_choice": {"type": "function", "function": {"name": "f"}},
        "response_format": {"type": "json_object"},
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {
            "type": "object", "additionalProperties": false,
            "$defs": {"Q": {"type": "integer", "exclusiveMinimum": 0}},
            "properties": {"q": {"$ref": "#/$defs/Q"}, "r": {"type": ["string", "null"], "const": "x"},
                "s": {"anyOf": [{"type": "number"}, {"type": "null"}]}}}}}]});
    let r = request(&openai, false);
    let c = r["contents"].as_array().unwrap();
    assert_eq!(c.len(), 3, "{r}");
    assert_eq!(
        c[0],
        json!({"role": "user", "parts": [{"text": "a"}, {"text": "b"}]})
    );
    assert_eq!(c[1]["role"], "model");
    assert_eq!(c[1]["parts"][0], json!({"text": "c"}));
    assert_eq!(
        c[1]["parts"][2]["functionCall"],
        json!({"name": "g", "args": {}, "id": "x2"})
    );
    assert_eq!(
        c[2]["parts"][0]["functionResponse"],
        json!({"name": "f", "response": {"ok": true}, "id": "x1"})
    );
    assert_eq!(
        c[2]["parts"][1]["functionResponse"]["response"],
        json!({"result": "plain"})
    );
    let g = &r["generationConfig"];
    assert_eq!(
        (
            g["candidateCount"].clone(),
            g["seed"].clone(),
            g["topP"].clone()
        ),
        (json!(2), json!(7), json!(0.9))
    );
    assert_eq!(g["stopSequences"], json!(["END"]));
    assert_eq!(g["responseMimeType"], "application/json");
    assert_eq!(
        g["thinkingConfig"],
        json!({"includeThoughts": true, "thinkingBudget": 1024})
    );
    assert_eq!(
        r["toolConfig"]["functionCallingConfig"],
        json!({"mode": "ANY", "allowedFunctionNames": ["f"]})
    );
    assert_same(
        &json!({"type": "OBJECT", "properties": {
            "q": {"type": "INTEGER", "minimum": 0},
            "r": {"type": "STRING", "nullable": true, "enum": ["x"]},
            "s": {"type": "NUMBER", "nullable": true}}}),
        &r["tools"][0]["functionDeclarations"][0]["parameters"],
    );

    for (body, param) in [
        (
            json!({"model": "m", "messages": [{"role": "tool", "tool_call_id": "nope", "content": "x"}]}),
            "messages[0].tool_call_id",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "stop": ["a", "b", "c", "d", "e", "f"]}),
            "stop",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}]}),
            "messages[0].content",
        ),
    ] {
        let err = translate::request(G, body.to_string().as_bytes(), "m", false).unwrap_err();
        assert_eq!(
            (err.status(), err.param()),
            (StatusCode::BAD_REQUEST, Some(param)),
            "{body}"
        );
    }
}

#[test]
fn responses_translate_text_usage_tools_and_blocks() {
    let c = completion("gemini/generate-text-2.5-flash.response.json");
    assert_eq!(c["id"], "VgCzac2AGLOHz7IP2pOkkAI");
    assert_eq!(c["model"], "gemini-2.5-flash");
    assert_eq!(c["choices"][0]["message"]["content"], "Olá!");
    assert_eq!(c["choices"][0]["finish_reason"], "stop");
    // candidates exclude thoughts: 2 + 24 completion tokens, 24 of them reasoning.
    assert_same(
        &json!({"prompt_tokens": 11, "completion_tokens": 26, "total_tokens": 37,
        "prompt_tokens_details": {"cached_tokens": 0}, "completion_tokens_details": {"reasoning_tokens": 24}}),
        &c["usage"],
    );

    let c = completion("gemini/generate-cached-content-usage.response.json");
    assert_eq!(
        (
            c["usage"]["prompt_tokens"].clone(),
            c["usage"]["prompt_tokens_details"]["cached_tokens"].clone()
        ),
        (json!(3520), json!(3512))
    );
    assert_eq!(c["usage"]["total_tokens"], 3564);

    let c = completion("gemini/generate-safety-block.response.json");
    assert_eq!(c["choices"][0]["finish_reason"], "content_filter");
    assert_eq!(c["choices"][0]["message"]["content"], Value::Null);
    assert_eq!(c["usage"]["completion_tokens"], 0);

    let c = completion("gemini/generate-max-tokens.response.json");
    assert_eq!(c["choices"][0]["finish_reason"], "length");

    let c = completion("gemini/generate-thinking-include-thoughts.turn1.response.json");
    let m = &c["choices"][0]["message"];
    assert!(m["reasoning_content"]
        .as_str()
        .unwrap()
        .starts_with("**Weather Check in Florence**"));
    assert_eq!(m["content"], Value::Null);
    assert_eq!(m["tool_calls"][0]["function"]["name"], "weather");
    assert_eq!(
        m["tool_calls"][0]["function"]["arguments"],
        "{\"location\":\"Florence, Italy\"}"
    );
    assert_eq!(c["choices"][0]["finish_reason"], "tool_calls");

    for name in [
        "generate-json-schema",
        "generate-json-schema-complex",
        "generate-image-input",
    ] {
        let c = completion(&format!("gemini/{name}.response.json"));
        let content = c["choices"][0]["message"]["content"].as_str().unwrap();
        if name.contains("json") {
            assert!(
                serde_json::from_str::<Value>(content).unwrap().is_object(),
                "{content}"
            );
        }
    }

    let blocked = json!({"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 5, "totalTokenCount": 5}});
    let c: Value = serde_json::from_slice(
        &translate::response(G, blocked.to_string().as_bytes(), "m").unwrap(),
    )
    .unwrap();
    assert_eq!(c["choices"][0]["finish_reason"], "content_filter");
    assert_eq!(
        c["choices"][0]["message"]["refusal"],
        "The prompt was blocked (SAFETY)."
    );
    assert_eq!(c["model"], "m");
}

#[test]
fn streams_translate_in_any_framing_with_the_last_usage() {
    let out = assert_split_invariant(G, &fixture("gemini/stream-text.sse"), true);
    let cs = chunks(&out);
    assert_eq!(
        cs[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    assert_eq!(cs[0]["id"], "w1peaMz6INOvnvgPgYfPiQY");
    let acc = accumulate(&out);
    assert_eq!(acc.content, "The capital of France is Paris.\n");
    assert_eq!(acc.finish.as_deref(), Some("stop"));
    // Usage is not monotonic (15, 15, then 13): only the last chunk counts.
    assert_eq!(acc.usage.as_ref().unwrap()["prompt_tokens"], 13);
    assert_eq!(acc.usage.as_ref().unwrap()["total_tokens"], 21);
    assert!(acc.done);

    for name in [
        "stream-function-call-roundtrip",
        "stream-thinking-include-thoughts",
    ] {
        let acc = accumulate(&assert_split_invariant(
            G,
            &fixture(&format!("gemini/{name}.turn1.sse")),
            false,
        ));
        assert_eq!(acc.tool_calls.len(), 1);
        assert!(acc.tool_calls[0].0.contains("_sig_"));
        assert_eq!(acc.tool_calls[0].1, "weather");
        assert!(
            serde_json::from_str::<Value>(&acc.tool_calls[0].2).unwrap()["location"].is_string()
        );
        assert_eq!(acc.finish.as_deref(), Some("tool_calls"));
        assert!(acc.usage.is_none() && acc.done);
        if name.contains("thinking") {
            assert!(acc
                .reasoning
                .starts_with("**Determining the Weather Inquiry**"));
        }
        let acc = accumulate(&assert_split_invariant(
            G,
            &fixture(&format!("gemini/{name}.turn2.sse")),
            true,
        ));
        assert!(!acc.content.is_empty() && acc.tool_calls.is_empty());
        assert_eq!(acc.finish.as_deref(), Some("stop"));
    }
}

#[test]
fn stream_failures_end_with_an_error_event() {
    let text = fixture("gemini/stream-text.sse");
    let cut = String::from_utf8_lossy(&text).rfind("data: ").unwrap();
    let acc = accumulate(&translate(G, &text[..cut], &[11], true));
    assert_eq!(acc.content, "The capital of France");
    assert_eq!(acc.error.unwrap()["code"], "upstream_protocol_error");
    assert!(!acc.done);

    let mut stream = text[..cut].to_vec();
    stream.extend_from_slice(b"data: ");
    stream.extend_from_slice(
        &fixture("gemini/error-503-unavailable.json")
            .iter()
            .copied()
            .filter(|&b| b != b'\n')
            .collect::<Vec<_>>(),
    );
    stream.extend_from_slice(b"\r\n\r\n");
    let acc = accumulate(&assert_split_invariant(G, &stream, true));
    let err = acc.error.unwrap();
    assert_eq!(
        err["message"],
        "The model is overloaded. Please try again later."
    );
    assert_eq!(err["type"], "server_error");
}

#[test]
fn a_prompt_over_the_token_limit_is_a_context_window_error() {
    // Gemini's wording for a prompt over the model's input limit (documented, not recorded).
    let body = br#"{"error":{"code":400,"message":"The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).","status":"INVALID_ARGUMENT"}}"#;
    let e = translate::error(G, StatusCode::BAD_REQUEST, &HeaderMap::new(), body);
    assert_eq!(e.code(), Some("context_length_exceeded"));
    assert!(e.is_context_window_exceeded());
    let other = translate::error(
        G,
        StatusCode::BAD_REQUEST,
        &HeaderMap::new(),
        &fixture("gemini/error-400-invalid-json-payload.json"),
    );
    assert!(!other.is_context_window_exceeded());
}

#[test]
fn errors_keep_status_and_map_key_and_retry_info() {
    let e = translate::error(
        G,
        StatusCode::BAD_REQUEST,
        &HeaderMap::new(),
        &fixture("gemini/error-400-invalid-json-payload.json"),
    );
    assert_eq!(
        (e.status(), e.error_type(), e.param()),
        (
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            Some("contents[0].parts")
        )
    );
    assert!(e
        .message()
        .starts_with("Invalid JSON payload received. Unknown name \"role\""));
    assert_eq!(e.kind(), llm_tower::ErrorKind::UpstreamStatus);

    let e = translate::error(
        G,
        StatusCode::TOO_MANY_REQUESTS,
        &HeaderMap::new(),
        &fixture("gemini/error-429-resource-exhausted.json"),
    );
    assert_eq!(
        (e.status(), e.code()),
        (StatusCode::TOO_MANY_REQUESTS, Some("rate_limit_exceeded"))
    );
    assert_eq!(e.retry_after().unwrap(), "35");

    for (name, status) in [("error-500-internal", 500), ("error-503-unavailable", 503)] {
        let e = translate::error(
            G,
            StatusCode::from_u16(status).unwrap(),
            &HeaderMap::new(),
            &fixture(&format!("gemini/{name}.json")),
        );
        assert_eq!(
            (e.status().as_u16(), e.error_type()),
            (status, "server_error")
        );
    }
    let key = json!({"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.", "status": "INVALID_ARGUMENT",
        "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID", "domain": "googleapis.com"}]}});
    let e = translate::error(
        G,
        StatusCode::BAD_REQUEST,
        &HeaderMap::new(),
        key.to_string().as_bytes(),
    );
    assert_eq!(
        (e.status(), e.code()),
        (StatusCode::UNAUTHORIZED, Some("invalid_api_key"))
    );
    let e = translate::error(G, StatusCode::NOT_FOUND, &HeaderMap::new(), b"[{\"error\":{\"code\":404,\"message\":\"models/x is not found\",\"status\":\"NOT_FOUND\"}}]");
    assert_eq!(
        (e.status(), e.code(), e.message()),
        (
            StatusCode::NOT_FOUND,
            Some("model_not_found"),
            "models/x is not found"
        )
    );
}

// ---------------------------------------------------------------------------------------
// End to end over HTTP

async fn setup() -> (support::Running, support::Running, Replay) {
    let replay = Replay::default();
    let upstream = serve(replay.clone(), llm_tower::server::ServerSettings::default()).await;
    let yaml = format!(
        "providers:\n  gemini: {{ kind: gemini, api_base: '{}/v1beta', api_key: AIza-test }}\nmetering: {{ sink: none }}\n",
        upstream.url()
    );
    (gateway(&yaml).await, upstream, replay)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_json_stream_errors_and_embeddings() {
    let (gw, _up, replay) = setup().await;
    let url = format!("{}/v1/chat/completions", gw.url());

    replay.push(Canned::json(
        200,
        fixture("gemini/generate-text-2.5-flash.response.json"),
    ));
    let body = fixture("openai/chat-text-gpt-5-reasoning-tokens.request.json");
    let mut body: Value = serde_json::from_slice(&body).unwrap();
    body["model"] = json!("gemini/gemini-2.5-flash");
    let answer = post(
        &url,
        &body.to_string(),
        &[("authorization", "Bearer client")],
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(answer.json()["choices"][0]["message"]["content"], "Olá!");
    assert_eq!(answer.headers["x-gateway-model"], "gemini-2.5-flash");
    let seen = &replay.seen()[0];
    assert_eq!(seen.uri, "/v1beta/models/gemini-2.5-flash:generateContent");
    assert_eq!(seen.headers["x-goog-api-key"], "AIza-test");
    assert!(seen.headers.get("authorization").is_none());
    assert_same(
        &fixture_json("gemini/generate-text-2.5-flash.request.json"),
        &seen.body,
    );

    replay.push(Canned::sse(&fixture("gemini/stream-text.sse")));
    let stream = json!({"model": "gemini/gemini-2.0-flash", "stream": true,
        "messages": [{"role": "user", "content": "What is the capital of France?"}]});
    let answer = post(&url, &stream.to_string(), &[]).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let acc = accumulate(&answer.body);
    assert_eq!(acc.content, "The capital of France is Paris.\n");
    assert!(acc.done && acc.usage.is_none(), "{}", answer.text());
    assert_eq!(
        replay.seen()[1].uri,
        "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse"
    );

    replay.push(Canned::json(
        429,
        fixture("gemini/error-429-resource-exhausted.json"),
    ));
    let answer = post(
        &url,
        &support::chat_body("gemini/gemini-2.5-flash", "hi", true),
        &[],
    )
    .await;
    assert_eq!(
        answer.error(StatusCode::TOO_MANY_REQUESTS)["code"],
        "rate_limit_exceeded"
    );
    assert_eq!(answer.headers["retry-after"], "35");

    replay.push(Canned::json(
        200,
        br#"{"embeddings":[{"values":[0.5,-1.0]},{"values":[0.25,2.0]}]}"#.to_vec(),
    ));
    let emb = json!({"model": "gemini/text-embedding-004", "input": ["a", "b"], "dimensions": 2});
    let answer = post(
        &format!("{}/v1/embeddings", gw.url()),
        &emb.to_string(),
        &[],
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let v = answer.json();
    assert_eq!(v["data"][1]["embedding"], json!([0.25, 2.0]));
    assert_eq!(v["object"], "list");
    let seen = &replay.seen()[3];
    assert_eq!(
        seen.uri,
        "/v1beta/models/text-embedding-004:batchEmbedContents"
    );
    assert_eq!(
        seen.body["requests"][1],
        json!({"model": "models/text-embedding-004", "content": {"parts": [{"text": "b"}]}, "outputDimensionality": 2})
    );
}

// ---------------------------------------------------------------------------------------
// Fuzzing

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn fuzz_arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512), cut in 1usize..64) {
        let _ = translate::request(G, &bytes, "m", true);
        let _ = translate::response(G, &bytes, "m");
        let _ = translate::error(G, StatusCode::BAD_REQUEST, &HeaderMap::new(), &bytes);
        let mut t = StreamTranslation::new(G, "m", true);
        for frame in bytes.chunks(cut) {
            let _ = t.feed(frame);
        }
        let _ = t.finish();
    }

    #[test]
    fn fuzz_gemini_shaped_json_translates_or_fails_cleanly(
        texts in prop::collection::vec("[a-zA-Z \\n\"]{0,12}", 0..4),
        reason in prop::sample::select(vec!["STOP", "MAX_TOKENS", "SAFETY", "OTHER", "MALFORMED_FUNCTION_CALL", ""]),
        thought in any::<bool>(),
        call in any::<bool>(),
        tokens in prop::option::of(0u64..10_000),
    ) {
        let mut parts: Vec<Value> = texts.iter().map(|t| json!({"text": t, "thought": thought})).collect();
        if call {
            parts.push(json!({"functionCall": {"name": "f", "args": {"a": texts.len()}}, "thoughtSignature": "c2ln+/=="}));
        }
        let mut candidate = json!({"content": {"parts": parts, "role": "model"}});
        if !reason.is_empty() {
            candidate["finishReason"] = json!(reason);
        }
        let chunk = json!({"candidates": [candidate], "usageMetadata": {"promptTokenCount": tokens, "totalTokenCount": tokens}});
        let c: Value = serde_json::from_slice(&translate::response(G, chunk.to_string().as_bytes(), "m").unwrap()).unwrap();
        prop_assert_eq!(c["object"].as_str(), Some("chat.completion"));
        let sse = format!("data: {chunk}\r\n\r\n");
        let out = translate(G, sse.as_bytes(), &[3], true);
        let acc = accumulate(&out);
        prop_assert_eq!(acc.done, !reason.is_empty());
        prop_assert_eq!(acc.error.is_some(), reason.is_empty());
        if call {
            prop_assert!(acc.tool_calls[0].0.ends_with("_sig_c2ln-_"));
        }
    }
}

// ---------------------------------------------------------------------------------------
// A response and its stream agree

/// Every `finishReason` of Gemini's API reference (`FinishReason`), with the OpenAI
/// `finish_reason` it becomes when no tool was called.
const FINISH_REASONS: [(&str, &str); 20] = [
    ("STOP", "stop"),
    ("MAX_TOKENS", "length"),
    ("SAFETY", "content_filter"),
    ("RECITATION", "content_filter"),
    ("LANGUAGE", "stop"),
    ("OTHER", "stop"),
    ("BLOCKLIST", "content_filter"),
    ("PROHIBITED_CONTENT", "content_filter"),
    ("SPII", "content_filter"),
    ("MALFORMED_FUNCTION_CALL", "stop"),
    ("IMAGE_SAFETY", "content_filter"),
    ("IMAGE_PROHIBITED_CONTENT", "content_filter"),
    ("IMAGE_OTHER", "stop"),
    ("NO_IMAGE", "stop"),
    ("IMAGE_RECITATION", "content_filter"),
    ("UNEXPECTED_TOOL_CALL", "stop"),
    ("TOO_MANY_TOOL_CALLS", "stop"),
    ("MISSING_THOUGHT_SIGNATURE", "stop"),
    ("MALFORMED_RESPONSE", "stop"),
    ("FINISH_REASON_UNSPECIFIED", "stop"),
];

/// One generated part of a Gemini answer.
#[derive(Debug, Clone)]
enum GenPart {
    Text(String),
    Thought(String),
    /// Name, arguments, the call's own id (Gemini 3 sends one), a thought signature.
    Call(String, Value, Option<String>, Option<String>),
}

fn arb_part() -> impl Strategy<Value = GenPart> {
    let text = "[a-zA-Z0-9 .,!?\"\\\\\n\u{e9}\u{4e2d}\u{1f600}]{1,40}";
    prop_oneof![
        text.prop_map(GenPart::Text),
        text.prop_map(GenPart::Thought),
        (
            "[a-z_]{1,12}",
            prop::collection::btree_map(
                "[a-z]{1,6}",
                prop_oneof![
                    any::<i32>().prop_map(Value::from),
                    "[a-z \"]{0,8}".prop_map(Value::from)
                ],
                0..4
            ),
            prop::option::of("[a-z0-9]{4,10}"),
            prop::option::of("[A-Za-z0-9+/]{4,16}={0,2}"),
        )
            .prop_map(|(name, args, id, sig)| GenPart::Call(name, json!(args), id, sig)),
    ]
}

fn native_part(part: &GenPart, text: &str) -> Value {
    match part {
        GenPart::Text(_) => json!({ "text": text }),
        GenPart::Thought(_) => json!({ "text": text, "thought": true }),
        GenPart::Call(name, args, id, sig) => {
            let mut call = json!({ "name": name, "args": args });
            if let Some(id) = id {
                call["id"] = json!(id);
            }
            let mut part = json!({ "functionCall": call });
            if let Some(sig) = sig {
                part["thoughtSignature"] = json!(sig);
            }
            part
        }
    }
}

/// The `generateContent` answer of `parts`, and the `streamGenerateContent?alt=sse` body of
/// the same answer: text and thoughts cut in pieces of `piece` characters, a chunk each,
/// every chunk with running usage and the last with the finish reason and the totals.
fn answer_and_stream(
    parts: &[GenPart],
    reason: &str,
    usage: (u64, u64, u64),
    piece: usize,
) -> (Value, String) {
    let (prompt, candidates, thoughts) = usage;
    let metadata = |done: bool| {
        let (c, t) = if done {
            (candidates, thoughts)
        } else {
            (candidates / 2, thoughts / 2)
        };
        json!({ "promptTokenCount": prompt, "candidatesTokenCount": c, "thoughtsTokenCount": t, "totalTokenCount": prompt + c + t })
    };
    let mut chunks: Vec<Value> = Vec::new();
    for part in parts {
        match part {
            GenPart::Text(text) | GenPart::Thought(text) => {
                let chars: Vec<char> = text.chars().collect();
                for p in chars.chunks(piece.max(1)) {
                    chunks.push(json!([native_part(part, &p.iter().collect::<String>())]));
                }
            }
            GenPart::Call(..) => chunks.push(json!([native_part(part, "")])),
        }
    }
    if chunks.is_empty() {
        chunks.push(json!([{ "text": "" }]));
    }
    let last = chunks.len() - 1;
    let mut sse = String::new();
    for (i, parts) in chunks.into_iter().enumerate() {
        let mut candidate = json!({ "content": { "parts": parts, "role": "model" }, "index": 0 });
        if i == last {
            candidate["finishReason"] = json!(reason);
        }
        let chunk = json!({ "candidates": [candidate], "usageMetadata": metadata(i == last), "modelVersion": "gemini-gen", "responseId": "resp-gen" });
        sse.push_str(&format!("data: {chunk}\r\n\r\n"));
    }
    let whole: Vec<Value> = parts
        .iter()
        .map(|p| match p {
            GenPart::Text(t) | GenPart::Thought(t) => native_part(p, t),
            GenPart::Call(..) => native_part(p, ""),
        })
        .collect();
    let answer = json!({
        "candidates": [{ "content": { "parts": whole, "role": "model" }, "finishReason": reason, "index": 0 }],
        "usageMetadata": metadata(true), "modelVersion": "gemini-gen", "responseId": "resp-gen",
    });
    (answer, sse)
}

/// Translates `answer` whole and `sse` as a stream (in frames of `frame` bytes), and checks
/// that they say the same: content, reasoning, refusal, finish, tool calls, usage.
fn assert_agree(
    answer: &Value,
    sse: &str,
    frame: usize,
    ids_kept: &[bool],
) -> Result<Value, TestCaseError> {
    let whole: Value = serde_json::from_slice(
        &translate::response(G, answer.to_string().as_bytes(), "m").unwrap(),
    )
    .unwrap();
    let sizes: Vec<usize> = std::iter::repeat_n(frame, sse.len() / frame + 1).collect();
    let acc = accumulate(&translate(G, sse.as_bytes(), &sizes, true));
    prop_assert!(acc.done && acc.error.is_none(), "{:?}", acc.error);
    let m = &whole["choices"][0]["message"];
    prop_assert_eq!(acc.content.as_str(), m["content"].as_str().unwrap_or(""));
    prop_assert_eq!(
        acc.reasoning.as_str(),
        m["reasoning_content"].as_str().unwrap_or("")
    );
    prop_assert_eq!(acc.refusal.as_str(), m["refusal"].as_str().unwrap_or(""));
    prop_assert_eq!(
        acc.finish.as_deref(),
        whole["choices"][0]["finish_reason"].as_str()
    );
    let calls: Vec<(String, String, Value)> = m["tool_calls"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            (
                c["id"].as_str().unwrap().to_owned(),
                c["function"]["name"].as_str().unwrap().to_owned(),
                serde_json::from_str(c["function"]["arguments"].as_str().unwrap()).unwrap(),
            )
        })
        .collect();
    prop_assert_eq!(calls.len(), acc.tool_calls.len());
    for (i, ((id, name, args), (sid, sname, sargs))) in
        calls.iter().zip(&acc.tool_calls).enumerate()
    {
        prop_assert_eq!(name, sname);
        prop_assert_eq!(args, &serde_json::from_str::<Value>(sargs).unwrap());
        // A call without an id of its own gets a fresh one in each translation; its
        // thought signature rides on it either way.
        if ids_kept.get(i).copied().unwrap_or(true) {
            prop_assert_eq!(id, sid);
        } else {
            prop_assert_eq!(
                id.split_once("_sig_").map(|s| s.1),
                sid.split_once("_sig_").map(|s| s.1)
            );
        }
    }
    let usage = acc.usage.as_ref().unwrap();
    prop_assert_eq!(&usage["prompt_tokens"], &whole["usage"]["prompt_tokens"]);
    prop_assert_eq!(
        &usage["completion_tokens"],
        &whole["usage"]["completion_tokens"]
    );
    prop_assert_eq!(
        &usage["completion_tokens_details"],
        &whole["usage"]["completion_tokens_details"]
    );
    Ok(whole)
}

#[test]
fn every_finish_reason_streams_as_it_translates_whole() {
    for (reason, finish) in FINISH_REASONS {
        let parts = [GenPart::Text("Hello there".into())];
        let (answer, sse) = answer_and_stream(&parts, reason, (5, 2, 0), 4);
        let whole = assert_agree(&answer, &sse, 7, &[]).unwrap_or_else(|e| panic!("{reason}: {e}"));
        assert_eq!(whole["choices"][0]["finish_reason"], finish, "{reason}");
    }
    // A blocked prompt (no candidates): a refusal, in both.
    let blocked = json!({ "promptFeedback": { "blockReason": "SAFETY" }, "usageMetadata": { "promptTokenCount": 4, "totalTokenCount": 4 } });
    let sse = format!("data: {blocked}\r\n\r\n");
    let whole = assert_agree(&blocked, &sse, 5, &[]).unwrap();
    assert_eq!(whole["choices"][0]["finish_reason"], "content_filter");
    assert!(whole["choices"][0]["message"]["refusal"]
        .as_str()
        .unwrap()
        .contains("SAFETY"));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Translating a `generateContent` answer and assembling the translated stream of the
    /// same answer give the same chat completion.
    #[test]
    fn an_answer_and_its_stream_translate_to_the_same_completion(
        parts in prop::collection::vec(arb_part(), 0..6),
        reason in prop::sample::select(FINISH_REASONS.iter().map(|(r, _)| *r).collect::<Vec<_>>()),
        usage in (0u64..5000, 0u64..5000, 0u64..2000),
        piece in 1usize..12,
        frame in 1usize..200,
    ) {
        let (answer, sse) = answer_and_stream(&parts, reason, usage, piece);
        let ids: Vec<bool> = parts.iter().filter_map(|p| match p {
            GenPart::Call(_, _, id, _) => Some(id.is_some()),
            _ => None,
        }).collect();
        assert_agree(&answer, &sse, frame, &ids)?;
    }
}
