//! The shared ledger: PostgreSQL, for many gateway instances writing one table.

use std::sync::LazyLock;

use tokio_postgres::types::{ToSql, Type};
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
            if records.is_empty() {
                return Ok(());
            }
            let mut guard = self.client().await?;
            let client = guard.as_mut().expect("connected");
            if let Err(e) = insert(client, records).await {
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

/// The column types, in [`COLUMNS`]' order.
const TYPES: [Type; 24] = [
    Type::TEXT_ARRAY,   // request_id
    Type::INT8_ARRAY,   // started_at_ms
    Type::TEXT_ARRAY,   // key_name
    Type::TEXT_ARRAY,   // requested_model
    Type::TEXT_ARRAY,   // route
    Type::TEXT_ARRAY,   // provider
    Type::TEXT_ARRAY,   // upstream_model
    Type::INT4_ARRAY,   // status
    Type::TEXT_ARRAY,   // outcome
    Type::BOOL_ARRAY,   // stream
    Type::INT8_ARRAY,   // prompt_tokens
    Type::INT8_ARRAY,   // completion_tokens
    Type::INT8_ARRAY,   // cached_tokens
    Type::INT8_ARRAY,   // reasoning_tokens
    Type::FLOAT8_ARRAY, // cost_usd
    Type::FLOAT8_ARRAY, // latency_ms
    Type::FLOAT8_ARRAY, // ttft_ms
    Type::INT4_ARRAY,   // attempts
    Type::TEXT_ARRAY,   // cache
    Type::BOOL_ARRAY,   // replay
    Type::TEXT_ARRAY,   // error_type
    Type::TEXT_ARRAY,   // usage_source
    Type::TEXT_ARRAY,   // endpoint
    Type::TEXT_ARRAY,   // team_id
];

/// A whole batch in one statement and one round trip: each column goes as an array and
/// `UNNEST` turns them back into rows (one statement is atomic: no transaction needed;
/// the unnamed statement with its types given: no prepare round trip).
static INSERT: LazyLock<String> = LazyLock::new(|| {
    let arrays = (1..=TYPES.len())
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!("INSERT INTO llm_usage ({COLUMNS}) SELECT * FROM UNNEST({arrays})")
});

async fn insert(client: &Client, records: &[UsageRecord]) -> Result<u64, tokio_postgres::Error> {
    fn column<'a, T>(records: &'a [UsageRecord], field: impl Fn(&'a UsageRecord) -> T) -> Vec<T> {
        records.iter().map(field).collect()
    }
    let tokens = |of: fn(&UsageRecord) -> u64| column(records, move |r| of(r) as i64);
    let columns: [Box<dyn ToSql + Send + Sync + '_>; 24] = [
        Box::new(column(records, |r| r.request_id.as_str())),
        Box::new(column(records, |r| r.started_at_ms)),
        Box::new(column(records, |r| r.key.as_str())),
        Box::new(column(records, |r| r.requested_model.as_str())),
        Box::new(column(records, |r| r.route.as_deref())),
        Box::new(column(records, |r| r.provider.as_deref())),
        Box::new(column(records, |r| r.upstream_model.as_deref())),
        Box::new(column(records, |r| i32::from(r.status))),
        Box::new(column(records, |r| r.outcome)),
        Box::new(column(records, |r| r.stream)),
        Box::new(tokens(|r| r.prompt_tokens)),
        Box::new(tokens(|r| r.completion_tokens)),
        Box::new(tokens(|r| r.cached_tokens)),
        Box::new(tokens(|r| r.reasoning_tokens)),
        Box::new(column(records, |r| r.cost_usd)),
        Box::new(column(records, |r| r.latency_ms)),
        Box::new(column(records, |r| r.ttft_ms)),
        Box::new(column(records, |r| r.attempts as i32)),
        Box::new(column(records, |r| r.cache.as_deref())),
        Box::new(column(records, |r| r.replay)),
        Box::new(column(records, |r| r.error_type.as_deref())),
        Box::new(column(records, |r| r.usage_source)),
        Box::new(column(records, |r| r.endpoint.as_str())),
        Box::new(column(records, |r| r.team.as_deref())),
    ];
    let params: Vec<(&(dyn ToSql + Sync), Type)> = columns
        .iter()
        .zip(TYPES)
        .map(|(column, ty)| (&**column as &(dyn ToSql + Sync), ty))
        .collect();
    client.execute_typed(&INSERT, &params).await
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    #[ignore = "needs PostgreSQL at DATABASE_URL: .ci/run starts it"]
    async fn a_batch_is_written_whole_in_one_statement_every_field_as_it_was() {
        let url = std::env::var("DATABASE_URL").expect("DATABASE_URL");
        let sink = PostgresSink::new(&url).unwrap();
        // Rows only this run writes: their start times are far in the future.
        let base = 4_000_000_000_000 + i64::from(std::process::id()) * 1_000;
        let record = |i: i64| UsageRecord {
            request_id: format!("pg-batch-{i}"),
            started_at_ms: base + i,
            key: format!("key-{i}"),
            team: (i % 2 == 0).then(|| "team".to_owned()),
            requested_model: "m".to_owned(),
            route: (i % 3 == 0).then(|| "combo".to_owned()),
            provider: (i % 3 != 1).then(|| "up".to_owned()),
            upstream_model: (i % 3 != 1).then(|| "up-m".to_owned()),
            status: if i % 5 == 0 { 502 } else { 200 },
            outcome: if i % 5 == 0 { "upstream_error" } else { "ok" },
            stream: i % 2 == 1,
            prompt_tokens: i as u64,
            completion_tokens: 2 * i as u64,
            cached_tokens: i as u64 / 2,
            reasoning_tokens: i as u64 / 3,
            cost_usd: (i % 4 != 0).then_some(i as f64 * 0.001),
            latency_ms: 1.5 + i as f64,
            ttft_ms: (i % 2 == 1).then_some(0.25 * i as f64),
            attempts: (i % 3) as u32,
            cache: (i % 4 == 1).then(|| "miss".to_owned()),
            replay: i % 7 == 0,
            error_type: (i % 5 == 0).then(|| "upstream_error".to_owned()),
            usage_source: if i % 2 == 0 { "upstream" } else { "estimated" },
            endpoint: if i % 2 == 0 { "chat" } else { "messages" }.to_owned(),
            trace: None,
        };
        let batch: Vec<_> = (0..37).map(record).collect();
        sink.write(&batch).await.unwrap();
        sink.write(&[]).await.unwrap();
        let read = sink
            .query(base, base + 1_000, 100, Order::OldestFirst)
            .await
            .unwrap();
        assert_eq!(read, batch);
    }
}
