//! The OpenAI Responses API's state: stored responses, `previous_response_id`, and the
//! `GET`/`DELETE /v1/responses/{id}` routes.
//!
//! - A response is stored unless the request says `store: false` (Codex does; the SDKs'
//!   default is to store): the `response` object the client got, the whole input that led
//!   to it, and the name of the gateway key that asked — only that key reads, continues or
//!   deletes it. A stream's final frame is held until the write is done, so the client's
//!   next turn always finds it.
//! - A request with `previous_response_id` of a stored response gets that conversation
//!   (its input, then the response's output items) spliced in before its own `input`, and
//!   goes on without the field: every upstream, translated or native, sees the whole
//!   conversation, and the answer repeats the id. An id the store does not know goes on as
//!   sent (an upstream with its own store may know it; a translated one answers 404).
//! - Stores: [`MemoryStore`] (moka, bounded by size, this process) by default;
//!   [`RedisStore`] so that any instance continues a conversation another one answered.
//!   Entries expire after `ttl` (30 days by default, as OpenAI keeps them).
//!
//! ```
//! use llm_tower::parse::ParseLayer;
//! use llm_tower::responses::{ResponsesLayer, ResponsesSettings};
//!
//! let responses = ResponsesLayer::from_settings(&ResponsesSettings::default(), None).unwrap();
//! let service = tower::ServiceBuilder::new()
//!     .layer(ParseLayer::new(1 << 20))
//!     .layer(responses)
//!     .service(llm_tower::executor::MockExecutor::new());
//! # let _ = service;
//! ```

mod conversation;
mod redis;
pub(crate) mod routes;
mod service;
mod settings;
mod store;

pub use self::redis::RedisStore;
pub use self::service::{ResolvedPrevious, Responses, ResponsesLayer};
pub use self::settings::{ResponsesSettings, ResponsesStoreKind};
pub use self::store::{MemoryStore, ResponseStore, StoreError, StoreFuture};
pub use crate::translate::BuiltinTools;
