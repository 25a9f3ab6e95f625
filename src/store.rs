//! What the stores (the cache's, idempotency's, the Responses API's) have in common: their
//! error and future types, and the Redis server that gateway instances share.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use ::redis::aio::{ConnectionLike, ConnectionManager};
use ::redis::{Cmd, Pipeline, RedisError, RedisFuture, Value};
use serde::Deserialize;

use crate::settings::SettingsError;

/// What an in-memory store's entry costs beyond its key and value bytes (moka's node,
/// the `Arc`, the string and buffer headers, allocator rounding), counted in its weight so
/// that `max_memory_bytes` bounds the process's memory, not only the payloads.
pub(crate) const ENTRY_OVERHEAD: usize = 256;

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
    /// After a command timed out or the connection failed, how long every store skips
    /// Redis at once (then one command tries again). Default 5 s.
    #[serde(default = "default_redis_cooldown", with = "humantime_serde")]
    pub cooldown: Duration,
    /// Shared by every store built from these settings (and their clones), so one
    /// request waits for a hung Redis once, not once per store.
    #[serde(skip)]
    breaker: Arc<Breaker>,
}

/// Equal settings name the same server the same way (the shared breaker is state, not a
/// setting).
impl PartialEq for RedisSettings {
    fn eq(&self, other: &Self) -> bool {
        (&self.url, self.timeout, self.cooldown) == (&other.url, other.timeout, other.cooldown)
    }
}

fn default_redis_timeout() -> Duration {
    Duration::from_secs(1)
}

fn default_redis_cooldown() -> Duration {
    Duration::from_secs(5)
}

impl RedisSettings {
    /// The server at `url` (`redis://host:port/db`), with a 1 s timeout.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            timeout: default_redis_timeout(),
            cooldown: default_redis_cooldown(),
            breaker: Arc::default(),
        }
    }

    /// The same, with another connect and command timeout.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The same, with another cooldown after a failure.
    #[must_use]
    pub fn cooldown(mut self, cooldown: Duration) -> Self {
        self.cooldown = cooldown;
        self
    }

    /// A connection that connects lazily: the first command connects, and a Redis that is
    /// down makes commands fail within `timeout`, never hang; then, for `cooldown`, at once.
    pub(crate) fn connect(&self) -> Result<Redis, StoreError> {
        let client = ::redis::Client::open(self.url.as_str())?;
        let manager = ::redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            // One attempt: a retry would double what a request waits for a hung Redis.
            .set_number_of_retries(0);
        Ok(Redis {
            conn: client.get_connection_manager_lazy(manager)?,
            breaker: Arc::clone(&self.breaker),
            cooldown: self.cooldown,
        })
    }

    /// Checks the URL.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if self.timeout.is_zero() {
            return Err(SettingsError::new("timeout", "must be greater than 0"));
        }
        ::redis::Client::open(self.url.as_str())
            .map(drop)
            .map_err(|e| SettingsError::new("url", e.to_string()))
    }
}

/// A Redis connection behind the circuit breaker of its settings: what the stores send
/// their commands to.
#[derive(Clone)]
pub(crate) struct Redis {
    conn: ConnectionManager,
    breaker: Arc<Breaker>,
    cooldown: Duration,
}

/// Open (refusing at once) from a connection failure or timeout until the cooldown is
/// over; then one command is let through, and its outcome closes or reopens it.
#[derive(Debug, Default)]
struct Breaker {
    /// Milliseconds since [`EPOCH`] until which commands are refused; 0: closed.
    open_until: AtomicU64,
    probing: AtomicBool,
    /// When the last warning was logged (ms since [`EPOCH`]).
    logged: AtomicU64,
}

static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

fn now_ms() -> u64 {
    // Never 0, which means "closed".
    u64::try_from(EPOCH.elapsed().as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

impl Breaker {
    /// Whether a command may go to Redis now.
    fn admits(&self) -> bool {
        let until = self.open_until.load(Ordering::Acquire);
        if until == 0 {
            return true;
        }
        if now_ms() < until {
            return false;
        }
        // Cooled down: one probe at a time.
        self.probing
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    fn observe<T>(&self, result: &Result<T, RedisError>, cooldown: Duration) {
        match result {
            Err(e)
                if e.is_timeout()
                    || e.is_io_error()
                    || e.is_connection_dropped()
                    || e.is_connection_refusal() =>
            {
                let now = now_ms();
                let cooldown = u64::try_from(cooldown.as_millis()).unwrap_or(u64::MAX);
                let was = self
                    .open_until
                    .swap(now.saturating_add(cooldown), Ordering::AcqRel);
                self.probing.store(false, Ordering::Release);
                if was == 0 {
                    metrics::counter!("llm_tower_redis_circuit_opened_total").increment(1);
                }
                let logged = self.logged.load(Ordering::Acquire);
                if now.saturating_sub(logged) >= 10_000
                    && self
                        .logged
                        .compare_exchange(logged, now, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok()
                {
                    tracing::warn!(error = %e, ?cooldown, "redis unavailable: the stores skip it for the cooldown");
                }
            }
            _ => {
                if self.open_until.load(Ordering::Acquire) != 0 {
                    self.open_until.store(0, Ordering::Release);
                    self.probing.store(false, Ordering::Release);
                    tracing::info!("redis is back");
                }
            }
        }
    }
}

fn refused() -> RedisError {
    metrics::counter!("llm_tower_redis_refused_total").increment(1);
    RedisError::from((
        ::redis::ErrorKind::Io,
        "unavailable: skipped during the cooldown after a failure",
    ))
}

impl ConnectionLike for Redis {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        if !self.breaker.admits() {
            return Box::pin(std::future::ready(Err(refused())));
        }
        Box::pin(async move {
            let result = self.conn.req_packed_command(cmd).await;
            self.breaker.observe(&result, self.cooldown);
            result
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        if !self.breaker.admits() {
            return Box::pin(std::future::ready(Err(refused())));
        }
        Box::pin(async move {
            let result = self.conn.req_packed_commands(pipeline, offset, count).await;
            self.breaker.observe(&result, self.cooldown);
            result
        })
    }

    fn get_db(&self) -> i64 {
        self.conn.get_db()
    }
}

/// A PostgreSQL database that connects lazily, creates its schema on connecting, and
/// connects again after a failure: a database that is down costs only what is tried
/// meanwhile.
pub(crate) struct Postgres {
    url: String,
    schema: String,
    client: tokio::sync::Mutex<Option<tokio_postgres::Client>>,
}

impl Postgres {
    const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

    /// The database at `url`, whose tables `schema` creates (`IF NOT EXISTS`); nothing is
    /// connected until the first use.
    pub(crate) fn new(url: &str, schema: String) -> Result<Self, StoreError> {
        url.parse::<tokio_postgres::Config>()
            .map_err(|e| StoreError(format!("postgres: {e}")))?;
        Ok(Self {
            url: url.to_owned(),
            schema,
            client: tokio::sync::Mutex::new(None),
        })
    }

    /// The connected client, connecting (and creating the schema) if needed. After an
    /// error, [`Postgres::reset`] the guard so that the next use connects again.
    pub(crate) async fn client(
        &self,
    ) -> Result<tokio::sync::MutexGuard<'_, Option<tokio_postgres::Client>>, StoreError> {
        let err = |e: tokio_postgres::Error| StoreError(format!("postgres: {e}"));
        let mut guard = self.client.lock().await;
        if guard.as_ref().is_none_or(tokio_postgres::Client::is_closed) {
            let (client, connection) = tokio::time::timeout(
                Self::CONNECT_TIMEOUT,
                tokio_postgres::connect(&self.url, tokio_postgres::NoTls),
            )
            .await
            .map_err(|_| StoreError("postgres: connect timed out".into()))?
            .map_err(err)?;
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::warn!(error = %e, "postgres connection closed");
                }
            });
            client.batch_execute(&self.schema).await.map_err(err)?;
            *guard = Some(client);
        }
        Ok(guard)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_failure_opens_the_breaker_for_the_cooldown_then_one_probe_goes() {
        let breaker = Breaker::default();
        assert!(breaker.admits());
        let timeout: Result<(), RedisError> = Err(RedisError::from(std::io::Error::from(
            std::io::ErrorKind::TimedOut,
        )));
        breaker.observe(&timeout, Duration::from_millis(50));
        assert!(!breaker.admits(), "open");
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert!(breaker.admits(), "the probe");
        assert!(!breaker.admits(), "one probe at a time");
        breaker.observe(&Ok(()), Duration::from_millis(50));
        assert!(breaker.admits() && breaker.admits(), "closed again");
        // A command the server refused (not a connection failure) leaves it closed.
        let script: Result<(), RedisError> =
            Err(RedisError::from((::redis::ErrorKind::Client, "bad script")));
        breaker.observe(&script, Duration::from_millis(50));
        assert!(breaker.admits());
    }
}
