"""Committed notebooks are clean: no outputs, no execution counts, one ``parameters`` cell, an H1.

Also: kernelspec python3, a ``PRESET`` parameter defaulting to ``"auto"``, a comment on every
parameter, and every widget cell tagged ``nbval-ignore-output``.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9]*.ipynb"))


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _tags(cell: dict) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


pytestmark = pytest.mark.skipif(not NOTEBOOKS, reason="no notebook in notebooks/ yet")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_outputs_or_execution_counts(path):
    dirty = [i for i, c in enumerate(_cells(path)) if c["cell_type"] == "code"
             and (c.get("outputs") or c.get("execution_count") is not None)]
    assert not dirty, f"{path.name}: cells {dirty} have outputs or execution counts; clear them"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_kernelspec_and_h1(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    assert nb["metadata"].get("kernelspec", {}).get("name") == "python3", path.name
    first = nb["cells"][0]
    assert first["cell_type"] == "markdown" and re.match(r"# \S", _source(first)), \
        f"{path.name}: the first cell must be markdown starting with an H1 title ('# ...')"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_one_parameters_cell_with_commented_literals(path):
    params = [c for c in _cells(path) if "parameters" in _tags(c)]
    assert len(params) == 1, f"{path.name}: {len(params)} cells tagged 'parameters'; allowed: 1"
    lines = [ln for ln in _source(params[0]).splitlines() if ln.strip() and not ln.startswith("#")]
    assert any(re.match(r"PRESET(: str)? = \"auto\"", ln) for ln in lines), \
        f"{path.name}: the parameters cell must set PRESET = \"auto\""
    bare = [ln for ln in lines if "#" not in ln]
    assert not bare, f"{path.name}: parameters without a comment: {bare}"
    from papermill.translators import PythonTranslator  # papermill documents what it can parse

    documented = PythonTranslator.inspect({"source": _source(params[0])})
    assert len(documented) == len(lines) and all(p.help for p in documented), \
        f"{path.name}: papermill parses {[p.name for p in documented]} from {lines}; use one " \
        "'NAME: type = literal  # comment' per line, with no '=' inside the comment"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_widget_cells_ignore_output(path):
    bad = [i for i, c in enumerate(_cells(path)) if c["cell_type"] == "code"
           and "widgets.show(" in _source(c) and "nbval-ignore-output" not in _tags(c)]
    assert not bad, f"{path.name}: widget cells {bad} lack the 'nbval-ignore-output' tag"


_TYPED_DECIMAL = re.compile(r"(?<![\w.])[+\u2212-]?\d*\.\d{3,}")
_MATH = re.compile(r"\$\$.*?\$\$|\$[^$]*\$", re.DOTALL)  # constants in formulas are not outputs


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_seed_parameter_and_thread_count_from_the_environment(path):
    """Every notebook can be run on other seeds and threads ("another machine", README): a SEED
    parameter read through rc.seed_base, and threads set by rc.set_threads, never a literal."""
    cells = _cells(path)
    params = _source(next(c for c in cells if "parameters" in _tags(c)))
    assert re.search(r'^SEED: str = "auto"  # ', params, re.MULTILINE), f"{path.name}: no SEED parameter"
    code = "\n".join(_source(c) for c in cells if c["cell_type"] == "code")
    assert "SEED = rc.seed_base(SEED)" in code, f"{path.name}: SEED is not read through rc.seed_base"
    assert "set_num_threads(" not in code, f"{path.name}: use rc.set_threads(), not torch.set_num_threads"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_typed_output_numbers_in_prose(path):
    """A number with three or more decimals typed into markdown goes stale when the output beside it
    changes (another machine, another seed): render it from its variable in a hide-input cell."""
    typed = [(i, m) for i, c in enumerate(_cells(path)) if c["cell_type"] == "markdown"
             for m in _TYPED_DECIMAL.findall(_MATH.sub("", _source(c)))]
    assert not typed, f"{path.name}: numbers typed into markdown (cell, number): {typed}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_prose_cells_hide_their_code(path):
    bad = [i for i, c in enumerate(_cells(path)) if "hide-input" in _tags(c)
           and (c["cell_type"] != "code" or not c["metadata"].get("jupyter", {}).get("source_hidden"))]
    assert not bad, f"{path.name}: hide-input cells {bad} must be code cells with jupyter.source_hidden"
