//! The idempotency settings (`idempotency:`).

use std::time::Duration;

use serde::Deserialize;

use crate::settings::{setters, SettingsError};

/// `Idempotency-Key` handling: a repeated request with the same key is answered from the
/// first one's response instead of reaching an upstream again.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct IdempotencySettings {
    /// Default true; requests without the header are never touched.
    pub enabled: bool,
    /// `memory` (this process; the default) or `redis` (shared by instances; needs `redis`).
    pub store: IdempotencyStoreKind,
    /// How long a response is kept for replay. Default 24 h.
    #[serde(with = "humantime_serde")]
    pub ttl: Duration,
    /// Expiry of the lock an instance holds while it executes a key, renewed while the
    /// request runs; after a crash, the key is free again this long later. Default 30 s.
    #[serde(with = "humantime_serde")]
    pub lock_ttl: Duration,
    /// A duplicate of a request still in flight: `wait` for its response (default) or
    /// `reject` with 409.
    pub in_flight: InFlightPolicy,
    /// Longest a duplicate waits for a request in flight on another instance before 409.
    /// Default 10 min.
    #[serde(with = "humantime_serde")]
    pub wait_timeout: Duration,
    /// Responses larger than this are not stored. Default 4 MiB.
    pub max_response_bytes: usize,
    /// Memory store: total size of stored responses. Default 256 MiB.
    pub max_memory_bytes: u64,
    /// When the store cannot be reached: `open` (serve without idempotency; the default) or
    /// `closed` (answer 503).
    pub on_store_error: FailMode,
    /// Prefix of the Redis keys.
    pub key_prefix: String,
}

impl Default for IdempotencySettings {
    fn default() -> Self {
        Self {
            enabled: true,
            store: IdempotencyStoreKind::Memory,
            ttl: Duration::from_secs(24 * 3600),
            lock_ttl: Duration::from_secs(30),
            in_flight: InFlightPolicy::Wait,
            wait_timeout: Duration::from_secs(600),
            max_response_bytes: 4 * 1024 * 1024,
            max_memory_bytes: 256 * 1024 * 1024,
            on_store_error: FailMode::Open,
            key_prefix: "llm-tower:idempotency:".to_owned(),
        }
    }
}

/// Where idempotent responses are kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdempotencyStoreKind {
    /// In this process (moka).
    #[default]
    Memory,
    /// In the Redis server of `redis.url`, shared by every instance using it.
    Redis,
}

/// What a duplicate of a request still in flight gets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InFlightPolicy {
    /// The same response, once it starts (streams are joined live).
    #[default]
    Wait,
    /// 409 Conflict, as the IETF draft describes.
    Reject,
}

/// What to do when a shared store is unreachable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailMode {
    /// Serve the request without the feature (logged and counted).
    #[default]
    Open,
    /// Refuse the request with 503.
    Closed,
}

setters!(IdempotencySettings {
    /// Whether `Idempotency-Key` is honoured.
    enabled: bool,
    /// Where responses are kept.
    store: IdempotencyStoreKind,
    /// How long a response is kept for replay.
    ttl: Duration,
    /// Expiry of an instance's lock on a key.
    lock_ttl: Duration,
    /// What a duplicate of a request in flight gets.
    in_flight: InFlightPolicy,
    /// Longest wait for a request in flight on another instance.
    wait_timeout: Duration,
    /// Responses larger than this are not stored.
    max_response_bytes: usize,
    /// Memory store: total size of stored responses.
    max_memory_bytes: u64,
    /// When the store cannot be reached.
    on_store_error: FailMode,
    /// Prefix of the Redis keys.
    key_prefix: String,
});

impl IdempotencySettings {
    /// Checks the settings.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if self.lock_ttl.is_zero() {
            return Err(SettingsError::new("lock_ttl", "must be greater than 0"));
        }
        Ok(())
    }
}
