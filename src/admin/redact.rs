//! Secrets in the config as the admin API shows it: an API key is shown as `sk-…abcd`, a
//! URL's password as `…`, every header value as `…`; `os.environ/NAME` references stay as
//! written. A value sent back as it was shown keeps the secret it stands for.

use serde_yaml_ng::Value;

/// Keys whose values are secrets, wherever they are.
const SECRETS: [&str; 5] = [
    "api_key",
    "master_key",
    "key",
    "password",
    "litellm_master_key",
];
/// Keys whose values are URLs that may carry a password.
const URLS: [&str; 4] = ["url", "postgres_url", "database_url", "api_base"];
/// Maps whose every value may be a credential.
const HEADER_MAPS: [&str; 2] = ["headers", "extra_headers"];

/// How a secret is shown: its prefix up to the first `-` (`sk-`), `…`, and its last four
/// characters when it is long enough for them to say little.
pub(crate) fn mask(secret: &str) -> String {
    if secret.starts_with("os.environ/") {
        return secret.to_owned();
    }
    let prefix = secret
        .char_indices()
        .take(5)
        .find(|(_, c)| *c == '-')
        .map_or("", |(i, _)| &secret[..=i]);
    let chars: Vec<char> = secret.chars().collect();
    let tail: String = if chars.len() >= 16 {
        chars[chars.len() - 4..].iter().collect()
    } else {
        String::new()
    };
    format!("{prefix}…{tail}")
}

/// A URL with its password shown as `…`.
fn mask_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
            let shown = if userinfo.contains(':') {
                format!("{user}:…")
            } else {
                "…".to_owned()
            };
            format!("{scheme}://{shown}@{host}{}", &rest[authority_end..])
        }
        None => url.to_owned(),
    }
}

/// How `value` under `key` is shown.
fn masked(key: &str, value: &str, in_headers: bool) -> Option<String> {
    if value.starts_with("os.environ/") {
        return None;
    }
    if in_headers {
        return Some("…".to_owned());
    }
    if SECRETS.contains(&key) {
        return Some(mask(value));
    }
    if URLS.contains(&key) {
        let shown = mask_url(value);
        return (shown != value).then_some(shown);
    }
    None
}

/// Masks every secret in a config tree.
pub(crate) fn redact(value: &mut Value) {
    walk(value, "", false);
}

fn walk(value: &mut Value, key: &str, in_headers: bool) {
    match value {
        Value::Mapping(map) => {
            let headers = HEADER_MAPS.contains(&key);
            for (k, v) in map.iter_mut() {
                walk(v, k.as_str().unwrap_or_default(), headers);
            }
        }
        Value::Sequence(items) => {
            for item in items {
                walk(item, key, in_headers);
            }
        }
        Value::String(s) => {
            if let Some(shown) = masked(key, s, in_headers) {
                *s = shown;
            }
        }
        _ => {}
    }
}

/// Puts back into `new` each secret of `old` that `new` holds as it is shown (a form
/// sent back unchanged), at the same place.
pub(crate) fn restore(new: &mut Value, old: &Value) {
    restore_at(new, old, "", false);
}

fn restore_at(new: &mut Value, old: &Value, key: &str, in_headers: bool) {
    match (new, old) {
        (Value::Mapping(new), Value::Mapping(old)) => {
            let headers = HEADER_MAPS.contains(&key);
            for (k, v) in new.iter_mut() {
                if let Some(before) = old.get(k) {
                    restore_at(v, before, k.as_str().unwrap_or_default(), headers);
                }
            }
        }
        (Value::Sequence(new), Value::Sequence(old)) => {
            for (v, before) in new.iter_mut().zip(old) {
                restore_at(v, before, key, in_headers);
            }
        }
        (Value::String(new), Value::String(old))
            if masked(key, old, in_headers).as_deref() == Some(new.as_str()) =>
        {
            new.clone_from(old);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_references_kept_and_masks_restore_them() {
        let mut doc: Value = serde_yaml_ng::from_str(
            "master_key: os.environ/MASTER\n\
             providers:\n  \
               a: { kind: openai, api_base: 'https://u:pw@host/v1', api_key: sk-proj-0123456789abcdef, headers: { x-token: t0ken } }\n  \
               b: { kind: openai, api_base: 'http://x/v1', api_key: short }\n\
             keys: [{ name: app, key: sk-app-secret-value-1234 }]\n\
             redis: { url: 'redis://:hunter2@r:6379/0' }\n",
        )
        .unwrap();
        let original = doc.clone();
        redact(&mut doc);
        let text = serde_yaml_ng::to_string(&doc).unwrap();
        for secret in [
            "0123456789ab",
            "pw@",
            "t0ken",
            "short",
            "secret-value",
            "hunter2",
        ] {
            assert!(!text.contains(secret), "{secret} in\n{text}");
        }
        assert_eq!(doc["master_key"], "os.environ/MASTER");
        assert_eq!(doc["providers"]["a"]["api_key"], "sk-…cdef");
        assert_eq!(doc["providers"]["a"]["api_base"], "https://u:…@host/v1");
        assert_eq!(doc["providers"]["b"]["api_key"], "…");
        assert_eq!(doc["providers"]["b"]["api_base"], "http://x/v1");
        assert_eq!(doc["redis"]["url"], "redis://:…@r:6379/0");

        // Sent back with one key changed: the others are what they were.
        doc["providers"]["b"]["api_key"] = "sk-new".into();
        restore(&mut doc, &original);
        assert_eq!(doc["providers"]["a"]["api_key"], "sk-proj-0123456789abcdef");
        assert_eq!(doc["providers"]["a"]["headers"]["x-token"], "t0ken");
        assert_eq!(doc["providers"]["b"]["api_key"], "sk-new");
        assert_eq!(doc["redis"]["url"], "redis://:hunter2@r:6379/0");
    }
}
