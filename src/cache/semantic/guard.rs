//! The lexical guard: what embeddings blur, compared exactly.
//!
//! A semantic candidate above the threshold is served only when the guard agrees:
//!
//! 1. the normalized texts are equal (case, whitespace, apostrophes, closing punctuation,
//!    greeting and thanks wrappers): always a hit, whatever the cosine;
//! 2. otherwise both must have the same numbers (digits and number words), the same
//!    negation, the same units, the same technical and proper tokens (capitalized
//!    mid-sentence, all-caps, or holding digits or `.#+`; one typo allowed in long words),
//!    no relation reversed ("X to Y" / "Y to X"), no antonym swapped in, every content word
//!    matched on the other side (the same word, a typo of it, a form of it or a synonym in
//!    its place, by the English [`lexicon`]) and no two terms exchanged.

use std::borrow::Cow;
use std::collections::HashSet;

use unicode_normalization::UnicodeNormalization;

use super::lexicon;

/// Why the guard said what it said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The normalized texts are equal.
    Exact,
    /// Nothing the guard checks differs.
    Agree,
    /// Different numbers.
    Numbers,
    /// One is negated, the other not.
    Negation,
    /// Different units.
    Units,
    /// A technical or proper token of one is missing from the other.
    Entities,
    /// A relation is reversed.
    Reversed,
    /// One holds a word whose opposite the other holds.
    Antonym,
    /// A content word of one was swapped for another word in the other (`cat` / `dog`).
    Substitution,
    /// Two terms around a relation changed places (`cat sat on the mat` / `mat sat on the
    /// cat`).
    Swapped,
    /// One holds a content word the other has nothing for (`in order` / `in reverse
    /// order`, `sort a list` / `sort a list in place`).
    Addition,
    /// A number quantifies another word (`250 miles in km` / `250 km in miles`).
    Quantity,
    /// Different quoted strings, or different code symbols (`&` / `|`).
    Quoted,
    /// One asks who, when, where or why, the other not the same (`Who wrote it?` / `When was
    /// it written?`).
    Asked,
}

impl Verdict {
    /// Whether a hit may be served.
    pub fn allows(self) -> bool {
        matches!(self, Self::Exact | Self::Agree)
    }
}

/// Compares two prompts.
pub fn guard(a: &str, b: &str) -> Verdict {
    if normalize(a) == normalize(b) {
        return Verdict::Exact;
    }
    // Greeting and thanks wrappers say nothing; inside the question the same words do
    // (`How do I say hello in Japanese?` / `… say thanks …`).
    let (a, b) = (unwrapped(a), unwrapped(b));
    let (ta, tb) = (tokens(a), tokens(b));
    if quoted(a) != quoted(b) || symbols(a) != symbols(b) {
        return Verdict::Quoted;
    }
    if numbers(a) != numbers(b) {
        return Verdict::Numbers;
    }
    if asked(&ta) != asked(&tb) {
        return Verdict::Asked;
    }
    if negated(a, &ta) != negated(b, &tb) {
        return Verdict::Negation;
    }
    // Typos are looked for only when the units differ (most pairs name the same).
    if units(a, false) != units(b, false) && units(a, true) != units(b, true) {
        return Verdict::Units;
    }
    let la: HashSet<String> = ta.iter().map(|t| t.to_lowercase()).collect();
    let lb: HashSet<String> = tb.iter().map(|t| t.to_lowercase()).collect();
    let covered = |entities: &HashSet<String>, words: &HashSet<String>| {
        entities.iter().all(|e| words.iter().any(|w| near(e, w)))
    };
    if !covered(&entities(a, &ta), &lb) || !covered(&entities(b, &tb), &la) {
        return Verdict::Entities;
    }
    let (ra, rb) = (relations(&ta), relations(&tb));
    if ra
        .iter()
        .any(|(l, w, r)| l != r && rb.contains(&(r.clone(), w.clone(), l.clone())))
    {
        return Verdict::Reversed;
    }
    if antonym_swap(&la, &lb) {
        return Verdict::Antonym;
    }
    let (wa, wb) = (content(&ta), content(&tb));
    // One letter apart (the stems, or the tokens: `printng` / `printing`) is the same word
    // when one token is no word (a typo: `successses`, though its stem `successs` is one
    // letter from `success`) or both are forms of one (`propagating` / `propagate`, which
    // the crude stem leaves apart).
    // Forms of one word (`safest` / `safely`) start alike: the lexicon is asked only then.
    let same = |(tw, w): (&str, &str), (tv, v): (&str, &str)| {
        w == v
            || ((one_edit(w, v) || one_edit(tw, tv)) && one_word(tw, tv))
            || (tw.len() >= 4 && tw.get(..3) == tv.get(..3) && lexicon::same_lemma(tw, tv))
    };
    // Each side's content words (with their tokens, lowercase) the other side has no same
    // word for.
    let unmatched = |x: &[(String, &String)], y: &[(String, &String)]| -> Vec<String> {
        x.iter()
            .filter(|w| !y.iter().any(|v| same((&w.0, w.1), (&v.0, v.1))))
            .map(|w| w.0.clone())
            .collect()
    };
    fn pairs<'a>(t: &[String], w: &'a [Option<String>]) -> Vec<(String, &'a String)> {
        t.iter()
            .zip(w)
            .filter_map(|(t, w)| Some((t.to_ascii_lowercase(), w.as_ref()?)))
            .collect()
    }
    let (pa, pb) = (pairs(&ta, &wa), pairs(&tb, &wb));
    let (ua, ub) = (unmatched(&pa, &pb), unmatched(&pb, &pa));
    // An unmatched word with no synonym among the other side's unmatched words (a synonym
    // takes a word's place: in `set` / `set in place`, `place` is added, though `set` and
    // `place` share a sense). Each is looked up once.
    let (la, lb): (Vec<_>, Vec<_>) = (
        ua.iter().map(|w| lexicon::word(w)).collect(),
        ub.iter().map(|w| lexicon::word(w)).collect(),
    );
    let synonym = |w: &lexicon::Word, y: &[lexicon::Word]| {
        y.iter()
            .any(|v| v.groups.iter().any(|id| w.groups.contains(id)))
    };
    // Each side's unmatched words that have no synonym on the other side.
    let own = |x: &'_ [lexicon::Word], y: &[lexicon::Word]| -> Vec<usize> {
        (0..x.len()).filter(|&i| !synonym(&x[i], y)).collect()
    };
    let (oa, ob) = (own(&la, &lb), own(&lb, &la));
    let (ma, mb) = (!oa.is_empty(), !ob.is_empty());
    if ma && mb {
        let side = |u: &[String], l: &[lexicon::Word], own: &[usize]| -> Vec<(String, u32, bool)> {
            own.iter()
                .map(|&i| (u[i].clone(), l[i].classes, l[i].known))
                .collect()
        };
        if let Some(verdict) = substituted((&ta, &side(&ua, &la, &oa)), (&tb, &side(&ub, &lb, &ob)))
        {
            return verdict;
        }
    } else if ma || mb {
        return Verdict::Addition;
    }
    if quantities(&ta, &wa) != quantities(&tb, &wb) {
        return Verdict::Quantity;
    }
    if inverted((&ta, &wa), (&tb, &wb)) || exchanged((&ta, &wa), (&tb, &wb)) {
        return Verdict::Swapped;
    }
    Verdict::Agree
}

/// Both sides hold words the other has nothing for: other words for the same question (`How
/// should I scale Kafka, ideally?` / `What is the recommended way to scale Kafka?`) or
/// another question (`How long should I bake potatoes?` / `… bake tofu?`). Another question
/// (`Some`) when such a word is the negative of one of the other side (`unsafe` /
/// `safely`), is no English word (a name the capitals did not show, `quinoa`), stands where
/// one of the other stands (beside the same word, or both first or last), or names the same
/// kind of thing. Each side is its tokens and those words (lowercase, with their
/// [`lexicon::Word::classes`] and whether they are known), synonyms of the other side's left
/// out.
fn substituted(
    a: (&[String], &[(String, u32, bool)]),
    b: (&[String], &[(String, u32, bool)]),
) -> Option<Verdict> {
    let (xa, xb) = (a.1, b.1);
    // `unsafe` / `safely`, `dislike` / `like`: a negating prefix on a form of the other.
    let negative = |x: &str, y: &str| {
        ["un", "in", "im", "ir", "il", "dis", "non"]
            .iter()
            .any(|p| {
                x.strip_prefix(p).is_some_and(|rest| {
                    rest.len() >= 3 && (rest == y || lexicon::same_lemma(rest, y))
                })
            })
    };
    if xa.iter().any(|x| {
        xb.iter()
            .any(|y| negative(&x.0, &y.0) || negative(&y.0, &x.0))
    }) {
        return Some(Verdict::Antonym);
    }
    if xa.iter().chain(xb).any(|w| !w.2) {
        return Some(Verdict::Substitution);
    }
    let classes = |x: &[(String, u32, bool)]| x.iter().fold(0, |set, w| set | w.1);
    if classes(xa) & classes(xb) != 0 {
        return Some(Verdict::Substitution);
    }
    // The words beside each occurrence of `word` (articles skipped; `^` and `$` at the
    // ends): `(after, neighbour)`.
    fn beside<'a>(tokens: &'a [String], word: &str, out: &mut Vec<(bool, &'a str)>) {
        let article = |t: &str| ["a", "an", "the"].iter().any(|x| t.eq_ignore_ascii_case(x));
        let words: Vec<&str> = tokens
            .iter()
            .map(String::as_str)
            .filter(|t| !article(t))
            .collect();
        for (i, t) in words.iter().enumerate() {
            if t.eq_ignore_ascii_case(word) {
                out.push((false, if i == 0 { "^" } else { words[i - 1] }));
                out.push((true, words.get(i + 1).copied().unwrap_or("$")));
            }
        }
    }
    let (mut near_a, mut near_b) = (Vec::new(), Vec::new());
    xa.iter().for_each(|x| beside(a.0, &x.0, &mut near_a));
    xb.iter().for_each(|y| beside(b.0, &y.0, &mut near_b));
    let aligned = near_a.iter().any(|(r, w)| {
        near_b
            .iter()
            .any(|(s, v)| r == s && w.eq_ignore_ascii_case(v))
    });
    aligned.then_some(Verdict::Substitution)
}

/// The same wording with two terms exchanged (`Did the fall of Rome happen before the
/// printing press?` / `Did the printing press happen before the fall of Rome?`): whatever
/// word relates them, the question is another one, unless the terms only ever stand
/// coordinated (`the difference between a list and a tuple`: `and`/`or` commute). The
/// wording is every token but filler, stop words included (`a Python list` is not `a list
/// in Python` exchanged). Each side is its tokens and their [`content`].
fn exchanged(a: (&[String], &[Option<String>]), b: (&[String], &[Option<String>])) -> bool {
    // The wording: (word, token position, whether it is a content word).
    fn wording<'a>(
        (ts, ws): (&'a [String], &'a [Option<String>]),
    ) -> Vec<(Cow<'a, str>, usize, bool)> {
        ts.iter()
            .zip(ws)
            .enumerate()
            .filter_map(|(i, (t, w))| match w {
                Some(w) => Some((Cow::Borrowed(w.as_str()), i, true)),
                // `a` and `an` are one word (which one follows the next sound).
                None if t.eq_ignore_ascii_case("an") => Some((Cow::Borrowed("a"), i, false)),
                None => {
                    let t = t.to_ascii_lowercase();
                    is_stop(&t).then_some((Cow::Owned(t), i, false))
                }
            })
            .collect()
    }
    let (sa, sb) = (wording(a), wording(b));
    let (wa, wb): (Vec<&str>, Vec<&str>) = (
        sa.iter().map(|w| w.0.as_ref()).collect(),
        sb.iter().map(|w| w.0.as_ref()).collect(),
    );
    let Some(start) = wa.iter().zip(&wb).position(|(x, y)| x != y) else {
        return false;
    };
    // The two terms start where the sides first differ; a term is a few words, one of them
    // a content word.
    let holds_content = |s: &[(Cow<str>, usize, bool)]| s.iter().any(|w| w.2);
    for kx in 1..=5.min(wa.len() - start) {
        for ky in 1..=5.min(wb.len() - start) {
            let (x, y) = (&wa[start..start + kx], &wb[start..start + ky]);
            if !holds_content(&sa[start..start + kx])
                || !holds_content(&sb[start..start + ky])
                || x.iter().any(|w| y.contains(w))
            {
                continue;
            }
            // Every x becomes y and every y x: the other side, word for word?
            let (mut i, mut j, mut spans) = (0, 0, Vec::new());
            let matches = loop {
                if i == wa.len() {
                    break j == wb.len();
                }
                let (from, to) = if wa[i..].starts_with(x) {
                    (x, y)
                } else if wa[i..].starts_with(y) {
                    (y, x)
                } else {
                    (&wa[i..i + 1], &wa[i..i + 1])
                };
                if !wb[j..].starts_with(to) {
                    break false;
                }
                if from != to {
                    spans.push((i, i + from.len() - 1, from == x));
                }
                i += from.len();
                j += to.len();
            };
            // Two terms side by side are a phrase moved (`Summarize this in one sentence` /
            // `In one sentence, summarize this`), not exchanged around a relation.
            let apart = spans
                .windows(2)
                .all(|s| s[0].2 == s[1].2 || s[1].0 > s[0].1 + 1);
            if matches && spans.iter().any(|&(_, _, is_x)| !is_x) && apart {
                let tokens = |(from, to, is_x): (usize, usize, bool)| (sa[from].1, sa[to].1, is_x);
                return !coordinated(a.0, &spans.into_iter().map(tokens).collect::<Vec<_>>());
            }
        }
    }
    false
}

/// Every occurrence of either term (`(first token, last token, which)`, in order) stands
/// next to one of the other joined by `and`/`or`, articles allowed.
fn coordinated(tokens: &[String], spans: &[(usize, usize, bool)]) -> bool {
    let joined = |left: (usize, usize, bool), right: (usize, usize, bool)| {
        left.2 != right.2
            && tokens[left.1 + 1..right.0].iter().all(|t| {
                ["and", "or", "a", "an", "the", "both", "either"]
                    .iter()
                    .any(|w| t.eq_ignore_ascii_case(w))
            })
            && tokens[left.1 + 1..right.0]
                .iter()
                .any(|t| t.eq_ignore_ascii_case("and") || t.eq_ignore_ascii_case("or"))
    };
    (0..spans.len()).all(|k| {
        (k > 0 && joined(spans[k - 1], spans[k]))
            || (k + 1 < spans.len() && joined(spans[k], spans[k + 1]))
    })
}

/// The strings in backticks or double quotes, and in single quotes that are not
/// apostrophes, normalized.
fn quoted(s: &str) -> Vec<String> {
    let chars: Vec<char> = nfkc(s).chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let open = chars[i];
        let (close, opens) = match open {
            '`' => ('`', true),
            '"' => ('"', true),
            '\u{201c}' => ('\u{201d}', true),
            // A single quote opens a string only after a space or at the start.
            '\'' => ('\'', i == 0 || !chars[i - 1].is_alphanumeric()),
            _ => (' ', false),
        };
        if opens {
            if let Some(len) = chars[i + 1..].iter().position(|&c| c == close) {
                let inner: String = chars[i + 1..i + 1 + len].iter().collect();
                out.push(normalize(&inner));
                i += len + 2;
                continue;
            }
        }
        i += 1;
    }
    out.sort_unstable();
    out
}

/// Code symbols (operators, brackets), as a set: bit `i` for `SYMBOLS[i]`.
fn symbols(s: &str) -> u32 {
    const SYMBOLS: &[u8; 17] = b"&|^~*/%=<>@\\{}[]$";
    s.bytes().fold(0, |set, b| {
        SYMBOLS
            .iter()
            .position(|&c| c == b)
            .map_or(set, |i| set | 1 << i)
    })
}

/// Words that carry no content in a prompt: stop words, wrappers, filler.
const FILLER: [&str; 34] = [
    "please",
    "pls",
    "any",
    "some",
    "there",
    "way",
    "best",
    "good",
    "tell",
    "give",
    "show",
    "explain",
    "describe",
    "steps",
    "step",
    "help",
    "need",
    "want",
    "like",
    "using",
    "use",
    "running",
    "get",
    "make",
    "am",
    "im",
    "walk",
    "through",
    "simplest",
    "easiest",
    "convert",
    "understand",
    "possible",
    "many",
];

/// Synonyms common in prompts, mapped to one word.
fn canonical(w: &str) -> &str {
    match w {
        "correct" | "repair" => "fix",
        "far" => "distance",
        "compose" | "create" | "draft" => "write",
        "turn" | "change" | "transform" => "convert",
        "quick" | "quickly" | "fast" | "rapidly" => "quick",
        "frequently" | "often" => "often",
        "largest" | "biggest" => "largest",
        "highest" | "tallest" => "highest",
        "suggest" => "recommend",
        "quit" | "leave" | "close" => "exit",
        "shorten" | "shorter" => "short",
        "modify" | "edit" | "alter" => "edit",
        "begin" | "commence" => "start",
        "finish" | "conclude" => "end",
        "mom" | "mother" => "mother",
        "dad" | "father" => "father",
        "dict" => "dictionary",
        "js" => "javascript",
        "ts" => "typescript",
        "py" => "python",
        "k8s" => "kubernetes",
        "macos" | "osx" => "mac",
        "original" => "first",
        "tyre" => "tire",
        "reword" | "rephrase" | "rewrite" => "paraphrase",
        "remotely" | "remote" => "remote",
        "working" | "work" => "work",
        other => other,
    }
}

/// A crude stem: plural, `-ing`, `-ed`, `-ly` endings dropped from longer words.
fn stem(w: &str) -> &str {
    for suffix in ["ing", "ed", "ly", "es", "s"] {
        if let Some(root) = w.strip_suffix(suffix) {
            if root.chars().count() >= 4 && !w.ends_with("ss") {
                return root;
            }
        }
    }
    w
}

/// Each token as a content word (lowercased, stemmed, synonyms folded), `None` for stop
/// words and filler.
fn content(tokens: &[String]) -> Vec<Option<String>> {
    tokens.iter().map(|t| content_word(t)).collect()
}

/// A token as a content word, unless it is a stop word or filler.
fn content_word(t: &str) -> Option<String> {
    let mut word = folded(t);
    if is_stop(&word) || FILLER.contains(&word.as_str()) {
        return None;
    }
    match canonical(&word) {
        // Not a synonym of another: its stem is a prefix of it.
        same if std::ptr::eq(same, word.as_str()) => {
            word.truncate(stem(same).len());
            Some(word)
        }
        other => Some(stem(other).to_owned()),
    }
}

/// A token lowercased, apostrophes dropped (`Don't` → `dont`).
fn folded(t: &str) -> String {
    let mut out = String::with_capacity(t.len());
    for c in t.chars() {
        match c {
            '\'' | '\u{2019}' => {}
            c if c.is_ascii() => out.push(c.to_ascii_lowercase()),
            c => out.extend(c.to_lowercase()),
        }
    }
    out
}

/// Each number with the content word after it (`250 miles`), sorted; `words` are the
/// tokens' [`content`].
fn quantities<'a>(tokens: &[String], words: &'a [Option<String>]) -> Vec<(String, &'a str)> {
    let mut out = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        if !is_plain_number(t) {
            continue;
        }
        let next = words[i + 1..].iter().flatten().next();
        if let Some(next) = next.filter(|w| !is_plain_number(w)) {
            out.push((t.replace(',', ""), unit_or_typo(next).unwrap_or(next)));
        }
    }
    out.sort_unstable();
    out
}

/// Two content words both prompts hold come in the other order, with a relational word
/// between them in either (`Which is heavier, a tiger or a horse? Is it the tiger?` /
/// `Is a horse heavier than a tiger?`): whatever the rest of the wording, the relation
/// runs the other way.
/// Each side is its tokens and their [`content`].
fn inverted(a: (&[String], &[Option<String>]), b: (&[String], &[Option<String>])) -> bool {
    // Each content word's first position, and the relational words: position, word, and
    // the content word it governs (the next one, articles skipped).
    type Relational<'a> = (usize, &'a str, Option<&'a str>);
    type Positions<'a> = (Vec<(&'a str, usize)>, Vec<Relational<'a>>);
    fn positions<'a>((ts, words): (&'a [String], &'a [Option<String>])) -> Positions<'a> {
        let mut first: Vec<(&str, usize)> = Vec::new();
        let mut relational = Vec::new();
        for (i, (t, word)) in ts.iter().zip(words).enumerate() {
            if RELATIONAL.iter().any(|r| t.eq_ignore_ascii_case(r)) {
                let governed = (i + 1..ts.len())
                    .find(|&k| {
                        !["a", "an", "the"]
                            .iter()
                            .any(|x| ts[k].eq_ignore_ascii_case(x))
                    })
                    .and_then(|k| words[k].as_deref());
                relational.push((i, t.as_str(), governed));
            }
            if let Some(word) = word {
                if !first.iter().any(|(w, _)| w == word) {
                    first.push((word, i));
                }
            }
        }
        (first, relational)
    }
    let ((fa, ra), (fb, rb)) = (positions(a), positions(b));
    // A directional word that governs one of two shared terms on one side and the other on
    // the other side (`invoke Perl functions from Clojure` / `From Perl, call into Clojure
    // code`): the direction runs the other way, whatever the wording.
    // Not for a distance, which runs both ways (`How far is Oslo from Lima?` / `the distance
    // from Oslo to Lima`).
    let symmetric = |(ts, _): (&[String], &[Option<String>])| {
        ts.iter().any(|t| {
            ["far", "distance", "apart"]
                .iter()
                .any(|w| t.eq_ignore_ascii_case(w))
        })
    };
    let shared = |w: &str| fa.iter().any(|(x, _)| *x == w) && fb.iter().any(|(x, _)| *x == w);
    let governs = |rel: &[Relational], word: &str, term: &str| {
        rel.iter()
            .any(|r| r.2 == Some(term) && r.1.eq_ignore_ascii_case(word))
    };
    let directed = !symmetric(a) && !symmetric(b);
    for (_, word, g) in ra.iter().filter(|_| directed) {
        let Some(g) = g.filter(|g| shared(g)) else {
            continue;
        };
        if !["to", "than", "into", "from", "vs", "versus"]
            .iter()
            .any(|d| word.eq_ignore_ascii_case(d))
        {
            continue;
        }
        let other = rb
            .iter()
            .filter_map(|o| o.2.filter(|h| o.1.eq_ignore_ascii_case(word) && *h != g));
        for h in other {
            if shared(h) && !governs(&rb, word, g) && !governs(&ra, word, h) {
                return true;
            }
        }
    }
    // A relational word that governs the same term on both sides moved with it (`From Go,
    // how do I call Rust?` / `How do I call Rust from Go?`): it relates nothing anew.
    let moved = |r: &Relational, other: &[Relational]| {
        r.2.is_some()
            && other
                .iter()
                .any(|o| o.2 == r.2 && o.1.eq_ignore_ascii_case(r.1))
    };
    let kept = |mine: &[Relational], other: &[Relational]| -> Vec<usize> {
        mine.iter()
            .filter(|r| !moved(r, other))
            .map(|r| r.0)
            .collect()
    };
    let (ra, rb) = (kept(&ra, &rb), kept(&rb, &ra));
    let at = |first: &[(&str, usize)], w: &str| first.iter().find(|(x, _)| *x == w).map(|p| p.1);
    let between =
        |rel: &[usize], x: usize, y: usize| rel.iter().any(|&r| x.min(y) < r && r < x.max(y));
    for (i, (x, xa)) in fa.iter().enumerate() {
        for (y, ya) in &fa[i + 1..] {
            let (Some(xb), Some(yb)) = (at(&fb, x), at(&fb, y)) else {
                continue;
            };
            if (xa < ya) != (xb < yb) && (between(&ra, *xa, *ya) || between(&rb, xb, yb)) {
                return true;
            }
        }
    }
    false
}

/// Words that make the order of the terms around them matter.
const RELATIONAL: [&str; 11] = [
    "to", "than", "into", "from", "vs", "versus", "is", "on", "over", "per", "by",
];

/// NFKC form (ASCII, most prompts, is its own).
fn nfkc(s: &str) -> std::borrow::Cow<'_, str> {
    if s.is_ascii() {
        return s.into();
    }
    s.nfkc().collect::<String>().into()
}

/// Case, whitespace, apostrophes, closing punctuation and greeting/thanks wrappers removed.
pub fn normalize(s: &str) -> String {
    let mut t = nfkc(s).trim().to_lowercase();
    for _ in 0..2 {
        t = strip_prefix_wrapper(&t).trim().to_owned();
        t = strip_suffix_wrapper(&t).trim().to_owned();
    }
    let t: String = t
        .chars()
        .filter(|&c| c != '\'' && c != '\u{2019}')
        .collect();
    let t = t.trim_end_matches(['?', '.', '!']);
    t.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `s` without its greeting and thanks wrappers (as [`normalize`] drops them), case kept.
fn unwrapped(s: &str) -> &str {
    let mut t = s;
    for _ in 0..2 {
        t = strip_prefix_wrapper(t.trim()).trim();
        t = strip_suffix_wrapper(t).trim();
    }
    t
}

/// A word (lowercase) of the social formulas that open a prompt and say nothing of the
/// question: greetings, whom they greet, discourse markers (`Okay so,`, `Hi all.`, `Real
/// quick:`, `I was wondering,`, `Sorry to bother you, but`).
fn opener(w: &str) -> bool {
    matches!(
        w,
        "hi" | "hello"
            | "hey"
            | "hiya"
            | "greetings"
            | "good"
            | "morning"
            | "afternoon"
            | "evening"
            | "dear"
            | "all"
            | "everyone"
            | "everybody"
            | "team"
            | "folks"
            | "guys"
            | "there"
            | "friends"
            | "okay"
            | "ok"
            | "so"
            | "well"
            | "alright"
            | "um"
            | "uh"
            | "hmm"
            | "oh"
            | "quick"
            | "real"
            | "question"
            | "one"
            | "sorry"
            | "to"
            | "bother"
            | "you"
            | "i"
            | "was"
            | "am"
            | "wondering"
            | "just"
            | "curious"
            | "anyway"
            | "excuse"
            | "me"
            | "hmmm"
            | "yo"
    )
}

/// A word (lowercase) of the formulas that close a prompt: thanks and sign-offs (`Much
/// appreciated.`, `Cheers, in advance.`, `Any help is welcome.`, `TIA!`).
fn closer(w: &str) -> bool {
    matches!(
        w,
        "thanks"
            | "thank"
            | "you"
            | "so"
            | "much"
            | "in"
            | "advance"
            | "appreciated"
            | "appreciate"
            | "it"
            | "cheers"
            | "tia"
            | "thx"
            | "ty"
            | "any"
            | "help"
            | "is"
            | "welcome"
            | "a"
            | "lot"
            | "many"
            | "kind"
            | "regards"
            | "would"
            | "be"
            | "great"
            | "grateful"
            | "very"
            | "all"
            | "the"
    )
}

/// A clause made only of words `of_formula` takes (and at least one of them): a formula.
fn formula(clause: &str, of_formula: fn(&str) -> bool) -> bool {
    let mut any = false;
    for w in clause.split(|c: char| !c.is_alphanumeric() && c != '\'') {
        if w.is_empty() {
            continue;
        }
        // Lowercased on the stack: formula words are short and ASCII.
        let mut buf = [0u8; 12];
        let Some(lower) = buf.get_mut(..w.len()).filter(|_| w.is_ascii()) else {
            return false;
        };
        lower.copy_from_slice(w.as_bytes());
        lower.make_ascii_lowercase();
        if !std::str::from_utf8(lower).is_ok_and(of_formula) {
            return false;
        }
        any = true;
    }
    any
}

fn strip_prefix_wrapper(t: &str) -> &str {
    // An opening formula (a few words) up to the first `,:;!.` (`Okay so, …`), and a `but`
    // after it.
    let opening = t.bytes().take(32).position(|b| b",:;!.".contains(&b));
    if let Some(end) = opening {
        let rest = t[end..].trim_start_matches([',', ':', ';', '!', '.', ' ']);
        if !rest.is_empty() && formula(&t[..end], opener) {
            return prefix(rest, "but ").unwrap_or(rest);
        }
    }
    for greeting in ["hello", "hey", "hi"] {
        if let Some(rest) = prefix(t, greeting) {
            let stripped = rest.trim_start_matches(['!', ',', '.', ' ']);
            if stripped.len() < rest.len() {
                return stripped;
            }
        }
    }
    for lead in ["quick question", "question for you"] {
        if let Some(rest) = prefix(t, lead) {
            if let Some(rest) = rest.trim_start().strip_prefix([':', '-']) {
                return rest.trim_start();
            }
        }
    }
    if let Some(rest) = prefix(t, "could you help me with this?") {
        return rest.trim_start();
    }
    if let Some(rest) = prefix(t, "please") {
        let stripped = rest.trim_start_matches([',', ' ']);
        if stripped.len() < rest.len() {
            return stripped;
        }
    }
    t
}

fn strip_suffix_wrapper(t: &str) -> &str {
    let body = t.trim_end_matches(['!', '.', ' ']);
    // A closing sentence of thanks after the question (`… overnight? TIA!`).
    if let Some(end) = body.rfind(['?', '.', '!']) {
        if end + 1 < body.len() && formula(&body[end + 1..], closer) {
            return &t[..end + 1];
        }
    }
    for tail in [
        "thanks in advance",
        "thank you so much",
        "thanks",
        "thank you",
        "cheers",
        "pls",
        "please",
        ":)",
    ] {
        if let Some(rest) = suffix(body, tail) {
            if rest.is_empty() || !rest.ends_with(|c: char| c.is_alphanumeric()) {
                return rest.trim_end();
            }
        }
    }
    t
}

/// `t` without the prefix `p` (lowercase ASCII), in any case.
fn prefix<'a>(t: &'a str, p: &str) -> Option<&'a str> {
    let n = p.len();
    (t.len() >= n && t.as_bytes()[..n].eq_ignore_ascii_case(p.as_bytes())).then(|| &t[n..])
}

/// `t` without the suffix `p` (lowercase ASCII), in any case.
fn suffix<'a>(t: &'a str, p: &str) -> Option<&'a str> {
    let n = t.len().checked_sub(p.len())?;
    (t.as_bytes()[n..].eq_ignore_ascii_case(p.as_bytes()) && t.is_char_boundary(n)).then(|| &t[..n])
}

/// Words as the guard sees them: ASCII alphanumerics joined by `.#+'-` (`c++`, `node.js`,
/// `don't`, `utf-8`), possessive `'s` dropped.
pub(crate) fn tokens(s: &str) -> Vec<String> {
    let s = nfkc(s);
    let chars: Vec<char> = s.chars().collect();
    // Drop a possessive 's (an apostrophe, `s`, then no word character).
    let mut cleaned = Vec::with_capacity(chars.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if (c == '\'' || c == '\u{2019}')
            && chars.get(i + 1) == Some(&'s')
            && !chars.get(i + 2).is_some_and(|&n| is_word(n))
        {
            i += 2;
            continue;
        }
        cleaned.push(c);
        i += 1;
    }
    let inner = |c: char| c.is_ascii_alphanumeric() || ".#+'\u{2019}-".contains(c);
    let last = |c: char| c.is_ascii_alphanumeric() || c == '#' || c == '+';
    let mut out = Vec::new();
    let mut i = 0;
    while i < cleaned.len() {
        if !cleaned[i].is_ascii_alphanumeric() {
            i += 1;
            continue;
        }
        let mut j = i + 1;
        while j < cleaned.len() && inner(cleaned[j]) {
            j += 1;
        }
        while j > i + 1 && !last(cleaned[j - 1]) {
            j -= 1;
        }
        out.push(cleaned[i..j].iter().collect());
        i = j;
    }
    out
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Runs of `[a-z]+` in `s` (already lowercase).
fn alpha_words(s: &str) -> impl Iterator<Item = &str> {
    s.split(|c: char| !c.is_ascii_lowercase())
        .filter(|w| !w.is_empty())
}

fn number_word(w: &str) -> Option<&'static str> {
    Some(match w {
        "two" | "second" | "twice" => "2",
        "three" | "third" | "thrice" => "3",
        "four" | "fourth" => "4",
        "five" | "fifth" => "5",
        "six" | "sixth" => "6",
        "seven" | "seventh" => "7",
        "eight" | "eighth" => "8",
        "nine" | "ninth" => "9",
        "ten" | "tenth" => "10",
        "eleven" => "11",
        "twelve" => "12",
        "thirteen" => "13",
        "fourteen" => "14",
        "fifteen" => "15",
        "sixteen" => "16",
        "seventeen" => "17",
        "eighteen" => "18",
        "nineteen" => "19",
        "twenty" => "20",
        "half" => "0.5",
        "hundred" => "100",
        "thousand" => "1000",
        "million" => "1000000",
        _ => return None,
    })
}

/// Numbers in digits (thousands separators dropped) and number words, sorted.
fn numbers(s: &str) -> Vec<String> {
    let t = nfkc(s).to_lowercase();
    let chars: Vec<char> = t.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let mut j = i;
        let mut number = String::new();
        loop {
            while j < chars.len() && chars[j].is_ascii_digit() {
                number.push(chars[j]);
                j += 1;
            }
            // `[.,]\d+` continues the number; a comma before three digits is a separator.
            if j + 1 < chars.len()
                && (chars[j] == '.' || chars[j] == ',')
                && chars[j + 1].is_ascii_digit()
            {
                let separator = chars[j] == ','
                    && chars[j + 1..]
                        .iter()
                        .take(3)
                        .filter(|c| c.is_ascii_digit())
                        .count()
                        == 3;
                if !separator {
                    number.push(chars[j]);
                }
                j += 1;
                continue;
            }
            break;
        }
        out.push(number);
        i = j;
    }
    out.extend(alpha_words(&t).filter_map(number_word).map(str::to_owned));
    out.sort_unstable();
    out
}

/// Which of `who`, `when`, `where`, `why` a prompt asks, a bit each (`what`, `which`
/// and `how` frame any question: `How do I …` / `What is the way to …`). `when`, `where`
/// and `why` ask only before an auxiliary (`When was …`, not `When running …` or `… when
/// you steam it`).
fn asked(tokens: &[String]) -> u8 {
    const ASKED: [&str; 6] = ["who", "whom", "whose", "when", "where", "why"];
    const AUXILIARY: [&str; 20] = [
        "is", "are", "was", "were", "do", "does", "did", "can", "could", "will", "would", "should",
        "shall", "has", "have", "had", "may", "might", "must", "isnt",
    ];
    let mut set = 0;
    for (i, t) in tokens.iter().enumerate() {
        let Some(k) = ASKED.iter().position(|w| t.eq_ignore_ascii_case(w)) else {
            continue;
        };
        let next = tokens.get(i + 1).map(|n| folded(n));
        if k < 3 || next.is_some_and(|n| AUXILIARY.contains(&n.as_str())) {
            set |= 1 << k.saturating_sub(2);
        }
    }
    set
}

const NEGATIONS: [&str; 22] = [
    "not",
    "no",
    "never",
    "without",
    "non",
    "none",
    "nothing",
    "cannot",
    "neither",
    "nor",
    "dont",
    "doesnt",
    "isnt",
    "arent",
    "wont",
    "cant",
    "didnt",
    "shouldnt",
    "avoid",
    "except",
    "outside",
    "excluding",
];

fn negated(s: &str, tokens: &[String]) -> bool {
    tokens
        .iter()
        .any(|t| t.len() <= 12 && NEGATIONS.contains(&folded(t).as_str()))
        || {
            // `non-`, `n't`, `n’t` anywhere, in any case (without lowercasing the prompt).
            let b = s.as_bytes();
            let n = |i: usize| b[i].eq_ignore_ascii_case(&b'n');
            let t = |i: usize| b.get(i).is_some_and(|c| c.eq_ignore_ascii_case(&b't'));
            memchr::memchr2_iter(b'-', b'\'', b).any(|i| match b[i] {
                b'-' => i >= 3 && b[i - 3..i].eq_ignore_ascii_case(b"non"),
                _ => i >= 1 && n(i - 1) && t(i + 1),
            }) || memchr::memmem::find_iter(b, "\u{2019}".as_bytes())
                .any(|i| i >= 1 && n(i - 1) && t(i + 3))
        }
}

/// Unit words and the unit each names, once for both forms: a `match` for the exact lookup
/// (the common path) and a table for the typo search.
macro_rules! units {
    ($($($word:literal)|+ => $unit:literal,)+) => {
        /// Every unit word and its unit.
        const UNITS: &[(&str, &str)] = &[$($(($word, $unit),)+)+];

        /// The unit a word names.
        fn unit(w: &str) -> Option<&'static str> {
            Some(match w {
                $($($word)|+ => $unit,)+
                _ => return None,
            })
        }
    };
}

units! {
    "celsius" | "centigrade" => "celsius",
    "centimeter" | "centimeters" | "cm" => "centimeter",
    "cup" | "cups" => "cup",
    "day" | "days" => "day",
    "dollar" | "dollars" | "usd" => "dollar",
    "eur" | "euro" | "euros" => "euro",
    "fahrenheit" => "fahrenheit",
    "feet" | "foot" | "ft" => "foot",
    "g" | "gram" | "grams" => "gram",
    "gallon" | "gallons" => "gallon",
    "gb" => "gb",
    "gbp" => "pound-sterling",
    "gib" => "gib",
    "hour" | "hours" | "hrs" => "hour",
    "inch" | "inches" => "inch",
    "jpy" | "yen" => "yen",
    "kb" => "kb",
    "kelvin" => "kelvin",
    "kg" | "kilogram" | "kilograms" | "kilos" => "kilogram",
    "kib" => "kib",
    "kilometer" | "kilometers" | "kilometre" | "kilometres" | "km" => "kilometer",
    "lb" | "lbs" | "pound" | "pounds" => "pound",
    "liter" | "liters" | "litre" | "litres" => "liter",
    "mb" => "mb",
    "meter" | "meters" | "metre" | "metres" => "meter",
    "mi" | "mile" | "miles" => "mile",
    "mib" => "mib",
    "milliliter" | "milliliters" | "ml" => "milliliter",
    "millimeter" | "millimeters" | "mm" => "millimeter",
    "mins" | "minute" | "minutes" => "minute",
    "month" | "months" => "month",
    "ounce" | "ounces" | "oz" => "ounce",
    "percent" => "percent",
    "seconds" | "secs" => "second",
    "tablespoon" | "tablespoons" | "tbsp" => "tablespoon",
    "tb" => "tb",
    "teaspoon" | "teaspoons" | "tsp" => "teaspoon",
    "week" | "weeks" => "week",
    "year" | "years" => "year",
}

/// The unit a word names, or a typo of a unit word of five letters or more names
/// (`kilogams`).
fn unit_or_typo(w: &str) -> Option<&'static str> {
    unit(w).or_else(|| {
        UNITS
            .iter()
            .find(|(word, _)| w.len() >= 5 && word.len() >= 5 && one_edit(word, w))
            .filter(|_| !lexicon::known(w))
            .map(|&(_, unit)| unit)
    })
}

/// The units a prompt names (`typos`: a typo of a unit word counts as that unit).
fn units(s: &str, typos: bool) -> HashSet<&'static str> {
    let t = nfkc(s)
        .to_lowercase()
        .replace("\u{b0}f", " fahrenheit ")
        .replace("\u{b0}c", " celsius ");
    let unit = if typos { unit_or_typo } else { unit };
    let mut set: HashSet<&'static str> = alpha_words(&t).filter_map(unit).collect();
    if t.contains('$') {
        set.insert("dollar");
    }
    if t.contains('\u{20ac}') {
        set.insert("euro");
    }
    if t.contains('%') {
        set.insert("percent");
    }
    set
}

const STOP: [&str; 46] = [
    "a", "an", "the", "of", "in", "on", "for", "to", "is", "are", "was", "do", "does", "did", "i",
    "my", "me", "you", "your", "how", "what", "which", "who", "when", "where", "why", "can",
    "could", "should", "would", "will", "with", "and", "or", "it", "this", "that", "be", "by",
    "at", "as", "from", "into", "than", "whats", "what's",
];

fn is_stop(w: &str) -> bool {
    STOP.contains(&w)
}

fn is_plain_number(t: &str) -> bool {
    let bytes = t.as_bytes();
    if !bytes.first().is_some_and(u8::is_ascii_digit) {
        return false;
    }
    let mut i = 1;
    while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.' || bytes[i] == b',') {
        i += 1;
    }
    let rest = &t[i..];
    let rest = ["st", "nd", "rd", "th"]
        .iter()
        .find_map(|s| rest.strip_prefix(s))
        .unwrap_or(rest);
    rest.split('-')
        .skip(1)
        .all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_alphabetic()))
        && (rest.is_empty() || rest.starts_with('-'))
}

fn is_upper(t: &str) -> bool {
    t.chars().any(char::is_alphabetic) && !t.chars().any(char::is_lowercase)
}

/// Technical and proper tokens: with digits or `.#+`, capitalized mid-sentence, all caps.
fn entities(s: &str, tokens: &[String]) -> HashSet<String> {
    let shouting = is_upper(s);
    // Title Case Says Nothing: when most words are capitalized, capitals are not names.
    let words = tokens
        .iter()
        .filter(|t| t.starts_with(|c: char| c.is_alphabetic()));
    let (capitalized, all) = words.fold((0, 0), |(c, n), t| {
        (
            c + usize::from(t.starts_with(|c: char| c.is_uppercase())),
            n + 1,
        )
    });
    let titled = all >= 4 && capitalized * 10 >= all * 7;
    let mut out = HashSet::new();
    for (i, t) in tokens.iter().enumerate() {
        if is_plain_number(t) {
            continue;
        }
        let lower = t.to_lowercase();
        if t.chars().any(|c| c.is_ascii_digit()) || t.contains(['.', '#', '+']) {
            out.insert(lower.trim_end_matches('.').to_owned());
        } else {
            let capitalized = i > 0
                && !titled
                && t.starts_with(|c: char| c.is_uppercase())
                && !is_stop(&lower)
                && !is_upper(t);
            let acronym = is_upper(t) && t.chars().count() > 1 && !shouting;
            if capitalized || acronym {
                out.insert(lower);
            }
        }
    }
    out
}

/// Equal, or one edit or transposition apart for words of five letters or more of which
/// one is not an English word or both are forms of one ([`one_word`]: `javscript`, not
/// `weight` for `height`).
fn near(x: &str, y: &str) -> bool {
    x == y || (one_edit(x, y) && one_word(x, y))
}

/// Two tokens (lowercase) a letter apart are one word when one is no English word (a typo)
/// or both are forms of one (`propagating` / `propagate`).
fn one_word(x: &str, y: &str) -> bool {
    !lexicon::known(x) || !lexicon::known(y) || lexicon::same_lemma(x, y)
}

/// One edit or transposition apart, words of five letters or more.
fn one_edit(x: &str, y: &str) -> bool {
    /// One substitution, insertion, deletion or transposition apart (`x` != `y`).
    fn apart<T: PartialEq>(x: &[T], y: &[T]) -> bool {
        let (short, long) = if x.len() <= y.len() { (x, y) } else { (y, x) };
        let i = short
            .iter()
            .zip(long)
            .position(|(a, b)| a != b)
            .unwrap_or(short.len());
        if short.len() < long.len() {
            return long[i + 1..] == short[i..];
        }
        i < short.len()
            && (short[i + 1..] == long[i + 1..]
                || (i + 1 < short.len()
                    && short[i] == long[i + 1]
                    && short[i + 1] == long[i]
                    && short[i + 2..] == long[i + 2..]))
    }
    if x == y {
        return true;
    }
    if x.is_ascii() && y.is_ascii() {
        let (x, y) = (x.as_bytes(), y.as_bytes());
        return x.len().min(y.len()) >= 5 && x.len().abs_diff(y.len()) <= 1 && apart(x, y);
    }
    let (x, y): (Vec<char>, Vec<char>) = (x.chars().collect(), y.chars().collect());
    x.len().min(y.len()) >= 5 && x.len().abs_diff(y.len()) <= 1 && apart(&x, &y)
}

type Relation = (String, String, String);

/// `(left, word, right)` around `to`/`than`/`into`/`from`/`is`/`vs`, skipping stop words.
fn relations(tokens: &[String]) -> HashSet<Relation> {
    let ts: Vec<String> = tokens.iter().map(|t| t.to_lowercase()).collect();
    let mut out = HashSet::new();
    for (i, t) in ts.iter().enumerate() {
        if !matches!(
            t.as_str(),
            "to" | "than" | "into" | "from" | "is" | "vs" | "versus"
        ) {
            continue;
        }
        let left = ts[..i].iter().rev().find(|x| !is_stop(x));
        let right = ts[i + 1..].iter().find(|x| !is_stop(x));
        if let (Some(l), Some(r)) = (left, right) {
            out.insert((l.clone(), t.clone(), r.clone()));
        }
    }
    out
}

/// Opposites that embeddings place side by side.
const ANTONYMS: [(&str, &str); 40] = [
    ("shorter", "longer"),
    ("short", "long"),
    ("enable", "disable"),
    ("enabled", "disabled"),
    ("increase", "decrease"),
    ("add", "remove"),
    ("insert", "delete"),
    ("encrypt", "decrypt"),
    ("encode", "decode"),
    ("compress", "decompress"),
    ("serialize", "deserialize"),
    ("upload", "download"),
    ("import", "export"),
    ("push", "pull"),
    ("lock", "unlock"),
    ("install", "uninstall"),
    ("start", "stop"),
    ("open", "close"),
    ("min", "max"),
    ("minimum", "maximum"),
    ("smallest", "largest"),
    ("lowest", "highest"),
    ("first", "last"),
    ("before", "after"),
    ("ascending", "descending"),
    ("uppercase", "lowercase"),
    ("upper", "lower"),
    ("faster", "slower"),
    ("fast", "slow"),
    ("cheaper", "expensive"),
    ("hot", "cold"),
    ("warmer", "colder"),
    ("advantages", "disadvantages"),
    ("pros", "cons"),
    ("buy", "sell"),
    ("win", "lose"),
    ("left", "right"),
    ("north", "south"),
    ("east", "west"),
    ("better", "worse"),
];

/// One side holds a word, the other its opposite (and neither both).
fn antonym_swap(la: &HashSet<String>, lb: &HashSet<String>) -> bool {
    // Word by word of one side (a few lookups) rather than pair by pair of the table.
    la.iter().filter(|w| !lb.contains(*w)).any(|w| {
        ANTONYMS
            .iter()
            .filter_map(|&(x, y)| match w.as_str() {
                v if v == x => Some(y),
                v if v == y => Some(x),
                _ => None,
            })
            .any(|opposite| lb.contains(opposite) && !la.contains(opposite))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalized_equal_texts_are_exact() {
        for (a, b) in [
            (
                "How do I reverse a list in Python?",
                "how do i reverse a list in python",
            ),
            ("Hi! What's a monad?", "whats a monad? Thanks!"),
            ("  spaced   out  \n", "Spaced out."),
            ("Quick question: what is CORS?", "what is CORS"),
        ] {
            assert_eq!(guard(a, b), Verdict::Exact, "{a:?} {b:?}");
        }
    }

    #[test]
    fn what_embeddings_blur_is_refused() {
        for (a, b, why) in [
            (
                "Convert 5 km to miles",
                "Convert 6 km to miles",
                Verdict::Numbers,
            ),
            (
                "Give me three examples",
                "Give me four examples",
                Verdict::Numbers,
            ),
            (
                "Is it safe to eat raw eggs?",
                "Is it not safe to eat raw eggs?",
                Verdict::Negation,
            ),
            (
                "Convert 5 km to miles",
                "Convert 5 miles to km",
                Verdict::Reversed,
            ),
            (
                "How tall is 6 feet in cm?",
                "How tall is 6 feet in inches?",
                Verdict::Units,
            ),
            (
                "Reverse a list in Python",
                "Reverse a list in Rust",
                Verdict::Entities,
            ),
            (
                "How do I enable SSH?",
                "How do I disable SSH?",
                Verdict::Antonym,
            ),
            (
                "convert string to integer",
                "convert integer to string",
                Verdict::Reversed,
            ),
        ] {
            assert_eq!(guard(a, b), why, "{a:?} {b:?}");
            assert!(!why.allows());
        }
    }

    #[test]
    fn an_added_word_a_moved_quantity_or_an_inverted_relation_is_refused() {
        for (a, b, why) in [
            (
                "List the planets in order of size.",
                "List the planets in reverse order of size.",
                Verdict::Addition,
            ),
            (
                "How do I sort a list in Ruby?",
                "How do I sort a list in Ruby in place?",
                Verdict::Addition,
            ),
            (
                "What is 250 miles in kilometers?",
                "What is 250 kilometers in miles?",
                Verdict::Quantity,
            ),
            (
                "Which is heavier, a tiger or a horse? Is it the tiger?",
                "Is a horse heavier than a tiger?",
                Verdict::Swapped,
            ),
            (
                "Did the fall of Rome happen before the printing press?",
                "Did the printing press happen before the fall of Rome?",
                Verdict::Swapped,
            ),
            (
                "Which came first, the Silk Road or the Reformation? Was it the Silk Road?",
                "Which came first, the Reformation or the Silk Road? Was it the Reformation?",
                Verdict::Swapped,
            ),
        ] {
            assert_eq!(guard(a, b), why, "{a:?} {b:?}");
            assert_eq!(guard(b, a), why, "{b:?} {a:?}");
        }
    }

    #[test]
    fn the_same_question_in_other_words_or_title_case_passes() {
        for (a, b) in [
            (
                "Which is heavier, a tiger or a horse? Is it the tiger?",
                "Is a tiger heavier than a horse?",
            ),
            (
                "How many miles are in 42 kilometers?",
                "What is 42 kilometers in miles?",
            ),
            (
                "What Are The Benefits Of Using Redis In Production?",
                "What are the benefits of using Redis in production?",
            ),
            (
                "How far is Oslo from Lima?",
                "What is the distance from Oslo to Lima?",
            ),
            (
                "What is the difference between a list and a tuple?",
                "What is the difference between a tuple and a list?",
            ),
            (
                "Which is heavier, a tiger or a horse?",
                "Which is heavier, a horse or a tiger?",
            ),
            (
                "From Elixir, how can I call Clojure code?",
                "How do I call Clojure code from Elixir?",
            ),
            (
                "Show me how to truncate a queue using Haskell.",
                "Haskell: how to truncate a queue?",
            ),
        ] {
            assert!(guard(a, b).allows(), "{a:?} {b:?}: {:?}", guard(a, b));
        }
    }

    #[test]
    fn paraphrases_pass() {
        for (a, b) in [
            (
                "How do I reverse a list in Python?",
                "What is the way to reverse a Python list?",
            ),
            (
                "How do I remove duplicates from an array in JavaScript?",
                "How do I remove duplictaes from an array in JavaScript?",
            ),
        ] {
            assert!(guard(a, b).allows(), "{a:?} {b:?}: {:?}", guard(a, b));
        }
    }

    #[test]
    fn the_lexicon_tells_typos_forms_and_synonyms_from_other_words() {
        for (a, b) in [
            ("How do I buy a used car?", "How do I purchase a used car?"),
            (
                "Write a short essay on the successes of CRISPR.",
                "Write a short essay on the successses of CRISPR.",
            ),
            (
                "How do I propagate a pothos?",
                "Propagating a pothos: how do I do it?",
            ),
            (
                "How many kilograms is 64 pounds?",
                "How many kilogams is 64 pounds?",
            ),
            (
                "Which came first, the Reformation or the printng press?",
                "Which came first, the Reformation or the printing press?",
            ),
        ] {
            assert!(guard(a, b).allows(), "{a:?} {b:?}: {:?}", guard(a, b));
        }
        for (a, b, why) in [
            (
                "Sort the films by height.",
                "Sort the films by weight.",
                Verdict::Substitution,
            ),
            (
                "How do I sort a set in Python?",
                "How do I sort a set in Python in place?",
                Verdict::Addition,
            ),
        ] {
            assert_eq!(guard(a, b), why, "{a:?} {b:?}");
            assert_eq!(guard(b, a), why, "{b:?} {a:?}");
        }
    }

    #[test]
    fn greetings_are_wrappers_only_around_the_question() {
        assert!(guard(
            "Hi! How do I reverse a list in Python? Thanks",
            "How can I reverse a list in Python?"
        )
        .allows());
        assert_eq!(
            guard(
                "How do I say hello in Japanese?",
                "How do I say thanks in Japanese?"
            ),
            Verdict::Substitution
        );
        assert_eq!(
            unwrapped("Hello, What is CORS? Thank you."),
            "What is CORS?"
        );
    }

    #[test]
    fn opening_and_closing_formulas_are_wrappers() {
        for (a, b) in [
            ("Okay so, what is CORS?", "What is CORS?"),
            ("Hi all. What is CORS?", "what is CORS"),
            (
                "Sorry to bother you, but is Rust faster than Go?",
                "Is Rust faster than Go?",
            ),
            ("I was wondering, what is CORS?", "What is CORS?"),
            (
                "Should I charge my phone overnight? TIA!",
                "Should I charge my phone overnight?",
            ),
            ("What is CORS? Any help is welcome.", "What is CORS?"),
        ] {
            assert_eq!(guard(a, b), Verdict::Exact, "{a:?} {b:?}");
        }
        // An opening or a closing that says something is part of the question.
        for (a, b) in [
            (
                "For production, how do I deploy Redis?",
                "How do I deploy Redis?",
            ),
            ("What is CORS? Keep it brief.", "What is CORS?"),
        ] {
            assert!(!guard(a, b).allows(), "{a:?} {b:?}");
        }
    }

    #[test]
    fn other_wording_passes_and_another_thing_in_it_does_not() {
        for (a, b) in [
            (
                "How should I scale Kafka, ideally?",
                "What is the recommended way to scale Kafka?",
            ),
            (
                "How can I tune Vault safely?",
                "What's the safest way to tune Vault?",
            ),
            (
                "When running Redis in production, what are the risks?",
                "What are the risks of running Redis in production?",
            ),
        ] {
            assert!(guard(a, b).allows(), "{a:?} {b:?}: {:?}", guard(a, b));
            assert!(guard(b, a).allows(), "{b:?} {a:?}");
        }
        for (a, b, why) in [
            // The same kind of thing (noun classes; a plant is a food).
            (
                "How long should I bake potatoes?",
                "What is the right time to bake tofu for?",
                Verdict::Substitution,
            ),
            (
                "How do people in Osaka traditionally smoke chickpeas?",
                "In Osaka, how is tofu traditionally prepared when you smoke it?",
                Verdict::Substitution,
            ),
            // In the other's place (beside the same word).
            (
                "Rank the planets by size, from first to last.",
                "Order the planets by age, from first to last.",
                Verdict::Substitution,
            ),
            // No English word: a name the capitals do not show.
            (
                "how long should i boil quinoa?",
                "What is the right time to boil rice for?",
                Verdict::Substitution,
            ),
            // A negating prefix on a form of the other's word.
            (
                "How can I patch Vault safely?",
                "What's an unsafe way to patch Vault?",
                Verdict::Antonym,
            ),
            (
                "Who wrote Pride and Prejudice?",
                "When was Pride and Prejudice written?",
                Verdict::Asked,
            ),
            (
                "What's the way to invoke Perl functions from Clojure?",
                "From Perl, how can I call into Clojure code?",
                Verdict::Swapped,
            ),
            // `a` and `an` do not hide an exchange.
            (
                "In a fight between a panther and an ostrich, would the panther win?",
                "In a fight between an ostrich and a panther, would the ostrich win?",
                Verdict::Swapped,
            ),
        ] {
            assert_eq!(guard(a, b), why, "{a:?} {b:?}");
            assert_eq!(guard(b, a), why, "{b:?} {a:?}");
        }
    }

    #[test]
    fn tokens_keep_technical_words() {
        assert_eq!(
            tokens("Use C++ and node.js, don't use Bob's utf-8."),
            ["Use", "C++", "and", "node.js", "don't", "use", "Bob", "utf-8"]
        );
        assert_eq!(numbers("1,000 and 2.5 and three"), ["1000", "2.5", "3"]);
        assert!(near("javascript", "javscript"));
        assert!(!near("java", "lava"));
    }
}
