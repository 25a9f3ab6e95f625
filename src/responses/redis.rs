//! The shared store: one Redis for many gateway instances, so that any instance continues
//! a conversation another one answered.

use std::time::Duration;

use bytes::Bytes;

use super::store::{ResponseStore, StoreError, StoreFuture};
use crate::store::{Redis, RedisSettings};

/// Redis as a [`ResponseStore`]: `{prefix}{id}` holds the entry, with the time to live
/// as its expiry.
#[derive(Clone)]
pub struct RedisStore {
    conn: Redis,
    prefix: String,
    ttl: Duration,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects lazily (a Redis that is down makes commands fail within
    /// `config.timeout`, never hang).
    pub fn new(config: &RedisSettings, prefix: &str, ttl: Duration) -> Result<Self, StoreError> {
        Ok(Self {
            conn: config.connect()?,
            prefix: prefix.to_owned(),
            ttl,
        })
    }
}

impl ResponseStore for RedisStore {
    fn get<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<Bytes>> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let value: Option<Vec<u8>> = redis::cmd("GET")
                .arg(format!("{}{id}", self.prefix))
                .query_async(&mut conn)
                .await
                .map_err(StoreError::from)?;
            Ok(value.map(Bytes::from))
        })
    }

    fn put<'a>(&'a self, id: &'a str, value: Bytes) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let millis = u64::try_from(self.ttl.as_millis())
                .unwrap_or(u64::MAX)
                .max(1);
            let () = redis::cmd("SET")
                .arg(format!("{}{id}", self.prefix))
                .arg(value.as_ref())
                .arg("PX")
                .arg(millis)
                .query_async(&mut conn)
                .await
                .map_err(StoreError::from)?;
            Ok(())
        })
    }

    fn delete<'a>(&'a self, id: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let removed: i64 = redis::cmd("DEL")
                .arg(format!("{}{id}", self.prefix))
                .query_async(&mut conn)
                .await
                .map_err(StoreError::from)?;
            Ok(removed > 0)
        })
    }
}
