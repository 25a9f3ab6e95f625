//! The writer: records queue up on the request path (never waiting) and are finished
//! (usage found or estimated, cost priced), exported to Prometheus and written in batches
//! by one task.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::price::PriceTable;
use super::record::{outcome_of_error, Unfinished, UsageRecord};
use super::sink::UsageSink;
use super::usage::{self, Usage};
use crate::sse;
use crate::telemetry::Tracer;

/// How long the writer waits for more records before writing a batch.
const BATCH_WINDOW: Duration = Duration::from_millis(100);

enum Message {
    Record(Box<Unfinished>),
    Flush(oneshot::Sender<()>),
}

/// The handle layers use to submit records; cheap to clone.
#[derive(Clone)]
pub struct Meter {
    tx: mpsc::Sender<Message>,
    dropped: metrics::Counter,
    sink: Option<Arc<dyn UsageSink>>,
    tracer: Option<Tracer>,
}

impl std::fmt::Debug for Meter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Meter").finish_non_exhaustive()
    }
}

impl Meter {
    /// Starts the writer on the current tokio runtime; with a `tracer`, each record's
    /// request span is exported too.
    pub fn spawn(
        sink: Option<Arc<dyn UsageSink>>,
        prices: PriceTable,
        queue: usize,
        batch: usize,
        tracer: Option<Tracer>,
    ) -> Self {
        let (tx, rx) = mpsc::channel(queue);
        let dropped = metrics::counter!("llm_tower_usage_records_dropped_total");
        tokio::spawn(write(
            rx,
            sink.clone(),
            Arc::new(prices),
            batch,
            dropped.clone(),
            tracer.clone(),
        ));
        Self {
            tx,
            dropped,
            sink,
            tracer,
        }
    }

    /// The tracer the records' spans go to, if any.
    pub(crate) fn tracer(&self) -> Option<&Tracer> {
        self.tracer.as_ref()
    }

    /// Queues a record; when the queue is full it is dropped and counted, never waited for.
    pub(crate) fn submit(&self, record: Box<Unfinished>) {
        if self.tx.try_send(Message::Record(record)).is_err() {
            self.dropped.increment(1);
        }
    }

    /// Waits until every record submitted before this call has been written (or dropped).
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Message::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }

    /// The ledger, for reports.
    pub fn sink(&self) -> Option<&Arc<dyn UsageSink>> {
        self.sink.as_ref()
    }
}

async fn write(
    mut rx: mpsc::Receiver<Message>,
    sink: Option<Arc<dyn UsageSink>>,
    prices: Arc<PriceTable>,
    batch: usize,
    dropped: metrics::Counter,
    tracer: Option<Tracer>,
) {
    let mut messages = Vec::with_capacity(batch);
    let mut labels = ModelLabels::default();
    let mut last_warning: Option<tokio::time::Instant> = None;
    let mut exports = Exports::default();
    while rx.recv_many(&mut messages, batch).await > 0 {
        // Gather what arrives within a short window into one batch (one transaction),
        // unless someone waits for a flush.
        let deadline = tokio::time::Instant::now() + BATCH_WINDOW;
        while messages.len() < batch && !messages.iter().any(|m| matches!(m, Message::Flush(_))) {
            let room = batch - messages.len();
            match tokio::time::timeout_at(deadline, rx.recv_many(&mut messages, room)).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        let mut unfinished = Vec::with_capacity(messages.len());
        let mut flushes = Vec::new();
        for message in messages.drain(..) {
            match message {
                Message::Record(record) => unfinished.push(record),
                Message::Flush(done) => flushes.push(done),
            }
        }
        // Tokenizing and JSON parsing are CPU work: off the async workers; a sink that
        // writes by blocking calls (SQLite) writes there too.
        let prices = prices.clone();
        let tracer = tracer.clone();
        let blocking_sink = sink.clone();
        let (records, written) = tokio::task::spawn_blocking(move || {
            let records = unfinished
                .into_iter()
                .map(|u| match (&tracer, u.record.trace.is_some()) {
                    (Some(tracer), true) => {
                        let bodies = super::span::Bodies::read(
                            tracer,
                            &u.request,
                            &u.body,
                            u.sse,
                            u.log.as_ref(),
                        );
                        let record = finish(*u, &prices);
                        super::span::export(tracer, &record, &bodies);
                        record
                    }
                    _ => finish(*u, &prices),
                })
                .collect::<Vec<_>>();
            let written = match &blocking_sink {
                Some(sink) if !records.is_empty() => sink.write_blocking(&records),
                _ => None,
            };
            (records, written)
        })
        .await
        .unwrap_or_default();
        records.iter().for_each(|r| exports.record(r, &mut labels));
        records.iter().for_each(log_request);
        let written = match (written, &sink, records.is_empty()) {
            (Some(written), _, _) => written,
            (None, Some(sink), false) => sink.write(&records).await,
            (None, _, _) => Ok(()),
        };
        if let Err(err) = written {
            dropped.increment(records.len() as u64);
            let now = tokio::time::Instant::now();
            if last_warning.is_none_or(|t| now - t > Duration::from_secs(10)) {
                last_warning = Some(now);
                tracing::warn!(error = %err, lost = records.len(), "metering: the usage ledger is unavailable; records dropped");
            }
        }
        for done in flushes {
            let _ = done.send(());
        }
    }
}

/// One line per request, from its finished record (off the request path), for operators:
/// target `llm_tower::request` at DEBUG, so `RUST_LOG=info,llm_tower::request=debug` turns
/// it on. Off by default: tracing-subscriber's formatter costs about 22k instructions per
/// line (the e2e bench's JSON request: 146.5k without, 168.2k with), more than the rest of
/// the metering writer. Keys appear by their name only.
fn log_request(r: &UsageRecord) {
    tracing::debug!(
        target: "llm_tower::request",
        request_id = %r.request_id,
        trace_id = r.trace.map(|t| t.trace_hex()),
        key = %r.key,
        team = r.team.as_deref(),
        endpoint = %r.endpoint,
        model = %r.requested_model,
        provider = r.provider.as_deref(),
        upstream_model = r.upstream_model.as_deref(),
        status = r.status,
        outcome = r.outcome,
        stream = r.stream,
        latency_ms = r.latency_ms,
        ttft_ms = r.ttft_ms,
        prompt_tokens = r.prompt_tokens,
        completion_tokens = r.completion_tokens,
        cost_usd = r.cost_usd,
        cache = r.cache.as_deref(),
        attempts = r.attempts,
        "request"
    );
}

/// Works out what the request path left open.
pub(crate) fn finish(u: Unfinished, prices: &PriceTable) -> UsageRecord {
    let mut record = u.record;
    let body = u.body.freeze();
    let reported = u.usage.or_else(|| {
        if u.sse {
            stream_usage(&body)
        } else {
            usage::from_json(&body)
        }
    });
    // A failure the request path knew only by its status or its end: the error body (or
    // the stream's error event) says which.
    let error_body = if record.status >= 400 && !u.sse {
        Some(&body[..])
    } else if u.sse && record.outcome == "error" {
        usage::last_error_event(&body)
    } else {
        None
    };
    if let Some((code, kind)) = error_body.and_then(usage::error_fields) {
        if record.outcome == "error" {
            record.outcome = outcome_of_error(code.as_deref(), kind.as_deref(), record.status);
        }
        record.error_type = record.error_type.or(kind);
    }
    // Counting tokens uses none (and costs nothing): its answer is a count, not usage.
    let reported = reported.filter(|_| record.endpoint != "count_tokens");
    let usage = match reported {
        Some(usage) => {
            record.usage_source = "upstream";
            Some(usage)
        }
        None if record.status < 400
            && !u.request.is_empty()
            && record.endpoint != "count_tokens" =>
        {
            record.usage_source = "estimated";
            Some(Usage::estimated(
                crate::tokens::count(&usage::prompt_text(&u.request)),
                crate::tokens::count(&usage::answer_text(&body, u.sse)),
            ))
        }
        None => {
            record.usage_source = "none";
            None
        }
    };
    if let Some(usage) = &usage {
        record.prompt_tokens = usage.prompt_tokens;
        record.completion_tokens = usage.completion_tokens;
        record.cached_tokens = usage.cached_tokens();
        record.reasoning_tokens = usage.reasoning_tokens();
    }
    let served_here = record.replay || record.cache.as_deref().is_some_and(|c| c.ends_with("hit"));
    record.cost_usd = if served_here {
        Some(0.0)
    } else {
        u.reported_cost.or_else(|| {
            let usage = usage?;
            let model = record
                .upstream_model
                .as_deref()
                .unwrap_or(&record.requested_model);
            prices
                .get_for(record.provider.as_deref(), model)
                .map(|p| p.cost(&usage))
        })
    };
    if let Some(hook) = u.hook {
        hook.0.observe(&record);
    }
    record
}

/// The usage a stream reported: its usage chunk (OpenAI), or the pieces of its events
/// merged (Anthropic's `message_start` and `message_delta`). One search over the body finds
/// the events that hold a usage object (one or two of a stream's), and only those are read.
fn stream_usage(body: &[u8]) -> Option<Usage> {
    // Built once: `memmem::find` builds a searcher per call.
    static USAGE: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\"usage\":{"));
    let mut found: Option<usage::Reported> = None;
    let mut from = 0;
    while let Some(i) = USAGE.find(&body[from..]) {
        let event = sse::event_around(body, from + i);
        sse::each_event(&body[event.clone()], &mut |event| {
            if USAGE.find(&event.data).is_some() {
                if let Some(usage) = usage::reported(&event.data) {
                    found.get_or_insert_with(Default::default).merge(usage);
                }
            }
            true
        });
        from = event.end.max(from + i + 1);
    }
    found.map(Usage::from)
}

/// Model names come from clients: after this many distinct ones, further names are
/// exported as `other`, so that Prometheus' series stay bounded.
const MAX_MODEL_LABELS: usize = 500;

/// The (provider, model) pairs seen, by their xxh3 hash: looked up per record without
/// copying the names (a collision would only let a pair in past the cap).
#[derive(Default)]
struct ModelLabels(std::collections::HashSet<u64, xxhash_rust::xxh3::Xxh3Builder>);

impl ModelLabels {
    fn label<'a>(&mut self, provider: &str, model: &'a str) -> &'a str {
        let pair = labels_hash(&[provider, model]);
        if self.0.len() < MAX_MODEL_LABELS {
            self.0.insert(pair);
        }
        if self.0.contains(&pair) {
            model
        } else {
            "other"
        }
    }
}

/// The xxh3 hash of label values, each ended by a byte no label holds.
fn labels_hash(values: &[&str]) -> u64 {
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    for value in values {
        hasher.update(value.as_bytes());
        hasher.update(&[0xff]);
    }
    hasher.digest()
}

/// Prometheus handles by label set, registered once: recording is then one hash of the
/// label values and a map lookup, with no copy of them (metrics' own `counter!` with
/// labels would build and hash the label set for each of the eight series, per record).
#[derive(Default)]
struct Exports {
    by_labels: std::collections::HashMap<u64, Series, xxhash_rust::xxh3::Xxh3Builder>,
}

struct Series {
    /// provider, model, key, status: to tell a hash collision from the same labels.
    labels: [Box<str>; 4],
    requests: metrics::Counter,
    latency: metrics::Histogram,
    ttft: metrics::Histogram,
    tokens: [metrics::Counter; 4],
    cost: metrics::Gauge,
}

impl Series {
    fn register(labels: [&str; 4]) -> Self {
        let [provider, model, key, status] = labels.map(str::to_owned);
        let all = [
            ("provider", provider),
            ("model", model),
            ("key", key),
            ("status", status),
        ];
        let tokens = |direction: &'static str| {
            let labels = [
                all[0].clone(),
                all[1].clone(),
                all[2].clone(),
                ("direction", direction.to_owned()),
            ];
            metrics::counter!("llm_tower_usage_tokens_total", &labels)
        };
        Series {
            labels: labels.map(Box::from),
            requests: metrics::counter!("llm_tower_usage_requests_total", &all),
            latency: metrics::histogram!("llm_tower_usage_latency_seconds", &all),
            ttft: metrics::histogram!("llm_tower_usage_ttft_seconds", &all),
            tokens: [
                tokens("prompt"),
                tokens("completion"),
                tokens("cached"),
                tokens("reasoning"),
            ],
            cost: metrics::gauge!("llm_tower_usage_cost_usd", &all[..3]),
        }
    }

    fn is_for(&self, labels: &[&str; 4]) -> bool {
        self.labels.iter().zip(labels).all(|(a, b)| **a == **b)
    }
}

impl Exports {
    fn record(&mut self, r: &UsageRecord, labels: &mut ModelLabels) {
        let provider = r.provider.as_deref().unwrap_or("none");
        let model = labels.label(
            provider,
            r.upstream_model.as_deref().unwrap_or(&r.requested_model),
        );
        // `http`'s own text of the code: no formatting, no allocation.
        let status =
            http::StatusCode::from_u16(r.status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
        let values = [provider, model, r.key.as_str(), status.as_str()];
        let series = match self.by_labels.entry(labels_hash(&values)) {
            std::collections::hash_map::Entry::Occupied(entry) if entry.get().is_for(&values) => {
                entry.into_mut()
            }
            std::collections::hash_map::Entry::Occupied(_) => {
                // Two label sets with one hash (never seen in practice): the second is
                // registered on each record, which metrics resolves to the same series.
                return Series::register(values).record(r);
            }
            std::collections::hash_map::Entry::Vacant(entry) => {
                entry.insert(Series::register(values))
            }
        };
        series.record(r);
    }
}

impl Series {
    fn record(&self, r: &UsageRecord) {
        self.requests.increment(1);
        self.latency.record(r.latency_ms / 1e3);
        if let Some(ttft) = r.ttft_ms {
            self.ttft.record(ttft / 1e3);
        }
        let counts = [
            r.prompt_tokens,
            r.completion_tokens,
            r.cached_tokens,
            r.reasoning_tokens,
        ];
        for (counter, count) in self.tokens.iter().zip(counts) {
            if count > 0 {
                counter.increment(count);
            }
        }
        if let Some(cost) = r.cost_usd.filter(|c| *c > 0.0) {
            self.cost.increment(cost);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_s_usage_is_read_from_the_events_that_carry_it() {
        let openai = b"data: {\"choices\":[{\"delta\":{\"content\":\"the \\\"usage\\\":{ word\"}}]}\n\n\
            data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3,\"total_tokens\":10}}\n\n\
            data: [DONE]\n\n";
        let usage = stream_usage(openai).unwrap();
        assert_eq!((usage.prompt_tokens, usage.completion_tokens), (7, 3));

        // Anthropic's: input tokens at the start, output tokens at the end, merged; CRLF lines.
        let anthropic = b"event: message_start\r\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":12,\"output_tokens\":1}}}\r\n\r\n\
            event: content_block_delta\r\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"text\":\"hi\"}}\r\n\r\n\
            event: message_delta\r\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":5}}\r\n\r\n\
            event: message_stop\r\ndata: {\"type\":\"message_stop\"}\r\n\r\n";
        let usage = stream_usage(anthropic).unwrap();
        assert_eq!((usage.prompt_tokens, usage.completion_tokens), (12, 5));

        assert!(stream_usage(b"data: {\"choices\":[]}\n\ndata: [DONE]\n\n").is_none());
    }
}
