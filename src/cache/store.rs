//! Where cached answers are kept.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::entry::{now_ms, CachedResponse};

pub use crate::store::{StoreError, StoreFuture};

/// Keeps answers by key until they expire.
///
/// Keys arrive already scoped and hashed. Every method must give up within a bounded time:
/// on an error the cache is bypassed for that request, never waited on.
pub trait CacheStore: Send + Sync + 'static {
    /// The answer stored under `key`, if any and not expired.
    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<CachedResponse>>;
    /// Stores `entry` under `key` until it expires.
    fn put<'a>(&'a self, key: &'a str, entry: CachedResponse) -> StoreFuture<'a, ()>;
}

/// The default store: this process's memory, bounded in bytes, each entry expiring at its
/// own TTL.
#[derive(Clone)]
pub struct MemoryStore {
    cache: moka::sync::Cache<String, Arc<CachedResponse>>,
}

struct EntryExpiry;

impl moka::Expiry<String, Arc<CachedResponse>> for EntryExpiry {
    fn expire_after_create(
        &self,
        _: &String,
        entry: &Arc<CachedResponse>,
        _: std::time::Instant,
    ) -> Option<Duration> {
        Some(entry.remaining(now_ms()))
    }
}

impl MemoryStore {
    /// A store holding at most `max_bytes` of answers.
    pub fn new(max_bytes: u64) -> Self {
        Self {
            cache: moka::sync::Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|k: &String, v: &Arc<CachedResponse>| {
                    u32::try_from(k.len() + v.size() + crate::store::ENTRY_OVERHEAD)
                        .unwrap_or(u32::MAX)
                })
                .expire_after(EntryExpiry)
                .build(),
        }
    }

    /// The answer under `key`, now.
    pub fn get_now(&self, key: &str) -> Option<CachedResponse> {
        let entry = self.cache.get(key)?;
        if entry.is_expired(now_ms()) {
            self.cache.invalidate(key);
            return None;
        }
        Some((*entry).clone())
    }

    /// Stores `entry` under `key`, now.
    pub fn put_now(&self, key: &str, mut entry: CachedResponse) {
        // Its own allocation: the answer may be a slice of a larger buffer, which the entry
        // would otherwise keep alive unweighed.
        entry.completion = Bytes::copy_from_slice(&entry.completion);
        self.cache.insert(key.to_owned(), Arc::new(entry));
    }
}

impl CacheStore for MemoryStore {
    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<CachedResponse>> {
        Box::pin(std::future::ready(Ok(self.get_now(key))))
    }

    fn put<'a>(&'a self, key: &'a str, entry: CachedResponse) -> StoreFuture<'a, ()> {
        self.put_now(key, entry);
        Box::pin(std::future::ready(Ok(())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_does_not_keep_the_buffer_it_was_sliced_from() {
        // 1,000 answers of 1 KB, each a slice of a 64 KB buffer, in a 1 MiB store: what is
        // kept is the answers (within the cap), not 64 MB of buffers.
        let store = MemoryStore::new(1 << 20);
        for i in 0..1000 {
            let buffer = Bytes::from(vec![b'x'; 64 * 1024]);
            let answer = buffer.slice(..1024);
            let entry =
                CachedResponse::new(answer, "p".into(), "m".into(), Duration::from_secs(60));
            store.put_now(&format!("k{i}"), entry);
            let kept = store.get_now(&format!("k{i}")).unwrap().completion;
            assert!(!std::ptr::eq(kept.as_ptr(), buffer.as_ptr()), "a copy");
        }
        store.cache.run_pending_tasks();
        let weighed = store.cache.weighted_size();
        assert!(weighed <= 1 << 20, "{weighed}");
        // Each weighs its key, its bytes and the entry's own overhead.
        let entries = store.cache.entry_count();
        assert!(entries > 700 && entries < 850, "{entries}");
    }

    #[tokio::test]
    async fn entries_expire_at_their_own_ttl() {
        let store = MemoryStore::new(1 << 20);
        let entry =
            |ttl| CachedResponse::new(Bytes::from_static(b"{}"), "p".into(), "m".into(), ttl);
        store
            .put("short", entry(Duration::from_millis(50)))
            .await
            .unwrap();
        store
            .put("long", entry(Duration::from_secs(60)))
            .await
            .unwrap();
        assert!(store.get("short").await.unwrap().is_some());
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert!(store.get("short").await.unwrap().is_none());
        assert!(store.get("long").await.unwrap().is_some());
    }
}
