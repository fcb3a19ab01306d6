"""The module structure (``scripts/structure.py``): no import cycle and no upward import in the
package, a check that does fail on a package with either, and a drawing in ``docs/`` that is
what ``--write`` would draw now."""
from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _load_script():
    spec = importlib.util.spec_from_file_location("redcore_structure", ROOT / "scripts" / "structure.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


structure = _load_script()


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    """A package ``pkg`` of tiny modules (and an ``__init__`` that imports them all, ignored)."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from . import " + ", ".join(files) + "\n")
    for name, text in files.items():
        (pkg / f"{name}.py").write_text(text)
    return pkg


@pytest.fixture(scope="module")
def real():
    return structure.check(structure.module_graph(), structure.LAYERS, structure.PENDING)


def test_the_package_has_no_cycle_and_no_upward_import(real):
    assert real.violations == []
    assert not real.cycles and not real.upward and not real.undeclared and not real.duplicated
    assert set(real.pending) <= structure.PENDING  # only the named imports are let through
    layer_of = real.layer_of
    assert set(layer_of) == set(structure.module_graph())  # every module drawn, in one layer
    for a, b in real.edges:  # the computed order: inside a layer, imports point to the left
        if layer_of[a] == layer_of[b] and (a, b) not in structure.PENDING:
            mods = dict(real.layers)[layer_of[a]]
            assert mods.index(b) < mods.index(a), (a, b)


def test_the_data_layer_cycles_stay_broken():
    """The imports that made cycles before (data <-> custom, data <-> registry, custom_io <->
    datasets) are gone in the direction that pointed up."""
    graph = structure.module_graph()
    assert "custom" not in graph["data"] and "data" not in graph["registry"]
    assert "datasets" not in graph["custom_io"] and "shipped" in graph["custom_io"]
    assert {"grid", "stats", "report"} <= graph["sweep"] and "sweep" not in graph["report"]


def test_every_import_form_is_seen_and_a_cycle_fails(tmp_path, capsys):
    """Every form of sibling import is seen (top level, in a function, under TYPE_CHECKING;
    relative and absolute), and a cycle through them fails the check with the cycle listed."""
    pkg = _package(tmp_path, {
        "a": "from . import b\n",
        "b": "def f():\n    from pkg.c import x\n    return x\n",
        "c": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.a\nx = 1\n",
        "d": "import os\nfrom .a import b as _b\nfrom pkg import c, os as _os\n"})
    graph = structure.module_graph(pkg)
    assert graph == {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a", "c"}}
    result = structure.check(graph, [("bottom", ["a", "b", "c"]), ("top", ["d"])], set())
    assert result.cycles == [["a", "b", "c", "a"]] and not result.upward
    assert result.violations == ["cycle: a -> b -> c -> a"]
    assert structure.main(["--package", str(pkg)]) == 1  # the real LAYERS: a, b, ... in none
    out = capsys.readouterr().out
    assert "module 'a' exists but is in no layer" in out and "cycle: a -> b -> c -> a" in out


def test_an_upward_import_fails_and_a_pending_one_does_not(tmp_path, monkeypatch, capsys):
    pkg = _package(tmp_path, {"base": "def f():\n    from .top import y\n    return y\n",
                              "top": "y = 1\n", "mid": "from . import base\n"})
    layers = [("bottom", ["base"]), ("middle", ["mid", "absent"]), ("high", ["top"])]
    result = structure.check(structure.module_graph(pkg), layers, set())
    assert result.upward == [("base", "bottom", "top", "high")] and not result.cycles
    assert result.violations == ["upward: base (bottom) -> top (high)"]
    assert result.layers == [("bottom", ["base"]), ("middle", ["mid"]), ("high", ["top"])]
    monkeypatch.setattr(structure, "LAYERS", layers)
    monkeypatch.setattr(structure, "PENDING", set())
    assert structure.main(["--package", str(pkg)]) == 1
    assert "upward: base (bottom) -> top (high)" in capsys.readouterr().out
    monkeypatch.setattr(structure, "PENDING", {("base", "top"), ("top", "mid")})
    assert structure.main(["--package", str(pkg)]) == 0
    out = capsys.readouterr().out
    assert "pending: base -> top" in out and "top -> mid is no longer imported" in out


def test_a_cycle_inside_a_layer_has_no_order(tmp_path):
    pkg = _package(tmp_path, {"p": "from . import q\n", "q": "from . import r\n",
                              "r": "from . import p, q\n"})
    result = structure.check(structure.module_graph(pkg), [("one", ["p", "q", "r"])], set())
    assert result.cycles == [["p", "q", "r", "p"], ["q", "r", "q"]]  # each import inside the cycle


def test_the_drawing_is_current(real, tmp_path):
    """docs/structure.md is what --write writes now; so is docs/structure.svg, compared byte for
    byte when this matplotlib drew it (another version draws other bytes: then only redrawn)."""
    text = (ROOT / "docs" / "structure.md").read_text(encoding="utf-8")
    assert text == structure.render_markdown(real), "stale: run python scripts/structure.py --write"
    assert "flowchart TB" in text and "(structure.svg)" in text
    svg = structure.render_svg(real)
    assert svg == structure.render_svg(real)  # deterministic
    assert b"arrows point from importer to imported" in svg
    committed = (ROOT / "docs" / "structure.svg").read_bytes()
    import matplotlib

    drawn_with = re.search(rb"Matplotlib v([^,<\s]+)", committed)
    if drawn_with is not None and drawn_with.group(1).decode() != matplotlib.__version__:
        pytest.skip(f"docs/structure.svg was drawn with matplotlib {drawn_with.group(1).decode()}, "
                    f"this is {matplotlib.__version__}: redrawn, not compared")
    assert svg == committed, "stale: run python scripts/structure.py --write"
