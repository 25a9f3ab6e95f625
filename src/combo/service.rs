//! The combo middleware.

use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{Request, Response};
use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt};

use super::body::{open, ComboBody};
use super::failure::{is_upstream_fault, retry_after, Verdict};
use super::health::{Admission, InFlight, TargetState};
use super::table::{ComboPlan, Combos};
use crate::body::Body;
use crate::error::{ErrorKind, GatewayError};
use crate::executor::ComboAttempts;
use crate::future::LayerFuture;
use crate::metering::{UsageHook, UsageObserver, UsageRecord};
use crate::request::LlmRequest;

const ATTEMPTS_HEADER: HeaderName = HeaderName::from_static("x-gateway-attempts");

/// Layer that applies the [`Combo`] middleware.
#[derive(Debug, Clone)]
pub struct ComboLayer {
    combos: Arc<Combos>,
}

impl ComboLayer {
    /// Serves the combos in `combos`.
    pub fn new(combos: Combos) -> Self {
        Self {
            combos: Arc::new(combos),
        }
    }
}

impl<S> Layer<S> for ComboLayer {
    type Service = Combo<S>;
    fn layer(&self, inner: S) -> Combo<S> {
        Combo {
            inner,
            combos: self.combos.clone(),
        }
    }
}

/// Answers a request for a combo from one of its targets, trying the next when one fails,
/// until an answer has started. Any other request goes to the inner service directly,
/// with its own future.
///
/// Each attempt is the inner service called with the request (its parsed body replayed,
/// never re-read) and a [`Target`](crate::executor::Target) extension naming the
/// provider and model to use.
#[derive(Debug, Clone)]
pub struct Combo<S> {
    inner: S,
    combos: Arc<Combos>,
}

/// The future of [`Combo`].
pub type ComboFuture<F> = LayerFuture<F>;

impl<S> Service<Request<Bytes>> for Combo<S>
where
    S: Service<Request<Bytes>, Response = Response<Body>, Error = GatewayError>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    type Response = Response<Body>;
    type Error = GatewayError;
    type Future = ComboFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), GatewayError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Bytes>) -> Self::Future {
        let plan = req
            .extensions()
            .get::<LlmRequest>()
            .and_then(|llm| self.combos.get(llm.model()));
        match plan {
            None => LayerFuture::direct(self.inner.call(req)),
            Some(plan) => {
                // The ready service goes into the future; this one gets a fresh clone.
                let clone = self.inner.clone();
                let ready = std::mem::replace(&mut self.inner, clone);
                LayerFuture::boxed(run(plan.clone(), ready, req))
            }
        }
    }
}

/// One failed attempt, for the error the client gets if every attempt fails.
struct Failed {
    target: Arc<str>,
    error: GatewayError,
}

async fn run<S>(
    plan: Arc<ComboPlan>,
    mut service: S,
    req: Request<Bytes>,
) -> Result<Response<Body>, GatewayError>
where
    S: Service<Request<Bytes>, Response = Response<Body>, Error = GatewayError>,
{
    let deadline = plan.deadline.map(|d| Instant::now() + d);
    let mut targets = Vec::with_capacity(4);
    plan.plan(&mut targets);
    let mut failures: Vec<Failed> = Vec::new();
    let mut next = 0;
    let mut context_fallbacks_used = false;
    // The target that cools down soonest, tried when every target is cooling.
    let mut coolest: Option<(Instant, Arc<TargetState>)> = None;
    let mut admitted_any = false;
    let mut limited = false;

    while failures.len() < plan.max_attempts {
        let Some(target) = pick(
            &targets,
            &mut next,
            &mut coolest,
            &mut admitted_any,
            &mut limited,
        ) else {
            break;
        };
        target.sent();
        if !failures.is_empty() {
            service.ready().await?;
        }
        let attempts = failures.len() as u32 + 1;
        let started = Instant::now();
        let mut attempt = req.clone();
        attempt.extensions_mut().insert(target.target.clone());
        let in_flight = InFlight::start(&target);

        let limit = match (plan.attempt_timeout, deadline) {
            (Some(t), Some(d)) => Some((started + t).min(d)),
            (Some(t), None) => Some(started + t),
            (None, d) => d,
        };
        let provider = &*target.target.provider;
        let outcome = async {
            let response = service.call(attempt).await?;
            open(response, provider).await
        };
        let outcome = match limit {
            None => outcome.await,
            Some(at) => match tokio::time::timeout_at(at, outcome).await {
                Ok(outcome) => outcome,
                Err(_) => Err(GatewayError::upstream_timeout(
                    provider,
                    "first content",
                    at.saturating_duration_since(started),
                )),
            },
        };

        let error = match outcome {
            Ok((mut parts, opening)) => {
                target.succeeded();
                target.observe_latency(started.elapsed());
                target.metrics.success.increment(1);
                parts
                    .headers
                    .insert(ATTEMPTS_HEADER, HeaderValue::from(attempts));
                parts.extensions.insert(ComboAttempts {
                    combo: plan.name.clone(),
                    attempts,
                });
                if target.is_counted() {
                    let hook = UsageHook::joined(
                        parts.extensions.remove(),
                        Arc::new(CountTokens(target.clone())),
                    );
                    parts.extensions.insert(hook);
                }
                let body = Body::new(ComboBody::new(opening, in_flight));
                return Ok(Response::from_parts(parts, body));
            }
            Err(error) => error,
        };
        drop(in_flight);
        if is_upstream_fault(&error) {
            target.observe_latency(started.elapsed());
            if target.failed(retry_after(&error)) {
                target.metrics.cooldowns.increment(1);
                tracing::warn!(combo = %plan.name, target = %target.label, error = %error, "combo target cooling down");
            }
        }
        let verdict = plan.policy.judge(&error);
        match verdict {
            Verdict::Next => &target.metrics.failure,
            Verdict::ContextWindow => &target.metrics.context_window,
            Verdict::Final => &target.metrics.client_error,
        }
        .increment(1);
        tracing::debug!(combo = %plan.name, target = %target.label, error = %error, ?verdict, "combo attempt failed");
        match verdict {
            Verdict::Final => return Err(error),
            Verdict::ContextWindow
                if context_fallbacks_used || plan.context_window_fallbacks.is_empty() =>
            {
                return Err(error)
            }
            Verdict::ContextWindow => {
                context_fallbacks_used = true;
                targets.clone_from(&plan.context_window_fallbacks);
                next = 0;
                coolest = None;
                admitted_any = false;
            }
            Verdict::Next => {}
        }
        failures.push(Failed {
            target: target.label.clone(),
            error,
        });
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
    }
    plan.exhausted.increment(1);
    if failures.is_empty() && limited {
        return Err(at_limits(&plan));
    }
    Err(exhausted(&plan, failures))
}

/// Adds an answer's metered tokens to its target's minute.
struct CountTokens(Arc<TargetState>);

impl UsageObserver for CountTokens {
    fn observe(&self, record: &UsageRecord) {
        self.0
            .used_tokens(record.prompt_tokens + record.completion_tokens);
    }
}

/// 429 when every target has used its `rpm`/`tpm` for this minute: retry at the next.
fn at_limits(plan: &ComboPlan) -> GatewayError {
    let into_minute = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() % 60);
    GatewayError::new(
        ErrorKind::Limited,
        http::StatusCode::TOO_MANY_REQUESTS,
        "rate_limit_error",
        format!(
            "Every target of `{}` has used its requests or tokens per minute (rpm/tpm); try again in the next minute.",
            plan.name
        ),
    )
    .with_retry_after(HeaderValue::from(60 - into_minute))
}

/// The next target to try: the next admitted one in plan order, or, when every target of
/// the plan is cooling down, the one that cools down soonest.
fn pick(
    targets: &[Arc<TargetState>],
    next: &mut usize,
    coolest: &mut Option<(Instant, Arc<TargetState>)>,
    admitted_any: &mut bool,
    limited: &mut bool,
) -> Option<Arc<TargetState>> {
    while let Some(target) = targets.get(*next) {
        *next += 1;
        if target.at_limit() {
            *limited = true;
            continue;
        }
        match target.admit() {
            Admission::Yes => {
                *admitted_any = true;
                return Some(target.clone());
            }
            Admission::CoolingUntil(until) => {
                if coolest.as_ref().is_none_or(|(u, _)| until < *u) {
                    *coolest = Some((until, target.clone()));
                }
            }
        }
    }
    if *admitted_any {
        return None;
    }
    *admitted_any = true;
    coolest.take().map(|(_, target)| target)
}

/// Every attempt failed: the last upstream's status and message, with a summary of the
/// attempts.
fn exhausted(plan: &ComboPlan, failures: Vec<Failed>) -> GatewayError {
    let count = failures.len();
    let summary = failures
        .iter()
        .map(|f| {
            format!(
                "{}: {} {}",
                f.target,
                f.error.status().as_u16(),
                f.error.message()
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    let Some(last) = failures.into_iter().next_back() else {
        return GatewayError::internal(format!("Combo `{}` has no target to try.", plan.name));
    };
    let message = format!(
        "All {count} attempts of combo `{}` failed. Attempts: {summary}",
        plan.name
    );
    last.error.with_message(message)
}
