//! The real `anthropic` Python SDK as the gateway's client: `tests/sdk/test_anthropic_sdk.py`
//! against a gateway with the mock (Messages translated to chat) and a mock Anthropic that
//! answers each model name with the recorded fixture of that name (passed through).
//!
//! Enabled by `LLM_TOWER_PYTHON` (a Python with `anthropic` and `pytest`), which `.ci/run`
//! sets.

mod native_replay;
mod support;

use native_replay::Fixtures;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the SDK venv at LLM_TOWER_PYTHON: .ci/run installs it"]
async fn the_anthropic_python_sdk_works_against_the_gateway() {
    let upstream = serve(Fixtures, llm_tower::server::ServerSettings::default()).await;
    let gw = gateway(&format!(
        r#"
master_key: sk-anthropic-sdk-test
providers:
  mock: {{ kind: mock, models: [echo] }}
  claude: {{ kind: anthropic, api_base: "{}/v1", api_key: sk-ant-upstream }}
"#,
        upstream.url()
    ))
    .await;
    pytest(
        &["tests/sdk/test_anthropic_sdk.py"],
        &[
            ("GATEWAY_URL", gw.url()),
            ("GATEWAY_KEY", "sk-anthropic-sdk-test".to_owned()),
        ],
    )
    .await;
}
