//! The `Idempotency-Key` header, the storage key it scopes, and the request fingerprint.

use http::header::HeaderName;
use http::HeaderMap;
use sha2::{Digest, Sha256};

use crate::error::GatewayError;

/// The header clients send.
pub(crate) const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// A 128-bit hash of method, path and body: what makes two requests "the same request".
///
/// XXH3, not a cryptographic hash: a fingerprint is only ever compared with another under
/// the same storage key, i.e. the same client's own idempotency key, so a crafted collision
/// could only mislead its author. It costs ~40× less than SHA-256 on a 1 KB body without
/// SHA-NI. The storage key, which separates tenants, stays SHA-256.
pub type Fingerprint = [u8; 16];

/// The request's idempotency key, if it sent one; a malformed one is a 400.
pub(crate) fn idempotency_key(headers: &HeaderMap) -> Result<Option<&str>, GatewayError> {
    // By a name made once (a `&str` is parsed on each lookup).
    const NAME: HeaderName = HeaderName::from_static(IDEMPOTENCY_KEY);
    let mut values = headers.get_all(NAME).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    let invalid = |why: &str| {
        Err(GatewayError::invalid_param(
            IDEMPOTENCY_KEY,
            format!("Invalid Idempotency-Key: {why}."),
        )
        .with_code("invalid_idempotency_key"))
    };
    if values.next().is_some() {
        return invalid("send it once");
    }
    // A structured-field string (`"8e03978e-…"`, the draft's form: printable ASCII, `"` and
    // `\` escaped), or a bare key of visible ASCII (common too). The escaped form is the
    // key: a string has only one.
    let raw = value.as_bytes().trim_ascii();
    let key = match raw {
        [b'"', inner @ .., b'"'] if raw.len() >= 2 => {
            let mut bytes = inner.iter();
            while let Some(&b) = bytes.next() {
                match b {
                    b'\\' if matches!(bytes.next(), Some(b'"' | b'\\')) => {}
                    b'\\' => return invalid("`\\` escapes only `\"` and `\\`"),
                    b'"' => return invalid("a `\"` inside the string must be escaped"),
                    0x20..=0x7e => {}
                    _ => return invalid("only printable ASCII characters are allowed"),
                }
            }
            inner
        }
        [b'"', ..] => return invalid("the quoted string is not terminated"),
        bare => {
            if !bare
                .iter()
                .all(|&b| (0x21..=0x7e).contains(&b) && b != b'"')
            {
                return invalid(
                    "only visible ASCII characters are allowed (quote a key with spaces)",
                );
            }
            bare
        }
    };
    let key = std::str::from_utf8(key).expect("ASCII");
    if key.is_empty() {
        return invalid("it is empty");
    }
    if key.len() > 255 {
        return invalid("it is longer than 255 characters");
    }
    Ok(Some(key))
}

/// The key under which a client's idempotency key is stored: scoped by the gateway key
/// that sent it, hashed so that any client string makes a short, safe store key.
pub(crate) fn storage_key(scope: &str, key: &str) -> String {
    let mut hash = Sha256::new();
    hash.update(scope.as_bytes());
    hash.update([0]);
    hash.update(key.as_bytes());
    hex(&hash.finalize())
}

pub(crate) fn fingerprint(method: &http::Method, path: &str, body: &[u8]) -> Fingerprint {
    let mut hash = xxhash_rust::xxh3::Xxh3::new();
    hash.update(method.as_str().as_bytes());
    hash.update(&[0]);
    hash.update(path.as_bytes());
    hash.update(&[0]);
    hash.update(body);
    hash.digest128().to_be_bytes()
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn key_of(value: &[u8]) -> Result<Option<String>, GatewayError> {
        let mut headers = HeaderMap::new();
        headers.insert(IDEMPOTENCY_KEY, HeaderValue::from_bytes(value).unwrap());
        idempotency_key(&headers).map(|k| k.map(str::to_owned))
    }

    #[test]
    fn keys_are_checked() {
        assert_eq!(key_of(b"abc-123").unwrap().as_deref(), Some("abc-123"));
        assert_eq!(key_of(b"\"abc\"").unwrap().as_deref(), Some("abc"));
        assert_eq!(idempotency_key(&HeaderMap::new()).unwrap(), None);
        assert_eq!(
            key_of(br#""a b \" \\ c""#).unwrap().as_deref(),
            Some(r#"a b \" \\ c"#)
        );
        assert_eq!(key_of(b"  abc  ").unwrap().as_deref(), Some("abc"));
        for bad in [
            &b""[..],
            b"\"\"",
            &[b'k'; 256],
            b"caf\xc3\xa9",
            b"a\tb",
            b"\"a\tb\"",
            b"\"unterminated",
            b"a b",
            b"\"a\"b\"",
            b"\"a\\b\"",
            b"\"",
        ] {
            let err = key_of(bad).expect_err(&String::from_utf8_lossy(bad));
            assert_eq!(err.status(), 400);
            assert_eq!(err.code(), Some("invalid_idempotency_key"));
        }
    }

    #[test]
    fn scopes_and_fingerprints_differ_when_they_should() {
        assert_ne!(storage_key("team-a", "k"), storage_key("team-b", "k"));
        assert_ne!(storage_key("a", "bk"), storage_key("ab", "k"));
        assert_eq!(storage_key("a", "k").len(), 64);
        let post = http::Method::POST;
        assert_eq!(
            fingerprint(&post, "/v1/x", b"{}"),
            fingerprint(&post, "/v1/x", b"{}")
        );
        assert_ne!(
            fingerprint(&post, "/v1/x", b"{}"),
            fingerprint(&post, "/v1/y", b"{}")
        );
        assert_ne!(
            fingerprint(&post, "/v1/x", b"{}"),
            fingerprint(&post, "/v1/x", b"{ }")
        );
    }
}
