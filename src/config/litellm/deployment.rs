//! One `model_list` entry: how it is served (natively by which executor, via LiteLLM, or
//! not at all), with its defaults, timeouts, weight and price.

use std::collections::BTreeMap;

use serde_yaml_ng::Value;

use super::fields::{Fields, Lookup};
use super::providers::{self, Native};
use crate::config::{ConfigError, ProviderConfig};
use crate::executor::{
    AnthropicSettings, DefaultParams, GeminiSettings, LiteLlmSettings, OpenAiSettings,
};
use crate::metering::Price;

/// OpenAI request parameters a deployment may give defaults for (LiteLLM passes its
/// `litellm_params` of these names to the provider when the client does not set them).
const REQUEST_PARAMS: &[&str] = &[
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "n",
    "stop",
    "max_tokens",
    "max_completion_tokens",
    "presence_penalty",
    "frequency_penalty",
    "repetition_penalty",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "user",
    "response_format",
    "seed",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "reasoning_effort",
    "service_tier",
    "modalities",
    "audio",
    "dimensions",
    "encoding_format",
];

/// The Azure API versions that mean the v1 API (`{base}/openai/v1`, model in the body).
const AZURE_V1: &[&str] = &["v1", "latest", "preview"];
/// LiteLLM's Azure API version when neither `api_version` nor `AZURE_API_VERSION` is set.
const AZURE_DEFAULT_VERSION: &str = "2025-02-01-preview";

/// One `model_list` entry, read.
#[derive(Debug)]
pub(super) struct Deployment {
    /// Its place in `model_list`.
    pub(super) index: usize,
    /// The name clients send.
    pub(super) model_name: String,
    /// `model_info.id`, when given.
    pub(super) id: Option<String>,
    pub(super) served: Served,
    /// The share of its group's traffic under `simple-shuffle`: `weight`, else `rpm`,
    /// else `tpm`, else 1 (LiteLLM's order).
    pub(super) weight: u32,
    /// Its requests and tokens per minute (limits under usage-based routing).
    pub(super) rpm: Option<u64>,
    pub(super) tpm: Option<u64>,
    /// Its price per million tokens, when the entry gives one.
    pub(super) price: Option<Price>,
    /// `model_info.mode`.
    pub(super) mode: Option<String>,
}

/// How an entry is served.
#[derive(Debug)]
pub(super) enum Served {
    /// By one of llm-tower's executors.
    Native {
        provider: Box<ProviderConfig>,
        /// The model name the upstream gets (`*` for a wildcard entry).
        model: String,
        /// For people: which API it is.
        api: &'static str,
    },
    /// Through the LiteLLM proxy, which gets the entry's `model_name`.
    ViaLiteLlm { why: String },
}

impl Deployment {
    /// Reads entry `index`; `ignored` gets the keys it does not use.
    pub(super) fn read(
        index: usize,
        entry: Value,
        lookup: Lookup<'_>,
        ignored: &mut Vec<String>,
    ) -> Result<Self, ConfigError> {
        let path = format!("model_list.{index}");
        let mut fields = Fields::new(Some(entry), path.as_str(), lookup)?;
        let model_name = fields
            .string("model_name")?
            .filter(|n| !n.is_empty())
            .ok_or_else(|| fields.error("model_name", "is required"))?;
        let params = fields.take("litellm_params");
        let mut params = Fields::new(params, format!("{path}.litellm_params"), lookup)?;
        let mut info = fields.mapping("model_info")?;
        fields.finish(ignored);

        let id = info.string("id")?;
        let mode = info.string("mode")?;
        let model = params
            .string("model")?
            .filter(|m| !m.is_empty())
            .ok_or_else(|| params.error("model", "is required"))?;

        // What LiteLLM uses to choose among a group's deployments, and prices: in
        // `litellm_params` or in `model_info`.
        let rpm = either(&mut params, &mut info, "rpm", Fields::count)?;
        let tpm = either(&mut params, &mut info, "tpm", Fields::count)?;
        let weight = match params.number("weight")? {
            Some(w) => Some(w.round()),
            None => rpm.or(tpm).map(|v| v as f64),
        }
        .map_or(1, |w| w.clamp(0.0, f64::from(u32::MAX)) as u32);
        let mut per_token = |key| either(&mut params, &mut info, key, Fields::number);
        let input = per_token("input_cost_per_token")?;
        let output = per_token("output_cost_per_token")?;
        let cached = per_token("cache_read_input_token_cost")?;
        let price = (input.is_some() || output.is_some()).then(|| Price {
            input: input.unwrap_or(0.0) * 1e6,
            output: output.unwrap_or(0.0) * 1e6,
            cached_input: cached.map(|c| c * 1e6),
        });

        let served = classify(&model, &mut params)?;
        if matches!(served, Served::Native { .. }) {
            params.finish(ignored);
            info.finish(ignored);
        }
        Ok(Self {
            index,
            model_name,
            id,
            served,
            weight,
            rpm,
            tpm,
            price,
            mode,
        })
    }

    /// Whether the entry is a wildcard (`model_name: "openai/*"`).
    pub(super) fn is_wildcard(&self) -> bool {
        self.model_name.contains('*')
    }
}

/// `key` read from `params`, else from `info`.
fn either<'l, T>(
    params: &mut Fields<'l>,
    info: &mut Fields<'l>,
    key: &str,
    read: fn(&mut Fields<'l>, &str) -> Result<Option<T>, ConfigError>,
) -> Result<Option<T>, ConfigError> {
    match read(params, key)? {
        Some(value) => Ok(Some(value)),
        None => read(info, key),
    }
}

/// How `model` (`litellm_params.model`) is served, reading the entry's other params.
fn classify(model: &str, params: &mut Fields) -> Result<Served, ConfigError> {
    if params.has("mock_response") {
        return Ok(Served::ViaLiteLlm {
            why: "mock_response is LiteLLM's".to_owned(),
        });
    }
    let custom = params.string("custom_llm_provider")?;
    let (prefix, upstream_model) = match (&custom, model.split_once('/')) {
        (Some(provider), _) => (provider.as_str(), model),
        (None, Some((prefix, rest))) => (prefix, rest),
        (None, None) => match providers::inferred(model) {
            Some(prefix) => (prefix, model),
            None => {
                return Ok(Served::ViaLiteLlm {
                    why: format!("LiteLLM infers the provider of `{model}`"),
                })
            }
        },
    };
    let Some(known) = providers::native(prefix) else {
        return Ok(Served::ViaLiteLlm {
            why: format!("`{prefix}` is served by LiteLLM"),
        });
    };
    if upstream_model.is_empty() {
        return Err(params.error("model", format!("`{model}` names no model")));
    }
    let api_key = match params.string("api_key")? {
        Some(key) => Some(key),
        None => first_set(params, known.key_env).or(known.fallback_key.map(str::to_owned)),
    };
    let given_base = params.string("api_base")?;
    let api_base = given_base
        .clone()
        .or_else(|| first_set(params, known.base_env))
        .or(known.api_base.map(str::to_owned))
        .ok_or_else(|| {
            params.error(
                "api_base",
                format!(
                    "`{prefix}/` needs an api_base (or {})",
                    known.base_env.join(" or ")
                ),
            )
        })?;
    let api_base = api_base.trim_end_matches('/').to_owned();
    let timeout = params.seconds("timeout")?;
    let stream_timeout = params.seconds("stream_timeout")?;
    let mut headers = BTreeMap::new();
    if let Some(Value::Mapping(extra)) = params.take("extra_headers") {
        for (name, value) in extra {
            if let (Some(name), Some(value)) = (name.as_str(), value.as_str()) {
                headers.insert(
                    name.to_owned(),
                    params.resolve("extra_headers", value.to_owned())?,
                );
            }
        }
    }
    let mut defaults = DefaultParams::new();
    for name in REQUEST_PARAMS {
        if let Some(value) = params.take(name) {
            defaults = defaults.with(*name, json(&value, &params.field(name))?);
        }
    }
    if let Some(Value::Mapping(extra)) = params.take("extra_body") {
        for (name, value) in extra {
            if let Some(name) = name.as_str() {
                let field = params.field(&format!("extra_body.{name}"));
                defaults = defaults.with(name, json(&value, &field)?);
            }
        }
    }

    let openai = |api_base: String, api_key: Option<String>| {
        let mut s = OpenAiSettings::new(api_base)
            .api_key(api_key)
            .headers(headers.clone())
            .params(defaults.clone());
        s.first_byte_timeout = timeout;
        s.idle_timeout = stream_timeout;
        s
    };
    let (provider, api) = match known.native {
        Native::OpenAi => {
            let mut base = api_base;
            if prefix == "mistral" && !base.ends_with("/v1") {
                base.push_str("/v1"); // as LiteLLM does
            }
            let mut settings = openai(base, api_key);
            if let Some(org) = params.string("organization")? {
                settings
                    .headers
                    .insert("openai-organization".to_owned(), org);
            }
            (ProviderConfig::Openai(settings), "OpenAI-compatible")
        }
        Native::Ollama => {
            let root = api_base
                .trim_end_matches("/api/chat")
                .trim_end_matches("/api/generate")
                .trim_end_matches("/v1");
            (
                ProviderConfig::Openai(openai(format!("{root}/v1"), api_key)),
                "Ollama's OpenAI-compatible API",
            )
        }
        Native::LiteLlmProxy => (
            ProviderConfig::Litellm(LiteLlmSettings(openai(api_base, api_key))),
            "a LiteLLM proxy",
        ),
        Native::Azure => {
            let version = match params.string("api_version")? {
                Some(v) => v,
                None => params
                    .lookup("AZURE_API_VERSION")
                    .unwrap_or_else(|| AZURE_DEFAULT_VERSION.to_owned()),
            };
            let base = api_base.trim_end_matches("/openai");
            if AZURE_V1.contains(&version.as_str()) {
                (
                    ProviderConfig::Openai(openai(format!("{base}/openai/v1"), api_key)),
                    "Azure OpenAI (v1 API)",
                )
            } else {
                // The deployment is in the path, the key in `api-key`.
                let mut settings =
                    openai(format!("{base}/openai/deployments/{upstream_model}"), None);
                if let Some(key) = api_key {
                    settings.headers.insert("api-key".to_owned(), key);
                }
                settings.query = Some(format!("api-version={version}"));
                (ProviderConfig::Openai(settings), "Azure OpenAI")
            }
        }
        Native::Anthropic => {
            // LiteLLM's base is the root (`/v1/messages` appended); ours ends in `/v1`.
            let root = api_base
                .trim_end_matches("/messages")
                .trim_end_matches("/v1");
            let settings = AnthropicSettings {
                api_base: format!("{root}/v1"),
                api_key,
                headers,
                first_byte_timeout: timeout,
                idle_timeout: stream_timeout,
                params: defaults,
                ..Default::default()
            };
            (ProviderConfig::Anthropic(settings), "Anthropic Messages")
        }
        Native::Gemini => {
            let settings = GeminiSettings {
                api_base,
                api_key,
                headers,
                first_byte_timeout: timeout,
                idle_timeout: stream_timeout,
                params: defaults,
                ..Default::default()
            };
            (ProviderConfig::Gemini(settings), "Gemini")
        }
    };
    Ok(Served::Native {
        provider: Box::new(provider),
        model: upstream_model.to_owned(),
        api,
    })
}

/// The first of `names` that is set in the environment.
fn first_set(params: &Fields<'_>, names: &[&str]) -> Option<String> {
    names.iter().find_map(|name| params.lookup(name))
}

/// A YAML value as the JSON a request carries.
fn json(value: &Value, field: &str) -> Result<serde_json::Value, ConfigError> {
    serde_json::to_value(value)
        .map_err(|e| ConfigError::new(format!("{field}: not a JSON value: {e}")))
}
