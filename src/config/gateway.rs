//! The whole gateway as the config describes it: each section converted into its
//! feature's settings, each layer built from those.

use super::{Config, ConfigError};
use crate::auth::Keys;
use crate::cache::CacheLayer;
use crate::gateway::Gateway;
use crate::idempotency::IdempotencyLayer;
use crate::metering::{MeteringLayer, SinkKind};
use crate::responses::ResponsesLayer;
use crate::settings::SettingsError;
use crate::tenancy::{PostgresKeyStore, SharedKeyStore, SqliteKeyStore, Tenancy};

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
        SinkKind::Sqlite => {
            std::sync::Arc::new(SqliteKeyStore::open(&metering.sqlite_path).map_err(err)?)
        }
        SinkKind::Postgres => std::sync::Arc::new(
            PostgresKeyStore::new(metering.postgres_url.as_deref().unwrap_or_default())
                .map_err(err)?,
        ),
    };
    Tenancy::new(&config.tenancy, store, config.redis.as_ref())
        .map(Some)
        .map_err(|e| ConfigError::from(e.within("tenancy")))
}

impl Gateway {
    /// Builds the gateway a validated config describes (inside a tokio runtime: the usage
    /// writer is a task). It installs no `metrics` recorder; see
    /// [`Gateway::with_prometheus`].
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        let section =
            |name: &'static str| move |e: SettingsError| ConfigError::from(e.within(name));
        let keys = Keys::new(
            config.master_key.clone(),
            config
                .keys
                .iter()
                .map(|k| (k.name.clone(), k.key.clone()))
                .collect(),
        );
        let executors = config.executors()?;
        let aliases = config.aliases()?;
        let combos = config.combos(&aliases)?;
        let models = config.providers.iter().flat_map(|(provider, p)| {
            p.models()
                .iter()
                .map(move |m| (provider.as_str(), m.as_str()))
        });
        let redis = config.redis.as_ref();
        let mut builder = Gateway::builder(executors);
        if let Some(tenancy) = tenancy(config)? {
            builder = builder.tenancy(tenancy);
        }
        if let Some(auth) = config.metrics.auth {
            builder = builder.metrics_auth(auth);
        }
        Ok(builder
            .keys(keys)
            .max_body_bytes(config.server.max_body_bytes)
            .body_read_timeout(config.server.body_read_timeout)
            .responses(
                ResponsesLayer::from_settings(&config.responses, redis)
                    .map_err(section("responses"))?,
            )
            .metering(MeteringLayer::from_settings(&config.metering).map_err(section("metering"))?)
            .aliases(aliases)
            .idempotency(
                IdempotencyLayer::from_settings(&config.idempotency, redis)
                    .map_err(section("idempotency"))?,
            )
            .cache(
                CacheLayer::from_settings(&config.cache, redis, &config.upstream)
                    .map_err(section("cache"))?,
            )
            .combos(combos)
            .models(models)
            .build())
    }
}
