//! The endpoints beside the LLM stack: models, usage, health, metrics; and the answer to a
//! panic.

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{HeaderMap, Method, Response, StatusCode};
use serde_json::json;
use tower_http::catch_panic::ResponseForPanic;

use super::build::{anthropic_model, openai_model, Models, Shared};
use crate::body::Body;
use crate::error::{ErrorKind, GatewayError};
use crate::metering::report::{aggregate, listing, RecordsQuery, ReportQuery, RECORDS_SCANNED};
use crate::metering::{Meter, Order};
use crate::protocol::Protocol;
use crate::tenancy::Tenant;

/// `GET /health`: the process is up.
pub(super) fn health() -> Response<Body> {
    json_response(StatusCode::OK, Bytes::from_static(b"{\"status\":\"ok\"}"))
}

/// `GET /v1/models`: every provider's `models`, the aliases and the combos (for a virtual
/// key, those it may call); in Anthropic's shape when the client sends `anthropic-version`
/// (as Anthropic's SDKs do).
pub(super) async fn models(shared: Arc<Shared>, headers: HeaderMap) -> Response<Body> {
    let protocol = protocol_of(&headers);
    let tenant = match shared.keys.authorize(&headers).await {
        Ok(authorized) => authorized.extensions.get::<Tenant>().cloned(),
        Err(err) => return err.into_response_as(protocol),
    };
    let Some(tenant) = tenant.filter(|t| !t.allows_every_model()) else {
        return match protocol {
            Protocol::Anthropic => json_response(StatusCode::OK, shared.models.anthropic.clone()),
            Protocol::OpenAi => json_response(StatusCode::OK, shared.models.openai.clone()),
        };
    };
    let ids: Vec<_> = shared
        .models
        .ids
        .iter()
        .filter(|(id, _)| tenant.allows_model(id))
        .cloned()
        .collect();
    let models = Models::new(ids);
    match protocol {
        Protocol::Anthropic => json_response(StatusCode::OK, models.anthropic),
        Protocol::OpenAi => json_response(StatusCode::OK, models.openai),
    }
}

/// `GET /v1/models/{id}`: one model of the list. Ids hold `/` (`provider/model`), sent
/// as is or percent-encoded.
pub(super) async fn model(shared: Arc<Shared>, headers: HeaderMap, id: String) -> Response<Body> {
    let protocol = protocol_of(&headers);
    let tenant = match shared.keys.authorize(&headers).await {
        Ok(authorized) => authorized.extensions.get::<Tenant>().cloned(),
        Err(err) => return err.into_response_as(protocol),
    };
    let id = percent_encoding::percent_decode_str(&id).decode_utf8_lossy();
    let found = shared
        .models
        .ids
        .iter()
        .find(|(known, _)| *known == *id)
        .filter(|(known, _)| tenant.as_ref().is_none_or(|t| t.allows_model(known)));
    let Some((id, owner)) = found else {
        let err = GatewayError::new(
            ErrorKind::InvalidRequest,
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            format!("The model `{id}` does not exist (GET /v1/models lists them)."),
        )
        .with_param("model")
        .with_code("model_not_found");
        return err.into_response_as(protocol);
    };
    let body = match protocol {
        Protocol::Anthropic => anthropic_model(id),
        Protocol::OpenAi => openai_model(id, owner),
    };
    json_response(
        StatusCode::OK,
        serde_json::to_vec(&body).expect("json").into(),
    )
}

/// LiteLLM's key and team management (`/key/*`, `/team/*`): the master key only.
pub(super) async fn management(
    shared: Arc<Shared>,
    method: Method,
    uri: http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response<Body> {
    let result = async {
        let what = format!("{method} {}", uri.path());
        let key = shared.keys.authorize(&headers).await.map(|a| a.id);
        is_master(&shared, key, &what)?;
        let tenancy = shared.tenancy.as_ref().ok_or_else(|| {
            GatewayError::new(
                ErrorKind::InvalidRequest,
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                "Virtual keys are off: they need a master_key and a metering ledger in a database (metering.sink: sqlite or postgres).",
            )
        })?;
        crate::tenancy::api::serve(tenancy.directory(), &method, uri.path(), uri.query(), body)
            .await
    }
    .await;
    match result {
        Ok(value) => json_response(
            StatusCode::OK,
            serde_json::to_vec(&value).expect("json").into(),
        ),
        Err(err) => err.into_response(),
    }
}

/// Anthropic's clients send `anthropic-version` with every request.
fn protocol_of(headers: &HeaderMap) -> Protocol {
    match headers.contains_key("anthropic-version") {
        true => Protocol::Anthropic,
        false => Protocol::OpenAi,
    }
}

/// `GET /metrics`: the Prometheus text of the exporter the gateway was given.
pub(super) fn metrics(shared: &Shared, headers: &HeaderMap) -> Response<Body> {
    if shared.metrics_need_master {
        if let Err(err) = master_only(shared, headers, "GET /metrics") {
            return err.into_response();
        }
    }
    match &shared.prometheus {
        Some(handle) => {
            let mut response = Response::new(Body::from(handle.render()));
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            response
        }
        None => GatewayError::new(
            ErrorKind::InvalidRequest,
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "This gateway was built without a Prometheus exporter; metrics go to the application's own `metrics` recorder.",
        )
        .into_response(),
    }
}

/// `GET /v1/usage`: the master key only.
/// Admits the master key only (401 without a valid key, 403 for another key or when no
/// master key is configured).
fn master_only(shared: &Shared, headers: &HeaderMap, what: &str) -> Result<(), GatewayError> {
    is_master(shared, shared.keys.check(headers), what)
}

/// The same, for a key already checked.
pub(super) fn is_master(
    shared: &Shared,
    key: Result<crate::auth::KeyId, GatewayError>,
    what: &str,
) -> Result<(), GatewayError> {
    let forbidden = |message: String| {
        GatewayError::new(
            ErrorKind::Unauthorized,
            StatusCode::FORBIDDEN,
            "permission_error",
            message,
        )
    };
    if !shared.master_key {
        return Err(forbidden(format!(
            "{what} needs a master_key in the gateway's config."
        )));
    }
    let key = key?;
    if &*key.0 != "master" {
        return Err(forbidden(format!("{what} is for the master key only.")));
    }
    Ok(())
}

pub(super) async fn usage(
    shared: Arc<Shared>,
    headers: HeaderMap,
    query: Option<String>,
) -> Response<Body> {
    let result = async {
        master_only(&shared, &headers, "GET /v1/usage")?;
        let query = ReportQuery::parse(query.as_deref())?;
        let records = ledger(
            &shared,
            query.from_ms,
            query.to_ms,
            query.limit(),
            Order::OldestFirst,
        )
        .await?;
        Ok::<_, GatewayError>(aggregate(&query, &records))
    }
    .await;
    json_or_error(result)
}

/// `GET /v1/usage/records`: the newest usage records, filtered.
pub(super) async fn usage_records(
    shared: Arc<Shared>,
    headers: HeaderMap,
    query: Option<String>,
) -> Response<Body> {
    let result = async {
        master_only(&shared, &headers, "GET /v1/usage/records")?;
        let query = RecordsQuery::parse(query.as_deref())?;
        let records = ledger(
            &shared,
            query.from_ms,
            query.to_ms,
            RECORDS_SCANNED,
            Order::NewestFirst,
        )
        .await?;
        Ok::<_, GatewayError>(listing(&query, &records))
    }
    .await;
    json_or_error(result)
}

/// The ledger's records in a range, what this instance served so far written first (the
/// writer batches).
async fn ledger(
    shared: &Shared,
    from_ms: i64,
    to_ms: i64,
    limit: usize,
    order: Order,
) -> Result<Vec<crate::metering::UsageRecord>, GatewayError> {
    if let Some(meter) = &shared.meter {
        meter.flush().await;
    }
    let sink = shared.meter.as_ref().and_then(Meter::sink).ok_or_else(|| {
        GatewayError::new(
            ErrorKind::InvalidRequest,
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "Usage metering has no ledger here (metering.sink: none, or metering disabled).",
        )
    })?;
    sink.query(from_ms, to_ms, limit, order)
        .await
        .map_err(|e| GatewayError::internal(format!("The usage ledger could not be read: {e}")))
}

fn json_or_error(result: Result<serde_json::Value, GatewayError>) -> Response<Body> {
    match result {
        Ok(report) => json_response(
            StatusCode::OK,
            serde_json::to_vec(&report).expect("json").into(),
        ),
        Err(err) => err.into_response(),
    }
}

/// `GET /health/readiness`: every provider's upstream answers its readiness check within 5 s.
pub(super) async fn readiness(shared: Arc<Shared>) -> Response<Body> {
    let results: Vec<_> = shared
        .executors
        .readiness(Duration::from_secs(5))
        .await
        .into_iter()
        .map(|(name, r)| (name, r.map_err(|e| e.message().to_owned())))
        .collect();
    let ready = results.iter().all(|(_, r)| r.is_ok());
    let providers: serde_json::Map<_, _> = results
        .into_iter()
        .map(|(name, r)| {
            (
                name,
                r.map_or_else(
                    |e| json!({ "status": "unavailable", "error": e }),
                    |()| json!({ "status": "ok" }),
                ),
            )
        })
        .collect();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body =
        json!({ "status": if ready { "ready" } else { "unavailable" }, "providers": providers });
    json_response(status, serde_json::to_vec(&body).expect("json").into())
}

pub(crate) fn json_response(status: StatusCode, body: Bytes) -> Response<Body> {
    let mut response = Response::new(Body::full(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// A panic while handling a request (in `call`, or while its response future is polled)
/// answers 500 in OpenAI's error shape, and is logged; the connection stays up.
#[derive(Debug, Clone, Copy, Default)]
pub struct PanicResponse;

impl ResponseForPanic for PanicResponse {
    type ResponseBody = Body;

    fn response_for_panic(&mut self, panic: Box<dyn Any + Send + 'static>) -> Response<Body> {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        tracing::error!(panic = %what, "request handler panicked");
        GatewayError::internal("The gateway failed while handling this request.").into_response()
    }
}
