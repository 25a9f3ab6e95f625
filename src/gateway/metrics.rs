//! Prometheus: the exporter a process installs, and the gateway's HTTP series.

use std::sync::OnceLock;
use std::time::Duration;

use http::StatusCode;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde::Deserialize;

/// Who may read `GET /metrics` (it names keys, models and providers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricsAuth {
    /// The master key only (the default when the gateway has keys).
    Master,
    /// Anyone who can reach the gateway (`none` in YAML; the default when the gateway has
    /// no keys: it is open anyway).
    #[serde(rename = "none")]
    Open,
}

/// The `metrics:` section.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct MetricsSettings {
    /// Who may scrape `/metrics`; unset: the master key when keys are configured.
    pub auth: Option<MetricsAuth>,
}

/// Installs a Prometheus exporter as the process's `metrics` recorder and returns its
/// handle, for [`Gateway::with_prometheus`](super::Gateway::with_prometheus). Called again,
/// it returns the same handle; `None` when the process already has another recorder.
///
/// This is the application's choice (the `llm-tower` binary makes it): building a gateway
/// never installs a recorder. Run [`prometheus_upkeep`] beside the server.
pub fn install_prometheus() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            const BUCKETS: [f64; 18] = [
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0, 30.0, 60.0, 120.0, 300.0,
            ];
            let recorder = PrometheusBuilder::new()
                .set_buckets(&BUCKETS)
                .expect("buckets")
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            Some(handle)
        })
        .clone()
}

/// Summarises the exporter's histograms every 5 s, so that its memory stays flat between
/// scrapes; runs until dropped.
pub async fn prometheus_upkeep(handle: PrometheusHandle) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tick.tick().await;
        handle.run_upkeep();
    }
}

/// A `'static` label for the statuses the gateway answers with.
pub(super) fn status_label(status: StatusCode) -> &'static str {
    const KNOWN: [(u16, &str); 16] = [
        (200, "200"),
        (400, "400"),
        (401, "401"),
        (403, "403"),
        (404, "404"),
        (405, "405"),
        (408, "408"),
        (409, "409"),
        (413, "413"),
        (422, "422"),
        (429, "429"),
        (500, "500"),
        (502, "502"),
        (503, "503"),
        (504, "504"),
        (529, "529"),
    ];
    KNOWN
        .iter()
        .find(|(code, _)| *code == status.as_u16())
        .map_or_else(
            || match status.as_u16() {
                200..=299 => "2xx",
                400..=499 => "4xx",
                _ => "5xx",
            },
            |(_, label)| label,
        )
}
