//! A provider's default request parameters (`params:`): sent upstream when the client's
//! request does not set them (LiteLLM's `litellm_params` such as `temperature` or
//! `max_tokens`), every byte the client sent kept as it was. Chat completions and
//! embeddings get every default (a Messages or Responses request for a chat upstream is a
//! chat completion by then); a native Anthropic Messages request gets those whose names
//! the two APIs share.

use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::{Request, Response};
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value};
use tower::Service;

use crate::body::Body;
use crate::error::GatewayError;
use crate::request::{Endpoint, LlmRequest};
use crate::settings::SettingsError;

/// Members a default cannot set: what the gateway routes on or the client must decide.
const RESERVED: &[&str] = &[
    "model",
    "messages",
    "input",
    "prompt",
    "stream",
    "stream_options",
];

/// The defaults a native Anthropic Messages request gets: the names both APIs share.
const MESSAGES: &[&str] = &["temperature", "top_p", "top_k", "max_tokens"];

/// Chat Completions parameters that mean the same: a client's one keeps the other's
/// default out.
const SYNONYMS: &[(&str, &str)] = &[("max_tokens", "max_completion_tokens")];

/// Request parameters by name (a JSON object), for chat completions and embeddings.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(transparent)]
pub struct DefaultParams(Map<String, Value>);

impl DefaultParams {
    /// No defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the default of `name`.
    #[must_use]
    pub fn with(mut self, name: impl Into<String>, value: Value) -> Self {
        self.0.insert(name.into(), value);
        self
    }

    /// These defaults with `over`'s on top (`over` wins where both set a name).
    #[must_use]
    pub fn merged_under(mut self, over: &Self) -> Self {
        for (name, value) in &over.0 {
            self.0.insert(name.clone(), value.clone());
        }
        self
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The defaults, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Checks that no default sets what only the client may.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if self.0.len() > 32 {
            return Err(SettingsError::new("", "at most 32 default parameters"));
        }
        match self.0.keys().find(|k| RESERVED.contains(&k.as_str())) {
            Some(name) => Err(SettingsError::new(
                name.as_str(),
                "is the client's to set, not a default parameter",
            )),
            None => Ok(()),
        }
    }
}

/// A provider's service that adds its defaults to each chat or embeddings request.
#[derive(Clone)]
pub(crate) struct WithDefaults<S> {
    inner: S,
    defaults: Arc<Defaults>,
}

struct Defaults {
    /// Each default as `"name":value,` (serialised once), and the bits of the [`watch`]
    /// names that, set by the client, keep it out.
    members: Vec<(Box<str>, Bytes, u64)>,
    /// The top-level names looked for in a request: the defaults' and their synonyms.
    watch: Vec<Box<str>>,
}

impl<S> WithDefaults<S> {
    pub(crate) fn new(inner: S, params: &DefaultParams) -> Self {
        let mut watch: Vec<Box<str>> = Vec::new();
        let mut bit = |name: &str| {
            let i = watch.iter().position(|w| &**w == name).unwrap_or_else(|| {
                watch.push(name.into());
                watch.len() - 1
            });
            1u64 << i.min(63)
        };
        let members = params
            .iter()
            .map(|(name, value)| {
                let mut mask = bit(name);
                for &(a, b) in SYNONYMS {
                    if a == name {
                        mask |= bit(b);
                    } else if b == name {
                        mask |= bit(a);
                    }
                }
                let member = format!("{}:{value},", Value::from(name));
                (Box::from(name), Bytes::from(member), mask)
            })
            .collect();
        Self {
            inner,
            defaults: Arc::new(Defaults { members, watch }),
        }
    }

    /// The members the request lacks, or `None` when it sets every one.
    fn missing(&self, body: &[u8], endpoint: Endpoint) -> Option<BytesMut> {
        let applies = |name: &str| match endpoint {
            Endpoint::ChatCompletions | Endpoint::Embeddings => true,
            Endpoint::Messages => MESSAGES.contains(&name),
            _ => false,
        };
        let defaults = &*self.defaults;
        let present = Keys(&defaults.watch)
            .deserialize(&mut serde_json::Deserializer::from_slice(body))
            .ok()?;
        let mut out = BytesMut::new();
        for (name, member, mask) in &defaults.members {
            if applies(name) && present & mask == 0 {
                out.extend_from_slice(member);
            }
        }
        (!out.is_empty()).then_some(out)
    }
}

/// Which of the watched names a JSON object sets at its top level, as bits. Keys are
/// compared where they lie in the body and values skipped unread: no allocation (a
/// `HashMap` of the keys cost 9k instructions per 1 KB request, measured in `layers/none_params`).
struct Keys<'a>(&'a [Box<str>]);

impl<'de> DeserializeSeed<'de> for Keys<'_> {
    type Value = u64;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<u64, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Keys<'_> {
    type Value = u64;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<u64, A::Error> {
        let mut present = 0;
        while let Some(found) = map.next_key_seed(Key(self.0))? {
            if let Some(i) = found {
                present |= 1u64 << i.min(63);
            }
            map.next_value::<IgnoredAny>()?;
        }
        Ok(present)
    }
}

/// One key: the index of the watched name it is, if any.
struct Key<'a>(&'a [Box<str>]);

impl<'de> DeserializeSeed<'de> for Key<'_> {
    type Value = Option<usize>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<usize>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key<'_> {
    type Value = Option<usize>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a member name")
    }
    fn visit_str<E>(self, key: &str) -> Result<Option<usize>, E> {
        Ok(self.0.iter().position(|name| &**name == key))
    }
}

impl<S> Service<Request<Bytes>> for WithDefaults<S>
where
    S: Service<Request<Bytes>, Response = Response<Body>, Error = GatewayError>,
{
    type Response = Response<Body>;
    type Error = GatewayError;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), GatewayError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Bytes>) -> S::Future {
        let (mut parts, mut body) = req.into_parts();
        if let Some(llm) = parts.extensions.get_mut::<LlmRequest>() {
            if let Some(members) = self.missing(&body, llm.endpoint()) {
                llm.insert_members(&mut body, &members);
            }
        }
        self.inner.call(Request::from_parts(parts, body))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn with(params: Value) -> WithDefaults<()> {
        WithDefaults::new((), &serde_json::from_value(params).unwrap())
    }

    fn fill(params: Value, body: &str) -> Value {
        let service = with(params);
        let mut bytes = Bytes::copy_from_slice(body.as_bytes());
        let mut llm = LlmRequest::parse(Endpoint::ChatCompletions, &bytes).unwrap();
        if let Some(members) = service.missing(&bytes, Endpoint::ChatCompletions) {
            assert!(llm.insert_members(&mut bytes, &members));
        }
        // The view follows the new body: the model can still be rewritten in place.
        llm.rewrite_model(&mut bytes, "upstream-name");
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn defaults_fill_only_what_the_client_left_out() {
        let body = r#"{"model":"m","temperature":0.9,"messages":[{"role":"user","content":"hi"}]}"#;
        let out = fill(
            json!({"temperature": 0.2, "top_p": 0.5, "stop": ["\n"]}),
            body,
        );
        assert_eq!(out["temperature"], 0.9);
        assert_eq!(out["top_p"], 0.5);
        assert_eq!(out["stop"], json!(["\n"]));
        assert_eq!(out["model"], "upstream-name");
        assert_eq!(out["messages"][0]["content"], "hi");
    }

    #[test]
    fn max_completion_tokens_keeps_a_max_tokens_default_out() {
        let body = r#"{"model":"m","max_completion_tokens":5,"messages":[{"role":"user","content":"hi"}]}"#;
        let out = fill(json!({"max_tokens": 100}), body);
        assert_eq!(out.get("max_tokens"), None);
        assert_eq!(out["max_completion_tokens"], 5);
    }

    #[test]
    fn a_body_that_sets_everything_is_left_alone() {
        let service = with(json!({"seed": 1}));
        assert!(service
            .missing(
                br#"{"model":"m","seed":3,"messages":[]}"#,
                Endpoint::ChatCompletions
            )
            .is_none());
    }

    #[test]
    fn reserved_names_are_refused_by_name() {
        let params: DefaultParams = serde_json::from_value(json!({"stream": true})).unwrap();
        assert_eq!(params.validate().unwrap_err().field(), "stream");
    }
}
