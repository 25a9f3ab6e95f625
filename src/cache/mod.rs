//! The response cache: a chat request is answered from an earlier answer when it is safe
//! to, and says so in `x-gateway-cache` (`hit`, `semantic-hit`, `miss`, `bypass`) and `age`.
//! Embeddings requests are cached too (exact matches only: an embedding is deterministic),
//! and so are Anthropic Messages and OpenAI Responses requests (exact matches only, each
//! protocol's answers apart): kept as the `message` or `response` itself — a stream
//! assembled from its events, or taken from its final `response.completed` — and served as
//! JSON or as that protocol's event stream rebuilt from it (each block's or item's content
//! in one delta).
//!
//! - **Exact.** The key is a BLAKE3 hash of the scope and the canonical request: the resolved
//!   model, messages, tools and every parameter, with object members in key order and no
//!   whitespace (`1.0` and `1` alike), without `stream`, `stream_options` and `user`. The
//!   scope is the gateway key ([`KeyId`](crate::auth::KeyId)) unless `scope: shared`.
//!   Byte-identical repeats, the common case, skip the canonical form: each instance maps
//!   a hash of the request as sent to the canonical key it had.
//! - **Any form in, any form out.** A JSON answer is kept as it is; a streamed one is
//!   assembled into a `chat.completion` as its frames pass (none is held back). A hit is
//!   served as JSON, or as a well-formed SSE stream (role chunk, content, refusal, tool
//!   calls, finish, usage when asked for, `[DONE]`) — whatever the new request asks for.
//! - **Never stored:** errors (any status but 200), streams that fail, carry an error event
//!   or end without `[DONE]`, bodies the client did not read to the end, and answers over
//!   `max_entry_bytes`.
//! - **Request controls:** `Cache-Control: no-cache` skips the lookup, `no-store` the
//!   storing; `x-gateway-cache-ttl: 60` (or `90s`, `10m`) sets this answer's TTL, capped by
//!   `max_ttl`. `cacheable: deterministic` limits the cache to `temperature: 0` or `seed`
//!   requests, `models` to some models and combos.
//! - **Semantic** (`semantic.enabled`). On an exact miss, a request whose conversation
//!   matches an earlier one except for the wording of the last user message can be
//!   answered from it. Only entries of the same hard partition are compared — same scope,
//!   model, system prompt, tools, parameters and earlier turns (a hash of the canonical
//!   request without the last user text) — and only conversations of at most
//!   `max_messages`. A normalized exact match (case, whitespace, punctuation, greeting
//!   wrappers) is always a hit; otherwise the best neighbour at or above the embedder's
//!   threshold is served only if the [`guard`](semantic::guard) agrees on numbers,
//!   negations, units, quoted and technical tokens, antonyms and direction. The
//!   similarity is in `x-gateway-cache-similarity`.
//! - **Stores.** [`MemoryStore`] (moka, bounded in bytes, per-entry expiry) by default;
//!   [`RedisStore`] shares answers between instances. If the store fails, the request is
//!   served without the cache (`bypass`, counted and logged).
//!
//! ```
//! use llm_tower::cache::{CacheLayer, CacheSettings, SemanticSettings};
//! use llm_tower::upstream::ClientSettings;
//!
//! let settings = CacheSettings::default()
//!     .enabled(true)
//!     .semantic(SemanticSettings::default().enabled(true));
//! let cache = CacheLayer::from_settings(&settings, None, &ClientSettings::default()).unwrap();
//! // parse → cache → your executor
//! let service = tower::ServiceBuilder::new()
//!     .layer(llm_tower::parse::ParseLayer::new(1 << 20))
//!     .layer(cache)
//!     .service(llm_tower::executor::MockExecutor::new());
//! # let _ = service;
//! ```

mod assemble;
mod canonical;
mod entry;
mod inbound;
mod key;
mod redis;
pub mod semantic;
mod service;
mod settings;
mod store;

pub use self::entry::CachedResponse;
pub use self::redis::RedisStore;
pub use self::service::{
    Cache, CacheFuture, CacheHit, CacheLayer, CacheVerdict, CACHE_HEADER, SIMILARITY_HEADER,
    TTL_HEADER,
};
pub use self::settings::{
    CacheScope, CacheSettings, CacheStoreKind, Cacheable, EmbedderKind, HashEmbedderSettings,
    HttpEmbedderSettings, MiniLmEmbedderSettings, SemanticSettings,
};
pub use self::store::{CacheStore, MemoryStore, StoreError, StoreFuture};
