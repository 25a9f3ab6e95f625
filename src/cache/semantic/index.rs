//! The in-memory index: per partition, the last user messages of cached answers with their
//! vectors, searched by exact dot products.
//!
//! A scan of one partition costs `entries × dims` multiply-adds: about 0.07 ms per 1,000
//! entries of 512 dimensions on one core (see `benches/cache.rs`). That is fine up to tens
//! of thousands of entries per partition; past ~50,000 an approximate index would be
//! needed, hence `max_entries_per_partition`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, RwLock};

use super::embed::normalize;
use super::guard::{guard, normalize as normalize_text};
use crate::cache::entry::now_ms;

/// How many of the nearest entries above the threshold the guard examines per lookup.
const MAX_GUARDED: usize = 4;

/// A candidate answer for a request.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// The exact key of the cached answer.
    pub key: Arc<str>,
    /// Cosine similarity (1.0 for a normalized exact match).
    pub similarity: f32,
}

struct Meta {
    key: Arc<str>,
    text: Box<str>,
    normalized: Box<str>,
    expires_ms: u64,
}

#[derive(Default)]
struct Partition {
    dims: usize,
    metas: VecDeque<Meta>,
    /// `dims` floats per entry, in the order of `metas`.
    vectors: VecDeque<f32>,
}

impl Partition {
    fn remove_at(&mut self, i: usize) {
        self.metas.remove(i);
        self.vectors.drain(i * self.dims..(i + 1) * self.dims);
    }

    /// The vector of entry `i` (copied only when it straddles the deque's two halves).
    fn vector_at(&self, i: usize) -> std::borrow::Cow<'_, [f32]> {
        let (front, back) = self.vectors.as_slices();
        let (start, end) = (i * self.dims, (i + 1) * self.dims);
        if end <= front.len() {
            std::borrow::Cow::Borrowed(&front[start..end])
        } else if start >= front.len() {
            std::borrow::Cow::Borrowed(&back[start - front.len()..end - front.len()])
        } else {
            let mut joined = front[start..].to_vec();
            joined.extend_from_slice(&back[..end - front.len()]);
            std::borrow::Cow::Owned(joined)
        }
    }

    fn pop_oldest(&mut self) {
        if self.metas.pop_front().is_some() {
            self.vectors.drain(..self.dims);
        }
    }

    fn sweep(&mut self, now: u64) -> usize {
        let before = self.metas.len();
        let mut i = 0;
        while i < self.metas.len() {
            if self.metas[i].expires_ms <= now {
                self.remove_at(i);
            } else {
                i += 1;
            }
        }
        before - self.metas.len()
    }
}

#[derive(Default)]
struct Inner {
    partitions: HashMap<Arc<str>, Partition>,
    total: usize,
}

/// The index of every partition, bounded per partition and overall.
pub struct Index {
    inner: RwLock<Inner>,
    max_per_partition: usize,
    max_entries: usize,
}

impl Index {
    /// An empty index.
    pub fn new(max_per_partition: usize, max_entries: usize) -> Self {
        Self {
            inner: RwLock::new(Inner::default()),
            max_per_partition: max_per_partition.max(1),
            max_entries: max_entries.max(1),
        }
    }

    /// Entries in the index.
    pub fn len(&self) -> usize {
        self.inner.read().expect("not poisoned").total
    }

    /// Whether the index is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds (or replaces) the entry `key` of `partition`. Returns `false` when the index
    /// is full of live entries of other partitions.
    pub fn insert(
        &self,
        partition: &str,
        key: &str,
        text: &str,
        mut vector: Vec<f32>,
        expires_ms: u64,
    ) -> bool {
        normalize(&mut vector);
        let now = now_ms();
        if vector.is_empty() || expires_ms <= now {
            return false;
        }
        let mut inner = self.inner.write().expect("not poisoned");
        let inner = &mut *inner;
        if inner.total >= self.max_entries {
            let mut swept = 0;
            for p in inner.partitions.values_mut() {
                swept += p.sweep(now);
            }
            inner.total -= swept;
            inner.partitions.retain(|_, p| !p.metas.is_empty());
        }
        let full = inner.total >= self.max_entries;
        let part = match inner.partitions.get_mut(partition) {
            Some(part) => part,
            None if full => return false,
            None => inner.partitions.entry(Arc::from(partition)).or_default(),
        };
        if part.dims != vector.len() {
            // Another embedder (or a resized one): what was indexed is not comparable.
            inner.total -= part.metas.len();
            *part = Partition {
                dims: vector.len(),
                ..Partition::default()
            };
        }
        if let Some(i) = part.metas.iter().position(|m| &*m.key == key) {
            part.remove_at(i);
            inner.total -= 1;
        }
        if part.metas.len() >= self.max_per_partition {
            inner.total -= part.sweep(now);
        }
        while part.metas.len() >= self.max_per_partition || (full && !part.metas.is_empty()) {
            part.pop_oldest();
            inner.total -= 1;
            if full {
                break;
            }
        }
        part.metas.push_back(Meta {
            key: Arc::from(key),
            text: text.into(),
            normalized: normalize_text(text).into(),
            expires_ms,
        });
        part.vectors.extend(vector);
        inner.total += 1;
        true
    }

    /// Forgets `key` (its answer is gone from the store).
    pub fn remove(&self, partition: &str, key: &str) {
        let mut inner = self.inner.write().expect("not poisoned");
        let inner = &mut *inner;
        if let Some(part) = inner.partitions.get_mut(partition) {
            if let Some(i) = part.metas.iter().position(|m| &*m.key == key) {
                part.remove_at(i);
                inner.total -= 1;
            }
        }
    }

    /// The entry whose normalized text equals `text`'s, if any.
    pub fn find_normalized(&self, partition: &str, text: &str) -> Option<Candidate> {
        let normalized = normalize_text(text);
        let inner = self.inner.read().expect("not poisoned");
        let now = now_ms();
        inner
            .partitions
            .get(partition)?
            .metas
            .iter()
            .rev()
            .find(|m| m.expires_ms > now && *m.normalized == *normalized)
            .map(|m| Candidate {
                key: m.key.clone(),
                similarity: 1.0,
            })
    }

    /// Entries of `partition` at cosine ≥ `threshold` from `vector` that the guard accepts
    /// for `text`, best first; of the `MAX_GUARDED` best only (a miss, never a wrong hit,
    /// when more look alike).
    pub fn search(
        &self,
        partition: &str,
        text: &str,
        vector: &[f32],
        threshold: f32,
    ) -> Vec<Candidate> {
        let mut query = vector.to_vec();
        normalize(&mut query);
        let inner = self.inner.read().expect("not poisoned");
        let Some(part) = inner.partitions.get(partition) else {
            return Vec::new();
        };
        if part.dims != query.len() || part.metas.is_empty() {
            return Vec::new();
        }
        let now = now_ms();
        let mut scored: Vec<(usize, f32)> = Vec::new();
        for i in 0..part.metas.len() {
            let s = dot(&query, &part.vector_at(i));
            if s >= threshold {
                scored.push((i, s));
            }
        }
        // The guard only for the best few: templated prompts ("ticket 1", "ticket 2", …)
        // put thousands of entries above the threshold, every one of which it would reject.
        let best_first = |a: &(usize, f32), b: &(usize, f32)| b.1.total_cmp(&a.1);
        if scored.len() > MAX_GUARDED {
            scored.select_nth_unstable_by(MAX_GUARDED - 1, best_first);
            scored.truncate(MAX_GUARDED);
        }
        scored.sort_by(best_first);
        scored
            .into_iter()
            .filter_map(|(i, similarity)| {
                let meta = &part.metas[i];
                (meta.expires_ms > now && guard(text, &meta.text).allows()).then(|| Candidate {
                    key: meta.key.clone(),
                    similarity,
                })
            })
            .collect()
    }
}

/// Dot product in eight independent lanes (the compiler vectorizes it).
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            lanes[k] += x[k] * y[k];
        }
    }
    let tail: f32 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    lanes.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    fn later() -> u64 {
        now_ms() + 60_000
    }

    #[test]
    fn search_finds_the_best_guarded_candidate_in_its_partition_only() {
        let index = Index::new(100, 1000);
        let e = super::super::embed::HashEmbedder::new(64);
        let add = |p: &str, k: &str, t: &str| index.insert(p, k, t, e.embed_now(t), later());
        assert!(add("p1", "k1", "How do I reverse a list in Python?"));
        assert!(add("p1", "k2", "How do I reverse a list in JavaScript?"));
        assert!(add("p2", "k3", "How do I reverse a list in Python?"));
        let q = "how do I reverse a list in python";
        let found = index.search("p1", q, &e.embed_now(q), 0.5);
        assert_eq!(
            found.len(),
            1,
            "the JavaScript one fails the guard: {found:?}"
        );
        assert_eq!(&*found[0].key, "k1");
        assert_eq!(
            index
                .find_normalized("p1", "HOW do I reverse a list in Python")
                .map(|c| c.key),
            Some(Arc::from("k1"))
        );
        assert!(index.search("p3", q, &e.embed_now(q), 0.0).is_empty());
        index.remove("p1", "k1");
        assert!(index.search("p1", q, &e.embed_now(q), 0.5).is_empty());
        assert_eq!(index.len(), 2);
    }

    #[test]
    fn templated_prompts_find_their_own_entry_among_thousands_that_look_alike() {
        let index = Index::new(10_000, 10_000);
        let e = super::super::embed::HashEmbedder::new(512);
        for i in 0..3000 {
            let text = format!("Summarize support ticket number {i} for the weekly report");
            assert!(index.insert("p", &format!("k{i}"), &text, e.embed_now(&text), later()));
        }
        let q = "summarize the support ticket number 1234 for the weekly report";
        let found = index.search("p", q, &e.embed_now(q), 0.8);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(&*found[0].key, "k1234");
        let q = "summarize support ticket number 5000 for the weekly report";
        assert!(index.search("p", q, &e.embed_now(q), 0.8).is_empty());
    }

    #[test]
    fn partitions_and_the_whole_index_are_bounded() {
        let index = Index::new(3, 5);
        let v = |i: usize| {
            let mut v = vec![0.0f32; 16];
            v[i % 16] = 1.0;
            v
        };
        for i in 0..10 {
            assert!(index.insert("a", &format!("k{i}"), "t", v(i), later()));
        }
        assert_eq!(index.len(), 3, "oldest evicted first");
        for i in 7..10 {
            let found = index.search("a", "t", &v(i), 0.9);
            assert_eq!(found.len(), 1, "{i}");
            assert_eq!(&*found[0].key, format!("k{i}"));
        }
        assert!(index.search("a", "t", &v(0), 0.9).is_empty());
        assert_eq!(&*index.search("a", "t", &v(9), 0.9)[0].key, "k9");
        for i in 0..2 {
            assert!(index.insert("b", &format!("k{i}"), "t", v(i), later()));
        }
        assert_eq!(index.len(), 5);
        assert!(!index.insert("c", "k", "t", v(0), later()), "full");
        assert!(
            index.insert("b", "k9", "t", v(1), later()),
            "an existing partition rotates"
        );
        assert_eq!(index.len(), 5);
        assert!(
            !index.insert("a", "old", "t", v(0), now_ms()),
            "already expired"
        );
    }

    #[test]
    fn dot_matches_the_naive_sum() {
        let a: Vec<f32> = (0..37).map(|i| i as f32 * 0.1).collect();
        let b: Vec<f32> = (0..37).map(|i| 1.0 - i as f32 * 0.05).collect();
        let naive: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - naive).abs() < 1e-3);
    }
}
