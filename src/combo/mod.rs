//! Combos: one model name answered by several targets, with fallback and load balancing.
//!
//! ```yaml
//! combos:
//!   smart:
//!     strategy: priority              # or round-robin, weighted, least-latency, least-busy
//!     targets: [claude/claude-sonnet-4-5, litellm/bedrock-claude, openai/gpt-4o]
//!     context_window_fallbacks: [gemini/gemini-2.5-pro]
//!     attempt_timeout: 20s            # per attempt, until the answer starts
//!     deadline: 60s                   # across attempts
//!   spread:
//!     strategy: weighted
//!     targets: [{ target: openai/gpt-4o-mini, weight: 3 }, { target: litellm/haiku, weight: 1 }]
//! circuit_breaker: { failures: 3, window: 30s, cooldown: 30s }
//! ```
//!
//! The strategy picks the first target; the others follow as fallbacks. An attempt fails
//! when the upstream cannot be reached, times out, answers 408, 429 or 5xx, or sends a 200
//! stream that breaks before its first event (`fallback_on` changes the list). Another 4xx
//! is the client's and is returned as is, except "context window exceeded", which moves to
//! `context_window_fallbacks`. Nothing reaches the client until an attempt has started to
//! answer, so a failed attempt costs the client only time; after that the stream is the
//! client's.
//!
//! Each target has a circuit breaker shared by every combo that lists it: after
//! `failures` failures within `window` (or one failure with `Retry-After`), it is skipped
//! for the cooldown, then one probe decides. When every target is cooling down, the one
//! that cools down soonest is still tried.
//!
//! ```
//! use std::collections::BTreeMap;
//! use llm_tower::alias::Aliases;
//! use llm_tower::combo::{CircuitBreakerSettings, ComboLayer, ComboSettings, Combos};
//! use llm_tower::executor::{Executors, MockExecutor};
//!
//! let executors = Executors::builder()
//!     .service("a", MockExecutor::new())
//!     .service("b", MockExecutor::new())
//!     .build()
//!     .unwrap();
//! let settings = BTreeMap::from([("ab".to_owned(), ComboSettings::new(["a/echo", "b/echo"]))]);
//! let combos = Combos::new(
//!     &settings,
//!     &Aliases::default(),
//!     &|p| executors.contains(p),
//!     &CircuitBreakerSettings::default(),
//! )
//! .unwrap();
//! assert_eq!(combos.names().collect::<Vec<_>>(), ["ab"]);
//! // parse → combo → your executors
//! let service = tower::ServiceBuilder::new()
//!     .layer(llm_tower::parse::ParseLayer::new(1 << 20))
//!     .layer(ComboLayer::new(combos))
//!     .service(executors);
//! # let _ = service;
//! ```

mod body;
mod failure;
mod health;
mod service;
mod settings;
mod table;

pub use self::service::{Combo, ComboFuture, ComboLayer};
pub use self::settings::{
    CircuitBreakerSettings, ComboSettings, ComboStrategy, ComboTarget, FallbackOn,
};
pub use self::table::{Combos, TargetBreaker, TargetHealth};
pub use crate::executor::ComboAttempts;
