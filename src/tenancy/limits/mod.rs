//! Requests per minute, tokens per minute and requests at once, per key and per team: in
//! memory for one instance, in Redis (one script, one round trip) for many.
//!
//! Windows are fixed and aligned (`window` long, 60 s by default): a window's counts start
//! at 0 when it begins, and `x-ratelimit-reset-*` says when the current one ends. A request
//! is admitted when every scope has a request left, has not used up its tokens and has a
//! parallel slot; it then counts a request, reserves its estimated tokens and takes a slot.
//! When it is over, its slot is given back and the reservation corrected to the tokens it
//! was metered.

mod memory;
mod redis;

pub(crate) use self::memory::MemoryLimiter;
pub use self::redis::RedisDown;
pub(crate) use self::redis::RedisLimiter;
use super::prehashed::ScopeId;
use std::future::Future;
use std::pin::Pin;

/// One thing limits apply to: a key or a team.
#[derive(Debug, Clone)]
pub(crate) struct Scope {
    /// `key:<token>` or `team:<id>`.
    pub(crate) id: ScopeId,
    pub(crate) rpm: Option<u64>,
    pub(crate) tpm: Option<u64>,
    pub(crate) parallel: Option<u64>,
    /// `rpm` and `tpm` as `x-ratelimit-limit-*` values, made once.
    pub(crate) header_values: [Option<http::HeaderValue>; 2],
}

impl Scope {
    pub(crate) fn new(
        id: String,
        rpm: Option<u64>,
        tpm: Option<u64>,
        parallel: Option<u64>,
    ) -> Option<Self> {
        (rpm.is_some() || tpm.is_some() || parallel.is_some()).then(|| Self {
            id: ScopeId::new(id),
            rpm,
            tpm,
            parallel,
            header_values: [
                rpm.map(http::HeaderValue::from),
                tpm.map(http::HeaderValue::from),
            ],
        })
    }
}

/// Which limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Limit {
    Requests,
    Tokens,
    Parallel,
}

/// What one scope has left after an admission.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Left {
    /// Requests used in this window (this one included).
    pub(crate) requests: u64,
    /// Tokens used or reserved in this window.
    pub(crate) tokens: u64,
    /// Until the window ends, ms.
    pub(crate) reset_ms: u64,
}

/// The answer of a limiter.
#[derive(Debug, Clone)]
pub(crate) enum Verdict {
    /// Admitted: per scope (in the order asked: a key and its team, at most), what it has
    /// used.
    Admitted {
        window: u64,
        used: [Left; 2],
        /// Counted by this instance alone (Redis was down).
        local: bool,
    },
    /// Refused by `scope`'s `limit`, which has `current` used; retry in `retry_ms`.
    Refused {
        scope: usize,
        limit: Limit,
        current: u64,
        retry_ms: u64,
    },
}

/// The future a limiter returns.
pub(crate) type LimitFuture<'a, T> =
    Pin<Box<dyn Future<Output = Result<T, crate::store::StoreError>> + Send + 'a>>;

/// Counts requests, tokens and slots.
pub(crate) trait Limiter: Send + Sync + 'static {
    /// Admits a request of `tokens` estimated tokens under every scope, or refuses it.
    fn admit<'a>(&'a self, scopes: &'a [Scope], tokens: u64) -> LimitFuture<'a, Verdict>;
    /// The same, when the limiter can decide without waiting (in memory): the request
    /// path then takes no future of its own.
    fn admit_now(&self, _scopes: &[Scope], _tokens: u64) -> Option<Verdict> {
        None
    }
    /// A request admitted under `scopes` is over: give back its slots.
    fn ended(&self, scopes: &[Scope], local: bool);
    /// A request admitted in `window` used `delta` more tokens than it reserved (or
    /// fewer, when negative).
    fn used(&self, scopes: &[Scope], window: u64, local: bool, delta: i64);
}

/// The window (its index since the Unix epoch) `now_ms` is in, and the ms until it ends.
pub(crate) fn window_of(now_ms: u64, window_ms: u64) -> (u64, u64) {
    let window_ms = window_ms.max(1);
    (now_ms / window_ms, window_ms - now_ms % window_ms)
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
