//! The one upstream HTTP client every HTTP executor shares.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::{Client, ResponseFuture};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use serde::Deserialize;

use crate::settings::{setters, SettingsError};

/// The shared upstream client's settings (the `upstream:` section).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct ClientSettings {
    /// TCP (and TLS) connect timeout. Default 10 s.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Time from sending a request to the upstream's response headers. Default 10 min.
    #[serde(with = "humantime_serde")]
    pub first_byte_timeout: Duration,
    /// Longest silence between two body frames of a response. Default 5 min.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// How long an idle pooled connection is kept. Default 90 s.
    #[serde(with = "humantime_serde")]
    pub pool_idle_timeout: Duration,
    /// A PEM file of extra CA certificates trusted beside the built-in web roots.
    pub extra_ca_file: Option<PathBuf>,
}

impl Default for ClientSettings {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            first_byte_timeout: Duration::from_secs(600),
            idle_timeout: Duration::from_secs(300),
            pool_idle_timeout: Duration::from_secs(90),
            extra_ca_file: None,
        }
    }
}

setters!(ClientSettings {
    /// TCP (and TLS) connect timeout.
    connect_timeout: Duration,
    /// Time from sending a request to the upstream's response headers.
    first_byte_timeout: Duration,
    /// Longest silence between two body frames of a response.
    idle_timeout: Duration,
    /// How long an idle pooled connection is kept.
    pool_idle_timeout: Duration,
    /// A PEM file of extra CA certificates.
    extra_ca_file: Option<PathBuf>,
});

/// A pooled hyper-util client: rustls (ring, web PKI roots plus an optional CA file),
/// HTTP/2 where ALPN offers it, TCP_NODELAY, a connect timeout. Cheap to clone.
#[derive(Clone, Debug)]
pub struct UpstreamClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl UpstreamClient {
    /// Builds the client (reading `extra_ca_file`, if any).
    pub fn new(config: &ClientSettings) -> Result<Self, SettingsError> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(path) = &config.extra_ca_file {
            let field = |e: &dyn std::fmt::Display| {
                SettingsError::new("extra_ca_file", format!("{}: {e}", path.display()))
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
        .map_err(|e| SettingsError::new("", format!("TLS setup failed: {e}")))?
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
