//! The whole gateway as the config describes it: each section converted into its
//! feature's settings, each layer built from those; and, for a reload, the same with the
//! state of every part whose settings did not change carried over from the gateway
//! before.

use std::sync::Arc;

use super::{Config, ConfigError};
use crate::auth::Keys;
use crate::cache::CacheLayer;
use crate::combo::TargetHealth;
use crate::gateway::Gateway;
use crate::idempotency::IdempotencyLayer;
use crate::metering::{MeteringLayer, SinkKind};
use crate::responses::ResponsesLayer;
use crate::settings::SettingsError;
use crate::telemetry::Tracer;
use crate::tenancy::{PostgresKeyStore, SharedKeyStore, SqliteKeyStore, Tenancy};
use crate::upstream::UpstreamClient;
use metrics_exporter_prometheus::PrometheusHandle;

/// A gateway and the config it was built from, with the parts that hold state (the
/// connection pool, stores, the usage writer, virtual keys and their counters, combo
/// targets' health) for the gateway of a changed config to carry over.
pub struct Configured {
    gateway: Gateway,
    config: Config,
    client: UpstreamClient,
    responses: ResponsesLayer,
    metering: MeteringLayer,
    idempotency: IdempotencyLayer,
    cache: CacheLayer,
    tenancy: Option<Tenancy>,
    health: TargetHealth,
}

impl Configured {
    /// The gateway `config` describes (see [`Gateway::from_config`]), serving `GET
    /// /metrics` from `prometheus`.
    pub fn new(config: &Config, prometheus: Option<PrometheusHandle>) -> Result<Self, ConfigError> {
        build(config, None, prometheus)
    }

    /// The gateway `config` describes for a reload: every part whose settings are those
    /// this one was built with is carried over with its state (the upstream connection
    /// pool, the cache, idempotency and responses stores, the usage writer, virtual keys
    /// with their rate-limit counters, and each combo target's breaker and latency while
    /// its provider is unchanged); the rest is built anew. Requests in flight here finish
    /// here. The Prometheus exporter is kept.
    pub fn rebuild(&self, config: &Config) -> Result<Self, ConfigError> {
        build(config, Some(self), self.gateway.prometheus().cloned())
    }

    /// The gateway.
    pub fn gateway(&self) -> &Gateway {
        &self.gateway
    }

    /// The config it was built from.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Every combo target's health.
    pub fn targets(&self) -> &TargetHealth {
        &self.health
    }
}

/// Virtual keys, when they are on: a master key, and a ledger in a database to keep them.
fn tenancy(config: &Config) -> Result<Option<Tenancy>, ConfigError> {
    let metering = &config.metering;
    if config.virtual_keys_off().is_some() {
        return Ok(None);
    }
    let err = |e: crate::store::StoreError| {
        ConfigError::new(format!("tenancy: the key store cannot be opened: {e}"))
    };
    let store: SharedKeyStore = match metering.sink {
        SinkKind::None => return Ok(None),
        SinkKind::Sqlite => Arc::new(SqliteKeyStore::open(&metering.sqlite_path).map_err(err)?),
        SinkKind::Postgres => Arc::new(
            PostgresKeyStore::new(metering.postgres_url.as_deref().unwrap_or_default())
                .map_err(err)?,
        ),
    };
    Tenancy::new(&config.tenancy, store, config.redis.as_ref())
        .map(Some)
        .map_err(|e| ConfigError::from(e.within("tenancy")))
}

/// Whether virtual keys would be built the same way from both configs (same store, same
/// limiter).
fn same_tenancy(a: &Config, b: &Config) -> bool {
    let ledger = |c: &Config| {
        (
            c.metering.enabled,
            c.metering.sink,
            c.metering.sqlite_path.clone(),
            c.metering.postgres_url.clone(),
        )
    };
    a.tenancy == b.tenancy
        && a.master_key.is_some() == b.master_key.is_some()
        && ledger(a) == ledger(b)
        && a.redis == b.redis
}

impl Gateway {
    /// Builds the gateway a validated config describes (inside a tokio runtime: the usage
    /// writer is a task). It installs no `metrics` recorder; see
    /// [`Gateway::with_prometheus`]. To rebuild it after a change, see [`Configured`].
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        Ok(build(config, None, None)?.gateway)
    }
}

fn build(
    config: &Config,
    before: Option<&Configured>,
    prometheus: Option<PrometheusHandle>,
) -> Result<Configured, ConfigError> {
    let section = |name: &'static str| move |e: SettingsError| ConfigError::from(e.within(name));
    // The previous part when `same` says its settings did not change.
    let carry = |same: &dyn Fn(&Config) -> bool| before.filter(|o| same(&o.config));
    let redis = config.redis.as_ref();

    let client = match carry(&|c| c.upstream == config.upstream) {
        Some(o) => o.client.clone(),
        None => UpstreamClient::new(&config.upstream)
            .map_err(|e| ConfigError::from(e.within("upstream")))?,
    };
    let responses = match carry(&|c| c.responses == config.responses && c.redis == config.redis) {
        Some(o) => o.responses.clone(),
        None => {
            ResponsesLayer::from_settings(&config.responses, redis).map_err(section("responses"))?
        }
    };
    // The writer exports the spans: it is rebuilt when tracing changes, and (tracing on)
    // when the providers' kinds the spans name do.
    let env = |name: &str| std::env::var(name).ok();
    let tracing_on = config.telemetry.traces_url(&env).is_some();
    let kinds = |c: &Config| -> Vec<(String, &'static str)> {
        c.providers
            .iter()
            .map(|(name, p)| (name.clone(), p.settings().kind()))
            .collect()
    };
    let metering = match carry(&|c| {
        c.metering == config.metering
            && c.telemetry == config.telemetry
            && (!tracing_on || kinds(c) == kinds(config))
    }) {
        Some(o) => o.metering.clone(),
        None => {
            let tracer = Tracer::from_settings(&config.telemetry, &client, kinds(config), &env)
                .map_err(section("telemetry"))?;
            MeteringLayer::traced(&config.metering, tracer).map_err(section("metering"))?
        }
    };
    let idempotency =
        match carry(&|c| c.idempotency == config.idempotency && c.redis == config.redis) {
            Some(o) => o.idempotency.clone(),
            None => IdempotencyLayer::from_settings(&config.idempotency, redis)
                .map_err(section("idempotency"))?,
        };
    let cache = match carry(&|c| {
        c.cache == config.cache && c.redis == config.redis && c.upstream == config.upstream
    }) {
        Some(o) => o.cache.clone(),
        None => CacheLayer::from_settings(&config.cache, redis, &config.upstream)
            .map_err(section("cache"))?,
    };
    let tenancy = match carry(&|c| same_tenancy(c, config)) {
        Some(o) => o.tenancy.clone(),
        None => tenancy(config)?,
    };

    // Health is a provider's as configured: a re-pointed provider starts afresh.
    let unchanged =
        |p: &str| before.is_some_and(|o| o.config.providers.get(p) == config.providers.get(p));
    let mut provider_health = before
        .map(|o| o.gateway.executors().healths())
        .unwrap_or_default();
    provider_health.retain(|p, _| unchanged(p));
    let executors = config.executors_carrying(&client, provider_health)?;
    let aliases = config.aliases()?;
    let mut health = before.map(|o| o.health.clone()).unwrap_or_default();
    health.retain_providers(unchanged);
    let combos = config.combos_carrying(&aliases, health)?;
    let keys = Keys::new(
        config.master_key.clone(),
        config
            .keys
            .iter()
            .map(|k| (k.name.clone(), k.key.clone()))
            .collect(),
    );
    let models = config.providers.iter().flat_map(|(provider, p)| {
        p.models()
            .iter()
            .map(move |m| (provider.as_str(), m.as_str()))
    });
    let health = combos.health();
    let mut builder = Gateway::builder(executors);
    if let Some(tenancy) = tenancy.clone() {
        builder = builder.tenancy(tenancy);
    }
    if let Some(auth) = config.metrics.auth {
        builder = builder.metrics_auth(auth);
    }
    let gateway = builder
        .keys(keys)
        .max_body_bytes(config.server.max_body_bytes)
        .body_read_timeout(config.server.body_read_timeout)
        .responses(responses.clone())
        .metering(metering.clone())
        .aliases(aliases)
        .idempotency(idempotency.clone())
        .cache(cache.clone())
        .combos(combos)
        .models(models)
        .build()
        .with_prometheus(prometheus);
    Ok(Configured {
        gateway,
        config: config.clone(),
        client,
        responses,
        metering,
        idempotency,
        cache,
        tenancy,
        health,
    })
}
