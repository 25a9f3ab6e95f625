//! Where completed responses are kept, and the lock that makes one instance the owner of a
//! key while it executes.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::{HeaderName, HeaderValue, StatusCode};
use tokio::time::Instant;

use super::key::Fingerprint;

pub use crate::store::{StoreError, StoreFuture};

/// A response kept for replay: byte for byte what the first client received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    /// The fingerprint of the request that produced it.
    pub fingerprint: Fingerprint,
    /// Its status.
    pub status: StatusCode,
    /// The headers worth replaying (content type, which provider and model answered…).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The whole body (for a stream, the exact SSE bytes).
    pub body: Bytes,
}

const MAGIC: &[u8; 4] = b"LTI2";

impl StoredResponse {
    /// A compact binary form for shared stores.
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.size() + 64);
        out.put_slice(MAGIC);
        out.put_slice(&self.fingerprint);
        out.put_u16(self.status.as_u16());
        out.put_u16(self.headers.len() as u16);
        for (name, value) in &self.headers {
            out.put_u16(name.as_str().len() as u16);
            out.put_slice(name.as_str().as_bytes());
            out.put_u32(value.len() as u32);
            out.put_slice(value.as_bytes());
        }
        out.put_slice(&self.body);
        out.freeze()
    }

    /// Reads [`encode`](Self::encode)'s form; `None` for anything else.
    pub fn decode(mut data: Bytes) -> Option<Self> {
        fn take(data: &mut Bytes, n: usize) -> Option<Bytes> {
            (data.remaining() >= n).then(|| data.split_to(n))
        }
        if take(&mut data, 4)?.as_ref() != MAGIC {
            return None;
        }
        let fingerprint = take(&mut data, 16)?.as_ref().try_into().ok()?;
        let status = StatusCode::from_u16(u16::from_be_bytes(
            take(&mut data, 2)?.as_ref().try_into().ok()?,
        ))
        .ok()?;
        let count = u16::from_be_bytes(take(&mut data, 2)?.as_ref().try_into().ok()?);
        let mut headers = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            let len = u16::from_be_bytes(take(&mut data, 2)?.as_ref().try_into().ok()?);
            let name = HeaderName::from_bytes(&take(&mut data, usize::from(len))?).ok()?;
            let len = u32::from_be_bytes(take(&mut data, 4)?.as_ref().try_into().ok()?);
            let value = HeaderValue::from_maybe_shared(take(&mut data, len as usize)?).ok()?;
            headers.push((name, value));
        }
        Some(Self {
            fingerprint,
            status,
            headers,
            body: data,
        })
    }

    /// Roughly the memory it takes.
    pub fn size(&self) -> usize {
        self.body.len()
            + self
                .headers
                .iter()
                .map(|(n, v)| n.as_str().len() + v.len() + 16)
                .sum::<usize>()
            + 64
    }
}

/// The outcome of trying to own a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lock {
    /// This instance owns the key: execute, then [`complete`](IdempotencyStore::complete)
    /// with this token.
    Acquired(String),
    /// Another instance is executing it, for a request with this fingerprint (if known).
    Held(Option<Fingerprint>),
}

/// Keeps completed responses by key, and locks keys while they execute.
///
/// Keys arrive already scoped and hashed. Every method must give up within a bounded time
/// (the caller fails open or closed on an error; it never waits on a dead store).
pub trait IdempotencyStore: Send + Sync + 'static {
    /// The stored response of `key`, if any and not expired.
    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<StoredResponse>>;
    /// Tries to own `key` for `ttl`.
    fn lock<'a>(
        &'a self,
        key: &'a str,
        fingerprint: &'a Fingerprint,
        ttl: Duration,
    ) -> StoreFuture<'a, Lock>;
    /// Extends an owned lock; `false` when it was lost.
    fn refresh<'a>(&'a self, key: &'a str, token: &'a str, ttl: Duration) -> StoreFuture<'a, bool>;
    /// Stores `response` (when given) for `ttl` and releases the lock.
    fn complete<'a>(
        &'a self,
        key: &'a str,
        token: &'a str,
        response: Option<StoredResponse>,
        ttl: Duration,
    ) -> StoreFuture<'a, ()>;
}

/// The default store: this process's memory, bounded in bytes. Locks are not needed here:
/// duplicates within one process are coalesced before the store is asked.
#[derive(Clone)]
pub struct MemoryStore {
    cache: moka::sync::Cache<String, Arc<(Instant, StoredResponse)>>,
}

impl MemoryStore {
    /// A store holding at most `max_bytes` of responses, each for at most `ttl`.
    pub fn new(max_bytes: u64, ttl: Duration) -> Self {
        Self {
            cache: moka::sync::Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|k: &String, v: &Arc<(Instant, StoredResponse)>| {
                    u32::try_from(k.len() + v.1.size() + crate::store::ENTRY_OVERHEAD)
                        .unwrap_or(u32::MAX)
                })
                // moka's own clock is the backstop; the expiry checked on read follows tokio's
                // clock, so paused-time tests see entries expire.
                .time_to_live(ttl)
                .build(),
        }
    }
}

impl IdempotencyStore for MemoryStore {
    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<StoredResponse>> {
        let found = self.cache.get(key).and_then(|entry| {
            if entry.0 > Instant::now() {
                Some(entry.1.clone())
            } else {
                self.cache.invalidate(key);
                None
            }
        });
        Box::pin(std::future::ready(Ok(found)))
    }

    fn lock<'a>(&'a self, _: &'a str, _: &'a Fingerprint, _: Duration) -> StoreFuture<'a, Lock> {
        Box::pin(std::future::ready(Ok(Lock::Acquired(String::new()))))
    }

    fn refresh<'a>(&'a self, _: &'a str, _: &'a str, _: Duration) -> StoreFuture<'a, bool> {
        Box::pin(std::future::ready(Ok(true)))
    }

    fn complete<'a>(
        &'a self,
        key: &'a str,
        _: &'a str,
        response: Option<StoredResponse>,
        ttl: Duration,
    ) -> StoreFuture<'a, ()> {
        if let Some(mut response) = response {
            // Its own allocations: the body and header values may be slices of larger
            // buffers, which the entry would otherwise keep alive unweighed.
            response.body = Bytes::copy_from_slice(&response.body);
            for (_, value) in &mut response.headers {
                if let Ok(own) = HeaderValue::from_bytes(value.as_bytes()) {
                    *value = own;
                }
            }
            self.cache
                .insert(key.to_owned(), Arc::new((Instant::now() + ttl, response)));
        }
        Box::pin(std::future::ready(Ok(())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> StoredResponse {
        StoredResponse {
            fingerprint: [7; 16],
            status: StatusCode::OK,
            headers: vec![(
                HeaderName::from_static("content-type"),
                HeaderValue::from_static("text/event-stream"),
            )],
            body: Bytes::from_static(b"data: {}\n\ndata: [DONE]\n\n"),
        }
    }

    #[test]
    fn encoding_round_trips_and_rejects_garbage() {
        let stored = sample();
        assert_eq!(
            StoredResponse::decode(stored.encode()),
            Some(stored.clone())
        );
        assert_eq!(StoredResponse::decode(Bytes::from_static(b"nope")), None);
        let mut cut = stored.encode();
        cut.truncate(24);
        assert_eq!(StoredResponse::decode(cut), None);
    }

    #[tokio::test(start_paused = true)]
    async fn memory_entries_expire_after_their_ttl() {
        let store = MemoryStore::new(1 << 20, Duration::from_secs(3600));
        store
            .complete("k", "", Some(sample()), Duration::from_secs(60))
            .await
            .unwrap();
        assert!(store.get("k").await.unwrap().is_some());
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(store.get("k").await.unwrap().is_none());
    }
}
