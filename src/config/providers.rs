//! `providers:`: each kind's settings, and the registry of executors they build. A new
//! provider kind is a variant of [`ProviderConfig`] and its arm in [`ProviderConfig::settings`];
//! the rest is the kind's own [`ProviderSettings`].

use super::{Config, ConfigError, ProviderConfig};
use std::collections::HashMap;
use std::sync::Arc;

use crate::executor::{Executors, ProviderHealth, ProviderSettings};
use crate::upstream::UpstreamClient;

impl ProviderConfig {
    /// The kind's settings.
    pub fn settings(&self) -> &dyn ProviderSettings {
        match self {
            Self::Openai(c) => c,
            Self::Litellm(c) => c,
            Self::Mock(c) => c,
            Self::Anthropic(c) => c,
            Self::Gemini(c) => c,
        }
    }

    /// The models this provider lists in `GET /v1/models`.
    pub fn models(&self) -> &[String] {
        self.settings().models()
    }
}

impl Config {
    /// The registry of the configured providers' executors, sharing one upstream client.
    pub fn executors(&self) -> Result<Executors, ConfigError> {
        let client = UpstreamClient::new(&self.upstream).map_err(|e| e.within("upstream"))?;
        self.executors_with(&client)
    }

    /// The registry of the configured providers' executors over `client` (one built from
    /// `upstream:`).
    pub fn executors_with(&self, client: &UpstreamClient) -> Result<Executors, ConfigError> {
        self.executors_carrying(client, HashMap::new())
    }

    /// [`Config::executors_with`], providers of these names keeping their recent health.
    pub(crate) fn executors_carrying(
        &self,
        client: &UpstreamClient,
        health: HashMap<String, Arc<ProviderHealth>>,
    ) -> Result<Executors, ConfigError> {
        let defaults = &self.upstream;
        let mut registry = Executors::builder().carry_health(health);
        for (name, provider) in &self.providers {
            registry = provider
                .settings()
                .register(name, registry, defaults, client)
                .map_err(|e| e.within(&format!("providers.{name}")))?;
        }
        registry
            .build()
            .map_err(|e| ConfigError::from(e.within("providers")))
    }
}
