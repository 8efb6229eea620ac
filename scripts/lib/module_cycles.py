#!/usr/bin/env python3
"""Fails when the top-level modules of a crate import each other in a cycle.

ARCHITECTURE.md promises that every crate's modules form layers: a module may use the ones
below it, never one that uses it back. This reads each crate's `src/` as text (no build) and
draws an edge from module A to module B for every path `crate::B` (or `crate::{B, ...}`, or
`super::...::B` that climbs to the crate root) written in A's files, outside comments and
outside the `#[cfg(test)]` part at the end of a file. lib.rs and main.rs (which declare the
modules) are left out. Each cycle found is printed as `crate: a -> b -> a`.

Usage: module_cycles.py CRATE_DIR...   (default: every workspace member with a src/)
"""

import os
import re
import sys

PATH = re.compile(r"\b(crate|(?:super::)+)((?:::)?[^;]*)")
IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def code_of(text):
    """The text before the first `#[cfg(test)]`, without comment lines and trailing comments."""
    text = text.split("#[cfg(test)]")[0]
    lines = []
    for line in text.split("\n"):
        stripped = line.strip()
        if stripped.startswith("//"):
            continue
        lines.append(re.sub(r"\s//.*$", "", line))
    return "\n".join(lines)


def targets(prefix, rest, depth):
    """The top-level modules a path names; `depth` is how deep the file's module is."""
    if prefix.startswith("super"):
        climbs = prefix.count("super")
        if climbs < depth:  # stays inside the file's own top-level module
            return []
    if prefix == "crate":
        if not rest.startswith("::"):  # `pub(crate)`, `crate` alone
            return []
        rest = rest[2:]
    if rest.startswith("{"):  # `crate::{a, b::c}`: the first name of each part
        names = [IDENT.match(part.strip()) for part in rest[1:].split("}")[0].split(",")]
        return [m.group(0) for m in names if m]
    m = IDENT.match(rest)
    return [m.group(0)] if m else []


def graph(crate):
    src = os.path.join(crate, "src")
    edges = {}
    for dirpath, _, files in os.walk(src):
        for name in files:
            if not name.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(dirpath, name), src)[:-3].split(os.sep)
            if rel[-1] == "mod":
                rel = rel[:-1]
            if rel in (["lib"], ["main"]) or rel[0] == "bin":
                continue
            top, depth = rel[0], len(rel)
            with open(os.path.join(dirpath, name), encoding="utf-8") as f:
                code = code_of(f.read())
            for m in PATH.finditer(code):
                for t in targets(m.group(1), m.group(2), depth):
                    if t not in ("self", "super", top):
                        edges.setdefault(top, set()).add(t)
    return edges


def cycles(edges):
    """Strongly connected components of more than one module (Tarjan), each as a path."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def main(args):
    crates = args or sorted(
        d for d in os.listdir(".") if os.path.isfile(os.path.join(d, "Cargo.toml")) and os.path.isdir(os.path.join(d, "src"))
    )
    bad = 0
    for crate in crates:
        edges = graph(crate)
        for comp in cycles(edges):
            bad += 1
            inside = {m: sorted(edges.get(m, set()) & set(comp)) for m in comp}
            shown = "; ".join(f"{m} -> {', '.join(ts)}" for m, ts in inside.items())
            print(f"module_cycles: {crate}: modules in a cycle: {shown}")
    if bad:
        print("module_cycles: move the shared item down into a module both can use")
        return 1
    print(f"module_cycles: no cycle among the top-level modules of {len(crates)} crates")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
