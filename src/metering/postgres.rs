//! The shared ledger: PostgreSQL, for many gateway instances writing one table.

use tokio_postgres::{Client, Row};

use super::record::UsageRecord;
use super::sink::{create_table, known, Order, SinkError, SinkFuture, UsageSink, COLUMNS, MIGRATE};
use crate::store::Postgres;

/// A PostgreSQL ledger. Connects lazily and again after a failure, so a database that is
/// down only costs the batches written meanwhile (counted as dropped by the writer).
pub struct PostgresSink {
    db: Postgres,
}

fn err(e: impl std::fmt::Display) -> SinkError {
    SinkError(format!("postgres: {e}"))
}

impl PostgresSink {
    /// A sink for `url`; nothing is connected until the first batch.
    pub fn new(url: &str) -> Result<Self, SinkError> {
        let schema = format!("{}\n{MIGRATE}", create_table("BIGSERIAL PRIMARY KEY"));
        Ok(Self {
            db: Postgres::new(url, schema).map_err(|e| SinkError(e.0))?,
        })
    }

    async fn client(&self) -> Result<tokio::sync::MutexGuard<'_, Option<Client>>, SinkError> {
        self.db.client().await.map_err(|e| SinkError(e.0))
    }
}

impl UsageSink for PostgresSink {
    fn write<'a>(&'a self, records: &'a [UsageRecord]) -> SinkFuture<'a, ()> {
        Box::pin(async move {
            let mut guard = self.client().await?;
            let client = guard.as_mut().expect("connected");
            let placeholders = (1..=24)
                .map(|i| format!("${i}"))
                .collect::<Vec<_>>()
                .join(", ");
            let result = async {
                let tx = client.transaction().await?;
                let insert = tx
                    .prepare(&format!(
                        "INSERT INTO llm_usage ({COLUMNS}) VALUES ({placeholders})"
                    ))
                    .await?;
                for r in records {
                    let status = i32::from(r.status);
                    let attempts = r.attempts as i32;
                    let tokens = [
                        r.prompt_tokens as i64,
                        r.completion_tokens as i64,
                        r.cached_tokens as i64,
                        r.reasoning_tokens as i64,
                    ];
                    tx.execute(
                        &insert,
                        &[
                            &r.request_id,
                            &r.started_at_ms,
                            &r.key,
                            &r.requested_model,
                            &r.route,
                            &r.provider,
                            &r.upstream_model,
                            &status,
                            &r.outcome,
                            &r.stream,
                            &tokens[0],
                            &tokens[1],
                            &tokens[2],
                            &tokens[3],
                            &r.cost_usd,
                            &r.latency_ms,
                            &r.ttft_ms,
                            &attempts,
                            &r.cache,
                            &r.replay,
                            &r.error_type,
                            &r.usage_source,
                            &r.endpoint,
                            &r.team,
                        ],
                    )
                    .await?;
                }
                tx.commit().await
            }
            .await;
            if let Err(e) = result {
                *guard = None; // reconnect next time
                return Err(err(e));
            }
            Ok(())
        })
    }

    fn query(
        &self,
        from_ms: i64,
        to_ms: i64,
        limit: usize,
        order: Order,
    ) -> SinkFuture<'_, Vec<UsageRecord>> {
        Box::pin(async move {
            let guard = self.client().await?;
            let client = guard.as_ref().expect("connected");
            let rows = client
                .query(
                    &format!("SELECT {COLUMNS} FROM llm_usage WHERE started_at_ms >= $1 AND started_at_ms < $2 ORDER BY started_at_ms {} LIMIT $3", order.sql()),
                    &[&from_ms, &to_ms, &(limit as i64)],
                )
                .await
                .map_err(err)?;
            Ok(rows.iter().map(record).collect())
        })
    }
}

fn record(row: &Row) -> UsageRecord {
    UsageRecord {
        request_id: row.get(0),
        started_at_ms: row.get(1),
        key: row.get(2),
        requested_model: row.get(3),
        route: row.get(4),
        provider: row.get(5),
        upstream_model: row.get(6),
        status: row.get::<_, i32>(7) as u16,
        outcome: known(row.get(8)),
        stream: row.get(9),
        prompt_tokens: row.get::<_, i64>(10) as u64,
        completion_tokens: row.get::<_, i64>(11) as u64,
        cached_tokens: row.get::<_, i64>(12) as u64,
        reasoning_tokens: row.get::<_, i64>(13) as u64,
        cost_usd: row.get(14),
        latency_ms: row.get(15),
        ttft_ms: row.get(16),
        attempts: row.get::<_, i32>(17) as u32,
        cache: row.get(18),
        replay: row.get(19),
        error_type: row.get(20),
        usage_source: known(row.get(21)),
        endpoint: row.get(22),
        team: row.get(23),
        trace: None,
    }
}
