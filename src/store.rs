//! What the shared stores (the cache's, idempotency's) have in common: the Redis server
//! that gateway instances share.

use std::time::Duration;

use serde::Deserialize;

use crate::settings::SettingsError;

/// A Redis server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RedisSettings {
    /// `redis://host:port/db`.
    pub url: String,
    /// Connect and command timeout. Default 1 s.
    #[serde(default = "default_redis_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

fn default_redis_timeout() -> Duration {
    Duration::from_secs(1)
}

impl RedisSettings {
    /// The server at `url` (`redis://host:port/db`), with a 1 s timeout.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            timeout: default_redis_timeout(),
        }
    }

    /// The same, with another connect and command timeout.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Checks the URL.
    pub fn validate(&self) -> Result<(), SettingsError> {
        ::redis::Client::open(self.url.as_str())
            .map(drop)
            .map_err(|e| SettingsError::new("url", e.to_string()))
    }
}
