//! The real Claude Code and Codex CLIs through the gateway to the project's mock upstream
//! (over HTTP, an OpenAI-style server: every Messages or Responses request is translated
//! to chat and back): one prompt each, and a turn where the mock asks for a tool call that
//! the CLI runs.
//!
//! Enabled by `LLM_TOWER_CLAUDE` (the `claude` executable from `@anthropic-ai/claude-code`)
//! and `LLM_TOWER_CODEX` (`codex` from `@openai/codex`), which `.ci/run` installs from
//! npm; both run offline.

mod support;

use std::time::Duration;

use support::*;

const KEY: &str = "sk-coding-agents";

/// Runs `claude -p PROMPT --model MODEL` in `dir` against the gateway at `url`, returning
/// its output; fails when it does not exit 0 within two minutes.
async fn claude(url: &str, dir: &std::path::Path, model: &str, prompt: &str) -> String {
    let claude = needs("LLM_TOWER_CLAUDE");
    let home = dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let run = tokio::process::Command::new(&claude)
        .args(["-p", prompt, "--model", model])
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", &home)
        .env("ANTHROPIC_BASE_URL", url)
        .env("ANTHROPIC_API_KEY", KEY)
        // Offline: no telemetry, update checks or other traffic beside the model's.
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        .env("DISABLE_TELEMETRY", "1")
        .env("DISABLE_AUTOUPDATER", "1")
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("claude finished within 120 s")
        .unwrap_or_else(|e| panic!("cannot run {claude}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "claude failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    stdout
}

/// The ledger's `(endpoint, requested model, status)` rows, once `count` are written.
async fn ledger(path: &std::path::Path, count: usize) -> Vec<(String, String, i64)> {
    for _ in 0..100 {
        let rows: Vec<(String, String, i64)> = rusqlite::Connection::open(path)
            .and_then(|conn| {
                let mut select = conn.prepare(
                    "SELECT endpoint, requested_model, status FROM llm_usage ORDER BY id",
                )?;
                let rows = select.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Claude Code at LLM_TOWER_CLAUDE: .ci/run installs it"]
async fn claude_code_answers_from_the_mock_and_runs_the_tool_it_asks_for() {
    needs("LLM_TOWER_CLAUDE");
    let (upstream, mock) = mock_upstream().await;
    let ledger_path = TempPath::new("llm-tower-claude-code", "db");
    let gw = gateway(&config_for(
        &upstream,
        &format!(
            "master_key: {KEY}\naliases:\n  \"claude-*\": up/echo\nmetering: {{ sqlite_path: \"{}\" }}",
            ledger_path.display()
        ),
    ))
    .await;
    let dir = TempPath::new("llm-tower-claude-code", "d");
    std::fs::create_dir_all(&*dir).unwrap();

    // One prompt, to a Claude model name the wildcard alias sends to the mock.
    let out = claude(
        &gw.url(),
        &dir,
        "claude-sonnet-4-5",
        "hello from claude code",
    )
    .await;
    assert!(out.contains("You said:"), "{out}");
    assert!(out.trim_end().ends_with("hello from claude code"), "{out}");

    // The mock calls Read with the prompt as its arguments; Claude Code reads the file and
    // sends the result back; the mock answers with it.
    let file = dir.join("notes.txt");
    std::fs::write(&file, "the secret word is tangerine\n").unwrap();
    let prompt = serde_json::json!({ "file_path": file }).to_string();
    let out = claude(&gw.url(), &dir, "up/echo?tool=Read", &prompt).await;
    assert!(out.contains("Tool said:"), "{out}");
    assert!(out.contains("the secret word is tangerine"), "{out}");

    assert!(mock.requests() >= 3, "the HTTP mock answered");
    let rows = ledger(&ledger_path, 3).await;
    assert!(
        rows.iter()
            .all(|(endpoint, _, status)| endpoint == "messages" && *status == 200),
        "{rows:?}"
    );
    assert!(rows
        .iter()
        .any(|(_, model, _)| model == "up/echo?tool=Read"));
}

/// Codex's configuration: the gateway as a Responses API provider, and every feature that
/// would reach the network (plugins, analytics, update checks) off. Its tools are left as
/// they are by default: functions, the `multi_agent_v1` namespace, and web search.
fn codex_config(url: &str, model: &str) -> String {
    format!(
        r#"model = "{model}"
model_provider = "gateway"
check_for_update_on_startup = false

[analytics]
enabled = false

[otel]
metrics_exporter = "none"
exporter = "none"
trace_exporter = "none"

[features]
plugins = false
apps = false
remote_plugin = false
shell_snapshot = false
goals = false
image_generation = false

[model_providers.gateway]
name = "llm-tower"
base_url = "{url}/v1"
wire_api = "responses"
env_key = "LLM_TOWER_KEY"
request_max_retries = 0
stream_max_retries = 0
"#
    )
}

/// Runs `codex exec PROMPT` with `model` in `dir` against the gateway at `url`, returning
/// its output (the final message); fails when it does not exit 0 within two minutes.
async fn codex(url: &str, dir: &std::path::Path, model: &str, prompt: &str) -> String {
    let codex = needs("LLM_TOWER_CODEX");
    let home = dir.join("home");
    let codex_home = home.join(".codex");
    std::fs::create_dir_all(&codex_home).unwrap();
    std::fs::write(codex_home.join("config.toml"), codex_config(url, model)).unwrap();
    let run = tokio::process::Command::new(&codex)
        // The sandbox needs user namespaces, which containers may not have.
        .args([
            "exec",
            "--skip-git-repo-check",
            "-s",
            "danger-full-access",
            prompt,
        ])
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", &home)
        .env("CODEX_HOME", &codex_home)
        .env("LLM_TOWER_KEY", KEY)
        .env("TERM", "dumb")
        // With a pipe for stdin, codex waits for more of the prompt.
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("codex finished within 120 s")
        .unwrap_or_else(|e| panic!("cannot run {codex}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "codex failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Codex at LLM_TOWER_CODEX: .ci/run installs it"]
async fn codex_answers_from_the_mock_and_runs_the_command_it_asks_for() {
    needs("LLM_TOWER_CODEX");
    let (upstream, mock) = mock_upstream().await;
    let ledger_path = TempPath::new("llm-tower-codex", "db");
    let gw = gateway(&config_for(
        &upstream,
        // Codex always offers web search, which only OpenAI runs: left out for the mock.
        &format!(
            "master_key: {KEY}\naliases:\n  codex-mini: up/echo\nresponses: {{ builtin_tools: drop }}\nmetering: {{ sqlite_path: \"{}\" }}",
            ledger_path.display()
        ),
    ))
    .await;
    let dir = TempPath::new("llm-tower-codex", "d");
    std::fs::create_dir_all(&*dir).unwrap();

    // One prompt, to a model name the alias sends to the mock.
    let out = codex(&gw.url(), &dir, "codex-mini", "hello from codex").await;
    assert_eq!(out.trim_end(), "You said: hello from codex", "{out}");
    let (_, sent) = mock.last_request().unwrap();
    let sent: serde_json::Value = serde_json::from_slice(&sent).unwrap();
    let tools: Vec<&str> = sent["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert!(tools.contains(&"exec_command"), "{tools:?}");
    assert!(
        tools.iter().any(|t| t.starts_with("multi_agent_v1__")),
        "the namespace's functions, flattened: {tools:?}"
    );

    // The mock calls exec_command with the prompt as its arguments; Codex runs the command
    // and sends its output back; the mock answers with it.
    let prompt = serde_json::json!({ "cmd": "echo tool-ran-$((40 + 2))" }).to_string();
    let out = codex(&gw.url(), &dir, "up/echo?tool=exec_command", &prompt).await;
    assert!(out.contains("Tool said:"), "{out}");
    assert!(out.contains("tool-ran-42"), "the command ran: {out}");

    assert!(mock.requests() >= 3, "the HTTP mock answered");
    let rows = ledger(&ledger_path, 3).await;
    assert!(
        rows.iter()
            .all(|(endpoint, _, status)| endpoint == "responses" && *status == 200),
        "{rows:?}"
    );
}
