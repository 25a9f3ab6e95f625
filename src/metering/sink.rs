//! Where usage records go: one trait, a SQLite and a PostgreSQL ledger beside it.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use super::record::UsageRecord;

/// The future a sink returns.
pub type SinkFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, SinkError>> + Send + 'a>>;

/// A sink that could not write or read.
#[derive(Debug, Clone)]
pub struct SinkError(pub String);

impl fmt::Display for SinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SinkError {}

/// A usage ledger.
pub trait UsageSink: Send + Sync + 'static {
    /// Appends `records` (one batch, written together).
    fn write<'a>(&'a self, records: &'a [UsageRecord]) -> SinkFuture<'a, ()>;
    /// The same from a blocking thread, for a sink whose writes are blocking calls anyway
    /// (SQLite): the writer calls it where it finished the records, saving a hop through
    /// tokio's blocking pool and a copy of the batch. `None` (the default): not supported,
    /// [`write`](Self::write) is used.
    fn write_blocking(&self, records: &[UsageRecord]) -> Option<Result<(), SinkError>> {
        let _ = records;
        None
    }
    /// The records that started in `[from_ms, to_ms)`, at most `limit`, oldest or newest
    /// first.
    fn query(
        &self,
        from_ms: i64,
        to_ms: i64,
        limit: usize,
        order: Order,
    ) -> SinkFuture<'_, Vec<UsageRecord>>;
}

/// Which records a limited query reads first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// From `from_ms` on.
    OldestFirst,
    /// From `to_ms` back.
    NewestFirst,
}

impl Order {
    pub(crate) fn sql(self) -> &'static str {
        match self {
            Self::OldestFirst => "ASC",
            Self::NewestFirst => "DESC",
        }
    }
}

/// The ledger's columns, in the order both sinks write and read them.
pub(crate) const COLUMNS: &str = "request_id, started_at_ms, key_name, requested_model, route, provider, \
    upstream_model, status, outcome, stream, prompt_tokens, completion_tokens, cached_tokens, \
    reasoning_tokens, cost_usd, latency_ms, ttft_ms, attempts, cache, replay, error_type, usage_source, endpoint, team_id";

/// The schema, for SQLite and PostgreSQL alike (`{id}` is the key column's type).
pub(crate) fn create_table(id: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS llm_usage (
            id {id},
            request_id TEXT NOT NULL,
            started_at_ms BIGINT NOT NULL,
            key_name TEXT NOT NULL,
            requested_model TEXT NOT NULL,
            route TEXT,
            provider TEXT,
            upstream_model TEXT,
            status INTEGER NOT NULL,
            outcome TEXT NOT NULL,
            stream BOOLEAN NOT NULL,
            prompt_tokens BIGINT NOT NULL,
            completion_tokens BIGINT NOT NULL,
            cached_tokens BIGINT NOT NULL,
            reasoning_tokens BIGINT NOT NULL,
            cost_usd DOUBLE PRECISION,
            latency_ms DOUBLE PRECISION NOT NULL,
            ttft_ms DOUBLE PRECISION,
            attempts INTEGER NOT NULL,
            cache TEXT,
            replay BOOLEAN NOT NULL,
            error_type TEXT,
            usage_source TEXT NOT NULL,
            endpoint TEXT NOT NULL DEFAULT 'chat',
            team_id TEXT
        );
        CREATE INDEX IF NOT EXISTS llm_usage_started_at ON llm_usage (started_at_ms);"
    )
}

/// Adds what later versions added to a ledger made before them (PostgreSQL syntax; SQLite
/// checks the column itself).
pub(crate) const MIGRATE: &str =
    "ALTER TABLE llm_usage ADD COLUMN IF NOT EXISTS endpoint TEXT NOT NULL DEFAULT 'chat';
     ALTER TABLE llm_usage ADD COLUMN IF NOT EXISTS team_id TEXT;";

/// The columns later versions added, for SQLite (which has no `IF NOT EXISTS` there).
pub(crate) const ADDED_COLUMNS: [(&str, &str); 2] = [
    ("endpoint", "TEXT NOT NULL DEFAULT 'chat'"),
    ("team_id", "TEXT"),
];

/// The `&'static str` a stored outcome or usage source names.
pub(crate) fn known(value: &str) -> &'static str {
    match value {
        "ok" => "ok",
        "error" => "error",
        "cancelled" => "cancelled",
        "upstream_error" => "upstream_error",
        "timeout" => "timeout",
        "upstream" => "upstream",
        "estimated" => "estimated",
        _ => "none",
    }
}

impl fmt::Debug for dyn UsageSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UsageSink")
    }
}
