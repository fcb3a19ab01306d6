"""Advantage mode "matched" (peer-matched RA): the signal, hand-computed, and its wiring."""
from __future__ import annotations

import torch

import redcore_lite as rc
from redcore_lite.advantage import RelativeAdvantage, initial_beta
from redcore_lite.config import AdvantageConfig, LossConfig
from redcore_lite.losses import complete_rows, compute_losses
from redcore_lite.model import RedCoreOutput


def _out(gen: torch.Tensor, z: torch.Tensor) -> RedCoreOutput:
    b = z.shape[1]
    return RedCoreOutput(logits=torch.zeros(b, 2), unimodal_logits=None, z=z, mu=z, logvar=None,
                         generated=gen, imputed=z)


def test_complete_rows_by_hand():
    avail = torch.tensor([[1, 1, 1], [1, 0, 1], [0, 1, 1], [1, 1, 1]], dtype=torch.bool)
    want = torch.tensor([[1, 1, 1], [0, 0, 0], [0, 0, 0], [1, 1, 1]], dtype=torch.bool)
    assert torch.equal(complete_rows(avail), want)
    assert torch.equal(complete_rows(avail.float()), want)


def test_matched_signal_is_rec_on_complete_rows():
    """Two modalities, d = 1, three rows: (both), (A only), (both). Squared errors of A: 1, 4, 9;
    of B: 16, -, 36. Full Rec: A (1+4+9)/3 = 14/3, B (16+36)/2 = 26; matched: A (1+9)/2 = 5,
    B (16+36)/2 = 26. The loss uses the full Rec either way."""
    z = torch.zeros(2, 3, 1)
    gen = torch.tensor([[1.0, 2.0, 3.0], [4.0, 100.0, 6.0]]).view(2, 3, 1)
    avail = torch.tensor([[1, 1], [1, 0], [1, 1]], dtype=torch.bool)
    seen = {}

    def beta(rec, observed):
        seen["rec"], seen["obs"] = rec.clone(), observed.clone()
        return torch.ones(2)

    y = torch.zeros(3, dtype=torch.long)
    cfg = LossConfig(kl_weight=0.0)
    t_any = compute_losses(_out(gen, z), y, avail, beta, cfg)
    assert torch.allclose(seen["rec"], torch.tensor([14 / 3, 26.0]))
    t_all = compute_losses(_out(gen, z), y, avail, beta, cfg, "all")
    assert torch.allclose(seen["rec"], torch.tensor([5.0, 26.0]))
    assert torch.equal(t_all.rec, t_any.rec) and torch.equal(t_all.total, t_any.total)
    # no complete row: nothing observed, so the EMA keeps its value
    compute_losses(_out(gen, z), y, torch.tensor([[1, 0], [1, 0], [0, 1]], dtype=torch.bool), beta,
                   cfg, "all")
    assert not bool(seen["obs"].any())


def test_bad_peers_is_refused():
    z = torch.zeros(2, 1, 1)
    try:
        compute_losses(_out(z, z), torch.zeros(1, dtype=torch.long), torch.ones(1, 2, dtype=torch.bool),
                       torch.ones(2), LossConfig(), "some")
    except ValueError as e:
        assert "peers: got 'some'" in str(e) and "'any' or 'all'" in str(e)
    else:
        raise AssertionError("no error")


def test_matched_moves_beta_like_ra():
    """The upper level of "matched" is that of "ra" (same start, same step); only its input differs."""
    assert torch.equal(initial_beta("matched", 3), torch.ones(3))
    a = RelativeAdvantage(AdvantageConfig(mode="matched", interval=1), 3)
    b = RelativeAdvantage(AdvantageConfig(mode="ra", interval=1), 3)
    for r in (torch.tensor([1.0, 2.0, 9.0]), torch.tensor([3.0, 1.0, 1.0])):
        a.step(r, torch.ones(3, dtype=torch.bool))
        b.step(r, torch.ones(3, dtype=torch.bool))
    assert torch.equal(a.beta, b.beta) and not torch.equal(a.beta, torch.ones(3))


def test_matched_fit_differs_from_ra_only_in_beta_signal():
    cfg = rc.override(rc.preset("smoke"), mask={"rates": (0.2, 0.5, 0.5)})
    r_ra = rc.fit(cfg)
    r_m = rc.fit(rc.override(cfg, advantage={"mode": "matched"}))
    assert r_m.config.advantage.mode == "matched"
    # the first step's loss is the same (beta starts at ones and moves by the same rule) ...
    assert r_ra.history["loss"].iloc[0] != 0
    # ... but the EMAs follow different signals
    cols = [c for c in r_ra.history.columns if c.startswith("lbar_")]
    assert not r_ra.history[cols].equals(r_m.history[cols])


def test_sweep_variant_matched_switches_only_the_mode():
    base = rc.preset("smoke")
    a = rc.sweep.run_config(base, "redcore", "imb_258", 0)
    b = rc.sweep.run_config(base, "matched", "imb_258", 0)
    assert (a.advantage.mode, b.advantage.mode) == ("ra", "matched")
    assert (a.data, a.mask, a.model, a.loss, a.train) == (b.data, b.mask, b.model, b.loss, b.train)
    assert list(rc.sweep.VARIANTS)[-1] == "matched"  # appended: the committed variants keep their order
