//! Watching for a new config: the files' metadata polled, and `SIGHUP`.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use super::Reloader;

/// How often the files are looked at. A change is applied once the files have stayed the
/// same for one more look, so that an editor's several writes make one reload.
const POLL: Duration = Duration::from_millis(500);

/// What a file looked like: modified when, how long (`None`: missing).
type Stamp = Option<(SystemTime, u64)>;

fn stamps(files: &[PathBuf]) -> Vec<Stamp> {
    files
        .iter()
        .map(|file| {
            let meta = std::fs::metadata(file).ok()?;
            Some((meta.modified().ok()?, meta.len()))
        })
        .collect()
}

impl Reloader {
    /// Reloads when the config file, its overlay or an included LiteLLM file changes
    /// (polled every 500 ms, applied once the files are quiet) and on `SIGHUP` (at once).
    /// The `SIGHUP` handler is installed by this call (inside a tokio runtime), before the
    /// future first runs, so that a signal sent as soon as the server listens reloads
    /// rather than kills; spawn the future, which runs until dropped.
    pub fn watch(self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut hangup = hangup();
        async move {
            let mut tick = tokio::time::interval(POLL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut files = self.watched().await;
            let mut last = stamps(&files);
            let mut settling = false;
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        let now = stamps(&files);
                        if now != last {
                            last = now;
                            settling = true;
                            continue;
                        }
                        if !settling {
                            continue;
                        }
                        settling = false;
                        if !self.files_changed().await {
                            continue;
                        }
                    }
                    () = recv(&mut hangup) => {
                        tracing::info!("SIGHUP: reloading the config");
                    }
                }
                // Refusals are logged and kept in the status by `reload`.
                let _ = self.reload().await;
                // A new `litellm_config:` file is watched from now on.
                let watched = self.watched().await;
                if watched != files {
                    files = watched;
                    last = stamps(&files);
                }
            }
        }
    }
}

#[cfg(unix)]
type Hangup = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangup = ();

#[cfg(unix)]
fn hangup() -> Hangup {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()
}

#[cfg(not(unix))]
fn hangup() -> Hangup {}

#[cfg(unix)]
async fn recv(hangup: &mut Hangup) {
    match hangup {
        Some(signal) => {
            signal.recv().await;
        }
        None => std::future::pending().await,
    }
}

#[cfg(not(unix))]
async fn recv(_: &mut Hangup) {
    std::future::pending().await
}
