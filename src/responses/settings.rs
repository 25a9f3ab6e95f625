//! The Responses API settings (`responses:`).

use std::time::Duration;

use serde::Deserialize;

use crate::settings::{setters, SettingsError};
use crate::translate::BuiltinTools;

/// How the gateway keeps the responses it answers (`store` is true unless the client says
/// false), so that `previous_response_id` continues a conversation and
/// `GET /v1/responses/{id}` returns one.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct ResponsesSettings {
    /// `memory` (this process; the default) or `redis` (shared by instances; needs `redis`).
    pub store: ResponsesStoreKind,
    /// How long a response is kept. Default 30 days (as OpenAI keeps them).
    #[serde(with = "humantime_serde")]
    pub ttl: Duration,
    /// A conversation (its input and output) larger than this is not stored. Default 16 MiB.
    pub max_conversation_bytes: usize,
    /// Memory store: total size of stored conversations. Default 256 MiB.
    pub max_memory_bytes: u64,
    /// Prefix of the Redis keys.
    pub key_prefix: String,
    /// A tool only OpenAI runs (web search, file search, computer use…) in a request for
    /// another provider: `reject` (a 400 naming it; the default) or `drop` (left out, so
    /// that clients which always offer one, as Codex offers web search, work anyway).
    pub builtin_tools: BuiltinTools,
}

impl Default for ResponsesSettings {
    fn default() -> Self {
        Self {
            store: ResponsesStoreKind::Memory,
            ttl: Duration::from_secs(30 * 24 * 3600),
            max_conversation_bytes: 16 * 1024 * 1024,
            max_memory_bytes: 256 * 1024 * 1024,
            key_prefix: "llm-tower:responses:".to_owned(),
            builtin_tools: BuiltinTools::Reject,
        }
    }
}

/// Where responses are kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResponsesStoreKind {
    /// In this process (moka).
    #[default]
    Memory,
    /// In the Redis server of `redis.url`, shared by every instance using it.
    Redis,
}

setters!(ResponsesSettings {
    /// Where responses are kept.
    store: ResponsesStoreKind,
    /// How long a response is kept.
    ttl: Duration,
    /// Conversations larger than this are not stored.
    max_conversation_bytes: usize,
    /// Memory store: total size of stored conversations.
    max_memory_bytes: u64,
    /// Prefix of the Redis keys.
    key_prefix: String,
    /// What a tool only OpenAI runs gets on other providers.
    builtin_tools: BuiltinTools,
});

impl ResponsesSettings {
    /// Checks the settings.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if self.ttl.is_zero() {
            return Err(SettingsError::new("ttl", "must be greater than 0"));
        }
        Ok(())
    }
}
