//! Reading one mapping of a LiteLLM file: typed values taken by key, errors naming the
//! LiteLLM field, and every key left untaken reported as ignored.

use std::time::Duration;

use serde_yaml_ng::{Mapping, Value};

use super::super::ConfigError;

/// Resolves `os.environ/NAME` (the file's `environment_variables` first).
pub(super) type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// A mapping being read; what is not taken is ignored (and said so by [`Fields::finish`]).
pub(super) struct Fields<'a> {
    path: String,
    map: Mapping,
    lookup: Lookup<'a>,
}

impl<'a> Fields<'a> {
    /// The mapping at `path` (absent or `null`: empty).
    pub(super) fn new(
        value: Option<Value>,
        path: impl Into<String>,
        lookup: Lookup<'a>,
    ) -> Result<Self, ConfigError> {
        let path = path.into();
        let map = match value {
            None | Some(Value::Null) => Mapping::new(),
            Some(Value::Mapping(map)) => map,
            Some(_) => return Err(ConfigError::new(format!("{path}: expected a mapping"))),
        };
        Ok(Self { path, map, lookup })
    }

    /// The dotted name of `key` in this mapping.
    pub(super) fn field(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// An error about `key`.
    pub(super) fn error(&self, key: &str, message: impl std::fmt::Display) -> ConfigError {
        ConfigError::new(format!("{}: {message}", self.field(key)))
    }

    /// The environment variable `name` (the file's `environment_variables` first).
    pub(super) fn lookup(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
    }

    /// Whether `key` is present (and not yet taken).
    pub(super) fn has(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    /// The raw value of `key`, taken out.
    pub(super) fn take(&mut self, key: &str) -> Option<Value> {
        self.map.remove(key).filter(|v| !v.is_null())
    }

    /// A nested mapping.
    pub(super) fn mapping(&mut self, key: &str) -> Result<Fields<'a>, ConfigError> {
        let value = self.take(key);
        Fields::new(value, self.field(key), self.lookup)
    }

    /// A string (numbers and booleans as written), `os.environ/NAME` resolved.
    pub(super) fn string(&mut self, key: &str) -> Result<Option<String>, ConfigError> {
        let Some(value) = self.take(key) else {
            return Ok(None);
        };
        let text = match value {
            Value::String(s) => s,
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => return Err(self.error(key, "expected a string")),
        };
        self.resolve(key, text).map(Some)
    }

    /// The string of `key`, else the environment variable `env` (LiteLLM's fallback).
    pub(super) fn string_or_env(
        &mut self,
        key: &str,
        env: &str,
    ) -> Result<Option<String>, ConfigError> {
        Ok(self.string(key)?.or_else(|| self.lookup(env)))
    }

    /// `os.environ/NAME` resolved for `key`'s value `text`.
    pub(super) fn resolve(&self, key: &str, text: String) -> Result<String, ConfigError> {
        match text.strip_prefix("os.environ/") {
            Some(name) => (self.lookup)(name).ok_or_else(|| {
                self.error(
                    key,
                    format!("environment variable `{name}` is not set (from `{text}`)"),
                )
            }),
            None => Ok(text),
        }
    }

    /// A number (LiteLLM also accepts one written as a string).
    pub(super) fn number(&mut self, key: &str) -> Result<Option<f64>, ConfigError> {
        let Some(text) = self.string(key)? else {
            return Ok(None);
        };
        match text.trim().parse::<f64>() {
            Ok(n) if n.is_finite() => Ok(Some(n)),
            _ => Err(self.error(key, format!("`{text}` is not a number"))),
        }
    }

    /// A whole number ≥ 0.
    pub(super) fn count(&mut self, key: &str) -> Result<Option<u64>, ConfigError> {
        match self.number(key)? {
            None => Ok(None),
            Some(n) if n >= 0.0 && n.fract() == 0.0 && n < 1e15 => Ok(Some(n as u64)),
            Some(n) => Err(self.error(key, format!("`{n}` is not a whole number ≥ 0"))),
        }
    }

    /// Seconds, as LiteLLM writes timeouts (`10`, `0.5`).
    pub(super) fn seconds(&mut self, key: &str) -> Result<Option<Duration>, ConfigError> {
        match self.number(key)? {
            None => Ok(None),
            Some(n) if (0.0..1e9).contains(&n) => Ok(Some(Duration::from_secs_f64(n))),
            Some(n) => Err(self.error(key, format!("`{n}` is not a number of seconds"))),
        }
    }

    /// A boolean (`true`, `"True"`).
    pub(super) fn boolean(&mut self, key: &str) -> Result<Option<bool>, ConfigError> {
        let Some(text) = self.string(key)? else {
            return Ok(None);
        };
        match text.to_ascii_lowercase().as_str() {
            "true" => Ok(Some(true)),
            "false" => Ok(Some(false)),
            _ => Err(self.error(key, format!("`{text}` is not true or false"))),
        }
    }

    /// A list of strings (a single string counts as a list of one).
    pub(super) fn strings(&mut self, key: &str) -> Result<Vec<String>, ConfigError> {
        match self.take(key) {
            None => Ok(Vec::new()),
            Some(Value::String(s)) => Ok(vec![self.resolve(key, s)?]),
            Some(Value::Sequence(items)) => items
                .into_iter()
                .map(|item| match item {
                    Value::String(s) => self.resolve(key, s),
                    _ => Err(self.error(key, "expected a list of strings")),
                })
                .collect(),
            Some(_) => Err(self.error(key, "expected a list of strings")),
        }
    }

    /// The keys left, in file order.
    pub(super) fn remaining(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.map.iter().filter_map(|(k, v)| Some((k.as_str()?, v)))
    }

    /// Says every key left is ignored (into `ignored`, by full name).
    pub(super) fn finish(self, ignored: &mut Vec<String>) {
        for (key, _) in self.remaining() {
            ignored.push(self.field(key));
        }
    }
}
