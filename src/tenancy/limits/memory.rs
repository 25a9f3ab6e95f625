//! Limits counted in this process.

use std::sync::Mutex;
use std::time::Duration;

use super::super::prehashed::{PrehashedMap, ScopeId};
use super::{now_ms, window_of, Left, Limit, LimitFuture, Limiter, Scope, Verdict};

#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    window: u64,
    requests: u64,
    tokens: u64,
    parallel: u64,
}

impl Counts {
    /// The counts as of `window` (a new window starts from 0; slots carry over).
    fn at(mut self, window: u64) -> Self {
        if self.window != window {
            self = Self {
                window,
                parallel: self.parallel,
                ..Self::default()
            };
        }
        self
    }
}

/// Per-instance limits: one map behind one lock (an admission is a few lookups, by the
/// hash each scope id carries).
pub(crate) struct MemoryLimiter {
    window_ms: u64,
    counts: Mutex<PrehashedMap<ScopeId, Counts>>,
}

impl MemoryLimiter {
    pub(crate) fn new(window: Duration) -> Self {
        Self {
            window_ms: u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1),
            counts: Mutex::default(),
        }
    }

    /// The verdict, decided under the lock (what Redis's script does in one step).
    pub(crate) fn decide(&self, scopes: &[Scope], tokens: u64, now_ms: u64) -> Verdict {
        let (window, reset_ms) = window_of(now_ms, self.window_ms);
        let mut counts = self.counts.lock().expect("not poisoned");
        if counts.len() > 10_000 {
            // Forget scopes idle since an earlier window.
            counts.retain(|_, c| c.window == window || c.parallel > 0);
        }
        for (i, scope) in scopes.iter().enumerate() {
            let c = counts
                .get(&scope.id)
                .copied()
                .unwrap_or_default()
                .at(window);
            let refused = |limit, current| Verdict::Refused {
                scope: i,
                limit,
                current,
                retry_ms: reset_ms,
            };
            if scope.rpm.is_some_and(|max| c.requests >= max) {
                return refused(Limit::Requests, c.requests);
            }
            if scope.tpm.is_some_and(|max| c.tokens >= max) {
                return refused(Limit::Tokens, c.tokens);
            }
            if scope.parallel.is_some_and(|max| c.parallel >= max) {
                // A slot frees when a request ends, not with the window: retry soon.
                return Verdict::Refused {
                    scope: i,
                    limit: Limit::Parallel,
                    current: c.parallel,
                    retry_ms: 1_000,
                };
            }
        }
        let mut used = [Left::default(); 2];
        for (scope, used) in scopes.iter().zip(&mut used) {
            let c = match counts.get_mut(&scope.id) {
                Some(c) => c,
                None => counts.entry(scope.id.clone()).or_default(),
            };
            *c = c.at(window);
            c.requests += 1;
            c.tokens += tokens;
            c.parallel += 1;
            *used = Left {
                requests: c.requests,
                tokens: c.tokens,
                reset_ms,
            };
        }
        Verdict::Admitted {
            window,
            used,
            local: true,
        }
    }
}

impl Limiter for MemoryLimiter {
    fn admit<'a>(&'a self, scopes: &'a [Scope], tokens: u64) -> LimitFuture<'a, Verdict> {
        let verdict = self.decide(scopes, tokens, now_ms());
        Box::pin(std::future::ready(Ok(verdict)))
    }

    fn admit_now(&self, scopes: &[Scope], tokens: u64) -> Option<Verdict> {
        Some(self.decide(scopes, tokens, now_ms()))
    }

    fn ended(&self, scopes: &[Scope], _local: bool) {
        let mut counts = self.counts.lock().expect("not poisoned");
        for scope in scopes {
            if let Some(c) = counts.get_mut(&scope.id) {
                c.parallel = c.parallel.saturating_sub(1);
            }
        }
    }

    fn used(&self, scopes: &[Scope], window: u64, _local: bool, delta: i64) {
        let mut counts = self.counts.lock().expect("not poisoned");
        for scope in scopes {
            if let Some(c) = counts.get_mut(&scope.id).filter(|c| c.window == window) {
                c.tokens = c.tokens.saturating_add_signed(delta);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(rpm: Option<u64>, tpm: Option<u64>, parallel: Option<u64>) -> Scope {
        Scope::new("key:a".into(), rpm, tpm, parallel).expect("limited")
    }

    #[test]
    fn requests_per_window_then_a_new_window() {
        let limiter = MemoryLimiter::new(Duration::from_secs(60));
        let s = [scope(Some(3), None, None)];
        for n in 1..=3 {
            let Verdict::Admitted { used, .. } = limiter.decide(&s, 10, 1_000) else {
                panic!("request {n} refused");
            };
            assert_eq!(used[0].requests, n);
            assert_eq!(used[0].reset_ms, 59_000);
            limiter.ended(&s, true);
        }
        match limiter.decide(&s, 10, 30_000) {
            Verdict::Refused {
                limit,
                current,
                retry_ms,
                ..
            } => {
                assert_eq!((limit, current, retry_ms), (Limit::Requests, 3, 30_000));
            }
            v => panic!("{v:?}"),
        }
        assert!(matches!(
            limiter.decide(&s, 10, 60_000),
            Verdict::Admitted { .. }
        ));
    }

    #[test]
    fn tokens_are_reserved_then_corrected_and_slots_given_back() {
        let limiter = MemoryLimiter::new(Duration::from_secs(60));
        let s = [scope(None, Some(100), Some(1))];
        let Verdict::Admitted { window, .. } = limiter.decide(&s, 30, 0) else {
            panic!()
        };
        assert!(
            matches!(
                limiter.decide(&s, 30, 1),
                Verdict::Refused {
                    limit: Limit::Parallel,
                    ..
                }
            ),
            "one at a time"
        );
        limiter.ended(&s, true);
        limiter.used(&s, window, true, 90);
        assert!(
            matches!(
                limiter.decide(&s, 30, 2),
                Verdict::Refused {
                    limit: Limit::Tokens,
                    current: 120,
                    ..
                }
            ),
            "the metered 120 tokens count"
        );
    }

    #[test]
    fn every_scope_must_admit_and_none_counts_a_refusal() {
        let limiter = MemoryLimiter::new(Duration::from_secs(60));
        let key = scope(Some(10), None, None);
        let team = Scope::new("team:t".into(), Some(1), None, None).expect("limited");
        let both = [key.clone(), team];
        assert!(matches!(
            limiter.decide(&both, 0, 0),
            Verdict::Admitted { .. }
        ));
        assert!(matches!(
            limiter.decide(&both, 0, 1),
            Verdict::Refused { scope: 1, .. }
        ));
        let Verdict::Admitted { used, .. } = limiter.decide(&[key], 0, 2) else {
            panic!()
        };
        assert_eq!(used[0].requests, 2, "the refused request was not counted");
    }
}
