//! `Idempotency-Key`: a client's retry never reaches an upstream twice.
//!
//! Following the IETF HTTPAPI draft "The Idempotency-Key HTTP Header Field":
//!
//! - The key is scoped by the gateway key that sent it; the request's fingerprint is a
//!   128-bit XXH3 of method, path and body (after alias resolution).
//! - The first request executes; its response (status, the headers that matter, the body —
//!   for a stream, the exact SSE bytes) is recorded as it passes and stored for `ttl`.
//! - The same key again: the stored response, byte for byte, with `idempotency-replayed: true`.
//! - The same key while the first is in flight: the duplicate waits and gets the same
//!   response; a stream is joined live (what was already sent, then the rest as it comes).
//!   `in_flight: reject` answers 409 instead.
//! - The same key with another request: 422. A malformed key: 400.
//! - Not stored: 5xx, 408, 429, broken or truncated streams (a retry executes again), and
//!   responses over `max_response_bytes`; when that is known as the response starts it
//!   carries `idempotency-stored: false`.
//!
//! Stores: [`MemoryStore`] (moka, this process) by default; [`RedisStore`] for many
//! instances, with an owner lock (SET NX PX, renewed while the request runs) that a crashed
//! instance loses after `lock_ttl`. Duplicates in one process are coalesced before any
//! store is asked; duplicates on other instances poll the store with backoff. If the store
//! is unreachable, requests go on without idempotency (`on_store_error: open`, logged and
//! counted) or get 503 (`closed`).
//!
//! If the first client leaves mid-stream, the upstream request is cancelled (as for any
//! request); duplicates that joined it get the stream's end as an error event, and nothing
//! is stored.
//!
//! ```
//! use llm_tower::idempotency::{IdempotencyLayer, IdempotencySettings, InFlightPolicy};
//! use llm_tower::parse::ParseLayer;
//!
//! let settings = IdempotencySettings::default()
//!     .ttl(std::time::Duration::from_secs(3600))
//!     .in_flight(InFlightPolicy::Reject);
//! // No Redis settings: the memory store.
//! let idempotency = IdempotencyLayer::from_settings(&settings, None).unwrap();
//! let service = tower::ServiceBuilder::new()
//!     .layer(ParseLayer::new(1 << 20))
//!     .layer(idempotency)
//!     .service(llm_tower::executor::MockExecutor::new());
//! # let _ = service;
//! ```

mod key;
mod recording;
mod redis;
mod service;
mod settings;
mod store;

pub use self::key::Fingerprint;
pub use self::redis::RedisStore;
pub use self::service::{Idempotency, IdempotencyFuture, IdempotencyLayer, IdempotentReplay};
pub use self::settings::{FailMode, IdempotencySettings, IdempotencyStoreKind, InFlightPolicy};
pub use self::store::{
    IdempotencyStore, Lock, MemoryStore, StoreError, StoreFuture, StoredResponse,
};
