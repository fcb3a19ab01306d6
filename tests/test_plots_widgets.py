"""Plot functions return closed Figures with the expected artists; the widget helper draws the
default view headless and redraws when a control changes."""
from __future__ import annotations

import base64

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

import redcore_lite as rc  # noqa: E402

MODS = ("A", "V", "L")
RATES = (0.2, 0.5, 0.8)


@pytest.fixture
def mask() -> torch.Tensor:
    return rc.make_mask(100, RATES, torch.Generator().manual_seed(0))


def closed(fig: Figure) -> bool:
    return isinstance(fig, Figure) and not plt.fignum_exists(fig.number)


def test_missing_by_class_heatmaps():
    labels = torch.arange(100) % 4
    mask = torch.ones(100, 3, dtype=torch.bool)
    mask[labels == 2, 1] = False  # class 2 never has V
    fig = rc.plots.missing_by_class({"by class": mask, "none": torch.ones(100, 3, dtype=torch.bool)},
                                    labels, MODS, ["a", "b", "c", "d"])
    assert closed(fig) and len(fig.axes) == 3  # two heatmaps and one colour bar
    values = fig.axes[0].collections[0].get_array().reshape(4, 3)
    assert values[2, 1] == 1.0 and values.sum() == 1.0
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["a", "b", "c", "d"]


def test_mask_plots(mask):
    fig = rc.plots.mask_heatmap(mask, MODS, max_samples=40)
    assert closed(fig) and fig.axes[0].images[0].get_array().shape == (3, 40)
    fig = rc.plots.availability_bars(mask, MODS, RATES)
    heights = [p.get_height() for p in fig.axes[0].patches]
    assert closed(fig) and np.allclose(heights, [0.8, 0.5, 0.2])
    fig = rc.plots.pattern_histogram(mask, MODS)
    assert closed(fig) and len(fig.axes[0].patches) == 8  # "none" and the 7 patterns
    other = rc.make_mask(100, (0.5,) * 3, torch.Generator().manual_seed(0))
    fig = rc.plots.pattern_histogram({"imbalanced": mask, "balanced": other}, MODS)
    assert closed(fig) and len([p for p in fig.axes[0].patches if p.get_height() > 0]) <= 16
    assert fig.axes[0].get_legend() is not None
    fig = rc.plots.mask_overview(mask, MODS, RATES)
    assert closed(fig) and len(fig.axes) == 3


def test_plot_into_callers_axes_keeps_figure_open(mask):
    fig, ax = plt.subplots()
    out = rc.plots.availability_bars(mask, MODS, ax=ax)
    assert out is fig and plt.fignum_exists(fig.number)
    plt.close(fig)


def test_lines_projection_sweep():
    frame = pd.DataFrame({"tied": [0.5, 0.5], "redrawn": [0.5, 0.75]}, index=[1, 2])
    fig = rc.plots.lines(frame, xlabel="epoch")
    assert closed(fig) and len(fig.axes[0].lines) == 2
    g = torch.Generator().manual_seed(0)
    real, gen = torch.randn(30, 8, generator=g), torch.randn(30, 8, generator=g)
    fig = rc.plots.latent_projection(real, gen, torch.arange(30) % 3)
    assert closed(fig) and len(fig.axes[0].collections) == 2 * 3 + 1
    table = pd.DataFrame({"w": [0, 1, 0, 1], "f1": [0.5, 0.6, 0.4, 0.7], "seed": [0, 0, 1, 1]})
    fig = rc.plots.histograms({"A": real[:, 0], "V": gen[:, 0]}, xlabel="x")
    assert closed(fig) and len(fig.axes[0].patches) == 2
    fig = rc.plots.sweep(table, "w", "f1", unit="seed")
    assert closed(fig) and len(fig.axes[0].lines) == 3


def test_dynamics_and_pattern_bars():
    steps = 20
    history = pd.DataFrame({"step": range(steps), **{f"{k}_{m}": np.linspace(0.1, 1, steps)
                                                     for k in ("beta", "ra", "lbar") for m in MODS}})
    fig = rc.plots.advantage_dynamics(history, MODS, smooth=3)
    assert closed(fig) and len(fig.axes) == 3 and len(fig.axes[0].lines) == 3
    table = pd.DataFrame({"pattern": ["A", "V", "A", "V"], "f1": [0.5, 0.6, 0.7, 0.8],
                          "variant": ["x", "x", "y", "y"]})
    fig = rc.plots.pattern_bars(table, hue="variant")
    assert closed(fig) and len([p for p in fig.axes[0].patches if p.get_height() > 0]) == 4


def test_widget_draws_default_then_redraws_on_value(mask):
    calls = []

    def view(r_A: float, n: int, modalities=MODS):
        calls.append((r_A, n))
        avail = rc.make_mask(n, (r_A, 0.5, 0.8), torch.Generator().manual_seed(0))
        return rc.plots.availability_bars(avail, modalities)

    iv = rc.widgets.show(view, r_A=(0.0, 1.0, 0.05, 0.2), n=(10, 200, 10, 100))
    assert calls == [(0.2, 100)] and iv.draws == 1 and closed(iv.result)
    assert set(iv.controls) == {"r_A", "n"} and iv.button is None
    iv.controls["r_A"].value = 0.6
    assert iv.draws == 2 and calls[-1] == (0.6, 100)
    assert np.isclose(iv.result.axes[0].patches[0].get_height(), 0.4)


def test_widget_run_button_waits_for_click():
    calls = []
    iv = rc.widgets.show(lambda eta, fixed_arg: calls.append((eta, fixed_arg)),
                         run_button=True, fixed={"fixed_arg": "x"}, eta=(0.0, 1.0, 0.1, 0.1))
    assert calls == [(0.1, "x")]
    iv.controls["eta"].value = 0.5
    assert iv.draws == 1 and "click run" in iv.status.value
    iv.button.click()
    assert iv.draws == 2 and calls[-1] == (0.5, "x") and iv.status.value == ""


def test_widget_control_specs():
    assert isinstance(rc.widgets.control("k", (1, 9, 1, 3)), rc.widgets.W.IntSlider)
    assert isinstance(rc.widgets.control("x", (0.0, 1.0, 0.1, 0.5)), rc.widgets.W.FloatSlider)
    assert rc.widgets.control("mode", ["ra", "fixed"]).value == "ra"
    assert rc.widgets.control("on", True).value is True
    with pytest.raises(ValueError, match="k: got control spec"):
        rc.widgets.control("k", (1, 2))


def test_result_diagnostics_and_latent_collapse_plot():
    from conftest import tiny_config, tiny_splits

    cfg = tiny_config(3)
    res = rc.fit(cfg, tiny_splits(cfg))
    diag = res.diagnostics()
    assert list(diag.index) == list(res.epochs["epoch"])
    for m in MODS:  # per-epoch training means of the history, and the epoch table's columns
        assert np.allclose(diag[f"rec_{m}"], res.history.groupby("epoch")[f"rec_{m}"].mean())
        assert np.allclose(diag[f"spread_{m}"], res.epochs[f"spread_{m}"])
    fig = rc.plots.latent_collapse({"run": diag, "again": diag}, MODS, num_classes=4)
    assert closed(fig) and len(fig.axes) == 3
    assert [len(ax.get_lines()) for ax in fig.axes] == [3, 2, 3]  # + chance line, + threshold
    assert [ax.get_yscale() for ax in fig.axes] == ["log"] * 3


def test_widget_bundle_is_the_live_view_or_a_picture_never_the_repr():
    """Executed headless (papermill, the book) the cell keeps a PNG of the default view next to the
    widget view; JupyterLab picks the widget. The text fallback is one line, not VBox(...)."""
    def view(r_A: float):
        return "a table", rc.plots.availability_bars(
            rc.make_mask(50, (r_A, 0.5, 0.8), torch.Generator().manual_seed(0)), MODS)

    iv = rc.widgets.show(view, display=False, r_A=(0.0, 1.0, 0.05, 0.2))
    bundle = rc.widgets.view_bundle(iv)
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == iv.widget.model_id
    assert bundle["image/png"] and base64.b64decode(bundle["image/png"]).startswith(b"\x89PNG")
    assert "VBox" not in bundle["text/plain"] and "\n" not in bundle["text/plain"]
    no_figure = rc.widgets.show(lambda k: None, display=False, k=(1, 3, 1, 2))
    assert "image/png" not in rc.widgets.view_bundle(no_figure)
