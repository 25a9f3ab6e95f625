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

/// The most rows one `INSERT` takes. A batch goes in statements of 16, 8, 4, 2 and 1 rows
/// (the fewest that add up to it; each size prepared once), so that a statement's start and
/// end and `AUTOINCREMENT`'s sequence update are paid a few times per batch rather than per
/// record. 16 × 24 parameters stay far under SQLite's limit (32,766).
const MAX_ROWS_PER_INSERT: usize = 16;
const COLUMN_COUNT: usize = 24;

/// `INSERT INTO llm_usage (…) VALUES (?, …), …` for 1, 2, 4, 8 and 16 rows.
fn insert_sql(rows: usize) -> &'static str {
    static SQL: std::sync::LazyLock<Vec<String>> = std::sync::LazyLock::new(|| {
        let row = format!("({})", vec!["?"; COLUMN_COUNT].join(", "));
        (0..=MAX_ROWS_PER_INSERT.ilog2())
            .map(|power| {
                let rows = vec![row.as_str(); 1 << power].join(", ");
                format!("INSERT INTO llm_usage ({COLUMNS}) VALUES {rows}")
            })
            .collect()
    });
    &SQL[rows.ilog2() as usize]
}

/// Appends a batch in one transaction.
fn insert(conn: &mut Connection, records: &[UsageRecord]) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    let mut rest = records;
    while !rest.is_empty() {
        // The largest power of two that fits; every chunk of that size goes through one
        // statement, its parameters bound anew (a cached statement's return to the cache
        // clears all of them: ~1k instructions per record at 16 rows).
        let rows = 1 << rest.len().min(MAX_ROWS_PER_INSERT).ilog2();
        let mut insert = tx.prepare_cached(insert_sql(rows))?;
        while rest.len() >= rows {
            let (these, after) = rest.split_at(rows);
            for (row, r) in these.iter().enumerate() {
                bind(&mut insert, row * COLUMN_COUNT, r)?;
            }
            insert.raw_execute()?;
            rest = after;
        }
    }
    tx.commit()
}

/// Binds one record's columns, in [`COLUMNS`]' order, after the first `offset` parameters.
fn bind(
    insert: &mut rusqlite::Statement<'_>,
    offset: usize,
    r: &UsageRecord,
) -> rusqlite::Result<()> {
    let values: [&dyn rusqlite::ToSql; COLUMN_COUNT] = [
        &r.request_id,
        &r.started_at_ms,
        &r.key,
        &r.requested_model,
        &r.route,
        &r.provider,
        &r.upstream_model,
        &r.status,
        &r.outcome,
        &r.stream,
        &(r.prompt_tokens as i64),
        &(r.completion_tokens as i64),
        &(r.cached_tokens as i64),
        &(r.reasoning_tokens as i64),
        &r.cost_usd,
        &r.latency_ms,
        &r.ttft_ms,
        &r.attempts,
        &r.cache,
        &r.replay,
        &r.error_type,
        &r.usage_source,
        &r.endpoint,
        &r.team,
    ];
    for (i, value) in values.into_iter().enumerate() {
        insert.raw_bind_parameter(offset + i + 1, value)?;
    }
    Ok(())
}

impl UsageSink for SqliteSink {
    fn write<'a>(&'a self, records: &'a [UsageRecord]) -> SinkFuture<'a, ()> {
        let records = records.to_vec();
        Box::pin(self.blocking(move |conn| insert(conn, &records).map_err(err)))
    }

    fn write_blocking(&self, records: &[UsageRecord]) -> Option<Result<(), SinkError>> {
        let mut conn = self.conn.lock().expect("not poisoned");
        Some(insert(&mut conn, records).map_err(err))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_batch_of_any_size_is_written_whole_and_in_order() {
        let dir = std::env::temp_dir().join(format!("llm-tower-sqlite-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let sink = SqliteSink::open(&dir.join("usage.db")).unwrap();
        // 37 = 16 + 16 + 4 + 1 rows; then 3 = 2 + 1 through the async path.
        let record = |i: i64| UsageRecord {
            request_id: format!("req-{i}"),
            started_at_ms: 1_000 + i,
            key: "k".to_owned(),
            requested_model: "m".to_owned(),
            team: (i % 2 == 0).then(|| "t".to_owned()),
            status: 200,
            outcome: "ok",
            prompt_tokens: i as u64,
            usage_source: "upstream",
            endpoint: "chat".to_owned(),
            ..UsageRecord::default()
        };
        let first: Vec<_> = (0..37).map(record).collect();
        sink.write_blocking(&first).unwrap().unwrap();
        let second: Vec<_> = (37..40).map(record).collect();
        sink.write(&second).await.unwrap();
        let read = sink
            .query(0, i64::MAX, 100, Order::OldestFirst)
            .await
            .unwrap();
        assert_eq!(read.len(), 40);
        for (i, r) in read.iter().enumerate() {
            let want = record(i as i64);
            assert_eq!(
                (&r.request_id, r.started_at_ms, &r.team, r.prompt_tokens),
                (
                    &want.request_id,
                    want.started_at_ms,
                    &want.team,
                    want.prompt_tokens
                )
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
