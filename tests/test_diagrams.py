"""rc.diagrams: the architecture figure read from a model, the pattern grid, the sweep with its
chance line, and the floored-sphere projection against hand-computed values."""
from __future__ import annotations

import math

import matplotlib
import pandas as pd
import pytest
import torch
from matplotlib.figure import Figure

import redcore_lite as rc
from redcore_lite import diagrams

matplotlib.use("Agg")


def _texts(fig: Figure) -> str:
    return "\n".join(t.get_text() for ax in fig.axes for t in ax.texts + [ax.title])


def test_part_sizes_add_up_and_architecture_names_every_part():
    cfg = rc.preset("smoke")
    model = rc.build_model(cfg.model, (12, 10, 8), 4, seed=0)
    sizes = diagrams.part_sizes(model)
    assert sum(sizes.values()) == sum(p.numel() for p in model.parameters())
    assert sizes["encoder 0"] == 12 * 32 + 32 + 32 * 16 + 16 + 16 * 32 + 32  # MLP 12->32->16, VIB 16->2*16
    fig = diagrams.architecture(model, ("A", "V", "L"), (12, 10, 8), cfg.loss)
    text = _texts(fig)
    for part in ("encoder A", "encoder V", "encoder L", "head A", "generators", "fused head",
                 f"{sum(sizes.values()):,} parameters", "λ = 0.0016", "= 0.15", "[12]", "[8]"):
        assert part in text, part
    no_uni = rc.build_model(rc.override(cfg, model={"unimodal_heads": False}).model, (12, 10, 8), 4, seed=0)
    assert "(no unimodal heads)" in _texts(diagrams.architecture(no_uni, "AVL", (12, 10, 8)))
    with pytest.raises(ValueError, match="modalities, input_dims"):
        diagrams.architecture(model, ("A", "V"), (12, 10))


def test_pattern_grid_names_the_patterns():
    fig = diagrams.pattern_grid(rc.eval_patterns(3), ["A", "V", "L"])
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["A", "V", "L", "AV", "AL", "VL", "AVL"]
    assert ax.get_title() == "the 7 evaluation patterns (dark = present)"
    assert (ax.images[0].get_array() == rc.eval_patterns(3).t().float().numpy()).all()
    with pytest.raises(ValueError, match=r"patterns: got shape \(7, 3\)"):
        diagrams.pattern_grid(rc.eval_patterns(3), ["A", "V"])


def test_sweep_with_chance_draws_the_chance_line_and_title():
    table = pd.DataFrame({"lam": [0.0, 0.0, 5.0, 5.0], "seed": [0, 1, 0, 1], "f1": [0.8, 0.7, 0.13, 0.12]})
    fig = diagrams.sweep_with_chance(table, "lam", "f1", chance=0.125, unit="seed", title="t")
    ax = fig.axes[0]
    flat = [ln for ln in ax.lines if len(set(ln.get_ydata())) == 1 and ln.get_ydata()[0] == 0.125]
    assert len(flat) == 1 and ax.get_title() == "t"
    assert ax.get_ylim()[0] < 0.12 and ax.get_ylim()[1] > 0.8  # chance and every point visible
    assert "chance (0.125)" in [t.get_text() for t in ax.get_legend().get_texts()]


def test_projection_by_hand_and_against_clamp_then_rescale():
    v = torch.tensor([2.0, -0.5, 0.5])
    s = math.sqrt((1 - 0.1 ** 2) / (2.0 ** 2 + 0.5 ** 2))  # ||max(0.1, s v)|| = 1 with V clamped
    proj = diagrams.floored_sphere_projection(v, 0.1)
    assert torch.allclose(proj, torch.tensor([2 * s, 0.1, 0.5 * s], dtype=torch.float64), atol=1e-9)
    release = rc.advantage.beta_step(v, torch.zeros(3), 0.0, 0.1)
    assert release[1] < 0.05  # clamp-then-rescale: 0.1 / ||(2, 0.1, 0.5)|| = 0.048 < floor
    # the projection is the nearest feasible point: better than a dense sample of the feasible set
    pts = torch.randn(20000, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64).abs()
    pts = pts.clamp(min=0.1) / pts.clamp(min=0.1).norm(dim=1, keepdim=True)
    pts = pts[(pts >= 0.1).all(1)]
    assert (proj - v).norm() <= (pts - v.double()).norm(dim=1).min() + 1e-12
    # no active floor: the projection is v / ||v||
    w = torch.tensor([0.5, 0.6, 0.7])
    assert torch.allclose(diagrams.floored_sphere_projection(w, 0.1), (w / w.norm()).double(), atol=1e-9)


def test_projection_bad_inputs():
    with pytest.raises(ValueError, match=r"floor: got 0.6; allowed: a number in \[0, 1/sqrt\(M\)\)"):
        diagrams.floored_sphere_projection(torch.ones(3), 0.6)
    with pytest.raises(ValueError, match="v: got .*at least one positive entry"):
        diagrams.floored_sphere_projection(torch.tensor([-1.0, 0.0]), 0.1)


def test_beta_updates_bars():
    fig = diagrams.beta_updates(torch.tensor([2.0, -0.5, 0.5]), 0.1, ["A", "V", "L"])
    heights = [round(p.get_height(), 3) for p in fig.axes[0].patches]
    assert heights == [0.969, 0.048, 0.242, 0.965, 0.1, 0.241]


def test_beta_trace_counts_the_steps_below_the_floor():
    beta = torch.tensor([[0.6, 0.6, 0.53], [0.05, 0.7, 0.71], [0.2, 0.2, 0.96]])
    fig = diagrams.beta_trace(beta, ["A", "V", "L"], 0.1)
    ax = fig.axes[0]
    assert ax.get_title() == "β per step: 1 of 3 steps below the floor"
    assert [list(ln.get_ydata()) for ln in ax.lines[:3]] == beta.t().tolist()
    with pytest.raises(ValueError, match=r"beta: got shape \(3, 3\); allowed: \[T, 2\]"):
        diagrams.beta_trace(beta, ["A", "V"], 0.1)


def test_difference_forest_draws_every_interval_around_zero():
    diffs = pd.DataFrame({"variant": ["a", "a", "b", "b"], "pattern": ["A", "overall", "A", "overall"],
                          "metric": "f1", "diff": [0.01, -0.002, 0.03, 0.0],
                          "ci_low": [-0.01, -0.004, 0.02, -0.01], "ci_high": [0.03, 0.0, 0.04, 0.01], "n": 4})
    fig = diagrams.difference_forest(diffs)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["A", "overall"]
    assert ax.get_xlim()[0] < -0.004 and ax.get_xlim()[1] > 0.04 and ax.get_xlim()[1] < 0.2  # scaled to the effects
    assert sorted(t.get_text() for t in ax.get_legend().get_texts()) == ["RedCore − a", "RedCore − b"]
    with pytest.raises(ValueError, match="metric: got 'wa'; allowed: one of \\['f1'\\]"):
        diagrams.difference_forest(diffs, "wa")


def test_legend_outside_moves_the_legend_right_of_the_axes():
    frame = pd.DataFrame({"A tied": [0.8, 0.8], "A redrawn": [0.8, 1.0]})
    fig = rc.plots.lines(frame, title="t")
    width = fig.get_size_inches()[0]
    assert diagrams.legend_outside(fig) is fig and fig.get_size_inches()[0] == pytest.approx(width + 1.8)
    fig.canvas.draw()
    ax, legend = fig.axes[0], fig.legends[0]
    assert ax.get_legend() is None and [t.get_text() for t in legend.get_texts()] == ["A tied", "A redrawn"]
    assert legend.get_window_extent().x0 >= ax.get_window_extent().x1  # right of the data
    no_legend = diagrams.pattern_grid(rc.eval_patterns(2), ["A", "V"])
    size = tuple(no_legend.get_size_inches())
    assert tuple(diagrams.legend_outside(no_legend).get_size_inches()) == size
