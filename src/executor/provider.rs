//! What a provider kind's settings do for the gateway that builds it from a config: say
//! what it is and lists, check themselves, and register their executor. One implementation
//! per kind, beside its executor; the YAML config only names the kind.

use std::sync::Arc;

use super::ModelListing;
use super::{
    AnthropicExecutor, AnthropicSettings, ApiMode, ExecutorsBuilder, Flavor, GeminiExecutor,
    GeminiSettings, MockExecutor, MockSettings, OpenAiExecutor, OpenAiSettings,
};
use crate::request::Endpoint;
use crate::settings::SettingsError;
use crate::upstream::{ClientSettings, UpstreamClient};

/// A provider kind's settings.
pub trait ProviderSettings {
    /// The kind's name (`kind:` in YAML).
    fn kind(&self) -> &'static str;
    /// Where its requests go, for people (`--check`).
    fn upstream(&self) -> &str;
    /// What `GET /v1/models` lists for it.
    fn models(&self) -> &[String];
    /// Checks the settings, naming the field at fault.
    fn validate(&self) -> Result<(), SettingsError>;
    /// Registers provider `name`'s executor on the shared `client` (whose `defaults` give
    /// the timeouts the settings do not override).
    fn register(
        &self,
        name: &str,
        registry: ExecutorsBuilder,
        defaults: &ClientSettings,
        client: &UpstreamClient,
    ) -> Result<ExecutorsBuilder, SettingsError>;
    /// Lists the upstream's models with these settings, to test a connection.
    fn list_models(
        &self,
        name: &str,
        defaults: &ClientSettings,
        client: &UpstreamClient,
    ) -> Result<ModelListing, SettingsError>;
}

impl ProviderSettings for OpenAiSettings {
    fn kind(&self) -> &'static str {
        "openai"
    }
    fn upstream(&self) -> &str {
        &self.api_base
    }
    fn models(&self) -> &[String] {
        &self.models
    }
    fn validate(&self) -> Result<(), SettingsError> {
        OpenAiSettings::validate(self)
    }
    fn register(
        &self,
        name: &str,
        registry: ExecutorsBuilder,
        defaults: &ClientSettings,
        client: &UpstreamClient,
    ) -> Result<ExecutorsBuilder, SettingsError> {
        let executor = OpenAiExecutor::new(name, Flavor::OpenAi, self, defaults, client.clone())?;
        Ok(
            speaks_natively(registry.service(name, executor), name, self)
                .params(name, &self.params),
        )
    }
    fn list_models(
        &self,
        name: &str,
        defaults: &ClientSettings,
        client: &UpstreamClient,
    ) -> Result<ModelListing, SettingsError> {
        let executor = OpenAiExecutor::new(name, Flavor::OpenAi, self, defaults, client.clone())?;
        Ok(Box::pin(async move { executor.list_models().await }))
    }
}

/// Registers the Responses and Messages APIs as spoken by provider `name` when its
/// settings say so.
fn speaks_natively(
    mut registry: ExecutorsBuilder,
    name: &str,
    settings: &OpenAiSettings,
) -> ExecutorsBuilder {
    if settings.responses == ApiMode::Native {
        registry = registry.speaks(name, Endpoint::Responses);
    }
    if settings.messages == ApiMode::Native {
        registry = registry
            .speaks(name, Endpoint::Messages)
            .speaks(name, Endpoint::CountTokens);
    }
    registry
}

/// A LiteLLM proxy (`kind: litellm`): OpenAI-compatible settings, LiteLLM's flavour.
#[derive(Debug, Clone, serde::Deserialize, PartialEq)]
#[serde(transparent)]
pub struct LiteLlmSettings(pub OpenAiSettings);

impl ProviderSettings for LiteLlmSettings {
    fn kind(&self) -> &'static str {
        "litellm"
    }
    fn upstream(&self) -> &str {
        &self.0.api_base
    }
    fn models(&self) -> &[String] {
        &self.0.models
    }
    fn validate(&self) -> Result<(), SettingsError> {
        self.0.validate()
    }
    fn register(
        &self,
        name: &str,
        registry: ExecutorsBuilder,
        defaults: &ClientSettings,
        client: &UpstreamClient,
    ) -> Result<ExecutorsBuilder, SettingsError> {
        let executor =
            OpenAiExecutor::new(name, Flavor::LiteLlm, &self.0, defaults, client.clone())?;
        let probe = executor.clone();
        let registry = speaks_natively(registry.service(name, executor), name, &self.0)
            .params(name, &self.0.params);
        Ok(registry.readiness(
            name,
            Arc::new(move || {
                let probe = probe.clone();
                Box::pin(async move { probe.ready().await })
            }),
        ))
    }
    fn list_models(
        &self,
        name: &str,
        defaults: &ClientSettings,
        client: &UpstreamClient,
    ) -> Result<ModelListing, SettingsError> {
        let executor =
            OpenAiExecutor::new(name, Flavor::LiteLlm, &self.0, defaults, client.clone())?;
        Ok(Box::pin(async move { executor.list_models().await }))
    }
}

impl ProviderSettings for AnthropicSettings {
    fn kind(&self) -> &'static str {
        "anthropic"
    }
    fn upstream(&self) -> &str {
        &self.api_base
    }
    fn models(&self) -> &[String] {
        &self.models
    }
    fn validate(&self) -> Result<(), SettingsError> {
        AnthropicSettings::validate(self)
    }
    fn register(
        &self,
        name: &str,
        registry: ExecutorsBuilder,
        defaults: &ClientSettings,
        client: &UpstreamClient,
    ) -> Result<ExecutorsBuilder, SettingsError> {
        let executor = AnthropicExecutor::new(name, self, defaults, client.clone())?;
        Ok(registry
            .service(name, executor)
            .speaks(name, Endpoint::Messages)
            .speaks(name, Endpoint::CountTokens)
            .params(name, &self.params))
    }
    fn list_models(
        &self,
        name: &str,
        defaults: &ClientSettings,
        client: &UpstreamClient,
    ) -> Result<ModelListing, SettingsError> {
        let executor = AnthropicExecutor::new(name, self, defaults, client.clone())?;
        Ok(Box::pin(async move { executor.list_models().await }))
    }
}

impl ProviderSettings for GeminiSettings {
    fn kind(&self) -> &'static str {
        "gemini"
    }
    fn upstream(&self) -> &str {
        &self.api_base
    }
    fn models(&self) -> &[String] {
        &self.models
    }
    fn validate(&self) -> Result<(), SettingsError> {
        GeminiSettings::validate(self)
    }
    fn register(
        &self,
        name: &str,
        registry: ExecutorsBuilder,
        defaults: &ClientSettings,
        client: &UpstreamClient,
    ) -> Result<ExecutorsBuilder, SettingsError> {
        let executor = GeminiExecutor::new(name, self, defaults, client.clone())?;
        Ok(registry.service(name, executor).params(name, &self.params))
    }
    fn list_models(
        &self,
        name: &str,
        defaults: &ClientSettings,
        client: &UpstreamClient,
    ) -> Result<ModelListing, SettingsError> {
        let executor = GeminiExecutor::new(name, self, defaults, client.clone())?;
        Ok(Box::pin(async move { executor.list_models().await }))
    }
}

impl ProviderSettings for MockSettings {
    fn kind(&self) -> &'static str {
        "mock"
    }
    fn upstream(&self) -> &str {
        "built in"
    }
    fn models(&self) -> &[String] {
        &self.models
    }
    fn validate(&self) -> Result<(), SettingsError> {
        self.params.validate().map_err(|e| e.within("params"))
    }
    fn register(
        &self,
        name: &str,
        registry: ExecutorsBuilder,
        _defaults: &ClientSettings,
        _client: &UpstreamClient,
    ) -> Result<ExecutorsBuilder, SettingsError> {
        Ok(registry
            .service(name, MockExecutor::new())
            .params(name, &self.params))
    }
    fn list_models(
        &self,
        _name: &str,
        _defaults: &ClientSettings,
        _client: &UpstreamClient,
    ) -> Result<ModelListing, SettingsError> {
        let models = if self.models.is_empty() {
            vec!["echo".to_owned()]
        } else {
            self.models.clone()
        };
        Ok(Box::pin(async move { Ok(models) }))
    }
}
