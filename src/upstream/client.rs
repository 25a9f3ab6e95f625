//! The one upstream HTTP client every HTTP executor shares.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::{Client, ResponseFuture};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use crate::config::{ConfigError, UpstreamConfig};

/// A pooled hyper-util client: rustls (ring, web PKI roots plus an optional CA file),
/// HTTP/2 where ALPN offers it, TCP_NODELAY, a connect timeout. Cheap to clone.
#[derive(Clone, Debug)]
pub struct UpstreamClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl UpstreamClient {
    /// Builds the client from the `upstream:` section of the config.
    pub fn new(config: &UpstreamConfig) -> Result<Self, ConfigError> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(path) = &config.extra_ca_file {
            let field = |e: &dyn std::fmt::Display| {
                ConfigError::new(format!("upstream.extra_ca_file: {}: {e}", path.display()))
            };
            let mut added = 0;
            for cert in CertificateDer::pem_file_iter(path).map_err(|e| field(&e))? {
                roots
                    .add(cert.map_err(|e| field(&e))?)
                    .map_err(|e| field(&e))?;
                added += 1;
            }
            if added == 0 {
                return Err(field(&"no certificate in the file"));
            }
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigError::new(format!("upstream: TLS setup failed: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();

        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(config.connect_timeout));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);

        let client = Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(config.pool_idle_timeout)
            .build(https);
        Ok(Self { client })
    }

    /// Sends one request.
    pub fn request(&self, req: http::Request<Full<Bytes>>) -> ResponseFuture {
        self.client.request(req)
    }
}
