"""Synthetic data: the complementary-signal knobs of make_synthetic and the named presets."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

import redcore_lite as rc

COMP = {"num_classes": 8, "factors": (3, 6, 5), "factor_snr": 1.5, "snr": (0.0, 0.0, 0.0)}


def _same(a: rc.MultimodalData, b: rc.MultimodalData, mods=("A", "V", "L")) -> bool:
    return torch.equal(a.labels, b.labels) and all(torch.equal(a.features[m], b.features[m]) for m in mods)


def test_factors_off_or_zero_leave_the_data_unchanged():
    base = rc.make_synthetic(seed=3)
    assert _same(base, rc.make_synthetic(seed=3, factors=None, factor_snr=5.0))
    assert _same(base, rc.make_synthetic(seed=3, factors=(0, 0, 0)))
    seq = rc.make_synthetic(seq_len=6, seed=1)
    assert _same(seq, rc.make_synthetic(seq_len=6, seed=1, factors=(0, 0, 0)))


def test_factor_signal_is_added_to_its_modality_only():
    """x_A changes by factor_snr * W_A nu_A[y & mask]: constant within classes that share the masked
    bits, different between those that do not; V and L are untouched."""
    base = rc.make_synthetic(num_classes=4, seed=0)
    data = rc.make_synthetic(num_classes=4, seed=0, factors=(1, 0, 0), factor_snr=2.0)
    assert _same(base, data, ("V", "L"))
    delta = data.features["A"] - base.features["A"]
    y = data.labels
    for c in range(4):
        rows = delta[y == c]
        assert torch.allclose(rows, rows[:1].expand_as(rows), atol=1e-5)
    mean = {c: delta[y == c][0] for c in range(4)}
    assert torch.allclose(mean[0], mean[2], atol=1e-5) and torch.allclose(mean[1], mean[3], atol=1e-5)
    assert not torch.allclose(mean[0], mean[1], atol=1e-2)
    half = rc.make_synthetic(num_classes=4, seed=0, factors=(1, 0, 0), factor_snr=1.0)
    assert torch.allclose(half.features["A"] - base.features["A"], delta / 2, atol=1e-5)


def test_shapes_and_determinism():
    a = rc.make_synthetic(num_samples=160, seq_len=5, seed=2, **COMP)
    a.validate()
    assert a.features["V"].shape == (160, 5, 24) and a.num_classes == 8
    assert _same(a, rc.make_synthetic(num_samples=160, seq_len=5, seed=2, **COMP))
    assert not _same(a, rc.make_synthetic(num_samples=160, seq_len=5, seed=3, **COMP))


def _probe(data: rc.MultimodalData, mods: tuple[str, ...], target: torch.Tensor) -> float:
    """Held-out accuracy of a logistic regression on the given modalities (first half trains)."""
    x = np.hstack([data.features[m].numpy() for m in mods])
    t, n = target.numpy(), len(target) // 2
    return LogisticRegression(max_iter=2000).fit(x[:n], t[:n]).score(x[n:], t[n:])


def test_complementary_signal_is_absent_from_single_modalities():
    """8 classes, masks A = 0b011, V = 0b110, L = 0b101 and no shared class signal: label bit 2 is
    invisible to A (near chance alone), bit 0 to V, bit 1 to L; any two modalities see all three."""
    data = rc.make_synthetic(num_samples=1600, seed=0, **COMP)
    y = data.labels
    bit = {k: (y >> k) & 1 for k in range(3)}
    for mod, unseen, seen in (("A", 2, 0), ("V", 0, 1), ("L", 1, 2)):
        assert _probe(data, (mod,), bit[unseen]) < 0.58, (mod, unseen)
        assert _probe(data, (mod,), bit[seen]) > 0.9, (mod, seen)
        assert _probe(data, (mod,), y) < 0.56  # at best half: classes are confused in pairs
    assert _probe(data, ("A", "V"), y) > 0.9 and _probe(data, ("A", "V", "L"), y) > 0.9


@pytest.mark.parametrize("factors", [(3, 6), (3, 6, 8), (3, -1, 5), (3, 6.0, 5)])
def test_bad_factors(factors):
    with pytest.raises(ValueError, match=r"factors: got .*; allowed: one bit mask per modality \(3\), "
                                         r"each an integer in \[0, 7\] for 8 classes"):
        rc.make_synthetic(num_classes=8, factors=factors)


def test_presets_through_load_data_and_config_roundtrip():
    for name, fields in rc.config.SYNTHETIC_PRESETS.items():
        cfg = rc.override(rc.preset("smoke"), data={**fields, "dims": (12, 10, 8)})
        s = rc.load_data(cfg.data, seed=1)
        s.validate()
        assert s.num_classes == fields.get("num_classes", 4), name
        assert rc.config_from_dict(rc.config_to_dict(cfg)) == cfg
    comp = rc.override(rc.preset("smoke"), data=rc.config.SYNTHETIC_PRESETS["complementary"])
    direct = rc.make_synthetic(240, (12, 10, 8), 8, (0.1, 0.1, 0.1), seed=4, factors=(3, 6, 5),
                               factor_snr=0.7)
    ref = rc.stratified_split(direct, comp.data.split, seed=4)
    assert torch.equal(rc.load_data(comp.data, seed=4).test.labels, ref.test.labels)
    assert rc.load_data(rc.override(comp, data={"normalise": False}).data, seed=4).test.features[
        "A"].equal(ref.test.features["A"])
