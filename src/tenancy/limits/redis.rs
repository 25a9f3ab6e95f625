//! Limits counted in Redis, shared by every instance: one script per admission (one round
//! trip), a pipeline off the request path when a request ends.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ::redis::Script;

use super::memory::MemoryLimiter;
use super::{now_ms, window_of, Left, Limit, LimitFuture, Limiter, Scope, Verdict};
use crate::store::{Redis, StoreError};

/// Checks every scope, then counts in all of them, atomically: requests always, tokens
/// only where there is a TPM limit and slots only where there is a parallel limit (else
/// there is nothing to correct or give back afterwards). KEYS: per scope its requests,
/// tokens and slots counters; ARGV: the window's length left (ms), the tokens to
/// reserve, then per scope its three limits (-1: none). Returns `{1, requests, tokens,
/// ...}` per scope, or `{0, scope, limit, current}`.
const ADMIT: &str = r"
local left = tonumber(ARGV[1])
local tokens = tonumber(ARGV[2])
local n = #KEYS / 3
for i = 0, n - 1 do
  local requests = tonumber(redis.call('GET', KEYS[i * 3 + 1]) or '0')
  local used = tonumber(redis.call('GET', KEYS[i * 3 + 2]) or '0')
  local slots = tonumber(redis.call('GET', KEYS[i * 3 + 3]) or '0')
  local rpm, tpm, parallel = tonumber(ARGV[i * 3 + 3]), tonumber(ARGV[i * 3 + 4]), tonumber(ARGV[i * 3 + 5])
  if rpm >= 0 and requests >= rpm then return {0, i, 1, requests} end
  if tpm >= 0 and used >= tpm then return {0, i, 2, used} end
  if parallel >= 0 and slots >= parallel then return {0, i, 3, slots} end
end
local out = {1}
for i = 0, n - 1 do
  local requests = redis.call('INCR', KEYS[i * 3 + 1])
  redis.call('PEXPIRE', KEYS[i * 3 + 1], left + 1000)
  local used = 0
  if tonumber(ARGV[i * 3 + 4]) >= 0 then
    used = redis.call('INCRBY', KEYS[i * 3 + 2], tokens)
    redis.call('PEXPIRE', KEYS[i * 3 + 2], left + 1000)
  end
  if tonumber(ARGV[i * 3 + 5]) >= 0 then
    redis.call('INCR', KEYS[i * 3 + 3])
    redis.call('PEXPIRE', KEYS[i * 3 + 3], 600000)
  end
  out[#out + 1] = requests
  out[#out + 1] = used
end
return out
";

/// What to do while Redis cannot be reached.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RedisDown {
    /// Count per instance meanwhile (the default): limits hold per instance.
    #[default]
    Local,
    /// Refuse requests with a 503 meanwhile.
    Reject,
}

pub(crate) struct RedisLimiter {
    redis: Redis,
    script: Script,
    prefix: String,
    window_ms: u64,
    fallback: Option<MemoryLimiter>,
    logged: AtomicU64,
    failures: metrics::Counter,
}

impl RedisLimiter {
    pub(crate) fn new(redis: Redis, prefix: String, window: Duration, down: RedisDown) -> Self {
        Self {
            redis,
            script: Script::new(ADMIT),
            prefix,
            window_ms: u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1),
            fallback: (down == RedisDown::Local).then(|| MemoryLimiter::new(window)),
            logged: AtomicU64::new(0),
            failures: metrics::counter!("llm_tower_rate_limit_redis_errors_total"),
        }
    }

    /// A scope's counter: `<prefix><kind>:<scope id>`, and `:<window>` for the counters
    /// of one window. (Built with `push_str`: `format!` was most of an admission's cost.)
    fn key(&self, kind: &str, scope: &Scope, window: Option<u64>) -> String {
        use std::fmt::Write;
        let mut key =
            String::with_capacity(self.prefix.len() + kind.len() + scope.id.as_str().len() + 22);
        key.push_str(&self.prefix);
        key.push_str(kind);
        key.push(':');
        key.push_str(scope.id.as_str());
        if let Some(window) = window {
            let _ = write!(key, ":{window}");
        }
        key
    }

    fn failed(&self, e: &StoreError) {
        self.failures.increment(1);
        let now = now_ms();
        let logged = self.logged.load(Ordering::Relaxed);
        if now.saturating_sub(logged) >= 10_000
            && self
                .logged
                .compare_exchange(logged, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let meanwhile = if self.fallback.is_some() {
                "limits are counted per instance meanwhile"
            } else {
                "requests with limits are refused meanwhile"
            };
            tracing::warn!(error = %e, "rate limits: redis unavailable; {meanwhile}");
        }
    }
}

fn limit_of(code: i64) -> Limit {
    match code {
        1 => Limit::Requests,
        2 => Limit::Tokens,
        _ => Limit::Parallel,
    }
}

impl Limiter for RedisLimiter {
    fn admit<'a>(&'a self, scopes: &'a [Scope], tokens: u64) -> LimitFuture<'a, Verdict> {
        Box::pin(async move {
            let (window, reset_ms) = window_of(now_ms(), self.window_ms);
            let mut invocation = self.script.prepare_invoke();
            invocation.arg(reset_ms).arg(tokens);
            for scope in scopes {
                invocation.key(self.key("rpm", scope, Some(window)));
                invocation.key(self.key("tpm", scope, Some(window)));
                invocation.key(self.key("slots", scope, None));
                for limit in [scope.rpm, scope.tpm, scope.parallel] {
                    invocation.arg(limit.map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX)));
                }
            }
            let mut conn = self.redis.clone();
            let answer: Result<Vec<i64>, _> = invocation.invoke_async(&mut conn).await;
            let answer = match answer {
                Ok(answer) => answer,
                Err(e) => {
                    let e = StoreError::from(e);
                    self.failed(&e);
                    return match &self.fallback {
                        Some(local) => Ok(local.decide(scopes, tokens, now_ms())),
                        None => Err(e),
                    };
                }
            };
            let count = |i: usize| u64::try_from(answer.get(i).copied().unwrap_or(0)).unwrap_or(0);
            if answer.first() == Some(&1) {
                let mut used = [Left::default(); 2];
                for (i, used) in used.iter_mut().enumerate().take(scopes.len()) {
                    *used = Left {
                        requests: count(1 + 2 * i),
                        tokens: count(2 + 2 * i),
                        reset_ms,
                    };
                }
                return Ok(Verdict::Admitted {
                    window,
                    used,
                    local: false,
                });
            }
            let limit = limit_of(answer.get(2).copied().unwrap_or(3));
            Ok(Verdict::Refused {
                scope: usize::try_from(count(1)).unwrap_or(0),
                limit,
                current: count(3),
                retry_ms: if limit == Limit::Parallel {
                    1_000
                } else {
                    reset_ms
                },
            })
        })
    }

    fn ended(&self, scopes: &[Scope], local: bool) {
        if local {
            if let Some(fallback) = &self.fallback {
                fallback.ended(scopes, true);
            }
            return;
        }
        let mut pipe = ::redis::pipe();
        for scope in scopes.iter().filter(|s| s.parallel.is_some()) {
            pipe.cmd("DECR")
                .arg(self.key("slots", scope, None))
                .ignore();
        }
        self.send(pipe);
    }

    fn used(&self, scopes: &[Scope], window: u64, local: bool, delta: i64) {
        if local {
            if let Some(fallback) = &self.fallback {
                fallback.used(scopes, window, true, delta);
            }
            return;
        }
        if delta == 0 {
            return;
        }
        let mut pipe = ::redis::pipe();
        for scope in scopes.iter().filter(|s| s.tpm.is_some()) {
            pipe.cmd("INCRBY")
                .arg(self.key("tpm", scope, Some(window)))
                .arg(delta)
                .ignore();
        }
        self.send(pipe);
    }
}

impl RedisLimiter {
    /// Sends `pipe` off the request path.
    fn send(&self, pipe: ::redis::Pipeline) {
        if pipe.is_empty() {
            return;
        }
        let mut conn = self.redis.clone();
        tokio::spawn(async move {
            let done: Result<(), _> = pipe.query_async(&mut conn).await;
            if let Err(e) = done {
                tracing::debug!(error = %e, "rate limits: an update did not reach redis");
            }
        });
    }
}
