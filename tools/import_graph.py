"""Package-level import graph of ``controller`` and its cycles (issue 15's before/after figure).

    python tools/import_graph.py            # edges, strongly connected components, elementary cycles
    python tools/import_graph.py --no-type-checking   # leave out imports under ``if TYPE_CHECKING:``

A node is a stage: ``controller.<x>`` for a subpackage or a top-level module
(``controller.pipeline``), or ``controller.<x>.<y>`` below a package listed in
``--split`` (default: ``controller.platforms``, one node per platform). Every
import between two modules, at module level or inside a function, is an edge
between their nodes. Built on grimp, import-linter's graph library, so the
figures are those ``lint-imports`` checks.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import grimp

ROOT = "controller"


def node(module: str, split: tuple[str, ...]) -> str:
    parts = module.split(".")
    for prefix in split:
        if module.startswith(prefix + ".") and len(parts) > prefix.count(".") + 1:
            return ".".join(parts[: prefix.count(".") + 2])
    return ".".join(parts[:2])


def package_edges(graph: grimp.ImportGraph, split: tuple[str, ...], type_checking: bool) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = defaultdict(set)
    for module in sorted(graph.modules):
        src = node(module, split)
        edges.setdefault(src, set())
        for imported in graph.find_modules_directly_imported_by(module):
            if not type_checking and _only_type_checking(graph, module, imported):
                continue
            dst = node(imported, split)
            if dst != src and dst.startswith(ROOT + "."):
                edges[src].add(dst)
    return edges


def _only_type_checking(graph: grimp.ImportGraph, importer: str, imported: str) -> bool:
    details = graph.get_import_details(importer=importer, imported=imported)
    if not details:
        return False
    path = Path(sys.modules[ROOT].__file__ or "").parent.parent / (importer.replace(".", "/"))
    source = path.with_suffix(".py") if path.with_suffix(".py").exists() else path / "__init__.py"
    lines = source.read_text().splitlines()
    return all(_under_type_checking(lines, d["line_number"]) for d in details)


def _under_type_checking(lines: list[str], number: int) -> bool:
    line = lines[number - 1]
    indent = len(line) - len(line.lstrip())
    for previous in reversed(lines[: number - 1]):
        stripped = previous.strip()
        if not stripped or stripped.startswith("#"):
            continue
        depth = len(previous) - len(previous.lstrip())
        if depth < indent:
            if stripped.startswith("if TYPE_CHECKING"):
                return True
            indent = depth
            if depth == 0:
                return False
    return False


def strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm; components of more than one node are the cycles' stages."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return sorted(out)


def elementary_cycles(edges: dict[str, set[str]], limit: int = 10_000) -> list[list[str]]:
    """Every simple cycle once (started at its smallest node), up to ``limit``."""
    found: list[list[str]] = []
    for start in sorted(edges):
        path = [start]

        def walk(v: str, path: list[str] = path, start: str = start) -> None:
            for w in sorted(edges.get(v, ())):
                if len(found) >= limit:
                    return
                if w == start:
                    found.append([*path, start])
                elif w > start and w not in path:
                    path.append(w)
                    walk(w)
                    path.pop()

        walk(start)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", action="append", default=None, help="package whose children are nodes")
    parser.add_argument("--no-type-checking", action="store_true", help="ignore imports under TYPE_CHECKING")
    args = parser.parse_args(argv)
    split = tuple(args.split or [f"{ROOT}.platforms"])
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    __import__(ROOT)
    graph = grimp.build_graph(ROOT, cache_dir=None)
    edges = package_edges(graph, split, type_checking=not args.no_type_checking)
    n_edges = sum(len(v) for v in edges.values())
    print(f"# controller import graph: {len(edges)} nodes, {n_edges} package-level edges, {len(graph.modules)} modules")
    for src in sorted(edges):
        print(f"{src} -> {', '.join(sorted(d.removeprefix(ROOT + '.') for d in edges[src])) or '(nothing)'}")
    components = strongly_connected(edges)
    cycles = elementary_cycles(edges)
    print(f"\n# strongly connected components (stages on a cycle): {len(components)}")
    for component in components:
        print("  " + " <-> ".join(c.removeprefix(ROOT + ".") for c in component))
    two = [c for c in cycles if len(c) == 3]
    print(f"\n# elementary cycles: {len(cycles)} (of them two-stage, A -> B -> A: {len(two)})")
    for cycle in cycles:
        print("  " + " -> ".join(c.removeprefix(ROOT + ".") for c in cycle))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
