//! What a config serves, in words: the `--check` output of the binary.

use std::fmt::Write;

use super::{Config, How, LiteLlmReport};
use crate::cache::CacheStoreKind;
use crate::idempotency::IdempotencyStoreKind;
use crate::metering::SinkKind;
use crate::responses::ResponsesStoreKind;
use crate::tenancy::LimitsStore;

impl Config {
    /// A plain-text summary of what this config serves: the listen address, who may call,
    /// every provider (kind, upstream, listed models), aliases, combos and the features on.
    /// Secrets are never shown.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "listen       {}", self.listen);
        let auth = match (&self.master_key, self.keys.len()) {
            (None, 0) => "none: every client that can reach the gateway may call it".to_owned(),
            (Some(_), 0) => "master key".to_owned(),
            (master, n) => format!(
                "{}{n} named key{}",
                if master.is_some() {
                    "master key + "
                } else {
                    ""
                },
                if n == 1 { "" } else { "s" }
            ),
        };
        let _ = writeln!(out, "auth         {auth}");
        if let Some(report) = &self.litellm {
            describe_litellm(report, &mut out);
        }
        let _ = writeln!(out, "providers");
        for (name, provider) in &self.providers {
            let settings = provider.settings();
            let (kind, upstream) = (settings.kind(), settings.upstream());
            let models = provider.models();
            let models = if models.is_empty() {
                String::new()
            } else {
                format!("  models: {}", models.join(", "))
            };
            let _ = writeln!(out, "  {name:<12} {kind:<10} {upstream}{models}");
        }
        if !self.aliases.is_empty() {
            let _ = writeln!(out, "aliases");
            for (name, target) in &self.aliases {
                let _ = writeln!(out, "  {name} -> {target}");
            }
        }
        if !self.combos.is_empty() {
            let _ = writeln!(out, "combos");
            for (name, combo) in &self.combos {
                let targets: Vec<_> = combo.targets.iter().map(|t| t.name()).collect();
                let _ = writeln!(
                    out,
                    "  {name} ({:?}): {}",
                    combo.strategy,
                    targets.join(", ")
                );
            }
        }
        let cache = if !self.cache.enabled {
            "off".to_owned()
        } else {
            let store = match self.cache.store {
                CacheStoreKind::Memory => "memory",
                CacheStoreKind::Redis => "redis",
            };
            let semantic = if self.cache.semantic.enabled {
                format!(" + semantic ({:?} embedder)", self.cache.semantic.embedder)
            } else {
                String::new()
            };
            format!("exact{semantic}, {store}")
        };
        let _ = writeln!(out, "cache        {cache}");
        let idempotency = match (self.idempotency.enabled, self.idempotency.store) {
            (false, _) => "off",
            (true, IdempotencyStoreKind::Memory) => "memory",
            (true, IdempotencyStoreKind::Redis) => "redis",
        };
        let _ = writeln!(out, "idempotency  {idempotency}");
        let responses = match self.responses.store {
            ResponsesStoreKind::Memory => "memory",
            ResponsesStoreKind::Redis => "redis",
        };
        let _ = writeln!(out, "responses    {responses}");
        let metering = match (self.metering.enabled, self.metering.sink) {
            (false, _) => "off".to_owned(),
            (true, SinkKind::Sqlite) => format!("sqlite {}", self.metering.sqlite_path.display()),
            (true, SinkKind::Postgres) => "postgres".to_owned(),
            (true, SinkKind::None) => "prometheus only".to_owned(),
        };
        let _ = writeln!(out, "metering     {metering}");
        let tenancy = match self.virtual_keys_off() {
            Some(why) => format!("off ({why})"),
            None => {
                let redis = match self.tenancy.limits {
                    Some(LimitsStore::Redis) => true,
                    Some(LimitsStore::Memory) => false,
                    None => self.redis.is_some(),
                };
                format!(
                    "virtual keys in the ledger, limits in {}",
                    if redis { "redis" } else { "memory" }
                )
            }
        };
        let _ = writeln!(out, "tenancy      {tenancy}");
        out
    }
}

/// How each `model_list` entry is served, and what of the LiteLLM file is not used.
fn describe_litellm(report: &LiteLlmReport, out: &mut String) {
    let count = |f: fn(&How) -> bool| report.entries.iter().filter(|e| f(&e.how)).count();
    let _ = writeln!(
        out,
        "model_list   {} entries: {} native, {} via LiteLLM, {} unsupported",
        report.entries.len(),
        count(|h| matches!(h, How::Native { .. })),
        count(|h| matches!(h, How::ViaLiteLlm { .. })),
        count(|h| matches!(h, How::Unsupported { .. })),
    );
    for entry in &report.entries {
        let mode = match entry.mode.as_deref() {
            Some(mode) if mode != "chat" => format!(" ({mode})"),
            _ => String::new(),
        };
        let name = format!("{}{mode}", entry.model_name);
        let how = match &entry.how {
            How::Native {
                provider,
                api,
                api_base,
                model,
                ..
            } => format!("native       {api} {api_base} model {model} (provider {provider})"),
            How::ViaLiteLlm {
                provider,
                api_base,
                why,
            } => format!("via LiteLLM  {api_base} (provider {provider}: {why})"),
            How::Unsupported { why } => format!("unsupported  {why}"),
        };
        let _ = writeln!(out, "  {name:<16} {how}");
    }
    for note in &report.notes {
        let _ = writeln!(out, "  note: {note}");
    }
    if !report.ignored.is_empty() {
        let _ = writeln!(out, "ignored      {}", report.ignored.join(", "));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_providers_aliases_combos_and_features_without_secrets() {
        let config = Config::from_yaml(
            "master_key: sk-very-secret\nproviders:\n  mock: { kind: mock, models: [echo] }\n  up: { kind: openai, api_base: 'http://127.0.0.1:9/v1', api_key: sk-upstream-secret }\naliases: { fast: mock/echo }\ncombos: { smart: { targets: [up/x, mock/echo] } }\ncache: { enabled: true }\n",
        )
        .unwrap();
        let text = config.describe();
        assert!(text.contains("auth         master key\n"), "{text}");
        assert!(
            text.contains("  mock         mock       built in  models: echo\n"),
            "{text}"
        );
        assert!(
            text.contains("  up           openai     http://127.0.0.1:9/v1\n"),
            "{text}"
        );
        assert!(text.contains("  fast -> mock/echo\n"), "{text}");
        assert!(
            text.contains("  smart (Priority): up/x, mock/echo\n"),
            "{text}"
        );
        assert!(text.contains("cache        exact, memory\n"), "{text}");
        assert!(
            text.contains("tenancy      virtual keys in the ledger, limits in memory\n"),
            "{text}"
        );
        assert!(!text.contains("secret"), "{text}");
    }

    #[test]
    fn says_why_virtual_keys_are_off_and_where_limits_count() {
        let describe = |yaml: &str| {
            Config::from_yaml(&format!("providers: {{ mock: {{ kind: mock }} }}\n{yaml}"))
                .unwrap()
                .describe()
        };
        assert!(describe("").contains("tenancy      off (no master_key)\n"));
        assert!(describe("master_key: sk-m\nmetering: { sink: none }")
            .contains("tenancy      off (metering writes to no database)\n"));
        assert!(
            describe("master_key: sk-m\nredis: { url: 'redis://127.0.0.1:1' }")
                .contains("tenancy      virtual keys in the ledger, limits in redis\n")
        );
        let error = Config::from_yaml(
            "master_key: sk-m\nproviders: { mock: { kind: mock } }\ntenancy: { limits: redis }",
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("tenancy.limits"), "{error}");
    }
}
