//! What the admin API shows of each provider: requests and errors over the last five
//! minutes, the median time to response headers of recent requests, and the last error.
//! Recorded by the upstream metrics layer with a few atomic operations per request (the
//! last error takes a lock, on errors only); figures are approximate under races, as
//! health figures may be.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use http::StatusCode;

/// Seconds per bucket, and buckets kept: five minutes.
const BUCKET_SECONDS: u64 = 10;
const BUCKETS: usize = 30;
/// Recent latencies kept for the median.
const SAMPLES: usize = 256;

/// One provider's recent health.
#[derive(Debug)]
pub struct ProviderHealth {
    buckets: [Bucket; BUCKETS],
    /// Time to response headers of recent requests, in microseconds (0: no sample).
    latencies: [AtomicU32; SAMPLES],
    next_sample: AtomicUsize,
    last_error: Mutex<Option<LastError>>,
}

#[derive(Debug, Default)]
struct Bucket {
    /// Which 10-second slot since the epoch these counts are for.
    slot: AtomicU64,
    requests: AtomicU64,
    errors: AtomicU64,
}

/// The last failed request of a provider.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LastError {
    /// When (seconds since the Unix epoch).
    pub at: u64,
    /// The status the gateway answered (or would have) for it.
    pub status: u16,
    /// What went wrong.
    pub message: String,
}

/// A provider's health as the admin API reports it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HealthReport {
    /// Requests in the last five minutes.
    pub requests: u64,
    /// Of which failed (an error or a non-2xx answer).
    pub errors: u64,
    /// `errors / requests` (0 without requests).
    pub error_rate: f64,
    /// Median time to response headers of the last 256 requests, in milliseconds.
    pub p50_ms: Option<f64>,
    /// The last failure, if any.
    pub last_error: Option<LastError>,
}

fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
}

impl Default for ProviderHealth {
    fn default() -> Self {
        Self {
            buckets: std::array::from_fn(|_| Bucket::default()),
            latencies: std::array::from_fn(|_| AtomicU32::new(0)),
            next_sample: AtomicUsize::new(0),
            last_error: Mutex::new(None),
        }
    }
}

impl ProviderHealth {
    /// Records one request: its status (or the error's) and time to response headers.
    pub(crate) fn record(&self, status: StatusCode, latency: Duration, error: Option<&str>) {
        let slot = unix_now().as_secs() / BUCKET_SECONDS;
        let bucket = &self.buckets[(slot % BUCKETS as u64) as usize];
        if bucket.slot.load(Ordering::Relaxed) != slot {
            // The first request of a new slot reuses the bucket of five minutes ago.
            bucket.slot.store(slot, Ordering::Relaxed);
            bucket.requests.store(0, Ordering::Relaxed);
            bucket.errors.store(0, Ordering::Relaxed);
        }
        bucket.requests.fetch_add(1, Ordering::Relaxed);
        let micros = u32::try_from(latency.as_micros())
            .unwrap_or(u32::MAX)
            .max(1);
        let at = self.next_sample.fetch_add(1, Ordering::Relaxed) % SAMPLES;
        self.latencies[at].store(micros, Ordering::Relaxed);
        if !status.is_success() {
            bucket.errors.fetch_add(1, Ordering::Relaxed);
            *self.last_error.lock().expect("not poisoned") = Some(LastError {
                at: unix_now().as_secs(),
                status: status.as_u16(),
                message: error
                    .unwrap_or_else(|| status.canonical_reason().unwrap_or("error"))
                    .to_owned(),
            });
        }
    }

    /// The figures now.
    pub fn report(&self) -> HealthReport {
        let now = unix_now().as_secs() / BUCKET_SECONDS;
        let (mut requests, mut errors) = (0, 0);
        for bucket in &self.buckets {
            let slot = bucket.slot.load(Ordering::Relaxed);
            if slot + BUCKETS as u64 > now {
                requests += bucket.requests.load(Ordering::Relaxed);
                errors += bucket.errors.load(Ordering::Relaxed);
            }
        }
        let mut samples: Vec<u32> = self
            .latencies
            .iter()
            .map(|s| s.load(Ordering::Relaxed))
            .filter(|&s| s > 0)
            .collect();
        samples.sort_unstable();
        HealthReport {
            requests,
            errors,
            error_rate: if requests == 0 {
                0.0
            } else {
                errors as f64 / requests as f64
            },
            p50_ms: samples
                .get(samples.len() / 2)
                .map(|&us| f64::from(us) / 1000.0),
            last_error: self.last_error.lock().expect("not poisoned").clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_errors_keeps_the_last_one_and_takes_the_median() {
        let health = ProviderHealth::default();
        for ms in [10, 30, 20] {
            health.record(StatusCode::OK, Duration::from_millis(ms), None);
        }
        health.record(
            StatusCode::BAD_GATEWAY,
            Duration::from_millis(40),
            Some("refused"),
        );
        let report = health.report();
        assert_eq!((report.requests, report.errors), (4, 1));
        assert_eq!(report.error_rate, 0.25);
        assert_eq!(report.p50_ms, Some(30.0));
        let last = report.last_error.unwrap();
        assert_eq!((last.status, last.message.as_str()), (502, "refused"));
    }
}
