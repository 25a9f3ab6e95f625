//! `telemetry:` — where traces go.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::settings::SettingsError;

/// Traces over OTLP (HTTP/protobuf or gRPC). Off unless an endpoint is set here or in
/// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` / `OTEL_EXPORTER_OTLP_ENDPOINT`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct TelemetrySettings {
    /// The collector's base URL (`http://127.0.0.1:4318`; over HTTP `/v1/traces` is added
    /// unless the URL ends with it; gRPC takes it as it is, `http://127.0.0.1:4317`).
    /// Default: the standard `OTEL_EXPORTER_OTLP_*` variables, else off.
    pub otlp_endpoint: Option<String>,
    /// `http/protobuf` or `grpc`. Default `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL` /
    /// `OTEL_EXPORTER_OTLP_PROTOCOL`, else `http/protobuf`.
    pub protocol: Option<OtlpProtocol>,
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

/// How spans reach the collector.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// OTLP/HTTP with protobuf bodies (port 4318).
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
    /// OTLP/gRPC (port 4317).
    #[serde(rename = "grpc")]
    Grpc,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        Self {
            otlp_endpoint: None,
            protocol: None,
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

    /// The protocol: this file's, or the standard variables' (through `env`).
    pub(crate) fn protocol(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<OtlpProtocol, SettingsError> {
        if let Some(protocol) = self.protocol {
            return Ok(protocol);
        }
        let Some((name, value)) = [
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ]
        .into_iter()
        .find_map(|name| env(name).filter(|v| !v.is_empty()).map(|v| (name, v))) else {
            return Ok(OtlpProtocol::HttpProtobuf);
        };
        match value.as_str() {
            "http/protobuf" => Ok(OtlpProtocol::HttpProtobuf),
            "grpc" => Ok(OtlpProtocol::Grpc),
            other => Err(SettingsError::new(
                "protocol",
                format!("{name} is `{other}`: use `http/protobuf` or `grpc`"),
            )),
        }
    }

    /// The traces URL: this file's endpoint, or the standard variables' (through `env`).
    pub(crate) fn traces_url(&self, env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
        let grpc = self.protocol(env).is_ok_and(|p| p == OtlpProtocol::Grpc);
        let with_path = |base: &str| {
            let base = base.trim_end_matches('/');
            // gRPC names the service in the path itself.
            if grpc || base.ends_with("/v1/traces") {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn the_protocol_and_the_url_follow_the_file_then_the_standard_variables() {
        let none = TelemetrySettings::default();
        assert_eq!(none.traces_url(&env(&[])), None);
        let base = [("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318/")];
        assert_eq!(
            none.traces_url(&env(&base)).unwrap(),
            "http://c:4318/v1/traces"
        );
        assert_eq!(
            none.protocol(&env(&base)).unwrap(),
            OtlpProtocol::HttpProtobuf
        );
        let grpc = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ];
        assert_eq!(none.protocol(&env(&grpc)).unwrap(), OtlpProtocol::Grpc);
        assert_eq!(none.traces_url(&env(&grpc)).unwrap(), "http://c:4317");
        // The traces variable wins over the general one, the file over both.
        let both = [
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf"),
        ];
        assert_eq!(
            none.protocol(&env(&both)).unwrap(),
            OtlpProtocol::HttpProtobuf
        );
        let file = TelemetrySettings {
            otlp_endpoint: Some("http://f:4317".into()),
            protocol: Some(OtlpProtocol::Grpc),
            ..TelemetrySettings::default()
        };
        assert_eq!(file.protocol(&env(&both)).unwrap(), OtlpProtocol::Grpc);
        assert_eq!(file.traces_url(&env(&base)).unwrap(), "http://f:4317");
        let json = [("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")];
        let err = none.protocol(&env(&json)).unwrap_err().to_string();
        assert!(
            err.contains("protocol") && err.contains("http/json"),
            "{err}"
        );
    }
}
