#!/usr/bin/env python3
"""Writes src/tokens/o200k.bin, the o200k_base BPE ranks in the layout src/tokens/mod.rs reads.

    python3 scripts/o200k.py PATH/TO/o200k_base.tiktoken

The input is OpenAI's rank file (as tiktoken and the `tiktoken-rs` crate ship it:
`~/.cargo/registry/src/*/tiktoken-rs-*/assets/o200k_base.tiktoken`, MIT). Every line is a
token's bytes in base64 and its rank; the ranks run 0..N-1. Little-endian u32s:
N, the end offset of every token's bytes in rank order, the ranks sorted by their bytes;
then the tokens' bytes, concatenated in rank order.
"""
import base64
import pathlib
import struct
import sys

OUT = pathlib.Path(__file__).resolve().parent.parent / "src" / "tokens" / "o200k.bin"


def main():
    tokens = {}
    for line in open(sys.argv[1], "rb"):
        raw, rank = line.split()
        tokens[int(rank)] = base64.b64decode(raw)
    n = len(tokens)
    assert sorted(tokens) == list(range(n)), "ranks are not 0..N-1"
    by_rank = [tokens[r] for r in range(n)]
    ends, end = [], 0
    for t in by_rank:
        end += len(t)
        ends.append(end)
    order = sorted(range(n), key=lambda r: by_rank[r])
    with open(OUT, "wb") as f:
        f.write(struct.pack(f"<I{n}I{n}I", n, *ends, *order))
        f.write(b"".join(by_rank))
    print(f"{OUT}: {n} tokens, {end} bytes of token text, {OUT.stat().st_size} bytes")


if __name__ == "__main__":
    main()
