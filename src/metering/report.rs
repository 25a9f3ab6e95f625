//! `GET /v1/usage`: aggregates of the ledger over a time range.
//!
//! Query parameters: `from` and `to` (Unix seconds or RFC 3339; default: the last 24 h),
//! `group_by` = `model` (default; the model as requested), `key`, `team`, `provider`,
//! `target` (`provider/upstream model`: what a LiteLLM provider served, model by model),
//! `day`, `hour` or `minute` (UTC), or `all` (one group). Each group reports requests, errors and the error rate,
//! tokens by kind, cost, p50/p95 latency and p50 time to first token (ms) and the cache hit
//! rate (cache hits and idempotent replays over requests). At most a million records are
//! read; `truncated` says when there were more.
//!
//! `GET /v1/usage/records`: the newest records themselves (`from`, `to`, `limit` up to
//! 1,000, default 100), filtered by `model`, `provider`, `key`, `outcome` or `status`.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::record::UsageRecord;
use crate::error::GatewayError;

const MAX_RECORDS: usize = 1_000_000;

/// How records are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupBy {
    /// The gateway key's name.
    Key,
    /// The virtual key's team (`none` for keys without one).
    Team,
    /// The model as requested.
    Model,
    /// The provider that answered.
    Provider,
    /// The provider and the model it was asked for (`provider/upstream model`).
    Target,
    /// UTC day.
    Day,
    /// UTC hour.
    Hour,
    /// UTC minute.
    Minute,
    /// Everything in one group, `all`.
    All,
}

/// A parsed `GET /v1/usage` query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportQuery {
    /// Start, inclusive, in ms since the epoch.
    pub from_ms: i64,
    /// End, exclusive.
    pub to_ms: i64,
    /// Grouping.
    pub group_by: GroupBy,
}

impl ReportQuery {
    /// Reads the query string; a bad parameter is a 400 naming it.
    pub fn parse(query: Option<&str>) -> Result<Self, GatewayError> {
        let now = SystemTime::now();
        let mut to = now;
        let mut from = None;
        let mut group_by = GroupBy::Model;
        for pair in query
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty())
        {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = value
                .replace("%3A", ":")
                .replace("%3a", ":")
                .replace("%2B", "+");
            match name {
                "from" => from = Some(time(name, &value)?),
                "to" => to = time(name, &value)?,
                "group_by" => group_by = match value.as_str() {
                    "key" => GroupBy::Key,
                    "team" => GroupBy::Team,
                    "model" => GroupBy::Model,
                    "provider" => GroupBy::Provider,
                    "target" => GroupBy::Target,
                    "day" => GroupBy::Day,
                    "hour" => GroupBy::Hour,
                    "minute" => GroupBy::Minute,
                    "all" => GroupBy::All,
                    _ => return Err(GatewayError::invalid_param(
                        "group_by",
                        "group_by must be key, team, model, provider, target, day, hour, minute or all.",
                    )),
                },
                _ => {
                    return Err(GatewayError::invalid_param(
                        name,
                        format!("Unknown parameter `{name}`: use from, to and group_by."),
                    ))
                }
            }
        }
        let from = from.unwrap_or(to - Duration::from_secs(24 * 3600));
        let ms = |t: SystemTime| {
            t.duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64)
        };
        Ok(Self {
            from_ms: ms(from),
            to_ms: ms(to),
            group_by,
        })
    }

    /// The most records a report reads.
    pub fn limit(&self) -> usize {
        MAX_RECORDS
    }
}

fn time(name: &str, value: &str) -> Result<SystemTime, GatewayError> {
    if let Ok(seconds) = value.parse::<u64>() {
        return Ok(UNIX_EPOCH + Duration::from_secs(seconds));
    }
    humantime::parse_rfc3339_weak(value).map_err(|_| {
        GatewayError::invalid_param(
            name,
            format!("`{name}` must be Unix seconds or an RFC 3339 time, not `{value}`."),
        )
    })
}

#[derive(Debug, Default, Serialize, PartialEq)]
struct Group {
    group: String,
    requests: u64,
    errors: u64,
    error_rate: f64,
    cancelled: u64,
    prompt_tokens: u64,
    completion_tokens: u64,
    cached_tokens: u64,
    reasoning_tokens: u64,
    cost_usd: f64,
    latency_ms_p50: f64,
    latency_ms_p95: f64,
    ttft_ms_p50: Option<f64>,
    cache_hit_rate: f64,
    #[serde(skip)]
    latencies: Vec<f64>,
    #[serde(skip)]
    ttfts: Vec<f64>,
    #[serde(skip)]
    hits: u64,
}

/// The report body for `records`.
pub fn aggregate(query: &ReportQuery, records: &[UsageRecord]) -> serde_json::Value {
    let mut groups: BTreeMap<String, Group> = BTreeMap::new();
    for r in records {
        let name = match query.group_by {
            GroupBy::Key => r.key.clone(),
            GroupBy::Team => r.team.clone().unwrap_or_else(|| "none".to_owned()),
            GroupBy::Model => r.requested_model.clone(),
            GroupBy::Provider => r.provider.clone().unwrap_or_else(|| "none".to_owned()),
            GroupBy::All => "all".to_owned(),
            GroupBy::Target => match (&r.provider, &r.upstream_model) {
                (Some(p), Some(m)) => format!("{p}/{m}"),
                (Some(p), None) => p.clone(),
                _ => "none".to_owned(),
            },
            GroupBy::Day | GroupBy::Hour | GroupBy::Minute => {
                let at = UNIX_EPOCH + Duration::from_millis(r.started_at_ms.max(0) as u64);
                let text = humantime::format_rfc3339_seconds(at).to_string();
                match query.group_by {
                    GroupBy::Day => text[..10].to_owned(),
                    GroupBy::Hour => format!("{}:00:00Z", &text[..13]),
                    _ => format!("{}:00Z", &text[..16]),
                }
            }
        };
        let g = groups.entry(name.clone()).or_insert_with(|| Group {
            group: name,
            ..Group::default()
        });
        g.requests += 1;
        g.errors += u64::from(!matches!(r.outcome, "ok" | "cancelled"));
        g.cancelled += u64::from(r.outcome == "cancelled");
        g.prompt_tokens += r.prompt_tokens;
        g.completion_tokens += r.completion_tokens;
        g.cached_tokens += r.cached_tokens;
        g.reasoning_tokens += r.reasoning_tokens;
        g.cost_usd += r.cost_usd.unwrap_or(0.0);
        g.latencies.push(r.latency_ms);
        g.ttfts.extend(r.ttft_ms);
        g.hits += u64::from(r.replay || r.cache.as_deref().is_some_and(|c| c.ends_with("hit")));
    }
    let data: Vec<Group> = groups
        .into_values()
        .map(|mut g| {
            g.latencies.sort_by(f64::total_cmp);
            g.latency_ms_p50 = percentile(&g.latencies, 0.50);
            g.latency_ms_p95 = percentile(&g.latencies, 0.95);
            g.ttfts.sort_by(f64::total_cmp);
            g.ttft_ms_p50 = (!g.ttfts.is_empty()).then(|| percentile(&g.ttfts, 0.50));
            g.error_rate = g.errors as f64 / g.requests as f64;
            g.cache_hit_rate = g.hits as f64 / g.requests as f64;
            g
        })
        .collect();
    serde_json::json!({
        "object": "usage.report",
        "from": query.from_ms / 1000,
        "to": query.to_ms / 1000,
        "group_by": query.group_by,
        "truncated": records.len() >= MAX_RECORDS,
        "data": data,
    })
}

/// A parsed `GET /v1/usage/records` query.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordsQuery {
    /// Start, inclusive, in ms since the epoch.
    pub from_ms: i64,
    /// End, exclusive.
    pub to_ms: i64,
    /// Most records returned.
    pub limit: usize,
    /// Only these (`None`: any): the requested model, the provider, the key's name, the
    /// outcome, the HTTP status.
    pub model: Option<String>,
    /// See `model`.
    pub provider: Option<String>,
    /// See `model`.
    pub key: Option<String>,
    /// See `model`.
    pub outcome: Option<String>,
    /// See `model`.
    pub status: Option<u16>,
}

/// How many of the newest records a filtered listing looks through.
pub const RECORDS_SCANNED: usize = 20_000;

impl RecordsQuery {
    /// Reads the query string; a bad parameter is a 400 naming it.
    pub fn parse(query: Option<&str>) -> Result<Self, GatewayError> {
        let now = SystemTime::now();
        let mut to = now;
        let mut from = None;
        let mut out = Self {
            limit: 100,
            ..Self::default()
        };
        for pair in query
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty())
        {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_encoding::percent_decode_str(&value.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned();
            let text = || (!value.is_empty()).then(|| value.clone());
            match name {
                "from" => from = Some(time(name, &value)?),
                "to" => to = time(name, &value)?,
                "limit" => {
                    out.limit = value
                        .parse::<usize>()
                        .ok()
                        .filter(|n| (1..=1000).contains(n))
                        .ok_or_else(|| {
                            GatewayError::invalid_param("limit", "limit must be 1 to 1000.")
                        })?;
                }
                "model" => out.model = text(),
                "provider" => out.provider = text(),
                "key" => out.key = text(),
                "outcome" => out.outcome = text(),
                "status" if value.is_empty() => {}
                "status" => {
                    out.status = Some(value.parse().map_err(|_| {
                        GatewayError::invalid_param("status", "status must be an HTTP status code.")
                    })?);
                }
                _ => {
                    return Err(GatewayError::invalid_param(
                        name,
                        format!(
                            "Unknown parameter `{name}`: use from, to, limit, model, provider, key, outcome and status."
                        ),
                    ))
                }
            }
        }
        let from = from.unwrap_or(to - Duration::from_secs(30 * 24 * 3600));
        let ms = |t: SystemTime| {
            t.duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64)
        };
        out.from_ms = ms(from);
        out.to_ms = ms(to);
        Ok(out)
    }

    fn matches(&self, r: &UsageRecord) -> bool {
        let is = |want: &Option<String>, have: Option<&str>| {
            want.as_deref().is_none_or(|w| Some(w) == have)
        };
        is(&self.model, Some(&r.requested_model))
            && is(&self.provider, r.provider.as_deref())
            && is(&self.key, Some(&r.key))
            && is(&self.outcome, Some(r.outcome))
            && self.status.is_none_or(|s| s == r.status)
    }
}

/// The listing body: the newest of `records` (newest first) that match.
pub fn listing(query: &RecordsQuery, records: &[UsageRecord]) -> serde_json::Value {
    let data: Vec<&UsageRecord> = records
        .iter()
        .filter(|r| query.matches(r))
        .take(query.limit)
        .collect();
    serde_json::json!({
        "object": "list",
        "scanned": records.len(),
        "data": data,
    })
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(model: &str, latency: f64, outcome: &'static str, cost: f64) -> UsageRecord {
        UsageRecord {
            requested_model: model.into(),
            key: "team-a".into(),
            started_at_ms: 1_795_870_800_000, // 2026-11-28T13:00:00Z
            latency_ms: latency,
            outcome,
            prompt_tokens: 10,
            completion_tokens: 5,
            cost_usd: Some(cost),
            ..UsageRecord::default()
        }
    }

    #[test]
    fn groups_sum_tokens_and_cost_and_rank_latencies() {
        let mut records: Vec<_> = (1..=20)
            .map(|i| record("a", f64::from(i), "ok", 0.5))
            .collect();
        records.push(record("b", 7.0, "error", 0.0));
        records[0].replay = true;
        let query = ReportQuery::parse(Some("from=0&to=1895870800&group_by=model")).unwrap();
        let report = aggregate(&query, &records);
        let a = &report["data"][0];
        assert_eq!(a["group"], "a");
        assert_eq!(a["requests"], 20);
        assert_eq!(a["prompt_tokens"], 200);
        assert_eq!(a["cost_usd"], 10.0);
        assert_eq!(a["latency_ms_p50"], 10.0);
        assert_eq!(a["latency_ms_p95"], 19.0);
        assert_eq!(a["cache_hit_rate"], 0.05);
        assert_eq!(report["data"][1]["error_rate"], 1.0);

        let by_hour = aggregate(
            &ReportQuery {
                group_by: GroupBy::Hour,
                ..query
            },
            &records,
        );
        assert_eq!(by_hour["data"][0]["group"], "2026-11-28T13:00:00Z");
        let by_day = aggregate(
            &ReportQuery {
                group_by: GroupBy::Day,
                ..query
            },
            &records,
        );
        assert_eq!(by_day["data"][0]["group"], "2026-11-28");
    }

    #[test]
    fn queries_are_checked() {
        let q = ReportQuery::parse(Some(
            "from=2026-11-28T00:00:00Z&to=2026-11-29T00:00:00Z&group_by=key",
        ))
        .unwrap();
        assert_eq!(q.to_ms - q.from_ms, 86_400_000);
        assert_eq!(q.group_by, GroupBy::Key);
        assert_eq!(
            ReportQuery::parse(Some("group_by=color"))
                .unwrap_err()
                .status(),
            400
        );
        assert_eq!(
            ReportQuery::parse(Some("from=yesterday"))
                .unwrap_err()
                .status(),
            400
        );
        assert_eq!(
            ReportQuery::parse(Some("limit=5")).unwrap_err().status(),
            400
        );
    }
}
