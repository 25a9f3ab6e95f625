//! What the stores (the cache's, idempotency's, the Responses API's) have in common: their
//! error and future types, and the Redis server that gateway instances share.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde::Deserialize;

use crate::settings::SettingsError;

/// The future a store returns.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// A store that could not be reached or answered nonsense.
#[derive(Debug, Clone)]
pub struct StoreError(pub String);

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StoreError {}

impl From<::redis::RedisError> for StoreError {
    fn from(e: ::redis::RedisError) -> Self {
        Self(format!("redis: {e}"))
    }
}

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

    /// A connection that connects lazily: the first command connects, and a Redis that is
    /// down makes commands fail within `timeout`, never hang.
    pub(crate) fn connect(&self) -> Result<::redis::aio::ConnectionManager, StoreError> {
        let client = ::redis::Client::open(self.url.as_str())?;
        let manager = ::redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(1);
        Ok(client.get_connection_manager_lazy(manager)?)
    }

    /// Checks the URL.
    pub fn validate(&self) -> Result<(), SettingsError> {
        ::redis::Client::open(self.url.as_str())
            .map(drop)
            .map_err(|e| SettingsError::new("url", e.to_string()))
    }
}
