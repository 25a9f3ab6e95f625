//! The `llm-tower` binary: `--check`, log formats, exit codes.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::Duration;

fn binary() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_llm-tower"));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("RUST_LOG")
        .env_remove("NO_COLOR");
    cmd
}

#[test]
fn check_prints_what_a_config_serves_without_its_secrets() {
    let output = binary()
        .args(["--check", "docker/gateway.yaml"])
        .env("GATEWAY_MASTER_KEY", "sk-secret-master")
        .env("LITELLM_MASTER_KEY", "sk-secret-litellm")
        .env("DATABASE_URL", "postgres://u:secret-pw@db/x")
        .env("REDIS_URL", "redis://127.0.0.1:1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.starts_with("docker/gateway.yaml: ok\n"), "{stdout}");
    for line in [
        "auth         master key",
        "  litellm      litellm    http://litellm:4000  models: echo, mock-gpt",
        "  mock         mock       built in  models: echo",
        "cache        exact, redis",
        "idempotency  redis",
        "metering     postgres",
        "tenancy      virtual keys in the ledger, limits in redis",
    ] {
        assert!(stdout.contains(line), "no `{line}` in\n{stdout}");
    }
    assert!(!stdout.contains("secret"), "{stdout}");
}

#[test]
fn check_fails_with_the_field_and_exit_code_2() {
    let dir = std::env::temp_dir().join(format!("llm-tower-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.yaml");
    std::fs::write(
        &bad,
        "providers: { a: { kind: openai, api_base: 'ftp://x' } }\n",
    )
    .unwrap();
    let output = binary().arg("--check").arg(&bad).output().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("providers.a.api_base"), "{stderr}");
    let output = binary().arg("--bogus").output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("usage: llm-tower"));
}

/// Starts the binary on a free port with `args`, stops it (SIGTERM) after it logged that it
/// listens, and returns what it wrote to stdout.
fn run_briefly(args: &[&str]) -> String {
    run_briefly_with(args, |_| {})
}

/// The same, calling `during` with the address it listens on before stopping it.
fn run_briefly_with(args: &[&str], during: impl FnOnce(std::net::SocketAddr)) -> String {
    // In a directory of its own: the example's SQLite ledger is a relative path.
    let dir = std::env::temp_dir().join(format!(
        "llm-tower-logs-{}-{}",
        std::process::id(),
        args.join("-")
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let config = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/gateway.yaml");
    let mut child = binary()
        .current_dir(&dir)
        .arg("--config")
        .arg(&config)
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .env("RUST_LOG", "info,llm_tower::request=debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    // Wait for the line saying it listens (its signal handlers are installed by then: a
    // fixed sleep raced a slow start on a busy machine).
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut out = String::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !out.contains("listening") {
        assert!(
            std::time::Instant::now() < deadline,
            "no listening line: {out}"
        );
        if stdout.read_line(&mut out).unwrap() == 0 {
            panic!("exited before listening: {out}");
        }
    }
    let addr = out
        .lines()
        .find(|l| l.contains("listening"))
        .and_then(|l| {
            l.split(|c: char| c.is_whitespace() || c == '"' || c == ',' || c == '=')
                .find_map(|word| word.parse().ok())
        })
        .unwrap_or_else(|| panic!("no address in {out}"));
    during(addr);
    // SIGTERM: a graceful stop, which logs that it is shutting down.
    Command::new("kill")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    stdout.read_to_string(&mut out).unwrap();
    let status = child.wait().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(status.success(), "{status:?}");
    out
}

/// One chat request to `addr` with `x-request-id: id`, answered 200.
fn chat(addr: std::net::SocketAddr, id: &str) {
    use std::io::Write;
    let body = r#"{"model":"mock/echo","messages":[{"role":"user","content":"hi there"}]}"#;
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    write!(
        conn,
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\nx-request-id: {id}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

/// A logfmt line's `key=value` pairs (values unquoted and unescaped).
fn logfmt(line: &str) -> std::collections::HashMap<String, String> {
    let mut pairs = std::collections::HashMap::new();
    let mut rest = line.trim();
    while !rest.is_empty() {
        let (key, after) = rest
            .split_once('=')
            .unwrap_or_else(|| panic!("no `=` in {rest:?}"));
        let (value, after) = if let Some(quoted) = after.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let end = loop {
                match chars.next() {
                    Some((_, '\\')) => value.push(chars.next().unwrap().1),
                    Some((i, '"')) => break i + 1,
                    Some((_, c)) => value.push(c),
                    None => panic!("unterminated value in {line:?}"),
                }
            };
            (value, &quoted[end..])
        } else {
            let end = after.find(' ').unwrap_or(after.len());
            (after[..end].to_owned(), &after[end..])
        };
        pairs.insert(key.to_owned(), value);
        rest = after.trim_start();
    }
    pairs
}

#[test]
fn logfmt_lines_carry_what_the_json_lines_do() {
    let out = run_briefly_with(&["--log-format", "logfmt"], |addr| {
        chat(addr, "req-logfmt-1")
    });
    assert!(!out.contains('\u{1b}'), "colour codes in a pipe: {out:?}");
    let lines: Vec<_> = out.lines().map(logfmt).collect();
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "llm-tower listening" && l["level"] == "info"),
        "{out}"
    );
    let requests: Vec<_> = lines
        .iter()
        .filter(|l| l.get("target").is_some_and(|t| t == "llm_tower::request"))
        .collect();
    assert_eq!(requests.len(), 1, "{out}");
    let line = requests[0];
    for (key, value) in [
        ("request_id", "req-logfmt-1"),
        ("model", "mock/echo"),
        ("provider", "mock"),
        ("status", "200"),
        ("outcome", "ok"),
    ] {
        assert_eq!(
            line.get(key).map(String::as_str),
            Some(value),
            "{key} in {line:?}"
        );
    }
    assert!(line["latency_ms"].parse::<f64>().is_ok(), "{line:?}");
    assert!(
        line["ts"].ends_with('Z') || line["ts"].contains('+'),
        "{line:?}"
    );
}

#[test]
fn logs_are_plain_text_off_a_terminal_or_json_lines() {
    let text = run_briefly(&["--log-format", "text"]);
    assert!(text.contains("llm-tower listening"), "{text}");
    assert!(!text.contains('\u{1b}'), "colour codes in a pipe: {text:?}");

    let json = run_briefly_with(&["--log-format", "json"], |addr| chat(addr, "req-log-1"));
    let lines: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "llm-tower listening" && l["level"] == "INFO"),
        "{json}"
    );
    assert!(
        lines.iter().any(|l| l["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("shutting down"))),
        "{json}"
    );
    // One line for the request, with what an operator looks for.
    let requests: Vec<_> = lines
        .iter()
        .filter(|l| l["target"] == "llm_tower::request")
        .collect();
    assert_eq!(requests.len(), 1, "{json}");
    let line = requests[0];
    assert_eq!(
        (
            &line["request_id"],
            &line["model"],
            &line["provider"],
            &line["status"],
            &line["outcome"]
        ),
        (
            &serde_json::json!("req-log-1"),
            &serde_json::json!("mock/echo"),
            &serde_json::json!("mock"),
            &serde_json::json!(200),
            &serde_json::json!("ok")
        ),
        "{line}"
    );
    assert!(
        line["latency_ms"].as_f64().is_some() && line["prompt_tokens"].as_u64().is_some(),
        "{line}"
    );
}
