//! The shared store: one Redis for many gateway instances.
//!
//! Per key: `{prefix}{key}:lock` holds `"{token} {fingerprint}"` (SET NX PX) while an
//! instance executes the request, renewed while it runs, so that a crashed owner frees the
//! key after `lock_ttl`; `{prefix}{key}:response` holds the encoded response for the TTL.
//! Waiters on other instances poll for the response with backoff.

use std::time::Duration;

use bytes::Bytes;
use redis::Script;

use super::key::{hex, Fingerprint};
use super::store::{IdempotencyStore, Lock, StoreError, StoreFuture, StoredResponse};
use crate::store::{Redis, RedisSettings};

/// Redis as an [`IdempotencyStore`].
#[derive(Clone)]
pub struct RedisStore {
    conn: Redis,
    prefix: String,
}

/// Releases the lock only if this owner still holds it.
const UNLOCK: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0";

/// Extends the lock only if this owner still holds it.
const REFRESH: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0";

/// Stores the response, then releases the lock if still held by this owner.
const COMPLETE: &str = r"
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1";

impl RedisStore {
    /// Connects lazily (the first command connects; a Redis that is down makes commands
    /// fail within `config.timeout`, never hang).
    pub fn new(config: &RedisSettings, prefix: &str) -> Result<Self, StoreError> {
        let conn = config.connect()?;
        Ok(Self {
            conn,
            prefix: prefix.to_owned(),
        })
    }

    fn keys(&self, key: &str) -> (String, String) {
        (
            format!("{}{key}:lock", self.prefix),
            format!("{}{key}:response", self.prefix),
        )
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl IdempotencyStore for RedisStore {
    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<StoredResponse>> {
        Box::pin(async move {
            let (_, response) = self.keys(key);
            let mut conn = self.conn.clone();
            let value: Option<Vec<u8>> = redis::cmd("GET")
                .arg(&response)
                .query_async(&mut conn)
                .await
                .map_err(StoreError::from)?;
            Ok(value.and_then(|v| StoredResponse::decode(Bytes::from(v))))
        })
    }

    fn lock<'a>(
        &'a self,
        key: &'a str,
        fingerprint: &'a Fingerprint,
        ttl: Duration,
    ) -> StoreFuture<'a, Lock> {
        Box::pin(async move {
            let (lock, _) = self.keys(key);
            let token = hex(&fastrand::u128(..).to_be_bytes());
            let value = format!("{token} {}", hex(fingerprint));
            let mut conn = self.conn.clone();
            let set: Option<String> = redis::cmd("SET")
                .arg(&lock)
                .arg(&value)
                .arg("NX")
                .arg("PX")
                .arg(millis(ttl))
                .query_async(&mut conn)
                .await
                .map_err(StoreError::from)?;
            if set.is_some() {
                return Ok(Lock::Acquired(value));
            }
            let holder: Option<String> = redis::cmd("GET")
                .arg(&lock)
                .query_async(&mut conn)
                .await
                .map_err(StoreError::from)?;
            let fingerprint = holder
                .as_deref()
                .and_then(|h| h.split_once(' '))
                .and_then(|(_, fp)| parse_hex(fp));
            Ok(Lock::Held(fingerprint))
        })
    }

    fn refresh<'a>(&'a self, key: &'a str, token: &'a str, ttl: Duration) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let (lock, _) = self.keys(key);
            let mut conn = self.conn.clone();
            let renewed: i64 = Script::new(REFRESH)
                .key(&lock)
                .arg(token)
                .arg(millis(ttl))
                .invoke_async(&mut conn)
                .await
                .map_err(StoreError::from)?;
            Ok(renewed == 1)
        })
    }

    fn complete<'a>(
        &'a self,
        key: &'a str,
        token: &'a str,
        response: Option<StoredResponse>,
        ttl: Duration,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let (lock, stored) = self.keys(key);
            let mut conn = self.conn.clone();
            match response {
                Some(response) => {
                    let _: i64 = Script::new(COMPLETE)
                        .key(&lock)
                        .key(&stored)
                        .arg(token)
                        .arg(response.encode().as_ref())
                        .arg(millis(ttl))
                        .invoke_async(&mut conn)
                        .await
                        .map_err(StoreError::from)?;
                }
                None => {
                    let _: i64 = Script::new(UNLOCK)
                        .key(&lock)
                        .arg(token)
                        .invoke_async(&mut conn)
                        .await
                        .map_err(StoreError::from)?;
                }
            }
            Ok(())
        })
    }
}

fn parse_hex(text: &str) -> Option<Fingerprint> {
    let bytes = text.as_bytes();
    if bytes.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, pair) in bytes.chunks(2).enumerate() {
        let digit = |c: u8| (c as char).to_digit(16);
        out[i] = (digit(pair[0])? * 16 + digit(pair[1])?) as u8;
    }
    Some(out)
}
