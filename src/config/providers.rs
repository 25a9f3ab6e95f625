//! `providers:`: each kind's settings, and the registry of executors they build. A new
//! provider kind is one variant of [`ProviderConfig`] and one arm in each match below.

use std::sync::Arc;

use super::{Config, ConfigError, ProviderConfig};
use crate::executor::{
    AnthropicExecutor, Executors, Flavor, GeminiExecutor, MockExecutor, OpenAiExecutor,
};
use crate::settings::SettingsError;
use crate::upstream::UpstreamClient;

impl ProviderConfig {
    /// The models this provider lists in `GET /v1/models`.
    pub fn models(&self) -> &[String] {
        match self {
            Self::Openai(c) | Self::Litellm(c) => &c.models,
            Self::Mock(c) => &c.models,
            Self::Anthropic(c) => &c.models,
            Self::Gemini(c) => &c.models,
        }
    }

    /// Checks the provider's settings.
    pub fn validate(&self) -> Result<(), SettingsError> {
        match self {
            Self::Openai(c) | Self::Litellm(c) => c.validate(),
            Self::Mock(_) => Ok(()),
            Self::Anthropic(c) => c.validate(),
            Self::Gemini(c) => c.validate(),
        }
    }
}

impl Config {
    /// The registry of the configured providers' executors, sharing one upstream client.
    pub fn executors(&self) -> Result<Executors, ConfigError> {
        let defaults = &self.upstream;
        let client = UpstreamClient::new(defaults).map_err(|e| e.within("upstream"))?;
        let mut registry = Executors::builder();
        for (name, provider) in &self.providers {
            let field =
                |e: SettingsError| ConfigError::from(e.within(&format!("providers.{name}")));
            let client = client.clone();
            registry = match provider {
                ProviderConfig::Openai(c) => registry.service(
                    name,
                    OpenAiExecutor::new(name, Flavor::OpenAi, c, defaults, client)
                        .map_err(field)?,
                ),
                ProviderConfig::Litellm(c) => {
                    let executor = OpenAiExecutor::new(name, Flavor::LiteLlm, c, defaults, client)
                        .map_err(field)?;
                    let probe = executor.clone();
                    registry.service(name, executor).readiness(
                        name,
                        Arc::new(move || {
                            let probe = probe.clone();
                            Box::pin(async move { probe.ready().await })
                        }),
                    )
                }
                ProviderConfig::Mock(_) => registry.service(name, MockExecutor::new()),
                ProviderConfig::Anthropic(c) => registry.service(
                    name,
                    AnthropicExecutor::new(name, c, defaults, client).map_err(field)?,
                ),
                ProviderConfig::Gemini(c) => registry.service(
                    name,
                    GeminiExecutor::new(name, c, defaults, client).map_err(field)?,
                ),
            };
        }
        registry
            .build()
            .map_err(|e| ConfigError::from(e.within("providers")))
    }
}
