//! The enforcement layer: model access, budgets and rate limits of the request's virtual
//! key and team, and OpenAI's `x-ratelimit-*` headers on the answer.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Request, Response, StatusCode};
use tower::{Layer, Service};

use super::directory::{Directory, Tenant};
use super::limits::{Left, Limit, Limiter, Scope, Verdict};
use crate::body::Body;
use crate::error::{ErrorKind, GatewayError};
use crate::future::LayerFuture;
use crate::metering::{UsageHook, UsageObserver, UsageRecord};
use crate::request::{end_phase, LlmRequest, Phases};

/// Layer that applies the [`Limits`] middleware.
#[derive(Clone)]
pub struct LimitsLayer {
    shared: Option<Arc<Shared>>,
}

pub(super) struct Shared {
    pub(super) directory: Arc<Directory>,
    pub(super) limiter: Arc<dyn Limiter>,
}

impl std::fmt::Debug for LimitsLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LimitsLayer")
            .field("enabled", &self.shared.is_some())
            .finish()
    }
}

impl LimitsLayer {
    /// No virtual keys: every request passes untouched.
    pub fn disabled() -> Self {
        Self { shared: None }
    }

    pub(super) fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared: Some(shared),
        }
    }
}

impl<S> Layer<S> for LimitsLayer {
    type Service = Limits<S>;
    fn layer(&self, inner: S) -> Limits<S> {
        Limits {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// Refuses what a virtual key (and its team) may not do: a model outside its `models`
/// (401), a budget used up (400 `budget_exceeded`), a rate limit reached (429 with
/// `Retry-After`). Requests made with configured keys pass through with the inner
/// service's own future.
#[derive(Clone)]
pub struct Limits<S> {
    inner: S,
    shared: Option<Arc<Shared>>,
}

impl<S: std::fmt::Debug> std::fmt::Debug for Limits<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits")
            .field("inner", &self.inner)
            .finish()
    }
}

impl<S> Service<Request<Bytes>> for Limits<S>
where
    S: Service<Request<Bytes>, Response = Response<Body>, Error = GatewayError>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = GatewayError;
    type Future = LayerFuture<Limited<S::Future>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), GatewayError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Bytes>) -> Self::Future {
        let (Some(shared), Some(tenant)) = (&self.shared, req.extensions().get::<Tenant>()) else {
            return LayerFuture::direct(Limited::pass(self.inner.call(req)));
        };
        let (shared, tenant) = (shared.clone(), tenant.clone());
        let timer = Phases::start(&req, "rate limits");
        let model = req.extensions().get::<LlmRequest>().map(LlmRequest::model);
        if let Err(err) = admissible(&shared.directory, &tenant, model) {
            end_phase(timer, "access denied");
            return LayerFuture::boxed(std::future::ready(Err(err)));
        }
        let scopes = tenant.scopes();
        // Prompt tokens, roughly, reserved until the metered count replaces them.
        let estimate = u64::try_from(req.body().len() / 4).unwrap_or(u64::MAX);
        let decided = if scopes.is_empty() {
            // Nothing to count: the answer's cost still goes to the spend.
            Some(Ok(None))
        } else {
            shared
                .limiter
                .admit_now(scopes, estimate)
                .map(|verdict| admission(scopes, verdict))
        };
        match decided {
            // Decided here (in memory, or nothing to count): no future of our own.
            Some(Err(err)) => {
                end_phase(timer, "refused");
                LayerFuture::boxed(std::future::ready(Err(err)))
            }
            Some(Ok(admitted)) => {
                end_phase(timer, "admitted");
                let reservation = Reservation::new(shared, tenant, estimate, admitted);
                LayerFuture::direct(Limited::counted(self.inner.call(req), reservation))
            }
            // Counted elsewhere (Redis): wait for the verdict, then call.
            None => {
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                LayerFuture::boxed(async move {
                    let scopes = tenant.scopes();
                    let verdict = shared.limiter.admit(scopes, estimate).await;
                    let admitted = match verdict.map(|v| admission(scopes, v)) {
                        Ok(Ok(admitted)) => {
                            end_phase(timer, "admitted");
                            admitted
                        }
                        Ok(Err(refused)) => {
                            end_phase(timer, "refused");
                            return Err(refused);
                        }
                        Err(e) => {
                            end_phase(timer, "unavailable");
                            tracing::warn!(error = %e, "rate limits unavailable: request refused");
                            return Err(GatewayError::new(
                                ErrorKind::Internal,
                                StatusCode::SERVICE_UNAVAILABLE,
                                "service_unavailable_error",
                                "Rate limits cannot be checked right now; try again shortly.",
                            )
                            .with_code("rate_limiter_unavailable"));
                        }
                    };
                    let reservation = Reservation::new(shared, tenant, estimate, admitted);
                    Limited::counted(inner.call(req), reservation).await
                })
            }
        }
    }
}

/// What an admission counted: its window, whether this instance alone counted it, and
/// the headers to answer with.
type Admitted = Option<(u64, bool, RateHeaders)>;

/// A verdict as the request sees it: admitted (with what to count back) or refused.
fn admission(scopes: &[Scope], verdict: Verdict) -> Result<Admitted, GatewayError> {
    match verdict {
        Verdict::Admitted {
            window,
            used,
            local,
        } => Ok(Some((window, local, RateHeaders::of(scopes, &used)))),
        Verdict::Refused {
            scope,
            limit,
            current,
            retry_ms,
        } => Err(refused(&scopes[scope], limit, current, retry_ms)),
    }
}

pin_project_lite::pin_project! {
    /// The inner service's future; on an answer, the admission's rate-limit headers and
    /// its usage hook are put on it.
    pub struct Limited<F> {
        #[pin]
        inner: F,
        headers: RateHeaders,
        reservation: Option<Arc<Reservation>>,
    }
}

impl<F> Limited<F> {
    /// A request without a virtual key: the answer as it is.
    fn pass(inner: F) -> Self {
        Self {
            inner,
            headers: RateHeaders::default(),
            reservation: None,
        }
    }

    /// An admitted request: its headers and hook go on the answer.
    fn counted(inner: F, (reservation, headers): (Reservation, RateHeaders)) -> Self {
        Self {
            inner,
            headers,
            reservation: Some(Arc::new(reservation)),
        }
    }
}

impl<F> std::future::Future for Limited<F>
where
    F: std::future::Future<Output = Result<Response<Body>, GatewayError>>,
{
    type Output = Result<Response<Body>, GatewayError>;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let answer = std::task::ready!(this.inner.poll(cx));
        // Without a reservation (a configured key) there is nothing to add.
        let Some(reservation) = this.reservation.take() else {
            return Poll::Ready(answer);
        };
        let mut response = answer?;
        std::mem::take(this.headers).write(response.headers_mut());
        let extensions = response.extensions_mut();
        let hook = UsageHook::joined(extensions.remove(), reservation as Arc<dyn UsageObserver>);
        extensions.insert(hook);
        Poll::Ready(Ok(response))
    }
}

/// Model access and budgets: what is decided without counting.
fn admissible(
    directory: &Directory,
    tenant: &Tenant,
    model: Option<&str>,
) -> Result<(), GatewayError> {
    let key = &tenant.key;
    if let Some(model) = model {
        let denied = |who: &str, error_type: &str, models: &[String]| {
            GatewayError::new(
                ErrorKind::Unauthorized,
                StatusCode::UNAUTHORIZED,
                error_type,
                format!("{who} not allowed to access model. This {who} can only access models={models:?}. Tried to access {model}"),
            )
            .with_param("model")
            .with_code("401")
        };
        if !key.access.allows(model) {
            return Err(denied("key", "key_model_access_denied", &key.row.models));
        }
        if let Some(team) = tenant.team.as_ref().filter(|t| !t.access.allows(model)) {
            return Err(denied("team", "team_model_access_denied", &team.row.models));
        }
    }
    if let Some(budget) = key.row.max_budget {
        let spend = directory.key_spend(&key.row);
        if spend >= budget {
            let name = key.row.key_alias.as_deref().unwrap_or("key");
            return Err(over_budget(format!(
                "Budget has been exceeded! Key={name} ({}) Current cost: {spend}, Max budget: {budget}",
                key.row.key_name
            )));
        }
    }
    if let Some(team) = &tenant.team {
        if let Some(budget) = team.row.max_budget {
            let spend = directory.team_spend(&team.row);
            if spend >= budget {
                return Err(over_budget(format!(
                    "Budget has been exceeded! Team={} Current cost: {spend}, Max budget: {budget}",
                    team.row.team_id
                )));
            }
        }
    }
    Ok(())
}

fn over_budget(message: String) -> GatewayError {
    GatewayError::new(
        ErrorKind::Limited,
        StatusCode::BAD_REQUEST,
        "budget_exceeded",
        message,
    )
    .with_code("400")
}

/// OpenAI's rate-limit headers, for the scope with the least left of each kind: per kind
/// (requests, tokens) its limit (as a header value), what is left and when the window
/// ends (ms).
#[derive(Debug, Clone, Default)]
struct RateHeaders([Option<(HeaderValue, u64, u64)>; 2]);

const RATE_HEADER_NAMES: [[HeaderName; 3]; 2] = [
    [
        HeaderName::from_static("x-ratelimit-limit-requests"),
        HeaderName::from_static("x-ratelimit-remaining-requests"),
        HeaderName::from_static("x-ratelimit-reset-requests"),
    ],
    [
        HeaderName::from_static("x-ratelimit-limit-tokens"),
        HeaderName::from_static("x-ratelimit-remaining-tokens"),
        HeaderName::from_static("x-ratelimit-reset-tokens"),
    ],
];

impl RateHeaders {
    fn of(scopes: &[Scope], used: &[Left]) -> Self {
        let tightest =
            |kind: usize, limit_of: fn(&Scope) -> Option<u64>, used_of: fn(&Left) -> u64| {
                scopes
                    .iter()
                    .zip(used)
                    .filter_map(|(s, l)| {
                        let max = limit_of(s)?;
                        Some((s, max.saturating_sub(used_of(l)), l.reset_ms))
                    })
                    .min_by_key(|(_, remaining, _)| *remaining)
                    .and_then(|(s, remaining, reset)| {
                        Some((s.header_values[kind].clone()?, remaining, reset))
                    })
            };
        Self([
            tightest(0, |s| s.rpm, |l| l.requests),
            tightest(1, |s| s.tpm, |l| l.tokens),
        ])
    }

    fn write(self, headers: &mut HeaderMap) {
        // Room for all six at once, rather than the map growing while they go in.
        headers.reserve(6);
        // Both kinds count in the same window: one reset value, usually.
        let mut reset_value: Option<(u64, HeaderValue)> = None;
        for (kind, names) in self.0.into_iter().zip(RATE_HEADER_NAMES) {
            if let Some((limit, remaining, reset_ms)) = kind {
                let [limit_name, remaining_name, reset_name] = names;
                headers.insert(limit_name, limit);
                headers.insert(remaining_name, HeaderValue::from(remaining));
                let reset = match &reset_value {
                    Some((ms, value)) if *ms == reset_ms => value.clone(),
                    _ => {
                        let value = reset_text(reset_ms);
                        reset_value = Some((reset_ms, value.clone()));
                        value
                    }
                };
                headers.insert(reset_name, reset);
            }
        }
    }
}

/// A duration as OpenAI's `x-ratelimit-reset-*` write it: `20ms`, `17s`, `6m0s` (put
/// together on the stack: `format!` was a fifth of the headers' cost).
fn reset_text(ms: u64) -> HeaderValue {
    let mut text = [0; 48];
    let mut len = 0;
    let mut put = |part: &[u8]| {
        text[len..len + part.len()].copy_from_slice(part);
        len += part.len();
    };
    let mut digits = itoa::Buffer::new();
    if ms < 1_000 {
        put(digits.format(ms).as_bytes());
        put(b"ms");
    } else if ms < 60_000 {
        put(digits.format(ms.div_ceil(1_000)).as_bytes());
        put(b"s");
    } else {
        let s = ms.div_ceil(1_000);
        put(digits.format(s / 60).as_bytes());
        put(b"m");
        put(digits.format(s % 60).as_bytes());
        put(b"s");
    }
    HeaderValue::from_bytes(&text[..len]).expect("digits and units")
}

fn refused(scope: &Scope, limit: Limit, current: u64, retry_ms: u64) -> GatewayError {
    let (kind, max) = match limit {
        Limit::Requests => ("requests", scope.rpm),
        Limit::Tokens => ("tokens", scope.tpm),
        Limit::Parallel => ("max_parallel_requests", scope.parallel),
    };
    let max = max.unwrap_or(0);
    let id = scope.id.as_str();
    let (descriptor, value) = id.split_once(':').unwrap_or(("key", id));
    let descriptor = if descriptor == "key" {
        "api_key"
    } else {
        descriptor
    };
    let resets = std::time::UNIX_EPOCH
        + std::time::Duration::from_millis(super::limits::now_ms() + retry_ms);
    let retry_after = retry_ms.div_ceil(1_000).max(1);
    GatewayError::new(
        ErrorKind::Limited,
        StatusCode::TOO_MANY_REQUESTS,
        "throttling_error",
        format!(
            "Rate limit exceeded for {descriptor}: {value}. Limit type: {kind}. Current limit: {max}, Remaining: {}. Limit resets at: {}",
            max.saturating_sub(current),
            humantime::format_rfc3339_seconds(resets)
        ),
    )
    .with_code("rate_limit_exceeded")
    .with_retry_after(HeaderValue::from(retry_after))
}

/// One admitted request's slots and reserved tokens, given back when it is over and
/// corrected to what it was metered; and its cost added to the spend.
struct Reservation {
    shared: Arc<Shared>,
    tenant: Tenant,
    window: u64,
    local: bool,
    reserved: u64,
    freed: AtomicBool,
    observed: AtomicBool,
}

impl UsageObserver for Reservation {
    fn ended(&self) {
        if !self.freed.swap(true, Ordering::AcqRel) {
            self.shared.limiter.ended(self.tenant.scopes(), self.local);
        }
    }

    fn observe(&self, record: &UsageRecord) {
        if let Some(cost) = record.cost_usd {
            self.shared.directory.spent(&self.tenant, cost);
        }
        self.settle(record.prompt_tokens + record.completion_tokens);
    }
}

impl Reservation {
    /// The reservation of an admission (`None`: nothing was counted), and its headers.
    fn new(
        shared: Arc<Shared>,
        tenant: Tenant,
        estimate: u64,
        admitted: Admitted,
    ) -> (Self, RateHeaders) {
        let counted = admitted.is_some();
        let (window, local, headers) = admitted.unwrap_or((0, true, RateHeaders::default()));
        let reservation = Self {
            shared,
            tenant,
            window,
            local,
            reserved: if counted { estimate } else { 0 },
            freed: AtomicBool::new(!counted),
            observed: AtomicBool::new(!counted),
        };
        (reservation, headers)
    }

    fn settle(&self, actual: u64) {
        if !self.observed.swap(true, Ordering::AcqRel) {
            let delta = i64::try_from(actual).unwrap_or(i64::MAX)
                - i64::try_from(self.reserved).unwrap_or(i64::MAX);
            self.shared
                .limiter
                .used(self.tenant.scopes(), self.window, self.local, delta);
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        // Never metered (a failure before the answer, a client that left): no tokens.
        self.ended();
        self.settle(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resets_read_like_openai_s() {
        assert_eq!(reset_text(250), "250ms");
        assert_eq!(reset_text(16_200), "17s");
        assert_eq!(reset_text(360_000), "6m0s");
        assert_eq!(reset_text(u64::MAX), "307445734561825m52s");
    }

    #[test]
    fn the_six_headers_read_as_openai_s_and_the_widest_values_fit() {
        let scope = Scope::new("key:a".into(), Some(u64::MAX), Some(10), None).expect("limited");
        let scopes = [scope];
        let used = [Left {
            requests: 0,
            tokens: 3,
            reset_ms: u64::MAX,
        }];
        let mut headers = HeaderMap::new();
        RateHeaders::of(&scopes, &used).write(&mut headers);
        let read = |name: &str| headers[name].to_str().unwrap().to_owned();
        assert_eq!(read("x-ratelimit-limit-requests"), u64::MAX.to_string());
        assert_eq!(read("x-ratelimit-remaining-requests"), u64::MAX.to_string());
        assert_eq!(read("x-ratelimit-reset-requests"), "307445734561825m52s");
        assert_eq!(read("x-ratelimit-limit-tokens"), "10");
        assert_eq!(read("x-ratelimit-remaining-tokens"), "7");
        assert_eq!(read("x-ratelimit-reset-tokens"), "307445734561825m52s");
    }
}
