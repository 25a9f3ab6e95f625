//! Shared by the end-to-end tests: real servers on 127.0.0.1 and a real HTTP client.
#![allow(dead_code)]

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use llm_tower::executor::MockUpstream;
use llm_tower::server::ServerSettings;
use llm_tower::{Body, Config, Gateway};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

/// A server running in this test process, stopped (gracefully) on drop.
pub struct Running {
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    pub task: Option<tokio::task::JoinHandle<()>>,
}

impl Running {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Starts graceful shutdown; the returned task ends when the server has stopped.
    pub fn shutdown(&mut self) -> tokio::task::JoinHandle<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.task.take().expect("server task")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub async fn serve<S, B>(service: S, config: ServerSettings) -> Running
where
    S: tower::Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<llm_tower::BoxError>,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel();
    let task = tokio::spawn(async move {
        llm_tower::server::serve(listener, service, &config, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    Running {
        addr,
        shutdown: Some(tx),
        task: Some(task),
    }
}

/// The project's mock OpenAI server over real HTTP.
pub async fn mock_upstream() -> (Running, MockUpstream) {
    let mock = MockUpstream::new();
    (serve(mock.clone(), ServerSettings::default()).await, mock)
}

/// The gateway built from YAML, served over real HTTP.
pub async fn gateway(yaml: &str) -> Running {
    let mut config = Config::from_yaml(yaml).unwrap_or_else(|e| panic!("config: {e}\n{yaml}"));
    // Tests that do not name a ledger keep theirs in memory, not in the working directory.
    if !yaml.contains("sqlite_path") {
        config.metering.sqlite_path = ":memory:".into();
    }
    let server = config.server.clone();
    // Before the gateway is built: it registers its series as it is built.
    let prometheus = llm_tower::install_prometheus();
    serve(
        Gateway::from_config(&config)
            .unwrap()
            .with_prometheus(prometheus)
            .into_service(),
        server,
    )
    .await
}

pub fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts an OpenAI-style error body with this status, returning its `error` object.
    pub fn error(&self, status: StatusCode) -> serde_json::Value {
        assert_eq!(self.status, status, "body: {}", self.text());
        let value = self.json();
        let error = value["error"].clone();
        assert!(error["message"].is_string(), "no message: {value}");
        assert!(error["type"].is_string(), "no type: {value}");
        assert!(
            error.get("param").is_some() && error.get("code").is_some(),
            "{value}"
        );
        error
    }
}

pub fn request(
    url: &str,
    body: impl Into<Bytes>,
    headers: &[(&str, &str)],
) -> Request<Full<Bytes>> {
    let mut req = Request::post(url).header("content-type", "application/json");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.body(Full::new(body.into())).unwrap()
}

pub async fn send(req: Request<Full<Bytes>>) -> Answer {
    let response = tokio::time::timeout(Duration::from_secs(20), client().request(req))
        .await
        .expect("response within 20 s")
        .expect("request sent");
    let (parts, body) = response.into_parts();
    let body = tokio::time::timeout(Duration::from_secs(20), body.collect())
        .await
        .expect("body within 20 s")
        .expect("body read")
        .to_bytes();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

pub async fn post(url: &str, body: &str, headers: &[(&str, &str)]) -> Answer {
    send(request(url, body.to_owned(), headers)).await
}

pub async fn get(url: &str, headers: &[(&str, &str)]) -> Answer {
    let mut req = Request::get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    send(req.body(Full::new(Bytes::new())).unwrap()).await
}

/// The `data:` payloads of an SSE body, in order.
pub fn sse_data(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter_map(|event| {
            event
                .lines()
                .find_map(|l| l.strip_prefix("data: "))
                .map(str::to_owned)
        })
        .collect()
}

pub fn chat_body(model: &str, text: &str, stream: bool) -> String {
    serde_json::json!({
        "model": model,
        "messages": [{ "role": "user", "content": text }],
        "stream": stream,
    })
    .to_string()
}

/// An upstream whose streamed answer the test writes event by event, and which reports
/// when the gateway drops the connection.
#[derive(Clone, Default)]
pub struct ScriptedUpstream {
    inner: Arc<Mutex<Vec<mpsc::Sender<Bytes>>>>,
}

impl ScriptedUpstream {
    /// Waits for the next request and returns the sender of its SSE body.
    pub async fn next_stream(&self) -> mpsc::Sender<Bytes> {
        for _ in 0..200 {
            if let Some(tx) = self.inner.lock().unwrap().pop() {
                return tx;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("no request reached the scripted upstream");
    }
}

struct ChannelBody(mpsc::Receiver<Bytes>);

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b))))
    }
}

impl tower::Service<Request<Incoming>> for ScriptedUpstream {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Incoming>) -> Self::Future {
        let senders = self.inner.clone();
        Box::pin(async move {
            let _ = req.into_body().collect().await;
            let (tx, rx) = mpsc::channel(16);
            senders.lock().unwrap().push(tx);
            Ok(Response::builder()
                .header("content-type", "text/event-stream")
                .body(Body::new(ChannelBody(rx)))
                .unwrap())
        })
    }
}

pub async fn scripted_upstream() -> (Running, ScriptedUpstream) {
    let upstream = ScriptedUpstream::default();
    (
        serve(upstream.clone(), ServerSettings::default()).await,
        upstream,
    )
}

/// The YAML of a gateway in front of one OpenAI-compatible upstream named `up`.
pub fn config_for(upstream: &Running, extra: &str) -> String {
    format!(
        "providers:\n  up: {{ kind: openai, api_base: '{}/v1', api_key: sk-upstream, models: [echo] }}\n  mock: {{ kind: mock }}\n{extra}",
        upstream.url()
    )
}

/// A gateway in a process of its own (the `gateway` example), for tests of many instances:
/// killed, and its config file removed, on drop.
pub struct GatewayProcess {
    child: tokio::process::Child,
    url: String,
    _config: Option<TempPath>,
    _dir: Option<TempDir>,
}

impl GatewayProcess {
    /// Starts one on a free port with `yaml` (metering off unless `yaml` has a `metering:`
    /// section), once it accepts connections.
    pub async fn spawn(yaml: &str) -> Self {
        let config = TempPath::new("llm-tower-gw", "yaml");
        let metering = if yaml.contains("metering:") {
            ""
        } else {
            "\nmetering: { sink: none }"
        };
        std::fs::write(&config, format!("{yaml}{metering}")).unwrap();
        let mut process = Self::start(&config, &[], None).await;
        process._config = Some(config);
        process
    }

    /// Starts one on a free port with the config file `path` as it is, the variables of
    /// `env` set, in a working directory of its own (removed on drop: a ledger the file
    /// does not place goes there).
    pub async fn from_file(path: &std::path::Path, env: &[(&str, String)]) -> Self {
        let dir = TempDir::new("llm-tower-gw");
        let mut process = Self::start(path, env, Some(&dir)).await;
        process._dir = Some(dir);
        process
    }

    async fn start(path: &std::path::Path, env: &[(&str, String)], dir: Option<&TempDir>) -> Self {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let path = std::path::absolute(path).unwrap();
        let mut command = tokio::process::Command::new(gateway_binary());
        command
            .args([
                "--config",
                path.to_str().unwrap(),
                "--listen",
                &format!("127.0.0.1:{port}"),
            ])
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true);
        if let Some(dir) = dir {
            command.current_dir(&dir.0);
            let log = std::fs::File::create(dir.join("output.log")).unwrap();
            command.stdout(log.try_clone().unwrap()).stderr(log);
        }
        let child = command.spawn().unwrap();
        let mut process = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _config: None,
            _dir: None,
        };
        for _ in 0..100 {
            if let Ok(Some(status)) = process.child.try_wait() {
                let log =
                    dir.map(|d| std::fs::read_to_string(d.join("output.log")).unwrap_or_default());
                panic!(
                    "gateway process exited at start: {status}\n{}",
                    log.unwrap_or_default()
                );
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return process;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("gateway process did not start");
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// What it wrote (logs and errors) so far, when started by [`from_file`](Self::from_file).
    pub fn output(&self) -> String {
        let dir = self._dir.as_ref().expect("started by from_file");
        std::fs::read_to_string(dir.join("output.log")).unwrap_or_default()
    }

    /// Sends it `SIGHUP` (reload the config).
    pub fn hangup(&self) {
        let pid = self.child.id().expect("running").to_string();
        let status = std::process::Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap();
        assert!(status.success(), "kill -HUP {pid}");
    }

    /// Kills it now (SIGKILL: no graceful shutdown).
    pub async fn kill(&mut self) {
        self.child.kill().await.unwrap();
    }
}

/// A directory of its own in the temp directory, removed (with what is in it) on drop.
pub struct TempDir(std::path::PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> Self {
        let path = std::env::temp_dir().join(unique(prefix));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }
}

impl std::ops::Deref for TempDir {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A unique path in the temp directory, removed on drop (with SQLite's `-wal` and `-shm`
/// files beside it).
pub struct TempPath(std::path::PathBuf);

impl TempPath {
    pub fn new(prefix: &str, extension: &str) -> Self {
        let name = format!(
            "{prefix}-{}-{}.{extension}",
            std::process::id(),
            fastrand::u64(..)
        );
        Self(std::env::temp_dir().join(name))
    }
}

impl std::ops::Deref for TempPath {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl AsRef<std::path::Path> for TempPath {
    fn as_ref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut path = self.0.clone().into_os_string();
            path.push(suffix);
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The example gateway binary beside the test binaries, brought up to date first (a no-op
/// after `cargo test`, which builds examples; needed after `cargo test --test …`).
pub fn gateway_binary() -> std::path::PathBuf {
    // Cargo builds the binary before the integration tests that can name it.
    std::path::PathBuf::from(env!("CARGO_BIN_EXE_llm-tower"))
}

/// A name no other test (or test process) uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}-{}", std::process::id(), fastrand::u64(..))
}

/// A gateway in front of the mock upstream (`up`) with two tenants: keys `sk-a` (team-a)
/// and `sk-b` (team-b), and the master key `sk-master`.
pub struct TwoTenants {
    pub gw: Running,
    pub mock: MockUpstream,
    _upstream: Running,
}

impl TwoTenants {
    pub async fn new(extra: &str) -> Self {
        let (upstream, mock) = mock_upstream().await;
        let gw = gateway(&config_for(
            &upstream,
            &format!(
                "master_key: sk-master\nkeys: [{{ name: team-a, key: sk-a }}, {{ name: team-b, key: sk-b }}]\n{extra}"
            ),
        ))
        .await;
        Self {
            gw,
            mock,
            _upstream: upstream,
        }
    }

    pub fn url(&self) -> String {
        format!("{}/v1/chat/completions", self.gw.url())
    }

    /// `GET /metrics` with the master key.
    pub async fn metrics(&self) -> String {
        let answer = get(
            &format!("{}/metrics", self.gw.url()),
            &[("authorization", "Bearer sk-master")],
        )
        .await;
        assert_eq!(answer.status, 200, "{}", answer.text());
        answer.text()
    }
}

/// An outside part's address from the environment. The tests that need one are
/// `#[ignore]`d with the reason, so a plain `cargo test` lists them as ignored; run with
/// `--include-ignored` (as `.ci/run` does), a missing variable fails the test.
pub fn needs(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!(
            "{var} is not set: this test needs the outside part it names (.ci/run starts them all)"
        )
    })
}

/// Runs pytest on `args` with the Python of `LLM_TOWER_PYTHON` and `env`, and fails unless
/// every test ran and passed.
pub async fn pytest(args: &[&str], env: &[(&str, String)]) {
    let python = needs("LLM_TOWER_PYTHON");
    let output = tokio::process::Command::new(&python)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
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
}

/// The SQLite ledger's rows once there are `count` of them: endpoint, tokens, usage source,
/// outcome, stream.
pub async fn ledger_rows(path: &std::path::Path, count: usize) -> Vec<serde_json::Value> {
    for _ in 0..100 {
        let rows: Vec<serde_json::Value> = rusqlite::Connection::open(path)
            .and_then(|conn| {
                let mut select = conn.prepare(
                    "SELECT endpoint, prompt_tokens, completion_tokens, usage_source, outcome, stream FROM llm_usage ORDER BY id",
                )?;
                let rows = select.query_map([], |r| {
                    Ok(serde_json::json!({
                        "endpoint": r.get::<_, String>(0)?,
                        "prompt_tokens": r.get::<_, i64>(1)?,
                        "completion_tokens": r.get::<_, i64>(2)?,
                        "usage_source": r.get::<_, String>(3)?,
                        "outcome": r.get::<_, String>(4)?,
                        "stream": r.get::<_, bool>(5)?,
                    }))
                })?;
                rows.collect()
            })
            .unwrap_or_default();
        if rows.len() >= count {
            return rows;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("fewer than {count} ledger rows");
}

/// An OTLP trace receiver, over HTTP (`POST /v1/traces`, protobuf) and gRPC (the
/// `TraceService/Export` call, on the same port): what a collector would get.
#[derive(Clone, Default)]
pub struct OtlpReceiver {
    requests: Arc<
        Mutex<Vec<opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest>>,
    >,
    grpc_calls: Arc<std::sync::atomic::AtomicUsize>,
}

/// The gRPC method a trace exporter calls.
const OTLP_GRPC_EXPORT: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

impl OtlpReceiver {
    /// How many export requests came over gRPC.
    pub fn grpc_calls(&self) -> usize {
        self.grpc_calls.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Every span received so far, with the `service.name` of its resource.
    pub fn spans(&self) -> Vec<(String, opentelemetry_proto::tonic::trace::v1::Span)> {
        let mut out = Vec::new();
        for request in self.requests.lock().unwrap().iter() {
            for resource in &request.resource_spans {
                let service = resource
                    .resource
                    .iter()
                    .flat_map(|r| &r.attributes)
                    .find(|kv| kv.key == "service.name")
                    .and_then(|kv| kv.value.as_ref())
                    .map(otlp_value)
                    .unwrap_or_default();
                for scope in &resource.scope_spans {
                    for span in &scope.spans {
                        out.push((
                            service.as_str().unwrap_or_default().to_owned(),
                            span.clone(),
                        ));
                    }
                }
            }
        }
        out
    }

    /// Waits (up to 10 s) until at least `count` spans have come.
    pub async fn wait_for(
        &self,
        count: usize,
    ) -> Vec<(String, opentelemetry_proto::tonic::trace::v1::Span)> {
        for _ in 0..200 {
            let spans = self.spans();
            if spans.len() >= count {
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("fewer than {count} spans: {:?}", self.spans());
    }
}

/// An OTLP attribute value as JSON.
pub fn otlp_value(value: &opentelemetry_proto::tonic::common::v1::AnyValue) -> serde_json::Value {
    use opentelemetry_proto::tonic::common::v1::any_value::Value as V;
    match &value.value {
        Some(V::StringValue(s)) => serde_json::json!(s),
        Some(V::BoolValue(b)) => serde_json::json!(b),
        Some(V::IntValue(i)) => serde_json::json!(i),
        Some(V::DoubleValue(d)) => serde_json::json!(d),
        Some(V::ArrayValue(a)) => a.values.iter().map(otlp_value).collect(),
        other => serde_json::json!(format!("{other:?}")),
    }
}

/// A span's attributes as a JSON object.
pub fn span_attributes(span: &opentelemetry_proto::tonic::trace::v1::Span) -> serde_json::Value {
    serde_json::Value::Object(
        span.attributes
            .iter()
            .map(|kv| {
                (
                    kv.key.clone(),
                    kv.value.as_ref().map(otlp_value).unwrap_or_default(),
                )
            })
            .collect(),
    )
}

impl tower::Service<Request<Incoming>> for OtlpReceiver {
    type Response = Response<http_body_util::combinators::BoxBody<Bytes, Infallible>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Incoming>) -> Self::Future {
        let requests = self.requests.clone();
        if req.uri().path() == OTLP_GRPC_EXPORT {
            let calls = self.grpc_calls.clone();
            return Box::pin(async move {
                // Length-prefixed messages: a compression flag byte, a 4-byte length.
                assert_eq!(req.headers()["content-type"], "application/grpc");
                let body = req.into_body().collect().await.unwrap().to_bytes();
                assert_eq!(body[0], 0, "uncompressed");
                let len = u32::from_be_bytes(body[1..5].try_into().unwrap()) as usize;
                assert_eq!(body.len(), 5 + len, "one message");
                let decoded = <opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest as prost::Message>::decode(body.slice(5..)).unwrap();
                requests.lock().unwrap().push(decoded);
                calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                // An empty ExportTraceServiceResponse, then `grpc-status: 0` in trailers.
                let mut trailers = http::HeaderMap::new();
                trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
                let body = Full::new(Bytes::from_static(&[0, 0, 0, 0, 0]))
                    .with_trailers(std::future::ready(Some(Ok(trailers))))
                    .boxed();
                let mut response = Response::new(body);
                response.headers_mut().insert(
                    "content-type",
                    http::HeaderValue::from_static("application/grpc"),
                );
                Ok(response)
            });
        }
        Box::pin(async move {
            let ok = req.uri().path() == "/v1/traces"
                && req.headers()["content-type"] == "application/x-protobuf";
            let body = req.into_body().collect().await.unwrap().to_bytes();
            let status = match <opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest as prost::Message>::decode(body) {
                Ok(decoded) if ok => {
                    requests.lock().unwrap().push(decoded);
                    StatusCode::OK
                }
                _ => StatusCode::BAD_REQUEST,
            };
            let mut response = Response::new(Full::new(Bytes::new()).boxed());
            *response.status_mut() = status;
            response.headers_mut().insert(
                "content-type",
                http::HeaderValue::from_static("application/x-protobuf"),
            );
            Ok(response)
        })
    }
}

/// An OTLP receiver over real HTTP.
pub async fn otlp_receiver() -> (Running, OtlpReceiver) {
    let receiver = OtlpReceiver::default();
    (
        serve(receiver.clone(), ServerSettings::default()).await,
        receiver,
    )
}
