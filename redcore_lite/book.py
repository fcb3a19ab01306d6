"""The workbook as a static HTML book, and the check that every executed notebook shows its figures.

``python -m redcore_lite.book check build/notebooks`` fails (exit 1, one line per cell) when a code
cell that calls a plotting function has no ``image/png`` output, or shows a ``<Figure size ...>``
text instead of the picture (what a notebook without ``%matplotlib inline`` gives under
``MPLBACKEND=Agg``), or a widget's repr (``VBox(children=...``) instead of a picture of its default
view, or when a notebook's stderr shows one warning class more than once. ``python -m
redcore_lite.book build build/notebooks build/book`` renders every executed notebook with
nbconvert's HTML exporter into ``build/book/`` (an ``index.html`` with the course order, one page
per notebook, figures inline as PNG data, equations typeset by a MathJax copied from the
``jupyter-server-mathjax`` package): nothing is fetched at build or view time, and the build fails
if a page still names a remote script, style sheet or image. Cells tagged ``hide-input`` (text
rendered from the notebook's variables) show their output only.

``python -m redcore_lite.book run notebooks build/notebooks --preset auto`` executes every
``NN_name.ipynb`` with papermill (``PRESET`` injected, run in the notebooks' folder, each written
whole into the output folder when it ends) on a kernel that talks over local IPC sockets rather than
unencrypted TCP, and prints the floating-point path it ran on (CPU capability, MKL and thread
settings, seed base) and each notebook's wall time.
"""
from __future__ import annotations

import argparse
import ast
import html
import json
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["FigureGap", "plotting_calls", "figure_gaps", "check_figures", "build_book", "join_inline_math",
           "run_notebooks", "environment_line", "repeated_warnings", "MATHJAX_CONFIG", "HIDE_INPUT"]

# Calls that draw: the library's plot modules, pyplot, seaborn and the Axes/DataFrame methods
# below. A cell that only *defines* such a function (a ``def`` body) draws nothing when it runs.
PLOT_MODULES = ("rc.plots", "rc.diagrams", "plots", "diagrams", "plt", "sns")
NOT_DRAWING = {"set_theme", "part_sizes", "floored_sphere_projection", "close", "rcParams",
               "subplots_adjust", "tight_layout", "savefig", "style", "rc"}
PLOT_METHODS = {"plot", "hist", "scatter", "imshow", "bar", "barh", "heatmap", "boxplot", "errorbar"}
MATHJAX_CONFIG = "TeX-AMS-MML_HTMLorMML-full"
HIDE_INPUT = "hide-input"  # tag of a code cell whose output is prose rendered from variables
_WIDGET_REPR = re.compile(r"(VBox|HBox|interactive|Box)\(children=")
_WARNING_LINE = re.compile(r"^\S*?:\d+: (\w+Warning): ", re.MULTILINE)
_REMOTE = re.compile(r"""<(?:script|link|img|iframe|source)\b[^>]*?\b(?:src|href)\s*=\s*["']?(?:https?:)?//""",
                     re.IGNORECASE)


@dataclass(frozen=True)
class FigureGap:
    """A code cell whose plotting calls left no figure."""

    notebook: str
    cell: int  # index in the notebook's cells
    calls: tuple[str, ...]  # the plotting calls found in the cell
    reason: str

    def __str__(self) -> str:
        return f"{self.notebook}: cell {self.cell} calls {', '.join(self.calls)} but {self.reason}"


def _dotted(node: ast.AST) -> str:
    """``a.b.c`` for a chain of attributes on a name ('' for anything else)."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return ""


def plotting_calls(source: str) -> list[str]:
    """The plotting calls a code cell makes when it runs (calls inside ``def``/``lambda`` bodies do
    not count; IPython magics and shell lines are ignored).

    Returns:
        Their dotted names in source order, e.g. ``["rc.plots.lines"]``.
    """
    lines = [("pass" if line.lstrip().startswith(("%", "!")) else line) for line in source.splitlines()]
    try:
        tree = ast.parse("\n".join(lines))
    except SyntaxError as err:
        raise ValueError(f"source: not valid Python ({err.msg}, line {err.lineno})") from err
    found: list[tuple[int, int, str]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            return
        if isinstance(node, ast.Call):
            name = _dotted(node.func)
            head, _, last = name.rpartition(".")
            method = node.func.attr if isinstance(node.func, ast.Attribute) else None
            if (head in PLOT_MODULES and last not in NOT_DRAWING) or \
                    (method in PLOT_METHODS and head not in ("np", "torch")):
                found.append((node.lineno, node.col_offset, name or f"….{method}"))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return [name for _, _, name in sorted(found)]


def _text(output: dict[str, Any]) -> str:
    data = output.get("data", {})
    value = data.get("text/plain", output.get("text", ""))
    return "".join(value) if isinstance(value, list) else str(value)


def figure_gaps(nb: dict[str, Any], name: str = "notebook") -> tuple[int, list[FigureGap]]:
    """Code cells of an *executed* notebook that should show a figure and do not.

    Args:
        nb: the notebook as JSON (``nbformat`` v4 dict); name: for the messages.
    Returns:
        (number of cells with plotting calls, the gaps). A cell with ``<Figure size ...>`` text
        and no PNG is a gap even without a recognised plotting call.
    """
    cells = nb.get("cells")
    if not isinstance(cells, list):
        raise ValueError(f"nb: {name} has no list of cells; allowed: an nbformat v4 notebook")
    drawing, gaps = 0, []
    for k, cell in enumerate(cells):
        if cell.get("cell_type") != "code":
            continue
        source = "".join(cell.get("source", ""))
        calls = tuple(plotting_calls(source))
        outputs = cell.get("outputs", [])
        pngs = sum("image/png" in out.get("data", {}) for out in outputs)
        figure_text = any(_text(out).lstrip().startswith("<Figure size") for out in outputs)
        if calls:
            drawing += 1
            if pngs == 0:
                why = "shows a <Figure size ...> text, not the picture (no %matplotlib inline?)" \
                    if figure_text else "has no image/png output"
                gaps.append(FigureGap(name, k, calls, why))
        elif figure_text and pngs == 0:
            gaps.append(FigureGap(name, k, ("<Figure>",), "shows a <Figure size ...> text, not the picture"))
        if pngs == 0 and any(_WIDGET_REPR.match(_text(out).lstrip()) for out in outputs):
            gaps.append(FigureGap(name, k, ("<widget>",), "shows the widget's repr, not a picture of its "
                                  "default view (display it with rc.widgets.show)"))
    return drawing, gaps


def repeated_warnings(nb: dict[str, Any], name: str = "notebook") -> list[str]:
    """One message per warning class that an executed notebook's stderr shows more than once
    (a screen of repeated warnings; summarise them in one line instead)."""
    seen: dict[str, list[int]] = {}
    for k, cell in enumerate(nb.get("cells", [])):
        for out in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
            if out.get("output_type") == "stream" and out.get("name") == "stderr":
                for category in _WARNING_LINE.findall(_text(out)):
                    seen.setdefault(category, []).append(k)
    return [f"{name}: {cat} shown {len(cells)} times (cells {sorted(set(cells))}); summarise it in one line"
            for cat, cells in seen.items() if len(cells) > 1]


def check_figures(folder: str | os.PathLike) -> tuple[dict[str, int], list[FigureGap]]:
    """:func:`figure_gaps` for every ``*.ipynb`` in ``folder``.

    Returns:
        ({notebook: cells with plotting calls}, every gap). Raises ``ValueError`` when the folder
        holds no notebook or a notebook has never been executed (no output at all).
    """
    path = Path(folder)
    books = sorted(path.glob("*.ipynb"))
    if not books:
        raise ValueError(f"folder: {str(path)!r} holds no .ipynb; allowed: the folder of executed "
                         "notebooks (bash scripts/workbook.sh writes build/notebooks/)")
    counts, gaps = {}, []
    for nb_path in books:
        nb = json.loads(nb_path.read_text(encoding="utf-8"))
        if not any(c.get("outputs") for c in nb.get("cells", []) if c.get("cell_type") == "code"):
            raise ValueError(f"folder: {nb_path.name} has no output at all; allowed: executed "
                             "notebooks (papermill output), not the committed ones")
        counts[nb_path.name], found = figure_gaps(nb, nb_path.name)
        gaps += found
    return counts, gaps


def _title(nb: dict[str, Any], fallback: str) -> tuple[str, str]:
    """(H1 title, first paragraph after it) of a notebook's first markdown cell."""
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "markdown":
            text = "".join(cell.get("source", ""))
            match = re.search(r"^#\s+(.+)$", text, re.MULTILINE)
            if match:
                rest = text[match.end():].strip().split("\n\n")[0]
                return match.group(1).strip(), " ".join(rest.split())
    return fallback, ""


_MATH = re.compile(r"(\$\$.+?\$\$)|(?<!\\)(\$[^$]+?(?<!\\)\$)", re.DOTALL)


def join_inline_math(text: str) -> str:
    """Put every inline ``$...$`` of a markdown text on one line.

    JupyterLab protects math before it parses markdown; nbconvert's parser does not, so an inline
    formula wrapped onto a line that starts with ``+``, ``-`` or ``1.`` would become a list item and
    leave raw TeX on the page. Display math (``$$...$$``) and spans across a blank line (two
    paragraphs, not one formula) are left alone.
    """
    def join(match: re.Match) -> str:
        span = match.group(0)
        if match.group(1) or "\n" not in span or re.search(r"\n\s*\n", span):
            return span
        return re.sub(r"\s*\n\s*", " ", span)

    return _MATH.sub(join, text)


def _template(prev_link: str, next_link: str) -> str:
    """A template on nbconvert's ``lab`` one without its remote scripts (require.js, widget
    manager, mermaid), with a navigation bar, and each ``solution``-tagged cell folded in a
    ``<details>`` element (the reader opens it)."""
    nav = (f'<nav class="book-nav"><a href="index.html">contents</a>{prev_link}{next_link}</nav>')
    return ("{%- extends 'lab/index.html.j2' -%}\n"
            "{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}\n"
            "{% block jupyter_widgets %}{% endblock jupyter_widgets %}\n"
            "{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}\n"
            "{% block extra_css %}<style>.book-nav{font-family:sans-serif;padding:8px 16px;"
            "border-bottom:1px solid #ccc} .book-nav a{margin-right:1.5em} "
            "details.book-solution>summary{cursor:pointer;"
            "color:#1a5fb4;margin:4px 0 4px 100px}</style>{% endblock extra_css %}\n"
            "{%- block body_header -%}{{ super() }}" + nav + "{%- endblock body_header -%}\n"
            "{% block codecell %}{%- if 'solution' in cell.metadata.get('tags', []) -%}"
            '<details class="book-solution"><summary>Solution: click to show the code and its checks'
            "</summary>{{ super() }}</details>{%- else -%}{{ super() }}{%- endif -%}{% endblock codecell %}\n")


def _write(path: Path, text: str) -> None:
    """Write ``text`` atomically (a temp file in the same folder, then rename)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _mathjax_dir() -> Path:
    try:
        import jupyter_server_mathjax
    except ImportError as err:
        raise ValueError("mathjax: the package jupyter-server-mathjax is not installed; allowed: "
                         "pip install -e '.[notebooks]' (it ships MathJax for offline pages)") from err
    static = Path(jupyter_server_mathjax.__file__).parent / "static"
    if not (static / "MathJax.js").is_file():
        raise ValueError(f"mathjax: {static} has no MathJax.js; reinstall jupyter-server-mathjax")
    return static


def build_book(notebooks: str | os.PathLike, out: str | os.PathLike) -> list[Path]:
    """Render every executed notebook of ``notebooks`` (course order = file name order) into
    ``out``: ``index.html``, one ``NN_name.html`` per notebook, and ``mathjax/``.

    Returns:
        The pages written, index first. Raises ``ValueError`` on an empty folder, on notebooks
        without outputs, or when a rendered page still refers to a remote resource.
    """
    import jinja2
    import nbformat
    from nbconvert import HTMLExporter
    from nbconvert.preprocessors import TagRemovePreprocessor

    src, dest = Path(notebooks), Path(out)
    books = sorted(src.glob("[0-9]*.ipynb"))
    if not books:
        raise ValueError(f"notebooks: {str(src)!r} holds no NN_name.ipynb; allowed: the folder of "
                         "executed notebooks (bash scripts/workbook.sh writes build/notebooks/)")
    dest.mkdir(parents=True, exist_ok=True)
    mathjax = dest / "mathjax"
    if not (mathjax / "MathJax.js").is_file():
        tmp = Path(tempfile.mkdtemp(dir=dest, prefix=".mathjax."))
        shutil.rmtree(tmp)
        shutil.copytree(_mathjax_dir(), tmp)
        shutil.rmtree(mathjax, ignore_errors=True)
        os.replace(tmp, mathjax)
    pages = [dest / f"{p.stem}.html" for p in books]
    entries = []
    for k, (nb_path, page) in enumerate(zip(books, pages)):
        nb = nbformat.read(nb_path, as_version=4)
        if not any(c.get("outputs") for c in nb.cells if c.cell_type == "code"):
            raise ValueError(f"notebooks: {nb_path.name} has no output; allowed: executed notebooks")
        nb.metadata.pop("widgets", None)  # widget views need a live kernel (and a CDN): text fallback
        for cell in nb.cells:
            if cell.cell_type == "markdown":
                cell.source = join_inline_math(cell.source)
        prev_link = f'<a href="{pages[k - 1].name}">← previous</a>' if k else ""
        next_link = f'<a href="{pages[k + 1].name}">next →</a>' if k + 1 < len(pages) else ""
        exporter = HTMLExporter(template_name="lab", template_file="book.html.j2",
                                extra_loaders=[jinja2.DictLoader({"book.html.j2": _template(prev_link, next_link)})])
        exporter.register_preprocessor(TagRemovePreprocessor(remove_input_tags={HIDE_INPUT}), enabled=True)
        exporter.mathjax_url = f"mathjax/MathJax.js?config={MATHJAX_CONFIG}"
        body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": nb_path.stem}})
        remote = _REMOTE.search(body)
        if remote:
            raise ValueError(f"{page.name}: refers to a remote resource ({remote.group(0)[:120]}); "
                             "allowed: local files only")
        _write(page, body)
        title, blurb = _title(nb, nb_path.stem)
        entries.append((page.name, title, blurb))
    from nbconvert.filters.markdown import markdown2html_mistune

    items = "\n".join(f'<li><a href="{html.escape(name)}">{html.escape(title)}</a>'
                      f'{markdown2html_mistune(blurb)}</li>' for name, title, blurb in entries)
    index = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
             "<title>redcore_lite workbook</title>"
             "<script type=\"text/x-mathjax-config\">MathJax.Hub.Config({tex2jax: {inlineMath: "
             "[['$','$'], ['\\\\(','\\\\)']], processEscapes: true}, messageStyle: 'none'});</script>"
             f"<script src=\"mathjax/MathJax.js?config={MATHJAX_CONFIG}\"></script>"
             "<style>body{font-family:sans-serif;max-width:52em;"
             "margin:2em auto;line-height:1.45} li{margin-bottom:1em} li p{margin:0.2em 0;color:#444}"
             "</style></head><body><h1>redcore_lite: the workbook</h1>"
             "<p>RedCore (Sun et al., AAAI 2024) step by step, from the model and its objective to "
             "missing patterns, representations, β dynamics, ablations, real features and your own "
             "data. Read the notebooks in this order; every page is an executed notebook with its "
             "figures and numbers.</p>\n<ol class=\"course\">\n" + items + "\n</ol></body></html>\n")
    _write(dest / "index.html", index)
    return [dest / "index.html", *pages]


def environment_line() -> str:
    """One line naming what decides this machine's floating-point path and the seeds: torch's CPU
    capability, the MKL/ATen/thread variables that are set, and the seed base."""
    import torch

    names = ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "MKL_ENABLE_INSTRUCTIONS", "OMP_NUM_THREADS",
             "REDCORE_THREADS", "REDCORE_SEED_BASE")
    set_vars = [f"{n}={os.environ[n]}" for n in names if os.environ.get(n, "").strip()]
    return (f"machine: torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}, "
            f"{os.cpu_count()} CPUs; " + (", ".join(set_vars) if set_vars else "no perturbation variable set"))


def _ipc_kernel_manager() -> type:
    """A kernel manager whose kernels use IPC sockets in a private temporary folder: local, and
    without ipykernel's warning about unencrypted TCP."""
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import default

    class IPCKernelManager(AsyncKernelManager):
        transport = "ipc"
        folders: list[str] = []  # the socket folders made, removed by run_notebooks at the end

        @default("ip")
        def _ip_default(self) -> str:
            folder = tempfile.mkdtemp(prefix="redcore-kernel-")
            IPCKernelManager.folders.append(folder)
            return str(Path(folder) / "kernel")

    return IPCKernelManager


def run_notebooks(notebooks: str | os.PathLike, out: str | os.PathLike, preset: str = "auto",
                  log: Any = print) -> dict[str, float]:
    """Execute every ``NN_name.ipynb`` of ``notebooks`` with papermill into ``out`` (see the module
    docstring); a notebook's output file appears whole when it ends (an atomic rename), also when
    it fails (then with its error, for reading). Returns each notebook's wall time in seconds.

    Raises:
        ValueError: on an empty folder; RuntimeError naming the notebook and cell that failed.
    """
    src, dest = Path(notebooks), Path(out)
    books = sorted(src.glob("[0-9]*.ipynb"))
    if not books:
        raise ValueError(f"notebooks: {str(src)!r} holds no NN_name.ipynb; allowed: the notebooks/ folder")
    dest.mkdir(parents=True, exist_ok=True)
    for stale in dest.glob("*.ipynb"):  # a renamed or removed notebook must not linger in the book
        stale.unlink()
    log(environment_line())
    manager: Any = _ipc_kernel_manager()
    times: dict[str, float] = {}
    try:
        _run_each(books, src, dest, preset, manager, times, log)
    finally:
        for folder in manager.folders:
            shutil.rmtree(folder, ignore_errors=True)
    return times


def _run_each(books: list[Path], src: Path, dest: Path, preset: str, manager: type,
              times: dict[str, float], log: Any) -> None:
    import time

    import papermill

    for nb in books:
        log(f"running {nb.name} (PRESET={preset})")
        fd, tmp = tempfile.mkstemp(dir=dest, prefix=f".{nb.stem}.", suffix=".ipynb")
        os.close(fd)
        start = time.perf_counter()
        try:
            papermill.execute_notebook(str(nb), tmp, parameters={"PRESET": preset}, kernel_name="python3",
                                       cwd=str(src), progress_bar=False, log_output=False,
                                       kernel_manager_class=manager)
        except papermill.PapermillExecutionError as err:
            os.replace(tmp, dest / nb.name)
            log(str(err))
            raise RuntimeError(f"{nb.name}: In [{err.exec_count}] failed with {err.ename}: {err.evalue} "
                               f"(the executed copy is {dest / nb.name})") from None
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        times[nb.name] = time.perf_counter() - start
        os.replace(tmp, dest / nb.name)
        log(f"ran {nb.name} in {times[nb.name]:.0f} s")


def main(argv: list[str] | None = None) -> int:
    """``run NOTEBOOKS OUT``, ``check FOLDER`` or ``build NOTEBOOKS OUT`` (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m redcore_lite.book", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("check", help="every plotting cell of every executed notebook shows a figure").add_argument("folder")
    build = sub.add_parser("build", help="render executed notebooks into a static HTML book")
    build.add_argument("notebooks")
    build.add_argument("out")
    run = sub.add_parser("run", help="execute every notebook with papermill into a folder")
    run.add_argument("notebooks")
    run.add_argument("out")
    run.add_argument("--preset", default="auto", help="PRESET injected into every notebook (default: auto)")
    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            times = run_notebooks(args.notebooks, args.out, args.preset)
            print(f"ran {len(times)} notebooks in {sum(times.values()):.0f} s")
            return 0
        if args.command == "check":
            counts, gaps = check_figures(args.folder)
            for name, num in counts.items():
                missing = sum(g.notebook == name for g in gaps)
                print(f"figures: {name}: {num - missing} of {num} plotting cells show a figure")
            for gap in gaps:
                print(f"figures: MISSING {gap}", file=sys.stderr)
            noisy = [msg for path in sorted(Path(args.folder).glob("*.ipynb"))
                     for msg in repeated_warnings(json.loads(path.read_text(encoding="utf-8")), path.name)]
            for msg in noisy:
                print(f"warnings: REPEATED {msg}", file=sys.stderr)
            return 1 if gaps or noisy else 0
        pages = build_book(args.notebooks, args.out)
        print(f"book: {len(pages) - 1} pages and index.html in {Path(args.out).resolve()}")
        return 0
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except RuntimeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
