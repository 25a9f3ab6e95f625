//! Token counts by the o200k_base BPE (GPT-4o and later), for usage estimates: the same
//! counts as `tiktoken` gives, from a compact table.
//!
//! tiktoken (and the `tiktoken-rs` crate) builds three hash maps of the ~200k tokens at first
//! use: 33 MB of heap in 600k allocations (dhat), ~42 MB of RSS that a gateway keeps from the
//! first stream it has to estimate on. Here the ranks are read in place from `o200k.bin`
//! (3 MB of read-only data written by `scripts/o200k.py` from OpenAI's rank file, MIT:
//! `LICENSE` here), only the pages a lookup touches ever loaded; what is built at first use
//! is a 257 kB index of two-byte prefixes. A lookup is a binary search among the tokens of
//! its prefix, where tiktoken hashes; estimates run on the usage writer's thread, off the
//! request path.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::LazyLock;

use fancy_regex::Regex;

/// Little-endian u32s: N, the end of every token's bytes in rank order, the ranks sorted by
/// their bytes; then the tokens' bytes in rank order.
static TABLE: &[u8] = include_bytes!("o200k.bin");

/// N, the number of tokens (the table's first word).
const TOKENS: usize = 199_998;
/// Where the tokens' bytes start in the table.
const TEXT: usize = 4 * (1 + 2 * TOKENS);

/// How o200k_base splits text into pieces before merging bytes (tiktoken's pattern).
const PATTERN: &str = concat!(
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    "|",
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    "|",
    r"\p{N}{1,3}",
    "|",
    r" ?[^\s\p{L}\p{N}]+[\r\n/]*",
    "|",
    r"\s*[\r\n]+",
    "|",
    r"\s+(?!\S)",
    "|",
    r"\s+",
);

static PIECES: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(PATTERN).expect("the o200k pattern compiles"));

/// Tokens in `text` by o200k_base, special tokens read as ordinary text (tiktoken's
/// `encode_ordinary(text).len()`).
pub(crate) fn count(text: &str) -> u64 {
    let mut tokens = 0;
    let mut done = 0;
    for piece in PIECES.find_iter(text) {
        let Ok(piece) = piece else {
            // The matcher gave up (its backtracking limit): the rest at ~4 bytes a token.
            return tokens + (text.len() - done).div_ceil(4) as u64;
        };
        done = piece.end();
        let piece = piece.as_str().as_bytes();
        tokens += if rank(piece).is_some() {
            1
        } else {
            merged(piece)
        };
    }
    tokens
}

fn word(i: usize) -> usize {
    u32::from_le_bytes(TABLE[4 * i..4 * i + 4].try_into().expect("four bytes")) as usize
}

/// The bytes of the token of `rank`.
fn token(rank: usize) -> &'static [u8] {
    let start = if rank == 0 { 0 } else { word(rank) };
    &TABLE[TEXT + start..TEXT + word(1 + rank)]
}

/// The rank at `i` in the ranks sorted by their tokens' bytes.
fn sorted(i: usize) -> usize {
    word(1 + TOKENS + i)
}

/// Where the tokens of each two-byte prefix start in the sorted ranks (the key of a token
/// is its first byte and its second or none, in sort order), so that a search looks at a
/// few dozen tokens rather than all: 257 kB, built at first use. Without it an estimated
/// stream cost 14 % more instructions than tiktoken's hash maps (1,673k against 1,465k).
static PREFIXES: LazyLock<Vec<u32>> = LazyLock::new(|| {
    let mut first = vec![0u32; KEYS + 1];
    let mut k = 0;
    for i in 0..TOKENS {
        let key = prefix(token(sorted(i)));
        while k <= key {
            first[k] = i as u32;
            k += 1;
        }
    }
    first[k..].fill(TOKENS as u32);
    first
});

const KEYS: usize = 256 * 257;

fn prefix(bytes: &[u8]) -> usize {
    bytes[0] as usize * 257 + bytes.get(1).map_or(0, |&b| b as usize + 1)
}

/// The rank of the token spelled `bytes`, if there is one.
fn rank(bytes: &[u8]) -> Option<u32> {
    if bytes.is_empty() {
        return None;
    }
    let key = prefix(bytes);
    let (mut lo, mut hi) = (PREFIXES[key] as usize, PREFIXES[key + 1] as usize);
    while lo < hi {
        let mid = (lo + hi) / 2;
        let rank = sorted(mid);
        match token(rank).cmp(bytes) {
            Ordering::Less => lo = mid + 1,
            Ordering::Greater => hi = mid,
            Ordering::Equal => return Some(rank as u32),
        }
    }
    None
}

/// The number of tokens a piece that is no token itself merges into: byte pair merging as
/// tiktoken does it (the adjacent pair of lowest rank first, the leftmost on a tie), with a
/// heap so that a long piece (a run of letters in a base64 blob) stays O(n log n).
fn merged(piece: &[u8]) -> u64 {
    let n = piece.len();
    if n < 2 {
        return n as u64;
    }
    const NONE: u32 = u32::MAX;
    // Segment i spans piece[i..next[i]]; pair[i] is the rank of it joined with the next
    // segment (NONE: no such token, or i is no longer a segment's start).
    let mut next: Vec<usize> = (1..=n).collect();
    let mut prev: Vec<usize> = (0..n).map(|i| i.wrapping_sub(1)).collect();
    let mut pair = vec![NONE; n];
    let mut heap = BinaryHeap::with_capacity(n);
    for i in 0..n - 1 {
        if let Some(r) = rank(&piece[i..i + 2]) {
            pair[i] = r;
            heap.push(std::cmp::Reverse((r, i)));
        }
    }
    let mut segments = n as u64;
    let join = |pair: &mut [u32], heap: &mut BinaryHeap<_>, at: usize, end: usize| {
        pair[at] = rank(&piece[at..end]).unwrap_or(NONE);
        if pair[at] != NONE {
            heap.push(std::cmp::Reverse((pair[at], at)));
        }
    };
    while let Some(std::cmp::Reverse((r, i))) = heap.pop() {
        // Stale: the segment grew since (another pair, another rank) or is gone.
        if pair[i] != r {
            continue;
        }
        let gone = next[i];
        let after = next[gone];
        next[i] = after;
        pair[gone] = NONE;
        pair[i] = NONE;
        segments -= 1;
        if after < n {
            prev[after] = i;
            join(&mut pair, &mut heap, i, next[after]);
        }
        if i > 0 {
            join(&mut pair, &mut heap, prev[i], after);
        }
    }
    segments
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn tiktoken(text: &str) -> u64 {
        tiktoken_rs::o200k_base_singleton()
            .encode_ordinary(text)
            .len() as u64
    }

    #[test]
    fn the_table_holds_every_rank_once_and_sorted() {
        let n = TOKENS;
        assert_eq!(word(0), n);
        assert_eq!(token(0), b"!");
        for i in 1..n {
            assert!(token(sorted(i - 1)) < token(sorted(i)), "sorted at {i}");
        }
        let the = tiktoken_rs::o200k_base_singleton().encode_ordinary(" the");
        assert_eq!(rank(b" the"), Some(the[0]));
        assert_eq!(rank(b"no such token, surely"), None);
        for r in 0..n {
            assert_eq!(rank(token(r)), Some(r as u32));
        }
    }

    #[test]
    fn counts_are_tiktokens_on_prose_code_and_other_scripts() {
        let long_word = "a".repeat(5000);
        let blob = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3ODkrLw==".repeat(40);
        let texts = [
            "",
            "Hello, world!",
            "We run an LLM gateway in front of several providers. What should we measure?",
            "fn main() {\n    println!(\"{}\", 1 + 2);\n}\n",
            "I'm sure they'll say it's fine; we've done it, haven't we? THEY'LL SAY IT'S FINE.",
            "Zürich, São Paulo, Kraków — naïve façade; 東京都の天気は晴れです。 Привет, мир! 🎉🚀",
            "   leading spaces\t\ttabs\n\n\nnewlines \r\n windows   trailing   ",
            "1234567890 3.14159 1e-9 0xDEADBEEF 2026-12-07T23:03:22Z",
            "<|endoftext|> special tokens read as text <|endofprompt|>",
            "مرحبا بالعالم · नमस्ते दुनिया · 안녕하세요 세계",
            &long_word,
            &blob,
        ];
        for text in texts {
            assert_eq!(
                count(text),
                tiktoken(text),
                "{:?}",
                &text[..text.len().min(60)]
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn counts_are_tiktokens_on_any_text(text in "\\PC{0,200}") {
            prop_assert_eq!(count(&text), tiktoken(&text));
        }

        #[test]
        fn counts_are_tiktokens_on_wordy_text(
            text in "([a-zA-Z]{1,12}|[0-9]{1,6}|[ \\n\\t]{1,4}|[.,;:!?'\"()-]{1,3}|é|ß|中文|🙂){0,60}",
        ) {
            prop_assert_eq!(count(&text), tiktoken(&text));
        }
    }
}
