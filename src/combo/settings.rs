//! The combo and circuit-breaker settings (`combos:`, `circuit_breaker:`).

use std::time::Duration;

use serde::Deserialize;

use crate::settings::{setters, SettingsError};

/// One combo: targets tried in an order its strategy chooses, moving on when one fails.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ComboSettings {
    /// How the first target (and the order of the rest) is chosen. Default `priority`.
    #[serde(default)]
    pub strategy: ComboStrategy,
    /// `provider/model`, an alias or another combo; with `weight` for `weighted`.
    pub targets: Vec<ComboTarget>,
    /// Tried in order when a target answers that the request exceeds its context window.
    #[serde(default)]
    pub context_window_fallbacks: Vec<String>,
    /// Which failures move on to the next target. Default: every failure that is not the
    /// client's (`connect`, `timeout`, `stream`, `408`, `429`, `5xx`).
    #[serde(default)]
    pub fallback_on: Option<Vec<FallbackOn>>,
    /// Most upstream attempts per request. Default: one per target (context-window
    /// fallbacks included), at most 10.
    #[serde(default)]
    pub max_attempts: Option<usize>,
    /// Longest wait for one attempt's first content (streams) or whole answer (JSON).
    #[serde(default, with = "humantime_serde")]
    pub attempt_timeout: Option<Duration>,
    /// Longest wait across all attempts until an answer starts.
    #[serde(default, with = "humantime_serde")]
    pub deadline: Option<Duration>,
}

/// How a combo picks among its targets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ComboStrategy {
    /// The targets in the order listed: ordered fallback.
    #[default]
    Priority,
    /// Each request starts at the next target.
    RoundRobin,
    /// Random, in proportion to each target's `weight`.
    Weighted,
    /// The lower peak-EWMA latency of two random targets (power of two choices).
    LeastLatency,
    /// The target with the fewest requests in flight.
    LeastBusy,
    /// The target that used the fewest tokens this minute (LiteLLM's usage-based routing);
    /// with `rpm`/`tpm` on the targets, those at their limit are skipped.
    LeastUsage,
}

/// A combo target: a name, or a name with a weight and per-minute limits.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum ComboTarget {
    /// `provider/model`, an alias or a combo, weight 1.
    Name(String),
    /// A target with its weight for the `weighted` strategy, or its limits.
    Weighted {
        /// `provider/model`, an alias or a combo.
        target: String,
        /// Relative share; 0 means only as a fallback. Default 1.
        #[serde(default = "one")]
        weight: u32,
        /// Requests per minute it may take (per gateway instance); at the limit it is
        /// skipped until the next minute.
        #[serde(default)]
        rpm: Option<u64>,
        /// Tokens per minute (prompt + completion, as metered) it may take.
        #[serde(default)]
        tpm: Option<u64>,
    },
}

impl ComboTarget {
    /// The target's name.
    pub fn name(&self) -> &str {
        match self {
            Self::Name(name) | Self::Weighted { target: name, .. } => name,
        }
    }
    /// The target's weight (1 unless given).
    pub fn weight(&self) -> u32 {
        match self {
            Self::Name(_) => 1,
            Self::Weighted { weight, .. } => *weight,
        }
    }
    /// Its requests and tokens per minute, when limited.
    pub fn limits(&self) -> (Option<u64>, Option<u64>) {
        match self {
            Self::Name(_) => (None, None),
            Self::Weighted { rpm, tpm, .. } => (*rpm, *tpm),
        }
    }
}

fn one() -> u32 {
    1
}

/// A kind of failure after which a combo tries its next target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FallbackOn {
    /// The upstream could not be reached.
    Connect,
    /// No answer (or no first content) in time.
    Timeout,
    /// A 200 stream that failed or ended before its first content event, or an unreadable
    /// answer.
    Stream,
    /// Any 4xx status (the client's errors; off by default).
    Status4xx,
    /// Any 5xx status.
    Status5xx,
    /// One status.
    Status(u16),
}

impl<'de> Deserialize<'de> for FallbackOn {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Code(u16),
            Name(String),
        }
        let invalid = |what: &str| {
            serde::de::Error::custom(format!(
                "`{what}` is not a failure kind: use connect, timeout, stream, 4xx, 5xx or a status such as 429"
            ))
        };
        match Raw::deserialize(d)? {
            Raw::Code(code @ 400..=599) => Ok(Self::Status(code)),
            Raw::Code(code) => Err(invalid(&code.to_string())),
            Raw::Name(name) => match name.as_str() {
                "connect" => Ok(Self::Connect),
                "timeout" => Ok(Self::Timeout),
                "stream" => Ok(Self::Stream),
                "4xx" => Ok(Self::Status4xx),
                "5xx" => Ok(Self::Status5xx),
                other => match other.parse::<u16>() {
                    Ok(code @ 400..=599) => Ok(Self::Status(code)),
                    _ => Err(invalid(other)),
                },
            },
        }
    }
}

/// The circuit breaker every combo target shares: after `failures` failures within
/// `window` a target is skipped for `cooldown` (or the upstream's `Retry-After`, when
/// longer, up to `max_cooldown`), then one probe request decides whether it is back.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct CircuitBreakerSettings {
    /// Failures within `window` that open the breaker. Default 3.
    pub failures: u32,
    /// Default 30 s.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// Default 30 s.
    #[serde(with = "humantime_serde")]
    pub cooldown: Duration,
    /// Cap on a cooldown stretched by `Retry-After`. Default 5 min.
    #[serde(with = "humantime_serde")]
    pub max_cooldown: Duration,
}

impl Default for CircuitBreakerSettings {
    fn default() -> Self {
        Self {
            failures: 3,
            window: Duration::from_secs(30),
            cooldown: Duration::from_secs(30),
            max_cooldown: Duration::from_secs(300),
        }
    }
}

setters!(CircuitBreakerSettings {
    /// Failures within `window` that cool a target down.
    failures: u32,
    /// The window failures are counted in.
    window: Duration,
    /// How long a target cools down.
    cooldown: Duration,
    /// Cap on a cooldown stretched by `Retry-After`.
    max_cooldown: Duration,
});

impl CircuitBreakerSettings {
    /// Checks the settings.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if self.failures == 0 {
            return Err(SettingsError::new("failures", "must be at least 1"));
        }
        Ok(())
    }
}

impl ComboSettings {
    /// A `priority` combo of these targets.
    pub fn new<T: Into<String>>(targets: impl IntoIterator<Item = T>) -> Self {
        Self {
            strategy: ComboStrategy::default(),
            targets: targets
                .into_iter()
                .map(|t| ComboTarget::Name(t.into()))
                .collect(),
            context_window_fallbacks: Vec::new(),
            fallback_on: None,
            max_attempts: None,
            attempt_timeout: None,
            deadline: None,
        }
    }
}

setters!(ComboSettings {
    /// How the first target (and the order of the rest) is chosen.
    strategy: ComboStrategy,
    /// Tried in order when a target answers that the request exceeds its context window.
    context_window_fallbacks: Vec<String>,
    /// Which failures move on to the next target.
    fallback_on: Option<Vec<FallbackOn>>,
    /// Most upstream attempts per request.
    max_attempts: Option<usize>,
    /// Longest wait for one attempt.
    attempt_timeout: Option<Duration>,
    /// Longest wait across all attempts.
    deadline: Option<Duration>,
});
