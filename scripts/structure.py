"""The module structure of redcore_lite: declared layers, the import graph, and a check of both.

    python scripts/structure.py           # check: exit 1 on an import cycle or an upward import
    python scripts/structure.py --write   # also redraw docs/structure.md and docs/structure.svg

Every import of a sibling module counts, wherever it is (top level, inside a function, under
``TYPE_CHECKING``) and however it is spelt (``from . import x``, ``from .x import y``,
``from redcore_lite.x import y``, ``import redcore_lite.x``). ``__init__`` and ``__main__`` import
everything by design and are left out. Each module belongs to one layer of :data:`LAYERS` (bottom
first); an import may point to a lower layer or, inside a layer, to a module placed before it (the
script finds such an order, or lists the cycle). A module that exists but is in no layer is an
error; a declared module that does not exist (yet) is skipped. ``tests/test_structure.py`` runs
the check and compares ``docs/structure.md`` and ``docs/structure.svg`` with what ``--write``
would write now.
"""
from __future__ import annotations

import argparse
import ast
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "redcore_lite"
DOCS = ROOT / "docs"
SKIP = ("__init__", "__main__")  # they import everything by design

# (layer, modules), bottom layer first; inside a layer the order is a preference (the drawing's
# left-to-right order where the imports allow it)
LAYERS: list[tuple[str, list[str]]] = [
    ("foundations", ["_version", "_checks", "_files", "distributed", "optim", "metrics", "layers",
                     "generators"]),
    ("configuration", ["config"]),
    ("data", ["registry", "data", "batching", "masking", "custom", "avdigits", "mmin_corpus",
              "shipped", "custom_io", "datasets"]),
    ("model", ["vib", "model", "losses", "advantage", "diagnostics"]),
    ("training", ["result", "evaluation", "step", "state", "callbacks", "checkpoint", "trainer"]),
    ("experiments", ["grid", "stats", "report", "sweep_ray", "sweep"]),
    ("presentation", ["plots", "diagrams", "widgets", "book"]),
    ("interface", ["cli"]),
]
LAYER_TEXT = {
    "foundations": ("argument checks, files, the version, and building blocks: optimiser, metrics, "
                    "layers, generators, torchrun helpers"),
    "configuration": "the experiment configuration and its presets",
    "data": ("data types, batches, masks, your own data, the shipped and released datasets, the "
             "dataset registry"),
    "model": "the RedCore network, its losses, the relative advantage, diagnostics",
    "training": ("fit and what it calls: the training state, the eager and static (CUDA-graph) "
                 "steps, evaluation, callbacks, checkpoints"),
    "experiments": "ablation sweeps: the grid, the runner, paired statistics, the report",
    "presentation": "figures, widgets and the HTML book",
    "interface": "the command line",
}
# Imports that break the rules and are being removed (not failures; reported as pending). Empty:
# keep it so, and fix an upward import instead of listing it here.
PENDING: set[tuple[str, str]] = set()


def sibling_imports(tree: ast.AST, package: str, siblings: Iterable[str]) -> set[str]:
    """The sibling modules a parsed module imports, anywhere in it."""
    names = set(siblings)
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 or node.level == 0 and node.module is not None and (
                    node.module == package or node.module.startswith(package + ".")):
                parts = (node.module or "").split(".")
                if node.level == 0:
                    parts = parts[1:]  # drop the package name
                if parts and parts[0]:
                    found.add(parts[0])  # from .x import y, from package.x import y
                else:
                    found.update(a.name for a in node.names)  # from . import x, from package import x
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == package and len(parts) > 1:
                    found.add(parts[1])  # import package.x
    return found & names


def module_graph(package_dir: Path = PACKAGE) -> dict[str, set[str]]:
    """``{module: the sibling modules it imports}`` of the package's ``*.py`` (sorted by name)."""
    paths = {p.stem: p for p in sorted(package_dir.glob("*.py")) if p.stem not in SKIP}
    return {name: sibling_imports(ast.parse(path.read_text(encoding="utf-8"), str(path)),
                                  package_dir.name, paths) - {name}
            for name, path in paths.items()}


def summary(path: Path) -> str:
    """The first sentence of a module's docstring, as one line of markdown."""
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    text = " ".join(doc.split("\n\n")[0].split())
    match = re.search(r"\.(?=\s+[A-Z`(:])", text)
    text = text[:match.end()] if match else text
    text = re.sub(r":\w+:`~?([\w.]*?)([\w]+)`", r"`\2`", text)  # :func:`~a.b` -> `b`
    return text.replace("``", "`")


@dataclass
class Structure:
    """The outcome of :func:`check`."""

    layers: list[tuple[str, list[str]]]  # the existing modules of each layer, in import order
    edges: list[tuple[str, str]]  # every import (importer, imported), pending ones included
    cycles: list[list[str]] = field(default_factory=list)  # each as a closed path a, b, ..., a
    upward: list[tuple[str, str, str, str]] = field(default_factory=list)  # a, its layer, b, its layer
    undeclared: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    pending: list[tuple[str, str]] = field(default_factory=list)  # PENDING edges that exist
    stale: list[tuple[str, str]] = field(default_factory=list)  # PENDING edges that no longer exist

    @property
    def violations(self) -> list[str]:
        out = [f"module {m!r} exists but is in no layer (add it to LAYERS)" for m in self.undeclared]
        out += [f"module {m!r} is declared in more than one layer" for m in self.duplicated]
        out += ["cycle: " + " -> ".join(c) for c in self.cycles]
        out += [f"upward: {a} ({la}) -> {b} ({lb})" for a, la, b, lb in self.upward]
        return out

    @property
    def layer_of(self) -> dict[str, str]:
        return {m: name for name, mods in self.layers for m in mods}


def _strongly_connected(nodes: Sequence[str], graph: Mapping[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components (iterative), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    for root in nodes:
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    comp.append(top)
                    if top == node:
                        break
                out.append(sorted(comp))
    return out


def _path(graph: Mapping[str, set[str]], members: set[str], start: str, goal: str) -> list[str]:
    """A shortest import path from ``start`` to ``goal`` inside ``members`` (breadth first)."""
    parent = {start: start}
    frontier = [start]
    while frontier and goal not in parent:
        nxt = []
        for node in frontier:
            for child in sorted(graph.get(node, set()) & members):
                if child not in parent:
                    parent[child] = node
                    nxt.append(child)
        frontier = nxt
    path = [goal]
    while path[-1] != start:
        path.append(parent[path[-1]])
    return path[::-1]


def _cycles_in(component: Sequence[str], graph: Mapping[str, set[str]]) -> list[list[str]]:
    """Cycles that together hold every import inside a strongly connected component: for each
    such import a -> b, the shortest way back b -> ... -> a; each cycle once, as a closed path
    starting at its first module by name."""
    members = set(component)
    seen: set[tuple[str, ...]] = set()
    out: list[list[str]] = []
    for a in component:
        for b in sorted(graph.get(a, set()) & members):
            ring = [a, *_path(graph, members, b, a)[:-1]]
            k = ring.index(min(ring))
            key = tuple(ring[k:] + ring[:k])
            if key not in seen:
                seen.add(key)
                out.append([*key, key[0]])
    return out


def _order(mods: Sequence[str], graph: Mapping[str, set[str]]) -> list[str] | None:
    """The layer's modules so that each imports only earlier ones (the declared order where the
    imports allow it), or None if the imports inside the layer have a cycle."""
    inside = set(mods)
    left = list(mods)
    done: list[str] = []
    while left:
        ready = [m for m in left if not (graph.get(m, set()) & inside) - set(done)]
        if not ready:
            return None
        done.append(ready[0])
        left.remove(ready[0])
    return done


def check(graph: Mapping[str, set[str]], layers: Sequence[tuple[str, Sequence[str]]] = LAYERS,
          pending: Iterable[tuple[str, str]] = PENDING) -> Structure:
    """Place every module of ``graph`` in its layer, order each layer, and find the violations:
    modules in no layer (or in two), import cycles, imports from a lower layer to a higher one.
    Edges in ``pending`` are reported as pending and left out of the check."""
    pending = set(pending)
    rank: dict[str, int] = {}
    declared: list[str] = []
    for i, (_, mods) in enumerate(layers):
        for m in mods:
            declared.append(m)
            rank.setdefault(m, i)
    edges = sorted((a, b) for a, bs in graph.items() for b in bs)
    checked = {a: {b for b in bs if (a, b) not in pending} for a, bs in graph.items()}
    result = Structure(layers=[], edges=edges)
    result.undeclared = sorted(m for m in graph if m not in rank)
    result.duplicated = sorted({m for m in declared if declared.count(m) > 1})
    result.pending = sorted(e for e in edges if e in pending)
    result.stale = sorted(pending - set(edges))
    for comp in _strongly_connected(sorted(graph), checked):
        if len(comp) > 1:
            result.cycles += _cycles_in(comp, checked)
    names = [name for name, _ in layers]
    for a, b in edges:
        if (a, b) not in pending and a in rank and b in rank and rank[a] < rank[b]:
            result.upward.append((a, names[rank[a]], b, names[rank[b]]))
    for i, (name, mods) in enumerate(layers):
        present = [m for m in dict.fromkeys(mods) if m in graph and rank[m] == i]
        order = _order(present, checked)
        result.layers.append((name, order if order is not None else present))
    return result


# ---------------------------------------------------------------- drawing


def _node(module: str) -> str:
    return "m_" + module  # a Mermaid id (a module name alone could be a Mermaid keyword: end)


def render_markdown(result: Structure, package_dir: Path = PACKAGE) -> str:
    """``docs/structure.md``: the layers (top first), one line per module, and a Mermaid chart."""
    layer_of = result.layer_of
    top_first = [(n, mods) for n, mods in reversed(result.layers) if mods]
    lines = ["# The structure of redcore_lite", "",
             "Written by `python scripts/structure.py --write` (do not edit by hand; "
             "`tests/test_structure.py` checks that it is current).", "",
             f"The library's {sum(len(m) for _, m in top_first)} modules in {len(top_first)} "
             "layers, bottom to top: " + ", ".join(n for n, _ in reversed(top_first)) + ". A module "
             "imports only modules of lower layers, or of its own layer listed before it (in the "
             "drawing: to its left). Every import counts: at the top of a file, inside a function, "
             "or under `TYPE_CHECKING`. `__init__.py` and `__main__.py` import everything by design and are "
             "left out. `python scripts/structure.py` checks this; `--write` redraws this page and "
             "the drawing.", "",
             "![The modules of redcore_lite in layers; arrows point from importer to imported]"
             "(structure.svg)", "", "## Layers, top first", ""]
    for name, mods in top_first:
        lines.append(f"**{name}**: {LAYER_TEXT.get(name, '')}.")
        lines.append("")
        for m in mods:
            lines.append(f"- `{m}`: {summary(package_dir / f'{m}.py')}")
        lines.append("")
    if result.pending:
        lines += ["## Pending", "",
                  "Imports being removed (`PENDING` in the script; the trainer rewrite moves what "
                  "they import into lower modules):", ""]
        lines += [f"- `{a}` -> `{b}`" for a, b in result.pending]
        lines.append("")
    lines += ["## Every import", "",
              f"{len(result.edges)} imports, arrows from importer to imported"
              + (" (dotted: pending)." if result.pending else "."), "",
              "```mermaid", "flowchart TB"]
    for name, mods in top_first:
        lines.append(f'    subgraph L_{name}["{name}"]')
        lines += [f'        {_node(m)}["{m}"]' for m in mods]
        lines.append("    end")
    for a, b in result.edges:
        if a in layer_of and b in layer_of:
            arrow = "-.->" if (a, b) in result.pending else "-->"
            lines.append(f"    {_node(a)} {arrow} {_node(b)}")
    lines += ["```", ""]
    return "\n".join(lines)


def render_svg(result: Structure, fmt: str = "svg") -> bytes:
    """``docs/structure.svg``: layers as bands (top layer at the top), modules as boxes, every
    import as an arrow from importer to imported (down between layers, arced inside a layer).
    Deterministic: the same bytes for the same structure and matplotlib."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Patch
    from matplotlib.lines import Line2D

    top_first = [(n, mods) for n, mods in reversed(result.layers) if mods]
    box_w, box_h, gap, band_h, label_w = 1.55, 0.42, 0.22, 1.35, 1.5
    widest = max(len(mods) for _, mods in top_first)
    width = label_w + widest * (box_w + gap) + gap
    height = len(top_first) * band_h
    pos: dict[str, tuple[float, float]] = {}
    row_of: dict[str, int] = {}
    # matplotlib's defaults, whatever an earlier import (seaborn's theme in rc.plots) has set
    with plt.style.context("default"), plt.rc_context({
            "svg.hashsalt": "redcore_lite-structure", "svg.fonttype": "none",
            "font.family": "DejaVu Sans", "font.size": 9}):
        fig = plt.figure(figsize=(width, height + 0.9))
        ax = fig.add_axes((0.0, 0.0, 1.0, height / (height + 0.9)))
        ax.set_xlim(0, width)
        ax.set_ylim(0, height)
        ax.axis("off")
        for row, (name, mods) in enumerate(top_first):
            y0 = height - (row + 1) * band_h
            ax.add_patch(FancyBboxPatch((0.05, y0 + 0.05), width - 0.1, band_h - 0.1,
                                        boxstyle="round,pad=0,rounding_size=0.08", linewidth=0,
                                        facecolor="#eef2f7" if row % 2 == 0 else "#f7f7f2",
                                        zorder=0))
            ax.text(0.18, y0 + band_h / 2, name, ha="left", va="center", fontsize=10,
                    fontweight="bold", color="#334")
            span = len(mods) * (box_w + gap) - gap
            x_start = label_w + (width - label_w - gap - span) / 2
            for k, m in enumerate(mods):
                x = x_start + k * (box_w + gap)
                pos[m] = (x + box_w / 2, y0 + band_h / 2)
                row_of[m] = row
                ax.add_patch(FancyBboxPatch((x, y0 + band_h / 2 - box_h / 2), box_w, box_h,
                                            boxstyle="round,pad=0,rounding_size=0.06",
                                            facecolor="white", edgecolor="#556", linewidth=0.9,
                                            zorder=3))
                ax.text(x + box_w / 2, y0 + band_h / 2, m, ha="center", va="center",
                        fontsize=9, family="monospace", zorder=4)
        for a, b in result.edges:
            if a not in pos or b not in pos:
                continue
            (xa, ya), (xb, yb) = pos[a], pos[b]
            pending = (a, b) in result.pending
            if row_of[a] == row_of[b]:  # inside a layer: an arc above the boxes, inside the band
                start, end = (xa, ya + box_h / 2), (xb, yb + box_h / 2)
                rise = min(0.4, 0.1 + 0.05 * abs(xb - xa) / (box_w + gap))  # the arc's height
                rad = -2 * rise / (xb - xa)  # arc3: the control point at 2 * rise above the chord
                color, style, lw = "#c0392b" if pending else "#d68910", "--" if pending else "-", 1.0
            else:  # to a lower layer: bottom of the importer to the top of the imported, the ends
                # spread over the boxes' width by direction so that the arrows stay apart
                lean = max(-0.4, min(0.4, (xb - xa) / 12)) * box_w
                start, end = (xa + lean, ya - box_h / 2), (xb - lean, yb + box_h / 2)
                rad = 0.0
                color = "#c0392b" if pending else "#5d6d7e"
                style, lw = ("--", 1.0) if pending else ("-", 0.55)
            ax.add_patch(FancyArrowPatch(start, end, connectionstyle=f"arc3,rad={rad}",
                                         arrowstyle="-|>,head_length=4,head_width=2.2",
                                         color=color, linestyle=style, linewidth=lw,
                                         alpha=0.95 if pending or rad else 0.45, zorder=2.5 if pending else 2,
                                         shrinkA=1, shrinkB=1))
        handles = [Line2D([], [], color="#5d6d7e", lw=1.0, label="import from a lower layer"),
                   Line2D([], [], color="#d68910", lw=1.0, label="import inside a layer (arc)"),
                   Patch(facecolor="white", edgecolor="#556", label="module")]
        if result.pending:
            handles.insert(2, Line2D([], [], color="#c0392b", lw=1.0, ls="--",
                                     label="pending (being removed)"))
        fig.legend(handles=handles, loc="upper right", ncol=len(handles), frameon=False,
                   fontsize=9, bbox_to_anchor=(0.99, 0.995))
        fig.text(0.01, 0.995, "redcore_lite: modules by layer (top layer first); arrows point "
                 "from importer to imported", ha="left", va="top", fontsize=11,
                 fontweight="bold")
        buf = io.BytesIO()
        if fmt == "svg":  # no date: the same bytes each run (the creator names matplotlib's version)
            fig.savefig(buf, format="svg", metadata={"Date": None})
        else:  # a PNG to look at while changing the drawing
            fig.savefig(buf, format=fmt)
        plt.close(fig)
    return buf.getvalue()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--write", action="store_true",
                        help="also write docs/structure.md and docs/structure.svg")
    parser.add_argument("--package", type=Path, default=PACKAGE, help=argparse.SUPPRESS)
    parser.add_argument("--docs", type=Path, default=DOCS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    result = check(module_graph(args.package), LAYERS, PENDING)
    if args.write:
        args.docs.mkdir(parents=True, exist_ok=True)
        (args.docs / "structure.md").write_text(render_markdown(result, args.package), encoding="utf-8")
        (args.docs / "structure.svg").write_bytes(render_svg(result))
        print(f"wrote {args.docs / 'structure.md'} and {args.docs / 'structure.svg'}")
    for a, b in result.pending:
        print(f"pending: {a} -> {b}")
    for a, b in result.stale:
        print(f"note: pending {a} -> {b} is no longer imported; remove it from PENDING")
    for line in result.violations:
        print(line)
    if result.violations:
        return 1
    print(f"ok: {len(result.layer_of)} modules in {sum(1 for _, m in result.layers if m)} layers, "
          f"{len(result.edges)} imports, no cycle, no upward import")
    return 0


if __name__ == "__main__":
    sys.exit(main())
