//! The keys and teams this instance knows: an in-process cache of the store, kept current
//! by polling it for changes, and the spend not yet written to it.
//!
//! A request's key is found in memory; the store is asked only for a key this instance has
//! not seen (and its answer remembered, a miss too). Every `refresh` one task writes the
//! spend accumulated since the last tick, starts new budget periods, and reads what
//! changed, by any instance, since the last read (with an overlap, so that a transaction
//! committed late is not missed): a key blocked, deleted or changed on one instance is
//! enforced on every other within one `refresh`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use http::StatusCode;
use xxhash_rust::xxh3::Xxh3Builder;

use super::access::ModelAccess;
use super::limits::Scope;
use super::model::{KeyRow, TeamRow, Token};
use super::prehashed::{Fingerprint, PrehashedMap};
use super::store::{Changes, SharedKeyStore};
use crate::auth::KeyId;
use crate::error::{ErrorKind, GatewayError};

/// Changes committed up to this long after their timestamp are still seen.
const OVERLAP_MS: i64 = 5_000;

/// A virtual key as requests see it.
#[derive(Debug)]
pub struct VirtualKey {
    /// What the store holds.
    pub row: KeyRow,
    /// The name metering and logs use: the alias, or `sk-...abcd`.
    pub name: KeyId,
    /// Its token and its team's id, shared by every request that needs them.
    pub(crate) token: Arc<str>,
    pub(crate) team: Option<Arc<str>>,
    pub(crate) access: ModelAccess,
    /// Its rate limits, when it has any.
    pub(crate) limits: Option<Scope>,
}

/// A team as requests see it.
#[derive(Debug)]
pub struct Team {
    /// What the store holds.
    pub row: TeamRow,
    pub(crate) access: ModelAccess,
    pub(crate) limits: Option<Scope>,
}

impl VirtualKey {
    pub(crate) fn new(row: KeyRow) -> Self {
        let name = row
            .key_alias
            .clone()
            .unwrap_or_else(|| row.key_name.clone());
        let limits = Scope::new(
            format!("key:{}", row.token),
            row.rpm_limit,
            row.tpm_limit,
            row.max_parallel_requests,
        );
        Self {
            access: ModelAccess::new(&row.models).unwrap_or_default(),
            name: KeyId(name.into()),
            token: row.token.as_str().into(),
            team: row.team_id.as_deref().map(Arc::from),
            limits,
            row,
        }
    }
}

impl Team {
    pub(crate) fn new(row: TeamRow) -> Self {
        let limits = Scope::new(
            format!("team:{}", row.team_id),
            row.rpm_limit,
            row.tpm_limit,
            row.max_parallel_requests,
        );
        Self {
            access: ModelAccess::new(&row.models).unwrap_or_default(),
            limits,
            row,
        }
    }
}

/// What a request made with a virtual key carries (a request extension): the key and its
/// team as they were when the request arrived.
#[derive(Debug, Clone)]
pub struct Tenant {
    /// The key.
    pub key: Arc<VirtualKey>,
    /// Its team, when the key has one that exists.
    pub team: Option<Arc<Team>>,
    /// The key's and the team's limits, those that have any.
    scopes: Arc<[Scope]>,
}

impl Tenant {
    fn new(key: Arc<VirtualKey>, team: Option<Arc<Team>>) -> Self {
        let team_limits = team.as_ref().and_then(|t| t.limits.as_ref());
        let scopes = key.limits.iter().chain(team_limits).cloned().collect();
        Self { key, team, scopes }
    }

    /// The limits the request counts against: its key's, then its team's.
    pub(crate) fn scopes(&self) -> &[Scope] {
        &self.scopes
    }

    /// Whether the key (and its team) may call `model`, as the client names it.
    pub fn allows_model(&self, model: &str) -> bool {
        self.key.access.allows(model) && self.team.as_ref().is_none_or(|t| t.access.allows(model))
    }

    /// Whether it may call every model.
    pub fn allows_every_model(&self) -> bool {
        self.key.access.allows_all() && self.team.as_ref().is_none_or(|t| t.access.allows_all())
    }
}

/// What unknown keys get while the store cannot be read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreDown {
    /// 503 `key_store_unavailable` (the default): the client may retry.
    #[default]
    Unavailable,
    /// 401, as if the key did not exist.
    Unauthorized,
}

/// USD spent and not yet in the rows this instance holds (by token or team id: ours, so
/// hashed with xxh3 rather than SipHash).
#[derive(Debug, Default)]
struct SpendBook {
    /// Since the last flush began.
    pending: HashMap<Arc<str>, f64, Xxh3Builder>,
    /// Being written by the current flush, until its rows are read back.
    flushing: HashMap<Arc<str>, f64, Xxh3Builder>,
}

impl SpendBook {
    fn unwritten(&self, id: &str) -> f64 {
        self.pending.get(id).copied().unwrap_or(0.0) + self.flushing.get(id).copied().unwrap_or(0.0)
    }
}

/// The keys and teams this instance knows.
pub struct Directory {
    store: SharedKeyStore,
    /// Secrets seen, by a keyed BLAKE3 fingerprint (the key is this process's, random),
    /// to their token: the SHA-256 keys are stored under is computed once per secret, not
    /// once per request (it was the largest part of a lookup without SHA instructions).
    tokens: moka::sync::Cache<[u8; 32], Arc<str>>,
    fingerprint_key: [u8; 32],
    /// The request path's one lookup: a secret's fingerprint to the tenant it was found to
    /// be, as of an `epoch`. Every change to the keys or teams held here moves the epoch
    /// on, and an entry of an earlier one is looked up again (`tokens`, `keys`, `teams`);
    /// so this map needs no invalidation of its own, and no expiry (moka's bookkeeping
    /// per read and the three lookups were most of a request's tenancy cost).
    resolved: RwLock<PrehashedMap<Fingerprint, (u64, Tenant)>>,
    epoch: AtomicU64,
    max_keys: usize,
    keys: moka::sync::Cache<Arc<str>, Arc<VirtualKey>>,
    /// Tokens the store does not have (asked within the last minute, or deleted).
    unknown: moka::sync::Cache<Arc<str>, ()>,
    teams: moka::sync::Cache<Arc<str>, Arc<Team>>,
    key_spend: Mutex<SpendBook>,
    team_spend: Mutex<SpendBook>,
    store_down: StoreDown,
    errors: metrics::Counter,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory")
            .field("keys", &self.keys.entry_count())
            .finish_non_exhaustive()
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Directory {
    /// A directory over `store` whose poll task runs every `refresh` (on the current
    /// tokio runtime) for as long as the directory lives.
    pub fn start(
        store: SharedKeyStore,
        refresh: Duration,
        max_keys: u64,
        store_down: StoreDown,
    ) -> Arc<Self> {
        let mut fingerprint_key = [0; 32];
        getrandom::fill(&mut fingerprint_key).expect("the OS has random numbers");
        let directory = Arc::new(Self {
            store,
            tokens: moka::sync::Cache::builder().max_capacity(max_keys).build(),
            fingerprint_key,
            resolved: RwLock::default(),
            epoch: AtomicU64::new(0),
            max_keys: usize::try_from(max_keys).unwrap_or(usize::MAX),
            keys: moka::sync::Cache::builder().max_capacity(max_keys).build(),
            unknown: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(60))
                .build(),
            teams: moka::sync::Cache::builder().max_capacity(max_keys).build(),
            key_spend: Mutex::default(),
            team_spend: Mutex::default(),
            store_down,
            errors: metrics::counter!("llm_tower_key_store_errors_total"),
        });
        tokio::spawn(poll(Arc::downgrade(&directory), refresh));
        directory
    }

    /// The store behind it.
    pub fn store(&self) -> &SharedKeyStore {
        &self.store
    }

    /// The tenant a presented secret is, when this instance already knows the answer.
    pub(crate) fn cached(&self, secret: &str) -> Option<Result<Tenant, GatewayError>> {
        let fingerprint = self.fingerprint(secret);
        let epoch = self.epoch.load(Ordering::Acquire);
        if let Some(tenant) = self.resolved(&fingerprint, epoch) {
            return Some(Ok(tenant));
        }
        let found = self.cached_token(&self.token_of(&fingerprint, secret));
        if let Some(Ok(tenant)) = &found {
            self.remember(fingerprint, epoch, tenant);
        }
        found
    }

    fn fingerprint(&self, secret: &str) -> Fingerprint {
        Fingerprint(*blake3::keyed_hash(&self.fingerprint_key, secret.as_bytes()).as_bytes())
    }

    /// The tenant a secret was found to be, unless something changed since (or the key
    /// has expired: that is for [`admit`] to say).
    fn resolved(&self, fingerprint: &Fingerprint, epoch: u64) -> Option<Tenant> {
        let resolved = self.resolved.read().expect("not poisoned");
        let (at, tenant) = resolved.get(fingerprint)?;
        let expired = || tenant.key.row.expires_ms.is_some_and(|at| at <= now_ms());
        (*at == epoch && !expired()).then(|| tenant.clone())
    }

    /// Remembers what a secret was found to be while the directory was at `epoch` (read
    /// before the lookup began, so that a change made meanwhile makes it stale).
    fn remember(&self, fingerprint: Fingerprint, epoch: u64, tenant: &Tenant) {
        let mut resolved = self.resolved.write().expect("not poisoned");
        if resolved.len() >= self.max_keys && !resolved.contains_key(&fingerprint) {
            // Full: start over (each secret in use is looked up once more).
            resolved.clear();
        }
        resolved.insert(fingerprint, (epoch, tenant.clone()));
    }

    /// What the request path sees has changed: every remembered tenant is stale.
    fn changed(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// The token (SHA-256 hex) of a secret, remembered by its fingerprint.
    fn token_of(&self, fingerprint: &Fingerprint, secret: &str) -> Arc<str> {
        if let Some(token) = self.tokens.get(&fingerprint.0) {
            return token;
        }
        let token: Arc<str> = Token::of(secret).as_str().into();
        self.tokens.insert(fingerprint.0, token.clone());
        token
    }

    fn cached_token(&self, token: &str) -> Option<Result<Tenant, GatewayError>> {
        if let Some(key) = self.keys.get(token) {
            let team = key
                .row
                .team_id
                .as_deref()
                .map(|id| self.teams.get(id).ok_or(()));
            return match team {
                // The team is not loaded yet: the caller fetches it.
                Some(Err(())) => None,
                Some(Ok(team)) => Some(admit(key, Some(team))),
                None => Some(admit(key, None)),
            };
        }
        if self.unknown.contains_key(token) {
            return Some(Err(GatewayError::unauthorized(true)));
        }
        None
    }

    /// The tenant a presented secret is, asking the store when needed.
    pub(crate) async fn fetch(&self, secret: &str) -> Result<Tenant, GatewayError> {
        let fingerprint = self.fingerprint(secret);
        let epoch = self.epoch.load(Ordering::Acquire);
        let token = self.token_of(&fingerprint, secret);
        let found = self.fetch_token(token).await;
        if let Ok(tenant) = &found {
            self.remember(fingerprint, epoch, tenant);
        }
        found
    }

    async fn fetch_token(&self, token: Arc<str>) -> Result<Tenant, GatewayError> {
        if let Some(known) = self.cached_token(&token) {
            return known;
        }
        let key = match self.keys.get(&token) {
            Some(key) => key,
            None => match self.store.key(&token).await {
                Ok(Some(row)) => {
                    let key = Arc::new(VirtualKey::new(row));
                    self.keys.insert(token.clone(), key.clone());
                    key
                }
                Ok(None) => {
                    self.unknown.insert(token, ());
                    return Err(GatewayError::unauthorized(true));
                }
                Err(e) => return Err(self.unreadable(&e)),
            },
        };
        let team = match key.row.team_id.as_deref() {
            None => None,
            Some(id) => match self.teams.get(id) {
                Some(team) => Some(team),
                None => match self.store.team(id).await {
                    Ok(row) => {
                        // A key may name a team that does not exist (the master key may
                        // create one so): it has no team limits.
                        let team = Arc::new(Team::new(row.unwrap_or_else(|| TeamRow {
                            team_id: id.to_owned(),
                            ..TeamRow::default()
                        })));
                        self.teams.insert(id.into(), team.clone());
                        Some(team)
                    }
                    Err(e) => return Err(self.unreadable(&e)),
                },
            },
        };
        admit(key, team)
    }

    fn unreadable(&self, e: &crate::store::StoreError) -> GatewayError {
        self.errors.increment(1);
        tracing::warn!(error = %e, "virtual keys: the key store cannot be read");
        match self.store_down {
            StoreDown::Unauthorized => GatewayError::unauthorized(true),
            StoreDown::Unavailable => GatewayError::new(
                ErrorKind::Internal,
                StatusCode::SERVICE_UNAVAILABLE,
                "service_unavailable_error",
                "The key store cannot be read; try again shortly.",
            )
            .with_code("key_store_unavailable"),
        }
    }

    /// Puts a row the admin API just wrote in place at once (other instances see it at
    /// their next poll).
    pub(crate) fn key_changed(&self, row: KeyRow) {
        let token: Arc<str> = row.token.as_str().into();
        self.unknown.invalidate(&token);
        self.keys.insert(token, Arc::new(VirtualKey::new(row)));
        self.changed();
    }

    /// Forgets deleted keys at once.
    pub(crate) fn keys_deleted(&self, tokens: &[String]) {
        for token in tokens {
            let token: Arc<str> = token.as_str().into();
            self.keys.invalidate(&token);
            self.unknown.insert(token, ());
        }
        self.changed();
    }

    /// Puts a team the admin API just wrote in place at once.
    pub(crate) fn team_changed(&self, row: TeamRow) {
        self.teams
            .insert(row.team_id.as_str().into(), Arc::new(Team::new(row)));
        self.changed();
    }

    /// Forgets deleted teams at once.
    pub(crate) fn teams_deleted(&self, ids: &[String]) {
        for id in ids {
            self.teams.invalidate(id.as_str());
        }
        self.changed();
    }

    /// Adds what a request cost to its key's and team's spend.
    pub(crate) fn spent(&self, tenant: &Tenant, usd: f64) {
        if usd <= 0.0 || !usd.is_finite() {
            return;
        }
        *self
            .key_spend
            .lock()
            .expect("not poisoned")
            .pending
            .entry(tenant.key.token.clone())
            .or_default() += usd;
        if let Some(team) = &tenant.key.team {
            *self
                .team_spend
                .lock()
                .expect("not poisoned")
                .pending
                .entry(team.clone())
                .or_default() += usd;
        }
    }

    /// The key's spend in its current budget period, as far as this instance knows.
    pub(crate) fn key_spend(&self, key: &KeyRow) -> f64 {
        period_spend(
            key.spend,
            key.budget_reset_at_ms,
            &self.key_spend,
            &key.token,
        )
    }

    /// The team's spend in its current budget period.
    pub(crate) fn team_spend(&self, team: &TeamRow) -> f64 {
        period_spend(
            team.spend,
            team.budget_reset_at_ms,
            &self.team_spend,
            &team.team_id,
        )
    }

    /// One tick: write the spend, read the changes. Returns the next `since`.
    async fn tick(&self, since: i64) -> Result<i64, crate::store::StoreError> {
        let take = |book: &Mutex<SpendBook>| {
            let mut book = book.lock().expect("not poisoned");
            let pending = std::mem::take(&mut book.pending);
            for (id, usd) in &pending {
                *book.flushing.entry(id.clone()).or_default() += usd;
            }
            pending
                .into_iter()
                .map(|(id, usd)| (id.to_string(), usd))
                .collect::<Vec<_>>()
        };
        let keys = take(&self.key_spend);
        let teams = take(&self.team_spend);
        if let Err(e) = self.store.add_spend(&keys, &teams).await {
            // Not written: it stays pending for the next tick.
            for book in [&self.key_spend, &self.team_spend] {
                let mut book = book.lock().expect("not poisoned");
                let flushing = std::mem::take(&mut book.flushing);
                for (id, usd) in flushing {
                    *book.pending.entry(id).or_default() += usd;
                }
            }
            return Err(e);
        }
        let changes = self.store.changes(since).await;
        if let Ok(changes) = &changes {
            self.apply(changes);
        }
        // Written (and, unless the read failed, read back): no longer unwritten.
        self.key_spend
            .lock()
            .expect("not poisoned")
            .flushing
            .clear();
        self.team_spend
            .lock()
            .expect("not poisoned")
            .flushing
            .clear();
        changes.map(|c| c.now_ms - OVERLAP_MS)
    }

    fn apply(&self, changes: &Changes) {
        for row in &changes.keys {
            self.key_changed(row.clone());
        }
        self.keys_deleted(&changes.deleted_keys);
        for row in &changes.teams {
            self.team_changed(row.clone());
        }
        self.teams_deleted(&changes.deleted_teams);
    }

    /// Writes the spend not yet written (for a graceful shutdown).
    pub async fn flush(&self) {
        if let Err(e) = self.tick(i64::MAX).await {
            tracing::warn!(error = %e, "virtual keys: spend not written at shutdown");
        }
    }
}

/// The stored spend (0 once its period is over) and what this instance has not written.
fn period_spend(stored: f64, reset_at_ms: Option<i64>, book: &Mutex<SpendBook>, id: &str) -> f64 {
    let stored = if due(reset_at_ms) { 0.0 } else { stored };
    stored + book.lock().expect("not poisoned").unwritten(id)
}

/// Whether a budget period ending at `reset_at_ms` is over.
fn due(reset_at_ms: Option<i64>) -> bool {
    reset_at_ms.is_some_and(|at| at <= now_ms())
}

/// The key, unless it or its team may not be used now.
fn admit(key: Arc<VirtualKey>, team: Option<Arc<Team>>) -> Result<Tenant, GatewayError> {
    let refused = |error_type: &str, message: String| {
        GatewayError::new(
            ErrorKind::Unauthorized,
            StatusCode::UNAUTHORIZED,
            error_type,
            message,
        )
    };
    if key.row.blocked {
        return Err(refused(
            "auth_error",
            "Authentication Error, Key is blocked. Update via `/key/unblock` if you're an admin."
                .into(),
        )
        .with_code("key_blocked"));
    }
    if let Some(expires) = key.row.expires_ms.filter(|&at| at <= now_ms()) {
        return Err(refused(
            "expired_key",
            format!(
                "Authentication Error - Expired Key. Key Expiry time {} and current time {}",
                super::api::timestamp(expires),
                super::api::timestamp(now_ms())
            ),
        )
        .with_param(key.row.key_name.clone())
        .with_code("key_expired"));
    }
    if let Some(team) = team.as_ref().filter(|t| t.row.blocked) {
        return Err(refused(
            "auth_error",
            format!(
                "Authentication Error, Team={} is blocked. Update via `/team/unblock` if you're an admin.",
                team.row.team_id
            ),
        )
        .with_code("team_blocked"));
    }
    Ok(Tenant::new(key, team))
}

async fn poll(directory: Weak<Directory>, refresh: Duration) {
    // The first read loads every key, so that none waits for the store.
    let mut since = 0;
    let mut logged: Option<tokio::time::Instant> = None;
    loop {
        let Some(dir) = directory.upgrade() else {
            return;
        };
        match dir.tick(since).await {
            Ok(next) => since = next,
            Err(e) => {
                dir.errors.increment(1);
                if logged.is_none_or(|at| at.elapsed() >= Duration::from_secs(10)) {
                    logged = Some(tokio::time::Instant::now());
                    tracing::warn!(error = %e, "virtual keys: the key store cannot be read; known keys keep working");
                }
            }
        }
        drop(dir);
        tokio::time::sleep(refresh).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenancy::store::{KeyStore, SqliteKeyStore};

    fn row(secret: &str, team: Option<&str>) -> KeyRow {
        KeyRow {
            token: Token::of(secret).as_str().to_owned(),
            key_name: "sk-...test".into(),
            team_id: team.map(str::to_owned),
            rpm_limit: Some(10),
            ..KeyRow::default()
        }
    }

    #[tokio::test]
    async fn a_remembered_tenant_is_looked_up_again_after_any_change() {
        let store = Arc::new(SqliteKeyStore::open(std::path::Path::new(":memory:")).expect("db"));
        store
            .insert_key(&row("sk-a", Some("t")))
            .await
            .expect("insert");
        let directory =
            Directory::start(store, Duration::from_secs(3600), 100, StoreDown::default());
        let first = directory.fetch("sk-a").await.expect("known");
        assert_eq!(
            first.scopes().len(),
            1,
            "the key's limits (its team has none)"
        );
        let again = directory
            .cached("sk-a")
            .expect("remembered")
            .expect("admitted");
        // The same key (the first full read, racing the fetch, may have replaced the entry
        // with an equal one).
        assert_eq!(first.key.row, again.key.row);

        // A change of the key, of a team, or a deletion: the next request sees it.
        let mut blocked = row("sk-a", Some("t"));
        blocked.blocked = true;
        directory.key_changed(blocked);
        let err = directory
            .cached("sk-a")
            .expect("known")
            .expect_err("blocked");
        assert_eq!(err.status(), StatusCode::UNAUTHORIZED);
        directory.key_changed(row("sk-a", Some("t")));
        assert!(directory.cached("sk-a").expect("known").is_ok());
        directory.team_changed(TeamRow {
            team_id: "t".into(),
            rpm_limit: Some(5),
            ..TeamRow::default()
        });
        let tenant = directory.cached("sk-a").expect("known").expect("admitted");
        assert_eq!(tenant.scopes().len(), 2, "now the team's too");
        directory.team_changed(TeamRow {
            team_id: "t".into(),
            blocked: true,
            ..TeamRow::default()
        });
        assert!(directory.cached("sk-a").expect("known").is_err());
        directory.teams_deleted(&["t".into()]);
        directory.keys_deleted(&[Token::of("sk-a").as_str().to_owned()]);
        assert!(directory.cached("sk-a").expect("known").is_err());

        // What was looked up before a change and remembered after it is not served.
        let secret = "sk-b";
        let epoch = directory.epoch.load(Ordering::Acquire);
        directory.changed();
        directory.remember(directory.fingerprint(secret), epoch, &first);
        assert!(directory
            .resolved(
                &directory.fingerprint(secret),
                directory.epoch.load(Ordering::Acquire)
            )
            .is_none());
    }
}
