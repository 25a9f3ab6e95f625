//! `telemetry:` — where traces go.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::settings::SettingsError;

/// Traces over OTLP/HTTP (protobuf). Off unless an endpoint is set here or in
/// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` / `OTEL_EXPORTER_OTLP_ENDPOINT`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct TelemetrySettings {
    /// The collector's base URL (`http://127.0.0.1:4318`; `/v1/traces` is added unless the
    /// URL ends with it). Default: the standard `OTEL_EXPORTER_OTLP_*` variables, else off.
    pub otlp_endpoint: Option<String>,
    /// `service.name` of the spans. Default `OTEL_SERVICE_NAME`, else `llm-tower`.
    pub service_name: Option<String>,
    /// The share of new traces recorded (a caller's `traceparent` decides for its own).
    /// Default 1.0.
    pub sample_ratio: f64,
    /// Headers sent to the collector (an API key, say), beside
    /// `OTEL_EXPORTER_OTLP_HEADERS`.
    pub headers: BTreeMap<String, String>,
    /// Puts the prompt (`gen_ai.input.messages`) and the answer (`gen_ai.output.messages`)
    /// on the spans. Off by default: they are the users' data.
    pub capture_content: bool,
    /// Spans waiting for export; more are dropped and counted
    /// (`llm_tower_telemetry_spans_dropped_total`). Default 4096.
    pub queue: usize,
    /// Most spans per export request. Default 512.
    pub batch: usize,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        Self {
            otlp_endpoint: None,
            service_name: None,
            sample_ratio: 1.0,
            headers: BTreeMap::new(),
            capture_content: false,
            queue: 4096,
            batch: 512,
        }
    }
}

impl TelemetrySettings {
    /// Checks the settings, naming the field at fault.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if !(0.0..=1.0).contains(&self.sample_ratio) {
            return Err(SettingsError::new("sample_ratio", "must be from 0 to 1"));
        }
        if self.queue == 0 || self.batch == 0 {
            return Err(SettingsError::new(
                if self.queue == 0 { "queue" } else { "batch" },
                "must be greater than 0",
            ));
        }
        if let Some(url) = &self.otlp_endpoint {
            let uri: http::Uri = url.parse().map_err(|e| {
                SettingsError::new("otlp_endpoint", format!("`{url}` is not a URL: {e}"))
            })?;
            if !matches!(uri.scheme_str(), Some("http" | "https")) {
                return Err(SettingsError::new(
                    "otlp_endpoint",
                    format!("`{url}` must be an http:// or https:// URL"),
                ));
            }
        }
        Ok(())
    }

    /// The traces URL: this file's endpoint, or the standard variables' (through `env`).
    pub(crate) fn traces_url(&self, env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
        let with_path = |base: &str| {
            let base = base.trim_end_matches('/');
            if base.ends_with("/v1/traces") {
                base.to_owned()
            } else {
                format!("{base}/v1/traces")
            }
        };
        match &self.otlp_endpoint {
            Some(url) => Some(with_path(url)),
            None => env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
                .filter(|v| !v.is_empty())
                .or_else(|| {
                    env("OTEL_EXPORTER_OTLP_ENDPOINT")
                        .filter(|v| !v.is_empty())
                        .map(|base| with_path(&base))
                }),
        }
    }
}
