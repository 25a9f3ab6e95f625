//! Canonical JSON for cache keys: object members in key order, no whitespace, whole floats
//! written as integers (`1.0` and `1` are the same parameter), escapes normalized.
//!
//! The request is read into a tree that borrows from the body (a string without escapes is
//! not copied, an object is a list of members to sort) rather than a `serde_json::Value`,
//! whose every key and string is an allocation and every object a B-tree: a cache miss
//! reads a 1 KB request in about half the instructions.

use std::borrow::Cow;
use std::fmt;
use std::io::Write as _;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// A JSON value borrowed from the text it was read from.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Json<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    Str(Cow<'a, str>),
    Array(Vec<Json<'a>>),
    /// Members in the order they were read; written sorted.
    Object(Vec<(Cow<'a, str>, Json<'a>)>),
}

impl<'a> Json<'a> {
    /// Reads `text`; `None` when it is not JSON.
    pub(crate) fn parse(text: &'a [u8]) -> Option<Self> {
        serde_json::from_slice(text).ok()
    }

    /// The member `name` of an object (the last, if the name repeats, as serde_json does).
    pub(crate) fn get(&self, name: &str) -> Option<&Json<'a>> {
        match self {
            Json::Object(members) => members.iter().rev().find(|(k, _)| k == name).map(|m| &m.1),
            _ => None,
        }
    }

    /// The member `name` of an object, to change.
    pub(crate) fn get_mut(&mut self, name: &str) -> Option<&mut Json<'a>> {
        match self {
            Json::Object(members) => members
                .iter_mut()
                .rev()
                .find(|(k, _)| k == name)
                .map(|m| &mut m.1),
            _ => None,
        }
    }

    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Json::Str(s) => Some(s),
            _ => None,
        }
    }

    pub(crate) fn as_f64(&self) -> Option<f64> {
        match *self {
            Json::Int(n) => Some(n as f64),
            Json::Uint(n) => Some(n as f64),
            Json::Float(f) => Some(f),
            _ => None,
        }
    }

    /// Appends the canonical form.
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        match self {
            Json::Null => out.extend_from_slice(b"null"),
            Json::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
            Json::Int(n) => write!(out, "{n}").expect("a Vec takes it"),
            Json::Uint(n) => write!(out, "{n}").expect("a Vec takes it"),
            Json::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => {
                write!(out, "{}", *f as i64).expect("a Vec takes it");
            }
            Json::Float(f) => serde_json::to_writer(&mut *out, f).expect("a float serialises"),
            Json::Str(s) => write_str(s, out),
            Json::Array(items) => {
                out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    item.write(out);
                }
                out.push(b']');
            }
            Json::Object(members) => {
                let mut sorted: Vec<&(Cow<'a, str>, Json<'a>)> = members.iter().collect();
                // Stable, so that of repeated names the last read is the one kept.
                sorted.sort_by(|a, b| a.0.cmp(&b.0));
                out.push(b'{');
                let mut first = true;
                for (i, (key, value)) in sorted.iter().map(|m| (&m.0, &m.1)).enumerate() {
                    if sorted.get(i + 1).is_some_and(|next| next.0 == *key) {
                        continue;
                    }
                    if !first {
                        out.push(b',');
                    }
                    first = false;
                    write_str(key, out);
                    out.push(b':');
                    value.write(out);
                }
                out.push(b'}');
            }
        }
    }
}

/// A string as serde_json writes it. One borrowed from the body had no escapes, so it has
/// no quote, backslash or control character either (JSON forbids them raw): written as is.
#[allow(clippy::ptr_arg)] // the variant is the point: it tells whether there were escapes
fn write_str(s: &Cow<'_, str>, out: &mut Vec<u8>) {
    if let Cow::Borrowed(s) = s {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        serde_json::to_writer(&mut *out, s.as_ref()).expect("a str serialises");
    }
}

impl<'de> Deserialize<'de> for Json<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JSON")
    }

    fn visit_unit<E>(self) -> Result<Json<'de>, E> {
        Ok(Json::Null)
    }

    fn visit_bool<E>(self, b: bool) -> Result<Json<'de>, E> {
        Ok(Json::Bool(b))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Json<'de>, E> {
        Ok(Json::Int(n))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Json<'de>, E> {
        Ok(Json::Uint(n))
    }

    fn visit_f64<E>(self, f: f64) -> Result<Json<'de>, E> {
        Ok(Json::Float(f))
    }

    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Json<'de>, E> {
        Ok(Json::Str(Cow::Borrowed(s)))
    }

    fn visit_str<E>(self, s: &str) -> Result<Json<'de>, E> {
        Ok(Json::Str(Cow::Owned(s.to_owned())))
    }

    fn visit_string<E>(self, s: String) -> Result<Json<'de>, E> {
        Ok(Json::Str(Cow::Owned(s)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json<'de>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json<'de>, A::Error> {
        let mut members = Vec::new();
        while let Some(Json::Str(key)) = map.next_key()? {
            members.push((key, map.next_value()?));
        }
        Ok(Json::Object(members))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canonical(text: &str) -> String {
        let mut out = Vec::new();
        Json::parse(text.as_bytes()).unwrap().write(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn members_sorted_whitespace_gone_numbers_and_escapes_normalized() {
        assert_eq!(
            canonical(
                r#" { "b" : [ 1.0 , 2.5, -3, 18446744073709551615 ], "a" : { "z": null, "y": true } } "#
            ),
            r#"{"a":{"y":true,"z":null},"b":[1,2.5,-3,18446744073709551615]}"#
        );
        assert_eq!(
            canonical(r#""caf\u00e9 \"q\"\n""#),
            canonical("\"café \\\"q\\\"\\n\"")
        );
        assert_eq!(canonical(r#""caf\u00e9""#), "\"café\"");
        assert_eq!(
            canonical(r#"{"a":1,"a":2}"#),
            r#"{"a":2}"#,
            "the last repeat wins"
        );
    }

    #[test]
    fn it_matches_serde_json_on_what_serde_json_sorts() {
        let text = r#"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"tab\there é"}]}],"temperature":0.7,"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"x":{"type":"integer"}}}}}],"n":2}"#;
        let value: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(canonical(text), serde_json::to_string(&value).unwrap());
    }

    #[test]
    fn not_json_is_none() {
        assert!(Json::parse(b"{\"a\":").is_none());
        assert!(Json::parse(b"{\"a\":1} x").is_none());
    }
}
