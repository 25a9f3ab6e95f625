//! What the key store holds: virtual keys and teams, by LiteLLM's field names.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// A virtual key as stored: everything but the secret, which only its hash stands for.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct KeyRow {
    /// SHA-256 of the secret, hex: the key's id.
    pub token: String,
    /// The secret's first and last characters (`sk-...abcd`), for people to recognise it.
    pub key_name: String,
    /// A unique name chosen by whoever created it; metering records it as the key's name.
    pub key_alias: Option<String>,
    /// The team whose limits also apply.
    pub team_id: Option<String>,
    /// Whom the key is for (recorded, not enforced).
    pub user_id: Option<String>,
    /// Models the key may call (provider/model patterns, aliases, combos); empty: all.
    pub models: Vec<String>,
    /// USD the key may spend per budget period (or ever, without `budget_duration`).
    pub max_budget: Option<f64>,
    /// The budget period (`30d`, `1h`, …).
    pub budget_duration: Option<String>,
    /// When the spend next goes back to 0 (ms since the Unix epoch).
    pub budget_reset_at_ms: Option<i64>,
    /// USD spent in the current period (as of the last read of the store).
    pub spend: f64,
    /// Requests per minute.
    pub rpm_limit: Option<u64>,
    /// Tokens (prompt + completion) per minute.
    pub tpm_limit: Option<u64>,
    /// Requests at the same time.
    pub max_parallel_requests: Option<u64>,
    /// When the key stops working (ms since the Unix epoch).
    pub expires_ms: Option<i64>,
    /// A blocked key is refused until unblocked.
    pub blocked: bool,
    /// Free-form, returned as given.
    pub metadata: Map<String, Value>,
    /// When created and last changed (ms since the Unix epoch).
    pub created_at_ms: i64,
    /// When last changed.
    pub updated_at_ms: i64,
}

/// A team: limits shared by its keys, on top of each key's own.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TeamRow {
    /// The team's id (chosen, or a UUID).
    pub team_id: String,
    /// A name for people.
    pub team_alias: Option<String>,
    /// Models the team's keys may call; empty: all.
    pub models: Vec<String>,
    /// USD the team may spend per period.
    pub max_budget: Option<f64>,
    /// The budget period.
    pub budget_duration: Option<String>,
    /// When the team's spend next goes back to 0.
    pub budget_reset_at_ms: Option<i64>,
    /// USD spent in the current period.
    pub spend: f64,
    /// Requests per minute, all the team's keys together.
    pub rpm_limit: Option<u64>,
    /// Tokens per minute, all the team's keys together.
    pub tpm_limit: Option<u64>,
    /// Requests at the same time, all the team's keys together.
    pub max_parallel_requests: Option<u64>,
    /// A blocked team's keys are refused.
    pub blocked: bool,
    /// Free-form.
    pub metadata: Map<String, Value>,
    /// When created.
    pub created_at_ms: i64,
    /// When last changed.
    pub updated_at_ms: i64,
}

/// The id a secret is stored under: SHA-256, hex (as LiteLLM stores its keys).
pub fn hash_key(secret: &str) -> String {
    Token::of(secret).as_str().to_owned()
}

/// A secret's id on the stack (the request path looks keys up without allocating).
pub(crate) struct Token([u8; 64]);

impl Token {
    pub(crate) fn of(secret: &str) -> Self {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let digest = Sha256::digest(secret.as_bytes());
        let mut out = [0; 64];
        for (pair, byte) in out.chunks_exact_mut(2).zip(digest) {
            pair[0] = HEX[usize::from(byte >> 4)];
            pair[1] = HEX[usize::from(byte & 15)];
        }
        Self(out)
    }

    pub(crate) fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("hex is ASCII")
    }
}

/// Whether `text` is a stored key's id rather than a secret.
pub(crate) fn is_token(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// How a secret is shown once it has been handed out: `sk-...abcd`.
pub fn display_name(secret: &str) -> String {
    let tail: String = secret
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let head = if secret.starts_with("sk-") { "sk-" } else { "" };
    format!("{head}...{tail}")
}

/// A new secret: `sk-` and 32 characters of base64url from the operating system's
/// randomness (192 bits).
pub(crate) fn new_secret() -> String {
    use base64::Engine;
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).expect("the operating system's random source");
    format!(
        "sk-{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// A new team id: a random UUID (version 4), as LiteLLM makes them.
pub(crate) fn new_team_id() -> String {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("the operating system's random source");
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_stored_as_its_sha256() {
        // printf 'sk-1234' | sha256sum
        assert_eq!(
            hash_key("sk-1234"),
            "88dc28d0f030c55ed4ab77ed8faf098196cb1c05df778539800c9f1243fe6b4b"
        );
        assert!(is_token(&hash_key("anything")));
        assert!(!is_token("sk-1234"));
        assert_eq!(display_name("sk-abcdefgh1234"), "sk-...1234");
        let secret = new_secret();
        assert!(secret.starts_with("sk-") && secret.len() == 35, "{secret}");
        assert_ne!(new_secret(), secret);
        let team = new_team_id();
        assert_eq!(team.len(), 36);
        assert_eq!(&team[14..15], "4");
    }
}
