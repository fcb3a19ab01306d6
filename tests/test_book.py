"""The figure check and the HTML book (redcore_lite.book): unit tests on small hand-made notebooks,
and, slow, the check on every notebook executed under the smoke preset."""
from __future__ import annotations

import base64
import json
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from redcore_lite import book

# a 1x1 PNG
PNG = base64.b64encode(bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c63f8cfc0f01f0005000201b1d6e3b8"
    "0000000049454e44ae426082")).decode()


def _figure_output():
    return new_output("display_data", data={"image/png": PNG, "text/plain": "<Figure size 640x480 with 1 Axes>"})


def _nb(*cells):
    nb = new_notebook(cells=list(cells))
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def test_plotting_calls_top_level_only():
    src = ("%matplotlib inline\nimport redcore_lite as rc\n"
           "def view(r):\n    return rc.plots.mask_overview(r)\n"
           "fig = rc.plots.lines(df, title='x')\nax.plot([1], [2])\nnp.histogram(x)\n"
           "rc.diagrams.floored_sphere_projection(v, 0.1)\nsns.barplot(df)")
    assert book.plotting_calls(src) == ["rc.plots.lines", "ax.plot", "sns.barplot"]
    assert book.plotting_calls("view(rates)\nx = 1") == []
    with pytest.raises(ValueError, match="source: not valid Python"):
        book.plotting_calls("def (")


def test_figure_gaps_find_a_missing_figure_and_figure_text():
    cells = [new_code_cell("rc.plots.lines(df)", outputs=[_figure_output()]),
             new_code_cell("rc.plots.lines(df)", outputs=[]),  # the figure is missing
             new_code_cell("fig = make()\nfig", outputs=[new_output(
                 "execute_result", data={"text/plain": "<Figure size 640x480 with 1 Axes>"}, execution_count=3)]),
             new_code_cell("x = 1", outputs=[new_output("stream", name="stdout", text="1\n")])]
    drawing, gaps = book.figure_gaps(_nb(*cells), "t.ipynb")
    assert drawing == 2 and [g.cell for g in gaps] == [1, 2]
    assert "has no image/png output" in str(gaps[0]) and "<Figure size" in gaps[1].reason
    drawing, gaps = book.figure_gaps(_nb(cells[0], cells[3]), "ok.ipynb")
    assert drawing == 1 and gaps == []


def test_check_figures_refuses_empty_or_unexecuted(tmp_path):
    with pytest.raises(ValueError, match="holds no .ipynb"):
        book.check_figures(tmp_path)
    nbformat.write(_nb(new_code_cell("rc.plots.lines(df)")), tmp_path / "01_x.ipynb")
    with pytest.raises(ValueError, match="has no output at all"):
        book.check_figures(tmp_path)
    assert book.main(["check", str(tmp_path)]) == 2


def test_check_command_fails_on_a_missing_figure(tmp_path, capsys):
    nbformat.write(_nb(new_code_cell("rc.plots.lines(df)", outputs=[_figure_output()]),
                       new_code_cell("plt.plot([1, 2])", outputs=[new_output("stream", name="stdout", text="")])),
                   tmp_path / "04_x.ipynb")
    assert book.main(["check", str(tmp_path)]) == 1
    out = capsys.readouterr()
    assert "04_x.ipynb: 1 of 2 plotting cells show a figure" in out.out
    assert "MISSING 04_x.ipynb: cell 1 calls plt.plot" in out.err


def _executed(tmp_path: Path) -> Path:
    src = tmp_path / "executed"
    src.mkdir()
    for k, title in ((1, "01 · Masks"), (0, "00 · The model")):
        nbformat.write(_nb(new_markdown_cell(f"# {title}\n\nWhat it is about, with $x^2$.\n\n$$a = b$$"),
                           new_code_cell("rc.plots.lines(df)", outputs=[_figure_output()])),
                       src / f"0{k}_n{k}.ipynb")
    return src


def test_build_book_pages_index_and_offline_math(tmp_path):
    pages = book.build_book(_executed(tmp_path), tmp_path / "book")
    assert [p.name for p in pages] == ["index.html", "00_n0.html", "01_n1.html"]
    index = pages[0].read_text()
    assert index.index("00 · The model") < index.index("01 · Masks")  # the course order
    assert 'href="00_n0.html"' in index and "What it is about" in index
    page = pages[1].read_text()
    assert "data:image/png;base64," in page and "$x^2$" in page
    assert f'src="mathjax/MathJax.js?config={book.MATHJAX_CONFIG}"' in page
    assert (tmp_path / "book" / "mathjax" / "MathJax.js").is_file()
    assert not book._REMOTE.search(page) and "cdnjs" not in page and "require.min.js" not in page
    assert 'href="01_n1.html">next' in page and 'href="00_n0.html">← previous' in pages[2].read_text()


def test_join_inline_math_keeps_a_wrapped_formula_in_one_paragraph(tmp_path):
    text = "one step on\n$L = a\n + b$ with $\\beta$ fixed, costs \\$5 and \\$6.\n\n$$x\n+ y$$"
    assert book.join_inline_math(text) == ("one step on\n$L = a + b$ with $\\beta$ fixed, costs \\$5 and "
                                           "\\$6.\n\n$$x\n+ y$$")
    assert book.join_inline_math("$a$ and\n\nb $c$") == "$a$ and\n\nb $c$"
    src = _executed(tmp_path)
    nb = nbformat.read(src / "00_n0.ipynb", as_version=4)
    nb.cells.append(new_markdown_cell("**Lower level**: one step on\n$L = a\n + w_\\text{rec} b$ with b fixed."))
    nbformat.write(nb, src / "00_n0.ipynb")
    page = book.build_book(src, tmp_path / "book")[1].read_text()
    assert "$L = a + w_\\text{rec} b$" in page and "<li>w_" not in page  # not broken into a list


def test_build_book_refuses_remote_resources_and_empty_folders(tmp_path):
    src = _executed(tmp_path)
    nb = nbformat.read(src / "00_n0.ipynb", as_version=4)
    nb.cells.append(new_markdown_cell('<img src="https://example.org/x.png">'))
    nbformat.write(nb, src / "00_n0.ipynb")
    with pytest.raises(ValueError, match="00_n0.html: refers to a remote resource"):
        book.build_book(src, tmp_path / "book")
    with pytest.raises(ValueError, match="holds no NN_name.ipynb"):
        book.build_book(tmp_path / "nothing", tmp_path / "book2")


@pytest.mark.slow
def test_every_executed_notebook_shows_its_figures(executed_notebooks):
    counts, gaps = book.check_figures(executed_notebooks)
    assert not gaps, "\n".join(map(str, gaps))
    assert len(counts) == len(list(Path(book.__file__).parents[1].joinpath("notebooks").glob("[0-9]*.ipynb")))
    assert all(n >= 1 for n in counts.values()), counts  # every notebook draws, so the check is not vacuous


def test_every_exercise_has_a_hidden_checked_solution():
    """In the notebooks this helper owns (00, 01, 02, 06): each exercise is followed by a collapsed
    ``solution`` cell holding at least one assert."""
    folder = Path(book.__file__).parents[1] / "notebooks"
    for name in ("00_the_model.ipynb", "01_missing_patterns.ipynb", "02_vib_representations.ipynb",
                 "06_your_own_data.ipynb"):
        cells = json.loads((folder / name).read_text())["cells"]
        solutions = [c for c in cells if "solution" in c["metadata"].get("tags", [])]
        assert solutions and all(c["metadata"].get("jupyter", {}).get("source_hidden") for c in solutions), name
        assert all("assert " in "".join(c["source"]) for c in solutions), name
        start = next(k for k, c in enumerate(cells) if "## Exercises" in "".join(c["source"]))
        numbered = [c for c in cells[start:] if c["cell_type"] == "markdown"
                    and any(line[:3].rstrip(". ").isdigit() for line in "".join(c["source"]).splitlines())]
        assert len(numbered) == len(solutions), (name, len(numbered), len(solutions))


def test_hide_input_cells_show_their_output_only(tmp_path):
    prose = new_code_cell("Markdown(f'F1 is {f1:.3f}')", metadata={"tags": [book.HIDE_INPUT]},
                          outputs=[new_output("display_data", data={"text/markdown": "F1 is 0.123",
                                                                     "text/plain": "<Markdown>"})])
    shown = new_code_cell("x_visible = 1", outputs=[_figure_output()])
    folder = tmp_path / "nb"
    folder.mkdir()
    nbformat.write(_nb(new_markdown_cell("# 00 · T"), prose, shown), folder / "00_t.ipynb")
    page = book.build_book(folder, tmp_path / "book")[1].read_text()
    assert "F1 is 0.123" in page and "Markdown(f" not in page and "x_visible" in page


@pytest.mark.slow
def test_run_executes_on_ipc_without_the_tcp_warning(tmp_path):
    """``book run``: PRESET injected, the notebooks' folder as working directory, the floating-point
    path printed, no unencrypted-TCP warning from the kernel; a failing notebook exits 1 naming its
    cell and leaves its executed copy whole."""
    import subprocess
    import sys

    folder = tmp_path / "nb"
    folder.mkdir()
    params = new_code_cell('PRESET = "auto"  # preset', metadata={"tags": ["parameters"]})
    ok = _nb(new_markdown_cell("# 00 · T"), params,
             new_code_cell("import os; print(PRESET, os.path.basename(os.getcwd()))"))
    nbformat.write(ok, folder / "00_ok.ipynb")
    run = [sys.executable, "-m", "redcore_lite.book", "run", str(folder), str(tmp_path / "out"), "--preset", "teach"]
    proc = subprocess.run(run, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "machine: torch" in proc.stdout and "ran 00_ok.ipynb" in proc.stdout
    assert "without encryption" not in proc.stderr + proc.stdout
    out = nbformat.read(tmp_path / "out" / "00_ok.ipynb", as_version=4)
    assert out.cells[-1].outputs[0]["text"] == "teach nb\n"
    nbformat.write(_nb(new_markdown_cell("# 01 · F"), params, new_code_cell("assert 1 == 2, 'boom'")),
                   folder / "01_fail.ipynb")
    proc = subprocess.run(run, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "01_fail.ipynb: In [" in proc.stderr and "boom" in proc.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["00_ok.ipynb", "01_fail.ipynb"]


def test_check_finds_widget_reprs_and_repeated_warnings():
    widget = new_code_cell("w", outputs=[new_output("execute_result", data={
        "text/plain": "VBox(children=(HBox(children=(FloatSlider(value=0.2),)), Output()))"}, execution_count=1)])
    fine = new_code_cell("w2", outputs=[new_output("display_data", data={"image/png": PNG, "text/plain": "view"})])
    _, gaps = book.figure_gaps(_nb(widget, fine), "n")
    assert [(g.cell, g.calls) for g in gaps] == [(0, ("<widget>",))]
    warn = "/x/trainer.py:171: LatentCollapseWarning: latent collapse at epoch {}\n  result = _fit(...)\n"
    noisy = _nb(new_code_cell("a", outputs=[new_output("stream", name="stderr", text=warn.format(1) + warn.format(2))]),
                new_code_cell("b", outputs=[new_output("stream", name="stderr", text=warn.format(3))]),
                new_code_cell("c", outputs=[new_output("stream", name="stderr",
                                                       text="/y.py:3: UserWarning: once\n")]))
    assert book.repeated_warnings(noisy, "n") == [
        "n: LatentCollapseWarning shown 3 times (cells [0, 1]); summarise it in one line"]
