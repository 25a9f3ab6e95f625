//! The shared store: one Redis for many gateway instances. Each answer is one key,
//! `{prefix}e:{key}`, holding the encoded entry with Redis's own expiry.

use bytes::Bytes;

use super::entry::{now_ms, CachedResponse};
use super::store::{CacheStore, StoreError, StoreFuture};
use crate::store::{Redis, RedisSettings};

/// Redis as a [`CacheStore`].
#[derive(Clone)]
pub struct RedisStore {
    conn: Redis,
    prefix: String,
}

impl RedisStore {
    /// Connects lazily (the first command connects; a Redis that is down makes commands
    /// fail within `config.timeout`, never hang).
    pub fn new(config: &RedisSettings, prefix: &str) -> Result<Self, StoreError> {
        Ok(Self {
            conn: config.connect()?,
            prefix: prefix.to_owned(),
        })
    }

    pub(crate) fn connection(&self) -> Redis {
        self.conn.clone()
    }

    fn key(&self, key: &str) -> String {
        format!("{}e:{key}", self.prefix)
    }
}

impl CacheStore for RedisStore {
    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<CachedResponse>> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let value: Option<Vec<u8>> = redis::cmd("GET")
                .arg(self.key(key))
                .query_async(&mut conn)
                .await
                .map_err(StoreError::from)?;
            Ok(value
                .and_then(|v| CachedResponse::decode(Bytes::from(v)))
                .filter(|e| !e.is_expired(now_ms())))
        })
    }

    fn put<'a>(&'a self, key: &'a str, entry: CachedResponse) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let ttl = entry.remaining(now_ms());
            let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
            if millis == 0 {
                return Ok(());
            }
            let mut conn = self.conn.clone();
            let () = redis::cmd("SET")
                .arg(self.key(key))
                .arg(entry.encode().as_ref())
                .arg("PX")
                .arg(millis)
                .query_async(&mut conn)
                .await
                .map_err(StoreError::from)?;
            Ok(())
        })
    }
}
