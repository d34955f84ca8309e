"""Show the house: import cycles between hlora_cli modules, imports that run up the layers, and
the largest files and functions. `python scripts/house.py` (module-level imports; a function's
own import is lazy and listed apart)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Lower layers never import higher ones; modules of one layer may import each other.
LAYERS = {
    "errors": 0, "values": 0, "files": 0, "device": 0,
    "data": 1, "model": 2, "score": 3, "train": 3, "infer": 3, "export": 3, "experiments": 4, "cli": 5,
}  # fmt: skip


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted((ROOT / "hlora_cli").rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def imports(tree: ast.Module, name: str, known: set[str]) -> tuple[set[str], set[str]]:
    """(module-level imports, imports inside functions) of hlora_cli modules."""
    top, lazy = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            continue
        hits = {t for t in targets if t in known and t != name}
        (top if node.col_offset == 0 else lazy).update(hits)
    return top, lazy


def layer(module: str) -> int:
    parts = module.split(".")
    return LAYERS.get(parts[1], -1) if len(parts) > 1 else 99  # the package itself: the CLI's entry


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out, n = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
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
    for v in graph:
        if v not in index:
            visit(v)
    return out


def main() -> None:
    mods = modules()
    known = set(mods)
    graph, lazy_edges, functions, files = {}, [], [], []
    for name, path in mods.items():
        text = path.read_text(encoding="utf-8")
        tree = ast.parse(text)
        top, lazy = imports(tree, name, known)
        graph[name] = top
        lazy_edges += [(name, t) for t in lazy]
        files.append((len(text.splitlines()), str(path.relative_to(ROOT))))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                functions.append((node.end_lineno - node.lineno + 1, f"{path.relative_to(ROOT)}:{node.name}"))
    found = cycles(graph)
    up = sorted((a, b) for a, bs in graph.items() for b in bs if 0 <= layer(a) < layer(b) and layer(b) != 99)
    lazy_up = sorted((a, b) for a, b in lazy_edges if 0 <= layer(a) < layer(b) and layer(b) != 99)
    print(f"modules: {len(mods)}")
    print(f"import cycles (module level): {len(found)}" + "".join(f"\n  {' <-> '.join(c)}" for c in found))
    print(f"imports up the layers (module level): {len(up)}" + "".join(f"\n  {a} -> {b}" for a, b in up))
    print(f"imports up the layers (inside functions): {len(lazy_up)}" + "".join(f"\n  {a} -> {b}" for a, b in lazy_up))
    standalone = sorted(
        str(p.relative_to(ROOT))
        for p in (ROOT / "text_normalization").rglob("*.py")
        if any(
            isinstance(n, (ast.Import, ast.ImportFrom))
            and any(
                m.startswith("hlora_cli")
                for m in ([n.module or ""] if isinstance(n, ast.ImportFrom) else [a.name for a in n.names])
            )
            for n in ast.walk(ast.parse(p.read_text(encoding="utf-8")))
        )
    )
    print(
        f"text_normalization modules importing hlora_cli (it stands alone): {len(standalone)}"
        + "".join(f"\n  {p}" for p in standalone)
    )
    print("largest files: " + ", ".join(f"{p} {n}" for n, p in sorted(files, reverse=True)[:5]))
    print("largest functions: " + ", ".join(f"{p} {n}" for n, p in sorted(functions, reverse=True)[:5]))


if __name__ == "__main__":
    main()
