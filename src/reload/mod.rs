//! Hot reload: the running [`Gateway`] replaced by one built from a changed config,
//! atomically and without dropping a request.
//!
//! A [`Reloader`] holds the current gateway in an [`ArcSwap`]; [`Reloadable`] serves each
//! request with the gateway current when the request arrives, so requests and streams in
//! flight finish on the gateway they started on while new ones take the new one. A
//! rebuild carries over every part whose settings did not change
//! ([`Configured::rebuild`]): breaker health, the cache, idempotency and responses
//! stores, rate-limit counters and the usage writer.
//!
//! The config is reloaded on `SIGHUP`, when the config file, its admin overlay or an
//! included LiteLLM file changes ([`Reloader::watch`]), and when the admin API changes it
//! ([`Reloader::apply`]). A config that fails validation is rejected with the errors of a
//! start (logged, and returned by [`Reloader::status`]) and the running one keeps serving.
//! What only a restart can change (`listen`, the connection settings of `server`) is
//! logged as such. `llm_tower_config_reloads_total{outcome="applied"|"refused"}` counts
//! them.

mod source;
mod watch;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{Request, Response};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_yaml_ng::Value;
use tower::Service;

pub use self::source::ConfigSource;
use self::source::Snapshot;
use crate::body::{Body, BoxError};
use crate::config::{Config, ConfigError, Configured};
use crate::gateway::Gateway;

/// The running gateway and where its config comes from.
#[derive(Clone)]
pub struct Reloader {
    inner: Arc<Inner>,
}

struct Inner {
    current: ArcSwap<Configured>,
    source: ConfigSource,
    /// One reload at a time; holds the files as last applied.
    applied: tokio::sync::Mutex<Snapshot>,
    status: Mutex<ReloadStatus>,
    /// `--listen`, which wins over the file's `listen` at every load.
    listen: Option<SocketAddr>,
    /// The config the server started with (its `listen` and `server` stay until a
    /// restart).
    started: Config,
}

/// How the last reloads went.
#[derive(Debug, Clone, serde::Serialize)]
#[non_exhaustive]
pub struct ReloadStatus {
    /// Counts the configs applied, from 1 for the one the gateway started with.
    pub generation: u64,
    /// When the running config was applied (seconds since the Unix epoch).
    pub applied_at: u64,
    /// Why the last attempt to reload was refused, when it was (cleared by a success).
    pub last_error: Option<String>,
    /// Fields of the running config that differ from those the server started with and
    /// take effect only after a restart.
    pub restart_needed: Vec<String>,
}

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reloaded {
    /// A new config is serving, with this generation.
    Applied(u64),
    /// The files held the config already serving.
    Unchanged,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Reloader {
    /// Reads `source` and builds its gateway (inside a tokio runtime), which serves until
    /// a reload replaces it; `listen` (the `--listen` flag) wins over the file's, now and
    /// at every reload.
    pub fn open(
        source: ConfigSource,
        listen: Option<SocketAddr>,
        prometheus: Option<PrometheusHandle>,
    ) -> Result<Self, ConfigError> {
        let snapshot = source.read()?;
        let config = load(&source, snapshot.merged(), listen)?;
        let configured = Configured::new(&config, prometheus)?;
        let started = configured.config().clone();
        Ok(Self {
            inner: Arc::new(Inner {
                current: ArcSwap::from_pointee(configured),
                source,
                applied: tokio::sync::Mutex::new(snapshot),
                status: Mutex::new(ReloadStatus {
                    generation: 1,
                    applied_at: now(),
                    last_error: None,
                    restart_needed: Vec::new(),
                }),
                listen,
                started,
            }),
        })
    }

    /// The gateway serving now, with its config.
    pub fn current(&self) -> Arc<Configured> {
        self.inner.current.load_full()
    }

    /// The config serving now.
    pub fn config(&self) -> Config {
        self.current().config().clone()
    }

    /// Where the config comes from.
    pub fn source(&self) -> &ConfigSource {
        &self.inner.source
    }

    /// How the last reloads went.
    pub fn status(&self) -> ReloadStatus {
        self.inner.status.lock().expect("not poisoned").clone()
    }

    /// The service that answers each request with the gateway current when it arrives.
    pub fn service(&self) -> Reloadable {
        Reloadable {
            reloader: self.clone(),
            ready: None,
        }
    }

    /// The running config's YAML tree (the config file with the overlay applied), with
    /// `os.environ/NAME` references as written.
    pub async fn document(&self) -> Value {
        self.inner.applied.lock().await.merged()
    }

    /// The config file's tree and the overlay's, as last applied.
    pub async fn layers(&self) -> (Value, Value) {
        let applied = self.inner.applied.lock().await;
        (applied.base.clone(), applied.overlay.clone())
    }

    /// Reads the files again and applies the config they hold if it is not the running
    /// one.
    pub async fn reload(&self) -> Result<Reloaded, ConfigError> {
        let mut applied = self.inner.applied.lock().await;
        let snapshot = self.inner.source.read().map_err(|e| self.refused(e))?;
        let config = load(&self.inner.source, snapshot.merged(), self.inner.listen)
            .map_err(|e| self.refused(e))?;
        let outcome = if config == *self.current().config() {
            self.inner.status.lock().expect("not poisoned").last_error = None;
            Reloaded::Unchanged
        } else {
            let built = self.build(&config).map_err(|e| self.refused(e))?;
            Reloaded::Applied(self.install(built))
        };
        *applied = snapshot;
        Ok(outcome)
    }

    /// Whether the files differ from those last applied.
    pub(crate) async fn files_changed(&self) -> bool {
        let applied = self.inner.applied.lock().await.fingerprint;
        self.inner
            .source
            .read()
            .map_or(true, |now| now.fingerprint != applied)
    }

    /// The files to watch.
    pub(crate) async fn watched(&self) -> Vec<std::path::PathBuf> {
        let applied = self.inner.applied.lock().await;
        self.inner.source.watched(&applied)
    }

    /// Changes the running config: `change` edits its YAML tree (see
    /// [`Reloader::document`]); the result is validated and built like a file at start,
    /// then written as the overlay beside the config file (so that it survives a
    /// restart) and served. On any error nothing changes and the error is returned.
    pub async fn apply(
        &self,
        change: impl FnOnce(&mut Value) -> Result<(), ConfigError>,
    ) -> Result<Reloaded, ConfigError> {
        let mut applied = self.inner.applied.lock().await;
        let mut desired = applied.merged();
        change(&mut desired)?;
        let config = load(&self.inner.source, desired.clone(), self.inner.listen)
            .map_err(|e| self.refused(e))?;
        let built = if config == *self.current().config() {
            None
        } else {
            Some(self.build(&config).map_err(|e| self.refused(e))?)
        };
        self.inner
            .source
            .write_overlay(&applied.base, &desired)
            .map_err(|e| self.refused(e))?;
        let mut snapshot = self.inner.source.read().map_err(|e| self.refused(e))?;
        if snapshot.base != applied.base {
            // The config file changed meanwhile: what is served is not what the files
            // hold, so the next look at them reloads.
            snapshot.fingerprint = 0;
        }
        *applied = snapshot;
        Ok(match built {
            Some(built) => Reloaded::Applied(self.install(built)),
            None => Reloaded::Unchanged,
        })
    }

    /// Validates a tree as a whole config without applying it.
    pub fn validate(&self, document: Value) -> Result<Config, ConfigError> {
        load(&self.inner.source, document, self.inner.listen)
    }

    fn build(&self, config: &Config) -> Result<Configured, ConfigError> {
        self.current().rebuild(config)
    }

    /// Serves `configured` from now on; returns its generation.
    fn install(&self, configured: Configured) -> u64 {
        let before = self.config();
        let restart = restart_needed(&self.inner.started, configured.config());
        for field in &restart {
            tracing::warn!(field = %field, "config change takes effect only after a restart");
        }
        self.inner.current.store(Arc::new(configured));
        metrics::counter!("llm_tower_config_reloads_total", "outcome" => "applied").increment(1);
        let mut status = self.inner.status.lock().expect("not poisoned");
        status.generation += 1;
        status.applied_at = now();
        status.last_error = None;
        status.restart_needed = restart;
        tracing::info!(
            generation = status.generation,
            changes = %changes(&before, self.current().config()),
            "config reloaded"
        );
        status.generation
    }

    /// Records and logs a refused reload; the running config keeps serving.
    fn refused(&self, err: ConfigError) -> ConfigError {
        tracing::error!(error = %err, "config reload refused: the running config keeps serving");
        metrics::counter!("llm_tower_config_reloads_total", "outcome" => "refused").increment(1);
        self.inner.status.lock().expect("not poisoned").last_error = Some(err.to_string());
        err
    }
}

/// The config of a tree, `--listen` applied.
fn load(
    source: &ConfigSource,
    merged: Value,
    listen: Option<SocketAddr>,
) -> Result<Config, ConfigError> {
    let mut config = source.config(merged)?;
    if let Some(listen) = listen {
        config.listen = listen;
    }
    Ok(config)
}

/// The fields that changed from `before` to `after` that the running server cannot take.
fn restart_needed(before: &Config, after: &Config) -> Vec<String> {
    let (a, b) = (&before.server, &after.server);
    let mut fields = Vec::new();
    if before.listen != after.listen {
        fields.push("listen".to_owned());
    }
    let connection = [
        (
            "server.header_read_timeout",
            a.header_read_timeout != b.header_read_timeout,
        ),
        ("server.idle_timeout", a.idle_timeout != b.idle_timeout),
        (
            "server.max_connections",
            a.max_connections != b.max_connections,
        ),
        (
            "server.http2_max_concurrent_streams",
            a.http2_max_concurrent_streams != b.http2_max_concurrent_streams,
        ),
        (
            "server.http2_keep_alive_interval",
            a.http2_keep_alive_interval != b.http2_keep_alive_interval,
        ),
        (
            "server.shutdown_grace_period",
            a.shutdown_grace_period != b.shutdown_grace_period,
        ),
    ];
    fields.extend(
        connection
            .into_iter()
            .filter(|(_, changed)| *changed)
            .map(|(name, _)| name.to_owned()),
    );
    fields
}

/// The providers, aliases and combos added (+), removed (-) and changed (~), for the log.
fn changes(before: &Config, after: &Config) -> String {
    fn diff<V: PartialEq>(
        kind: &str,
        a: &std::collections::BTreeMap<String, V>,
        b: &std::collections::BTreeMap<String, V>,
        out: &mut Vec<String>,
    ) {
        for (name, value) in b {
            match a.get(name) {
                None => out.push(format!("+{kind} {name}")),
                Some(old) if old != value => out.push(format!("~{kind} {name}")),
                Some(_) => {}
            }
        }
        out.extend(
            a.keys()
                .filter(|name| !b.contains_key(*name))
                .map(|name| format!("-{kind} {name}")),
        );
    }
    let mut out = Vec::new();
    diff("provider", &before.providers, &after.providers, &mut out);
    diff("alias", &before.aliases, &after.aliases, &mut out);
    diff("combo", &before.combos, &after.combos, &mut out);
    if out.is_empty() {
        "settings".to_owned()
    } else {
        out.join(", ")
    }
}

/// Serves each request with the gateway current when it arrives (see [`Reloader`]).
pub struct Reloadable {
    reloader: Reloader,
    /// The gateway made ready by `poll_ready`, for the next `call`.
    ready: Option<Gateway>,
}

impl Clone for Reloadable {
    fn clone(&self) -> Self {
        Self {
            reloader: self.reloader.clone(),
            ready: None,
        }
    }
}

impl<B> Service<Request<B>> for Reloadable
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = <Gateway as Service<Request<B>>>::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // Taken afresh each time: the gateway current when the request is about to go.
        let gateway = self
            .ready
            .insert(self.reloader.inner.current.load().gateway().clone());
        <Gateway as Service<Request<B>>>::poll_ready(gateway, cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let mut gateway = self.ready.take().expect("poll_ready is called before call");
        gateway.call(req)
    }
}
