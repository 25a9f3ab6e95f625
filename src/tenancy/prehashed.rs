//! Map keys that carry their own hash: a request's lookups then hash nothing.
//!
//! std's SipHash (and even xxh3) over a 64-byte token or a 68-byte scope id is most of a
//! lookup; the keys here are either random already (a keyed BLAKE3 fingerprint) or hashed
//! once when the key is built (a scope id).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::Arc;

/// A `HashMap` over keys that hash themselves with one `write_u64`.
pub(crate) type PrehashedMap<K, V> = HashMap<K, V, BuildHasherDefault<Prehashed>>;

/// Passes on the one `u64` a key writes.
#[derive(Default)]
pub(crate) struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only for a key that writes bytes after all: hash them.
        self.0 ^= xxhash_rust::xxh3::xxh3_64(bytes);
    }

    fn write_u64(&mut self, n: u64) {
        self.0 ^= n;
    }
}

/// A secret's keyed BLAKE3 fingerprint: 32 random-looking bytes, the first 8 its hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fingerprint(pub(crate) [u8; 32]);

impl Hash for Fingerprint {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let [a, b, c, d, e, f, g, h, ..] = self.0;
        state.write_u64(u64::from_le_bytes([a, b, c, d, e, f, g, h]));
    }
}

/// A scope's id (`key:<token>`, `team:<id>`) with its hash, computed once.
#[derive(Debug, Clone)]
pub(crate) struct ScopeId {
    id: Arc<str>,
    hash: u64,
}

impl ScopeId {
    pub(crate) fn new(id: String) -> Self {
        Self {
            hash: xxhash_rust::xxh3::xxh3_64(id.as_bytes()),
            id: id.into(),
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.id
    }
}

impl PartialEq for ScopeId {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.id, &other.id) || (self.hash == other.hash && self.id == other.id)
    }
}

impl Eq for ScopeId {}

impl Hash for ScopeId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_ids_are_one_key_whichever_allocation_they_are() {
        let mut map = PrehashedMap::default();
        map.insert(ScopeId::new("key:a".into()), 1);
        *map.get_mut(&ScopeId::new("key:a".into())).expect("found") += 1;
        assert_eq!(map.get(&ScopeId::new("key:a".into())), Some(&2));
        assert_eq!(map.get(&ScopeId::new("key:b".into())), None);
        let mut fingerprints = PrehashedMap::default();
        fingerprints.insert(Fingerprint([7; 32]), ());
        assert!(fingerprints.contains_key(&Fingerprint([7; 32])));
        assert!(!fingerprints.contains_key(&Fingerprint([8; 32])));
    }
}
