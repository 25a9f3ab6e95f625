//! Model aliases: the requested model name rewritten to a target before anything else
//! looks at it.
//!
//! ```yaml
//! aliases:
//!   gpt-4: openai/gpt-4o-mini        # exact name → provider/model
//!   fast: smart                      # → a combo (or another alias)
//!   "claude-*": "claude/claude-*"    # wildcard: the matched part is carried over
//! ```
//!
//! Chains are followed at load time; a cycle or a target that names nothing is a config
//! error that shows the chain. The rewrite is one splice of the `model` value in the raw
//! body ([`LlmRequest::rewrite_model`](crate::LlmRequest::rewrite_model)); the request also
//! and its response carry a [`ResolvedModel`] so that other layers (metering) see both names.
//!
//! ```
//! use std::collections::BTreeMap;
//! use llm_tower::alias::{Aliases, Names};
//!
//! let aliases = BTreeMap::from([
//!     ("gpt-*".to_owned(), "openai/gpt-*".to_owned()),
//!     ("gpt".to_owned(), "gpt-4o".to_owned()),
//! ]);
//! let names = Names { provider: &|p| p == "openai", combo: &|_| false };
//! let aliases = Aliases::new(&aliases, &names).unwrap();
//! assert_eq!(aliases.resolve("gpt").as_deref(), Some("openai/gpt-4o"));
//! assert_eq!(aliases.resolve("openai/gpt-4o"), None);
//! ```
//!
//! Around your own service, with [`AliasLayer`]:
//!
//! ```
//! # use std::collections::BTreeMap;
//! # use llm_tower::alias::{AliasLayer, Aliases, Names};
//! let names = Names { provider: &|p| p == "mine", combo: &|_| false };
//! let aliases = Aliases::new(&BTreeMap::from([("fast".into(), "mine/small".into())]), &names).unwrap();
//! let service = tower::ServiceBuilder::new()
//!     .layer(llm_tower::parse::ParseLayer::new(1 << 20))
//!     .layer(AliasLayer::new(aliases))
//!     .service(llm_tower::executor::MockExecutor::new());
//! # let _ = service;
//! ```

mod service;
mod table;

pub use self::service::{Alias, AliasFuture, AliasLayer};
pub use self::table::{Aliases, Names, ResolvedModel};
