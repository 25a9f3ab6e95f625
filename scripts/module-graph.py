#!/usr/bin/env python3
"""The crate's top-level modules and which import which (`use crate::X` and `crate::X::`
paths in src/), and any import circle among them. Exits 1 on a circle, or when a module
other than the crate root (lib.rs, the binaries) and the modules that run the config
(`reload`, `admin`: the application side, above the config as the root is) imports
`config`: the YAML schema converts into the features' settings, never the other way.

    python3 scripts/module-graph.py          # the edges, then `no circle` or the circles
"""
import pathlib
import re
import sys

SRC = pathlib.Path(__file__).resolve().parent.parent / "src"
# Modules that manage the running config (reloads, the admin API): they may import it;
# `config` must not import them (a circle would say so).
ABOVE_CONFIG = {"reload", "admin"}


def module_of(path: pathlib.Path) -> str:
    rel = path.relative_to(SRC).parts
    if rel[0] in ("lib.rs", "main.rs") or rel[0] == "bin":
        return "(root)"
    return rel[0].removesuffix(".rs")


def edges():
    graph = {}
    for path in SRC.rglob("*.rs"):
        me = module_of(path)
        if me == "(root)":
            continue
        text = path.read_text()
        # Doc comments and tests may name any module; only code counts.
        text = re.sub(r"(?m)^\s*//.*$", "", text)
        text = text.split("#[cfg(test)]\nmod tests")[0]
        for other in re.findall(r"\bcrate::([a-z_]+)", text):
            if other != me:
                graph.setdefault(me, set()).add(other)
        graph.setdefault(me, set())
    return graph


def circles(graph):
    found, state, stack = [], {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


if __name__ == "__main__":
    graph = edges()
    for node in sorted(graph):
        print(f"{node:12} -> {' '.join(sorted(graph[node])) or '-'}")
    found = circles(graph)
    for c in found:
        print("circle:", " -> ".join(c))
    importers = sorted(m for m, deps in graph.items() if "config" in deps and m not in ABOVE_CONFIG)
    if importers:
        print("imports config:", " ".join(importers))
    if found or importers:
        sys.exit(1)
    print("no circle; config imported only by the crate root and " + ", ".join(sorted(ABOVE_CONFIG)))
