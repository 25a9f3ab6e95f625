#!/usr/bin/env python3
"""What one callgrind profile spends more than another, per request, by source line.

Function-level self costs say little in this crate's release builds: whole task futures
are inlined into tokio's `Core::poll`. The line tables still name the file and line of
every inlined instruction (`fi=`/`fe=` in the out file), so this sums self cost per source
file (and line), and counts calls to a callee per calling function.

    # profiles of the same stack, two workloads (or two builds), N requests each; with
    # --separate-threads=yes pass the worker threads' files only (comma-separated)
    python3 benches/cgdiff.py A.out[,A2.out] B.out[,B2.out] [--requests N] \
        [--lines PATTERN] [--calls CALLEE_REGEX]

`benches/e2e.sh` keeps its profiles with CALLGRIND_OUT=DIR (dump 1 is the first workload
under load, 3 the second, …). The metering writer's batches (on blocking threads) make whole
process totals move by ±1k per request; to compare the request path alone, run a copy of
e2e.sh with `--separate-threads=yes` added to its valgrind line (its own totals then fail,
the profiles are kept) and pass the tokio workers' files (`*.1-02,*.1-03`).
"""

import argparse
import collections
import re

PREFIXES = (
    re.compile(r"^/root/\.cargo/registry/src/[^/]+/"),
    re.compile(r"^/rustc/[0-9a-f]+/"),
)


def short(path):
    for prefix in PREFIXES:
        path = prefix.sub("", path or "?")
    return path


def named(value, table):
    """`(id) name` defines an id, `(id)` refers to one."""
    m = re.match(r"\((\d+)\)(?: (.*))?", value)
    if not m:
        return value
    if m.group(2):
        table[m.group(1)] = m.group(2)
    return table.get(m.group(1), "?")


def parse(path, callee=None):
    """Self cost per file and per (file, line); calls to `callee` per calling function."""
    files, fns = {}, {}
    per_file, per_line, calls = collections.Counter(), collections.Counter(), collections.Counter()
    fl = current = fn = cfn = None
    line, after_calls = 0, False
    for raw in open(path, encoding="utf-8", errors="replace"):
        raw = raw.rstrip("\n")
        if not raw:
            continue
        if raw.startswith("fl="):
            fl = current = named(raw[3:], files)
        elif raw.startswith(("fi=", "fe=")):
            current = named(raw[3:], files)
        elif raw.startswith("fn="):
            current, fn = fl, named(raw[3:], fns)
        elif raw.startswith("cfn="):
            cfn = named(raw[4:], fns)
        elif raw.startswith(("cfl=", "cfi=")):
            named(raw[4:], files)
        elif raw.startswith("calls="):
            after_calls = True
            if callee and cfn and callee.search(cfn):
                calls[fn] += int(raw[6:].split()[0])
        elif raw[0].isdigit() or raw[0] in "+-*":
            parts = raw.split()
            position = parts[0]
            if position[0] in "+-":
                line += int(position)
            elif position != "*":
                line = int(position)
            if after_calls:  # the inclusive cost of the call, not self cost
                after_calls = False
                continue
            if len(parts) > 1:
                per_file[current] += int(parts[1])
                per_line[(current, line)] += int(parts[1])
    return per_file, per_line, calls


def load(paths, callee):
    total = [collections.Counter() for _ in range(3)]
    for path in paths.split(","):
        for counter, part in zip(total, parse(path, callee)):
            counter.update(part)
    return total


def main():
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("a")
    args.add_argument("b")
    args.add_argument("--requests", type=int, default=1000)
    args.add_argument("--lines", help="also per line, for files matching this")
    args.add_argument("--calls", help="calls to callees matching this regex, per caller")
    args.add_argument("--top", type=int, default=30)
    opts = args.parse_args()
    callee = re.compile(opts.calls) if opts.calls else None
    a, b = load(opts.a, callee), load(opts.b, callee)
    n = opts.requests

    def show(title, x, y, key=lambda k: short(k)):
        diff = sorted(((x[k] - y[k]) / n, k) for k in set(x) | set(y))
        print(f"\n{title}: {(sum(x.values()) - sum(y.values())) / n:+.1f} per request")
        for cost, k in diff[::-1][: opts.top]:
            if cost:
                print(f"{cost:+10.1f}  {key(k)}")
        for cost, k in diff[:5]:
            if cost < 0:
                print(f"{cost:+10.1f}  {key(k)}")

    show("self cost by source file", a[0], b[0])
    if opts.lines:
        pick = lambda c: collections.Counter({k: v for k, v in c.items() if opts.lines in (k[0] or "")})
        show(f"by line of {opts.lines}", pick(a[1]), pick(b[1]), key=lambda k: f"{short(k[0])}:{k[1]}")
    if callee:
        show(f"calls to /{opts.calls}/ by caller", a[2], b[2], key=lambda k: (k or "?")[:160])


if __name__ == "__main__":
    main()
