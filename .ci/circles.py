#!/usr/bin/env python3
"""Find import circles between the files of src/ (issue 17: "no import circle between src/ modules").

The graph has one node per .rs file under src/. Each `use` statement (also `pub use`,
`pub(crate) use`, `use` inside function bodies, nested braces `use a::{b::{C, D}, E};`)
gives one edge per imported path, from the file holding the statement to the FILE that
the path's module resolves to: the deepest existing `src/a/b.rs` or `src/a/b/mod.rs`
(`crate::node::Network` -> src/node/mod.rs, `super::info::Provider` written in
src/node/network.rs -> src/node/info.rs). Paths start at `crate::`, `super::` (repeatable),
`self::`, or at the name of a child module of the current one; anything else (std, external
crates, `mcc::` from the binary) is ignored. `mod x;` declarations are not edges, and
neither is a file's import of an enclosing module's own file (`use super::X;` in
src/node/network.rs naming an item of src/node/mod.rs, or `crate::node::X` from
src/node/event_loop/peers.rs): a submodule is part of its parent, so using the parent's
items is structure, not a circle. Imports downward (mod.rs re-exporting its children) and
across (siblings, other modules) are edges.
Test code is left out: from a column-0 `#[cfg(test)]` line that opens an inline module
(`mod tests {`) to the end of the file; a `#[cfg(test)] mod tests;` declaration skips
only itself. Comments are stripped first, so doc examples do not count.

Prints every strongly connected component of more than one file, with its edges and the
`use` paths behind them, and exits 1 if there is any.
Usage: python3 .ci/circles.py [SRC_DIR]   (default: src/ next to this .ci/ directory)
"""
import os
import re
import sys

SRC = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
SRC = os.path.normpath(SRC)
USE_RE = re.compile(r"^[ \t]*(?:pub(?:\([^)]*\))?[ \t]+)?use[ \t]+([^;]+);", re.M)


def module_of(rel):
    """Module path of a file: src/a/b.rs -> [a, b]; src/a/mod.rs, src/a.rs's dir -> [a]; lib.rs -> []."""
    parts = rel[:-3].split("/")
    if parts[-1] in ("mod", "lib", "main") and (parts[-1] == "mod" or len(parts) == 1):
        parts = parts[:-1]
    return parts


def file_of(mod):
    """The file of a module path, or None if there is none."""
    if not mod:
        return "lib.rs"
    for cand in ("/".join(mod) + ".rs", "/".join(mod) + "/mod.rs"):
        if os.path.isfile(os.path.join(SRC, cand)):
            return cand
    return None


def strip(text):
    """Drops comments and test-only inline modules (see the module doc)."""
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    lines, out = text.split("\n"), []
    for i, line in enumerate(lines):
        if line.startswith("#[cfg(test)]"):
            rest = "\n".join(lines[i + 1:]).lstrip()
            if re.match(r"(?:pub(?:\([^)]*\))?\s+)?mod\s+\w+\s*\{", rest):
                break
            continue
        out.append(line)
    return "\n".join(out)


def expand(tree):
    """`a::{b::{C, D}, E as F, self}` -> [[a,b,C], [a,b,D], [a,E], [a]]."""
    tree = re.sub(r"\s+", " ", tree).strip()
    if tree.startswith("::"):
        tree = tree[2:]
    depth, brace = 0, None
    for i, ch in enumerate(tree):  # the first top-level brace group
        if ch == "{":
            if depth == 0:
                brace = i
            depth += 1
        elif ch == "}":
            depth -= 1
    if brace is None:
        path = re.sub(r" as \w+$", "", tree).strip()
        return [[s.strip() for s in path.split("::") if s.strip()]]
    prefix = [s.strip() for s in tree[:brace].split("::") if s.strip()]
    inner, items, depth, cur = tree[brace + 1:tree.rindex("}")], [], 0, ""
    for ch in inner:  # split on top-level commas
        depth += ch == "{"
        depth -= ch == "}"
        if ch == "," and depth == 0:
            items.append(cur)
            cur = ""
        else:
            cur += ch
    items.append(cur)
    paths = []
    for item in filter(str.strip, items):
        for sub in expand(item):
            paths.append(prefix + (sub[1:] if sub[:1] == ["self"] else sub))
    return paths


def target(rel, segs):
    """The file a `use` path (segments) written in file `rel` resolves to, or None if external."""
    here = module_of(rel)
    if segs[0] == "crate":
        mod, segs = [], segs[1:]
    elif segs[0] in ("self", "super"):
        mod = list(here)
        while segs and segs[0] in ("self", "super"):
            if segs.pop(0) == "super":
                mod = mod[:-1]
    elif file_of(here + segs[:1]):
        mod = list(here)  # 2018 uniform path through a child module: `use registry::X`
    else:
        return None
    for k in range(len(segs), -1, -1):
        found = file_of(mod + segs[:k])
        if found:
            return found
    return None


def is_ancestor(to, rel):
    """Whether file `to` is the mod.rs/lib.rs of a module that contains file `rel`."""
    up, down = module_of(to), module_of(rel)
    return to.endswith(("mod.rs", "lib.rs")) and len(up) < len(down) and down[: len(up)] == up


def build():
    edges = {}  # (from, to) -> [use paths]
    for root, _, files in os.walk(SRC):
        for name in sorted(files):
            if not name.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(root, name), SRC).replace(os.sep, "/")
            with open(os.path.join(SRC, rel), encoding="utf-8") as f:
                text = strip(f.read())
            for m in USE_RE.finditer(text):
                for segs in expand(m.group(1)):
                    to = target(rel, segs) if segs else None
                    if to and to != rel and not is_ancestor(to, rel):
                        edges.setdefault((rel, to), []).append("::".join(segs))
    return edges


def sccs(nodes, succ):
    """Tarjan's strongly connected components."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in succ.get(v, ()):
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
            out.append(sorted(comp))

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def main():
    sys.setrecursionlimit(10000)
    edges = build()
    succ, nodes = {}, set()
    for a, b in edges:
        succ.setdefault(a, set()).add(b)
        nodes.update((a, b))
    circles = [c for c in sccs(nodes, succ) if len(c) > 1]
    for n, comp in enumerate(sorted(circles), 1):
        print(f"circle {n}: " + ", ".join(f"src/{f}" for f in comp))
        for (a, b), paths in sorted(edges.items()):
            if a in comp and b in comp:
                print(f"  src/{a} -> src/{b}: " + ", ".join(sorted(set(paths))))
    if circles:
        print(f"{len(circles)} import circle(s) between src/ files")
        return 1
    print(f"no import circle between the {len(nodes)} src/ files with imports")
    return 0


if __name__ == "__main__":
    sys.exit(main())
