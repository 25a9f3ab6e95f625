//! What the gateway remembers about each combo target: requests in flight, recent latency
//! (peak-EWMA) and a circuit breaker. Shared by every combo that lists the target.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::settings::CircuitBreakerSettings;
use crate::executor::Target;

/// How fast old latency is forgotten: a sample's weight halves about every 7 s.
const EWMA_DECAY: Duration = Duration::from_secs(10);

/// One target's shared state.
#[derive(Debug)]
pub(crate) struct TargetState {
    pub(crate) target: Target,
    /// `provider/model`, for headers, metrics and messages.
    pub(crate) label: Arc<str>,
    in_flight: AtomicUsize,
    latency: Mutex<PeakEwma>,
    breaker: Mutex<Breaker>,
    /// Requests and tokens of the current minute, against the target's `rpm`/`tpm`.
    minute: Mutex<Minute>,
    /// The limits (0: none); counting happens only with a limit or for `least-usage`.
    rpm: AtomicU64,
    tpm: AtomicU64,
    counted: AtomicBool,
    pub(crate) metrics: TargetMetrics,
}

/// One minute's use of a target (the minute since the Unix epoch it is for).
#[derive(Debug, Default)]
struct Minute {
    at: u64,
    requests: u64,
    tokens: u64,
}

impl Minute {
    /// This minute's counts, starting a new minute when the clock has moved on.
    fn now(&mut self) -> &mut Self {
        let minute = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() / 60);
        if self.at != minute {
            *self = Self {
                at: minute,
                ..Self::default()
            };
        }
        self
    }
}

/// The target's counters, registered once so that recording costs no allocation.
#[derive(Debug)]
pub(crate) struct TargetMetrics {
    pub(crate) success: metrics::Counter,
    pub(crate) failure: metrics::Counter,
    pub(crate) context_window: metrics::Counter,
    pub(crate) client_error: metrics::Counter,
    pub(crate) cooldowns: metrics::Counter,
}

impl TargetMetrics {
    fn new(label: &str) -> Self {
        let attempts = |outcome: &'static str| metrics::counter!("llm_tower_combo_attempts_total", "target" => label.to_owned(), "outcome" => outcome);
        Self {
            success: attempts("success"),
            failure: attempts("failure"),
            context_window: attempts("context_window"),
            client_error: attempts("client_error"),
            cooldowns: metrics::counter!("llm_tower_combo_cooldowns_total", "target" => label.to_owned()),
        }
    }
}

impl TargetState {
    pub(crate) fn new(target: Target, config: &CircuitBreakerSettings) -> Self {
        let label: Arc<str> = format!("{}/{}", target.provider, target.model).into();
        Self {
            metrics: TargetMetrics::new(&label),
            label,
            target,
            in_flight: AtomicUsize::new(0),
            latency: Mutex::new(PeakEwma::default()),
            breaker: Mutex::new(Breaker::new(config.clone())),
            minute: Mutex::default(),
            rpm: AtomicU64::new(0),
            tpm: AtomicU64::new(0),
            counted: AtomicBool::new(false),
        }
    }

    /// Gives the target per-minute limits (the lowest wins when several combos give one);
    /// from then on its requests and tokens are counted.
    pub(crate) fn limit(&self, rpm: Option<u64>, tpm: Option<u64>) {
        for (limit, value) in [(&self.rpm, rpm), (&self.tpm, tpm)] {
            if let Some(value) = value.filter(|v| *v > 0) {
                let _ = limit.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                    Some(if old == 0 { value } else { old.min(value) })
                });
                self.counted.store(true, Ordering::Relaxed);
            }
        }
    }

    /// Drops the limits (a carried state takes the new config's).
    pub(crate) fn unlimit(&self) {
        self.rpm.store(0, Ordering::Relaxed);
        self.tpm.store(0, Ordering::Relaxed);
        self.counted.store(false, Ordering::Relaxed);
    }

    /// Counts the target's requests and tokens per minute (for `least-usage`).
    pub(crate) fn count(&self) {
        self.counted.store(true, Ordering::Relaxed);
    }

    /// Whether its requests and tokens are counted.
    pub(crate) fn is_counted(&self) -> bool {
        self.counted.load(Ordering::Relaxed)
    }

    /// Whether the target has used its `rpm` or `tpm` for this minute.
    pub(crate) fn at_limit(&self) -> bool {
        if !self.is_counted() {
            return false;
        }
        let (rpm, tpm) = (
            self.rpm.load(Ordering::Relaxed),
            self.tpm.load(Ordering::Relaxed),
        );
        let mut minute = self.minute.lock().expect("not poisoned");
        let now = minute.now();
        (rpm > 0 && now.requests >= rpm) || (tpm > 0 && now.tokens >= tpm)
    }

    /// Counts a request sent to it.
    pub(crate) fn sent(&self) {
        if self.is_counted() {
            self.minute.lock().expect("not poisoned").now().requests += 1;
        }
    }

    /// Counts the tokens of an answer it gave.
    pub(crate) fn used_tokens(&self, tokens: u64) {
        self.minute.lock().expect("not poisoned").now().tokens += tokens;
    }

    /// Tokens used this minute (what `least-usage` compares).
    pub(crate) fn tokens_this_minute(&self) -> u64 {
        self.minute.lock().expect("not poisoned").now().tokens
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Peak-EWMA latency in seconds, weighted by the requests in flight (the load that
    /// least-latency balancing compares).
    pub(crate) fn load(&self) -> f64 {
        let ewma = self.latency.lock().expect("not poisoned").value();
        ewma * (self.in_flight() + 1) as f64
    }

    pub(crate) fn observe_latency(&self, sample: Duration) {
        self.latency
            .lock()
            .expect("not poisoned")
            .observe(sample, Instant::now());
    }

    pub(crate) fn admit(&self) -> Admission {
        self.breaker
            .lock()
            .expect("not poisoned")
            .admit(Instant::now())
    }

    /// `closed`, `open` or `half-open`.
    pub(crate) fn breaker_state(&self) -> &'static str {
        match self.breaker.lock().expect("not poisoned").state {
            State::Closed { .. } => "closed",
            State::Open { until } if Instant::now() >= until => "half-open",
            State::Open { .. } => "open",
            State::HalfOpen { .. } => "half-open",
        }
    }

    pub(crate) fn succeeded(&self) {
        self.breaker.lock().expect("not poisoned").succeeded();
    }

    /// Records a failure; `true` when it opened the breaker.
    pub(crate) fn failed(&self, retry_after: Option<Duration>) -> bool {
        self.breaker
            .lock()
            .expect("not poisoned")
            .failed(Instant::now(), retry_after)
    }
}

/// Counts a request in flight on a target until dropped (with the response body, for
/// streams).
#[derive(Debug)]
pub(crate) struct InFlight(Arc<TargetState>);

impl InFlight {
    pub(crate) fn start(state: &Arc<TargetState>) -> Self {
        state.in_flight.fetch_add(1, Ordering::Relaxed);
        Self(state.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Latency that jumps up to a slow sample at once and decays towards faster ones
/// (Finagle's and linkerd's peak-EWMA).
#[derive(Debug, Default)]
struct PeakEwma {
    seconds: f64,
    stamp: Option<Instant>,
}

impl PeakEwma {
    fn observe(&mut self, sample: Duration, now: Instant) {
        let sample = sample.as_secs_f64();
        self.seconds = if sample > self.seconds {
            sample
        } else {
            let w = self.weight(now);
            self.seconds * w + sample * (1.0 - w)
        };
        self.stamp = Some(now);
    }

    fn value(&self) -> f64 {
        self.seconds
    }

    fn weight(&self, now: Instant) -> f64 {
        let elapsed = self
            .stamp
            .map_or(Duration::ZERO, |s| now.saturating_duration_since(s));
        (-elapsed.as_secs_f64() / EWMA_DECAY.as_secs_f64()).exp()
    }
}

/// Whether a target may be tried now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Healthy.
    Yes,
    /// Cooling down: the first request after the cooldown goes through as a probe.
    CoolingUntil(Instant),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    /// `failures` failures since `since`.
    Closed { failures: u32, since: Instant },
    /// Skipped until `until`.
    Open { until: Instant },
    /// One probe is out, sent at `since`; its outcome closes or reopens the breaker.
    HalfOpen { since: Instant },
}

#[derive(Debug)]
struct Breaker {
    config: CircuitBreakerSettings,
    state: State,
}

impl Breaker {
    fn new(config: CircuitBreakerSettings) -> Self {
        Self {
            config,
            state: State::Closed {
                failures: 0,
                since: Instant::now(),
            },
        }
    }

    fn admit(&mut self, now: Instant) -> Admission {
        match self.state {
            State::Closed { .. } => Admission::Yes,
            State::Open { until } if now < until => Admission::CoolingUntil(until),
            State::Open { .. } => {
                self.state = State::HalfOpen { since: now };
                Admission::Yes
            }
            // A probe whose request vanished (its client left) must not block the target
            // for ever: after another cooldown, send a new one.
            State::HalfOpen { since } if now >= since + self.config.cooldown => {
                self.state = State::HalfOpen { since: now };
                Admission::Yes
            }
            State::HalfOpen { since } => Admission::CoolingUntil(since + self.config.cooldown),
        }
    }

    fn succeeded(&mut self) {
        if !matches!(self.state, State::Closed { failures: 0, .. }) {
            self.state = State::Closed {
                failures: 0,
                since: Instant::now(),
            };
        }
    }

    /// `true` when this failure opened the breaker. An upstream that names a
    /// `Retry-After` is taken at its word at once.
    fn failed(&mut self, now: Instant, retry_after: Option<Duration>) -> bool {
        let open = match self.state {
            State::Closed { failures, since } => {
                let failures = if now.saturating_duration_since(since) > self.config.window {
                    1
                } else {
                    failures + 1
                };
                let since = if failures == 1 { now } else { since };
                self.state = State::Closed { failures, since };
                failures >= self.config.failures || retry_after.is_some()
            }
            State::HalfOpen { .. } => true,
            State::Open { .. } => retry_after.is_some(),
        };
        if open {
            let cooldown = retry_after
                .unwrap_or(self.config.cooldown)
                .min(self.config.max_cooldown);
            let until = now + cooldown;
            if let State::Open { until: current } = self.state {
                self.state = State::Open {
                    until: current.max(until),
                };
                return false;
            }
            self.state = State::Open { until };
        }
        open
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> Breaker {
        Breaker::new(CircuitBreakerSettings {
            failures: 2,
            window: Duration::from_secs(10),
            cooldown: Duration::from_secs(5),
            max_cooldown: Duration::from_secs(60),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_failures_in_the_window_then_probes_once() {
        let mut b = breaker();
        let now = Instant::now();
        assert!(!b.failed(now, None));
        assert_eq!(b.admit(now), Admission::Yes);
        // The second failure inside the window opens it for the cooldown.
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(b.failed(Instant::now(), None));
        let until = Instant::now() + Duration::from_secs(5);
        assert_eq!(b.admit(Instant::now()), Admission::CoolingUntil(until));
        // After the cooldown one probe goes out; a second request waits for its verdict.
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(b.admit(Instant::now()), Admission::Yes);
        assert!(matches!(
            b.admit(Instant::now()),
            Admission::CoolingUntil(_)
        ));
        // The probe fails: open again.
        assert!(b.failed(Instant::now(), None));
        assert!(matches!(
            b.admit(Instant::now()),
            Admission::CoolingUntil(_)
        ));
        // Next probe succeeds: closed, and one failure alone does not reopen it.
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(b.admit(Instant::now()), Admission::Yes);
        b.succeeded();
        assert!(!b.failed(Instant::now(), None));
        assert_eq!(b.admit(Instant::now()), Admission::Yes);
    }

    #[tokio::test(start_paused = true)]
    async fn failures_outside_the_window_do_not_add_up() {
        let mut b = breaker();
        assert!(!b.failed(Instant::now(), None));
        tokio::time::advance(Duration::from_secs(11)).await;
        assert!(!b.failed(Instant::now(), None));
        assert_eq!(b.admit(Instant::now()), Admission::Yes);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_opens_at_once_for_that_long_capped() {
        let mut b = breaker();
        assert!(b.failed(Instant::now(), Some(Duration::from_secs(20))));
        tokio::time::advance(Duration::from_secs(19)).await;
        assert!(matches!(
            b.admit(Instant::now()),
            Admission::CoolingUntil(_)
        ));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(b.admit(Instant::now()), Admission::Yes);

        let mut b = breaker();
        b.failed(Instant::now(), Some(Duration::from_secs(3600)));
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(
            b.admit(Instant::now()),
            Admission::Yes,
            "capped at max_cooldown"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_vanished_probe_does_not_block_for_ever() {
        let mut b = breaker();
        b.failed(Instant::now(), None);
        b.failed(Instant::now(), None);
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(b.admit(Instant::now()), Admission::Yes); // the probe, never reported
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(b.admit(Instant::now()), Admission::Yes);
    }

    #[tokio::test(start_paused = true)]
    async fn peak_ewma_jumps_up_and_decays_down() {
        let mut e = PeakEwma::default();
        e.observe(Duration::from_millis(100), Instant::now());
        e.observe(Duration::from_millis(500), Instant::now());
        assert!((e.value() - 0.5).abs() < 1e-9);
        tokio::time::advance(Duration::from_secs(10)).await;
        e.observe(Duration::from_millis(100), Instant::now());
        let v = e.value();
        assert!(v < 0.5 && v > 0.1, "{v}");
    }
}
