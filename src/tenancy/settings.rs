//! The tenancy settings (`tenancy:`).

use std::time::Duration;

use serde::Deserialize;

use super::directory::StoreDown;
use super::limits::RedisDown;
use crate::settings::{setters, SettingsError};

/// Virtual keys (created at run time through LiteLLM's `/key/*` API, stored in the
/// ledger's database) with model access, budgets and rate limits per key and per team.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct TenancySettings {
    /// Default true: on whenever a master key is configured and metering writes to a
    /// database (SQLite or PostgreSQL), where the keys are kept.
    pub enabled: bool,
    /// How often each instance writes the spend it metered and reads the keys and teams
    /// changed by any instance. Default 500 ms: a key blocked or deleted anywhere is
    /// refused everywhere within about that.
    #[serde(with = "humantime_serde")]
    pub refresh: Duration,
    /// Keys (and teams) kept in memory. Default 100,000.
    pub max_cached_keys: u64,
    /// What a key this instance has not seen gets while the database is down:
    /// `unavailable` (503, the default) or `unauthorized` (401). Known keys keep working.
    pub store_down: StoreDown,
    /// Where rate limits are counted: `memory` (this instance) or `redis` (every instance
    /// sharing `redis:`). Default: `redis` when `redis:` is configured.
    pub limits: Option<LimitsStore>,
    /// While Redis is down: `local` (count per instance, the default) or `reject` (503).
    pub redis_down: RedisDown,
    /// The rate-limit window: `rpm_limit` and `tpm_limit` count per window. Default 60 s.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// Prefix of the Redis counters. Default `llm-tower:limits:`.
    pub key_prefix: String,
}

/// Where rate limits are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LimitsStore {
    /// In this process.
    Memory,
    /// In Redis.
    Redis,
}

impl Default for TenancySettings {
    fn default() -> Self {
        Self {
            enabled: true,
            refresh: Duration::from_millis(500),
            max_cached_keys: 100_000,
            store_down: StoreDown::default(),
            limits: None,
            redis_down: RedisDown::default(),
            window: Duration::from_secs(60),
            key_prefix: "llm-tower:limits:".into(),
        }
    }
}

setters!(TenancySettings {
    /// Whether virtual keys are on.
    enabled: bool,
    /// How often the keys are re-read and the spend written.
    refresh: Duration,
    /// Keys kept in memory.
    max_cached_keys: u64,
    /// What unknown keys get while the database is down.
    store_down: StoreDown,
    /// Where rate limits are counted.
    limits: Option<LimitsStore>,
    /// What happens while Redis is down.
    redis_down: RedisDown,
    /// The rate-limit window.
    window: Duration,
    /// Prefix of the Redis counters.
    key_prefix: String,
});

impl TenancySettings {
    /// Checks the settings.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if self.refresh.is_zero() {
            return Err(SettingsError::new("refresh", "must be greater than 0"));
        }
        if self.window < Duration::from_secs(1) {
            return Err(SettingsError::new("window", "must be at least 1s"));
        }
        if self.max_cached_keys == 0 {
            return Err(SettingsError::new("max_cached_keys", "must be at least 1"));
        }
        Ok(())
    }
}
