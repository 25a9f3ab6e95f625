//! Where the running config comes from: the config file as its owner wrote it, and the
//! overlay of changes made through the admin API beside it.
//!
//! The overlay (`NAME.admin.yaml` beside `NAME.yaml`) is a JSON merge patch (RFC 7386)
//! over the config file's YAML tree: mappings merge key by key, `null` removes a key,
//! anything else replaces. The config file is never rewritten, so its comments and layout
//! stay its owner's; the overlay holds only what differs. A LiteLLM config file is taken
//! as `litellm_config: FILE`, so that the overlay adds our sections beside it.

use std::path::{Path, PathBuf};

use serde_yaml_ng::{Mapping, Value};

use crate::config::{Config, ConfigError};

/// The config file and its overlay.
#[derive(Debug, Clone)]
pub struct ConfigSource {
    file: PathBuf,
    overlay: PathBuf,
}

/// One read of the files: the merged tree, the base tree, and what the files held (to
/// tell a change).
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    /// The config file's tree (`litellm_config: FILE` for a LiteLLM file).
    pub(crate) base: Value,
    /// The overlay's tree (an empty mapping when there is none).
    pub(crate) overlay: Value,
    /// The files' contents, hashed: the config file, the overlay, an included LiteLLM file.
    pub(crate) fingerprint: u64,
}

impl Snapshot {
    /// The tree the config is built from.
    pub(crate) fn merged(&self) -> Value {
        let mut merged = self.base.clone();
        merge_patch(&mut merged, &self.overlay);
        merged
    }
}

impl ConfigSource {
    /// `file`, with its overlay beside it (`gateway.yaml` → `gateway.admin.yaml`).
    pub fn new(file: impl Into<PathBuf>) -> Self {
        let file = file.into();
        let stem = file
            .file_stem()
            .map_or_else(|| "config".into(), |s| s.to_string_lossy().into_owned());
        let overlay = file.with_file_name(format!("{stem}.admin.yaml"));
        Self { file, overlay }
    }

    /// The overlay at `path` instead (a writable place when the config file's directory
    /// is not, as in a container).
    #[must_use]
    pub fn with_overlay(mut self, path: impl Into<PathBuf>) -> Self {
        self.overlay = path.into();
        self
    }

    /// The config file.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// The overlay file (which may not exist).
    pub fn overlay(&self) -> &Path {
        &self.overlay
    }

    /// The directory relative paths in the config are taken from.
    pub(crate) fn dir(&self) -> &Path {
        self.file.parent().unwrap_or(Path::new("."))
    }

    /// Reads the files.
    pub(crate) fn read(&self) -> Result<Snapshot, ConfigError> {
        let at = |path: &Path, e: &dyn std::fmt::Display| {
            ConfigError::new(format!("{}: {e}", path.display()))
        };
        let text = std::fs::read_to_string(&self.file).map_err(|e| at(&self.file, &e))?;
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        hasher.update(text.as_bytes());
        let value: Value = serde_yaml_ng::from_str(&text)
            .map_err(|e| at(&self.file, &format!("invalid YAML: {e}")))?;
        let base = if Config::is_litellm_document(&value) {
            let name = self
                .file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned());
            let mut root = Mapping::new();
            root.insert("litellm_config".into(), name.unwrap_or_default().into());
            Value::Mapping(root)
        } else {
            value
        };
        let overlay = match std::fs::read_to_string(&self.overlay) {
            Ok(text) => {
                hasher.update(b"\0overlay\0");
                hasher.update(text.as_bytes());
                match serde_yaml_ng::from_str::<Value>(&text) {
                    Ok(Value::Null) => Value::Mapping(Mapping::new()),
                    Ok(value @ Value::Mapping(_)) => value,
                    Ok(_) => return Err(at(&self.overlay, &"not a mapping")),
                    Err(e) => return Err(at(&self.overlay, &format!("invalid YAML: {e}"))),
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Value::Mapping(Mapping::new()),
            Err(e) => return Err(at(&self.overlay, &e)),
        };
        let mut snapshot = Snapshot {
            base,
            overlay,
            fingerprint: 0,
        };
        if let Some(included) = self.included(&snapshot.merged()) {
            if let Ok(text) = std::fs::read(&included) {
                hasher.update(b"\0litellm\0");
                hasher.update(&text);
            }
        }
        snapshot.fingerprint = hasher.digest();
        Ok(snapshot)
    }

    /// The LiteLLM file a merged tree includes (`litellm_config:`), if any.
    fn included(&self, merged: &Value) -> Option<PathBuf> {
        let include = merged.get("litellm_config")?;
        let path = include
            .as_str()
            .or_else(|| include.get("path").and_then(Value::as_str))?;
        Some(self.dir().join(path))
    }

    /// The files whose change is a change of config.
    pub(crate) fn watched(&self, snapshot: &Snapshot) -> Vec<PathBuf> {
        let mut files = vec![self.file.clone(), self.overlay.clone()];
        files.extend(self.included(&snapshot.merged()));
        files.dedup();
        files
    }

    /// The config the files describe now (the config file with its overlay).
    pub fn load(&self) -> Result<Config, ConfigError> {
        self.config(self.read()?.merged())
    }

    /// The config a tree describes.
    pub(crate) fn config(&self, merged: Value) -> Result<Config, ConfigError> {
        Config::from_document(merged, self.dir())
    }

    /// Writes the overlay that turns `base` into `desired` (atomically: a temporary file
    /// renamed over it; readable by its owner only, as it may hold API keys). An empty
    /// overlay removes the file.
    pub(crate) fn write_overlay(
        &self,
        base: &Value,
        desired: &Value,
    ) -> Result<Value, ConfigError> {
        let overlay = match diff(base, desired) {
            Some(Value::Mapping(m)) => Value::Mapping(m),
            _ => Value::Mapping(Mapping::new()),
        };
        let err = |e: std::io::Error| {
            ConfigError::new(format!("{}: cannot write: {e}", self.overlay.display()))
        };
        if overlay.as_mapping().is_some_and(Mapping::is_empty) {
            match std::fs::remove_file(&self.overlay) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(err(e)),
            }
            return Ok(overlay);
        }
        let text = format!(
            "# Changes made through llm-tower's admin API, applied over {} (a JSON merge\n\
             # patch: null removes a key). Written by the gateway; edit with care.\n{}",
            self.file
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
            serde_yaml_ng::to_string(&overlay).map_err(|e| ConfigError::new(e.to_string()))?
        );
        let tmp = self.overlay.with_extension("yaml.tmp");
        write_private(&tmp, text.as_bytes()).map_err(err)?;
        std::fs::rename(&tmp, &self.overlay).map_err(err)?;
        Ok(overlay)
    }
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

/// Applies a JSON merge patch (RFC 7386) to a YAML tree.
pub(crate) fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Mapping(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_mapping() {
        *target = Value::Mapping(Mapping::new());
    }
    let Value::Mapping(target) = target else {
        unreachable!("made a mapping above")
    };
    for (key, value) in patch {
        if value.is_null() {
            target.remove(key);
        } else {
            merge_patch(target.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

/// The merge patch that turns `from` into `to` (`None` when they are equal).
pub(crate) fn diff(from: &Value, to: &Value) -> Option<Value> {
    match (from, to) {
        (Value::Mapping(from), Value::Mapping(to)) => {
            let mut patch = Mapping::new();
            for (key, old) in from {
                match to.get(key) {
                    None => {
                        patch.insert(key.clone(), Value::Null);
                    }
                    Some(new) => {
                        if let Some(change) = diff(old, new) {
                            patch.insert(key.clone(), change);
                        }
                    }
                }
            }
            for (key, new) in to {
                if !from.contains_key(key) {
                    patch.insert(key.clone(), new.clone());
                }
            }
            (!patch.is_empty()).then_some(Value::Mapping(patch))
        }
        // A mapping replaced by another value, or values that differ: the new value (a
        // mapping replacing a scalar merges into nothing, so it is the whole mapping).
        _ if from == to => None,
        _ => Some(to.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Value {
        serde_yaml_ng::from_str(text).unwrap()
    }

    #[test]
    fn a_diff_applied_as_a_merge_patch_gives_the_target() {
        let from = yaml("a: 1\nb: { c: 2, d: [1, 2], e: x }\ng: { h: 1 }\nk: 1");
        let to = yaml("a: 1\nb: { c: 3, d: [1], f: y }\ni: { j: 2 }\nk: { l: 1 }");
        let patch = diff(&from, &to).unwrap();
        assert_eq!(
            patch,
            yaml("b: { c: 3, d: [1], e: null, f: y }\ng: null\ni: { j: 2 }\nk: { l: 1 }")
        );
        let mut merged = from.clone();
        merge_patch(&mut merged, &patch);
        assert_eq!(merged, to);
        assert_eq!(diff(&to, &to), None);
    }
}
