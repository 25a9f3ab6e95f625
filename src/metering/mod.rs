//! Usage metering: tokens, cost and latency of every request, written to a ledger.
//!
//! The layer sits outside alias, idempotency, cache and combo, so it records everything
//! they do: the requested model and the alias or combo that served it, the provider and
//! model that answered, attempts, cache verdicts and idempotent replays (at no cost).
//!
//! - Usage comes from the upstream: a JSON body's `usage`, or a stream's usage chunk. When
//!   the client did not ask for `stream_options.include_usage`, the gateway asks for it
//!   and removes the usage chunk from what the client receives. The body is never
//!   buffered: the tap keeps a reference to each frame and reads them when the body ends.
//! - No usage from the upstream (a server that does not report it, a stream cut short, a
//!   client that left): estimated with the o200k tokenizer and marked `estimated`.
//! - Cost: LiteLLM's `x-litellm-response-cost` when present, else a price table (built in,
//!   or `metering.prices`: our YAML or LiteLLM's price list).
//! - Records queue for one writer task (a full queue drops and counts, requests never
//!   wait), which prices them, exports Prometheus metrics and writes them in batches to
//!   SQLite (the default) or PostgreSQL. [`Meter::flush`] drains it on shutdown.
//! - `GET /v1/usage` reports aggregates (see [`report`]).
//!
//! ```
//! use llm_tower::metering::{MeteringLayer, MeteringSettings, SinkKind};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! // Inside a runtime: the writer is a task. `sink: none` keeps Prometheus only.
//! let metering = MeteringLayer::from_settings(&MeteringSettings::default().sink(SinkKind::None)).unwrap();
//! let service = tower::ServiceBuilder::new()
//!     .layer(llm_tower::parse::ParseLayer::new(1 << 20))
//!     .layer(metering.clone())
//!     .service(llm_tower::executor::MockExecutor::new());
//! # let _ = service;
//! metering.meter().unwrap().flush().await; // on shutdown: every record written
//! # });
//! ```

mod body;
mod postgres;
mod price;
mod record;
pub mod report;
mod service;
mod settings;
mod sink;
mod span;
mod sqlite;
mod usage;
mod writer;

pub use self::postgres::PostgresSink;
pub use self::price::{Price, PriceTable};
pub use self::record::UsageRecord;
pub use self::service::{Metering, MeteringFuture, MeteringLayer, Pending};
pub use self::settings::{MeteringSettings, SinkKind};
pub use self::sink::{Order, SinkError, SinkFuture, UsageSink};
pub use self::sqlite::SqliteSink;
pub use self::usage::Usage;
pub use self::writer::Meter;

use std::sync::Arc;

/// Told what a request used, by the layers that need it (rate limits, budgets): a
/// response extension that the layer answering puts in, and metering takes out.
pub trait UsageObserver: Send + Sync + 'static {
    /// The response is over: its body ended or the client left (on the request path:
    /// keep it short).
    fn ended(&self) {}
    /// The request's finished record, its tokens and cost (off the request path).
    fn observe(&self, record: &UsageRecord);
}

/// A [`UsageObserver`] as a response extension.
#[derive(Clone)]
pub struct UsageHook(pub Arc<dyn UsageObserver>);

impl UsageHook {
    /// A hook telling `observer`, and `existing` too when there is one (a response may
    /// carry the observers of several layers).
    pub fn joined(existing: Option<UsageHook>, observer: Arc<dyn UsageObserver>) -> Self {
        match existing {
            None => Self(observer),
            Some(Self(first)) => Self(Arc::new(Both(first, observer))),
        }
    }
}

struct Both(Arc<dyn UsageObserver>, Arc<dyn UsageObserver>);

impl UsageObserver for Both {
    fn ended(&self) {
        self.0.ended();
        self.1.ended();
    }
    fn observe(&self, record: &UsageRecord) {
        self.0.observe(record);
        self.1.observe(record);
    }
}

impl std::fmt::Debug for UsageHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UsageHook")
    }
}
