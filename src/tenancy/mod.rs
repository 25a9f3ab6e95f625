//! Virtual keys: keys created and revoked at run time through LiteLLM's key API, each
//! limited in models, requests, tokens and money, alone and as part of a team.
//!
//! - **Keys** live in the ledger's database ([`store`]: SQLite by default, PostgreSQL for
//!   many instances) as a SHA-256 hash and a short display name; the secret is returned
//!   once, by `POST /key/generate`. The configured keys keep working; the master key can do
//!   everything, and it alone may manage keys ([`api`]).
//! - **Lookup** ([`Directory`]): a request's key is found in memory; the database is asked
//!   only for a key this instance has not seen. Every `refresh` each instance writes the
//!   spend it metered and reads what any instance changed, so that a key blocked or deleted
//!   anywhere is refused everywhere within one `refresh`. While the database is down, known
//!   keys keep working.
//! - **Enforcement** ([`LimitsLayer`], inside metering so that refusals are recorded): model
//!   access, budgets (spend from the metering records, cache hits free), RPM, TPM and
//!   parallel requests per key and per team, in memory or in Redis (one script per
//!   request). TPM reserves an estimate and is corrected to the metered tokens.
//!
//! ```
//! use llm_tower::tenancy::{SqliteKeyStore, Tenancy, TenancySettings};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let store = SqliteKeyStore::open(std::path::Path::new(":memory:")).unwrap();
//! let tenancy = Tenancy::new(&TenancySettings::default(), std::sync::Arc::new(store), None).unwrap();
//! let keys = llm_tower::auth::Keys::new(Some("sk-master".into()), vec![]).with_lookup(tenancy.lookup());
//! let layer = tenancy.layer(); // between metering and the layers below it
//! # let _ = (keys, layer);
//! # });
//! ```

mod access;
pub mod api;
mod directory;
mod duration;
mod limits;
mod model;
mod prehashed;
mod service;
mod settings;
pub mod store;

use std::sync::Arc;

use http::Extensions;

pub use self::directory::{Directory, StoreDown, Team, Tenant, VirtualKey};
pub use self::limits::RedisDown;
use self::limits::{Limiter, MemoryLimiter, RedisLimiter};
pub use self::model::{display_name, hash_key, KeyRow, TeamRow};
pub use self::service::{Limits, LimitsLayer};
pub use self::settings::{LimitsStore, TenancySettings};
pub use self::store::{KeyStore, PostgresKeyStore, SharedKeyStore, SqliteKeyStore};
use crate::auth::{self, Authorized, KeyLookup, LookupFuture};
use crate::error::GatewayError;
use crate::settings::SettingsError;
use crate::store::RedisSettings;

/// Virtual keys, built: the directory of keys and the limiter, shared by the auth lookup,
/// the enforcement layer and the management API.
#[derive(Clone)]
pub struct Tenancy {
    shared: Arc<service::Shared>,
}

impl std::fmt::Debug for Tenancy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tenancy").finish_non_exhaustive()
    }
}

impl Tenancy {
    /// Virtual keys in `store`, with limits counted in Redis when `redis` is given (and
    /// `settings.limits` does not say `memory`). Starts the directory's poll task on the
    /// current tokio runtime.
    pub fn new(
        settings: &TenancySettings,
        store: SharedKeyStore,
        redis: Option<&RedisSettings>,
    ) -> Result<Self, SettingsError> {
        settings.validate()?;
        let directory = Directory::start(
            store,
            settings.refresh,
            settings.max_cached_keys,
            settings.store_down,
        );
        let limiter: Arc<dyn Limiter> = match (settings.limits, redis) {
            (Some(LimitsStore::Memory), _) | (None, None) => {
                Arc::new(MemoryLimiter::new(settings.window))
            }
            (Some(LimitsStore::Redis), None) => {
                return Err(SettingsError::new(
                    "limits",
                    "`redis` needs the `redis:` section",
                ))
            }
            (_, Some(redis)) => Arc::new(RedisLimiter::new(
                redis
                    .connect()
                    .map_err(|e| SettingsError::new("limits", e.to_string()))?,
                settings.key_prefix.clone(),
                settings.window,
                settings.redis_down,
            )),
        };
        Ok(Self {
            shared: Arc::new(service::Shared { directory, limiter }),
        })
    }

    /// The keys this instance knows.
    pub fn directory(&self) -> &Arc<Directory> {
        &self.shared.directory
    }

    /// What [`auth::Keys::with_lookup`] asks about keys that are not configured.
    pub fn lookup(&self) -> Arc<dyn KeyLookup> {
        Arc::new(Lookup(self.shared.directory.clone()))
    }

    /// The enforcement layer.
    pub fn layer(&self) -> LimitsLayer {
        LimitsLayer::new(self.shared.clone())
    }
}

struct Lookup(Arc<Directory>);

/// Puts a tenant on a request (and its team, for metering); returns the key's name.
fn grant(tenant: Tenant, extensions: &mut Extensions) -> auth::KeyId {
    if let Some(team) = &tenant.key.team {
        extensions.insert(auth::Team(team.clone()));
    }
    let id = tenant.key.name.clone();
    extensions.insert(tenant);
    id
}

impl KeyLookup for Lookup {
    fn cached(
        &self,
        key: &str,
        extensions: &mut Extensions,
    ) -> Option<Result<auth::KeyId, GatewayError>> {
        self.0
            .cached(key)
            .map(|found| found.map(|tenant| grant(tenant, extensions)))
    }

    fn fetch<'a>(&'a self, key: &'a str) -> LookupFuture<'a> {
        Box::pin(async move {
            let tenant = self.0.fetch(key).await?;
            let mut extensions = Extensions::new();
            let id = grant(tenant, &mut extensions);
            Ok(Authorized { id, extensions })
        })
    }
}
