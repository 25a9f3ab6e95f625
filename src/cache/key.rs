//! The canonical request: what makes two requests "the same request" for the cache, and
//! the hard partition a semantic match must stay inside.

use std::borrow::Cow;

use super::canonical::Json;
use crate::request::Endpoint;

/// Members that cannot change the answer: how it is delivered, and who asked.
const IGNORED: [&str; 3] = ["stream", "stream_options", "user"];

/// What the cache knows about one chat request.
#[derive(Debug, Clone)]
pub(crate) struct Analysis {
    /// Hex BLAKE3 of the scope and the canonical request.
    pub(crate) key: String,
    /// `temperature: 0` or a `seed` (embeddings always are).
    pub(crate) deterministic: bool,
    /// For a semantic match: the partition (the canonical request without the last user
    /// message's text) and that text.
    pub(crate) semantic: Option<(String, String)>,
}

/// Limits on the conversations matched semantically.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SemanticLimits {
    pub(crate) max_messages: usize,
    pub(crate) max_text_chars: usize,
}

/// Reads a chat or embeddings request body; `None` when it is not a JSON object.
pub(crate) fn analyze(
    body: &[u8],
    endpoint: Endpoint,
    model: &str,
    scope: &str,
    semantic: Option<SemanticLimits>,
) -> Option<Analysis> {
    let mut request = Json::parse(body)?;
    let Json::Object(members) = &mut request else {
        return None;
    };
    members.retain(|(name, _)| !IGNORED.contains(&name.as_ref()) && name != "model");
    members.push((Cow::Borrowed("model"), Json::Str(Cow::Borrowed(model))));
    let mut canonical = Vec::with_capacity(body.len());
    request.write(&mut canonical);
    // Each protocol's answers apart; exact matches only but for chat.
    let domain: &[u8] = match endpoint {
        Endpoint::Embeddings => b"embeddings",
        Endpoint::Messages => b"messages",
        Endpoint::Responses => b"responses",
        _ => b"exact",
    };
    if endpoint == Endpoint::Embeddings {
        return Some(Analysis {
            key: digest(domain, scope, &canonical),
            deterministic: true,
            semantic: None,
        });
    }
    let deterministic = request
        .get("temperature")
        .and_then(Json::as_f64)
        .is_some_and(|t| t == 0.0)
        || request.get("seed").is_some_and(|s| *s != Json::Null);
    let key = digest(domain, scope, &canonical);
    let semantic = semantic
        .filter(|_| endpoint == Endpoint::ChatCompletions)
        .and_then(|limits| partition(request, scope, limits, canonical));
    Some(Analysis {
        key,
        deterministic,
        semantic,
    })
}

/// The partition and last user text, when the conversation qualifies.
fn partition(
    mut request: Json<'_>,
    scope: &str,
    limits: SemanticLimits,
    mut canonical: Vec<u8>,
) -> Option<(String, String)> {
    let Some(Json::Array(messages)) = request.get_mut("messages") else {
        return None;
    };
    if messages.is_empty() || messages.len() > limits.max_messages {
        return None;
    }
    let last = messages.last_mut()?;
    if last.get("role").and_then(Json::as_str) != Some("user") {
        return None;
    }
    let content = last.get_mut("content")?;
    let text = user_text(content)?;
    if text.trim().is_empty() || text.chars().count() > limits.max_text_chars {
        return None;
    }
    *content = Json::Null;
    canonical.clear();
    request.write(&mut canonical);
    Some((digest(b"partition", scope, &canonical), text))
}

/// A message's text: a string, or text parts only (anything else, such as an image, is not
/// matched semantically).
fn user_text(content: &Json<'_>) -> Option<String> {
    match content {
        Json::Str(text) => Some(text.to_string()),
        Json::Array(parts) => {
            let mut text = String::new();
            for part in parts {
                if part.get("type").and_then(Json::as_str) != Some("text") {
                    return None;
                }
                if !text.is_empty() {
                    text.push('\n');
                }
                text.push_str(part.get("text")?.as_str()?);
            }
            Some(text)
        }
        _ => None,
    }
}

// BLAKE3, not SHA-256: the key of a 1 KB request costs ~3k instructions instead of ~50k
// (no SHA extensions on these machines), and it is as collision-resistant, which matters:
// a collision would serve one tenant's answer to another.
fn digest(kind: &[u8], scope: &str, canonical: &[u8]) -> String {
    let mut hash = blake3::Hasher::new();
    hash.update(kind);
    hash.update(&[0]);
    hash.update(scope.as_bytes());
    hash.update(&[0]);
    hash.update(canonical);
    hash.finalize().to_hex().to_string()
}

/// The hash of a request's bytes as sent, for the fast path of exact repeats: the same
/// endpoint, scope, model and body bytes always have the same canonical key.
///
/// Keyed SipHash-1-3 with 128 bits out and a key drawn once per process, not BLAKE3: the
/// memo it indexes lives in this process only, and without the key nobody can make two
/// requests collide (std's `HashMap` relies on the same), at under half the instructions
/// for a 1 KB request (BLAKE3 took 8.1k per request in the cache-hit profile).
pub(crate) fn raw_key(endpoint: Endpoint, scope: &str, model: &str, body: &[u8]) -> [u8; 16] {
    use std::hash::Hasher;
    static KEY: std::sync::LazyLock<[u8; 16]> = std::sync::LazyLock::new(|| {
        let mut key = [0; 16];
        getrandom::fill(&mut key).expect("the OS has random numbers");
        key
    });
    let mut hash = siphasher::sip128::SipHasher13::new_with_key(&KEY);
    hash.write_u8(endpoint as u8);
    hash.write(scope.as_bytes());
    hash.write_u8(0);
    hash.write(model.as_bytes());
    hash.write_u8(0);
    hash.write(body);
    siphasher::sip128::Hasher128::finish128(&hash).as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHAT: Endpoint = Endpoint::ChatCompletions;

    const LIMITS: SemanticLimits = SemanticLimits {
        max_messages: 4,
        max_text_chars: 2000,
    };

    fn key(body: &str) -> String {
        analyze(body.as_bytes(), CHAT, "m", "team-a", None)
            .unwrap()
            .key
    }

    #[test]
    fn raw_keys_tell_endpoint_scope_model_and_bytes_apart() {
        let body = br#"{"model":"m","messages":[]}"#;
        let k = raw_key(CHAT, "team-a", "m", body);
        assert_eq!(k, raw_key(CHAT, "team-a", "m", body));
        assert_ne!(k, raw_key(Endpoint::Embeddings, "team-a", "m", body));
        assert_ne!(k, raw_key(CHAT, "team-b", "m", body));
        assert_ne!(k, raw_key(CHAT, "team-a", "n", body));
        assert_ne!(
            k,
            raw_key(CHAT, "team-a", "m", br#"{"model":"m","messages":[] }"#)
        );
        // The separators keep a scope's end from passing for the model's start.
        assert_ne!(
            raw_key(CHAT, "ab", "c", body),
            raw_key(CHAT, "a", "bc", body)
        );
    }

    #[test]
    fn key_order_whitespace_and_delivery_do_not_matter() {
        let a = key(r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":1}"#);
        let b = key(r#"{ "temperature" : 1.0,
                 "messages" : [ { "content" : "hi", "role" : "user" } ],
                 "stream": true, "stream_options": {"include_usage": true}, "user": "u-1",
                 "model": "m" }"#);
        assert_eq!(a, b);
        assert_ne!(
            a,
            key(r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":0.5}"#)
        );
        assert_ne!(
            a,
            key(r#"{"model":"m","messages":[{"role":"user","content":"Hi"}],"temperature":1}"#)
        );
        let other_scope = analyze(
            br#"{"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":1}"#,
            CHAT,
            "m",
            "team-b",
            None,
        )
        .unwrap()
        .key;
        assert_ne!(a, other_scope);
    }

    #[test]
    fn the_resolved_model_is_part_of_the_key() {
        let body = br#"{"model":"alias","messages":[{"role":"user","content":"hi"}]}"#;
        let one = analyze(body, CHAT, "p/one", "s", None).unwrap().key;
        let two = analyze(body, CHAT, "p/two", "s", None).unwrap().key;
        assert_ne!(one, two);
    }

    #[test]
    fn determinism_is_temperature_zero_or_a_seed() {
        let det = |b: &str| {
            analyze(b.as_bytes(), CHAT, "m", "s", None)
                .unwrap()
                .deterministic
        };
        assert!(det(r#"{"messages":[],"temperature":0}"#));
        assert!(det(r#"{"messages":[],"temperature":0.0}"#));
        assert!(det(r#"{"messages":[],"seed":7}"#));
        assert!(!det(r#"{"messages":[],"temperature":0.2}"#));
        assert!(!det(r#"{"messages":[]}"#));
    }

    #[test]
    fn partitions_ignore_only_the_last_user_text() {
        let part = |b: &str| {
            analyze(b.as_bytes(), CHAT, "m", "s", Some(LIMITS))
                .unwrap()
                .semantic
        };
        let a = part(r#"{"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"How do I sort a list?"}]}"#).unwrap();
        let b = part(r#"{"messages":[{"role":"system","content":"be brief"},{"role":"user","content":[{"type":"text","text":"Sorting a list: how?"}]}]}"#).unwrap();
        assert_eq!(a.0, b.0);
        assert_eq!(b.1, "Sorting a list: how?");
        let c = part(r#"{"messages":[{"role":"system","content":"be verbose"},{"role":"user","content":"How do I sort a list?"}]}"#).unwrap();
        assert_ne!(a.0, c.0, "another system prompt");
        let d = part(r#"{"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"How do I sort a list?"}],"temperature":0}"#).unwrap();
        assert_ne!(a.0, d.0, "another parameter");
        assert!(part(
            r#"{"messages":[{"role":"user","content":"x"},{"role":"assistant","content":"y"}]}"#
        )
        .is_none());
        assert!(part(r#"{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"u"}}]}]}"#).is_none());
        let long = r#"{"messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b"},{"role":"user","content":"c"},{"role":"assistant","content":"d"},{"role":"user","content":"e"}]}"#;
        assert!(part(long).is_none(), "longer than max_messages");
    }
}
