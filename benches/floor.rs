//! The floor: a bare hyper + hyper-util reverse proxy, the least a program of this kind does
//! per request. `benches/e2e.sh` runs it in front of the same mock as the gateway and divides
//! the gateway's figures by its figures.
//!
//!     cargo run --profile profiling --example floor -- --listen 127.0.0.1:0 --upstream http://127.0.0.1:8080
//!
//! The same runtime, allocator, server and client settings as the gateway binary: tokio's
//! multi-threaded runtime, mimalloc, HTTP/1.1 keep-alive with TCP_NODELAY both ways,
//! hyper-util's pooled client. It forwards method, path, headers and the streamed body each
//! way and does nothing else.

use std::net::SocketAddr;

use http::uri::{Authority, Scheme};
use hyper::body::Incoming;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;

type Upstream = Client<HttpConnector, Incoming>;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let mut listen = "127.0.0.1:0".to_owned();
    let mut upstream = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => listen = args.next().expect("--listen ADDR"),
            "--upstream" => upstream = args.next(),
            other => panic!("unknown argument {other}"),
        }
    }
    let upstream: http::Uri = upstream
        .expect("--upstream URL")
        .parse()
        .expect("upstream URL");
    let authority = upstream.authority().expect("upstream host").clone();

    tokio::runtime::Runtime::new()
        .expect("tokio runtime")
        .block_on(serve(listen, authority));
}

async fn serve(listen: String, authority: Authority) {
    let listener = tokio::net::TcpListener::bind(&listen).await.expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("address");
    println!("floor proxy listening on {addr}");

    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Upstream = Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .build(connector);

    let mut server = auto::Builder::new(TokioExecutor::new());
    server.http1().timer(TokioTimer::new()).keep_alive(true);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (client, authority, server) = (client.clone(), authority.clone(), server.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                forward(client.clone(), authority.clone(), req)
            });
            let _ = server.serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

async fn forward(
    client: Upstream,
    authority: Authority,
    req: http::Request<Incoming>,
) -> Result<http::Response<Incoming>, hyper_util::client::legacy::Error> {
    let (mut parts, body) = req.into_parts();
    let mut uri = std::mem::take(&mut parts.uri).into_parts();
    uri.scheme = Some(Scheme::HTTP);
    uri.authority = Some(authority);
    parts.uri = http::Uri::from_parts(uri).expect("upstream URI");
    parts.headers.remove(http::header::HOST);
    client.request(http::Request::from_parts(parts, body)).await
}
