//! The real `openai` Python SDK as the gateway's client.
//!
//! Enabled by `LLM_TOWER_PYTHON` (a Python with `openai` and `pytest`), which `.ci/run`
//! sets. Runs `tests/sdk/` with pytest against a gateway started here.

mod support;

use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the openai SDK venv at LLM_TOWER_PYTHON: .ci/run installs it"]
async fn the_openai_python_sdk_works_against_the_gateway() {
    let (upstream, mock) = mock_upstream().await;
    let gw = gateway(&config_for(&upstream, "master_key: sk-sdk-test-key")).await;
    pytest(
        // These need gateways of their own: tests/cache.rs, tests/anthropic.rs,
        // tests/anthropic_sdk.rs, tests/openai_responses_sdk.rs and tests/tenancy.rs run them.
        &[
            "tests/sdk",
            "--ignore=tests/sdk/test_cache.py",
            "--ignore=tests/sdk/test_translated.py",
            "--ignore=tests/sdk/test_anthropic_sdk.py",
            "--ignore=tests/sdk/test_openai_responses.py",
            "--ignore=tests/sdk/test_litellm_keys.py",
        ],
        &[
            ("GATEWAY_URL", format!("{}/v1", gw.url())),
            ("GATEWAY_KEY", "sk-sdk-test-key".to_owned()),
        ],
    )
    .await;
    assert!(mock.requests() > 0, "the HTTP upstream was used");
}
