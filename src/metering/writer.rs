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
        // Tokenizing and JSON parsing are CPU work: off the async workers.
        let prices = prices.clone();
        let tracer = tracer.clone();
        let records = tokio::task::spawn_blocking(move || {
            unfinished
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
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        records.iter().for_each(|r| exports.record(r, &mut labels));
        records.iter().for_each(log_request);
        if let (Some(sink), false) = (&sink, records.is_empty()) {
            if let Err(err) = sink.write(&records).await {
                dropped.increment(records.len() as u64);
                let now = tokio::time::Instant::now();
                if last_warning.is_none_or(|t| now - t > Duration::from_secs(10)) {
                    last_warning = Some(now);
                    tracing::warn!(error = %err, lost = records.len(), "metering: the usage ledger is unavailable; records dropped");
                }
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
                usage::count_tokens(&usage::prompt_text(&u.request)),
                usage::count_tokens(&usage::answer_text(&body, u.sse)),
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
/// merged (Anthropic's `message_start` and `message_delta`).
fn stream_usage(body: &[u8]) -> Option<Usage> {
    // Built once: `memmem::find` builds a searcher per call, per event here.
    static USAGE: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\"usage\":{"));
    let mut found: Option<usage::Reported> = None;
    sse::each_event(body, &mut |event| {
        if USAGE.find(&event.data).is_some() {
            if let Some(usage) = usage::reported(&event.data) {
                found.get_or_insert_with(Default::default).merge(usage);
            }
        }
        true
    });
    found.map(Usage::from)
}

/// Model names come from clients: after this many distinct ones, further names are
/// exported as `other`, so that Prometheus' series stay bounded.
const MAX_MODEL_LABELS: usize = 500;

#[derive(Default)]
struct ModelLabels(std::collections::HashSet<(String, String)>);

impl ModelLabels {
    fn label(&mut self, provider: &str, model: &str) -> String {
        let key = (provider.to_owned(), model.to_owned());
        if self.0.contains(&key) || self.0.len() < MAX_MODEL_LABELS {
            self.0.insert(key);
            model.to_owned()
        } else {
            "other".to_owned()
        }
    }
}

/// Prometheus handles by label set, registered once: recording is then a hash lookup.
#[derive(Default)]
struct Exports {
    by_labels: std::collections::HashMap<[String; 4], Series>,
}

struct Series {
    requests: metrics::Counter,
    latency: metrics::Histogram,
    ttft: metrics::Histogram,
    tokens: [metrics::Counter; 4],
    cost: metrics::Gauge,
}

impl Exports {
    fn record(&mut self, r: &UsageRecord, labels: &mut ModelLabels) {
        let provider = r.provider.as_deref().unwrap_or("none");
        let model = labels.label(
            provider,
            r.upstream_model.as_deref().unwrap_or(&r.requested_model),
        );
        let key = [
            provider.to_owned(),
            model,
            r.key.clone(),
            r.status.to_string(),
        ];
        let series =
            self.by_labels
                .entry(key)
                .or_insert_with_key(|[provider, model, key, status]| {
                    let all = [
                        ("provider", provider.clone()),
                        ("model", model.clone()),
                        ("key", key.clone()),
                        ("status", status.clone()),
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
                });
        series.requests.increment(1);
        series.latency.record(r.latency_ms / 1e3);
        if let Some(ttft) = r.ttft_ms {
            series.ttft.record(ttft / 1e3);
        }
        let counts = [
            r.prompt_tokens,
            r.completion_tokens,
            r.cached_tokens,
            r.reasoning_tokens,
        ];
        for (counter, count) in series.tokens.iter().zip(counts) {
            if count > 0 {
                counter.increment(count);
            }
        }
        if let Some(cost) = r.cost_usd.filter(|c| *c > 0.0) {
            series.cost.increment(cost);
        }
    }
}
