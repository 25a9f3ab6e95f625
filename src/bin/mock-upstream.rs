//! The built-in mock as a standalone OpenAI-compatible server, for LiteLLM, benches and
//! manual testing. Model options (`echo?status=429`, `?chunk_delay=20ms`, …) are described
//! in `llm_tower::executor::MockUpstream`.
//!
//! ```text
//! cargo run --release --features test-util --bin mock-upstream -- [--listen 127.0.0.1:9100]
//! ```

use llm_tower::executor::MockUpstream;
use llm_tower::server::ServerSettings;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut listen = "127.0.0.1:9100".to_owned();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => listen = args.next().expect("--listen ADDR"),
            other => panic!("unknown argument `{other}`; usage: mock-upstream [--listen ADDR]"),
        }
    }
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    let shutdown = llm_tower::server::shutdown_signal();
    println!(
        "mock upstream listening on http://{}",
        listener.local_addr()?
    );
    llm_tower::server::serve(
        listener,
        MockUpstream::new(),
        &ServerSettings::default(),
        shutdown,
    )
    .await
}
