//! The real `anthropic` Python SDK as the gateway's client: `tests/sdk/test_anthropic_sdk.py`
//! against a gateway with the mock (Messages translated to chat) and a mock Anthropic that
//! answers each model name with the recorded fixture of that name (passed through).
//!
//! Enabled by `LLM_TOWER_PYTHON` (a Python with `anthropic` and `pytest`), which `.ci/run`
//! sets.

mod native_replay;
mod support;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use llm_tower::Body;
use native_replay::{event_frames, fixture};
use serde_json::Value;
use support::*;

/// A mock Anthropic: the upstream model `X` gets `tests/fixtures/anthropic/X.sse` when
/// streamed, else `X.response.json`; `error-NNN-…` models get `X.json` with status NNN;
/// `count_tokens` answers 42.
#[derive(Clone)]
struct Fixtures;

impl tower::Service<Request<Incoming>> for Fixtures {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Incoming>) -> Self::Future {
        Box::pin(async move {
            let path = req.uri().path().to_owned();
            let body = req.into_body().collect().await.unwrap().to_bytes();
            let request: Value = serde_json::from_slice(&body).unwrap();
            let model = request["model"].as_str().unwrap().to_owned();
            let json = |status: u16, body: Vec<u8>| {
                Response::builder()
                    .status(status)
                    .header("content-type", "application/json")
                    .header("request-id", "req_fixture")
                    .body(Body::full(body))
                    .unwrap()
            };
            if path.ends_with("/count_tokens") {
                return Ok(json(200, br#"{"input_tokens":42}"#.to_vec()));
            }
            if let Some(rest) = model.strip_prefix("error-") {
                let status: u16 = rest[..3].parse().unwrap();
                return Ok(json(status, fixture(&format!("anthropic/{model}.json"))));
            }
            if request["stream"] == true {
                let frames = event_frames(&fixture(&format!("anthropic/{model}.sse")));
                let stream = futures_util::stream::iter(
                    frames
                        .into_iter()
                        .map(|f| Ok::<_, Infallible>(http_body::Frame::data(f))),
                );
                return Ok(Response::builder()
                    .header("content-type", "text/event-stream")
                    .body(Body::new(http_body_util::StreamBody::new(stream)))
                    .unwrap());
            }
            Ok(json(
                200,
                fixture(&format!("anthropic/{model}.response.json")),
            ))
        })
    }
}

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
