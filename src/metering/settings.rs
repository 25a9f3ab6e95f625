//! The metering settings (`metering:`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::price::Price;
use crate::settings::{setters, SettingsError};

/// Usage metering: a record per request (tokens, cost, latency), written off the request
/// path in batches to a ledger.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct MeteringSettings {
    /// Default true.
    pub enabled: bool,
    /// `sqlite` (the default), `postgres` or `none` (Prometheus only).
    pub sink: SinkKind,
    /// The SQLite ledger file (`:memory:` for none on disk). Default `llm-tower-usage.db`.
    pub sqlite_path: PathBuf,
    /// `postgres://user@host:port/db` for `sink: postgres`.
    pub postgres_url: Option<String>,
    /// Records waiting for the writer; beyond this they are dropped (and counted), so
    /// that requests never wait. Default 10000.
    pub queue: usize,
    /// Records written per batch. Default 256.
    pub batch: usize,
    /// A price table overriding the built-in one: YAML `{model: {input, output,
    /// cached_input}}` in USD per million tokens, or LiteLLM's
    /// `model_prices_and_context_window.json`.
    pub prices: Option<PathBuf>,
    /// Prices by model name or `provider/model` (USD per million tokens), over the
    /// built-in table and `prices` (a LiteLLM config's deployment prices land here).
    pub model_prices: BTreeMap<String, Price>,
}

impl Default for MeteringSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            sink: SinkKind::Sqlite,
            sqlite_path: PathBuf::from("llm-tower-usage.db"),
            postgres_url: None,
            queue: 10_000,
            batch: 256,
            prices: None,
            model_prices: BTreeMap::new(),
        }
    }
}

/// Where usage records go.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SinkKind {
    /// A SQLite file: the embedded default.
    #[default]
    Sqlite,
    /// PostgreSQL: one ledger for many gateway instances.
    Postgres,
    /// No ledger: Prometheus only.
    None,
}

setters!(MeteringSettings {
    /// Whether requests are metered.
    enabled: bool,
    /// Where the records go.
    sink: SinkKind,
    /// The SQLite ledger file.
    sqlite_path: PathBuf,
    /// The PostgreSQL ledger's URL.
    postgres_url: Option<String>,
    /// Records waiting for the writer.
    queue: usize,
    /// Records written per batch.
    batch: usize,
    /// A price table overriding the built-in one.
    prices: Option<PathBuf>,
});

impl MeteringSettings {
    /// Checks the settings.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if self.sink == SinkKind::Postgres && self.postgres_url.is_none() {
            return Err(SettingsError::new(
                "postgres_url",
                "required with `sink: postgres`",
            ));
        }
        if self.queue == 0 || self.batch == 0 {
            return Err(SettingsError::new(
                "queue",
                "queue and batch must be at least 1",
            ));
        }
        Ok(())
    }
}
