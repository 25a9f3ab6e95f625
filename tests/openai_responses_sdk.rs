//! The real `openai` Python SDK's Responses API (`client.responses`) against two gateway
//! processes that share a Redis response store: `tests/sdk/test_openai_responses.py`, to
//! the project's mock (in process and over HTTP, translated from chat), to an upstream
//! with its own `/responses` (passed through), and to a mock Anthropic replaying the
//! recorded fixtures.
//!
//! Needs `LLM_TOWER_PYTHON` (a Python with `openai` and `pytest`) and `REDIS_URL`, which
//! `.ci/run` sets.

mod native_replay;
mod support;

use native_replay::Fixtures;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the SDK venv at LLM_TOWER_PYTHON and Redis at REDIS_URL: .ci/run provides both"]
async fn the_openai_sdk_responses_api_works_across_two_gateways() {
    let redis = needs("REDIS_URL");
    let (upstream, _mock) = mock_upstream().await;
    let anthropic = serve(Fixtures, llm_tower::server::ServerSettings::default()).await;
    let yaml = format!(
        r#"
master_key: sk-responses-sdk
redis: {{ url: "{redis}" }}
responses: {{ store: redis, key_prefix: "{prefix}:" }}
providers:
  mock: {{ kind: mock, models: [echo] }}
  up: {{ kind: openai, api_base: "{up}/v1", api_key: sk-up, models: [echo] }}
  native: {{ kind: openai, api_base: "{up}/v1", api_key: sk-up, responses: native }}
  claude: {{ kind: anthropic, api_base: "{claude}/v1", api_key: sk-ant }}
"#,
        prefix = unique("llm-tower-test-responses"),
        up = upstream.url(),
        claude = anthropic.url(),
    );
    let a = GatewayProcess::spawn(&yaml).await;
    let b = GatewayProcess::spawn(&yaml).await;
    pytest(
        &["tests/sdk/test_openai_responses.py"],
        &[
            ("GATEWAY_URL", format!("{}/v1", a.url())),
            ("GATEWAY_URL_B", format!("{}/v1", b.url())),
            ("GATEWAY_KEY", "sk-responses-sdk".to_owned()),
        ],
    )
    .await;
}
