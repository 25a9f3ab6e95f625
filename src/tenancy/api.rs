//! LiteLLM's key and team management endpoints (master key only), with its field names,
//! so that its docs and scripts apply: `POST /key/generate`, `/key/update`, `/key/delete`,
//! `/key/block`, `/key/unblock`, `GET /key/info`, `/key/list`; `POST /team/new`,
//! `/team/update`, `/team/delete`, `/team/block`, `/team/unblock`, `GET /team/info`,
//! `/team/list`. Unknown fields and bad values are a 400 naming the field.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::{json, Map, Value};

use super::access::ModelAccess;
use super::directory::Directory;
use super::model::{display_name, hash_key, is_token, new_secret, new_team_id, KeyRow, TeamRow};
use super::store::KeyFilter;
use crate::error::{ErrorKind, GatewayError};
use crate::store::StoreError;

/// Whether `path` is one of these endpoints.
pub fn is_management_path(path: &str) -> bool {
    path.starts_with("/key/") || path.starts_with("/team/")
}

/// Serves one management request (the caller has checked the master key).
pub async fn serve(
    directory: &Directory,
    method: &Method,
    path: &str,
    query: Option<&str>,
    body: Bytes,
) -> Result<Value, GatewayError> {
    let api = Api { directory };
    match (method, path) {
        (&Method::POST, "/key/generate") => api.generate(parse(&body)?).await,
        (&Method::POST, "/key/update") => api.update(parse(&body)?).await,
        (&Method::POST, "/key/delete") => api.delete(parse(&body)?).await,
        (&Method::POST, "/key/block") => api.block(parse(&body)?, true).await,
        (&Method::POST, "/key/unblock") => api.block(parse(&body)?, false).await,
        (&Method::GET, "/key/info") => api.info(&query_of(query)?).await,
        (&Method::GET, "/key/list") => api.list(&query_of(query)?).await,
        (&Method::POST, "/team/new") => api.new_team(parse(&body)?).await,
        (&Method::POST, "/team/update") => api.update_team(parse(&body)?).await,
        (&Method::POST, "/team/delete") => api.delete_teams(parse(&body)?).await,
        (&Method::POST, "/team/block") => api.block_team(parse(&body)?, true).await,
        (&Method::POST, "/team/unblock") => api.block_team(parse(&body)?, false).await,
        (&Method::GET, "/team/info") => api.team_info(&query_of(query)?).await,
        (&Method::GET, "/team/list") => api.team_list().await,
        (method, path) => Err(GatewayError::route_not_found(method, path)),
    }
}

/// A time as LiteLLM's JSON shows it: `2025-03-12T14:37:22Z`.
pub(crate) fn timestamp(ms: i64) -> String {
    let at = UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_seconds(at).to_string()
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A 400 about `field`, in LiteLLM's envelope.
fn bad(field: &str, message: impl Into<String>) -> GatewayError {
    GatewayError::new(
        ErrorKind::InvalidRequest,
        StatusCode::BAD_REQUEST,
        "bad_request_error",
        message,
    )
    .with_param(field)
    .with_code("400")
}

fn not_found(field: &str, message: impl Into<String>) -> GatewayError {
    GatewayError::new(
        ErrorKind::InvalidRequest,
        StatusCode::NOT_FOUND,
        "not_found_error",
        message,
    )
    .with_param(field)
    .with_code("404")
}

fn store_failed(e: &StoreError) -> GatewayError {
    tracing::warn!(error = %e, "virtual keys: a management request could not reach the store");
    GatewayError::new(
        ErrorKind::Internal,
        StatusCode::SERVICE_UNAVAILABLE,
        "service_unavailable_error",
        "The key store cannot be reached; nothing was changed.",
    )
    .with_code("key_store_unavailable")
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, GatewayError> {
    let body = if body.trim_ascii().is_empty() {
        b"{}"
    } else {
        body
    };
    let mut de = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let field = e.path().to_string();
        let inner = e.into_inner();
        if field == "." || field.is_empty() {
            GatewayError::bad_request(format!("The body is not a JSON object: {inner}"))
                .with_code("400")
        } else {
            bad(&field, format!("{field}: {inner}"))
        }
    })
}

fn query_of(query: Option<&str>) -> Result<Map<String, Value>, GatewayError> {
    let mut out = Map::new();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(&s.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        };
        out.insert(decode(name), Value::String(decode(value)));
    }
    Ok(out)
}

fn query_str<'a>(query: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    query
        .get(name)
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty())
}

/// A field that may be absent (unchanged), `null` (cleared) or a value.
type Field<T> = Option<Option<T>>;

fn field<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Field<T>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// The fields of `/key/generate` and `/key/update`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFields {
    /// The key to update (a secret or its token); for generate, a caller-chosen secret.
    #[serde(default)]
    key: Option<String>,
    #[serde(default, deserialize_with = "field")]
    key_alias: Field<String>,
    #[serde(default, deserialize_with = "field")]
    duration: Field<String>,
    #[serde(default, deserialize_with = "field")]
    models: Field<Vec<String>>,
    #[serde(default, deserialize_with = "field")]
    max_budget: Field<f64>,
    #[serde(default, deserialize_with = "field")]
    budget_duration: Field<String>,
    #[serde(default, deserialize_with = "field")]
    spend: Field<f64>,
    #[serde(default, deserialize_with = "field")]
    rpm_limit: Field<u64>,
    #[serde(default, deserialize_with = "field")]
    tpm_limit: Field<u64>,
    #[serde(default, deserialize_with = "field")]
    max_parallel_requests: Field<u64>,
    #[serde(default, deserialize_with = "field")]
    metadata: Field<Map<String, Value>>,
    #[serde(default, deserialize_with = "field")]
    team_id: Field<String>,
    #[serde(default, deserialize_with = "field")]
    user_id: Field<String>,
    #[serde(default, deserialize_with = "field")]
    blocked: Field<bool>,
    /// Stored in `metadata.tags`, as LiteLLM does.
    #[serde(default, deserialize_with = "field")]
    tags: Field<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteKeys {
    #[serde(default)]
    keys: Option<Vec<String>>,
    #[serde(default)]
    key_aliases: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyRef {
    key: String,
}

/// The fields of `/team/new` and `/team/update`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TeamFields {
    #[serde(default)]
    team_id: Option<String>,
    #[serde(default, deserialize_with = "field")]
    team_alias: Field<String>,
    #[serde(default, deserialize_with = "field")]
    models: Field<Vec<String>>,
    #[serde(default, deserialize_with = "field")]
    max_budget: Field<f64>,
    #[serde(default, deserialize_with = "field")]
    budget_duration: Field<String>,
    #[serde(default, deserialize_with = "field")]
    rpm_limit: Field<u64>,
    #[serde(default, deserialize_with = "field")]
    tpm_limit: Field<u64>,
    #[serde(default, deserialize_with = "field")]
    max_parallel_requests: Field<u64>,
    #[serde(default, deserialize_with = "field")]
    metadata: Field<Map<String, Value>>,
    #[serde(default, deserialize_with = "field")]
    blocked: Field<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TeamIds {
    team_ids: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TeamRef {
    team_id: String,
}

/// A key as the endpoints show it (LiteLLM's `LiteLLM_VerificationToken` fields).
fn key_json(row: &KeyRow) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("token".into(), json!(row.token));
    out.insert("key_name".into(), json!(row.key_name));
    out.insert("key_alias".into(), json!(row.key_alias));
    out.insert("spend".into(), json!(row.spend));
    out.insert("max_budget".into(), json!(row.max_budget));
    out.insert("budget_duration".into(), json!(row.budget_duration));
    out.insert(
        "budget_reset_at".into(),
        json!(row.budget_reset_at_ms.map(timestamp)),
    );
    out.insert("expires".into(), json!(row.expires_ms.map(timestamp)));
    out.insert("models".into(), json!(row.models));
    out.insert("rpm_limit".into(), json!(row.rpm_limit));
    out.insert("tpm_limit".into(), json!(row.tpm_limit));
    out.insert(
        "max_parallel_requests".into(),
        json!(row.max_parallel_requests),
    );
    out.insert("team_id".into(), json!(row.team_id));
    out.insert("user_id".into(), json!(row.user_id));
    out.insert("metadata".into(), Value::Object(row.metadata.clone()));
    out.insert("blocked".into(), json!(row.blocked));
    out.insert("created_at".into(), json!(timestamp(row.created_at_ms)));
    out.insert("updated_at".into(), json!(timestamp(row.updated_at_ms)));
    out
}

fn team_json(row: &TeamRow) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("team_id".into(), json!(row.team_id));
    out.insert("team_alias".into(), json!(row.team_alias));
    out.insert("models".into(), json!(row.models));
    out.insert("spend".into(), json!(row.spend));
    out.insert("max_budget".into(), json!(row.max_budget));
    out.insert("budget_duration".into(), json!(row.budget_duration));
    out.insert(
        "budget_reset_at".into(),
        json!(row.budget_reset_at_ms.map(timestamp)),
    );
    out.insert("rpm_limit".into(), json!(row.rpm_limit));
    out.insert("tpm_limit".into(), json!(row.tpm_limit));
    out.insert(
        "max_parallel_requests".into(),
        json!(row.max_parallel_requests),
    );
    out.insert("metadata".into(), Value::Object(row.metadata.clone()));
    out.insert("blocked".into(), json!(row.blocked));
    out.insert("created_at".into(), json!(timestamp(row.created_at_ms)));
    out.insert("updated_at".into(), json!(timestamp(row.updated_at_ms)));
    out
}

/// When a budget period starting now ends.
/// When the budget period of `duration` that starts now ends.
fn period_end(duration: &str, field: &str) -> Result<i64, GatewayError> {
    super::duration::period_end(duration, now_ms()).map_err(|e| bad(field, format!("{field}: {e}")))
}

fn check_models(models: &[String]) -> Result<(), GatewayError> {
    ModelAccess::new(models)
        .map(drop)
        .map_err(|e| bad("models", format!("models: {e}")))
}

fn check_usd(field: &str, value: f64) -> Result<(), GatewayError> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(bad(
            field,
            format!("{field} must be a non-negative finite number. Received: {value}"),
        ))
    }
}

fn check_alias(alias: &str) -> Result<(), GatewayError> {
    if alias.is_empty()
        || alias.chars().any(char::is_control)
        || alias.split('/').any(|segment| segment == "..")
    {
        return Err(bad(
            "key_alias",
            "Invalid key_alias: must not be empty or contain control characters (such as tab or newline) or a \"..\" path segment",
        ));
    }
    Ok(())
}

struct Api<'a> {
    directory: &'a Directory,
}

impl Api<'_> {
    /// The token a `key` value names: a secret (hashed) or a token as is.
    fn token_of(key: &str) -> String {
        if is_token(key) {
            key.to_ascii_lowercase()
        } else {
            hash_key(key)
        }
    }

    async fn key_by_ref(&self, key: &str) -> Result<KeyRow, GatewayError> {
        let store = self.directory.store();
        store
            .key(&Self::token_of(key))
            .await
            .map_err(|e| store_failed(&e))?
            .ok_or_else(|| not_found("key", "Key not found."))
    }

    async fn alias_taken(&self, alias: &str, by: Option<&str>) -> Result<(), GatewayError> {
        let existing = self
            .directory
            .store()
            .key_by_alias(alias)
            .await
            .map_err(|e| store_failed(&e))?;
        match existing {
            Some(row) if Some(row.token.as_str()) != by => Err(bad(
                "key_alias",
                format!("Key with alias '{alias}' already exists. Unique key aliases across all keys are required."),
            )),
            _ => Ok(()),
        }
    }

    /// Applies the fields given to `row` (validated); `creating` for generate.
    fn apply(row: &mut KeyRow, fields: KeyFields) -> Result<(), GatewayError> {
        if let Some(alias) = fields.key_alias {
            if let Some(alias) = &alias {
                check_alias(alias)?;
            }
            row.key_alias = alias;
        }
        if let Some(duration) = fields.duration {
            row.expires_ms = match duration.as_deref() {
                None | Some("-1") => None,
                Some(d) => {
                    let d = super::duration::parse(d)
                        .map_err(|e| bad("duration", format!("duration: {e}")))?;
                    Some(now_ms().saturating_add(millis(d)))
                }
            };
        }
        if let Some(models) = fields.models {
            let models = models.unwrap_or_default();
            check_models(&models)?;
            row.models = models;
        }
        if let Some(budget) = fields.max_budget {
            if let Some(b) = budget {
                check_usd("max_budget", b)?;
            }
            row.max_budget = budget;
        }
        if let Some(duration) = fields.budget_duration {
            row.budget_reset_at_ms = match &duration {
                Some(d) => Some(period_end(d, "budget_duration")?),
                None => None,
            };
            row.budget_duration = duration;
        }
        if let Some(spend) = fields.spend {
            let spend = spend.unwrap_or(0.0);
            check_usd("spend", spend)?;
            row.spend = spend;
        }
        if let Some(v) = fields.rpm_limit {
            row.rpm_limit = v;
        }
        if let Some(v) = fields.tpm_limit {
            row.tpm_limit = v;
        }
        if let Some(v) = fields.max_parallel_requests {
            row.max_parallel_requests = v;
        }
        if let Some(metadata) = fields.metadata {
            row.metadata = metadata.unwrap_or_default();
        }
        if let Some(tags) = fields.tags {
            match tags {
                Some(tags) => row.metadata.insert("tags".into(), json!(tags)),
                None => row.metadata.remove("tags"),
            };
        }
        if let Some(team) = fields.team_id {
            row.team_id = team.filter(|t| !t.is_empty());
        }
        if let Some(user) = fields.user_id {
            row.user_id = user;
        }
        if let Some(blocked) = fields.blocked {
            row.blocked = blocked.unwrap_or(false);
        }
        Ok(())
    }

    async fn generate(&self, mut fields: KeyFields) -> Result<Value, GatewayError> {
        let secret = match fields.key.take() {
            Some(key) => {
                if !key.starts_with("sk-") || key.len() < 16 {
                    return Err(bad(
                        "key",
                        "Invalid key format. A virtual key must start with 'sk-' and be at least 16 characters long.",
                    ));
                }
                key
            }
            None => new_secret(),
        };
        let duration = fields.duration.clone().flatten();
        let spend = fields.spend.flatten().unwrap_or(0.0);
        let mut row = KeyRow {
            token: hash_key(&secret),
            key_name: display_name(&secret),
            ..KeyRow::default()
        };
        Self::apply(&mut row, fields)?;
        if let Some(alias) = &row.key_alias {
            self.alias_taken(alias, None).await?;
        }
        let store = self.directory.store();
        if store
            .key(&row.token)
            .await
            .map_err(|e| store_failed(&e))?
            .is_some()
        {
            return Err(bad("key", "A key with this value already exists."));
        }
        store.insert_key(&row).await.map_err(|e| store_failed(&e))?;
        if spend > 0.0 {
            store
                .add_spend(&[(row.token.clone(), spend)], &[])
                .await
                .map_err(|e| store_failed(&e))?;
        }
        let row = store
            .key(&row.token)
            .await
            .map_err(|e| store_failed(&e))?
            .ok_or_else(|| GatewayError::internal("the key vanished as it was created"))?;
        self.directory.key_changed(row.clone());
        let mut out = key_json(&row);
        out.insert("key".into(), json!(secret));
        out.insert("token_id".into(), json!(row.token));
        out.insert("duration".into(), json!(duration));
        Ok(Value::Object(out))
    }

    async fn update(&self, mut fields: KeyFields) -> Result<Value, GatewayError> {
        let (passed, mut row) = match (fields.key.take(), &fields.key_alias) {
            (Some(key), _) => (key.clone(), self.key_by_ref(&key).await?),
            (None, Some(Some(alias))) => {
                let row = self
                    .directory
                    .store()
                    .key_by_alias(alias)
                    .await
                    .map_err(|e| store_failed(&e))?
                    .ok_or_else(|| {
                        not_found(
                            "key_alias",
                            format!("Key not found. No key with key_alias='{alias}'."),
                        )
                    })?;
                (alias.clone(), row)
            }
            _ => return Err(bad("key", "either key or key_alias must be provided")),
        };
        let new_spend = fields.spend.take().map(|s| s.unwrap_or(0.0));
        Self::apply(&mut row, fields)?;
        if let Some(alias) = &row.key_alias {
            self.alias_taken(alias, Some(&row.token)).await?;
        }
        let store = self.directory.store();
        store.save_key(&row).await.map_err(|e| store_failed(&e))?;
        if let Some(spend) = new_spend {
            check_usd("spend", spend)?;
            let stored = store
                .key(&row.token)
                .await
                .map_err(|e| store_failed(&e))?
                .map_or(0.0, |r| r.spend);
            store
                .add_spend(&[(row.token.clone(), spend - stored)], &[])
                .await
                .map_err(|e| store_failed(&e))?;
        }
        let row = self.key_by_ref(&row.token).await?;
        self.directory.key_changed(row.clone());
        let mut out = key_json(&row);
        out.insert("key".into(), json!(passed));
        Ok(Value::Object(out))
    }

    async fn delete(&self, request: DeleteKeys) -> Result<Value, GatewayError> {
        let store = self.directory.store();
        let (echo, tokens) = match (request.keys, request.key_aliases) {
            (Some(keys), _) if !keys.is_empty() => {
                let tokens = keys.iter().map(|k| Self::token_of(k)).collect::<Vec<_>>();
                ("keys", (keys, tokens))
            }
            (_, Some(aliases)) if !aliases.is_empty() => {
                let mut tokens = Vec::new();
                for alias in &aliases {
                    if let Some(row) = store
                        .key_by_alias(alias)
                        .await
                        .map_err(|e| store_failed(&e))?
                    {
                        tokens.push(row.token);
                    }
                }
                ("key_aliases", (aliases, tokens))
            }
            _ => {
                return Err(bad(
                    "keys",
                    "At least one of 'keys' or 'key_aliases' must be provided.",
                ))
            }
        };
        let (passed, tokens) = tokens;
        let deleted = store
            .delete_keys(&tokens)
            .await
            .map_err(|e| store_failed(&e))?;
        if deleted.is_empty() {
            return Err(not_found(echo, "No keys found."));
        }
        self.directory.keys_deleted(&deleted);
        Ok(json!({ "deleted_keys": passed }))
    }

    async fn block(&self, request: KeyRef, blocked: bool) -> Result<Value, GatewayError> {
        let mut row = self.key_by_ref(&request.key).await?;
        row.blocked = blocked;
        self.directory
            .store()
            .save_key(&row)
            .await
            .map_err(|e| store_failed(&e))?;
        let row = self.key_by_ref(&row.token).await?;
        self.directory.key_changed(row.clone());
        Ok(Value::Object(key_json(&row)))
    }

    async fn info(&self, query: &Map<String, Value>) -> Result<Value, GatewayError> {
        let key = query_str(query, "key").ok_or_else(|| bad("key", "key: required"))?;
        let row = self
            .key_by_ref(key)
            .await
            .map_err(|_| not_found("key", "Key not found in database"))?;
        let mut info = key_json(&row);
        info.remove("token");
        // What this instance has spent and not yet written counts too.
        info.insert("spend".into(), json!(self.directory.key_spend(&row)));
        let status = if row.blocked {
            "revoked"
        } else if row.expires_ms.is_some_and(|at| at <= now_ms()) {
            "expired"
        } else {
            "active"
        };
        info.insert("status".into(), json!(status));
        Ok(json!({ "key": key, "info": info }))
    }

    async fn list(&self, query: &Map<String, Value>) -> Result<Value, GatewayError> {
        if query.contains_key("organization_id") {
            return Err(bad(
                "organization_id",
                "organization_id: llm-tower has no organizations; filter by team_id",
            ));
        }
        // LiteLLM's client sends `include_team_keys`; for the master key every key is
        // listed anyway.
        const KNOWN: [&str; 8] = [
            "page",
            "size",
            "team_id",
            "user_id",
            "key_alias",
            "key_hash",
            "return_full_object",
            "include_team_keys",
        ];
        if let Some(unknown) = query.keys().find(|name| !KNOWN.contains(&name.as_str())) {
            return Err(bad(
                unknown,
                format!("{unknown}: not a /key/list parameter"),
            ));
        }
        let number = |name: &str, default: u64, max: u64| -> Result<u64, GatewayError> {
            match query_str(query, name) {
                None => Ok(default),
                Some(v) => v
                    .parse::<u64>()
                    .ok()
                    .filter(|n| (1..=max).contains(n))
                    .ok_or_else(|| bad(name, format!("{name}: must be a number from 1 to {max}"))),
            }
        };
        let page = number("page", 1, u64::MAX / 1000)?;
        let size = number("size", 10, 100)?;
        let filter = KeyFilter {
            team_id: query_str(query, "team_id").map(str::to_owned),
            user_id: query_str(query, "user_id").map(str::to_owned),
            key_alias: query_str(query, "key_alias").map(str::to_owned),
            token: query_str(query, "key_hash").map(str::to_owned),
        };
        let full = query_str(query, "return_full_object") == Some("true");
        let (rows, total) = self
            .directory
            .store()
            .list_keys(&filter, (page - 1) * size, size)
            .await
            .map_err(|e| store_failed(&e))?;
        let keys: Vec<Value> = rows
            .iter()
            .map(|row| {
                if full {
                    Value::Object(key_json(row))
                } else {
                    json!(row.token)
                }
            })
            .collect();
        Ok(json!({
            "keys": keys,
            "total_count": total,
            "current_page": page,
            "total_pages": total.div_ceil(size),
        }))
    }

    fn apply_team(row: &mut TeamRow, fields: TeamFields) -> Result<(), GatewayError> {
        if let Some(alias) = fields.team_alias {
            row.team_alias = alias;
        }
        if let Some(models) = fields.models {
            let models = models.unwrap_or_default();
            check_models(&models)?;
            row.models = models;
        }
        if let Some(budget) = fields.max_budget {
            if let Some(b) = budget {
                check_usd("max_budget", b)?;
            }
            row.max_budget = budget;
        }
        if let Some(duration) = fields.budget_duration {
            row.budget_reset_at_ms = match &duration {
                Some(d) => Some(period_end(d, "budget_duration")?),
                None => None,
            };
            row.budget_duration = duration;
        }
        if let Some(v) = fields.rpm_limit {
            row.rpm_limit = v;
        }
        if let Some(v) = fields.tpm_limit {
            row.tpm_limit = v;
        }
        if let Some(v) = fields.max_parallel_requests {
            row.max_parallel_requests = v;
        }
        if let Some(metadata) = fields.metadata {
            row.metadata = metadata.unwrap_or_default();
        }
        if let Some(blocked) = fields.blocked {
            row.blocked = blocked.unwrap_or(false);
        }
        Ok(())
    }

    async fn team_by_id(&self, id: &str) -> Result<TeamRow, GatewayError> {
        self.directory
            .store()
            .team(id)
            .await
            .map_err(|e| store_failed(&e))?
            .ok_or_else(|| not_found("team_id", format!("Team not found, passed team_id={id}")))
    }

    async fn new_team(&self, mut fields: TeamFields) -> Result<Value, GatewayError> {
        let id = fields
            .team_id
            .take()
            .filter(|id| !id.trim().is_empty())
            .unwrap_or_else(new_team_id);
        let mut row = TeamRow {
            team_id: id.clone(),
            ..TeamRow::default()
        };
        Self::apply_team(&mut row, fields)?;
        let store = self.directory.store();
        if store
            .team(&id)
            .await
            .map_err(|e| store_failed(&e))?
            .is_some()
        {
            return Err(bad(
                "team_id",
                format!("Team id = {id} already exists. Please use a different team id."),
            ));
        }
        store
            .insert_team(&row)
            .await
            .map_err(|e| store_failed(&e))?;
        let row = self.team_by_id(&id).await?;
        self.directory.team_changed(row.clone());
        Ok(Value::Object(team_json(&row)))
    }

    async fn update_team(&self, mut fields: TeamFields) -> Result<Value, GatewayError> {
        let id = fields
            .team_id
            .take()
            .ok_or_else(|| bad("team_id", "team_id: required"))?;
        let mut row = self.team_by_id(&id).await?;
        Self::apply_team(&mut row, fields)?;
        self.directory
            .store()
            .save_team(&row)
            .await
            .map_err(|e| store_failed(&e))?;
        let row = self.team_by_id(&id).await?;
        self.directory.team_changed(row.clone());
        Ok(json!({ "team_id": id, "data": team_json(&row) }))
    }

    async fn block_team(&self, request: TeamRef, blocked: bool) -> Result<Value, GatewayError> {
        let mut row = self.team_by_id(&request.team_id).await?;
        row.blocked = blocked;
        self.directory
            .store()
            .save_team(&row)
            .await
            .map_err(|e| store_failed(&e))?;
        let row = self.team_by_id(&request.team_id).await?;
        self.directory.team_changed(row.clone());
        Ok(Value::Object(team_json(&row)))
    }

    async fn team_keys(&self, id: &str) -> Result<Vec<KeyRow>, GatewayError> {
        let filter = KeyFilter {
            team_id: Some(id.to_owned()),
            ..KeyFilter::default()
        };
        let (rows, _) = self
            .directory
            .store()
            .list_keys(&filter, 0, u64::MAX / 2)
            .await
            .map_err(|e| store_failed(&e))?;
        Ok(rows)
    }

    async fn delete_teams(&self, request: TeamIds) -> Result<Value, GatewayError> {
        if request.team_ids.is_empty() {
            return Err(bad("team_ids", "team_ids: at least one team id"));
        }
        for id in &request.team_ids {
            self.team_by_id(id).await?;
        }
        let store = self.directory.store();
        // LiteLLM deletes a team's keys with it.
        for id in &request.team_ids {
            let tokens: Vec<String> = self
                .team_keys(id)
                .await?
                .into_iter()
                .map(|r| r.token)
                .collect();
            let deleted = store
                .delete_keys(&tokens)
                .await
                .map_err(|e| store_failed(&e))?;
            self.directory.keys_deleted(&deleted);
        }
        let deleted = store
            .delete_teams(&request.team_ids)
            .await
            .map_err(|e| store_failed(&e))?;
        self.directory.teams_deleted(&deleted);
        Ok(json!({ "deleted_teams": request.team_ids }))
    }

    async fn team_info(&self, query: &Map<String, Value>) -> Result<Value, GatewayError> {
        let id = query_str(query, "team_id").ok_or_else(|| bad("team_id", "team_id: required"))?;
        let row = self.team_by_id(id).await?;
        let mut info = team_json(&row);
        info.insert("spend".into(), json!(self.directory.team_spend(&row)));
        let keys: Vec<Value> = self
            .team_keys(id)
            .await?
            .iter()
            .map(|k| Value::Object(key_json(k)))
            .collect();
        Ok(json!({ "team_id": id, "team_info": info, "keys": keys }))
    }

    async fn team_list(&self) -> Result<Value, GatewayError> {
        let changes = self
            .directory
            .store()
            .changes(0)
            .await
            .map_err(|e| store_failed(&e))?;
        Ok(Value::Array(
            changes
                .teams
                .iter()
                .map(|t| Value::Object(team_json(t)))
                .collect(),
        ))
    }
}
