//! The gateway inside an existing axum app: your own routes beside it, the gateway's routes
//! under `/llm` (so clients use `base_url = http://127.0.0.1:8080/llm/v1`).
//!
//! ```text
//! cargo run --example axum_app
//! curl -s localhost:8080/llm/v1/chat/completions -H 'content-type: application/json' \
//!   -d '{"model":"mock/echo","messages":[{"role":"user","content":"hi"}]}'
//! ```

use axum::routing::get;
use axum::Router;
use llm_tower::{Config, Gateway};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = Config::from_yaml("providers: { mock: { kind: mock, models: [echo] } }")?;
    let gateway = Gateway::from_config(&config)?.into_service();

    let app = Router::new()
        .route(
            "/",
            get(|| async { "my app; the LLM gateway is under /llm/v1" }),
        )
        .nest_service("/llm", gateway);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
