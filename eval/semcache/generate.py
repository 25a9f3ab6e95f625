#!/usr/bin/env python3
"""A labelled set of prompt pairs for the semantic cache, made by a procedure of its own.

    python3 eval/semcache/generate.py   # writes dev.jsonl to dev4.jsonl, and heldout.jsonl

Unlike `../shared/semcache/eval.jsonl` (written by hand), these pairs are generated from
meaning frames: a frame is a question with slots (`How do I {verb} a {thing} in
{language}?`); a `same` pair is the same filled frame said two ways (another template of the
frame, a synonym, a wrapper, casing, spacing, punctuation, a typo, a moved phrase), a
`different` pair changes what is asked while keeping the surface close (another slot value,
two slots swapped around a relation, an antonym, an ordering word, a negation, an
evaluative opposite, a qualifier), a third of them with surface noise on top so that noise
alone does not say `same`.

Every pool — frames and their templates, slot vocabularies, synonyms, antonyms, wrappers —
is split in disjoint shares, one per part: the development parts are made from the first
four (the fourth, `fourth.py`, was the held-out share until 2026-12-07 and is now `dev4`),
the held-out part from the fifth (`fifth.py`, written by someone who had not read the
guard). The guard and the thresholds are tuned on the development parts only;
`heldout.jsonl` is for reporting, so what it measures is how the matcher does on wording
nobody tuned on.
Deterministic (fixed seed): rerunning writes the same files.
"""
import json
import pathlib
import random
import re

HERE = pathlib.Path(__file__).resolve().parent
PAIRS_PER_PART = 1500
# Each part is made from its own share of every pool: (file name, seed). `dev2` was the
# held-out part until its wrong hits were read (2026-12-04); `dev3` (the third share) until
# its templates were read (2026-12-07); `dev4` (the fourth share, `fourth.py`) was the
# held-out part until 2026-12-07 and keeps its seed. The held-out part's share is in
# `fifth.py`, written by someone who had not read the guard, and read by nobody who tunes it.
PARTS = [("dev", 20261203), ("dev2", 90210), ("dev3", 31415), ("dev4", 27182),
         ("heldout", 16180)]

# ---------------------------------------------------------------------------------------
# Slot vocabularies: (dev half, held-out half). Values of one slot are interchangeable in
# the frame's grammar, so replacing one by another asks something else.
VOCAB = {
    "language": (
        ["Python", "JavaScript", "Go", "Ruby", "Java", "C#", "PHP", "Kotlin"],
        ["Rust", "Swift", "Elixir", "Haskell", "Scala", "Lua", "Dart", "Perl", "Julia", "Clojure"],
        ["TypeScript", "OCaml", "Fortran", "Zig", "Erlang", "F#", "Nim", "Crystal", "Groovy"],
    ),
    "collection": (
        ["list", "array", "dictionary", "string", "set"],
        ["vector", "hash map", "tuple", "linked list", "queue", "byte buffer"],
        ["matrix", "heap", "binary tree", "stack", "deque", "bitset"],
    ),
    "verb_code": (
        ["sort", "reverse", "shuffle", "copy", "flatten", "filter", "serialize"],
        ["deduplicate", "chunk", "rotate", "zip", "truncate", "sample", "transpose"],
        ["invert", "merge", "partition", "normalize", "compress", "paginate", "hash"],
    ),
    "animal": (
        ["elephant", "giraffe", "cheetah", "dolphin", "eagle", "tiger", "penguin", "horse"],
        ["octopus", "rhinoceros", "kangaroo", "falcon", "walrus", "jaguar", "otter", "camel", "bison"],
        ["gorilla", "ostrich", "crocodile", "moose", "panther", "hyena", "beaver", "koala", "lynx"],
    ),
    "city": (
        ["Paris", "Tokyo", "Cairo", "Lima", "Oslo", "Toronto", "Mumbai", "Sydney"],
        ["Nairobi", "Lisbon", "Hanoi", "Bogota", "Helsinki", "Dublin", "Santiago", "Osaka", "Vienna"],
        ["Madrid", "Seoul", "Prague", "Accra", "Quito", "Montreal", "Jakarta", "Warsaw", "Athens"],
    ),
    "planet": (
        ["Mars", "Venus", "Jupiter", "Saturn"],
        ["Neptune", "Uranus", "Mercury", "Pluto"],
        [],
    ),
    "food": (
        ["chicken breast", "salmon", "rice", "potatoes", "broccoli", "lentils"],
        ["pork shoulder", "tofu", "quinoa", "carrots", "chickpeas", "shrimp", "beetroot"],
        ["eggplant", "lamb chops", "cauliflower", "sweet potatoes", "trout", "mushrooms", "duck breast"],
    ),
    "method": (
        ["bake", "boil", "grill", "roast"],
        ["steam", "poach", "braise", "smoke"],
        ["fry", "sear", "toast", "marinate"],
    ),
    "tool": (
        ["Docker", "Git", "Nginx", "PostgreSQL", "Redis", "Kubernetes"],
        ["Terraform", "Ansible", "Kafka", "Elasticsearch", "Jenkins", "Prometheus", "RabbitMQ"],
        ["Consul", "Vault", "MongoDB", "Cassandra", "Grafana", "Airflow", "Memcached"],
    ),
    "task_ops": (
        ["back up", "restart", "upgrade", "monitor", "secure"],
        ["migrate", "benchmark", "containerize", "audit", "scale"],
        ["deploy", "patch", "tune", "debug", "decommission"],
    ),
    "topic": (
        ["photosynthesis", "inflation", "gravity", "the French Revolution", "vaccines", "blockchain"],
        ["plate tectonics", "compound interest", "the immune system", "the Cold War", "black holes", "CRISPR", "supply chains"],
        ["remote work", "nuclear power", "electric cars", "open source software", "social media", "universal basic income"],
    ),
    "audience": (
        ["a child", "a beginner", "a manager"],
        ["a teenager", "a retiree", "an engineer", "a new employee"],
        ["a toddler", "a physicist", "a journalist", "a CEO", "a grandparent"],
    ),
    "unit_len": (
        [("kilometers", "miles"), ("meters", "feet"), ("centimeters", "inches")],
        [("miles", "kilometers"), ("feet", "meters"), ("inches", "centimeters"), ("yards", "meters")],
        [],
    ),
    "unit_mass": (
        [("kilograms", "pounds"), ("grams", "ounces")],
        [("pounds", "kilograms"), ("ounces", "grams"), ("stones", "kilograms")],
        [],
    ),
    "unit_vol": (
        [],
        [],
        [("liters", "gallons"), ("cups", "milliliters"), ("teaspoons", "milliliters"), ("pints", "liters")],
    ),
    "country": (
        [],
        [],
        ["Norway", "Brazil", "Japan", "Kenya", "Canada", "Peru", "Vietnam", "Poland", "Chile"],
    ),
    "device": (
        [],
        [],
        ["phone", "laptop", "e-bike", "tablet", "smartwatch", "power bank"],
    ),
    "event": (
        ["World War II", "the Renaissance", "the Industrial Revolution", "the moon landing"],
        ["the printing press", "the fall of Rome", "the Silk Road", "the Apollo program", "the Reformation"],
        [],
    ),
    "group": (
        ["US presidents", "Roman emperors", "planets", "Olympic host cities"],
        ["British monarchs", "Nobel physics laureates", "Chinese dynasties", "Pixar films", "moons of Jupiter"],
        ["European capitals", "African rivers", "Marvel movies", "programming languages", "Tour de France winners"],
    ),
    "property": (
        ["size", "age", "population", "distance from the sun"],
        ["height", "founding date", "weight", "release year", "length"],
        ["length", "GDP", "box office", "age", "elevation"],
    ),
}

# Comparative adjectives and their opposites: (dev, held-out).
COMPARATIVES = (
    [("bigger", "smaller"), ("heavier", "lighter"), ("faster", "slower"), ("older", "younger")],
    [("taller", "shorter"), ("stronger", "weaker"), ("louder", "quieter"), ("hotter", "colder"), ("wider", "narrower")],
    [("richer", "poorer"), ("safer", "more dangerous"), ("more popular", "less popular"), ("colder", "warmer"), ("larger", "smaller")]
)

# Evaluative opposites inside a longer sentence: (dev, held-out).
EVALUATIVE = (
    [("advantages", "disadvantages"), ("benefits", "risks"), ("pros", "cons"), ("strong points", "weak points")],
    [("strengths", "weaknesses"), ("upsides", "downsides"), ("merits", "drawbacks"), ("opportunities", "threats"), ("successes", "failures")],
    [("best practices", "worst practices"), ("positives", "negatives"), ("assets", "liabilities"), ("gains", "losses"), ("good sides", "bad sides")]
)

# Ordering phrases and their opposites: (dev, held-out).
ORDERINGS = (
    [("in order of", "in reverse order of"), ("from smallest to largest", "from largest to smallest"),
     ("in ascending order", "in descending order")],
    [("from oldest to newest", "from newest to oldest"), ("from first to last", "from last to first"),
     ("lowest first", "highest first"), ("in increasing order", "in decreasing order")],
    [("alphabetically", "in reverse alphabetical order"), ("from highest to lowest", "from lowest to highest"), ("most recent first", "least recent first"), ("from top to bottom", "from bottom to top"), ("in chronological order", "in reverse chronological order")]
)

# Synonyms that keep the meaning: (dev, held-out). Applied word for word where they occur.
SYNONYMS = (
    [("quickest", "fastest"), ("ways", "methods"), ("check", "verify"), ("biggest", "largest"),
     ("explain", "describe"), ("simplest", "easiest"), ("kids", "children")],
    [("determine", "figure out"), ("approach", "method"), ("primary", "main"), ("couple of", "few"),
     ("summarize", "sum up"), ("purpose", "goal"), ("difficult", "hard"), ("begin", "start")],
    [("buy", "purchase"), ("big", "large"), ("error", "mistake"), ("code", "program"), ("fix", "repair"), ("car", "automobile"), ("safest", "most secure"), ("temperature", "heat setting")]
)

# Wrappers that do not change the question: (dev, held-out).
WRAPPERS = (
    [("Please, ", ""), ("", " Thanks!"), ("Hi! ", ""), ("Quick question: ", ""), ("", " Thank you.")],
    [("Hey there, ", ""), ("", " Much appreciated."), ("Good morning! ", ""), ("I was wondering, ", ""),
     ("", " Cheers, in advance."), ("Sorry to bother you, but ", "")],
    [("Okay so, ", ""), ("", " Any help is welcome."), ("Hello team, ", ""), ("Real quick: ", ""), ("", " TIA!"), ("Hi all. ", "")]
)

# Qualifiers that change what is asked: (dev, held-out).
QUALIFIERS = (
    [" without using a loop", " in place", " recursively", " only for the first item"],
    [" without any libraries", " in parallel", " lazily", " only for the last item", " at compile time"],
    [" with error handling", " in constant memory", " asynchronously", " for negative numbers too", " in a single pass"]
)

# ---------------------------------------------------------------------------------------
# Frames: templates saying the same thing (each a list of variants), and the negatives the
# frame supports. Slots: {name} takes a VOCAB value; {a}/{b} two values of one pool; {cmp}
# a comparative; {n} a number; {u1}/{u2} units; {eval}/{order} an evaluative/ordering word.
FRAMES = (
    # Development frames.
    [
        {"slots": {"verb": "verb_code", "thing": "collection", "lang": "language"},
         "templates": ["How do I {verb} a {thing} in {lang}?",
                       "What is the way to {verb} a {lang} {thing}?",
                       "In {lang}, how can I {verb} a {thing}?",
                       "What's the simplest way to {verb} a {thing} in {lang}?"],
         "negatives": ["slot", "qualifier", "negation_without"]},
        {"slots": {"a": "animal"}, "pair": True, "cmp": True,
         "templates": ["Is a {a} {cmp} than a {b}?",
                       "Which is {cmp}, a {a} or a {b}? Is it the {a}?",
                       "Would a {a} be {cmp} than a {b}?"],
         "negatives": ["swap", "antonym", "slot"]},
        {"slots": {"n": "number", "units": "unit_len"},
         "templates": ["Convert {n} {u1} to {u2}.",
                       "How many {u2} are in {n} {u1}?",
                       "What is {n} {u1} in {u2}?"],
         "negatives": ["number", "direction", "unit"]},
        {"slots": {"food": "food", "method": "method"},
         "templates": ["How long should I {method} {food}?",
                       "What is the right time to {method} {food} for?",
                       "For how long do you {method} {food}?"],
         "negatives": ["slot"]},
        {"slots": {"food": "food"},
         "templates": ["Is it safe to eat raw {food}?",
                       "Can {food} be eaten raw safely?",
                       "Is raw {food} safe to eat?"],
         "negated": ["Is it unsafe to eat raw {food}?",
                     "Is it not safe to eat raw {food}?",
                     "Why is raw {food} not safe to eat?"],
         "negatives": ["slot", "negation"]},
        {"slots": {"group": "group", "property": "property"}, "order": True,
         "templates": ["List the {group} {order} {property}.",
                       "Give me the {group} sorted {order} {property}.",
                       "Can you list {group} {order} {property}?"],
         "negatives": ["ordering", "slot"]},
        {"slots": {"tool": "tool"}, "eval": True,
         "templates": ["What are the {eval} of using {tool} in production?",
                       "When running {tool} in production, what are the {eval}?",
                       "Tell me the {eval} of {tool} for production use."],
         "negatives": ["evaluative", "slot"]},
        {"slots": {"ops": "task_ops", "tool": "tool"},
         "templates": ["How do I {ops} a {tool} server?",
                       "What are the steps to {ops} a {tool} server?",
                       "Walk me through how to {ops} a {tool} server."],
         "negated": ["What happens if I never {ops} a {tool} server?",
                     "Why shouldn't I {ops} a {tool} server?"],
         "negatives": ["slot", "negation"]},
        {"slots": {"topic": "topic", "aud": "audience"},
         "templates": ["Explain {topic} to {aud}.",
                       "How would you explain {topic} to {aud}?",
                       "Can you explain {topic} in a way {aud} would understand?"],
         "negatives": ["slot"]},
        {"slots": {"a": "city"}, "pair": True,
         "templates": ["How far is {a} from {b}?",
                       "What is the distance from {a} to {b}?",
                       "How many miles is it from {a} to {b}?"],
         "negatives": ["slot"]},
    ],
    # Held-out frames.
    [
        {"slots": {"a": "language"}, "pair": True,
         "templates": ["How do I call {a} code from {b}?",
                       "What's the way to invoke {a} functions from {b}?",
                       "From {b}, how can I call into {a} code?"],
         "negatives": ["swap", "slot"]},
        {"slots": {"verb": "verb_code", "thing": "collection", "lang": "language"},
         "templates": ["Show me how to {verb} a {thing} using {lang}.",
                       "Using {lang}, how would one {verb} a {thing}?",
                       "I need to {verb} a {thing} with {lang}. How?",
                       "{lang}: how to {verb} a {thing}?"],
         "negatives": ["slot", "qualifier", "negation_without"]},
        {"slots": {"a": "planet"}, "pair": True, "cmp": True,
         "templates": ["Is {a} {cmp} than {b}?",
                       "Compared with {b}, is {a} {cmp}?",
                       "Between {a} and {b}, is {a} the {cmp} one?"],
         "negatives": ["swap", "antonym", "slot"]},
        {"slots": {"n": "number", "units": "unit_mass"},
         "templates": ["How many {u2} is {n} {u1}?",
                       "Turn {n} {u1} into {u2}.",
                       "I have {n} {u1}; what is that in {u2}?"],
         "negatives": ["number", "direction", "unit"]},
        {"slots": {"a": "event"}, "pair": True,
         "templates": ["Did {a} happen before {b}?",
                       "Was {a} earlier than {b}?",
                       "Which came first, {a} or {b}? Was it {a}?"],
         "negatives": ["swap", "slot"]},
        {"slots": {"group": "group", "property": "property"}, "order": True,
         "templates": ["Rank the {group} by {property}, {order}.",
                       "Put the {group} in a list by {property}, {order}.",
                       "Order the {group} by {property} ({order})."],
         "negatives": ["ordering", "slot"]},
        {"slots": {"topic": "topic"}, "eval": True,
         "templates": ["Write a short essay on the {eval} of {topic}.",
                       "Compose a brief essay about the {eval} of {topic}.",
                       "I'd like a short essay discussing the {eval} of {topic}."],
         "negatives": ["evaluative", "slot"]},
        {"slots": {"food": "food", "method": "method", "a": "city"},
         "templates": ["What's a traditional way to {method} {food} in {a}?",
                       "How do people in {a} traditionally {method} {food}?",
                       "In {a}, how is {food} traditionally prepared when you {method} it?"],
         "negated": ["What's a way to {method} {food} in {a} that isn't traditional?",
                     "How do people outside {a} {method} {food}?"],
         "negatives": ["slot", "negation"]},
        {"slots": {"ops": "task_ops", "tool": "tool"},
         "templates": ["What is the recommended way to {ops} {tool}?",
                       "How should I {ops} {tool}, ideally?",
                       "Recommended approach to {ops} {tool}?"],
         "negated": ["What is the way to {ops} {tool} that is not recommended?",
                     "How should I not {ops} {tool}?",
                     "What should I never do when I {ops} {tool}?"],
         "negatives": ["slot", "negation"]},
    ],
    # Held-out frames (the third share, written before the second part's wrong hits were read).
    [
        {"slots": {"a": "country"}, "pair": True, "cmp": True,
         "templates": ["Is {a} {cmp} than {b}?",
                       "Would you say {a} is {cmp} than {b}?",
                       "Relative to {b}, would {a} count as {cmp}?"],
         "negatives": ["swap", "antonym", "slot"]},
        {"slots": {"n": "number", "units": "unit_vol"},
         "templates": ["Convert {n} {u1} into {u2}, please.",
                       "{n} {u1} equals how many {u2}?",
                       "What do {n} {u1} come to in {u2}?"],
         "negatives": ["number", "direction", "unit"]},
        {"slots": {"verb": "verb_code", "thing": "collection", "lang": "language"},
         "templates": ["Write {lang} code that can {verb} a {thing}.",
                       "Could you give me {lang} code to {verb} a {thing}?",
                       "I'm looking for {lang} code to {verb} a {thing}."],
         "negatives": ["slot", "qualifier", "negation_without"]},
        {"slots": {"group": "group", "property": "property"}, "order": True,
         "templates": ["Sort the {group} by {property} {order}.",
                       "Arrange the {group} by {property}, {order}.",
                       "Could you order the {group} by {property} {order}?"],
         "negatives": ["ordering", "slot"]},
        {"slots": {"topic": "topic"}, "eval": True,
         "templates": ["Summarize the {eval} of {topic} in three bullet points.",
                       "In three bullet points, what are the {eval} of {topic}?",
                       "Give three bullet points on the {eval} of {topic}."],
         "negatives": ["evaluative", "slot"]},
        {"slots": {"device": "device"},
         "templates": ["Should I charge my {device} overnight?",
                       "Is charging my {device} overnight a good idea?",
                       "Is it okay to leave my {device} charging overnight?"],
         "negated": ["Why shouldn't I charge my {device} overnight?",
                     "Is it okay to never charge my {device} overnight?"],
         "negatives": ["slot", "negation"]},
        {"slots": {"a": "city"}, "pair": True,
         "templates": ["What is the cheapest way to travel from {a} to {b}?",
                       "How can I get from {a} to {b} as cheaply as possible?",
                       "Cheapest route from {a} to {b}?"],
         "negatives": ["swap", "slot"]},
        {"slots": {"a": "animal"}, "pair": True,
         "templates": ["Can a {a} beat a {b} in a fight?",
                       "In a fight between a {a} and a {b}, would the {a} win?",
                       "Would a {a} win a fight against a {b}?"],
         "negatives": ["swap", "slot"]},
        {"slots": {"food": "food", "method": "method"},
         "templates": ["What temperature should I {method} {food} at?",
                       "At what temperature do I {method} {food}?",
                       "Best temperature to {method} {food}?"],
         "negatives": ["slot"]},
        {"slots": {"topic": "topic", "aud": "audience"},
         "templates": ["Describe {topic} for {aud}.",
                       "How should {topic} be described to {aud}?",
                       "Could you describe {topic} so that {aud} gets it?"],
         "negatives": ["slot"]},
        {"slots": {"ops": "task_ops", "tool": "tool"},
         "templates": ["What's the safest way to {ops} {tool}?",
                       "How can I {ops} {tool} safely?",
                       "Safest approach to {ops} {tool}?"],
         "negated": ["What's an unsafe way to {ops} {tool}?",
                     "How can I {ops} {tool} without any safety checks?"],
         "negatives": ["slot", "negation"]},
    ],
)

NUMBERS = ([3, 5, 7, 12, 20, 42, 100, 250], [2, 4, 9, 15, 30, 64, 120, 500],
           [6, 8, 11, 25, 48, 75, 150, 1000])


def add_share(share):
    """Appends one more part's share of every pool (pools it does not name: empty)."""
    global COMPARATIVES, EVALUATIVE, ORDERINGS, SYNONYMS, WRAPPERS, QUALIFIERS, FRAMES, NUMBERS
    for name in set(VOCAB) | set(share["VOCAB"]):
        shares = VOCAB.get(name, ((),) * len(FRAMES))
        VOCAB[name] = tuple(shares) + (share["VOCAB"].get(name, []),)
    COMPARATIVES += (share["COMPARATIVES"],)
    EVALUATIVE += (share["EVALUATIVE"],)
    ORDERINGS += (share["ORDERINGS"],)
    SYNONYMS += (share["SYNONYMS"],)
    WRAPPERS += (share["WRAPPERS"],)
    QUALIFIERS += (share["QUALIFIERS"],)
    FRAMES += (share["FRAMES"],)
    NUMBERS += (share["NUMBERS"],)


import fourth  # noqa: E402 (the fourth share: `dev4`, the held-out part until 2026-12-07)
import fifth  # noqa: E402 (the held-out share; do not read it when tuning the guard)

add_share(fourth.SHARE)
add_share(fifth.SHARE)


def typo(rng, text):
    """One edit (swap, drop or double a letter) in a word of seven letters or more."""
    words = text.split(" ")
    long = [i for i, w in enumerate(words) if sum(c.isalpha() for c in w) >= 7]
    if not long:
        return None
    i = rng.choice(long)
    w = words[i]
    letters = [j for j in range(1, len(w) - 2) if w[j].isalpha() and w[j + 1].isalpha()]
    if not letters:
        return None
    j = rng.choice(letters)
    kind = rng.randrange(3)
    if kind == 0:
        w = w[:j] + w[j + 1] + w[j] + w[j + 2:]
    elif kind == 1:
        w = w[:j] + w[j + 1:]
    else:
        w = w[:j] + w[j] + w[j:]
    words[i] = w
    return " ".join(words)


def noise(rng, text, part):
    """A meaning-preserving change of the surface: casing, spacing, punctuation, wrapper."""
    kind = rng.choice(["casing", "whitespace", "punctuation", "wrapper", "lower"])
    if kind == "casing":
        return " ".join(w[:1].upper() + w[1:] for w in text.split(" ")), kind
    if kind == "lower":
        return text.lower(), kind
    if kind == "whitespace":
        words = text.split(" ")
        return "  " + "  ".join(words) + " \n", kind
    if kind == "punctuation":
        return (text.rstrip("?.!") + rng.choice(["", "??", "!", " ?", "..."])), kind
    pre, post = rng.choice(WRAPPERS[part])
    body = text if not pre else text[0].lower() + text[1:]
    return pre + body + post, kind


class Frame:
    def __init__(self, spec, part, rng):
        self.spec, self.part, self.rng = spec, part, rng

    def fill(self):
        """Slot values for one question."""
        rng, part, spec = self.rng, self.part, self.spec
        values = {}
        for name, pool in spec["slots"].items():
            if pool == "number":
                values[name] = rng.choice(NUMBERS[part])
            elif pool.startswith("unit_"):
                values["u1"], values["u2"] = rng.choice(VOCAB[pool][part])
            else:
                values[name] = rng.choice(VOCAB[pool][part])
        if spec.get("pair"):
            pool = spec["slots"]["a"]
            a, b = rng.sample(VOCAB[pool][part], 2)
            values["a"], values["b"] = a, b
        if spec.get("cmp"):
            values["cmp_pair"] = rng.choice(COMPARATIVES[part])
            values["cmp"] = values["cmp_pair"][0] if rng.random() < 0.5 else values["cmp_pair"][1]
        if spec.get("eval"):
            values["eval_pair"] = rng.choice(EVALUATIVE[part])
            values["eval"] = values["eval_pair"][0]
        if spec.get("order"):
            values["order_pair"] = rng.choice(ORDERINGS[part])
            values["order"] = values["order_pair"][0]
        return values

    def say(self, values, template=None):
        template = template or self.rng.choice(self.spec["templates"])
        shown = {k: v for k, v in values.items() if not k.endswith("_pair")}
        text = re.sub(r"\b([Aa]) ([aeiouAEIOU])", r"\1n \2", template.format(**shown))
        return text[0].upper() + text[1:]


def same_pair(rng, frame, part):
    values = frame.fill()
    templates = frame.spec["templates"]
    a = frame.say(values, templates[0] if rng.random() < 0.5 else rng.choice(templates))
    kind = rng.choice(["rephrase", "rephrase", "synonym", "noise", "typo", "rephrase+noise"])
    if kind.startswith("rephrase"):
        others = [t for t in templates if frame.say(values, t) != a]
        b = frame.say(values, rng.choice(others))
        if kind.endswith("noise"):
            b, _ = noise(rng, b, part)
    elif kind == "synonym":
        b = a
        for x, y in rng.sample(SYNONYMS[part], len(SYNONYMS[part])):
            for old, new in ((x, y), (y, x)):
                if f" {old} " in f" {b} ":
                    b = f" {b} ".replace(f" {old} ", f" {new} ", 1).strip()
                    break
            if b != a:
                break
        if b == a:
            b = frame.say(values, rng.choice([t for t in templates if frame.say(values, t) != a]))
            kind = "rephrase"
    elif kind == "typo":
        b = typo(rng, a)
        if b is None:
            b, kind = noise(rng, a, part)
    else:
        b, kind = noise(rng, a, part)
    return a, b, kind


def different_pair(rng, frame, part):
    """A close question that asks something else, or None when the frame cannot."""
    spec = frame.spec
    values = frame.fill()
    template = rng.choice(spec["templates"])
    a = frame.say(values, template)
    kind = rng.choice(spec["negatives"])
    other = dict(values)
    b = None
    if kind == "slot":
        names = [n for n, p in spec["slots"].items() if p not in ("number",) and not p.startswith("unit_")]
        name = rng.choice(names)
        pool = spec["slots"][name]
        if spec.get("pair") and name == "a":
            name = rng.choice(["a", "b"])
            choices = [v for v in VOCAB[pool][part] if v not in (values["a"], values["b"])]
        else:
            choices = [v for v in VOCAB[pool][part] if v != values[name]]
        other[name] = rng.choice(choices)
        b = frame.say(other, template if rng.random() < 0.6 else None)
        kind = "entity"
    elif kind == "swap":
        other["a"], other["b"] = values["b"], values["a"]
        b = frame.say(other, template if rng.random() < 0.7 else None)
    elif kind == "antonym":
        x, y = values["cmp_pair"]
        other["cmp"] = y if values["cmp"] == x else x
        b = frame.say(other, template)
    elif kind == "evaluative":
        other["eval"] = values["eval_pair"][1]
        b = frame.say(other, template)
    elif kind == "ordering":
        other["order"] = values["order_pair"][1]
        b = frame.say(other, template)
    elif kind == "number":
        other["n"] = rng.choice([n for n in NUMBERS[part] if n != values["n"]])
        b = frame.say(other, template if rng.random() < 0.6 else None)
    elif kind == "direction":
        other["u1"], other["u2"] = values["u2"], values["u1"]
        b = frame.say(other, template)
    elif kind == "unit":
        pool = spec["slots"]["units"]
        pairs = [p for p in VOCAB[pool][part] if p[1] != values["u2"]]
        if not pairs:
            return None
        other["u2"] = rng.choice(pairs)[1]
        if other["u2"] == other["u1"]:
            return None
        b = frame.say(other, template)
    elif kind == "qualifier":
        q = rng.choice(QUALIFIERS[part])
        b = a.rstrip("?.") + q + a[len(a.rstrip("?.")):]
    elif kind == "negation_without":
        b = a.rstrip("?.") + " without " + rng.choice(["a library", "recursion", "extra memory", "mutation"]) + "?"
        a, b = (a, b) if rng.random() < 0.5 else (b, a)
        kind = "negation"
    elif kind == "negation":
        b = frame.say(values, rng.choice(spec["negated"]))
    if b is None or b == a:
        return None
    if rng.random() < 0.33:
        b, _ = noise(rng, b, part)
        kind += "+noise"
    return a, b, kind


def part_pairs(part, seed):
    rng = random.Random(seed)
    frames = [Frame(spec, part, rng) for spec in FRAMES[part]]
    out, seen = [], set()
    name = PARTS[part][0]
    while len(out) < PAIRS_PER_PART:
        frame = rng.choice(frames)
        label = "same" if rng.random() < 0.5 else "different"
        made = same_pair(rng, frame, part) if label == "same" else different_pair(rng, frame, part)
        if not made:
            continue
        a, b, kind = made
        if a == b or (a, b) in seen:
            continue
        seen.add((a, b))
        if rng.random() < 0.5:
            a, b = b, a
        out.append({"id": f"{name}-{len(out):04d}", "a": a, "b": b, "label": label,
                    "kind": kind, "frame": FRAMES[part].index(frame.spec), "split": name})
    return out


def main():
    for part, (name, seed) in enumerate(PARTS):
        pairs = part_pairs(part, seed)
        with open(HERE / f"{name}.jsonl", "w") as f:
            for pair in pairs:
                f.write(json.dumps(pair) + "\n")
        same = sum(p["label"] == "same" for p in pairs)
        print(f"{name}.jsonl: {len(pairs)} pairs ({same} same)")


if __name__ == "__main__":
    main()
