"""Diagnostics: Rec by peer stratum (hand-computed, and exact against the history), encoder
gradient norms, pattern equity and marginal contributions."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

import redcore_lite as rc
from redcore_lite import diagnostics as dg


def test_accumulate_strata_by_hand():
    """Rows (A, B present?): (1, 1), (1, 0), (1, 1), (0, 1); codes 3, 1, 3, 2."""
    avail = torch.tensor([[1, 1], [1, 0], [1, 1], [0, 1]], dtype=torch.bool)
    rows = torch.tensor([[1.0, 2.0, 3.0, 0.0], [4.0, 0.0, 6.0, 8.0]])
    acc = dg.strata_buffer(2)
    dg.accumulate_strata(acc, rows, avail)
    dg.accumulate_strata(acc, rows, avail)  # twice: sums double
    want = torch.tensor([[0.0, 4.0, 0.0, 8.0], [0.0, 0.0, 16.0, 20.0], [0.0, 2.0, 2.0, 4.0]])
    assert torch.equal(acc, want)
    f = dg.strata_frame([acc / 2], ["A", "B"])
    a = f[f["modality"] == "A"].set_index("peers")
    assert a.loc["none", "rec"] == 2.0 and a.loc["B", "rec"] == 2.0  # (1 + 3) / 2
    b = f[f["modality"] == "B"].set_index("peers")
    assert b.loc["none", "rec"] == 8.0 and b.loc["A", "rec"] == 5.0  # (4 + 6) / 2
    d = dg.rec_decomposition(f).set_index("modality")
    assert d.loc["A", "rec"] == pytest.approx((1 + 2 + 3) / 3)  # all rows that have A
    assert d.loc["B", "rec"] == pytest.approx((4 + 6 + 8) / 3)
    assert d.loc["A", "mean_peers"] == pytest.approx(2 / 3)
    assert d.loc["B", "rec_none"] == 8.0 and d.loc["B", "rec_some"] == 5.0
    s = dg.rec_strata(f, "any_peer").set_index(["modality", "any_peer"])
    assert s.loc[("A", "some"), "share"] == pytest.approx(2 / 3)


def test_strata_frame_refuses_bad_shape():
    with pytest.raises(ValueError, match=r"sums: got shape \(1, 3, 3\)"):
        dg.strata_frame(torch.zeros(1, 3, 3), ["A", "B"])


def test_strata_sum_to_rec_of_the_history():
    """With one step per epoch, the strata's row-weighted mean is the history's Rec_m itself."""
    cfg = rc.override(rc.preset("smoke"), mask={"rates": (0.2, 0.5, 0.8)},
                      train={"batch_size": 100000})
    r = rc.fit(cfg)
    assert (r.epochs["steps"] == 1).all()
    d = dg.rec_decomposition(r)
    for m in r.modalities:
        got = d[d["modality"] == m].set_index("epoch")["rec"]
        want = r.history.set_index("epoch")[f"rec_{m}"]
        assert np.allclose(got.to_numpy(), want.loc[got.index].to_numpy(), rtol=1e-5, atol=1e-6)
        # the strata's row counts are the rows that have m
        n = d[d["modality"] == m]["n"].to_numpy()
        assert (n == int(r.train_mask[:, r.modalities.index(m)].sum())).all()
    # the mean number of present peers follows the missing rates: A (0.2) has the fewest
    last = d[d["epoch"] == d["epoch"].max()].set_index("modality")["mean_peers"]
    assert last["A"] < last["V"] < last["L"]


def test_diagnostics_do_not_change_the_run():
    """The diagnostics only read: two fits agree bit for bit (the committed-run refit is test_init.py)."""
    cfg = rc.override(rc.preset("smoke"), mask={"rates": (0.2, 0.5, 0.8)})
    a, b = rc.fit(cfg), rc.fit(cfg)
    pd.testing.assert_frame_equal(a.history, b.history)
    assert {f"grad_{m}" for m in a.modalities} <= set(a.epochs.columns)
    g = dg.grad_imbalance(a)
    assert (g[list(a.modalities)] > 0).all().all() and (g["ratio"] >= 1).all()


def test_encoder_grad_norms_by_hand():
    p1, p2, p3 = (torch.nn.Parameter(torch.zeros(2)) for _ in range(3))
    p1.grad, p2.grad = torch.tensor([3.0, 0.0]), torch.tensor([0.0, 4.0])
    p3.grad = torch.tensor([1.0, 1.0])
    got = dg.encoder_grad_norms([[p1, p2], [p3]])
    assert torch.allclose(got, torch.tensor([5.0, math.sqrt(2)]))


def _table():
    # F1 per pattern: A .5, V .4, L .3, AV .7, AL .6, VL .5, AVL .8
    pats = ["A", "V", "L", "AV", "AL", "VL", "AVL", "overall"]
    return pd.DataFrame({"pattern": pats, "f1": [.5, .4, .3, .7, .6, .5, .8, .9]})


def test_pattern_equity_by_hand():
    e = dg.pattern_equity(_table(), ["A", "V", "L"])
    assert e["worst_pattern"] == "L" and e["worst"] == pytest.approx(0.3)
    assert e["best_pattern"] == "AVL" and e["spread"] == pytest.approx(0.5)
    assert e["mean"] == pytest.approx(3.8 / 7)
    v = np.array([.5, .4, .3, .7, .6, .5, .8])
    assert e["sd"] == pytest.approx(v.std())
    # A: V->AV +.3, L->AL +.3, VL->AVL +.3; V: A->AV +.2, L->VL +.2, AL->AVL +.2;
    # L: A->AL +.1, V->VL +.1, AV->AVL +.1
    assert np.allclose(e["marginal"].to_numpy(), [0.3, 0.2, 0.1])
    with pytest.raises(ValueError, match="metric: got 'acc'"):
        dg.pattern_equity(_table(), ["A", "V", "L"], "acc")


def test_rec_strata_refuses_a_result_without_strata():
    with pytest.raises(ValueError, match="has no Rec strata"):
        dg.rec_strata(pd.DataFrame())
    with pytest.raises(ValueError, match="by: got 'x'"):
        dg.rec_strata(pd.DataFrame(), by="x")


def test_diagnostic_plots_draw():
    import matplotlib
    matplotlib.use("Agg")
    cfg = rc.override(rc.preset("smoke"), mask={"rates": (0.2, 0.5, 0.8)})
    r = rc.fit(cfg)
    fig = rc.plots.rec_by_peers(r)
    ax = fig.axes[0]
    assert ax.get_ylabel().startswith("Rec_m") and ax.get_yscale() == "log"
    # one bar per (modality, stratum) that has rows: A, V, L have 4 peer sets each (+ legend keys)
    assert sum(len(c) for c in ax.containers) == 12 + 3
    fig = rc.plots.rec_by_peers(r, by="num_peers")
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["overall Rec_m", "no peer present", "1 peer", "2 peers"]
    fig = rc.plots.grad_norms(r)
    assert len(fig.axes) == 2 and fig.axes[0].get_ylabel().startswith("encoder grad norm")
    fig = rc.plots.pattern_equity({"a": r.test, "b": r.val}, r.modalities)
    assert len(fig.axes[0].lines) == 2 and fig.axes[1].get_ylabel() == "mean gain in f1"
