//! What tokens cost: a built-in table of common models, overridable by a file of the
//! user's (our YAML, or LiteLLM's `model_prices_and_context_window.json`).

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

use super::usage::Usage;
use crate::settings::SettingsError;

/// USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// Prompt tokens.
    pub input: f64,
    /// Completion tokens.
    #[serde(default)]
    pub output: f64,
    /// Prompt tokens read from the provider's cache (default: the input price).
    #[serde(default)]
    pub cached_input: Option<f64>,
}

impl Price {
    const fn new(input: f64, output: f64, cached_input: f64) -> Self {
        Self {
            input,
            output,
            cached_input: Some(cached_input),
        }
    }

    /// The cost of `usage` in USD.
    pub fn cost(&self, usage: &Usage) -> f64 {
        let cached = usage.cached_tokens().min(usage.prompt_tokens);
        let fresh = usage.prompt_tokens - cached;
        (fresh as f64 * self.input
            + cached as f64 * self.cached_input.unwrap_or(self.input)
            + usage.completion_tokens as f64 * self.output)
            / 1e6
    }
}

/// List prices (USD per million tokens: input, output, cached input) of common models as
/// published by their providers in 2025. They go stale: point `metering.prices` at a file
/// of your own, or at LiteLLM's price list, to override them.
const BUILT_IN: &[(&str, Price)] = &[
    ("gpt-5", Price::new(1.25, 10.0, 0.125)),
    ("gpt-5-mini", Price::new(0.25, 2.0, 0.025)),
    ("gpt-5-nano", Price::new(0.05, 0.40, 0.005)),
    ("gpt-4.1", Price::new(2.0, 8.0, 0.50)),
    ("gpt-4.1-mini", Price::new(0.40, 1.60, 0.10)),
    ("gpt-4.1-nano", Price::new(0.10, 0.40, 0.025)),
    ("gpt-4o", Price::new(2.50, 10.0, 1.25)),
    ("gpt-4o-mini", Price::new(0.15, 0.60, 0.075)),
    ("o3", Price::new(2.0, 8.0, 0.50)),
    ("o4-mini", Price::new(1.10, 4.40, 0.275)),
    ("text-embedding-3-small", Price::new(0.02, 0.0, 0.02)),
    ("text-embedding-3-large", Price::new(0.13, 0.0, 0.13)),
    ("claude-opus-4", Price::new(15.0, 75.0, 1.50)),
    ("claude-sonnet-4", Price::new(3.0, 15.0, 0.30)),
    ("claude-haiku-4", Price::new(1.0, 5.0, 0.10)),
    ("claude-3-7-sonnet", Price::new(3.0, 15.0, 0.30)),
    ("claude-3-5-haiku", Price::new(0.80, 4.0, 0.08)),
    ("gemini-2.5-pro", Price::new(1.25, 10.0, 0.31)),
    ("gemini-2.5-flash", Price::new(0.30, 2.50, 0.075)),
    ("gemini-2.5-flash-lite", Price::new(0.10, 0.40, 0.025)),
    ("gemini-2.0-flash", Price::new(0.10, 0.40, 0.025)),
];

/// Prices by model name, and by provider and model.
#[derive(Debug, Clone)]
pub struct PriceTable {
    prices: HashMap<String, Price>,
    /// `provider/model` entries: provider → model → price.
    by_provider: HashMap<String, HashMap<String, Price>>,
}

impl Default for PriceTable {
    fn default() -> Self {
        Self {
            prices: BUILT_IN
                .iter()
                .map(|(m, p)| ((*m).to_owned(), *p))
                .collect(),
            by_provider: HashMap::new(),
        }
    }
}

impl PriceTable {
    /// The built-in table with `path`'s entries over it.
    pub fn load(path: Option<&Path>) -> Result<Self, SettingsError> {
        let mut table = Self::default();
        let Some(path) = path else {
            return Ok(table);
        };
        let field = |e: &dyn std::fmt::Display| {
            SettingsError::new("prices", format!("{}: {e}", path.display()))
        };
        let text = std::fs::read_to_string(path).map_err(|e| field(&e))?;
        table.prices.extend(parse(&text).map_err(|e| field(&e))?);
        Ok(table)
    }

    /// The table with `entries` over it: a name with a `/` is `provider/model`, priced
    /// for that provider only ([`get_for`](Self::get_for)).
    #[must_use]
    pub fn with<'a>(mut self, entries: impl IntoIterator<Item = (&'a String, &'a Price)>) -> Self {
        for (name, price) in entries {
            match name.split_once('/') {
                Some((provider, model)) => {
                    self.by_provider
                        .entry(provider.to_owned())
                        .or_default()
                        .insert(model.to_owned(), *price);
                }
                None => {
                    self.prices.insert(name.clone(), *price);
                }
            }
        }
        self
    }

    /// The price of `model` as `provider` serves it: a `provider/model` entry, else
    /// [`get`](Self::get).
    pub fn get_for(&self, provider: Option<&str>, model: &str) -> Option<&Price> {
        provider
            .and_then(|p| self.by_provider.get(p)?.get(model))
            .or_else(|| self.get(model))
    }

    /// The price of `model`: its exact name, else the longest known name it starts with
    /// (`gpt-4o-2024-08-06` → `gpt-4o`), else the same after a `vendor/` prefix.
    pub fn get(&self, model: &str) -> Option<&Price> {
        let lookup = |name: &str| {
            self.prices.get(name).or_else(|| {
                self.prices
                    .iter()
                    .filter(|(known, _)| {
                        name.starts_with(known.as_str())
                            && name[known.len()..].starts_with(['-', '@', ':'])
                    })
                    .max_by_key(|(known, _)| known.len())
                    .map(|(_, p)| p)
            })
        };
        lookup(model).or_else(|| lookup(model.rsplit_once('/')?.1))
    }
}

/// Our YAML form, or LiteLLM's JSON (per-token prices).
fn parse(text: &str) -> Result<HashMap<String, Price>, String> {
    #[derive(Deserialize)]
    struct LiteLlm {
        input_cost_per_token: Option<f64>,
        output_cost_per_token: Option<f64>,
        cache_read_input_token_cost: Option<f64>,
    }
    if let Ok(entries) = serde_json::from_str::<HashMap<String, serde_json::Value>>(text) {
        return Ok(entries
            .into_iter()
            .filter_map(|(model, value)| {
                let entry: LiteLlm = serde_json::from_value(value).ok()?;
                let input = entry.input_cost_per_token?;
                Some((
                    model,
                    Price {
                        input: input * 1e6,
                        output: entry.output_cost_per_token.unwrap_or(0.0) * 1e6,
                        cached_input: entry.cache_read_input_token_cost.map(|c| c * 1e6),
                    },
                ))
            })
            .collect());
    }
    serde_yaml_ng::from_str(text).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_match_by_name_prefix_and_vendor() {
        let table = PriceTable::default();
        assert_eq!(table.get("gpt-4o-2024-08-06"), table.get("gpt-4o"));
        assert_ne!(table.get("gpt-4o-mini"), table.get("gpt-4o"));
        assert_eq!(table.get("openai/gpt-4o-mini"), table.get("gpt-4o-mini"));
        assert_eq!(
            table.get("claude-sonnet-4-5-20250929"),
            table.get("claude-sonnet-4")
        );
        assert_eq!(table.get("echo"), None);
        assert_eq!(table.get("gpt-4oops"), None);
    }

    #[test]
    fn cost_counts_cached_prompt_tokens_at_their_price() {
        let price = Price::new(2.0, 8.0, 0.5);
        let usage: Usage = serde_json::from_str(
            r#"{"prompt_tokens":1000000,"completion_tokens":500000,"prompt_tokens_details":{"cached_tokens":400000}}"#,
        )
        .unwrap();
        let expected = 0.6 * 2.0 + 0.4 * 0.5 + 0.5 * 8.0;
        assert!((price.cost(&usage) - expected).abs() < 1e-9);
    }

    #[test]
    fn files_in_either_format_override_the_table() {
        let ours = parse("echo: { input: 1.0, output: 2.0 }").unwrap();
        assert_eq!(
            ours["echo"],
            Price {
                input: 1.0,
                output: 2.0,
                cached_input: None
            }
        );
        let litellm = parse(r#"{"sample_spec": {"max_tokens": 1}, "echo": {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6, "litellm_provider": "openai"}}"#).unwrap();
        assert!((litellm["echo"].input - 1.0).abs() < 1e-9);
        assert!((litellm["echo"].output - 2.0).abs() < 1e-9);
        assert!(!litellm.contains_key("sample_spec"));
    }
}
