//! The embedded ledger: a SQLite file in WAL mode.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{params, Connection};

use super::record::UsageRecord;
use super::sink::{
    create_table, known, Order, SinkError, SinkFuture, UsageSink, ADDED_COLUMNS, COLUMNS,
};

/// A SQLite ledger. Writes run on tokio's blocking pool, one batch per transaction.
#[derive(Clone)]
pub struct SqliteSink {
    conn: Arc<Mutex<Connection>>,
}

fn err(e: impl std::fmt::Display) -> SinkError {
    SinkError(format!("sqlite: {e}"))
}

impl SqliteSink {
    /// Opens (or creates) the ledger at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Self, SinkError> {
        let conn = Connection::open(path).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(err)?;
        conn.execute_batch(&create_table("INTEGER PRIMARY KEY AUTOINCREMENT"))
            .map_err(err)?;
        for (column, definition) in ADDED_COLUMNS {
            let present: bool = conn
                .query_row(
                    "SELECT COUNT(*) > 0 FROM pragma_table_info('llm_usage') WHERE name = ?1",
                    [column],
                    |row| row.get(0),
                )
                .map_err(err)?;
            if !present {
                conn.execute_batch(&format!(
                    "ALTER TABLE llm_usage ADD COLUMN {column} {definition}"
                ))
                .map_err(err)?;
            }
        }
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, SinkError> + Send + 'static,
    ) -> Result<T, SinkError> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || f(&mut conn.lock().expect("not poisoned")))
            .await
            .map_err(err)?
    }
}

impl UsageSink for SqliteSink {
    fn write<'a>(&'a self, records: &'a [UsageRecord]) -> SinkFuture<'a, ()> {
        let records = records.to_vec();
        Box::pin(self.blocking(move |conn| {
            let tx = conn.transaction().map_err(err)?;
            {
                let mut insert = tx
                    .prepare_cached(&format!(
                        "INSERT INTO llm_usage ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24)"
                    ))
                    .map_err(err)?;
                for r in &records {
                    insert
                        .execute(params![
                            r.request_id,
                            r.started_at_ms,
                            r.key,
                            r.requested_model,
                            r.route,
                            r.provider,
                            r.upstream_model,
                            r.status,
                            r.outcome,
                            r.stream,
                            r.prompt_tokens as i64,
                            r.completion_tokens as i64,
                            r.cached_tokens as i64,
                            r.reasoning_tokens as i64,
                            r.cost_usd,
                            r.latency_ms,
                            r.ttft_ms,
                            r.attempts,
                            r.cache,
                            r.replay,
                            r.error_type,
                            r.usage_source,
                            r.endpoint,
                            r.team,
                        ])
                        .map_err(err)?;
                }
            }
            tx.commit().map_err(err)
        }))
    }

    fn query(
        &self,
        from_ms: i64,
        to_ms: i64,
        limit: usize,
        order: Order,
    ) -> SinkFuture<'_, Vec<UsageRecord>> {
        Box::pin(self.blocking(move |conn| {
            let mut select = conn
                .prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM llm_usage WHERE started_at_ms >= ?1 AND started_at_ms < ?2 ORDER BY started_at_ms {} LIMIT ?3", order.sql()
                ))
                .map_err(err)?;
            let rows = select
                .query_map(params![from_ms, to_ms, limit as i64], |row| {
                    Ok(UsageRecord {
                        request_id: row.get(0)?,
                        started_at_ms: row.get(1)?,
                        key: row.get(2)?,
                        requested_model: row.get(3)?,
                        route: row.get(4)?,
                        provider: row.get(5)?,
                        upstream_model: row.get(6)?,
                        status: row.get(7)?,
                        outcome: known(&row.get::<_, String>(8)?),
                        stream: row.get(9)?,
                        prompt_tokens: row.get::<_, i64>(10)? as u64,
                        completion_tokens: row.get::<_, i64>(11)? as u64,
                        cached_tokens: row.get::<_, i64>(12)? as u64,
                        reasoning_tokens: row.get::<_, i64>(13)? as u64,
                        cost_usd: row.get(14)?,
                        latency_ms: row.get(15)?,
                        ttft_ms: row.get(16)?,
                        attempts: row.get(17)?,
                        cache: row.get(18)?,
                        replay: row.get(19)?,
                        error_type: row.get(20)?,
                        usage_source: known(&row.get::<_, String>(21)?),
                        endpoint: row.get(22)?,
                        team: row.get(23)?,
                        trace: None,
                    })
                })
                .map_err(err)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(err)
        }))
    }
}
