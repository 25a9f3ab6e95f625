//! The real `openai` Python SDK as the gateway's client.
//!
//! Enabled by `LLM_TOWER_PYTHON` (a Python with `openai` and `pytest`), which `.ci/run`
//! sets. Runs `tests/sdk/` with pytest against a gateway started here.

mod support;

use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openai_python_sdk_works_against_the_gateway() {
    let Ok(python) = std::env::var("LLM_TOWER_PYTHON") else {
        eprintln!("openai SDK suite not enabled: set LLM_TOWER_PYTHON (as .ci/run does)");
        return;
    };
    let (upstream, mock) = mock_upstream().await;
    let gw = gateway(&config_for(&upstream, "master_key: sk-sdk-test-key")).await;
    let output = tokio::process::Command::new(&python)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/sdk"])
        // Needs a gateway with the cache on: tests/cache.rs runs it.
        .arg("--ignore=tests/sdk/test_cache.py")
        .env("GATEWAY_URL", format!("{}/v1", gw.url()))
        .env("GATEWAY_KEY", "sk-sdk-test-key")
        .kill_on_drop(true)
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}\n{stderr}");
    assert!(
        output.status.success(),
        "pytest failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("passed") && !stdout.contains("skipped"),
        "{stdout}"
    );
    assert!(mock.requests() > 0, "the HTTP upstream was used");
}
