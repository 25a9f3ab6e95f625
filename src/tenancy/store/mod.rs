//! Where virtual keys and teams live: the ledger's database (SQLite by default,
//! PostgreSQL for many instances), in two tables beside `llm_usage`.
//!
//! A row is a few indexed columns (the ones queries filter on or update in place: spend,
//! budget reset, change time) and the rest as one JSON document, so that both databases
//! run the same short SQL. Deleted rows stay as tombstones for a day, so that every
//! instance's poll for changes sees the deletion.

mod postgres;
mod sqlite;

use std::sync::Arc;

pub use self::postgres::PostgresKeyStore;
pub use self::sqlite::SqliteKeyStore;
use super::model::{KeyRow, TeamRow};
use crate::store::{StoreError, StoreFuture};

/// Which keys `GET /key/list` wants.
#[derive(Debug, Clone, Default)]
pub struct KeyFilter {
    /// Only this team's.
    pub team_id: Option<String>,
    /// Only this user's.
    pub user_id: Option<String>,
    /// Only the key with this alias.
    pub key_alias: Option<String>,
    /// Only the key with this token (hash).
    pub token: Option<String>,
}

/// What changed since a poll, by the database's clock.
#[derive(Debug, Clone, Default)]
pub struct Changes {
    /// Keys created or changed (spend included).
    pub keys: Vec<KeyRow>,
    /// Tokens of keys deleted.
    pub deleted_keys: Vec<String>,
    /// Teams created or changed.
    pub teams: Vec<TeamRow>,
    /// Ids of teams deleted.
    pub deleted_teams: Vec<String>,
    /// The database's time of this read (ms since the Unix epoch): the next poll's `since`.
    pub now_ms: i64,
}

/// Virtual keys and teams, stored.
pub trait KeyStore: Send + Sync + 'static {
    /// Adds a key; an existing token or alias is an error.
    fn insert_key<'a>(&'a self, row: &'a KeyRow) -> StoreFuture<'a, ()>;
    /// Replaces a key's settings (not its spend).
    fn save_key<'a>(&'a self, row: &'a KeyRow) -> StoreFuture<'a, ()>;
    /// Deletes keys by token; returns those that existed.
    fn delete_keys<'a>(&'a self, tokens: &'a [String]) -> StoreFuture<'a, Vec<String>>;
    /// A key by token.
    fn key<'a>(&'a self, token: &'a str) -> StoreFuture<'a, Option<KeyRow>>;
    /// A key by alias.
    fn key_by_alias<'a>(&'a self, alias: &'a str) -> StoreFuture<'a, Option<KeyRow>>;
    /// Keys matching `filter`, newest first: `limit` from `offset`, and how many match.
    fn list_keys<'a>(
        &'a self,
        filter: &'a KeyFilter,
        offset: u64,
        limit: u64,
    ) -> StoreFuture<'a, (Vec<KeyRow>, u64)>;
    /// Adds a team; an existing id is an error.
    fn insert_team<'a>(&'a self, row: &'a TeamRow) -> StoreFuture<'a, ()>;
    /// Replaces a team's settings (not its spend).
    fn save_team<'a>(&'a self, row: &'a TeamRow) -> StoreFuture<'a, ()>;
    /// Deletes teams; returns those that existed.
    fn delete_teams<'a>(&'a self, ids: &'a [String]) -> StoreFuture<'a, Vec<String>>;
    /// A team by id.
    fn team<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<TeamRow>>;
    /// Everything changed at or after `since_ms` (the database's clock), deletions
    /// included.
    fn changes(&self, since_ms: i64) -> StoreFuture<'_, Changes>;
    /// Adds spend (USD) to keys and teams; starts a new period for those whose budget
    /// period is over (spend back to 0); forgets tombstones older than a day.
    fn add_spend<'a>(
        &'a self,
        keys: &'a [(String, f64)],
        teams: &'a [(String, f64)],
    ) -> StoreFuture<'a, ()>;
}

impl std::fmt::Debug for dyn KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyStore")
    }
}

/// A shared store.
pub type SharedKeyStore = Arc<dyn KeyStore>;

/// The schema: both databases take the same DDL.
pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS llm_keys (
    token TEXT PRIMARY KEY,
    key_alias TEXT UNIQUE,
    team_id TEXT,
    user_id TEXT,
    spend DOUBLE PRECISION NOT NULL DEFAULT 0,
    budget_duration_ms BIGINT,
    budget_reset_at_ms BIGINT,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    deleted BOOLEAN NOT NULL DEFAULT FALSE,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS llm_keys_updated ON llm_keys (updated_at_ms);
CREATE INDEX IF NOT EXISTS llm_keys_reset ON llm_keys (budget_reset_at_ms);
CREATE TABLE IF NOT EXISTS llm_teams (
    team_id TEXT PRIMARY KEY,
    spend DOUBLE PRECISION NOT NULL DEFAULT 0,
    budget_duration_ms BIGINT,
    budget_reset_at_ms BIGINT,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    deleted BOOLEAN NOT NULL DEFAULT FALSE,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS llm_teams_updated ON llm_teams (updated_at_ms);
CREATE INDEX IF NOT EXISTS llm_teams_reset ON llm_teams (budget_reset_at_ms);
";

/// The columns a key is read from, in this order.
pub(crate) const KEY_COLUMNS: &str =
    "doc, spend, budget_reset_at_ms, created_at_ms, updated_at_ms, deleted, token";
/// The columns a team is read from, in this order.
pub(crate) const TEAM_COLUMNS: &str =
    "doc, spend, budget_reset_at_ms, created_at_ms, updated_at_ms, deleted, team_id";

/// The document of a row: the row without what lives in its own columns.
pub(crate) fn key_doc(row: &KeyRow) -> String {
    serde_json::to_string(row).expect("a key serialises")
}

/// The document of a team.
pub(crate) fn team_doc(row: &TeamRow) -> String {
    serde_json::to_string(row).expect("a team serialises")
}

/// A key from its document and columns.
pub(crate) fn key_from(
    doc: &str,
    spend: f64,
    reset: Option<i64>,
    created: i64,
    updated: i64,
) -> Result<KeyRow, StoreError> {
    let mut row: KeyRow = serde_json::from_str(doc)
        .map_err(|e| StoreError(format!("a stored key is unreadable: {e}")))?;
    row.spend = spend;
    row.budget_reset_at_ms = reset;
    row.created_at_ms = created;
    row.updated_at_ms = updated;
    Ok(row)
}

/// A team from its document and columns.
pub(crate) fn team_from(
    doc: &str,
    spend: f64,
    reset: Option<i64>,
    created: i64,
    updated: i64,
) -> Result<TeamRow, StoreError> {
    let mut row: TeamRow = serde_json::from_str(doc)
        .map_err(|e| StoreError(format!("a stored team is unreadable: {e}")))?;
    row.spend = spend;
    row.budget_reset_at_ms = reset;
    row.created_at_ms = created;
    row.updated_at_ms = updated;
    Ok(row)
}

/// When the budget period of a row (its document) that starts at `now_ms` ends.
pub(crate) fn next_period_end(doc: &str, now_ms: i64) -> Option<i64> {
    #[derive(serde::Deserialize)]
    struct Period {
        budget_duration: Option<String>,
    }
    let period: Period = serde_json::from_str(doc).ok()?;
    super::duration::period_end(period.budget_duration.as_deref()?, now_ms).ok()
}

/// The budget period in milliseconds, when there is one that parses.
pub(crate) fn period_ms(duration: Option<&str>) -> Option<i64> {
    duration
        .and_then(|d| super::duration::parse(d).ok())
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The statements both databases run, with `?` placeholders (PostgreSQL's are numbered by
/// [`numbered`]) and `{now}` for the database's clock in ms.
pub(crate) mod sql {
    pub(crate) const INSERT_KEY: &str = "INSERT INTO llm_keys (token, key_alias, team_id, user_id, spend, budget_duration_ms, budget_reset_at_ms, created_at_ms, updated_at_ms, deleted, doc) VALUES (?, ?, ?, ?, 0, ?, ?, {now}, {now}, FALSE, ?)";
    pub(crate) const DROP_KEY_TOMBSTONE: &str = "DELETE FROM llm_keys WHERE token = ? AND deleted";
    pub(crate) const SAVE_KEY: &str = "UPDATE llm_keys SET key_alias = ?, team_id = ?, user_id = ?, budget_duration_ms = ?, budget_reset_at_ms = ?, updated_at_ms = {now}, doc = ? WHERE token = ? AND NOT deleted";
    pub(crate) const DELETE_KEY: &str = "UPDATE llm_keys SET deleted = TRUE, key_alias = NULL, updated_at_ms = {now} WHERE token = ? AND NOT deleted";
    pub(crate) const INSERT_TEAM: &str = "INSERT INTO llm_teams (team_id, spend, budget_duration_ms, budget_reset_at_ms, created_at_ms, updated_at_ms, deleted, doc) VALUES (?, 0, ?, ?, {now}, {now}, FALSE, ?)";
    pub(crate) const DROP_TEAM_TOMBSTONE: &str =
        "DELETE FROM llm_teams WHERE team_id = ? AND deleted";
    pub(crate) const SAVE_TEAM: &str = "UPDATE llm_teams SET budget_duration_ms = ?, budget_reset_at_ms = ?, updated_at_ms = {now}, doc = ? WHERE team_id = ? AND NOT deleted";
    pub(crate) const DELETE_TEAM: &str = "UPDATE llm_teams SET deleted = TRUE, updated_at_ms = {now} WHERE team_id = ? AND NOT deleted";
    pub(crate) const NOW: &str = "SELECT {now}";
    pub(crate) const KEY_SPEND: &str =
        "UPDATE llm_keys SET spend = spend + ?, updated_at_ms = {now} WHERE token = ?";
    pub(crate) const TEAM_SPEND: &str =
        "UPDATE llm_teams SET spend = spend + ?, updated_at_ms = {now} WHERE team_id = ?";
    /// Keys whose budget period is over: token, document, the period's end.
    pub(crate) const DUE_KEYS: &str = "SELECT token, doc, budget_reset_at_ms FROM llm_keys WHERE budget_reset_at_ms <= {now} AND budget_duration_ms IS NOT NULL AND NOT deleted";
    /// A new period (its end, token, the old end: one instance starts it).
    pub(crate) const RESET_KEY: &str = "UPDATE llm_keys SET spend = 0, budget_reset_at_ms = ?, updated_at_ms = {now} WHERE token = ? AND budget_reset_at_ms = ?";
    pub(crate) const DUE_TEAMS: &str = "SELECT team_id, doc, budget_reset_at_ms FROM llm_teams WHERE budget_reset_at_ms <= {now} AND budget_duration_ms IS NOT NULL AND NOT deleted";
    pub(crate) const RESET_TEAM: &str = "UPDATE llm_teams SET spend = 0, budget_reset_at_ms = ?, updated_at_ms = {now} WHERE team_id = ? AND budget_reset_at_ms = ?";
    pub(crate) const PURGE_KEYS: &str =
        "DELETE FROM llm_keys WHERE deleted AND updated_at_ms < {now} - 86400000";
    pub(crate) const PURGE_TEAMS: &str =
        "DELETE FROM llm_teams WHERE deleted AND updated_at_ms < {now} - 86400000";

    /// `SELECT` of keys (their read columns) with a `WHERE` clause.
    pub(crate) fn keys_where(clause: &str) -> String {
        format!("SELECT {} FROM llm_keys WHERE {clause}", super::KEY_COLUMNS)
    }

    /// `SELECT` of teams with a `WHERE` clause.
    pub(crate) fn teams_where(clause: &str) -> String {
        format!(
            "SELECT {} FROM llm_teams WHERE {clause}",
            super::TEAM_COLUMNS
        )
    }

    /// The `WHERE` clause of a key listing and its values, in order.
    pub(crate) fn list_filter(filter: &super::KeyFilter) -> (String, Vec<String>) {
        let mut clause = String::from("NOT deleted");
        let mut values = Vec::new();
        for (column, value) in [
            ("team_id", &filter.team_id),
            ("user_id", &filter.user_id),
            ("key_alias", &filter.key_alias),
            ("token", &filter.token),
        ] {
            if let Some(value) = value {
                clause.push_str(&format!(" AND {column} = ?"));
                values.push(value.clone());
            }
        }
        (clause, values)
    }

    /// `sql` with `{now}` as `now` and, when `numbered`, `?` as `$1`, `$2`, …
    pub(crate) fn dialect(sql: &str, now: &str, numbered: bool) -> String {
        let sql = sql.replace("{now}", now);
        if !numbered {
            return sql;
        }
        let mut out = String::with_capacity(sql.len() + 8);
        let mut n = 0;
        for c in sql.chars() {
            if c == '?' {
                n += 1;
                out.push_str(&format!("${n}"));
            } else {
                out.push(c);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::sql::dialect;

    #[test]
    fn placeholders_are_numbered_for_postgres() {
        assert_eq!(
            dialect("UPDATE t SET a = ?, u = {now} WHERE b = ?", "NOW()", true),
            "UPDATE t SET a = $1, u = NOW() WHERE b = $2"
        );
        assert_eq!(dialect("a = ?", "x", false), "a = ?");
    }
}
