//! The gateway's YAML configuration.
//!
//! ```yaml
//! listen: 127.0.0.1:8080
//! master_key: os.environ/GATEWAY_MASTER_KEY
//! providers:
//!   mock: { kind: mock }
//!   openai: { kind: openai, api_base: https://api.openai.com/v1, api_key: os.environ/OPENAI_API_KEY }
//! ```
//!
//! Any string value may be `os.environ/NAME`, read when the file is loaded. Unknown keys are
//! errors, and every error names the field it is about.
//!
//! ```
//! let config = llm_tower::Config::from_yaml("providers: { mock: { kind: mock } }").unwrap();
//! assert_eq!(config.listen.port(), 8080);
//! ```

mod describe;
mod env;
mod gateway;
mod litellm;
mod providers;
mod routing;

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;

use serde::Deserialize;

use crate::cache::{CacheSettings, CacheStoreKind};
use crate::combo::{CircuitBreakerSettings, ComboSettings};
use crate::executor::{
    AnthropicSettings, GeminiSettings, LiteLlmSettings, MockSettings, OpenAiSettings,
};
use crate::gateway::MetricsSettings;
use crate::idempotency::{IdempotencySettings, IdempotencyStoreKind};
use crate::metering::MeteringSettings;
use crate::responses::{ResponsesSettings, ResponsesStoreKind};
use crate::server::ServerSettings;
use crate::settings::SettingsError;
use crate::store::RedisSettings;
use crate::telemetry::TelemetrySettings;
use crate::tenancy::{LimitsStore, TenancySettings};
use crate::upstream::ClientSettings;

pub use self::gateway::Configured;
pub use self::litellm::{EntryReport, How, LiteLlmInclude, LiteLlmReport};

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Config {
    /// Address the gateway binary listens on (`--listen` overrides it).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// When set, clients must present this key (or one of `keys`).
    #[serde(default)]
    pub master_key: Option<String>,
    /// Further client keys, each with a name that metering and logs use instead of the key.
    #[serde(default)]
    pub keys: Vec<KeyConfig>,
    /// Upstreams by name; a model `name/model` is sent to provider `name`.
    #[serde(default)]
    pub providers: BTreeMap<String, ProviderConfig>,
    /// A LiteLLM proxy config whose `model_list` (and routing, cache, key settings) this
    /// config takes in; this file's own sections win.
    #[serde(default)]
    pub litellm_config: Option<LiteLlmInclude>,
    /// How the LiteLLM config (this file, or `litellm_config`) was taken in.
    #[serde(skip)]
    pub litellm: Option<LiteLlmReport>,
    /// Model names rewritten to `provider/model`, a combo or another alias; a key may hold
    /// one `*`, whose match is carried into a `*` of the target.
    #[serde(default)]
    pub aliases: BTreeMap<String, String>,
    /// Named groups of targets with fallback and load balancing.
    #[serde(default)]
    pub combos: BTreeMap<String, ComboSettings>,
    /// When a combo target is cooled down after failing.
    #[serde(default)]
    pub circuit_breaker: CircuitBreakerSettings,
    /// `Idempotency-Key` handling.
    #[serde(default)]
    pub idempotency: IdempotencySettings,
    /// Stored responses of the Responses API (`previous_response_id`).
    #[serde(default)]
    pub responses: ResponsesSettings,
    /// The response cache: exact and semantic matching (off by default).
    #[serde(default)]
    pub cache: CacheSettings,
    /// Usage metering: what every request cost, and where the records go.
    #[serde(default)]
    pub metering: MeteringSettings,
    /// Virtual keys (LiteLLM's `/key/*` API) with budgets and rate limits.
    #[serde(default)]
    pub tenancy: TenancySettings,
    /// A Redis server shared by gateway instances (for `idempotency.store: redis`,
    /// `responses.store: redis`, `cache.store: redis`).
    #[serde(default)]
    pub redis: Option<RedisSettings>,
    /// The server side: limits and timeouts towards clients.
    #[serde(default)]
    pub server: ServerSettings,
    /// Who may read `/metrics`.
    #[serde(default)]
    pub metrics: MetricsSettings,
    /// The shared upstream client: timeouts, TLS.
    #[serde(default)]
    pub upstream: ClientSettings,
    /// Traces over OTLP (off without an endpoint).
    #[serde(default)]
    pub telemetry: TelemetrySettings,
}

/// One client key.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// A name for the key, safe to log and to record.
    pub name: String,
    /// The secret the client presents.
    pub key: String,
}

/// One upstream, by `kind`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "lowercase")]
#[non_exhaustive]
pub enum ProviderConfig {
    /// Any OpenAI-compatible server.
    Openai(OpenAiSettings),
    /// A LiteLLM proxy.
    Litellm(LiteLlmSettings),
    /// The built-in offline mock.
    Mock(MockSettings),
    /// The Anthropic Messages API, translated to and from OpenAI Chat Completions.
    Anthropic(AnthropicSettings),
    /// The Gemini API (`generateContent`), translated to and from OpenAI Chat Completions.
    Gemini(GeminiSettings),
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

/// A configuration that cannot be used, with the field and the problem.
#[derive(Debug, Clone)]
pub struct ConfigError {
    message: String,
}

impl ConfigError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

impl From<SettingsError> for ConfigError {
    fn from(err: SettingsError) -> Self {
        Self::new(err.to_string())
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Why virtual keys are off, or `None` when they are on: they need a master key and a
    /// ledger database to keep them in.
    pub(crate) fn virtual_keys_off(&self) -> Option<&'static str> {
        if !self.tenancy.enabled {
            Some("tenancy.enabled is false")
        } else if self.master_key.is_none() {
            Some("no master_key")
        } else if !self.metering.enabled || self.metering.sink == crate::metering::SinkKind::None {
            Some("metering writes to no database")
        } else {
            None
        }
    }

    /// Reads and validates a YAML file.
    ///
    /// The file may also be a LiteLLM proxy config (it has a `model_list`): see
    /// [`LiteLlmReport`] for what it becomes.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new(format!("{}: {e}", path.display())))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        Self::from_yaml_in(&text, dir, &|name| std::env::var(name).ok())
            .map_err(|e| ConfigError::new(format!("{}: {e}", path.display())))
    }

    /// Parses and validates YAML text (ours or a LiteLLM config), reading
    /// `os.environ/NAME` values from the environment; relative paths are from the
    /// working directory.
    pub fn from_yaml(text: &str) -> Result<Self, ConfigError> {
        Self::from_yaml_in(text, Path::new("."), &|name| std::env::var(name).ok())
    }

    #[cfg(test)]
    fn from_yaml_with_env(
        text: &str,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        Self::from_yaml_in(text, Path::new("."), lookup)
    }

    fn from_yaml_in(
        text: &str,
        dir: &Path,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let value: serde_yaml_ng::Value = serde_yaml_ng::from_str(text)
            .map_err(|e| ConfigError::new(format!("invalid YAML: {e}")))?;
        Self::from_document_in(value, dir, lookup)
    }

    /// A config from its YAML tree (ours or a LiteLLM config, `os.environ/NAME` values
    /// still unread) as if it were a file in `dir`.
    pub fn from_document(value: serde_yaml_ng::Value, dir: &Path) -> Result<Self, ConfigError> {
        Self::from_document_in(value, dir, &|name| std::env::var(name).ok())
    }

    fn from_document_in(
        mut value: serde_yaml_ng::Value,
        dir: &Path,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let config = if litellm::is_litellm(&value) {
            let mut config = Self::typed(serde_yaml_ng::Value::Mapping(Default::default()))?;
            let report = litellm::apply(value, dir, &mut config, &HashSet::new(), None, lookup)?;
            config.litellm = Some(report);
            config
        } else {
            let own: HashSet<String> = value
                .as_mapping()
                .map(|m| {
                    m.keys()
                        .filter_map(|k| k.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            env::substitute(&mut value, &mut Vec::new(), lookup).map_err(ConfigError::new)?;
            let mut config = Self::typed(value)?;
            if let Some(include) = config.litellm_config.clone() {
                config.litellm = Some(config.include_litellm(&include, dir, &own, lookup)?);
            }
            config
        };
        config.validate()?;
        Ok(config)
    }

    /// Takes in the LiteLLM config of `litellm_config:` (relative to `dir`); `own` are
    /// the top-level keys of this file, whose sections win.
    fn include_litellm(
        &mut self,
        include: &LiteLlmInclude,
        dir: &Path,
        own: &HashSet<String>,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<LiteLlmReport, ConfigError> {
        let path = dir.join(include.path());
        let at = |e: &dyn fmt::Display| {
            ConfigError::new(format!("litellm_config: {}: {e}", path.display()))
        };
        let text = std::fs::read_to_string(&path).map_err(|e| at(&e))?;
        let value: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).map_err(|e| at(&e))?;
        let proxy = match include {
            LiteLlmInclude::WithProxy { proxy, .. } => Some(proxy.as_str()),
            LiteLlmInclude::Path(_) => None,
        };
        let dir = path.parent().unwrap_or(dir);
        litellm::apply(value, dir, self, own, proxy, lookup).map_err(|e| at(&e))
    }

    /// Our config's YAML tree, typed (errors name the field).
    fn typed(value: serde_yaml_ng::Value) -> Result<Self, ConfigError> {
        serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            ConfigError::new(format!("{path}: {}", e.into_inner()))
        })
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.providers.is_empty() {
            return Err(ConfigError::new(
                "providers: at least one provider is required",
            ));
        }
        for (name, provider) in &self.providers {
            if name.is_empty() || name.contains('/') {
                return Err(ConfigError::new(format!(
                    "providers.{name}: a provider name must be non-empty and contain no `/`"
                )));
            }
            provider
                .settings()
                .validate()
                .map_err(|e| ConfigError::from(e.within(&format!("providers.{name}"))))?;
        }
        if self.master_key.as_deref() == Some("") {
            return Err(ConfigError::new("master_key: must not be empty"));
        }
        let mut names = std::collections::HashSet::new();
        for (i, key) in self.keys.iter().enumerate() {
            if key.key.is_empty() {
                return Err(ConfigError::new(format!("keys.{i}.key: must not be empty")));
            }
            if !names.insert(key.name.as_str()) || key.name == "master" {
                return Err(ConfigError::new(format!(
                    "keys.{i}.name: `{}` is used twice (`master` is reserved for master_key)",
                    key.name
                )));
            }
        }
        // Each section checks itself; the config checks what crosses sections.
        let section =
            |name: &'static str| move |e: SettingsError| ConfigError::from(e.within(name));
        let needs_redis = [
            (
                "idempotency",
                self.idempotency.store == IdempotencyStoreKind::Redis,
            ),
            (
                "cache",
                self.cache.enabled && self.cache.store == CacheStoreKind::Redis,
            ),
            (
                "responses",
                self.responses.store == ResponsesStoreKind::Redis,
            ),
        ];
        for (name, redis) in needs_redis {
            if redis && self.redis.is_none() {
                return Err(ConfigError::new(format!(
                    "{name}.store: `redis` needs a `redis: {{ url: ... }}` section"
                )));
            }
        }
        if self.tenancy.limits == Some(LimitsStore::Redis) && self.redis.is_none() {
            return Err(ConfigError::new(
                "tenancy.limits: `redis` needs a `redis: { url: ... }` section",
            ));
        }
        self.idempotency
            .validate()
            .map_err(section("idempotency"))?;
        self.cache.validate().map_err(section("cache"))?;
        self.responses.validate().map_err(section("responses"))?;
        self.metering.validate().map_err(section("metering"))?;
        self.tenancy.validate().map_err(section("tenancy"))?;
        self.server.validate().map_err(section("server"))?;
        self.telemetry.validate().map_err(section("telemetry"))?;
        if let Some(redis) = &self.redis {
            redis.validate().map_err(section("redis"))?;
        }
        let aliases = self.aliases()?;
        self.combos(&aliases)?;
        Ok(())
    }

    /// Whether a YAML tree is a LiteLLM proxy config (a `model_list` and no `providers`).
    pub(crate) fn is_litellm_document(value: &serde_yaml_ng::Value) -> bool {
        litellm::is_litellm(value)
    }

    /// Whether clients must present a key.
    pub fn requires_auth(&self) -> bool {
        self.master_key.is_some() || !self.keys.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn load(yaml: &str) -> Result<Config, ConfigError> {
        Config::from_yaml_with_env(yaml, &|name| (name == "KEY").then(|| "sk-test".to_owned()))
    }

    #[test]
    fn the_design_example_parses() {
        let config = load(
            r#"
listen: 127.0.0.1:9090
master_key: os.environ/KEY
keys: [{ name: team-a, key: sk-a }]
providers:
  openai:  { kind: openai, api_base: https://api.openai.com/v1, api_key: os.environ/KEY, models: [gpt-4o-mini] }
  litellm: { kind: litellm, api_base: http://127.0.0.1:4000, first_byte_timeout: 30s }
  mock:    { kind: mock }
server: { max_body_bytes: 1024, header_read_timeout: 5s }
upstream: { connect_timeout: 250ms }
"#,
        )
        .unwrap();
        assert_eq!(config.listen.port(), 9090);
        assert_eq!(config.master_key.as_deref(), Some("sk-test"));
        assert_eq!(config.providers["openai"].models(), ["gpt-4o-mini"]);
        let ProviderConfig::Litellm(litellm) = &config.providers["litellm"] else {
            panic!()
        };
        assert_eq!(litellm.0.first_byte_timeout, Some(Duration::from_secs(30)));
        assert_eq!(config.upstream.connect_timeout, Duration::from_millis(250));
        assert_eq!(config.server.shutdown_grace_period, Duration::from_secs(30));
        assert!(config.requires_auth());
    }

    #[test]
    fn errors_name_the_field() {
        for (yaml, needle) in [
            ("providers: { mock: { kind: mock } }\nlisten_addr: x", "unknown field `listen_addr`"),
            ("providers: { a: { kind: openai, api_base: 'http://x', api_bse: y } }", "unknown field `api_bse`"),
            ("providers: { a: { kind: nope } }", "unknown variant `nope`"),
            ("providers: { a: { kind: openai } }", "missing field `api_base`"),
            ("providers: { a: { kind: openai, api_base: 'ftp://x' } }", "providers.a.api_base"),
            ("providers: { a: { kind: openai, api_base: 'http://x', api_key: os.environ/UNSET } }", "`UNSET` is not set"),
            ("providers: {}", "at least one provider"),
            ("providers: { 'a/b': { kind: mock } }", "contain no `/`"),
            ("providers: { a: { kind: mock } }\nserver: { header_read_timeout: soon }", "server.header_read_timeout"),
            ("providers: { a: { kind: mock } }\nkeys: [{ name: x, key: a }, { name: x, key: b }]", "keys.1.name"),
            ("providers: { a: { kind: mock } }\nlisten: nowhere", "listen"),
        ] {
            let err = load(yaml).unwrap_err().to_string();
            assert!(err.contains(needle), "{yaml}\n=> {err}");
        }
    }
}
