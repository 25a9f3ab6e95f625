//! `GET /v1/responses/{id}`, `GET /v1/responses/{id}/input_items` and
//! `DELETE /v1/responses/{id}`, answered from the store for the key that created the
//! response.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Method, Response, StatusCode};
use serde_json::{json, Value};

use super::conversation::Conversation;
use super::store::ResponseStore;
use crate::body::Body;
use crate::error::{ErrorKind, GatewayError};

/// What a `/v1/responses/…` path names.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Target<'a> {
    Response(&'a str),
    InputItems(&'a str),
}

/// The target of a path below `/v1/responses/`, if any.
pub(crate) fn target(path: &str) -> Option<Target<'_>> {
    let rest = path
        .strip_prefix("/v1/responses/")
        .or_else(|| path.strip_prefix("/responses/"))?;
    match rest.split_once('/') {
        None if !rest.is_empty() => Some(Target::Response(rest)),
        Some((id, "input_items")) if !id.is_empty() => Some(Target::InputItems(id)),
        _ => None,
    }
}

fn not_found(id: &str) -> GatewayError {
    GatewayError::not_found(format!("Response with id '{id}' not found."))
}

/// Answers `method` on `target` for the key `owner`.
pub(crate) async fn serve(
    store: Arc<dyn ResponseStore>,
    method: Method,
    target: Target<'_>,
    query: Option<&str>,
    owner: &str,
) -> Result<Response<Body>, GatewayError> {
    let id = match target {
        Target::Response(id) | Target::InputItems(id) => id,
    };
    let unavailable = |e: super::StoreError| {
        tracing::warn!(error = %e, "response store unreachable");
        GatewayError::new(
            ErrorKind::Internal,
            StatusCode::SERVICE_UNAVAILABLE,
            "api_error",
            "The response store is unavailable; retry later.",
        )
        .with_code("response_store_unavailable")
    };
    let stored = store.get(id).await.map_err(unavailable)?;
    let conversation = stored
        .as_deref()
        .and_then(Conversation::decode)
        .filter(|c| *c.owner == *owner)
        .ok_or_else(|| not_found(id))?;
    match (method, target) {
        (Method::GET, Target::Response(_)) => Ok(json(&conversation.response)),
        (Method::DELETE, Target::Response(_)) => {
            store.delete(id).await.map_err(unavailable)?;
            Ok(json(
                &json!({"id": id, "object": "response.deleted", "deleted": true}),
            ))
        }
        (Method::GET, Target::InputItems(_)) => input_items(conversation.input, query),
        (method, _) => Err(GatewayError::method_not_allowed(
            &method,
            &format!("/v1/responses/{id}"),
        )),
    }
}

/// A page of the input items: `order` (`desc`, the default, or `asc`), `limit` (1–100,
/// default 20), `after` (an item id).
fn input_items(mut items: Vec<Value>, query: Option<&str>) -> Result<Response<Body>, GatewayError> {
    let mut order = "desc".to_owned();
    let mut limit = 20usize;
    let mut after = None;
    for (key, value) in query
        .unwrap_or_default()
        .split('&')
        .filter_map(|pair| pair.split_once('='))
    {
        let value = percent_encoding::percent_decode_str(value)
            .decode_utf8_lossy()
            .into_owned();
        match key {
            "order" if value == "asc" || value == "desc" => order = value,
            "order" => {
                return Err(GatewayError::invalid_param(
                    "order",
                    format!("Invalid value for 'order': '{value}'. Expected 'asc' or 'desc'."),
                ))
            }
            "limit" => {
                limit = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=100).contains(n))
                    .ok_or_else(|| {
                        GatewayError::invalid_param(
                            "limit",
                            "Invalid value for 'limit': expected an integer between 1 and 100.",
                        )
                    })?;
            }
            "after" => after = Some(value),
            _ => {}
        }
    }
    if order == "desc" {
        items.reverse();
    }
    let start = match &after {
        Some(after) => items
            .iter()
            .position(|item| item["id"].as_str() == Some(after))
            .map_or(items.len(), |i| i + 1),
        None => 0,
    };
    let rest = items.len().saturating_sub(start);
    let page: Vec<Value> = items.into_iter().skip(start).take(limit).collect();
    let id_of = |item: Option<&Value>| item.and_then(|i| i["id"].as_str()).map(str::to_owned);
    Ok(json(&json!({
        "object": "list",
        "data": page,
        "first_id": id_of(page.first()),
        "last_id": id_of(page.last()),
        "has_more": rest > limit,
    })))
}

fn json(value: &Value) -> Response<Body> {
    let mut response = Response::new(Body::full(Bytes::from(
        serde_json::to_vec(value).expect("JSON serialises"),
    )));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_a_response_or_its_input_items() {
        assert_eq!(
            target("/v1/responses/resp_1"),
            Some(Target::Response("resp_1"))
        );
        assert_eq!(
            target("/v1/responses/resp_1/input_items"),
            Some(Target::InputItems("resp_1"))
        );
        assert_eq!(target("/v1/responses/"), None);
        assert_eq!(target("/v1/responses/resp_1/cancel"), None);
    }

    #[tokio::test]
    async fn input_items_page_newest_first_by_default() {
        let items: Vec<Value> = (0..5).map(|i| json!({"id": format!("msg_{i}")})).collect();
        let page = |query: &str| {
            let response = input_items(items.clone(), Some(query)).unwrap();
            async move {
                let body = http_body_util::BodyExt::collect(response.into_body())
                    .await
                    .unwrap()
                    .to_bytes();
                serde_json::from_slice::<Value>(&body).unwrap()
            }
        };
        let first = page("limit=2").await;
        assert_eq!(first["first_id"], "msg_4");
        assert_eq!(first["last_id"], "msg_3");
        assert_eq!(first["has_more"], true);
        let next = page("limit=2&after=msg_3").await;
        assert_eq!(next["first_id"], "msg_2");
        let last = page("order=asc&after=msg_3").await;
        assert_eq!(last["data"].as_array().unwrap().len(), 1);
        assert_eq!(last["has_more"], false);
        assert!(input_items(items, Some("limit=0")).is_err());
    }
}
