//! Keeps the semantic index of every gateway instance in step through a Redis stream.
//!
//! Each answer indexed by one instance is appended to `{prefix}semantic` (`XADD … MAXLEN ~`)
//! with its partition, key, text, vector and expiry. Every instance reads the stream from
//! the start when it comes up (so a new instance knows the live entries), then polls it
//! every 100 ms for new ones. The answers themselves are in the Redis store; an index entry
//! whose answer is gone is dropped on first use.

use crate::store::Redis;
use std::sync::{Arc, Weak};
use std::time::Duration;

use redis::Value as RedisValue;

use super::SemanticCache;
use crate::cache::entry::now_ms;

/// The writer side, and what the reader needs to recognise its own entries.
#[derive(Clone)]
pub struct IndexSync {
    conn: Redis,
    stream: String,
    origin: String,
    max_len: usize,
}

impl IndexSync {
    /// Syncs through the stream `{prefix}semantic`, trimmed to about `max_len` entries.
    pub(crate) fn new(conn: Redis, prefix: &str, max_len: usize) -> Self {
        Self {
            conn,
            stream: format!("{prefix}semantic"),
            origin: format!("{:016x}", fastrand::u64(..)),
            max_len: max_len.max(1),
        }
    }

    /// Tells the other instances about an indexed answer.
    pub async fn publish(
        &self,
        partition: &str,
        key: &str,
        text: &str,
        vector: &[f32],
        expires_ms: u64,
    ) -> Result<(), redis::RedisError> {
        let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
        let mut conn = self.conn.clone();
        let _: RedisValue = redis::cmd("XADD")
            .arg(&self.stream)
            .arg("MAXLEN")
            .arg("~")
            .arg(self.max_len)
            .arg("*")
            .arg("o")
            .arg(&self.origin)
            .arg("p")
            .arg(partition)
            .arg("k")
            .arg(key)
            .arg("t")
            .arg(text)
            .arg("x")
            .arg(expires_ms)
            .arg("v")
            .arg(bytes)
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    /// Follows the stream into `cache`'s index until `cache` is dropped.
    pub fn follow(
        &self,
        cache: Weak<SemanticCache>,
        on_error: impl Fn(&redis::RedisError) + Send + 'static,
    ) {
        let this = self.clone();
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!("cache: no runtime to follow the semantic index stream on");
            return;
        };
        runtime.spawn(async move {
            let mut last = "0-0".to_owned();
            loop {
                let Some(cache) = cache.upgrade() else { return };
                let pause = match this.read(&cache, &mut last).await {
                    Ok(0) => Duration::from_millis(100),
                    Ok(_) => Duration::ZERO,
                    Err(err) => {
                        on_error(&err);
                        Duration::from_secs(1)
                    }
                };
                drop(cache);
                tokio::time::sleep(pause).await;
            }
        });
    }

    /// Reads what follows `last` into the index; how many entries were read.
    async fn read(
        &self,
        cache: &Arc<SemanticCache>,
        last: &mut String,
    ) -> Result<usize, redis::RedisError> {
        let mut conn = self.conn.clone();
        let reply: RedisValue = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(1000)
            .arg("STREAMS")
            .arg(&self.stream)
            .arg(last.as_str())
            .query_async(&mut conn)
            .await?;
        let entries = stream_entries(reply);
        let now = now_ms();
        let count = entries.len();
        for (id, fields) in entries {
            *last = id;
            let field = |name: &[u8]| {
                fields
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.as_slice())
            };
            if field(b"o") == Some(self.origin.as_bytes()) {
                continue;
            }
            let parsed = (|| {
                let text = |name| std::str::from_utf8(field(name)?).ok();
                let expires: u64 = text(b"x")?.parse().ok()?;
                let vector: Vec<f32> = field(b"v")?
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
                Some((text(b"p")?, text(b"k")?, text(b"t")?, vector, expires))
            })();
            if let Some((partition, key, text, vector, expires)) = parsed {
                if expires > now {
                    cache.index().insert(partition, key, text, vector, expires);
                }
            }
        }
        Ok(count)
    }
}

type Fields = Vec<(Vec<u8>, Vec<u8>)>;

/// `XREAD`'s reply (`[[stream, [[id, [field, value, …]], …]]]`, or a RESP3 map) as
/// `(id, fields)` pairs.
fn stream_entries(reply: RedisValue) -> Vec<(String, Fields)> {
    let streams: Vec<RedisValue> = match reply {
        RedisValue::Array(streams) => streams
            .into_iter()
            .filter_map(|s| match s {
                RedisValue::Array(mut pair) if pair.len() == 2 => pair.pop(),
                _ => None,
            })
            .collect(),
        RedisValue::Map(pairs) => pairs.into_iter().map(|(_, v)| v).collect(),
        _ => Vec::new(),
    };
    let mut out = Vec::new();
    for entries in streams {
        let RedisValue::Array(entries) = entries else {
            continue;
        };
        for entry in entries {
            let RedisValue::Array(mut parts) = entry else {
                continue;
            };
            if parts.len() != 2 {
                continue;
            }
            let (Some(RedisValue::Array(kv)), Some(id)) = (parts.pop(), parts.pop()) else {
                continue;
            };
            let Some(id) = bytes(id).and_then(|b| String::from_utf8(b).ok()) else {
                continue;
            };
            let mut fields = Vec::new();
            let mut kv = kv.into_iter();
            while let (Some(k), Some(v)) = (kv.next(), kv.next()) {
                if let (Some(k), Some(v)) = (bytes(k), bytes(v)) {
                    fields.push((k, v));
                }
            }
            out.push((id, fields));
        }
    }
    out
}

fn bytes(value: RedisValue) -> Option<Vec<u8>> {
    match value {
        RedisValue::BulkString(b) => Some(b),
        RedisValue::SimpleString(s) => Some(s.into_bytes()),
        _ => None,
    }
}
