//! Hostile clients over real TCP: each connection that does nothing useful is closed
//! within its deadline, and the server keeps serving everyone else meanwhile (issue 13).

mod support;

use std::time::{Duration, Instant};

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A gateway on the mock with short deadlines, so the tests see them pass.
async fn strict_gateway(server: &str) -> (Running, Running) {
    let (upstream, _mock) = mock_upstream().await;
    let gw = gateway(&format!(
        "providers:\n  up: {{ kind: openai, api_base: '{}/v1' }}\nserver: {{ {server} }}\n",
        upstream.url()
    ))
    .await;
    (gw, upstream)
}

const DEADLINES: &str = "header_read_timeout: 1s, idle_timeout: 1s, body_read_timeout: 1s";

/// Reads until the peer closes; returns what it sent and how long that took. Panics
/// after `limit`.
async fn until_closed(socket: &mut TcpStream, limit: Duration) -> (Vec<u8>, Duration) {
    let started = Instant::now();
    let mut seen = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        match tokio::time::timeout_at((started + limit).into(), socket.read(&mut buf)).await {
            Err(_) => panic!(
                "still open after {limit:?}; got {:?}",
                String::from_utf8_lossy(&seen)
            ),
            Ok(Ok(0)) | Ok(Err(_)) => return (seen, started.elapsed()),
            Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
        }
    }
}

/// A well-behaved client still gets its answer.
async fn served(gw: &Running) {
    let answer = post(
        &format!("{}/v1/chat/completions", gw.url()),
        &chat_body("up/m", "hello", false),
        &[],
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
}

async fn connect(gw: &Running) -> TcpStream {
    TcpStream::connect(gw.addr).await.unwrap()
}

#[tokio::test]
async fn connections_that_never_send_a_byte_are_closed_after_the_header_deadline() {
    let (gw, _up) = strict_gateway(DEADLINES).await;
    let mut silent = Vec::new();
    for _ in 0..100 {
        silent.push(connect(&gw).await);
    }
    served(&gw).await;
    for mut socket in silent {
        let (_, took) = until_closed(&mut socket, Duration::from_secs(4)).await;
        assert!(took <= Duration::from_secs(4));
    }
}

#[tokio::test]
async fn a_partial_http2_preface_is_closed() {
    let (gw, _up) = strict_gateway(DEADLINES).await;
    let mut socket = connect(&gw).await;
    socket.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
    served(&gw).await;
    until_closed(&mut socket, Duration::from_secs(4)).await;
}

/// The client preface and an empty SETTINGS frame.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

/// A HEADERS frame (END_HEADERS, and END_STREAM when `end`) for `GET /health` on `stream`,
/// HPACK-encoded from the static table: `:method GET`, `:scheme http`, `:path /` would be
/// 0x82 0x86 0x84; `/health` is a literal.
fn h2_get_health(stream: u32, end: bool) -> Vec<u8> {
    let mut block = vec![0x82, 0x86, 0x04, 7];
    block.extend_from_slice(b"/health");
    block.extend_from_slice(&[0x01, 9]); // :authority, literal
    block.extend_from_slice(b"localhost");
    let flags = if end { 0x05 } else { 0x04 };
    let mut frame = vec![0, 0, block.len() as u8, 0x01, flags];
    frame.extend_from_slice(&stream.to_be_bytes());
    frame.extend_from_slice(&block);
    frame
}

fn h2_rst_stream(stream: u32) -> Vec<u8> {
    let mut frame = vec![0, 0, 4, 0x03, 0];
    frame.extend_from_slice(&stream.to_be_bytes());
    frame.extend_from_slice(&8u32.to_be_bytes()); // CANCEL
    frame
}

#[tokio::test]
async fn an_http2_connection_that_sends_no_request_is_closed() {
    let (gw, _up) = strict_gateway(DEADLINES).await;
    let mut socket = connect(&gw).await;
    socket.write_all(H2_PREFACE).await.unwrap();
    served(&gw).await;
    until_closed(&mut socket, Duration::from_secs(4)).await;
}

#[tokio::test]
async fn idle_connections_are_closed_after_their_last_response_http1_and_http2() {
    let (gw, _up) = strict_gateway("idle_timeout: 1s").await;
    // HTTP/1.1 keep-alive: one request, then silence.
    let mut h1 = connect(&gw).await;
    h1.write_all(b"GET /health HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .unwrap();
    // HTTP/2: one request, then silence.
    let mut h2 = connect(&gw).await;
    h2.write_all(H2_PREFACE).await.unwrap();
    h2.write_all(&h2_get_health(1, true)).await.unwrap();
    for socket in [&mut h1, &mut h2] {
        let (seen, took) = until_closed(socket, Duration::from_secs(4)).await;
        assert!(!seen.is_empty(), "answered before closing");
        assert!(
            took >= Duration::from_millis(900),
            "kept for idle_timeout: {took:?}"
        );
    }
    // A new connection is served as usual.
    let mut again = connect(&gw).await;
    again
        .write_all(b"GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let (seen, _) = until_closed(&mut again, Duration::from_secs(2)).await;
    let seen = String::from_utf8_lossy(&seen);
    assert!(seen.starts_with("HTTP/1.1 200"), "{seen}");
}

#[tokio::test]
async fn slowloris_headers_are_cut_at_the_header_deadline() {
    let (gw, _up) = strict_gateway(DEADLINES).await;
    let mut socket = connect(&gw).await;
    socket
        .write_all(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    // One header byte every 200 ms, for longer than the deadline.
    let drip = async {
        for _ in 0..50 {
            if socket.write_all(b"x").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    drip.await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "still accepted bytes"
    );
    served(&gw).await;
}

#[tokio::test]
async fn a_slow_body_gets_408_at_the_body_deadline() {
    let (gw, _up) = strict_gateway(DEADLINES).await;
    let mut socket = connect(&gw).await;
    socket
        .write_all(
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 60\r\n\r\n{",
        )
        .await
        .unwrap();
    let started = Instant::now();
    let (mut read, mut write) = socket.into_split();
    let drip = tokio::spawn(async move {
        for _ in 0..30 {
            if write.write_all(b" ").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !seen.windows(4).any(|w| w == b"\r\n\r\n") || !seen.ends_with(b"}}") {
        let n = tokio::time::timeout(Duration::from_secs(4), read.read(&mut buf))
            .await
            .expect("answered within the deadline")
            .unwrap();
        assert!(n > 0, "closed without an answer");
        seen.extend_from_slice(&buf[..n]);
    }
    let took = started.elapsed();
    let text = String::from_utf8_lossy(&seen);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains(r#""code":"request_timeout""#), "{text}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "{took:?}"
    );
    drip.abort();
    served(&gw).await;
}

#[tokio::test]
async fn ten_thousand_headers_are_refused() {
    let (gw, _up) = strict_gateway(DEADLINES).await;
    let mut socket = connect(&gw).await;
    let mut head = b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n".to_vec();
    for i in 0..10_000 {
        head.extend_from_slice(format!("x-h{i}: v\r\n").as_bytes());
    }
    head.extend_from_slice(b"\r\n");
    let _ = socket.write_all(&head).await; // the server may close before reading it all
    let (seen, _) = until_closed(&mut socket, Duration::from_secs(4)).await;
    let text = String::from_utf8_lossy(&seen);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 431"),
        "refused: {text}"
    );
    served(&gw).await;
}

#[tokio::test]
async fn http2_rapid_reset_is_stopped_and_others_are_served() {
    let (gw, _up) = strict_gateway(DEADLINES).await;
    let mut socket = connect(&gw).await;
    socket.write_all(H2_PREFACE).await.unwrap();
    let mut frames = Vec::new();
    for i in 0..10_000u32 {
        let stream = 2 * i + 1;
        frames.extend_from_slice(&h2_get_health(stream, false));
        frames.extend_from_slice(&h2_rst_stream(stream));
    }
    let _ = socket.write_all(&frames).await;
    let (seen, _) = until_closed(&mut socket, Duration::from_secs(5)).await;
    // A GOAWAY frame (type 7) with ENHANCE_YOUR_CALM (0xb) or similar ends the connection.
    assert!(
        seen.windows(4).any(|w| w[3] == 0x07 && w[0] == 0),
        "GOAWAY sent"
    );
    served(&gw).await;
}

#[tokio::test]
async fn past_max_connections_new_connections_wait_for_a_free_slot() {
    let (gw, _up) = strict_gateway("max_connections: 2, header_read_timeout: 30s").await;
    let first = connect(&gw).await;
    let _second = connect(&gw).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The third is queued by the kernel: nothing answers it while two are open.
    let waiting = tokio::spawn({
        let url = gw.url();
        async move {
            let started = Instant::now();
            let answer = get(&format!("{url}/health"), &[]).await;
            (answer.status, started.elapsed())
        }
    });
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(!waiting.is_finished(), "served past max_connections");
    drop(first);
    let (status, took) = tokio::time::timeout(Duration::from_secs(3), waiting)
        .await
        .expect("served once a slot is free")
        .unwrap();
    assert_eq!(status, 200);
    assert!(took >= Duration::from_millis(700));
}

#[tokio::test]
async fn out_of_file_descriptors_the_server_backs_off_and_logs_rarely() {
    let (upstream, _mock) = mock_upstream().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = TempPath::new("llm-tower-fd", "yaml");
    std::fs::write(
        &config,
        format!(
            "providers:\n  up: {{ kind: openai, api_base: '{}/v1' }}\nmetering: {{ sink: none }}\nserver: {{ header_read_timeout: 60s }}\n",
            upstream.url()
        ),
    )
    .unwrap();
    // 48 descriptors: a few for the runtime, the rest for connections.
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -n 48 && exec {} --config {} --listen 127.0.0.1:{port}",
            gateway_binary().display(),
            config.display()
        ))
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut held = Vec::new();
    for _ in 0..100 {
        match TcpStream::connect(("127.0.0.1", port)).await {
            Ok(socket) => held.push(socket),
            Err(_) if held.is_empty() => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(err) => panic!("connect: {err}"),
        }
    }
    // The process is out of descriptors for 3 s (the kernel keeps queueing connections).
    tokio::time::sleep(Duration::from_secs(3)).await;
    drop(held);
    let url = format!("http://127.0.0.1:{port}");
    let mut status = 0;
    for _ in 0..50 {
        status = get(&format!("{url}/health"), &[]).await.status.as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 200, "serving again once descriptors are free");
    child.start_kill().unwrap();
    let output = child.wait_with_output().await.unwrap();
    let log = String::from_utf8_lossy(&output.stdout);
    let lines = log.matches("accept failed").count();
    assert!(
        (1..=2).contains(&lines),
        "{lines} accept-failed lines:\n{log}"
    );
}
