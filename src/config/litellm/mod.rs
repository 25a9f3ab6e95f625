//! A LiteLLM proxy `config.yaml`, read as it is: `model_list` entries served natively
//! where llm-tower has the executor, through a LiteLLM proxy otherwise, and LiteLLM's
//! routing, cache, key and timeout settings mapped onto llm-tower's own.
//!
//! `--config` takes such a file (it has a `model_list`), with one key LiteLLM ignores:
//! `litellm_proxy: { api_base, api_key }`, the proxy that serves the other entries, so
//! one file drives both. Our own config can include one instead (`litellm_config: PATH`),
//! its own sections winning over the LiteLLM file's. Every key that is not used is
//! listed in [`LiteLlmReport::ignored`] (the binary warns once at start); a value that
//! cannot be honoured is an error naming the LiteLLM field.

mod deployment;
mod fields;
mod providers;
mod routing;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::Duration;

use serde_yaml_ng::{Mapping, Value};

use self::deployment::Deployment;
use self::fields::Fields;
use self::routing::{FallbackLists, Routing, Strategy};
use super::{Config, ConfigError, ProviderConfig};
use crate::cache::CacheSettings;
use crate::executor::{DefaultParams, LiteLlmSettings, OpenAiSettings};
use crate::store::RedisSettings;

/// What a LiteLLM config became: how each `model_list` entry is served and which keys
/// were not used.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct LiteLlmReport {
    /// The entries in file order.
    pub entries: Vec<EntryReport>,
    /// Keys llm-tower does not use (dotted names), and routing it could not follow.
    pub ignored: Vec<String>,
    /// LiteLLM settings llm-tower honours in its own way, each with how.
    pub notes: Vec<String>,
}

/// One `model_list` entry and how it is served.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct EntryReport {
    /// Its place in `model_list`.
    pub index: usize,
    /// The name clients send.
    pub model_name: String,
    /// `model_info.mode` (`embedding`, …) when given.
    pub mode: Option<String>,
    /// How.
    pub how: How,
}

/// How one entry is served.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum How {
    /// By an llm-tower executor.
    Native {
        /// The provider made for it.
        provider: String,
        /// The provider's kind.
        kind: &'static str,
        /// Which API, for people.
        api: &'static str,
        /// Where its requests go.
        api_base: String,
        /// The model the upstream gets.
        model: String,
    },
    /// Through a LiteLLM proxy, which gets the entry's `model_name`.
    ViaLiteLlm {
        /// The proxy's provider name.
        provider: String,
        /// The proxy.
        api_base: String,
        /// Why not natively.
        why: String,
    },
    /// Not served.
    Unsupported {
        /// Why.
        why: String,
    },
}

/// `litellm_config:` in our own config: a path, or a path and the `kind: litellm`
/// provider that serves the entries llm-tower does not.
#[derive(Debug, Clone, serde::Deserialize, PartialEq)]
#[serde(untagged)]
pub enum LiteLlmInclude {
    /// The file; its LiteLLM entries go to the one `kind: litellm` provider, if any.
    Path(std::path::PathBuf),
    /// The file and the proxy's provider name.
    WithProxy {
        /// The file.
        path: std::path::PathBuf,
        /// A `kind: litellm` provider of this config.
        proxy: String,
    },
}

impl LiteLlmInclude {
    /// The file.
    pub fn path(&self) -> &Path {
        match self {
            Self::Path(path) | Self::WithProxy { path, .. } => path,
        }
    }
}

/// LiteLLM's allowed failures per minute before a deployment cools down, and the
/// cooldown (its defaults when the file sets none).
const ALLOWED_FAILS: u64 = 3;
const COOLDOWN: Duration = Duration::from_secs(5);
/// The provider name of `litellm_proxy:`.
const PROXY: &str = "litellm";

/// Whether a YAML document is a LiteLLM config rather than ours.
pub(super) fn is_litellm(value: &Value) -> bool {
    value.get("model_list").is_some() && value.get("providers").is_none()
}

/// Reads the LiteLLM config `value` (from a file in `dir`, for its `include:`) into
/// `config`. `own` holds the top-level keys our own file set (they win); `proxy` names
/// the `kind: litellm` provider of our config for the entries llm-tower does not serve.
pub(super) fn apply(
    value: Value,
    dir: &Path,
    config: &mut Config,
    own: &HashSet<String>,
    proxy: Option<&str>,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<LiteLlmReport, ConfigError> {
    let Value::Mapping(mut top) = value else {
        return Err(ConfigError::new("a LiteLLM config must be a mapping"));
    };
    include(&mut top, dir, &mut Vec::new())?;
    // `environment_variables` are set before any `os.environ/` value is read.
    let env: BTreeMap<String, String> = match top.remove("environment_variables") {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(Value::Mapping(vars)) => vars
            .into_iter()
            .filter_map(|(k, v)| {
                let value = match v {
                    Value::String(s) => s,
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    _ => return None,
                };
                Some((k.as_str()?.to_owned(), value))
            })
            .collect(),
        Some(_) => {
            return Err(ConfigError::new(
                "environment_variables: expected a mapping of names to values",
            ))
        }
    };
    let lookup = |name: &str| env.get(name).cloned().or_else(|| lookup(name));
    let lookup: &dyn Fn(&str) -> Option<String> = &lookup;
    let mut report = LiteLlmReport::default();
    let mut top = Fields::new(Some(Value::Mapping(top)), "", lookup)?;

    let proxy_section = top.mapping("litellm_proxy")?;
    let proxy = proxy_provider(proxy_section, config, proxy, &mut report.ignored)?;

    let mut router = top.mapping("router_settings")?;
    let mut settings = top.mapping("litellm_settings")?;
    let mut general = top.mapping("general_settings")?;

    let routing = routing_settings(&mut router, &mut settings, &mut report.ignored)?;
    let deployments = match top.take("model_list") {
        None => Vec::new(),
        Some(Value::Sequence(items)) => items
            .into_iter()
            .enumerate()
            .map(|(i, entry)| Deployment::read(i, entry, lookup, &mut report.ignored))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(ConfigError::new("model_list: expected a list of entries")),
    };
    let existing: HashSet<String> = config.providers.keys().cloned().collect();
    let routes = routing::compile(
        deployments,
        &routing,
        proxy.as_ref().map(|(n, b)| (n.as_str(), b.as_str())),
        &|name| existing.contains(name),
    );
    for (name, provider) in routes.providers {
        provider.settings().validate().map_err(|e| {
            let entry = routes
                .entries
                .iter()
                .find(|e| matches!(&e.how, How::Native { provider, .. } if *provider == name));
            let at = entry.map_or_else(|| name.clone(), |e| format!("model_list.{}", e.index));
            ConfigError::new(format!("{at}.litellm_params: {e}"))
        })?;
        config.providers.insert(name, provider);
    }
    // A name our own config gives (as an alias or a combo) is ours.
    let ours = |config: &Config, name: &str| {
        config.aliases.contains_key(name) || config.combos.contains_key(name)
    };
    let aliases: Vec<_> = routes
        .aliases
        .into_iter()
        .filter(|(n, _)| !ours(config, n))
        .collect();
    let combos: Vec<_> = routes
        .combos
        .into_iter()
        .filter(|(n, _)| !ours(config, n))
        .collect();
    config.aliases.extend(aliases);
    config.combos.extend(combos);
    config.metering.model_prices.extend(routes.prices);
    report.entries = routes.entries;
    report.ignored.extend(routes.skipped);
    if router.has("num_retries") || settings.has("num_retries") {
        let _ = router.take("num_retries");
        let _ = settings.take("num_retries");
        report.notes.push(
            "num_retries: each deployment of a group is tried once, then the group's fallbacks"
                .to_owned(),
        );
    }

    breaker(&mut router, config, own, &mut report)?;
    timeouts(&mut router, &mut settings, config, own)?;
    redis(&mut router, config, own)?;
    cache(&mut settings, config, own, &mut report)?;
    callbacks(&mut settings, &mut report)?;
    if let Some(key) = general.string("master_key")? {
        if !own.contains("master_key") {
            config.master_key = Some(key);
        }
    }
    if let Some(url) = general.string("database_url")? {
        if !own.contains("metering") {
            config.metering.sink = crate::metering::SinkKind::Postgres;
            config.metering.postgres_url = Some(url);
        }
    }
    for section in [router, settings, general] {
        section.finish(&mut report.ignored);
    }
    top.finish(&mut report.ignored);
    Ok(report)
}

/// The provider for the entries served via LiteLLM: `litellm_proxy:` made one, else our
/// config's `kind: litellm` provider (`named`, or the only one). Returns its name and
/// `api_base`.
fn proxy_provider(
    mut section: Fields,
    config: &mut Config,
    named: Option<&str>,
    ignored: &mut Vec<String>,
) -> Result<Option<(String, String)>, ConfigError> {
    if section.has("api_base") {
        let api_base = section.string("api_base")?.unwrap_or_default();
        let mut settings = OpenAiSettings::new(api_base.clone())
            .api_key(section.string("api_key")?)
            .params(no_proxy_fallbacks());
        settings.first_byte_timeout = section.seconds("timeout")?;
        settings
            .validate()
            .map_err(|e| ConfigError::new(format!("litellm_proxy.{e}")))?;
        section.finish(ignored);
        if config.providers.contains_key(PROXY) {
            return Err(ConfigError::new(format!(
                "litellm_proxy: a provider named `{PROXY}` is configured already"
            )));
        }
        let provider = ProviderConfig::Litellm(LiteLlmSettings(settings));
        config.providers.insert(PROXY.to_owned(), provider);
        return Ok(Some((PROXY.to_owned(), api_base)));
    }
    if section.remaining().next().is_some() {
        return Err(section.error("api_base", "is required"));
    }
    let mut proxies = config.providers.iter_mut().filter_map(|(name, p)| match p {
        ProviderConfig::Litellm(s) if named.is_none_or(|n| n == name) => Some((name, s)),
        _ => None,
    });
    let (name, settings) = match (proxies.next(), proxies.next(), named) {
        (None, _, None) => return Ok(None),
        (None, _, Some(name)) => {
            return Err(ConfigError::new(format!(
                "litellm_config.proxy: `{name}` is not a `kind: litellm` provider"
            )))
        }
        (Some(_), Some(_), _) => {
            return Err(ConfigError::new(
                "litellm_config: several `kind: litellm` providers; name the one for \
                 LiteLLM's entries with `litellm_config: { path, proxy }`",
            ))
        }
        (Some(one), None, _) => one,
    };
    settings.0.params = no_proxy_fallbacks().merged_under(&settings.0.params);
    Ok(Some((name.clone(), settings.0.api_base.clone())))
}

/// What the LiteLLM proxy gets with every request: fallbacks are llm-tower's (a group
/// served via LiteLLM falls back through llm-tower's combo, to native deployments too), so
/// the proxy must not also run the same file's `fallbacks` itself.
fn no_proxy_fallbacks() -> DefaultParams {
    DefaultParams::new().with("disable_fallbacks", serde_json::Value::Bool(true))
}

/// Merges the files of `include:` (paths relative to `dir`) into `top`: lists are
/// appended, other values replaced, as LiteLLM does.
fn include(
    top: &mut Mapping,
    dir: &Path,
    seen: &mut Vec<std::path::PathBuf>,
) -> Result<(), ConfigError> {
    let Some(list) = top.remove("include") else {
        return Ok(());
    };
    let paths: Vec<String> = match list {
        Value::Sequence(items) => items
            .into_iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<_>>()
            .ok_or_else(|| ConfigError::new("include: expected a list of paths"))?,
        _ => return Err(ConfigError::new("include: expected a list of paths")),
    };
    for path in paths {
        let full = dir.join(&path);
        if seen.contains(&full) {
            return Err(ConfigError::new(format!(
                "include: `{path}` includes itself"
            )));
        }
        let text = std::fs::read_to_string(&full)
            .map_err(|e| ConfigError::new(format!("include: {}: {e}", full.display())))?;
        let value: Value = serde_yaml_ng::from_str(&text)
            .map_err(|e| ConfigError::new(format!("include: {}: {e}", full.display())))?;
        let Value::Mapping(mut included) = value else {
            return Err(ConfigError::new(format!(
                "include: {}: not a mapping",
                full.display()
            )));
        };
        seen.push(full.clone());
        include(&mut included, full.parent().unwrap_or(dir), seen)?;
        seen.pop();
        for (key, value) in included {
            match (top.get_mut(&key), value) {
                (Some(Value::Sequence(mine)), Value::Sequence(more)) => mine.extend(more),
                (_, value) => {
                    top.insert(key, value);
                }
            }
        }
    }
    Ok(())
}

/// `routing_strategy`, the fallback lists (router_settings winning over litellm_settings)
/// and `model_group_alias`.
fn routing_settings(
    router: &mut Fields,
    settings: &mut Fields,
    ignored: &mut Vec<String>,
) -> Result<Routing, ConfigError> {
    let strategy = match router.string("routing_strategy")? {
        None => Strategy::Shuffle,
        Some(name) => Strategy::parse(&name).map_err(|e| router.error("routing_strategy", e))?,
    };
    let mut lists = |key: &str| -> Result<FallbackLists, ConfigError> {
        let from_router = fallback_lists(router, key)?;
        let from_settings = fallback_lists(settings, key)?;
        Ok(if from_router.is_empty() {
            from_settings
        } else {
            from_router
        })
    };
    let fallbacks = lists("fallbacks")?;
    let context_window_fallbacks = lists("context_window_fallbacks")?;
    let mut default_fallbacks = router.strings("default_fallbacks")?;
    if default_fallbacks.is_empty() {
        default_fallbacks = settings.strings("default_fallbacks")?;
    }
    let mut group_aliases = Vec::new();
    if let Some(value) = router.take("model_group_alias") {
        let Value::Mapping(map) = value else {
            return Err(router.error("model_group_alias", "expected a mapping"));
        };
        for (alias, target) in map {
            let alias = alias.as_str().unwrap_or_default().to_owned();
            let group = match target {
                Value::String(group) => group,
                Value::Mapping(m) => {
                    for key in m.keys().filter_map(Value::as_str).filter(|k| *k != "model") {
                        // `hidden`: llm-tower lists every alias in /v1/models.
                        ignored.push(router.field(&format!("model_group_alias.{alias}.{key}")));
                    }
                    m.get("model")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                        .ok_or_else(|| {
                            router.error(&format!("model_group_alias.{alias}"), "needs a `model`")
                        })?
                }
                _ => {
                    return Err(router.error(
                        &format!("model_group_alias.{alias}"),
                        "expected a model name or { model, hidden }",
                    ))
                }
            };
            group_aliases.push((alias, group));
        }
    }
    Ok(Routing {
        strategy,
        fallbacks,
        context_window_fallbacks,
        default_fallbacks,
        group_aliases,
    })
}

/// LiteLLM's `[{group: [fallback, …]}, …]`.
fn fallback_lists(fields: &mut Fields, key: &str) -> Result<FallbackLists, ConfigError> {
    let Some(value) = fields.take(key) else {
        return Ok(Vec::new());
    };
    let Value::Sequence(items) = value else {
        return Err(fields.error(key, "expected a list of `{model_name: [fallbacks]}`"));
    };
    let mut out = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let field = format!("{key}.{i}");
        let Value::Mapping(map) = item else {
            return Err(fields.error(&field, "expected `{model_name: [fallbacks]}`"));
        };
        if map.len() != 1 {
            return Err(fields.error(&field, "expected one model_name per item"));
        }
        for (group, list) in map {
            let group = group.as_str().unwrap_or_default().to_owned();
            let list = match list {
                Value::Sequence(names) => names
                    .into_iter()
                    .map(|n| n.as_str().map(str::to_owned))
                    .collect::<Option<Vec<_>>>(),
                Value::String(name) => Some(vec![name]),
                _ => None,
            }
            .ok_or_else(|| {
                fields.error(
                    &format!("{field}.{group}"),
                    "expected a list of model names",
                )
            })?;
            out.push((group, list));
        }
    }
    Ok(out)
}

/// `allowed_fails`, `cooldown_time`, `disable_cooldowns` as the circuit breaker: a
/// deployment with more than `allowed_fails` failures in a minute cools down for
/// `cooldown_time`.
fn breaker(
    router: &mut Fields,
    config: &mut Config,
    own: &HashSet<String>,
    report: &mut LiteLlmReport,
) -> Result<(), ConfigError> {
    let allowed = router.count("allowed_fails")?;
    let cooldown = router.seconds("cooldown_time")?;
    let disabled = router.boolean("disable_cooldowns")?.unwrap_or(false);
    if own.contains("circuit_breaker") {
        if allowed.is_some() || cooldown.is_some() || disabled {
            report.ignored.push(
                "router_settings.allowed_fails/cooldown_time/disable_cooldowns (our circuit_breaker: is set)"
                    .to_owned(),
            );
        }
        return Ok(());
    }
    let breaker = &mut config.circuit_breaker;
    breaker.failures = if disabled {
        u32::MAX
    } else {
        u32::try_from(allowed.unwrap_or(ALLOWED_FAILS) + 1).unwrap_or(u32::MAX)
    };
    breaker.window = Duration::from_secs(60);
    breaker.cooldown = cooldown.unwrap_or(COOLDOWN);
    Ok(())
}

/// `litellm_settings.request_timeout` (else `router_settings.timeout`) as the upstream
/// client's wait for an answer; `router_settings.stream_timeout` as its wait between a
/// stream's chunks.
fn timeouts(
    router: &mut Fields,
    settings: &mut Fields,
    config: &mut Config,
    own: &HashSet<String>,
) -> Result<(), ConfigError> {
    let request = settings.seconds("request_timeout")?;
    let timeout = router.seconds("timeout")?;
    let stream = router.seconds("stream_timeout")?;
    if own.contains("upstream") {
        return Ok(());
    }
    if let Some(t) = request.or(timeout) {
        config.upstream.first_byte_timeout = t;
    }
    if let Some(t) = stream {
        config.upstream.idle_timeout = t;
    }
    Ok(())
}

/// `router_settings.redis_host`/`redis_port`/`redis_password` (or `redis_url`) as the
/// Redis the instances share.
fn redis(
    router: &mut Fields,
    config: &mut Config,
    own: &HashSet<String>,
) -> Result<(), ConfigError> {
    let url = match router.string("redis_url")? {
        Some(url) => Some(url),
        None => redis_url(
            router.string("redis_host")?,
            router.string("redis_port")?,
            router.string("redis_password")?,
        ),
    };
    if let (Some(url), false) = (url, own.contains("redis")) {
        config.redis = Some(redis_settings(url)?);
    }
    Ok(())
}

fn redis_url(
    host: Option<String>,
    port: Option<String>,
    password: Option<String>,
) -> Option<String> {
    let host = host?;
    let port = port.unwrap_or_else(|| "6379".to_owned());
    Some(match password {
        Some(p) if !p.is_empty() => format!("redis://:{p}@{host}:{port}"),
        _ => format!("redis://{host}:{port}"),
    })
}

fn redis_settings(url: String) -> Result<RedisSettings, ConfigError> {
    serde_json::from_value(serde_json::json!({ "url": url }))
        .map_err(|e| ConfigError::new(format!("redis: {e}")))
}

/// `litellm_settings.cache` + `cache_params` as the response cache.
fn cache(
    settings: &mut Fields,
    config: &mut Config,
    own: &HashSet<String>,
    report: &mut LiteLlmReport,
) -> Result<(), ConfigError> {
    let on = settings.boolean("cache")?.unwrap_or(false);
    let has_params = settings.has("cache_params");
    let mut params = settings.mapping("cache_params")?;
    if !on {
        params.finish(&mut report.ignored);
        return Ok(());
    }
    if own.contains("cache") {
        report
            .ignored
            .push("litellm_settings.cache (our cache: is set)".to_owned());
        return Ok(());
    }
    // LiteLLM: `cache: true` alone is Redis from REDIS_HOST/REDIS_PORT/REDIS_PASSWORD;
    // `cache_params` without a type is the in-memory cache.
    let kind = params
        .string("type")?
        .unwrap_or_else(|| if has_params { "local" } else { "redis" }.to_owned());
    let mut cache = serde_json::json!({ "enabled": true });
    let semantic = match kind.as_str() {
        "local" | "redis" => false,
        "redis-semantic" => true,
        other => {
            return Err(params.error(
                "type",
                format!(
                    "`{other}` is not a cache llm-tower has: use local, redis or redis-semantic"
                ),
            ))
        }
    };
    if kind != "local" {
        cache["store"] = "redis".into();
        let url = match params.string("url")? {
            Some(url) => Some(url),
            None => redis_url(
                params.string_or_env("host", "REDIS_HOST")?,
                params.string_or_env("port", "REDIS_PORT")?,
                params.string_or_env("password", "REDIS_PASSWORD")?,
            )
            .or_else(|| params.lookup("REDIS_URL")),
        };
        // Our own `redis:` (or router_settings' redis_*) serves when the cache names none.
        match url {
            Some(url) if !own.contains("redis") => config.redis = Some(redis_settings(url)?),
            None if config.redis.is_none() => {
                return Err(params.error(
                    "host",
                    format!("a `{kind}` cache needs host/port (or REDIS_HOST and REDIS_PORT)"),
                ))
            }
            _ => {}
        }
    }
    if let Some(ttl) = params.seconds("ttl")? {
        cache["ttl"] = format!("{}ms", ttl.as_millis().max(1)).into();
    }
    if let Some(namespace) = params.string("namespace")? {
        cache["key_prefix"] = format!("{namespace}:").into();
    }
    if let Some(mode) = params.string("mode")? {
        if mode != "default_on" {
            return Err(params.error(
                "mode",
                format!("`{mode}` cannot be honoured: llm-tower caches every cacheable request (default_on)"),
            ));
        }
    }
    if semantic {
        let threshold = params.number("similarity_threshold")?.ok_or_else(|| {
            params.error("similarity_threshold", "is required for redis-semantic")
        })?;
        cache["semantic"] = serde_json::json!({
            "enabled": true,
            "hash": { "threshold": threshold },
        });
        if let Some(model) = params.string("redis_semantic_cache_embedding_model")? {
            report.notes.push(format!(
                "cache_params.redis_semantic_cache_embedding_model `{model}`: llm-tower embeds with its built-in hash embedder"
            ));
        }
    }
    config.cache = serde_json::from_value::<CacheSettings>(cache)
        .map_err(|e| ConfigError::new(format!("litellm_settings.cache_params: {e}")))?;
    params.finish(&mut report.ignored);
    Ok(())
}

/// `success_callback` / `callbacks` / `failure_callback`: `prometheus` is llm-tower's
/// `/metrics`, always on; others are not used.
fn callbacks(settings: &mut Fields, report: &mut LiteLlmReport) -> Result<(), ConfigError> {
    for key in ["success_callback", "failure_callback", "callbacks"] {
        for name in settings.strings(key)? {
            if name == "prometheus" {
                report.notes.push(format!(
                    "litellm_settings.{key} prometheus: on, at /metrics"
                ));
            } else {
                report
                    .ignored
                    .push(format!("litellm_settings.{key}: {name}"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::combo::ComboStrategy;

    fn load(yaml: &str) -> Result<Config, ConfigError> {
        Config::from_yaml_with_env(yaml, &|name| match name {
            "OPENAI_API_KEY" => Some("sk-openai".to_owned()),
            "MOCK_URL" => Some("http://127.0.0.1:9/v1".to_owned()),
            _ => None,
        })
    }

    fn report(config: &Config) -> &LiteLlmReport {
        config.litellm.as_ref().expect("a LiteLLM report")
    }

    #[test]
    fn a_simple_model_list_is_served_natively_with_keys_from_the_environment() {
        let config = load(
            r#"
model_list:
  - model_name: gpt-4o
    litellm_params: { model: openai/gpt-4o, api_key: os.environ/OPENAI_API_KEY, temperature: 0.2 }
  - model_name: claude
    litellm_params: { model: anthropic/claude-3-5-sonnet-20240620, api_key: sk-ant }
  - model_name: flash
    litellm_params: { model: gemini/gemini-2.0-flash, api_key: g-key }
  - model_name: llama
    litellm_params: { model: groq/llama-3.1-8b-instant, api_key: gsk }
  - model_name: local
    litellm_params: { model: ollama_chat/llama3, api_base: "http://127.0.0.1:11434" }
  - model_name: bedrock-claude
    litellm_params: { model: bedrock/anthropic.claude-3, aws_region_name: us-east-1 }
"#,
        )
        .unwrap();
        let ProviderConfig::Openai(gpt) = &config.providers["gpt-4o"] else {
            panic!()
        };
        assert_eq!(gpt.api_base, "https://api.openai.com/v1");
        assert_eq!(gpt.api_key.as_deref(), Some("sk-openai"));
        assert_eq!(
            gpt.params.iter().collect::<Vec<_>>(),
            [("temperature", &serde_json::json!(0.2))]
        );
        assert_eq!(config.aliases["gpt-4o"], "gpt-4o/gpt-4o");
        let ProviderConfig::Anthropic(claude) = &config.providers["claude"] else {
            panic!()
        };
        assert_eq!(claude.api_base, "https://api.anthropic.com/v1");
        assert_eq!(
            config.aliases["claude"],
            "claude/claude-3-5-sonnet-20240620"
        );
        assert!(matches!(
            config.providers["flash"],
            ProviderConfig::Gemini(_)
        ));
        let ProviderConfig::Openai(groq) = &config.providers["llama"] else {
            panic!()
        };
        assert_eq!(groq.api_base, "https://api.groq.com/openai/v1");
        let ProviderConfig::Openai(ollama) = &config.providers["local"] else {
            panic!()
        };
        assert_eq!(ollama.api_base, "http://127.0.0.1:11434/v1");
        // No LiteLLM proxy: the Bedrock entry is not served, and says why.
        let entries = &report(&config).entries;
        assert!(
            matches!(&entries[5].how, How::Unsupported { why } if why.contains("`bedrock` is served by LiteLLM") && why.contains("litellm_proxy")),
            "{:?}",
            entries[5]
        );
        assert!(!config.aliases.contains_key("bedrock-claude"));
        // The Bedrock entry's own keys are LiteLLM's business, not "ignored".
        assert!(
            report(&config).ignored.is_empty(),
            "{:?}",
            report(&config).ignored
        );
    }

    #[test]
    fn entries_litellm_serves_go_to_the_proxy_by_model_name() {
        let config = load(
            r#"
litellm_proxy: { api_base: "http://127.0.0.1:4000", api_key: sk-proxy }
model_list:
  - model_name: bedrock-claude
    litellm_params: { model: bedrock/anthropic.claude-3 }
  - model_name: canned
    litellm_params: { model: openai/x, mock_response: hi }
  - model_name: "mock/*"
    litellm_params: { model: "openai/*", api_base: os.environ/MOCK_URL }
"#,
        )
        .unwrap();
        assert!(matches!(
            config.providers["litellm"],
            ProviderConfig::Litellm(_)
        ));
        assert_eq!(config.aliases["bedrock-claude"], "litellm/bedrock-claude");
        assert_eq!(config.aliases["canned"], "litellm/canned");
        assert_eq!(config.aliases["mock/*"], "mock-any/*");
        let aliases = config.aliases().unwrap();
        assert_eq!(
            aliases.resolve("mock/echo").as_deref(),
            Some("mock-any/echo")
        );
        let text = config.describe();
        assert!(
            text.contains("model_list   3 entries: 1 native, 2 via LiteLLM, 0 unsupported"),
            "{text}"
        );
        assert!(text.contains("  canned           via LiteLLM  http://127.0.0.1:4000 (provider litellm: mock_response is LiteLLM's)"), "{text}");
        assert!(text.contains("  mock/*           native       OpenAI-compatible http://127.0.0.1:9/v1 model * (provider mock-any)"), "{text}");
        assert!(!text.contains("sk-proxy"), "{text}");
    }

    #[test]
    fn a_group_is_load_balanced_and_falls_back() {
        let config = load(
            r#"
model_list:
  - model_name: gpt
    litellm_params: { model: openai/gpt-4o, api_base: "http://a:1/v1", rpm: 900 }
    model_info: { id: east }
  - model_name: gpt
    litellm_params: { model: azure/gpt-4o-eu, api_base: "https://eu.openai.azure.com", api_key: az, api_version: "2024-10-21", rpm: 100 }
    model_info: { id: west }
  - model_name: claude
    litellm_params: { model: anthropic/claude-sonnet-4, api_key: k }
  - model_name: big
    litellm_params: { model: openai/gpt-4.1, api_base: "http://a:1/v1" }
router_settings:
  routing_strategy: simple-shuffle
  fallbacks: [{ gpt: [claude] }]
  context_window_fallbacks: [{ gpt: [big] }]
  model_group_alias: { gpt-4: gpt, hidden-one: { model: claude, hidden: true } }
  allowed_fails: 1
  cooldown_time: 30
  redis_host: 10.0.0.5
  redis_port: 6380
  redis_password: secret
"#,
        )
        .unwrap();
        let lb = &config.combos["gpt@deployments"];
        assert_eq!(lb.strategy, ComboStrategy::Weighted);
        let weights: Vec<_> = lb
            .targets
            .iter()
            .map(|t| (t.name().to_owned(), t.weight()))
            .collect();
        assert_eq!(
            weights,
            [
                ("east/gpt-4o".to_owned(), 900),
                ("west/gpt-4o-eu".to_owned(), 100)
            ]
        );
        let gpt = &config.combos["gpt"];
        let targets: Vec<_> = gpt.targets.iter().map(|t| t.name()).collect();
        assert_eq!(targets, ["gpt@deployments", "claude/claude-sonnet-4"]);
        assert_eq!(gpt.context_window_fallbacks, ["big/gpt-4.1"]);
        assert_eq!(config.aliases["gpt-4"], "gpt");
        assert_eq!(config.aliases["hidden-one"], "claude");
        let v1 = load("model_list: [{ model_name: a, litellm_params: { model: azure/gpt-4o, api_base: 'https://x.openai.azure.com/', api_key: k, api_version: v1 } }]").unwrap();
        let ProviderConfig::Openai(v1) = &v1.providers["a"] else {
            panic!()
        };
        assert_eq!(
            (
                v1.api_base.as_str(),
                v1.api_key.as_deref(),
                v1.query.as_deref()
            ),
            ("https://x.openai.azure.com/openai/v1", Some("k"), None)
        );
        // Azure's classic API: the deployment in the path, the version in the query.
        let ProviderConfig::Openai(west) = &config.providers["west"] else {
            panic!()
        };
        assert_eq!(
            west.api_base,
            "https://eu.openai.azure.com/openai/deployments/gpt-4o-eu"
        );
        assert_eq!(west.query.as_deref(), Some("api-version=2024-10-21"));
        assert_eq!(west.headers["api-key"], "az");
        assert_eq!(west.api_key, None);
        assert_eq!(config.circuit_breaker.failures, 2);
        assert_eq!(
            config.redis.as_ref().unwrap().url,
            "redis://:secret@10.0.0.5:6380"
        );
        assert_eq!(config.circuit_breaker.cooldown, Duration::from_secs(30));
        assert_eq!(config.circuit_breaker.window, Duration::from_secs(60));
        config.combos(&config.aliases().unwrap()).unwrap();
    }

    #[test]
    fn cache_keys_timeouts_and_environment_variables_map_onto_our_sections() {
        let config = load(
            r#"
environment_variables: { MY_KEY: sk-from-file, REDIS_HOST: 127.0.0.1, REDIS_PORT: "6390" }
model_list:
  - model_name: gpt
    litellm_params: { model: openai/gpt-4o, api_key: os.environ/MY_KEY, timeout: 7, stream_timeout: 3, input_cost_per_token: 0.000002, output_cost_per_token: 0.000008 }
litellm_settings:
  cache: true
  cache_params: { type: redis, ttl: 120, namespace: team-a }
  request_timeout: 20
  success_callback: [prometheus, langfuse]
  set_verbose: true
general_settings:
  master_key: sk-1234
  database_url: "postgres://u@db:5432/litellm"
  alerting: [slack]
"#,
        )
        .unwrap();
        let ProviderConfig::Openai(gpt) = &config.providers["gpt"] else {
            panic!()
        };
        assert_eq!(gpt.api_key.as_deref(), Some("sk-from-file"));
        assert_eq!(gpt.first_byte_timeout, Some(Duration::from_secs(7)));
        assert_eq!(gpt.idle_timeout, Some(Duration::from_secs(3)));
        assert_eq!(config.upstream.first_byte_timeout, Duration::from_secs(20));
        assert!(config.cache.enabled);
        assert_eq!(config.cache.store, crate::cache::CacheStoreKind::Redis);
        assert_eq!(config.cache.ttl, Duration::from_secs(120));
        assert_eq!(config.cache.key_prefix, "team-a:");
        assert_eq!(config.redis.as_ref().unwrap().url, "redis://127.0.0.1:6390");
        assert_eq!(config.master_key.as_deref(), Some("sk-1234"));
        assert_eq!(config.metering.sink, crate::metering::SinkKind::Postgres);
        let price = config.metering.model_prices["gpt/gpt-4o"];
        assert!(
            (price.input - 2.0).abs() < 1e-9 && (price.output - 8.0).abs() < 1e-9,
            "{price:?}"
        );
        let ignored = &report(&config).ignored;
        for key in [
            "litellm_settings.success_callback: langfuse",
            "litellm_settings.set_verbose",
            "general_settings.alerting",
        ] {
            assert!(ignored.iter().any(|i| i == key), "{key} in {ignored:?}");
        }
        assert!(report(&config)
            .notes
            .iter()
            .any(|n| n.contains("prometheus")));
    }

    #[test]
    fn values_that_cannot_be_honoured_are_errors_naming_the_litellm_field() {
        for (yaml, needle) in [
            ("model_list: [{ model_name: a, litellm_params: { model: openai/x } }]\nrouter_settings: { routing_strategy: fastest }", "router_settings.routing_strategy: `fastest` is not a routing strategy"),
            ("model_list: [{ model_name: a, litellm_params: { model: openai/x } }]\nrouter_settings: { routing_strategy: provider-budget-routing }", "router_settings.routing_strategy: `provider-budget-routing` is not supported"),
            ("model_list: [{ model_name: a, litellm_params: { model: openai/x } }]\nlitellm_settings: { cache: true, cache_params: { type: s3 } }", "litellm_settings.cache_params.type: `s3`"),
            ("model_list: [{ model_name: a, litellm_params: { model: openai/x } }]\nlitellm_settings: { cache: true, cache_params: { type: redis-semantic, host: h } }", "similarity_threshold: is required"),
            ("model_list: [{ model_name: a, litellm_params: { model: openai/x } }]\nlitellm_settings: { cache: true, cache_params: { type: local, mode: default_off } }", "cache_params.mode"),
            ("model_list: [{ model_name: a, litellm_params: { model: hosted_vllm/x } }]", "model_list.0.litellm_params.api_base: `hosted_vllm/` needs an api_base"),
            ("model_list: [{ model_name: a, litellm_params: { model: openai/x, api_key: os.environ/NOPE } }]", "model_list.0.litellm_params.api_key: environment variable `NOPE` is not set"),
            ("model_list: [{ litellm_params: { model: openai/x } }]", "model_list.0.model_name: is required"),
            ("model_list: [{ model_name: a, litellm_params: { model: openai/x, timeout: soon } }]", "model_list.0.litellm_params.timeout: `soon` is not a number"),
            ("model_list: [{ model_name: a, litellm_params: { model: openai/x, api_base: 'ftp://x' } }]", "model_list.0.litellm_params: api_base"),
            ("model_list: [{ model_name: a, litellm_params: { model: openai/x } }]\nrouter_settings: { fallbacks: { a: [b] } }", "router_settings.fallbacks: expected a list"),
        ] {
            let err = load(yaml).unwrap_err().to_string();
            assert!(err.contains(needle), "{yaml}\n=> {err}");
        }
    }

    #[test]
    fn a_redis_semantic_cache_is_our_semantic_cache_at_its_threshold() {
        let config = load(
            "model_list: [{ model_name: a, litellm_params: { model: openai/x } }]\nlitellm_settings:\n  cache: true\n  cache_params: { type: redis-semantic, host: 127.0.0.1, port: 6379, password: pw, similarity_threshold: 0.9, redis_semantic_cache_embedding_model: a }\n",
        )
        .unwrap();
        assert!(config.cache.enabled && config.cache.semantic.enabled);
        assert_eq!(config.cache.store, crate::cache::CacheStoreKind::Redis);
        assert!((config.cache.semantic.hash.threshold - 0.9).abs() < 1e-6);
        assert_eq!(
            config.redis.as_ref().unwrap().url,
            "redis://:pw@127.0.0.1:6379"
        );
        assert!(report(&config)
            .notes
            .iter()
            .any(|n| n.contains("redis_semantic_cache_embedding_model")));
        // `cache: true` alone: Redis from the environment, as LiteLLM; none set is an error.
        let err = load("model_list: [{ model_name: a, litellm_params: { model: openai/x } }]\nlitellm_settings: { cache: true }").unwrap_err();
        assert!(err.to_string().contains("REDIS_HOST"), "{err}");
    }

    #[test]
    fn usage_based_routing_holds_deployments_to_their_rpm_and_tpm_and_shuffle_does_not() {
        let list = "model_list:\n  - { model_name: g, litellm_params: { model: openai/a, rpm: 10 } }\n  - { model_name: g, litellm_params: { model: openai/b }, model_info: { tpm: 500 } }\n";
        let config = load(&format!(
            "{list}router_settings: {{ routing_strategy: usage-based-routing }}"
        ))
        .unwrap();
        let combo = &config.combos["g"];
        assert_eq!(combo.strategy, ComboStrategy::LeastUsage);
        let limits: Vec<_> = combo.targets.iter().map(|t| t.limits()).collect();
        assert_eq!(limits, [(Some(10), None), (None, Some(500))]);
        let config = load(list).unwrap();
        let combo = &config.combos["g"];
        assert_eq!(combo.strategy, ComboStrategy::Weighted);
        let weights: Vec<_> = combo
            .targets
            .iter()
            .map(|t| (t.weight(), t.limits()))
            .collect();
        assert_eq!(weights, [(10, (None, None)), (500, (None, None))]);
    }

    #[test]
    fn default_and_generic_fallbacks_apply_to_groups_without_their_own() {
        let list = "model_list:\n  - { model_name: a, litellm_params: { model: openai/a } }\n  - { model_name: b, litellm_params: { model: openai/b } }\n  - { model_name: c, litellm_params: { model: openai/c } }\n";
        let config = load(&format!("{list}litellm_settings: {{ default_fallbacks: [c], fallbacks: [{{ a: [b] }}], cache: true, cache_params: {{ ttl: 90 }} }}")).unwrap();
        let names = |combo: &str| -> Vec<String> {
            config.combos[combo]
                .targets
                .iter()
                .map(|t| t.name().to_owned())
                .collect()
        };
        assert_eq!(names("a"), ["a/a", "b/b"]);
        assert_eq!(names("b"), ["b/b", "c/c"]);
        // c falls back to nothing but itself: an alias.
        assert_eq!(config.aliases["c"], "c/c");
        // `cache_params` without a type: the in-memory cache.
        assert!(config.cache.enabled);
        assert_eq!(config.cache.store, crate::cache::CacheStoreKind::Memory);
        assert_eq!(config.cache.ttl, Duration::from_secs(90));
        let generic = load(&format!(
            "{list}router_settings: {{ fallbacks: [{{ '*': [c] }}] }}"
        ))
        .unwrap();
        let targets: Vec<_> = generic.combos["a"]
            .targets
            .iter()
            .map(|t| t.name().to_owned())
            .collect();
        assert_eq!(targets, ["a/a", "c/c"]);
    }

    #[test]
    fn fallbacks_to_unknown_groups_are_reported_not_followed() {
        let config = load(
            "model_list: [{ model_name: a, litellm_params: { model: openai/x } }]\nrouter_settings: { fallbacks: [{ a: [nowhere] }] }",
        )
        .unwrap();
        assert_eq!(config.aliases["a"], "a/x");
        assert!(
            report(&config)
                .ignored
                .iter()
                .any(|i| i.contains("`nowhere`")),
            "{:?}",
            report(&config).ignored
        );
    }
}
