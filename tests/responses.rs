//! The inbound OpenAI Responses API over real HTTP: translated to the project's mock (an
//! OpenAI chat upstream) and to a mock Anthropic replaying the recorded fixtures, passed
//! through to an upstream with its own `/responses`; stored responses, `previous_response_id`,
//! `GET`/`DELETE /v1/responses/{id}`; errors in OpenAI's shape; the ledger's records.

mod native_replay;
mod support;

use http::StatusCode;
use native_replay::{fixture, Canned, Replay};
use serde_json::{json, Value};
use support::*;

const KEY: &str = "sk-responses-test";
const AUTH: &[(&str, &str)] = &[("authorization", "Bearer sk-responses-test")];

/// A gateway with the mock provider, the mock upstream as `up`, and one key.
async fn gateway_with_upstream(
    extra: &str,
) -> (Running, Running, llm_tower::executor::MockUpstream) {
    let (upstream, mock) = mock_upstream().await;
    let gw = gateway(&config_for(
        &upstream,
        &format!("master_key: {KEY}\naliases:\n  codex-model: up/echo\n{extra}"),
    ))
    .await;
    (gw, upstream, mock)
}

fn responses_url(gw: &Running) -> String {
    format!("{}/v1/responses", gw.url())
}

/// The events of a Responses stream: `(event name, data)`, the name matching the data's
/// type and the sequence numbers counting from 0.
fn events(body: &str) -> Vec<(String, Value)> {
    let events: Vec<(String, Value)> = body
        .split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let name = e.lines().find_map(|l| l.strip_prefix("event: ")).unwrap();
            let data: Value =
                serde_json::from_str(e.lines().find_map(|l| l.strip_prefix("data: ")).unwrap())
                    .unwrap();
            assert_eq!(data["type"], name, "{e}");
            (name.to_owned(), data)
        })
        .collect();
    for (i, (_, data)) in events.iter().enumerate() {
        assert_eq!(data["sequence_number"], i, "{data}");
    }
    events
}

fn output_text(response: &Value) -> String {
    response["output"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|item| item["type"] == "message")
        .flat_map(|item| item["content"].as_array().unwrap())
        .filter_map(|part| part["text"].as_str())
        .collect()
}

#[tokio::test]
async fn a_response_from_a_chat_upstream_is_translated() {
    let (gw, _upstream, mock) = gateway_with_upstream("").await;
    let body = json!({"model": "codex-model", "instructions": "Be brief.", "input": "hello there", "max_output_tokens": 50});
    let answer = post(&responses_url(&gw), &body.to_string(), AUTH).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(answer.headers["x-gateway-provider"], "up");
    let response = answer.json();
    assert_eq!(response["object"], "response");
    assert_eq!(response["status"], "completed");
    assert!(response["id"].as_str().unwrap().starts_with("resp_"));
    assert_eq!(output_text(&response), "You said: hello there");
    assert_eq!(response["instructions"], "Be brief.");
    assert!(response["usage"]["input_tokens"].as_u64().unwrap() > 0);
    // What the chat upstream was sent.
    let (_, sent) = mock.last_request().unwrap();
    let sent: Value = serde_json::from_slice(&sent).unwrap();
    assert_eq!(sent["model"], "echo");
    assert_eq!(
        sent["messages"],
        json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello there"}])
    );
    assert_eq!(sent["max_tokens"], 50);
}

#[tokio::test]
async fn a_streamed_response_has_the_full_event_sequence() {
    let (gw, _upstream, _mock) = gateway_with_upstream("").await;
    let body = json!({"model": "codex-model", "input": [{"role": "user", "content": [{"type": "input_text", "text": "stream me"}]}], "stream": true, "store": false});
    let answer = post(&responses_url(&gw), &body.to_string(), AUTH).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert!(answer.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let events = events(&answer.text());
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names[..4],
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added"
        ]
    );
    assert_eq!(
        names[names.len() - 4..],
        [
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed"
        ]
    );
    let deltas: String = events
        .iter()
        .filter(|(n, _)| n == "response.output_text.delta")
        .map(|(_, d)| d["delta"].as_str().unwrap())
        .collect();
    assert_eq!(deltas, "You said: stream me");
    let completed = &events.last().unwrap().1["response"];
    assert_eq!(output_text(completed), deltas);
    assert!(completed["usage"]["output_tokens"].as_u64().unwrap() > 0);
    assert_eq!(completed["store"], false);
    // `store: false`: nothing to read back.
    let id = completed["id"].as_str().unwrap();
    let missing = get(&format!("{}/{id}", responses_url(&gw)), AUTH).await;
    missing.error(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_tool_call_round_trip() {
    let (gw, _upstream, mock) = gateway_with_upstream("").await;
    let tools = json!([{"type": "function", "name": "exec_command", "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}}, "strict": false}]);
    // `?tool=` makes the mock call the tool with the JSON object the user sent.
    let first = json!({"model": "up/echo?tool=exec_command", "input": "{\"cmd\":\"ls\"}", "tools": tools, "stream": true, "store": false});
    let answer = post(&responses_url(&gw), &first.to_string(), AUTH).await;
    let events = events(&answer.text());
    let done: Vec<&Value> = events
        .iter()
        .filter(|(n, d)| n == "response.output_item.done" && d["item"]["type"] == "function_call")
        .map(|(_, d)| &d["item"])
        .collect();
    assert_eq!(done.len(), 1, "{events:?}");
    let call = done[0];
    assert_eq!(call["name"], "exec_command");
    assert_eq!(call["arguments"], "{\"cmd\":\"ls\"}");
    assert_eq!(call["status"], "completed");
    // The next turn carries the call and its output, as Codex sends them.
    let second = json!({"model": "up/echo?tool=exec_command", "tools": tools, "store": false, "input": [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "{\"cmd\":\"ls\"}"}]},
        call,
        {"type": "function_call_output", "call_id": call["call_id"], "output": "a.txt"},
    ]});
    let answer = post(&responses_url(&gw), &second.to_string(), AUTH).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(output_text(&answer.json()), "Tool said: a.txt");
    let (_, sent) = mock.last_request().unwrap();
    let sent: Value = serde_json::from_slice(&sent).unwrap();
    assert_eq!(sent["messages"][1]["tool_calls"][0]["id"], call["call_id"]);
    assert_eq!(
        sent["messages"][2],
        json!({"role": "tool", "tool_call_id": call["call_id"], "content": "a.txt"})
    );
}

#[tokio::test]
async fn previous_response_id_continues_the_stored_conversation() {
    let (gw, _upstream, mock) = gateway_with_upstream("keys: [{ name: team-b, key: sk-b }]").await;
    let first = post(
        &responses_url(&gw),
        &json!({"model": "codex-model", "input": "my name is Ada", "stream": true}).to_string(),
        AUTH,
    )
    .await;
    let first_events = events(&first.text());
    let first_id = first_events.last().unwrap().1["response"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let second = post(
        &responses_url(&gw),
        &json!({"model": "codex-model", "input": "what is my name?", "previous_response_id": first_id}).to_string(),
        AUTH,
    )
    .await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.text());
    let second = second.json();
    assert_eq!(second["previous_response_id"], first_id);
    let (_, sent) = mock.last_request().unwrap();
    let sent: Value = serde_json::from_slice(&sent).unwrap();
    assert_eq!(
        sent["messages"],
        json!([
            {"role": "user", "content": [{"type": "text", "text": "my name is Ada"}]},
            {"role": "assistant", "content": "You said: my name is Ada"},
            {"role": "user", "content": [{"type": "text", "text": "what is my name?"}]},
        ])
    );

    // Read back, listed, and private to the key that made it.
    let url = format!("{}/{first_id}", responses_url(&gw));
    let read = get(&url, AUTH).await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.text());
    assert_eq!(read.json(), first_events.last().unwrap().1["response"]);
    let items = get(&format!("{url}/input_items?order=asc"), AUTH)
        .await
        .json();
    assert_eq!(items["object"], "list");
    assert_eq!(items["data"][0]["content"][0]["text"], "my name is Ada");
    assert!(items["data"][0]["id"].is_string());
    let other = [("authorization", "Bearer sk-b")];
    get(&url, &other).await.error(StatusCode::NOT_FOUND);
    let continued_by_other = post(
        &responses_url(&gw),
        &json!({"model": "codex-model", "input": "hi", "previous_response_id": first_id})
            .to_string(),
        &other,
    )
    .await;
    let err = continued_by_other.error(StatusCode::NOT_FOUND);
    assert_eq!(err["code"], "previous_response_not_found");
    get(&url, &[]).await.error(StatusCode::UNAUTHORIZED);

    // Deleted: gone for good.
    let mut delete = http::Request::delete(&url);
    for (k, v) in AUTH {
        delete = delete.header(*k, *v);
    }
    let deleted = send(
        delete
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap(),
    )
    .await;
    assert_eq!(
        deleted.json(),
        json!({"id": first_id, "object": "response.deleted", "deleted": true})
    );
    get(&url, AUTH).await.error(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bad_requests_get_openai_errors() {
    let (gw, _upstream, _mock) = gateway_with_upstream("").await;
    let url = responses_url(&gw);
    let malformed = post(&url, "{\"model\": ", AUTH).await;
    malformed.error(StatusCode::BAD_REQUEST);
    let unknown = post(
        &url,
        &json!({"model": "nope/x", "input": "hi"}).to_string(),
        AUTH,
    )
    .await;
    assert_eq!(
        unknown.error(StatusCode::NOT_FOUND)["code"],
        "model_not_found"
    );
    let no_model = post(&url, &json!({"input": "hi"}).to_string(), AUTH).await;
    assert_eq!(no_model.error(StatusCode::BAD_REQUEST)["param"], "model");
    let web = post(
        &url,
        &json!({"model": "codex-model", "input": "hi", "tools": [{"type": "web_search"}]})
            .to_string(),
        AUTH,
    )
    .await;
    assert_eq!(web.error(StatusCode::BAD_REQUEST)["param"], "tools[0].type");
    let unknown_previous = post(
        &url,
        &json!({"model": "codex-model", "input": "hi", "previous_response_id": "resp_unknown"})
            .to_string(),
        AUTH,
    )
    .await;
    assert_eq!(
        unknown_previous.error(StatusCode::NOT_FOUND)["code"],
        "previous_response_not_found"
    );
    let failing = post(
        &url,
        &json!({"model": "up/echo?status=500", "input": "hi"}).to_string(),
        AUTH,
    )
    .await;
    failing.error(StatusCode::INTERNAL_SERVER_ERROR);
    let anonymous = post(
        &url,
        &json!({"model": "codex-model", "input": "hi"}).to_string(),
        &[],
    )
    .await;
    anonymous.error(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_native_upstream_gets_the_request_as_sent() {
    // `responses: native`: the upstream's own /v1/responses (here the mock's), the bytes
    // passed through with the model rewritten; the gateway still keeps the conversation.
    let (upstream, mock) = mock_upstream().await;
    let gw = gateway(&format!(
        "master_key: {KEY}\nproviders:\n  oa: {{ kind: openai, api_base: '{}/v1', api_key: sk-up, responses: native }}\n",
        upstream.url()
    ))
    .await;
    let body = r#"{"model":"oa/echo","input":"native please","stream":true,"x_vendor_field":{"keep":true}}"#;
    let answer = post(&responses_url(&gw), body, AUTH).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let (headers, sent) = mock.last_request().unwrap();
    assert_eq!(headers["authorization"], "Bearer sk-up");
    assert_eq!(
        std::str::from_utf8(&sent).unwrap(),
        r#"{"model":"echo","input":"native please","stream":true,"x_vendor_field":{"keep":true}}"#
    );
    let events = events(&answer.text());
    let completed = &events.last().unwrap().1["response"];
    assert_eq!(output_text(completed), "You said: native please");
    let id = completed["id"].as_str().unwrap();
    // The next turn reaches the native upstream with the conversation spliced in.
    let next = json!({"model": "oa/echo", "input": "and again", "previous_response_id": id});
    let answer = post(&responses_url(&gw), &next.to_string(), AUTH).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let (_, sent) = mock.last_request().unwrap();
    let sent: Value = serde_json::from_slice(&sent).unwrap();
    assert!(sent.get("previous_response_id").is_none(), "{sent}");
    let input = sent["input"].as_array().unwrap();
    assert_eq!(input.len(), 3, "{sent}");
    assert_eq!(input[1]["type"], "message");
    assert_eq!(input[1]["role"], "assistant");
    assert_eq!(
        answer.json()["previous_response_id"],
        Value::Null,
        "the upstream's own answer"
    );
}

#[tokio::test]
async fn a_response_from_anthropic_is_translated_twice() {
    // Responses → chat → Anthropic Messages, and the recorded Anthropic stream back.
    let replay = Replay::default();
    let upstream = serve(replay.clone(), llm_tower::server::ServerSettings::default()).await;
    let gw = gateway(&format!(
        "master_key: {KEY}\nproviders:\n  claude: {{ kind: anthropic, api_base: '{}/v1', api_key: sk-ant }}\n",
        upstream.url()
    ))
    .await;
    replay.push(Canned::sse(&fixture(
        "anthropic/stream-text-then-tool-use.sse",
    )));
    let body = json!({"model": "claude/claude-sonnet-4-5", "input": "weather?", "stream": true,
        "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {"location": {"type": "string"}}}}]});
    let answer = post(&responses_url(&gw), &body.to_string(), AUTH).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let sent = &replay.seen()[0].body;
    assert_eq!(sent["tools"][0]["name"], "get_weather");
    assert_eq!(sent["messages"][0]["content"], "weather?");
    let events = events(&answer.text());
    let completed = &events.last().unwrap().1["response"];
    assert_eq!(events.last().unwrap().0, "response.completed");
    let kinds: Vec<&str> = completed["output"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["message", "function_call"], "{completed}");
    let call = &completed["output"][1];
    assert!(
        serde_json::from_str::<Value>(call["arguments"].as_str().unwrap())
            .unwrap()
            .is_object()
    );
    assert!(completed["usage"]["input_tokens"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn responses_are_metered_and_replayed_for_their_idempotency_key() {
    let ledger = TempPath::new("llm-tower-responses", "db");
    let extra = format!("metering: {{ sqlite_path: \"{}\" }}", ledger.display());
    let (gw, _upstream, mock) = gateway_with_upstream(&extra).await;
    let body = json!({"model": "codex-model", "input": "count me", "stream": true}).to_string();
    let headers = [AUTH[0], ("idempotency-key", "turn-1")];
    let first = post(&responses_url(&gw), &body, &headers).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text());
    let replayed = post(&responses_url(&gw), &body, &headers).await;
    assert_eq!(replayed.headers["idempotency-replayed"], "true");
    assert_eq!(
        replayed.body, first.body,
        "the stream is stored whole and replayed"
    );
    assert_eq!(mock.requests(), 1);
    let json = post(
        &responses_url(&gw),
        &json!({"model": "codex-model", "input": "and me"}).to_string(),
        AUTH,
    )
    .await;
    let usage = &json.json()["usage"];
    let rows = ledger_rows(&ledger, 3).await;
    assert_eq!(
        rows[0],
        json!({"endpoint": "responses", "prompt_tokens": 2, "completion_tokens": 4,
        "usage_source": "upstream", "outcome": "ok", "stream": true})
    );
    assert_eq!(rows[2]["endpoint"], "responses");
    assert_eq!(rows[2]["prompt_tokens"], usage["input_tokens"]);
    assert_eq!(rows[2]["completion_tokens"], usage["output_tokens"]);
    assert_eq!(rows[2]["usage_source"], "upstream");
}

#[tokio::test]
async fn the_cache_answers_a_repeated_response_in_either_form() {
    let (gw, _upstream, mock) =
        gateway_with_upstream("cache: { enabled: true, semantic: { enabled: true } }").await;
    let body = |stream: bool| {
        json!({"model": "codex-model", "input": "cache me", "stream": stream, "store": false})
            .to_string()
    };
    let first = post(&responses_url(&gw), &body(true), AUTH).await;
    assert_eq!(first.headers["x-gateway-cache"], "miss");
    let streamed = events(&first.text());
    let original = &streamed.last().unwrap().1["response"];
    // The same request as JSON: the response the stream finished with.
    let hit = post(&responses_url(&gw), &body(false), AUTH).await;
    assert_eq!(hit.headers["x-gateway-cache"], "hit", "{}", hit.text());
    assert_eq!(hit.json(), *original);
    // And streamed again: the same event sequence rebuilt from it, the text in one delta.
    let again = post(&responses_url(&gw), &body(true), AUTH).await;
    assert_eq!(again.headers["x-gateway-cache"], "hit");
    let replayed = events(&again.text());
    let names = |events: &[(String, Value)]| {
        let mut names: Vec<String> = events.iter().map(|(n, _)| n.clone()).collect();
        names.dedup();
        names
    };
    assert_eq!(names(&replayed), names(&streamed));
    assert_eq!(replayed.last().unwrap().1["response"], *original);
    assert_eq!(mock.requests(), 1);
    // Another protocol's same question is not this one's answer.
    let chat = post(
        &format!("{}/v1/chat/completions", gw.url()),
        &chat_body("codex-model", "cache me", false),
        AUTH,
    )
    .await;
    assert_eq!(chat.headers["x-gateway-cache"], "miss");
}

#[tokio::test]
async fn anthropic_thinking_survives_a_turn_on_another_instance() {
    // Turn 1 on one gateway, turn 2 on another: the thinking block (with its signature)
    // comes back from the client's reasoning item, not from the first instance's memory.
    let replay = Replay::default();
    let upstream = serve(replay.clone(), llm_tower::server::ServerSettings::default()).await;
    let config = format!(
        "master_key: {KEY}\nproviders:\n  claude: {{ kind: anthropic, api_base: '{}/v1', api_key: sk-ant }}\n",
        upstream.url()
    );
    let (first, second) = (gateway(&config).await, gateway(&config).await);
    let weather = json!([{"type": "function", "name": "weather", "parameters": {"type": "object", "properties": {"location": {"type": "string"}}}}]);
    let question = json!({"role": "user", "content": "What's the weather in Florence, Italy?"});
    replay.push(Canned::json(
        200,
        fixture("anthropic/message-thinking-tool-use-roundtrip.turn1.response.json"),
    ));
    let turn1 = post(
        &responses_url(&first),
        &json!({"model": "claude/claude-sonnet-4-5", "input": [question], "tools": weather,
                "reasoning": {"effort": "medium"}, "store": false})
        .to_string(),
        AUTH,
    )
    .await;
    assert_eq!(turn1.status, StatusCode::OK, "{}", turn1.text());
    let output = turn1.json()["output"].clone();
    assert_eq!(output[0]["type"], "reasoning");
    assert!(output[0]["encrypted_content"].is_string(), "{output}");
    assert_eq!(output[1]["type"], "function_call");
    let call_id = output[1]["call_id"].clone();
    replay.push(Canned::json(
        200,
        fixture("anthropic/message-thinking-tool-use-roundtrip.turn2.response.json"),
    ));
    let mut input = vec![question];
    input.extend(output.as_array().unwrap().iter().cloned());
    input
        .push(json!({"type": "function_call_output", "call_id": call_id, "output": "Sunny, 24 C"}));
    let turn2 = post(
        &responses_url(&second),
        &json!({"model": "claude/claude-sonnet-4-5", "input": input, "tools": weather,
                "reasoning": {"effort": "medium"}, "store": false})
        .to_string(),
        AUTH,
    )
    .await;
    assert_eq!(turn2.status, StatusCode::OK, "{}", turn2.text());
    let sent = &replay.seen()[1].body;
    let recorded = native_replay::fixture_json(
        "anthropic/message-thinking-tool-use-roundtrip.turn1.response.json",
    );
    assert_eq!(
        sent["messages"][1]["content"][0], recorded["content"][0],
        "the signed block, as Anthropic sent it"
    );
    assert_eq!(sent["messages"][1]["content"][1]["type"], "tool_use");
    assert!(sent.get("thinking").is_some(), "thinking stays on: {sent}");
}

#[tokio::test]
async fn a_gemini_upstream_answers_responses_through_chat() {
    // Responses → chat → Gemini and back; the thought signature Gemini put on the call
    // travels in the call id and reaches Gemini again on the next turn.
    let replay = Replay::default();
    let upstream = serve(replay.clone(), llm_tower::server::ServerSettings::default()).await;
    let gw = gateway(&format!(
        "master_key: {KEY}\nproviders:\n  gemini: {{ kind: gemini, api_base: '{}/v1beta', api_key: AIza-test }}\n",
        upstream.url()
    ))
    .await;
    replay.push(Canned::sse(&fixture("gemini/stream-text.sse")));
    let answer = post(
        &responses_url(&gw),
        &json!({"model": "gemini/gemini-2.5-flash", "input": "Hi", "stream": true, "store": false})
            .to_string(),
        AUTH,
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let events = events(&answer.text());
    assert_eq!(events.last().unwrap().0, "response.completed");
    let completed = &events.last().unwrap().1["response"];
    assert!(!output_text(completed).is_empty());
    assert!(completed["usage"]["input_tokens"].as_u64().unwrap() > 0);
    assert!(replay.seen()[0].uri.contains(":streamGenerateContent"));

    let weather = json!([{"type": "function", "name": "weather", "parameters": {"type": "object", "properties": {"location": {"type": "string"}}}}]);
    replay.push(Canned::json(
        200,
        fixture("gemini/generate-function-call-roundtrip.turn1.response.json"),
    ));
    let turn1 = post(
        &responses_url(&gw),
        &json!({"model": "gemini/gemini-2.5-flash", "input": "Weather in Florence?", "tools": weather, "store": false}).to_string(),
        AUTH,
    )
    .await;
    assert_eq!(turn1.status, StatusCode::OK, "{}", turn1.text());
    let call = turn1.json()["output"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["type"] == "function_call")
        .cloned()
        .unwrap();
    assert_eq!(call["name"], "weather");
    replay.push(Canned::json(
        200,
        fixture("gemini/generate-function-call-roundtrip.turn2.response.json"),
    ));
    let turn2 = post(
        &responses_url(&gw),
        &json!({"model": "gemini/gemini-2.5-flash", "tools": weather, "store": false, "input": [
            {"role": "user", "content": "Weather in Florence?"}, call,
            {"type": "function_call_output", "call_id": call["call_id"], "output": "{\"temp\": 24}"}]}).to_string(),
        AUTH,
    )
    .await;
    assert_eq!(turn2.status, StatusCode::OK, "{}", turn2.text());
    let sent = &replay.seen()[2].body;
    let parts = &sent["contents"][1]["parts"][0];
    assert_eq!(parts["functionCall"]["name"], "weather");
    assert!(parts["thoughtSignature"].is_string(), "{sent}");
}

#[tokio::test]
async fn a_combo_falls_back_before_the_first_byte() {
    let (gw, _upstream, _mock) = gateway_with_upstream(
        "combos:\n  smart: { strategy: priority, targets: [\"up/echo?status=503\", mock/echo] }",
    )
    .await;
    for stream in [false, true] {
        let body =
            json!({"model": "smart", "input": "fall back", "stream": stream, "store": false});
        let answer = post(&responses_url(&gw), &body.to_string(), AUTH).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        assert_eq!(answer.headers["x-gateway-provider"], "mock");
        assert_eq!(answer.headers["x-gateway-attempts"], "2");
        let text = if stream {
            output_text(&events(&answer.text()).last().unwrap().1["response"])
        } else {
            output_text(&answer.json())
        };
        assert_eq!(text, "You said: fall back");
    }
}
