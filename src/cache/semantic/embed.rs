//! Embedders: text in, a vector out. The index L2-normalizes what they return.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;

use unicode_normalization::UnicodeNormalization;

/// The future an embedder returns.
pub type EmbedFuture<'a> = Pin<Box<dyn Future<Output = Result<Vec<f32>, EmbedError>> + Send + 'a>>;

/// An embedding that could not be made (the endpoint is down, slow or answered nonsense).
#[derive(Debug, Clone)]
pub struct EmbedError(pub String);

impl fmt::Display for EmbedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for EmbedError {}

/// Turns the last user message into a vector. Must give up within a bounded time: on an
/// error the request is served as a miss.
pub trait Embedder: Send + Sync + 'static {
    /// A short name for logs and metrics (`hash512`, `http:e5-query`).
    fn name(&self) -> &str;
    /// The embedding of `text`.
    fn embed<'a>(&'a self, text: &'a str) -> EmbedFuture<'a>;
}

/// The built-in embedder: feature-hashed character 3–5-grams of each word, words and word
/// bigrams, sublinear term frequency, signed buckets. Deterministic, weights-free, a few
/// microseconds per sentence.
#[derive(Debug, Clone)]
pub struct HashEmbedder {
    dims: usize,
    name: String,
}

impl HashEmbedder {
    /// An embedder of `dims` dimensions (at least 16).
    pub fn new(dims: usize) -> Self {
        let dims = dims.max(16);
        Self {
            dims,
            name: format!("hash{dims}"),
        }
    }

    /// The embedding of `text`, L2-normalized.
    pub fn embed_now(&self, text: &str) -> Vec<f32> {
        let words = words(text);
        let mut counts: HashMap<u64, u32> = HashMap::with_capacity(words.len() * 12);
        let mut add = |kind: u8, key: &str| {
            *counts.entry(hash(kind, key.as_bytes())).or_insert(0) += 1;
        };
        let mut padded = String::new();
        for w in &words {
            add(b'w', w);
            padded.clear();
            padded.push(' ');
            padded.push_str(w);
            padded.push(' ');
            let bounds: Vec<usize> = padded
                .char_indices()
                .map(|(i, _)| i)
                .chain([padded.len()])
                .collect();
            let chars = bounds.len() - 1;
            for n in 3..=5 {
                for start in 0..(chars + 1).saturating_sub(n) {
                    add(b'c', &padded[bounds[start]..bounds[start + n]]);
                }
            }
        }
        let mut pair = String::new();
        for two in words.windows(2) {
            pair.clear();
            pair.push_str(&two[0]);
            pair.push(' ');
            pair.push_str(&two[1]);
            add(b'b', &pair);
        }
        let mut v = vec![0f32; self.dims];
        for (h, tf) in counts {
            let sign = if h >> 63 == 1 { 1.0 } else { -1.0 };
            v[(h % self.dims as u64) as usize] += sign * (1.0 + (tf as f32).ln());
        }
        normalize(&mut v);
        v
    }
}

impl Embedder for HashEmbedder {
    fn name(&self) -> &str {
        &self.name
    }

    fn embed<'a>(&'a self, text: &'a str) -> EmbedFuture<'a> {
        Box::pin(std::future::ready(Ok(self.embed_now(text))))
    }
}

/// L2-normalizes `v` in place (a zero vector stays zero).
pub(crate) fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

/// Lowercase words: anything but word characters and `.+#-` separates them; a `.` or `-`
/// not between word characters is dropped (`c++`, `c#`, `3.11`, `node.js`, `e-mail` stay).
fn words(text: &str) -> Vec<String> {
    let lowered: Vec<char> = text
        .nfkc()
        .flat_map(char::to_lowercase)
        .map(|c| {
            if c.is_alphanumeric() || c == '_' || c.is_whitespace() || ".+#-".contains(c) {
                c
            } else {
                ' '
            }
        })
        .collect();
    let word = |c: Option<&char>| c.is_some_and(|&c| c.is_alphanumeric() || c == '_');
    let cleaned: String = lowered
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            let edge = (c == '.' || c == '-')
                && (i == 0 || !word(lowered.get(i - 1)) || !word(lowered.get(i + 1)));
            if edge {
                ' '
            } else {
                c
            }
        })
        .collect();
    cleaned.split_whitespace().map(str::to_owned).collect()
}

/// FNV-1a over the kind and the key, then a SplitMix64 finalizer: stable across runs,
/// machines and versions.
fn hash(kind: u8, key: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in [kind, b':'].iter().chain(key) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cos(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn words_keep_technical_tokens() {
        assert_eq!(
            words("Hello, C++ & C# in Node.js 3.11 - e-mail!"),
            ["hello", "c++", "c#", "in", "node.js", "3.11", "e-mail"]
        );
    }

    #[test]
    fn similar_texts_are_close_and_vectors_are_unit_length() {
        let e = HashEmbedder::new(512);
        let a = e.embed_now("How do I reverse a list in Python?");
        let b = e.embed_now("how do i reverse a python list");
        let c = e.embed_now("What is the capital of France?");
        assert!((cos(&a, &a) - 1.0).abs() < 1e-5);
        assert!(cos(&a, &b) > 0.6, "{}", cos(&a, &b));
        assert!(cos(&a, &c) < 0.3, "{}", cos(&a, &c));
        assert_eq!(a, e.embed_now("How do I reverse a list in Python?"));
        assert!(e.embed_now("").iter().all(|&x| x == 0.0));
    }
}
