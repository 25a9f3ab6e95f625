//! English words, their base forms and synonyms, from WordNet 3.0 (`lexicon/LICENSE`),
//! for the guard: whether a word is a real one (so that a one-letter difference between two
//! real words, `height` / `weight`, is not taken for a typo) and whether two words mean the
//! same (`big` / `large`).
//!
//! The tables are sorted text embedded in the binary and binary-searched where they lie:
//! nothing is parsed or allocated at start, and only the pages a lookup touches are read
//! (`eval/semcache/lexicon.py` writes them).

/// `word\tparts of speech (nvar)\tsynonym groups (comma-separated)[\tnoun classes]`, one
/// line per lemma; a noun class is a letter per WordNet lexicographer file (`noun.food`).
static WORDS: Table = Table::new(include_str!("lexicon/words.txt"));
/// `form\tlemma`, one line per irregular noun or verb form (`children`, `ran`).
static IRREGULAR: Table = Table::new(include_str!("lexicon/irregular.txt"));

/// Sorted lines, and where each first letter's lines begin (found on first use).
struct Table {
    text: &'static str,
    letters: std::sync::OnceLock<[usize; 27]>,
}

impl Table {
    const fn new(text: &'static str) -> Self {
        Self {
            text,
            letters: std::sync::OnceLock::new(),
        }
    }
}

/// The rest of the line of sorted `table` whose first field is `key`, searched in `lines`
/// (a byte range of whole lines).
fn find_in(
    table: &'static str,
    key: &str,
    (mut lo, mut hi): (usize, usize),
) -> Option<&'static str> {
    let bytes = table.as_bytes();
    // Invariant: lines starting in [lo, hi) are the candidates; `lo` is a line start.
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let start = memchr::memrchr(b'\n', &bytes[lo..mid]).map_or(lo, |i| lo + i + 1);
        let end = memchr::memchr(b'\n', &bytes[start..]).map_or(bytes.len(), |i| start + i);
        let line = &table[start..end];
        let (word, rest) = line.split_once('\t').unwrap_or((line, ""));
        match word.cmp(key) {
            std::cmp::Ordering::Equal => return Some(rest),
            std::cmp::Ordering::Less => lo = end + 1,
            std::cmp::Ordering::Greater => hi = start,
        }
    }
    None
}

/// Where the lines of each first letter begin in `table` (`a`..`z`, then the end), each
/// found by halving: a lookup then starts five halvings closer.
fn letters(table: &'static str) -> [usize; 27] {
    let bytes = table.as_bytes();
    let mut out = [bytes.len(); 27];
    for (i, letter) in (b'a'..=b'z').enumerate() {
        // The first line whose first byte is `letter` or later.
        let (mut lo, mut hi) = (0, bytes.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let start = memchr::memrchr(b'\n', &bytes[lo..mid]).map_or(lo, |i| lo + i + 1);
            if bytes[start] < letter {
                lo = memchr::memchr(b'\n', &bytes[start..]).map_or(bytes.len(), |i| start + i + 1);
            } else {
                hi = start;
            }
        }
        out[i] = lo;
    }
    out
}

/// The rest of the line of `table` whose first field is `key`.
fn find(table: &'static Table, key: &str) -> Option<&'static str> {
    let index = table.letters.get_or_init(|| letters(table.text));
    match key.bytes().next() {
        Some(first @ b'a'..=b'z') => {
            let i = usize::from(first - b'a');
            find_in(table.text, key, (index[i], index[i + 1]))
        }
        _ => None,
    }
}

/// A lemma's parts of speech and synonym groups (its noun classes after a tab).
fn entry(word: &str) -> Option<(&'static str, &'static str)> {
    find(&WORDS, word).map(|rest| rest.split_once('\t').unwrap_or((rest, "")))
}

/// WordNet's detachment rules (morphy): ending, replacement, part of speech the result
/// must have; and the adverb of an adjective (`safely`, `easily`), which WordNet keeps as a
/// lemma of its own.
const RULES: [(&str, &str, char); 22] = [
    ("s", "", 'n'),
    ("ses", "s", 'n'),
    ("xes", "x", 'n'),
    ("zes", "z", 'n'),
    ("ches", "ch", 'n'),
    ("shes", "sh", 'n'),
    ("men", "man", 'n'),
    ("ies", "y", 'n'),
    ("s", "", 'v'),
    ("ies", "y", 'v'),
    ("es", "e", 'v'),
    ("es", "", 'v'),
    ("ed", "e", 'v'),
    ("ed", "", 'v'),
    ("ing", "e", 'v'),
    ("ing", "", 'v'),
    ("er", "", 'a'),
    ("est", "", 'a'),
    ("er", "e", 'a'),
    ("est", "e", 'a'),
    ("ly", "", 'a'),
    ("ily", "y", 'a'),
];

/// Calls `f` with each base form of `word` (itself when it is a lemma, its irregular lemma,
/// what the detachment rules leave) and that form's synonym groups, until `f` says stop.
fn each_lemma(word: &str, mut f: impl FnMut(&str, &'static str) -> bool) -> bool {
    if let Some((_, groups)) = entry(word) {
        if f(word, groups) {
            return true;
        }
    }
    if let Some(lemma) = find(&IRREGULAR, word) {
        if let Some((_, groups)) = entry(lemma) {
            if f(lemma, groups) {
                return true;
            }
        }
    }
    let mut seen: Vec<String> = Vec::new();
    for (ending, replacement, _) in RULES {
        let Some(root) = word.strip_suffix(ending) else {
            continue;
        };
        let base = [root, replacement].concat();
        if root.len() < 2 || seen.contains(&base) {
            continue;
        }
        // Every part of speech a rule for this ending and replacement allows.
        let allowed = RULES
            .iter()
            .filter(|r| r.0 == ending && r.1 == replacement)
            .map(|r| r.2);
        if let Some((parts, groups)) = entry(&base) {
            if allowed.into_iter().any(|p| parts.contains(p)) && f(&base, groups) {
                return true;
            }
        }
        seen.push(base);
    }
    false
}

/// Whether `word` (lowercase) is an English word or a form of one.
pub(crate) fn known(word: &str) -> bool {
    each_lemma(word, |_, _| true)
}

/// Whether two words (lowercase) are forms of one (`propagating` / `propagate`).
pub(crate) fn same_lemma(x: &str, y: &str) -> bool {
    each_lemma(x, |lx, _| each_lemma(y, |ly, _| lx == ly))
}

/// What the lexicon says of a word (lowercase) and its base forms.
#[derive(Debug, Default)]
pub(crate) struct Word {
    /// Whether it is an English word or a form of one.
    pub known: bool,
    /// Its synonym groups: two words are synonyms when they share one, a sense among the
    /// most frequent of each.
    pub groups: Vec<&'static str>,
    /// The kinds of thing it names in its most frequent noun senses, a bit per WordNet
    /// lexicographer file (`noun.food`, `noun.animal`; not `noun.Tops`): two words of one
    /// kind (`potatoes` / `tofu`) are two things of a sort.
    pub classes: u32,
}

/// [`Word`] for `word` (lowercase), in one walk over its base forms.
pub(crate) fn word(word: &str) -> Word {
    let mut out = Word::default();
    each_lemma(word, |_, fields| {
        out.known = true;
        let (groups, classes) = fields.split_once('\t').unwrap_or((fields, ""));
        out.groups
            .extend(groups.split(',').filter(|g| !g.is_empty()));
        out.classes |= classes
            .bytes()
            .filter(u8::is_ascii_lowercase)
            .fold(0, |set, c| set | 1 << (c - b'a'));
        false
    });
    // Most plants we eat are named for the plant first (`chickpea`): a plant is a food too.
    const FOOD: u32 = 1 << (13 - 4);
    const PLANT: u32 = 1 << (20 - 4);
    if out.classes & PLANT != 0 {
        out.classes |= FOOD;
    }
    out
}

#[cfg(test)]
fn synonyms(x: &str, y: &str) -> bool {
    let gy = word(y).groups;
    word(x).groups.iter().any(|g| gy.contains(g))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_and_their_forms_are_known() {
        for word in [
            "height", "weight", "children", "ran", "sorting", "boxes", "taller",
        ] {
            assert!(known(word), "{word}");
        }
        for word in ["pnather", "heigth", "javscript", "duplictaes"] {
            assert!(!known(word), "{word}");
        }
        assert!(same_lemma("propagating", "propagate"));
        assert!(same_lemma("children", "child"));
        assert!(!same_lemma("plants", "planets"));
        for table in [&WORDS, &IRREGULAR] {
            let index = letters(table.text);
            for (i, letter) in ('a'..='z').enumerate() {
                let lines = &table.text[index[i]..index[i + 1]];
                assert!(lines.lines().all(|l| l.starts_with(letter)), "{letter}");
            }
        }
        assert_eq!(find(&WORDS, "zymurgy").map(|r| &r[..1]), Some("n"));
        assert_eq!(find(&WORDS, "a'man").map(|r| &r[..1]), Some("n"));
        assert_eq!(find(&WORDS, "zzzz"), None);
        assert_eq!(find(&WORDS, "'"), None);
    }

    #[test]
    fn adverbs_are_forms_of_their_adjectives_and_nouns_have_kinds() {
        assert!(same_lemma("safely", "safest"));
        assert!(same_lemma("easily", "easy"));
        assert!(!same_lemma("safely", "saucy"));
        let classes = |w: &str| word(w).classes;
        let (potatoes, tofu, chickpeas) =
            (classes("potatoes"), classes("tofu"), classes("chickpeas"));
        assert!(potatoes & tofu != 0 && chickpeas & tofu != 0);
        assert_eq!(classes("recommended"), 0);
        assert_eq!(classes("tofu") & classes("way"), 0);
    }

    #[test]
    fn synonyms_share_a_frequent_sense() {
        for (x, y) in [
            ("big", "large"),
            ("purchase", "buy"),
            ("bigger", "larger"),
            ("mistakes", "error"),
        ] {
            assert!(synonyms(x, y), "{x} {y}");
            assert!(synonyms(y, x), "{y} {x}");
        }
        // Opposites, neighbours, and a rare sense (`sort` as `separate`) are not synonyms.
        for (x, y) in [
            ("big", "small"),
            ("height", "weight"),
            ("sort", "separate"),
            ("list", "array"),
        ] {
            assert!(!synonyms(x, y), "{x} {y}");
        }
    }
}
