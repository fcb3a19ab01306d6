"""Each ablation switch changes what it claims, and nothing else (same masks, same init)."""
import math

import numpy as np
import pytest
import torch

import redcore_lite as rc
from conftest import tiny_config, tiny_splits

CFG = tiny_config(3)
SPLITS = tiny_splits(CFG)
BASE = rc.fit(CFG, SPLITS)
DEV = rc.trainer.resolve_device(CFG.train.device)  # where the fitted models live
ON_DEV = SPLITS.to(DEV)


def run(**sections):
    return rc.fit(rc.override(CFG, **sections), SPLITS)


def same_mask(res):
    assert torch.equal(res.train_mask, BASE.train_mask)


def test_no_ra_keeps_beta_at_one():
    res = run(advantage={"mode": "fixed"})
    same_mask(res)
    assert (res.beta().to_numpy() == 1.0).all()
    assert not (BASE.beta().to_numpy() == 1.0).all()
    # the first step is the same computation except for beta (= 1 vs the first RA step)
    h0, b0 = res.history.iloc[0], BASE.history.iloc[0]
    for col in ("ce_fused", "ce_A", "kl_A", "rec_A", "rec_V", "rec_L"):
        assert h0[col] == pytest.approx(b0[col], rel=1e-6)


def test_uniform_and_inverse_weights_are_fixed_unit_norm():
    uni = run(advantage={"mode": "uniform"}).beta().to_numpy()
    assert np.allclose(uni, 1 / math.sqrt(3))
    inv = run(advantage={"mode": "inverse"}).beta().to_numpy()
    raw = 1 / (1 - np.array(CFG.mask.rates))
    assert np.allclose(inv, raw / np.linalg.norm(raw))


def test_no_vib_has_no_kl_and_deterministic_z():
    res = run(model={"vib": False})
    same_mask(res)
    assert (res.history[["kl_A", "kl_V", "kl_L"]].to_numpy() == 0).all()
    assert (BASE.history[["kl_A", "kl_V", "kl_L"]].to_numpy() > 0).any()
    model = res.model.train()  # even in training mode z = mu
    xs, lens = ON_DEV.train.inputs(torch.arange(4, device=DEV))
    out = model(xs, lens, torch.ones(4, 3, dtype=torch.bool, device=DEV))
    assert out.logvar is None and torch.equal(out.z, out.mu)


def test_no_cross_modal_supervision_drops_rec_from_loss():
    res = run(loss={"w_rec": 0.0})
    same_mask(res)
    h = res.history
    other = h["ce_fused"] + sum(h[f"ce_{m}"] + h[f"kl_{m}"] for m in "AVL")
    assert np.allclose(h["loss"], other, rtol=1e-6)
    assert (h[["rec_A", "rec_V", "rec_L"]].to_numpy() > 0).any()  # still measured, not trained


def test_zero_imputation_fills_missing_latents_with_zeros():
    res = run(model={"imputation": "zero"})
    same_mask(res)
    xs, lens = ON_DEV.train.inputs(torch.arange(5, device=DEV))
    a = torch.tensor([[1, 0, 1], [0, 1, 1], [1, 1, 0], [0, 0, 1], [1, 1, 1]], dtype=torch.bool,
                     device=DEV)
    out = res.model(xs, lens, a)
    assert torch.equal(out.imputed, a.t().float()[..., None] * out.z)


def test_no_unimodal_heads():
    res = run(model={"unimodal_heads": False})
    same_mask(res)
    assert res.model.unimodal_heads is None
    assert (res.history[["ce_A", "ce_V", "ce_L"]].to_numpy() == 0).all()
    n_base = sum(p.numel() for p in BASE.model.parameters())
    n_res = sum(p.numel() for p in res.model.parameters())
    assert n_res < n_base


def test_complete_only_trains_on_complete_rows():
    res = run(train={"complete_only": True})
    same_mask(res)
    n_complete = int(BASE.train_mask.all(1).sum())
    bs = CFG.train.batch_size
    assert (res.epochs["steps"] == math.ceil(n_complete / bs)).all()
    assert res.history[["observed_A", "observed_V", "observed_L"]].all().all()
    assert (BASE.epochs["steps"] == math.ceil(len(SPLITS.train) / bs)).all()


def test_complete_only_without_complete_rows_is_an_error():
    with pytest.raises(ValueError, match="complete_only"):
        run(train={"complete_only": True}, mask={"rates": (1.0, 0.0, 0.0)})


def test_redraw_each_epoch_moves_masks_but_keeps_counts():
    res = run(mask={"redraw_each_epoch": True})
    assert not torch.equal(res.train_mask, BASE.train_mask)  # last epoch's mask differs
    assert (~res.train_mask).sum(0).tolist() == (~BASE.train_mask).sum(0).tolist()


def test_release_sampling_at_eval_makes_predictions_random():
    res = run(model={"sample_at_eval": True})
    xs, lens = ON_DEV.test.inputs(torch.arange(8, device=DEV))
    out1 = res.model.eval()(xs, lens, torch.ones(8, 3, dtype=torch.bool, device=DEV))
    out2 = res.model(xs, lens, torch.ones(8, 3, dtype=torch.bool, device=DEV))
    assert not torch.equal(out1.z, out2.z)
