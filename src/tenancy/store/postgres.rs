//! Keys and teams in the PostgreSQL ledger database, shared by many instances.

use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use super::sql::{self, dialect};
use super::{
    key_doc, key_from, next_period_end, period_ms, team_doc, team_from, Changes, KeyFilter,
    KeyStore, SCHEMA,
};
use crate::store::{Postgres, StoreError, StoreFuture};
use crate::tenancy::model::{KeyRow, TeamRow};

/// PostgreSQL's clock in ms since the Unix epoch (the time of the statement, so that
/// instances with skewed clocks agree on the order of changes).
const NOW: &str = "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)";

/// Keys and teams in PostgreSQL. Connects lazily and again after a failure.
pub struct PostgresKeyStore {
    db: Postgres,
}

fn err(e: tokio_postgres::Error) -> StoreError {
    StoreError(format!("postgres: {e}"))
}

fn q(sql: &str) -> String {
    dialect(sql, NOW, true)
}

impl PostgresKeyStore {
    /// The store at `url`; nothing is connected until first used.
    pub fn new(url: &str) -> Result<Self, StoreError> {
        Ok(Self {
            db: Postgres::new(url, SCHEMA.to_owned())?,
        })
    }

    /// Runs `statements` (SQL, values) in one transaction; the rows each changed.
    async fn execute(
        &self,
        statements: &[(String, Vec<&(dyn ToSql + Sync)>)],
    ) -> Result<Vec<u64>, StoreError> {
        let mut guard = self.db.client().await?;
        let client = guard.as_mut().expect("connected");
        let result = async {
            let tx = client.transaction().await?;
            let mut changed = Vec::with_capacity(statements.len());
            for (sql, values) in statements {
                changed.push(tx.execute(sql.as_str(), values).await?);
            }
            tx.commit().await?;
            Ok(changed)
        }
        .await;
        if result.is_err() {
            *guard = None; // connect again next time
        }
        result.map_err(err)
    }

    async fn query(
        &self,
        sql: &str,
        values: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        let mut guard = self.db.client().await?;
        let client = guard.as_ref().expect("connected");
        let result = client.query(sql, values).await;
        if result.is_err() {
            *guard = None;
        }
        result.map_err(err)
    }
}

fn key_of(row: &Row) -> Result<KeyRow, StoreError> {
    key_from(row.get(0), row.get(1), row.get(2), row.get(3), row.get(4))
}

fn team_of(row: &Row) -> Result<TeamRow, StoreError> {
    team_from(row.get(0), row.get(1), row.get(2), row.get(3), row.get(4))
}

impl KeyStore for PostgresKeyStore {
    fn insert_key<'a>(&'a self, row: &'a KeyRow) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let period = period_ms(row.budget_duration.as_deref());
            let doc = key_doc(row);
            self.execute(&[
                (q(sql::DROP_KEY_TOMBSTONE), vec![&row.token]),
                (
                    q(sql::INSERT_KEY),
                    vec![
                        &row.token,
                        &row.key_alias,
                        &row.team_id,
                        &row.user_id,
                        &period,
                        &row.budget_reset_at_ms,
                        &doc,
                    ],
                ),
            ])
            .await
            .map(drop)
        })
    }

    fn save_key<'a>(&'a self, row: &'a KeyRow) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let period = period_ms(row.budget_duration.as_deref());
            let doc = key_doc(row);
            self.execute(&[(
                q(sql::SAVE_KEY),
                vec![
                    &row.key_alias,
                    &row.team_id,
                    &row.user_id,
                    &period,
                    &row.budget_reset_at_ms,
                    &doc,
                    &row.token,
                ],
            )])
            .await
            .map(drop)
        })
    }

    fn delete_keys<'a>(&'a self, tokens: &'a [String]) -> StoreFuture<'a, Vec<String>> {
        Box::pin(async move {
            let delete = q(sql::DELETE_KEY);
            let statements: Vec<_> = tokens
                .iter()
                .map(|t| (delete.clone(), vec![t as &(dyn ToSql + Sync)]))
                .collect();
            let changed = self.execute(&statements).await?;
            Ok(tokens
                .iter()
                .zip(changed)
                .filter(|(_, n)| *n > 0)
                .map(|(t, _)| t.clone())
                .collect())
        })
    }

    fn key<'a>(&'a self, token: &'a str) -> StoreFuture<'a, Option<KeyRow>> {
        Box::pin(async move {
            let rows = self
                .query(&q(&sql::keys_where("token = ? AND NOT deleted")), &[&token])
                .await?;
            rows.first().map(key_of).transpose()
        })
    }

    fn key_by_alias<'a>(&'a self, alias: &'a str) -> StoreFuture<'a, Option<KeyRow>> {
        Box::pin(async move {
            let rows = self
                .query(
                    &q(&sql::keys_where("key_alias = ? AND NOT deleted")),
                    &[&alias],
                )
                .await?;
            rows.first().map(key_of).transpose()
        })
    }

    fn list_keys<'a>(
        &'a self,
        filter: &'a KeyFilter,
        offset: u64,
        limit: u64,
    ) -> StoreFuture<'a, (Vec<KeyRow>, u64)> {
        Box::pin(async move {
            let (clause, values) = sql::list_filter(filter);
            let mut params: Vec<&(dyn ToSql + Sync)> =
                values.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
            let total = self
                .query(
                    &q(&format!("SELECT COUNT(*) FROM llm_keys WHERE {clause}")),
                    &params,
                )
                .await?;
            let total: i64 = total.first().map_or(0, |r| r.get(0));
            let (limit, offset) = (
                i64::try_from(limit).unwrap_or(i64::MAX),
                i64::try_from(offset).unwrap_or(i64::MAX),
            );
            params.push(&limit);
            params.push(&offset);
            let rows = self
                .query(
                    &q(&sql::keys_where(&format!(
                        "{clause} ORDER BY created_at_ms DESC, token DESC LIMIT ? OFFSET ?"
                    ))),
                    &params,
                )
                .await?;
            let keys = rows.iter().map(key_of).collect::<Result<_, _>>()?;
            Ok((keys, u64::try_from(total).unwrap_or(0)))
        })
    }

    fn insert_team<'a>(&'a self, row: &'a TeamRow) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let period = period_ms(row.budget_duration.as_deref());
            let doc = team_doc(row);
            self.execute(&[
                (q(sql::DROP_TEAM_TOMBSTONE), vec![&row.team_id]),
                (
                    q(sql::INSERT_TEAM),
                    vec![&row.team_id, &period, &row.budget_reset_at_ms, &doc],
                ),
            ])
            .await
            .map(drop)
        })
    }

    fn save_team<'a>(&'a self, row: &'a TeamRow) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let period = period_ms(row.budget_duration.as_deref());
            let doc = team_doc(row);
            self.execute(&[(
                q(sql::SAVE_TEAM),
                vec![&period, &row.budget_reset_at_ms, &doc, &row.team_id],
            )])
            .await
            .map(drop)
        })
    }

    fn delete_teams<'a>(&'a self, ids: &'a [String]) -> StoreFuture<'a, Vec<String>> {
        Box::pin(async move {
            let delete = q(sql::DELETE_TEAM);
            let statements: Vec<_> = ids
                .iter()
                .map(|t| (delete.clone(), vec![t as &(dyn ToSql + Sync)]))
                .collect();
            let changed = self.execute(&statements).await?;
            Ok(ids
                .iter()
                .zip(changed)
                .filter(|(_, n)| *n > 0)
                .map(|(t, _)| t.clone())
                .collect())
        })
    }

    fn team<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<TeamRow>> {
        Box::pin(async move {
            let rows = self
                .query(&q(&sql::teams_where("team_id = ? AND NOT deleted")), &[&id])
                .await?;
            rows.first().map(team_of).transpose()
        })
    }

    fn changes(&self, since_ms: i64) -> StoreFuture<'_, Changes> {
        Box::pin(async move {
            let now = self.query(&q(sql::NOW), &[]).await?;
            let mut changes = Changes {
                now_ms: now.first().map_or(0, |r| r.get(0)),
                ..Changes::default()
            };
            for row in self
                .query(&q(&sql::keys_where("updated_at_ms >= ?")), &[&since_ms])
                .await?
            {
                if row.get::<_, bool>(5) {
                    changes.deleted_keys.push(row.get(6));
                } else {
                    changes.keys.push(key_of(&row)?);
                }
            }
            for row in self
                .query(&q(&sql::teams_where("updated_at_ms >= ?")), &[&since_ms])
                .await?
            {
                if row.get::<_, bool>(5) {
                    changes.deleted_teams.push(row.get(6));
                } else {
                    changes.teams.push(team_of(&row)?);
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
        Box::pin(async move {
            let (key_spend, team_spend) = (q(sql::KEY_SPEND), q(sql::TEAM_SPEND));
            let mut statements: Vec<(String, Vec<&(dyn ToSql + Sync)>)> = Vec::new();
            for (token, spend) in keys {
                statements.push((key_spend.clone(), vec![spend, token]));
            }
            for (team, spend) in teams {
                statements.push((team_spend.clone(), vec![spend, team]));
            }
            for purge in [sql::PURGE_KEYS, sql::PURGE_TEAMS] {
                statements.push((q(purge), Vec::new()));
            }
            self.execute(&statements).await?;
            // New budget periods: each row's end is computed here (on LiteLLM's calendar),
            // and only the instance that still finds the old end starts the period.
            let now: i64 = self.query(&q(sql::NOW), &[]).await?[0].get(0);
            for (due, reset) in [
                (sql::DUE_KEYS, sql::RESET_KEY),
                (sql::DUE_TEAMS, sql::RESET_TEAM),
            ] {
                let rows = self.query(&q(due), &[]).await?;
                let resets: Vec<(Option<i64>, String, i64)> = rows
                    .iter()
                    .map(|row| (next_period_end(row.get(1), now), row.get(0), row.get(2)))
                    .collect();
                let statements: Vec<(String, Vec<&(dyn ToSql + Sync)>)> = resets
                    .iter()
                    .map(|(end, id, ended)| (q(reset), vec![end as _, id as _, ended as _]))
                    .collect();
                if !statements.is_empty() {
                    self.execute(&statements).await?;
                }
            }
            Ok(())
        })
    }
}
