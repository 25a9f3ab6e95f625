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
//! use llm_tower::alias::Aliases;
//! let config = llm_tower::Config::from_yaml(
//!     "providers: { openai: { kind: mock } }\naliases: { 'gpt-*': 'openai/gpt-*', gpt: gpt-4o }",
//! ).unwrap();
//! let aliases = Aliases::compile(&config).unwrap();
//! assert_eq!(aliases.resolve("gpt").as_deref(), Some("openai/gpt-4o"));
//! assert_eq!(aliases.resolve("openai/gpt-4o"), None);
//! ```

mod service;
mod table;

pub use self::service::{Alias, AliasFuture, AliasLayer};
pub use self::table::{Aliases, ResolvedModel};
