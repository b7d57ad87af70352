"""Scan lgae_hep's own imports: module sizes, the import graph, cycles, private names used
across modules, function-level imports and argparse outside the CLI package.

    python tools/import_graph.py            # report
    python tools/import_graph.py --check    # exit 1 on a cycle, a private cross-module import
                                            # or argparse in a library module (CI runs this)

Modules are read from the source tree with ``ast`` (nothing is imported). ``models/`` and
``processors/`` are mapped to ``lgae_hep.models`` / ``lgae_hep.processors`` as installed.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ROOTS = {"lgae_hep": REPO / "lgae_hep", "lgae_hep.models": REPO / "models",
         "lgae_hep.processors": REPO / "processors"}


def modules() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for prefix, root in ROOTS.items():
        for path in sorted(root.rglob("*.py")):
            rel = path.relative_to(root).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            name = ".".join([prefix, *parts])
            if prefix == "lgae_hep" and parts and parts[0] in ("models", "processors"):
                continue
            out[name] = path
    return out


def _resolve(mod: str, node: ast.ImportFrom, is_pkg: bool) -> str:
    if not node.level:
        return node.module or ""
    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def scan() -> dict:
    mods = modules()
    edges: dict[str, set[str]] = defaultdict(set)
    private: list[tuple[str, str, str]] = []
    inner: dict[str, int] = defaultdict(int)
    uses_argparse: list[str] = []
    for mod, path in mods.items():
        tree = ast.parse(path.read_text())
        is_pkg = path.name == "__init__.py"
        parents = {}
        for node in ast.walk(tree):
            for child in ast.iter_child_nodes(node):
                parents[child] = node
        for node in ast.walk(tree):
            targets: list[tuple[str, str | None]] = []
            if isinstance(node, ast.Import):
                targets = [(a.name, None) for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(mod, node, is_pkg)
                targets = [(base, a.name) for a in node.names]
            else:
                continue
            in_function = False
            p = parents.get(node)
            while p is not None:
                if isinstance(p, ast.FunctionDef | ast.AsyncFunctionDef):
                    in_function = True
                    break
                p = parents.get(p)
            for base, name in targets:
                if base == "argparse" or base.startswith("argparse."):
                    uses_argparse.append(mod)
                full = f"{base}.{name}" if name else base
                target = full if full in mods else base
                if target not in mods or not target.startswith("lgae_hep"):
                    continue
                if target != mod:
                    edges[mod].add(target)
                    if in_function:
                        inner[mod] += 1
                if name and name.startswith("_") and not name.startswith("__") \
                        and target != mod and not _same_package_private_ok(mod, target):
                    private.append((mod, target, name))
    return {"mods": mods, "edges": edges, "private": private, "inner": inner,
            "argparse": sorted(set(uses_argparse))}


def _same_package_private_ok(mod: str, target: str) -> bool:
    """A package's __init__ may re-export its own private modules (e3nn's o3 style)."""
    return target.startswith(mod + ".") and mod.count(".") < target.count(".")


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
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

    sys.setrecursionlimit(10_000)
    for v in list(edges):
        if v not in index:
            visit(v)
    return out


def _is_package_init(mod: str, mods: dict[str, Path]) -> bool:
    return mods[mod].name == "__init__.py"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args(argv)
    s = scan()
    mods, edges = s["mods"], s["edges"]
    # a package __init__ that re-exports its submodules is not a cycle with them
    graph = {m: {t for t in ts if not (_is_package_init(t, mods) and m.startswith(t + "."))}
             for m, ts in edges.items()}
    cyc = cycles(graph)
    lib_argparse = [m for m in s["argparse"] if not (m == "lgae_hep.cli" or
                                                     m.startswith("lgae_hep.cli."))]
    print("| module | lines | imports (lgae_hep) | imported by | function-level imports |")
    print("|---|---|---|---|---|")
    rev: dict[str, int] = defaultdict(int)
    for ts in edges.values():
        for t in ts:
            rev[t] += 1
    for m, path in sorted(mods.items(), key=lambda kv: -len(kv[1].read_text().splitlines())):
        print(f"| {m} | {len(path.read_text().splitlines())} | {len(edges.get(m, ()))} | "
              f"{rev[m]} | {s['inner'][m]} |")
    print(f"\nfunction-level imports of lgae_hep modules: {sum(s['inner'].values())}")
    print(f"import cycles: {cyc or 'none'}")
    print("private names imported across modules: "
          + (", ".join(f"{a} <- {b}.{n}" for a, b, n in s["private"]) or "none"))
    print(f"argparse outside lgae_hep.cli: {lib_argparse or 'none'}")
    if args.check and (cyc or s["private"] or lib_argparse):
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
