"""JupyterLab end to end in a real browser: open a notebook, run it, move a slider or click "run",
and see the figure (and a number) follow. And the static HTML book (``redcore_lite.book``): every
page of the book built from the smoke-executed notebooks shows its figures and typeset equations,
with every request that would leave ``file://`` blocked.

Starts its own JupyterLab on 127.0.0.1 (free port, random token, temporary root holding copies of
the notebooks, temporary settings/workspaces/runtime dirs, ``CI=true`` so the notebooks use the
smoke preset) and drives Debian's ``/usr/bin/chromium`` with Playwright (never a downloaded
browser; ``scripts/setup.sh`` installs chromium with apt-get where it can). Screenshots go to
``build/screenshots/``. Every kernel is shut down through the REST API, and the server is stopped
by its process id. Skipped, with the reason, when chromium or playwright is missing.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
SHOTS = REPO / "build" / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
# Settings a fresh user would click away: the news/updates toast covers the menus.
SETTINGS = {"@jupyterlab/apputils-extension/notification": {"fetchNews": "false",
                                                            "checkForUpdates": False}}
RUN_ALL_S = 60  # upper bound for "Run All Cells" (about 5 s for 01 under the smoke preset)
REDRAW_S = 20  # upper bound for one redraw after a slider move (well under 1 s for 01)
RETRAIN_S = 60  # upper bound for the retraining behind 03's "run" button

if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} not found: install Debian's chromium (apt-get install -y chromium; "
                "scripts/setup.sh does it when run as root) to run the JupyterLab browser test",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api",
                               reason="playwright (python) is not installed: pip install -e .[dev]")
expect = sync_api.expect


@dataclass
class Lab:
    """A JupyterLab server this module started: its process, address, token and root dir."""

    proc: subprocess.Popen
    url: str
    token: str
    root: Path
    log: Path

    def api(self, method: str, path: str) -> object:
        """Call the REST API (``/api/...``); return the decoded JSON (None when empty)."""
        req = urllib.request.Request(f"{self.url}{path}", method=method,
                                     headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            body = resp.read()
        return json.loads(body) if body else None

    def shutdown_kernels(self) -> None:
        """Shut down every session and kernel through the API, then check that none is left."""
        for session in self.api("GET", "/api/sessions"):
            self.api("DELETE", f"/api/sessions/{session['id']}")
        for kernel in self.api("GET", "/api/kernels"):
            self.api("DELETE", f"/api/kernels/{kernel['id']}")
        left = self.api("GET", "/api/kernels")
        assert left == [], f"kernels still running after shutdown: {left}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM the server we started (it shuts its kernels down), wait, kill if it hangs."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Lab:
    tmp = tmp_path_factory.mktemp("jupyterlab")
    root, settings, workspaces = tmp / "root", tmp / "settings", tmp / "workspaces"
    for path in (root, settings, workspaces, tmp / "runtime", tmp / "config"):
        path.mkdir()
    shutil.copytree(NOTEBOOKS, root / "notebooks", ignore=shutil.ignore_patterns(
        ".ipynb_checkpoints", "__pycache__", "conftest.py"))  # data resolves via the package
    for name, values in SETTINGS.items():
        target = settings / f"{name}.jupyterlab-settings"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(values))
    port, token, log = _free_port(), secrets.token_hex(16), tmp / "jupyterlab.log"
    env = {**os.environ, "CI": "true", "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
           "JUPYTER_CONFIG_DIR": str(tmp / "config")}
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
           f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
           f"--LabApp.user_settings_dir={settings}", f"--LabApp.workspaces_dir={workspaces}"]
    if os.geteuid() == 0:
        cmd.append("--allow-root")
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=root, env=env)
    server = Lab(proc, f"http://127.0.0.1:{port}", token, root, log)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                server.api("GET", "/api/status")
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"JupyterLab not ready in 60 s:\n{log.read_text()[-3000:]}") from None
                time.sleep(0.25)
        yield server
        server.shutdown_kernels()
    finally:
        _stop(proc)


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=FLAGS)
        yield chromium
        chromium.close()


def _open(lab: Lab, browser, name: str):
    """Open ``notebooks/<name>`` in a fresh page; return the page once the notebook is shown."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(30_000)
    page.goto(f"{lab.url}/lab/tree/notebooks/{name}?reset&token={lab.token}")
    page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for(state="visible")
    toast_no = page.locator(".Toastify__toast").get_by_role("button", name="No", exact=True)
    if toast_no.count():  # only if the settings above did not silence the news toast
        toast_no.click()
    # Run All before the kernel is connected runs nothing, silently: wait for an idle kernel that
    # this page is connected to (the toolbar reads "idle" even before the kernel exists).
    deadline = time.monotonic() + 30
    while not any(s["path"].endswith(name) and s["kernel"]["execution_state"] == "idle"
                  and s["kernel"]["connections"] > 0 for s in lab.api("GET", "/api/sessions")):
        assert time.monotonic() < deadline, f"no idle kernel for {name} after 30 s"
        time.sleep(0.2)
    page.locator(".jp-NotebookPanel-toolbar .jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for()
    return page


def _run_all(page, lab: Lab, name: str) -> None:
    """Run → Run All Cells; wait until the kernel has run every cell, failing on an error.

    Done when no prompt reads ``[*]:`` and the notebook's kernel, busy since the click, has been
    idle for 2 s (the last code cells may be solutions with their source hidden, whose prompts
    JupyterLab does not draw, so "the last prompt has a number" cannot be the signal)."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
    deadline, busy_seen, idle_since = time.monotonic() + RUN_ALL_S, False, None
    while True:
        err = page.locator('.jp-NotebookPanel [data-mime-type="application/vnd.jupyter.error"]')
        assert err.count() == 0, f"a cell failed during Run All Cells: {err.first.text_content()[:2000]}"
        states = [s["kernel"]["execution_state"] for s in lab.api("GET", "/api/sessions")
                  if s["path"].endswith(name)]
        running = page.locator(".jp-NotebookPanel .jp-InputPrompt", has_text=re.compile(r"\[\*\]")).count()
        now = time.monotonic()
        if states and states[0] == "busy" or running:
            busy_seen, idle_since = True, None
        elif busy_seen:
            idle_since = idle_since or now
            if now - idle_since >= 2.0:
                return
        if now > deadline:
            _shot(page, "run_all_timeout.png")
            prompts = page.locator(".jp-NotebookPanel .jp-CodeCell .jp-InputPrompt").all_inner_texts()
            pytest.fail(f"Run All Cells did not finish in {RUN_ALL_S} s; prompts: {prompts} "
                        f"(screenshot {SHOTS / 'run_all_timeout.png'})")
        time.sleep(0.2)


def _run_cells(page, *markers: str) -> None:
    """Run, in order and with Shift+Enter, the code cells whose source contains each marker."""
    for marker in markers:
        cell = page.locator(".jp-NotebookPanel .jp-CodeCell", has_text=marker)
        expect(cell, f"one code cell should contain {marker!r}").to_have_count(1)
        cell.scroll_into_view_if_needed()
        cell.locator(".jp-InputPrompt").click()
        page.keyboard.press("Shift+Enter")
        expect(cell.locator(".jp-InputPrompt"), f"the cell {marker!r} did not finish").to_have_text(
            re.compile(r"^\[\d+\]:$"), timeout=RUN_ALL_S * 1000)
        error = cell.locator('[data-mime-type="application/vnd.jupyter.error"]')
        assert error.count() == 0, f"the cell {marker!r} failed: {error.first.text_content()[:2000]}"


def _widget_cell(page):
    """The code cell holding the interactive view (its sliders), scrolled into view."""
    cell = page.locator(".jp-CodeCell", has=page.locator(".widget-slider")).last
    cell.wait_for(state="attached")
    cell.scroll_into_view_if_needed()
    cell.locator(".widget-output img").wait_for(state="visible")
    cell.locator(".widget-output img").scroll_into_view_if_needed()
    return cell


def _slider(cell, name: str):
    """(handle, readout) of the slider labelled ``name``."""
    label = cell.page.locator(".widget-label", has_text=re.compile(f"^{name}$"))  # `has` is relative
    slider = cell.locator(".widget-slider", has=label)
    return slider.locator(".noUi-handle"), slider.locator(".widget-readout")


def _shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / name))


def _new_png(img, before: str, what: str, timeout: float = REDRAW_S) -> str:
    """Wait until ``img`` shows a PNG other than ``before``; return its src (fail after timeout)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        src = img.first.get_attribute("src", timeout=1000) if img.count() == 1 else None
        if src and src.startswith("data:image/png") and src != before:
            return src
        time.sleep(0.2)
    digest = hashlib.sha1(before.encode()).hexdigest()[:12]
    pytest.fail(f"{what}: the PNG did not change in {timeout} s (still sha1 {digest}); "
                "is the control bound to its view?")


def _realised(cell, modality: str) -> tuple[float, float]:
    """(requested, realised) missing rate of ``modality`` from the realised-rate table on screen."""
    row = cell.locator(".widget-output table.dataframe tbody tr",
                       has=cell.page.locator("th", has_text=re.compile(f"^{modality}$")))
    texts = [t.strip() for t in row.locator("td").all_inner_texts()]  # requested, missing, realised
    return float(texts[0]), float(texts[2])


def test_missing_rate_slider_redraws_the_mask_figure(lab, browser):
    page = _open(lab, browser, "01_missing_patterns.ipynb")
    try:
        _run_all(page, lab, "01_missing_patterns.ipynb")
        cell = _widget_cell(page)
        img = cell.locator(".widget-output img")
        handle, readout = _slider(cell, "r_A")
        expect(readout).to_have_text("0.20")
        before_src, before = img.get_attribute("src"), _realised(cell, "A")
        assert before_src.startswith("data:image/png")
        assert before[0] == 0.2 and before[1] == pytest.approx(0.2, abs=0.01)
        _shot(page, "01_missing_patterns_before.png")

        handle.focus()
        for _ in range(3):  # 0.20 -> 0.35, one keyboard step (0.05) at a time
            handle.press("ArrowRight")
        expect(readout).to_have_text("0.35")
        _new_png(img, before_src, "the mask figure after r_A moved 0.20 -> 0.35")
        expect(cell.locator(".widget-output table.dataframe"), "the realised-rate table did not "
               "follow r_A").to_contain_text("0.35", timeout=REDRAW_S * 1000)
        requested, realised = _realised(cell, "A")
        assert requested == 0.35 and realised == pytest.approx(0.35, abs=0.01) and realised != before[1]
        _shot(page, "01_missing_patterns_after.png")
    finally:
        page.close()
    lab.shutdown_kernels()


def test_run_button_retrains_and_redraws_beta(lab, browser):
    page = _open(lab, browser, "03_relative_advantage.ipynb")
    try:
        # Run All takes ~100 s under CI (a sweep of 6 trainings): run what the view needs, as a user
        # who jumps to the sliders would: the parameters, the set-up, the view and the widget.
        _run_cells(page, "PRESET: str", "res = rc.fit(cfg)", "def live_history", "rc.widgets.show(view")
        cell = _widget_cell(page)
        img = cell.locator(".widget-output img")
        before_src = img.get_attribute("src")
        assert before_src.startswith("data:image/png")  # the beta / RA / EMA view of the defaults
        handle, readout = _slider(cell, "r_A")
        expect(readout).to_have_text("0.20")
        _shot(page, "03_relative_advantage_before.png")

        handle.focus()
        for _ in range(6):  # r_A 0.20 -> 0.50: A is no longer the least-missing modality
            handle.press("ArrowRight")
        expect(readout).to_have_text("0.50")
        expect(cell, "moving a slider should ask for a click").to_contain_text("changed: click run")
        assert img.get_attribute("src") == before_src, "the view retrained before 'run' was clicked"

        cell.get_by_role("button", name="run", exact=True).click()
        _new_png(img, before_src, "the beta plot after r_A moved 0.20 -> 0.50 and 'run' was clicked",
                 timeout=RETRAIN_S)
        expect(cell, "the status should clear after the run").not_to_contain_text(
            re.compile("click run|running"), timeout=REDRAW_S * 1000)
        _shot(page, "03_relative_advantage_after.png")
    finally:
        page.close()
    lab.shutdown_kernels()



MATHJAX_S = 60  # upper bound for MathJax to typeset one page (about 2 s for notebook 00)


@pytest.fixture(scope="module")
def book_dir(executed_notebooks, tmp_path_factory) -> Path:
    from redcore_lite import book

    out = tmp_path_factory.mktemp("book")
    book.build_book(executed_notebooks, out)
    return out


def _expected(nb_path: Path) -> tuple[int, bool]:
    """(image/png outputs, whether a markdown cell holds $ math) of an executed notebook."""
    cells = json.loads(nb_path.read_text(encoding="utf-8"))["cells"]
    pngs = sum("image/png" in out.get("data", {}) for c in cells for out in c.get("outputs", []))
    math = any("$" in "".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    return pngs, math


def _book_page(page, text_selector: str) -> dict:
    """Wait for MathJax to finish typesetting the open page, open every <details>, wait for the
    images; return what is on the page (images, broken images, TeX scripts, typeset formulas, TeX
    errors, and texts under ``text_selector`` that still hold a raw $...$ outside code)."""
    page.wait_for_function("() => window.MathJax && MathJax.Hub && MathJax.Hub.queue "
                           "&& MathJax.Hub.queue.pending === 0 && !MathJax.Hub.queue.running",
                           timeout=MATHJAX_S * 1000)
    page.evaluate("() => document.querySelectorAll('details').forEach(d => { d.open = true; })")
    page.wait_for_function("() => Array.from(document.images).every(i => i.complete)")
    return page.evaluate("""(sel) => ({
        images: document.images.length,
        broken: Array.from(document.images).filter(i => !(i.naturalWidth > 0)).length,
        tex: document.querySelectorAll('script[type^="math/tex"]').length,
        typeset: document.querySelectorAll('.MathJax, .MathJax_Display, .MathJax_MathML, .MathJax_CHTML').length,
        errors: document.querySelectorAll('.MathJax_Error, merror').length,
        raw: Array.from(document.querySelectorAll(sel)).map(e => {
                 const c = e.cloneNode(true);  // code blocks and spans may hold shell $ signs
                 c.querySelectorAll('pre, code, script').forEach(n => n.remove());
                 return c.textContent; })
             .filter(t => /\\$[^$\\s][^$]*\\$/.test(t)).map(t => t.slice(0, 120)),
    })""", text_selector)


@pytest.mark.slow
def test_book_pages_show_figures_and_equations_offline(book_dir, executed_notebooks, browser):
    context = browser.new_context(viewport={"width": 1300, "height": 900})
    remote: list[str] = []

    def only_files(route):
        if route.request.url.startswith("file://"):
            route.continue_()
        else:  # the book must not need the network: record and block
            remote.append(route.request.url)
            route.abort()

    context.route("**/*", only_files)
    page = context.new_page()
    try:
        page.goto((book_dir / "index.html").as_uri())
        hrefs = page.locator("ol.course a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
        names = sorted(p.stem for p in executed_notebooks.glob("[0-9]*.ipynb"))
        assert hrefs == [f"{n}.html" for n in names], "the index must list every notebook in course order"
        seen = _book_page(page, "ol.course")
        assert seen["typeset"] > 0 and seen["errors"] == 0 and not seen["raw"], f"index: TeX not typeset: {seen}"
        for name in names:
            page.goto((book_dir / f"{name}.html").as_uri())
            seen = _book_page(page, '.jp-RenderedMarkdown')
            pngs, math = _expected(executed_notebooks / f"{name}.ipynb")
            assert seen["images"] >= pngs > 0, f"{name}: {seen['images']} images on the page, {pngs} figures"
            assert seen["broken"] == 0, f"{name}: {seen['broken']} images did not load"
            if math:
                assert seen["tex"] > 0 and seen["typeset"] >= seen["tex"], f"{name}: equations not typeset: {seen}"
            assert seen["errors"] == 0 and not seen["raw"], f"{name}: raw or broken TeX left: {seen['raw'][:3]}"
            if name.startswith("00"):
                _shot(page, "book_00.png")
    finally:
        context.close()
    assert remote == [], f"the book asked the network for {remote[:5]}"
