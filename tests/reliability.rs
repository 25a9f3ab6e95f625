//! Faults of upstreams, over real HTTP: every byte an upstream sent reaches the client.
//! (The start of issue 13's fault suite.)

mod support;

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An upstream that answers every request with the raw HTTP `response` bytes, then closes.
async fn raw_upstream(response: Vec<u8>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let response = response.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                let mut seen = Vec::new();
                // Read the request head and its Content-Length body.
                loop {
                    let n = socket.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    seen.extend_from_slice(&buf[..n]);
                    if let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&seen[..end]).to_ascii_lowercase();
                        let len: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .map_or(0, |v| v.trim().parse().unwrap());
                        if seen.len() >= end + 4 + len {
                            break;
                        }
                    }
                }
                let _ = socket.write_all(&response).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    format!("http://{addr}")
}

fn sse_with_content_length(body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

const CHUNK: &str = r#"data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}"#;
const FINISH: &str = r#"data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#;

#[tokio::test]
async fn the_last_unterminated_event_of_a_stream_reaches_the_client() {
    for (body, last) in [
        (
            format!("{CHUNK}\n\n{FINISH}\n\ndata: [DONE]"),
            "data: [DONE]",
        ),
        (format!("{CHUNK}\n\n{FINISH}"), FINISH),
        (format!("{CHUNK}\n\n{FINISH}\n"), FINISH),
    ] {
        let url = raw_upstream(sse_with_content_length(&body)).await;
        let gw = gateway(&format!(
            "providers:\n  up: {{ kind: openai, api_base: '{url}/v1' }}\n"
        ))
        .await;
        for include_usage in [false, true] {
            let request = serde_json::json!({"model": "up/m", "stream": true,
                "stream_options": {"include_usage": include_usage},
                "messages": [{"role": "user", "content": "hi"}]});
            let answer = post(
                &format!("{}/v1/chat/completions", gw.url()),
                &request.to_string(),
                &[],
            )
            .await;
            assert_eq!(answer.status, 200, "{}", answer.text());
            let text = answer.text();
            assert!(
                text.contains(last),
                "include_usage {include_usage}: the end is missing:\n{text}"
            );
        }
    }
}
