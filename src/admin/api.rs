//! The admin API (master key only; JSON in, JSON out, errors in OpenAI's shape):
//!
//! | route | does |
//! |---|---|
//! | `GET /admin/config` | the running config (secrets masked), its files and the reload status |
//! | `PUT /admin/config` | applies a whole config (`{"config": {...}}`) |
//! | `POST /admin/config/validate` | validates one without applying it |
//! | `POST /admin/reload` | reads the files again now |
//! | `GET /admin/providers` | every provider with kind, address, models, source and health |
//! | `POST /admin/providers` | adds one (`{"name": …, "kind": …, …}`) |
//! | `GET`/`PUT`/`DELETE /admin/providers/{name}` | reads, replaces, removes one |
//! | `POST /admin/providers/{name}/test` | tests its connection (lists the upstream's models) |
//! | `POST /admin/providers/test` | tests settings not saved yet |
//! | `GET`/`POST /admin/aliases`, `GET`/`PUT`/`DELETE /admin/aliases/{name}` | aliases (`{"name", "target"}`) |
//! | `GET`/`POST /admin/combos`, `GET`/`PUT`/`DELETE /admin/combos/{name}` | combos (their YAML settings as JSON) |
//!
//! A change is validated like a config file at start (a 400 names the field), written to
//! the overlay beside the config file, and served at once ([`Reloader::apply`]). A secret
//! sent back as the API showed it (`sk-…abcd`) keeps its value.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use serde_json::{json, Map, Value as Json};
use serde_yaml_ng::{Mapping, Value};

use super::redact::{redact, restore};
use crate::config::{Config, ConfigError, ProviderConfig};
use crate::error::{ErrorKind, GatewayError};
use crate::reload::{Reloaded, Reloader};
use crate::upstream::UpstreamClient;

/// How long a connection test may take.
const TEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A named section of the config the API edits entry by entry.
#[derive(Clone, Copy)]
enum Section {
    Providers,
    Aliases,
    Combos,
}

impl Section {
    fn key(self) -> &'static str {
        match self {
            Self::Providers => "providers",
            Self::Aliases => "aliases",
            Self::Combos => "combos",
        }
    }

    fn one(self) -> &'static str {
        match self {
            Self::Providers => "provider",
            Self::Aliases => "alias",
            Self::Combos => "combo",
        }
    }

    fn of(name: &str) -> Option<Self> {
        match name {
            "providers" => Some(Self::Providers),
            "aliases" => Some(Self::Aliases),
            "combos" => Some(Self::Combos),
            _ => None,
        }
    }

    /// Whether the running config has an entry `name` (from any file).
    fn has(self, config: &Config, name: &str) -> bool {
        match self {
            Self::Providers => config.providers.contains_key(name),
            Self::Aliases => config.aliases.contains_key(name),
            Self::Combos => config.combos.contains_key(name),
        }
    }

    fn names(self, config: &Config) -> Vec<String> {
        match self {
            Self::Providers => config.providers.keys().cloned().collect(),
            Self::Aliases => config.aliases.keys().cloned().collect(),
            Self::Combos => config.combos.keys().cloned().collect(),
        }
    }
}

/// Serves one admin request.
pub(crate) async fn serve(
    reloader: &Reloader,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Json, GatewayError> {
    reloader
        .current()
        .gateway()
        .authorize_master(headers, "The admin API")
        .await?;
    let api = Api { reloader };
    let rest = path.trim_start_matches("/admin").trim_end_matches('/');
    let segments: Vec<String> = rest
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    match (method, segments.as_slice()) {
        (&Method::GET, ["config"]) => Ok(api.config().await),
        (&Method::PUT, ["config"]) => api.replace_config(body_of(&body)?).await,
        (&Method::POST, ["config", "validate"]) => api.validate(body_of(&body)?).await,
        (&Method::POST, ["reload"]) => api.reload().await,
        (&Method::GET, ["status"]) => Ok(json!(reloader.status())),
        (&Method::POST, ["providers", "test"]) => api.test_settings(body_of(&body)?).await,
        (&Method::POST, ["providers", name, "test"]) => api.test_saved(name).await,
        (method, [section, rest @ ..]) if Section::of(section).is_some() => {
            let section = Section::of(section).expect("matched");
            match (method, rest) {
                (&Method::GET, []) => Ok(api.list(section).await),
                (&Method::POST, []) => api.create(section, body_of(&body)?).await,
                (&Method::GET, [name]) => api.get(section, name).await,
                (&Method::PUT, [name]) => api.update(section, name, body_of(&body)?).await,
                (&Method::DELETE, [name]) => api.delete(section, name).await,
                (method, _) => Err(GatewayError::route_not_found(method, path)),
            }
        }
        (method, _) => Err(GatewayError::route_not_found(method, path)),
    }
}

/// The JSON object of a request body.
fn body_of(body: &[u8]) -> Result<Map<String, Json>, GatewayError> {
    match serde_json::from_slice::<Json>(body) {
        Ok(Json::Object(object)) => Ok(object),
        Ok(_) => Err(GatewayError::bad_request("The body must be a JSON object.")),
        Err(e) => Err(GatewayError::bad_request(format!(
            "The body is not valid JSON: {e}"
        ))),
    }
}

fn to_yaml(value: &Json) -> Value {
    serde_yaml_ng::to_value(value).expect("JSON is YAML")
}

fn to_json(value: &Value) -> Json {
    serde_json::to_value(value).unwrap_or(Json::Null)
}

/// A config that cannot be applied: a 400 naming the field (the error's leading path).
fn refused(err: &ConfigError) -> GatewayError {
    let message = err.to_string();
    let field = message
        .split(": ")
        .find(|part| !part.contains(' ') && !part.contains('/'))
        .unwrap_or_default()
        .to_owned();
    let err = GatewayError::new(
        ErrorKind::InvalidRequest,
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        message,
    )
    .with_code("invalid_config");
    if field.is_empty() {
        err
    } else {
        err.with_param(field)
    }
}

fn conflict(message: String) -> GatewayError {
    GatewayError::new(
        ErrorKind::InvalidRequest,
        StatusCode::CONFLICT,
        "invalid_request_error",
        message,
    )
    .with_code("conflict")
}

fn missing(section: Section, name: &str) -> GatewayError {
    GatewayError::not_found(format!("There is no {} `{name}`.", section.one()))
        .with_code(format!("{}_not_found", section.one()))
}

/// The mapping at `key` of a tree, made if missing.
fn mapping_at<'a>(doc: &'a mut Value, key: &str) -> &'a mut Mapping {
    if !doc.is_mapping() {
        *doc = Value::Mapping(Mapping::new());
    }
    let map = doc.as_mapping_mut().expect("made a mapping");
    let entry = map
        .entry(key.into())
        .or_insert_with(|| Value::Mapping(Mapping::new()));
    if !entry.is_mapping() {
        *entry = Value::Mapping(Mapping::new());
    }
    entry.as_mapping_mut().expect("made a mapping")
}

/// Where entry `name` of `section` comes from, given the config file's and the overlay's
/// trees: the file, the admin API, or a LiteLLM file.
fn source_in((base, overlay): &(Value, Value), section: Section, name: &str) -> &'static str {
    let key = section.key();
    let holds = |tree: &Value| tree.get(key).and_then(|s| s.get(name)).is_some();
    match (holds(base), holds(overlay)) {
        (true, true) => "file, changed through the admin API",
        (true, false) => "file",
        (false, true) => "admin API",
        (false, false) => "litellm_config",
    }
}

struct Api<'a> {
    reloader: &'a Reloader,
}

impl Api<'_> {
    async fn config(&self) -> Json {
        let mut doc = self.reloader.document().await;
        redact(&mut doc);
        let source = self.reloader.source();
        json!({
            "config": to_json(&doc),
            "file": source.file().display().to_string(),
            "overlay": source.overlay().display().to_string(),
            "status": self.reloader.status(),
        })
    }

    /// Applies `change` to the running tree; the outcome as JSON.
    async fn apply(
        &self,
        change: impl FnOnce(&mut Value) -> Result<(), ConfigError>,
    ) -> Result<Json, GatewayError> {
        match self.reloader.apply(change).await {
            Ok(Reloaded::Applied(generation)) => {
                Ok(json!({ "applied": true, "generation": generation }))
            }
            Ok(Reloaded::Unchanged) => {
                Ok(json!({ "applied": false, "generation": self.reloader.status().generation }))
            }
            Err(err) => Err(refused(&err)),
        }
    }

    /// The whole config of a `{"config": …}` body, its masked secrets restored.
    async fn whole(&self, mut body: Map<String, Json>) -> Result<Value, GatewayError> {
        let config = body.remove("config").ok_or_else(|| {
            GatewayError::invalid_param("config", "The body needs the config as `config`.")
        })?;
        let mut doc = to_yaml(&config);
        restore(&mut doc, &self.reloader.document().await);
        Ok(doc)
    }

    async fn replace_config(&self, body: Map<String, Json>) -> Result<Json, GatewayError> {
        let doc = self.whole(body).await?;
        self.apply(move |tree| {
            *tree = doc;
            Ok(())
        })
        .await
    }

    async fn validate(&self, body: Map<String, Json>) -> Result<Json, GatewayError> {
        let doc = self.whole(body).await?;
        self.reloader.validate(doc).map_err(|e| refused(&e))?;
        Ok(json!({ "valid": true }))
    }

    async fn reload(&self) -> Result<Json, GatewayError> {
        match self.reloader.reload().await {
            Ok(Reloaded::Applied(generation)) => {
                Ok(json!({ "applied": true, "generation": generation }))
            }
            Ok(Reloaded::Unchanged) => {
                Ok(json!({ "applied": false, "generation": self.reloader.status().generation }))
            }
            Err(err) => Err(refused(&err)),
        }
    }

    /// Where entry `name` comes from: the config file, the admin API, or a LiteLLM file.
    async fn source(&self, section: Section, name: &str) -> &'static str {
        source_in(&self.reloader.layers().await, section, name)
    }

    /// One entry as the API shows it (`layers`: the config file's and the overlay's trees).
    fn entry(
        &self,
        section: Section,
        config: &Config,
        doc: &Value,
        layers: &(Value, Value),
        name: &str,
    ) -> Json {
        let mut raw = doc
            .get(section.key())
            .and_then(|s| s.get(name))
            .cloned()
            .unwrap_or(Value::Null);
        redact(&mut raw);
        let source = source_in(layers, section, name);
        match section {
            Section::Providers => {
                let provider = &config.providers[name];
                let settings = provider.settings();
                let current = self.reloader.current();
                let health = current
                    .gateway()
                    .executors()
                    .health(name)
                    .map(|h| json!(h.report()))
                    .unwrap_or(Json::Null);
                let breakers: Vec<_> = current
                    .targets()
                    .breakers()
                    .into_iter()
                    .filter(|b| b.provider == name)
                    .collect();
                let mut upstream = Value::String(settings.upstream().to_owned());
                let mut holder = Mapping::new();
                holder.insert("api_base".into(), upstream.clone());
                let mut holder = Value::Mapping(holder);
                redact(&mut holder);
                upstream = holder["api_base"].clone();
                json!({
                    "name": name,
                    "kind": settings.kind(),
                    "api_base": to_json(&upstream),
                    "models": settings.models(),
                    "source": source,
                    "settings": to_json(&raw),
                    "health": health,
                    "breakers": breakers,
                })
            }
            Section::Aliases => json!({
                "name": name,
                "target": config.aliases[name],
                "source": source,
            }),
            Section::Combos => json!({
                "name": name,
                "source": source,
                "settings": to_json(&raw),
            }),
        }
    }

    async fn list(&self, section: Section) -> Json {
        let config = self.reloader.config();
        let doc = self.reloader.document().await;
        let layers = self.reloader.layers().await;
        let mut data = Vec::new();
        for name in section.names(&config) {
            data.push(self.entry(section, &config, &doc, &layers, &name));
        }
        json!({ "object": "list", "data": data })
    }

    async fn get(&self, section: Section, name: &str) -> Result<Json, GatewayError> {
        let config = self.reloader.config();
        if !section.has(&config, name) {
            return Err(missing(section, name));
        }
        let doc = self.reloader.document().await;
        let layers = self.reloader.layers().await;
        Ok(self.entry(section, &config, &doc, &layers, name))
    }

    /// The entry's value from a request body (an alias's `target`, the settings of
    /// others), without `name`.
    fn value_of(section: Section, mut body: Map<String, Json>) -> Result<Value, GatewayError> {
        body.remove("name");
        match section {
            Section::Aliases => match body.remove("target") {
                Some(Json::String(target)) if body.is_empty() => Ok(Value::String(target)),
                Some(Json::String(_)) => Err(GatewayError::invalid_param(
                    body.keys().next().map_or("", String::as_str),
                    "An alias has only `name` and `target`.",
                )),
                _ => Err(GatewayError::invalid_param(
                    "target",
                    "An alias needs a `target` string.",
                )),
            },
            _ => Ok(to_yaml(&Json::Object(body))),
        }
    }

    async fn create(
        &self,
        section: Section,
        mut body: Map<String, Json>,
    ) -> Result<Json, GatewayError> {
        let name = match body.get("name") {
            Some(Json::String(name)) if !name.is_empty() => name.clone(),
            _ => {
                return Err(GatewayError::invalid_param(
                    "name",
                    format!("A {} needs a `name`.", section.one()),
                ))
            }
        };
        if section.has(&self.reloader.config(), &name) {
            return Err(conflict(format!(
                "There is a {} `{name}` already; change it with PUT.",
                section.one()
            )));
        }
        body.remove("name");
        let value = Self::value_of(section, body)?;
        let key = section.key();
        let mut answer = self
            .apply(move |doc| {
                mapping_at(doc, key).insert(name.into(), value);
                Ok(())
            })
            .await?;
        answer["created"] = json!(true);
        Ok(answer)
    }

    /// Checks that entry `name` is one the API may change (in our config's files).
    async fn editable(&self, section: Section, name: &str) -> Result<(), GatewayError> {
        if !section.has(&self.reloader.config(), name) {
            return Err(missing(section, name));
        }
        if self.source(section, name).await == "litellm_config" {
            return Err(conflict(format!(
                "The {} `{name}` comes from the LiteLLM config file; change it there.",
                section.one()
            )));
        }
        Ok(())
    }

    async fn update(
        &self,
        section: Section,
        name: &str,
        body: Map<String, Json>,
    ) -> Result<Json, GatewayError> {
        self.editable(section, name).await?;
        if let Some(Json::String(renamed)) = body.get("name") {
            if renamed != name {
                return Err(GatewayError::invalid_param(
                    "name",
                    "A rename is a create and a delete.",
                ));
            }
        }
        let mut value = Self::value_of(section, body)?;
        let key = section.key();
        let name = name.to_owned();
        self.apply(move |doc| {
            let entries = mapping_at(doc, key);
            if let Some(old) = entries.get(name.as_str()) {
                restore(&mut value, old);
            }
            entries.insert(name.into(), value);
            Ok(())
        })
        .await
    }

    async fn delete(&self, section: Section, name: &str) -> Result<Json, GatewayError> {
        self.editable(section, name).await?;
        let key = section.key();
        let name = name.to_owned();
        let mut answer = self
            .apply(move |doc| {
                mapping_at(doc, key).remove(name.as_str());
                Ok(())
            })
            .await?;
        answer["deleted"] = json!(true);
        Ok(answer)
    }

    /// Tests provider settings: the upstream's model list, with latency or the error.
    async fn test(&self, name: &str, provider: &ProviderConfig, config: &Config) -> Json {
        let started = Instant::now();
        let listing = UpstreamClient::new(&config.upstream)
            .map_err(|e| GatewayError::bad_request(e.to_string()))
            .and_then(|client| {
                provider
                    .settings()
                    .list_models(name, &config.upstream, &client)
                    .map_err(|e| GatewayError::bad_request(e.to_string()))
            });
        let outcome = match listing {
            Ok(listing) => match tokio::time::timeout(TEST_TIMEOUT, listing).await {
                Ok(outcome) => outcome,
                Err(_) => Err(GatewayError::upstream_timeout(
                    name,
                    "model list",
                    TEST_TIMEOUT,
                )),
            },
            Err(err) => Err(err),
        };
        let latency_ms = started.elapsed().as_secs_f64() * 1e3;
        match outcome {
            Ok(models) => json!({
                "ok": true,
                "latency_ms": latency_ms,
                "model_count": models.len(),
                "models": models.iter().take(100).collect::<Vec<_>>(),
            }),
            Err(err) => json!({
                "ok": false,
                "latency_ms": latency_ms,
                "error": { "status": err.status().as_u16(), "type": err.error_type(), "message": err.message() },
            }),
        }
    }

    async fn test_saved(&self, name: &str) -> Result<Json, GatewayError> {
        let config = self.reloader.config();
        let provider = config
            .providers
            .get(name)
            .ok_or_else(|| missing(Section::Providers, name))?;
        Ok(self.test(name, provider, &config).await)
    }

    /// Tests settings not saved: validated as a provider of the running config would be
    /// (masked secrets of a provider of the same name restored).
    async fn test_settings(&self, mut body: Map<String, Json>) -> Result<Json, GatewayError> {
        let name = match body.remove("name") {
            Some(Json::String(name)) if !name.is_empty() => name,
            _ => "test".to_owned(),
        };
        let mut settings = to_yaml(&Json::Object(body));
        let running = self.reloader.document().await;
        if let Some(old) = running.get("providers").and_then(|p| p.get(name.as_str())) {
            restore(&mut settings, old);
        }
        let mut providers = Mapping::new();
        providers.insert(name.clone().into(), settings);
        let mut doc = Mapping::new();
        doc.insert("providers".into(), Value::Mapping(providers));
        if let Some(upstream) = running.get("upstream") {
            doc.insert("upstream".into(), upstream.clone());
        }
        let config = self
            .reloader
            .validate(Value::Mapping(doc))
            .map_err(|e| refused(&e))?;
        Ok(self.test(&name, &config.providers[&name], &config).await)
    }
}
