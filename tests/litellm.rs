//! The gateway's `litellm` executor against the real LiteLLM proxy.
//!
//! `#[ignore]`d in a plain `cargo test`. With `--include-ignored` they need
//! `LLM_TOWER_LITELLM_URL` (and `LLM_TOWER_LITELLM_KEY`), which `.ci/run` sets after starting
//! the proxy with the repository's `litellm-config.yaml` in front of the project's mock
//! upstream; a missing proxy fails them.

mod support;

use http::StatusCode;
use serde_json::Value;
use support::*;

/// The gateway in front of the proxy.
async fn litellm_gateway() -> Running {
    litellm_gateway_with("").await
}

/// The same, with more YAML (providers excepted).
async fn litellm_gateway_with(extra: &str) -> Running {
    let url = needs("LLM_TOWER_LITELLM_URL");
    let key = std::env::var("LLM_TOWER_LITELLM_KEY")
        .expect("LLM_TOWER_LITELLM_KEY with LLM_TOWER_LITELLM_URL");
    let liveliness = get(&format!("{url}/health/liveliness"), &[]).await;
    assert_eq!(
        liveliness.status,
        StatusCode::OK,
        "LiteLLM at {url} is not alive: {}",
        liveliness.text()
    );
    gateway(&format!(
        "providers:\n  litellm: {{ kind: litellm, api_base: '{url}', api_key: '{key}', models: [mock-gpt, echo] }}\n  litellm-native: {{ kind: litellm, api_base: '{url}', api_key: '{key}', messages: native, responses: native }}\n{extra}"
    ))
    .await
}

fn chat_url(gw: &Running) -> String {
    format!("{}/v1/chat/completions", gw.url())
}

fn streamed_text(body: &str) -> String {
    sse_data(body)
        .iter()
        .filter(|d| *d != "[DONE]")
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect()
}

#[tokio::test]
#[ignore = "needs the LiteLLM proxy at LLM_TOWER_LITELLM_URL: .ci/run starts it"]
async fn json_answers_carry_the_model_and_litellm_cost() {
    let gw = litellm_gateway().await;
    let answer = post(
        &chat_url(&gw),
        &chat_body("litellm/mock-gpt", "hi", false),
        &[],
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(
        answer.json()["choices"][0]["message"]["content"],
        "Hello from LiteLLM mock"
    );
    assert_eq!(answer.headers["x-gateway-provider"], "litellm");
    assert_eq!(answer.headers["x-gateway-model"], "mock-gpt");
    let cost: f64 = answer.headers["x-litellm-response-cost"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(cost > 0.0, "cost {cost}");
}

#[tokio::test]
#[ignore = "needs the LiteLLM proxy at LLM_TOWER_LITELLM_URL: .ci/run starts it"]
async fn requests_reach_the_project_mock_through_litellm() {
    let gw = litellm_gateway().await;
    let answer = post(
        &chat_url(&gw),
        &chat_body("litellm/echo", "through two proxies", false),
        &[],
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let value = answer.json();
    assert_eq!(
        value["choices"][0]["message"]["content"],
        "You said: through two proxies"
    );
    assert_eq!(value["usage"]["completion_tokens"], 5);
}

#[tokio::test]
#[ignore = "needs the LiteLLM proxy at LLM_TOWER_LITELLM_URL: .ci/run starts it"]
async fn streams_pass_through() {
    let gw = litellm_gateway().await;
    for (model, expected) in [
        ("litellm/mock-gpt", "Hello from LiteLLM mock"),
        ("litellm/echo", "You said: a streamed hello"),
    ] {
        let answer = post(
            &chat_url(&gw),
            &chat_body(model, "a streamed hello", true),
            &[],
        )
        .await;
        assert_eq!(answer.status, StatusCode::OK, "{model}: {}", answer.text());
        assert!(answer.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream"));
        let text = answer.text();
        assert_eq!(streamed_text(&text), expected, "{text}");
        assert_eq!(sse_data(&text).last().unwrap(), "[DONE]");
    }
}

#[tokio::test]
#[ignore = "needs the LiteLLM proxy at LLM_TOWER_LITELLM_URL: .ci/run starts it"]
async fn rate_limits_and_server_errors_keep_their_status() {
    let gw = litellm_gateway().await;
    let url = chat_url(&gw);

    let error = post(&url, &chat_body("litellm/mock-429", "x", false), &[])
        .await
        .error(StatusCode::TOO_MANY_REQUESTS);
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("RateLimitError"),
        "{error}"
    );
    assert_eq!(
        error["code"],
        Value::Null,
        "LiteLLM's numeric code is not passed off as OpenAI's"
    );

    let upstream_429 = post(&url, &chat_body("litellm/echo-429", "x", false), &[]).await;
    upstream_429.error(StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        upstream_429.headers["retry-after"], "1",
        "the provider's Retry-After comes back"
    );

    post(&url, &chat_body("litellm/mock-500", "x", false), &[])
        .await
        .error(StatusCode::INTERNAL_SERVER_ERROR);
    post(&url, &chat_body("litellm/echo-500", "x", true), &[])
        .await
        .error(StatusCode::INTERNAL_SERVER_ERROR);
    post(&url, &chat_body("litellm/no-such-model", "x", false), &[])
        .await
        .error(StatusCode::BAD_REQUEST);
}

#[tokio::test]
#[ignore = "needs the LiteLLM proxy at LLM_TOWER_LITELLM_URL: .ci/run starts it"]
async fn embeddings_and_readiness() {
    let gw = litellm_gateway().await;
    let answer = post(
        &format!("{}/v1/embeddings", gw.url()),
        r#"{"model":"litellm/mock-embed","input":"hi"}"#,
        &[],
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(
        answer.json()["data"][0]["embedding"],
        serde_json::json!([0.1, 0.2, 0.3])
    );
    let ready = get(&format!("{}/health/readiness", gw.url()), &[]).await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.text());
    assert_eq!(ready.json()["providers"]["litellm"]["status"], "ok");
}

/// A combo mixing a native target (the project's mock over HTTP) and a LiteLLM target:
/// whichever fails first, the other answers.
#[tokio::test]
#[ignore = "needs the LiteLLM proxy at LLM_TOWER_LITELLM_URL: .ci/run starts it"]
async fn a_combo_falls_back_between_native_and_litellm_targets() {
    let (upstream, mock) = mock_upstream().await;
    let extra = format!(
        "  up: {{ kind: openai, api_base: '{}/v1' }}\ncombos:\n  native-first: {{ targets: ['up/echo?status=429', litellm/echo] }}\n  native-first-stream: {{ targets: ['up/echo?status=429&words=2', litellm/echo] }}\n  litellm-first: {{ targets: [litellm/echo-429, up/echo] }}",
        upstream.url()
    );
    let gw = litellm_gateway_with(&extra).await;
    for stream in [false, true] {
        // Two combos, as the 429's `Retry-After` cools its target down for a second.
        let combo = if stream {
            "native-first-stream"
        } else {
            "native-first"
        };
        let answer = post(&chat_url(&gw), &chat_body(combo, "hi there", stream), &[]).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        assert_eq!(answer.headers["x-gateway-provider"], "litellm");
        assert_eq!(answer.headers["x-gateway-attempts"], "2");
        let text = if stream {
            streamed_text(&answer.text())
        } else {
            answer.json()["choices"][0]["message"]["content"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        assert_eq!(
            text, "You said: hi there",
            "LiteLLM passed it on to the mock"
        );
    }
    let before = mock.requests();
    let answer = post(
        &chat_url(&gw),
        &chat_body("litellm-first", "hi", false),
        &[],
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(answer.headers["x-gateway-provider"], "up");
    assert_eq!(answer.headers["x-gateway-attempts"], "2");
    assert_eq!(
        mock.requests() - before,
        1,
        "one native call, after LiteLLM's 429"
    );
}

/// Metering prefers the cost LiteLLM reports over the gateway's own price table.
#[tokio::test]
#[ignore = "needs the LiteLLM proxy at LLM_TOWER_LITELLM_URL: .ci/run starts it"]
async fn metering_records_the_cost_litellm_reports() {
    let ledger = TempPath::new("llm-tower-litellm", "db");
    let gw = litellm_gateway_with(&format!(
        "metering: {{ sqlite_path: '{}' }}",
        ledger.display()
    ))
    .await;
    let answer = post(
        &chat_url(&gw),
        &chat_body("litellm/mock-gpt", "hi", false),
        &[],
    )
    .await;
    let reported: f64 = answer.headers["x-litellm-response-cost"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let mut recorded = None;
    for _ in 0..100 {
        let conn = rusqlite::Connection::open(&ledger).unwrap();
        recorded = conn
            .query_row(
                "SELECT cost_usd FROM llm_usage WHERE requested_model = 'litellm/mock-gpt'",
                [],
                |r| r.get::<_, Option<f64>>(0),
            )
            .ok()
            .flatten();
        if recorded.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(recorded, Some(reported));
    let _ = std::fs::remove_file(&ledger);
}

#[tokio::test]
#[ignore = "needs the LiteLLM proxy at LLM_TOWER_LITELLM_URL: .ci/run starts it"]
async fn messages_and_responses_reach_litellms_own_endpoints() {
    // `messages: native` / `responses: native`: LiteLLM's /v1/messages and /v1/responses
    // answer (here from `mock_response`), the gateway passes them through.
    let gw = litellm_gateway().await;
    let message = post(
        &format!("{}/v1/messages", gw.url()),
        r#"{"model":"litellm-native/mock-gpt","max_tokens":20,"messages":[{"role":"user","content":"hi"}]}"#,
        &[("anthropic-version", "2023-06-01")],
    )
    .await;
    assert_eq!(message.status, StatusCode::OK, "{}", message.text());
    let message = message.json();
    assert_eq!(message["type"], "message");
    assert_eq!(message["content"][0]["text"], "Hello from LiteLLM mock");
    let response = post(
        &format!("{}/v1/responses", gw.url()),
        r#"{"model":"litellm-native/mock-gpt","input":"hi","store":false}"#,
        &[],
    )
    .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    let response = response.json();
    assert_eq!(response["object"], "response");
    assert_eq!(
        response["output"][0]["content"][0]["text"],
        "Hello from LiteLLM mock"
    );
    // The same through LiteLLM's chat endpoint, translated by the gateway.
    let translated = post(
        &format!("{}/v1/responses", gw.url()),
        r#"{"model":"litellm/mock-gpt","input":"hi","store":false}"#,
        &[],
    )
    .await;
    assert_eq!(translated.status, StatusCode::OK, "{}", translated.text());
    assert_eq!(
        translated.json()["output"][0]["content"][0]["text"],
        "Hello from LiteLLM mock"
    );
}
