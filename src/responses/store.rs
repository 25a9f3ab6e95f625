//! Where stored responses live: the [`ResponseStore`] trait and its in-process default.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;

pub use crate::store::{StoreError, StoreFuture};

/// Stored responses by id: what `previous_response_id` continues and
/// `GET /v1/responses/{id}` returns. Values are opaque bytes (a [`Conversation`](super::Conversation),
/// encoded); each entry expires after the store's time to live.
pub trait ResponseStore: Send + Sync + 'static {
    /// The entry stored under `id`.
    fn get<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<Bytes>>;
    /// Stores `value` under `id`, replacing any entry.
    fn put<'a>(&'a self, id: &'a str, value: Bytes) -> StoreFuture<'a, ()>;
    /// Removes the entry under `id`; whether there was one.
    fn delete<'a>(&'a self, id: &'a str) -> StoreFuture<'a, bool>;
}

/// The in-process store (moka): bounded by the total size of its entries, each kept for
/// the time to live; gone when the process ends.
#[derive(Clone)]
pub struct MemoryStore {
    cache: moka::sync::Cache<String, Bytes>,
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("entries", &self.cache.entry_count())
            .finish()
    }
}

impl MemoryStore {
    /// A store of at most `max_bytes` of entries, each kept for `ttl`.
    pub fn new(max_bytes: u64, ttl: Duration) -> Self {
        Self {
            cache: moka::sync::Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|id: &String, value: &Bytes| {
                    u32::try_from(id.len() + value.len()).unwrap_or(u32::MAX)
                })
                .time_to_live(ttl)
                .build(),
        }
    }
}

impl ResponseStore for MemoryStore {
    fn get<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<Bytes>> {
        let value = self.cache.get(id);
        Box::pin(std::future::ready(Ok(value)))
    }

    fn put<'a>(&'a self, id: &'a str, value: Bytes) -> StoreFuture<'a, ()> {
        self.cache.insert(id.to_owned(), value);
        Box::pin(std::future::ready(Ok(())))
    }

    fn delete<'a>(&'a self, id: &'a str) -> StoreFuture<'a, bool> {
        let removed = self.cache.remove(id).is_some();
        Box::pin(std::future::ready(Ok(removed)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn entries_are_kept_until_deleted_within_the_size_bound() {
        let store = MemoryStore::new(1024, Duration::from_secs(60));
        store.put("resp_a", Bytes::from_static(b"a")).await.unwrap();
        assert_eq!(store.get("resp_a").await.unwrap().unwrap(), "a");
        assert!(store.delete("resp_a").await.unwrap());
        assert!(!store.delete("resp_a").await.unwrap());
        assert!(store.get("resp_a").await.unwrap().is_none());
        for i in 0..100 {
            store
                .put(&format!("resp_{i}"), Bytes::from(vec![b'x'; 100]))
                .await
                .unwrap();
        }
        store.cache.run_pending_tasks();
        assert!(store.cache.weighted_size() <= 1024);
    }
}
