//! Keys and teams in the SQLite ledger file.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Row};

use super::sql::{self, dialect};
use super::{
    key_doc, key_from, next_period_end, period_ms, team_doc, team_from, Changes, KeyFilter,
    KeyStore, SCHEMA,
};
use crate::store::{StoreError, StoreFuture};
use crate::tenancy::model::{KeyRow, TeamRow};

/// SQLite's clock in ms since the Unix epoch.
const NOW: &str = "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)";

/// Keys and teams in a SQLite file (the ledger's, by default). Statements run on tokio's
/// blocking pool.
#[derive(Clone)]
pub struct SqliteKeyStore {
    conn: Arc<Mutex<Connection>>,
}

fn err(e: impl std::fmt::Display) -> StoreError {
    StoreError(format!("sqlite: {e}"))
}

fn q(sql: &str) -> String {
    dialect(sql, NOW, false)
}

/// doc, spend, budget reset, created, updated, deleted, id.
type RawRow = (String, f64, Option<i64>, i64, i64, bool, String);

fn read_key(row: &Row<'_>) -> rusqlite::Result<RawRow> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
    ))
}

fn key_of(raw: RawRow) -> Result<KeyRow, StoreError> {
    key_from(&raw.0, raw.1, raw.2, raw.3, raw.4)
}

fn team_of(raw: RawRow) -> Result<TeamRow, StoreError> {
    team_from(&raw.0, raw.1, raw.2, raw.3, raw.4)
}

impl SqliteKeyStore {
    /// Opens (or creates) the tables in the file at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        // Every statement the lookups and the spend tick run stays prepared.
        conn.set_prepared_statement_cache_capacity(32);
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    fn run<'a, T: Send + 'static>(
        &'a self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> StoreFuture<'a, T> {
        let conn = self.conn.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || f(&mut conn.lock().expect("not poisoned")))
                .await
                .map_err(err)?
        })
    }
}

fn select<T>(
    conn: &Connection,
    sql: &str,
    values: impl rusqlite::Params,
    of: fn(RawRow) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut statement = conn.prepare_cached(sql).map_err(err)?;
    let raw = statement
        .query_map(values, read_key)
        .map_err(err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(err)?;
    raw.into_iter().map(of).collect()
}

impl KeyStore for SqliteKeyStore {
    fn insert_key<'a>(&'a self, row: &'a KeyRow) -> StoreFuture<'a, ()> {
        let row = row.clone();
        self.run(move |conn| {
            let tx = conn.transaction().map_err(err)?;
            tx.execute(&q(sql::DROP_KEY_TOMBSTONE), [&row.token])
                .map_err(err)?;
            tx.execute(
                &q(sql::INSERT_KEY),
                params![
                    row.token,
                    row.key_alias,
                    row.team_id,
                    row.user_id,
                    period_ms(row.budget_duration.as_deref()),
                    row.budget_reset_at_ms,
                    key_doc(&row),
                ],
            )
            .map_err(err)?;
            tx.commit().map_err(err)
        })
    }

    fn save_key<'a>(&'a self, row: &'a KeyRow) -> StoreFuture<'a, ()> {
        let row = row.clone();
        self.run(move |conn| {
            conn.execute(
                &q(sql::SAVE_KEY),
                params![
                    row.key_alias,
                    row.team_id,
                    row.user_id,
                    period_ms(row.budget_duration.as_deref()),
                    row.budget_reset_at_ms,
                    key_doc(&row),
                    row.token,
                ],
            )
            .map(drop)
            .map_err(err)
        })
    }

    fn delete_keys<'a>(&'a self, tokens: &'a [String]) -> StoreFuture<'a, Vec<String>> {
        let tokens = tokens.to_vec();
        self.run(move |conn| {
            let tx = conn.transaction().map_err(err)?;
            let mut deleted = Vec::new();
            for token in tokens {
                if tx.execute(&q(sql::DELETE_KEY), [&token]).map_err(err)? > 0 {
                    deleted.push(token);
                }
            }
            tx.commit().map_err(err)?;
            Ok(deleted)
        })
    }

    fn key<'a>(&'a self, token: &'a str) -> StoreFuture<'a, Option<KeyRow>> {
        let token = token.to_owned();
        self.run(move |conn| {
            let raw = conn
                .prepare_cached(&sql::keys_where("token = ? AND NOT deleted"))
                .map_err(err)?
                .query_row([&token], read_key)
                .optional()
                .map_err(err)?;
            raw.map(key_of).transpose()
        })
    }

    fn key_by_alias<'a>(&'a self, alias: &'a str) -> StoreFuture<'a, Option<KeyRow>> {
        let alias = alias.to_owned();
        self.run(move |conn| {
            let raw = conn
                .prepare_cached(&sql::keys_where("key_alias = ? AND NOT deleted"))
                .map_err(err)?
                .query_row([&alias], read_key)
                .optional()
                .map_err(err)?;
            raw.map(key_of).transpose()
        })
    }

    fn list_keys<'a>(
        &'a self,
        filter: &'a KeyFilter,
        offset: u64,
        limit: u64,
    ) -> StoreFuture<'a, (Vec<KeyRow>, u64)> {
        let (clause, values) = sql::list_filter(filter);
        self.run(move |conn| {
            let total: i64 = conn
                .query_row(
                    &format!("SELECT COUNT(*) FROM llm_keys WHERE {clause}"),
                    params_from_iter(values.iter()),
                    |r| r.get(0),
                )
                .map_err(err)?;
            let mut all: Vec<rusqlite::types::Value> = values
                .into_iter()
                .map(rusqlite::types::Value::from)
                .collect();
            all.push(i64::try_from(limit).unwrap_or(i64::MAX).into());
            all.push(i64::try_from(offset).unwrap_or(i64::MAX).into());
            let rows = select(
                conn,
                &sql::keys_where(&format!(
                    "{clause} ORDER BY created_at_ms DESC, token DESC LIMIT ? OFFSET ?"
                )),
                params_from_iter(all.iter()),
                key_of,
            )?;
            Ok((rows, u64::try_from(total).unwrap_or(0)))
        })
    }

    fn insert_team<'a>(&'a self, row: &'a TeamRow) -> StoreFuture<'a, ()> {
        let row = row.clone();
        self.run(move |conn| {
            let tx = conn.transaction().map_err(err)?;
            tx.execute(&q(sql::DROP_TEAM_TOMBSTONE), [&row.team_id])
                .map_err(err)?;
            tx.execute(
                &q(sql::INSERT_TEAM),
                params![
                    row.team_id,
                    period_ms(row.budget_duration.as_deref()),
                    row.budget_reset_at_ms,
                    team_doc(&row),
                ],
            )
            .map_err(err)?;
            tx.commit().map_err(err)
        })
    }

    fn save_team<'a>(&'a self, row: &'a TeamRow) -> StoreFuture<'a, ()> {
        let row = row.clone();
        self.run(move |conn| {
            conn.execute(
                &q(sql::SAVE_TEAM),
                params![
                    period_ms(row.budget_duration.as_deref()),
                    row.budget_reset_at_ms,
                    team_doc(&row),
                    row.team_id,
                ],
            )
            .map(drop)
            .map_err(err)
        })
    }

    fn delete_teams<'a>(&'a self, ids: &'a [String]) -> StoreFuture<'a, Vec<String>> {
        let ids = ids.to_vec();
        self.run(move |conn| {
            let tx = conn.transaction().map_err(err)?;
            let mut deleted = Vec::new();
            for id in ids {
                if tx.execute(&q(sql::DELETE_TEAM), [&id]).map_err(err)? > 0 {
                    deleted.push(id);
                }
            }
            tx.commit().map_err(err)?;
            Ok(deleted)
        })
    }

    fn team<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<TeamRow>> {
        let id = id.to_owned();
        self.run(move |conn| {
            let raw = conn
                .prepare_cached(&sql::teams_where("team_id = ? AND NOT deleted"))
                .map_err(err)?
                .query_row([&id], read_key)
                .optional()
                .map_err(err)?;
            raw.map(team_of).transpose()
        })
    }

    fn changes(&self, since_ms: i64) -> StoreFuture<'_, Changes> {
        self.run(move |conn| {
            let now_ms: i64 = conn
                .query_row(&q(sql::NOW), [], |r| r.get(0))
                .map_err(err)?;
            let mut changes = Changes {
                now_ms,
                ..Changes::default()
            };
            let keys = select(conn, &sql::keys_where("updated_at_ms >= ?"), [since_ms], Ok)?;
            for raw in keys {
                if raw.5 {
                    changes.deleted_keys.push(raw.6);
                } else {
                    changes.keys.push(key_of(raw)?);
                }
            }
            let teams = select(
                conn,
                &sql::teams_where("updated_at_ms >= ?"),
                [since_ms],
                Ok,
            )?;
            for raw in teams {
                if raw.5 {
                    changes.deleted_teams.push(raw.6);
                } else {
                    changes.teams.push(team_of(raw)?);
                }
            }
            Ok(changes)
        })
    }

    fn add_spend<'a>(
        &'a self,
        keys: &'a [(String, f64)],
        teams: &'a [(String, f64)],
    ) -> StoreFuture<'a, ()> {
        let (keys, teams) = (keys.to_vec(), teams.to_vec());
        self.run(move |conn| {
            let tx = conn.transaction().map_err(err)?;
            for (token, spend) in &keys {
                tx.prepare_cached(&q(sql::KEY_SPEND))
                    .and_then(|mut update| update.execute(params![spend, token]))
                    .map_err(err)?;
            }
            for (team, spend) in &teams {
                tx.prepare_cached(&q(sql::TEAM_SPEND))
                    .and_then(|mut update| update.execute(params![spend, team]))
                    .map_err(err)?;
            }
            let now: i64 = tx
                .prepare_cached(&q(sql::NOW))
                .and_then(|mut select| select.query_row([], |r| r.get(0)))
                .map_err(err)?;
            for (due, reset) in [
                (sql::DUE_KEYS, sql::RESET_KEY),
                (sql::DUE_TEAMS, sql::RESET_TEAM),
            ] {
                let rows: Vec<(String, String, i64)> = tx
                    .prepare_cached(&q(due))
                    .and_then(|mut select| {
                        select
                            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                            .collect()
                    })
                    .map_err(err)?;
                for (id, doc, ended) in rows {
                    let end = next_period_end(&doc, now);
                    tx.prepare_cached(&q(reset))
                        .and_then(|mut update| update.execute(params![end, id, ended]))
                        .map_err(err)?;
                }
            }
            for purge in [sql::PURGE_KEYS, sql::PURGE_TEAMS] {
                tx.prepare_cached(&q(purge))
                    .and_then(|mut delete| delete.execute([]))
                    .map_err(err)?;
            }
            tx.commit().map_err(err)
        })
    }
}
