import math

import pytest
import torch

import redcore_lite as rc
from redcore_lite.masking import pattern_counts


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("n", [10, 97, 1000])
def test_exact_counts(n):
    rates = (0.2, 0.5, 0.83)
    a = rc.make_mask(n, rates, gen())
    assert a.shape == (n, 3) and a.dtype == torch.bool
    assert (~a).sum(0).tolist() == [math.floor(n * r) for r in rates]


def test_seeded_and_independent_of_global_rng():
    torch.manual_seed(1)
    a = rc.make_mask(50, (0.3, 0.6), gen(7))
    torch.manual_seed(2)
    b = rc.make_mask(50, (0.3, 0.6), gen(7))
    assert torch.equal(a, b)
    assert not torch.equal(a, rc.make_mask(50, (0.3, 0.6), gen(8)))


def test_rate_one_and_zero():
    a = rc.make_mask(20, (1.0, 0.0), gen())
    assert not a[:, 0].any() and a[:, 1].all()


def test_release_keeps_empty_rows_repair_removes_them():
    rates = (0.6, 0.6, 0.6)  # 3 * 120 present entries can cover 300 rows
    a = rc.make_mask(300, rates, gen(3), min_available=0)
    assert (~a.any(1)).sum() > 0
    b = rc.make_mask(300, rates, gen(3), min_available=1)
    assert b.any(1).all()
    # swaps keep the per-modality counts exact
    assert (~b).sum(0).tolist() == [180, 180, 180]


def test_repair_when_counts_cannot_cover_every_row():
    b = rc.make_mask(300, (0.7, 0.7, 0.7), gen(3), min_available=1)  # 270 present < 300 rows
    assert b.any(1).all() and b.sum() == 300  # every row has exactly one modality


def test_repair_without_donors_restores_a_modality():
    b = rc.make_mask(10, (1.0, 1.0), gen(), min_available=1)
    assert b.any(1).all()


def test_eval_patterns_order_and_names():
    p = rc.eval_patterns(3)
    assert p.shape == (7, 3)
    assert rc.pattern_names(p, ("A", "V", "L")) == ["A", "V", "L", "AV", "AL", "VL", "AVL"]
    assert rc.pattern_names(rc.eval_patterns(2), ("audio", "text")) == ["audio", "text", "audio+text"]
    assert rc.eval_patterns(4).shape == (15, 4)
    assert len({tuple(r.tolist()) for r in rc.eval_patterns(4)}) == 15


def test_realised_rates_and_counts():
    a = torch.tensor([[1, 0], [0, 0], [1, 1], [0, 1]], dtype=torch.bool)
    df = rc.realised_rates(a, ("A", "V"), (0.5, 0.5))
    assert df["missing"].tolist() == [2, 2, 1]
    assert df["realised"].tolist() == [0.5, 0.5, 0.25]
    c = pattern_counts(a, ("A", "V"))
    assert c.to_dict() == {"none": 1, "A": 1, "V": 1, "AV": 1}


@pytest.mark.parametrize("rates, msg", [((0.2, 1.2), "every rate in"), ((-0.1, 0.2), "every rate in"),
                                        ((), "empty"), ("ab", "sequence of numbers")])
def test_bad_rates(rates, msg):
    with pytest.raises(ValueError, match=msg):
        rc.make_mask(10, rates, gen())


def test_bad_min_available():
    with pytest.raises(ValueError, match="min_available"):
        rc.make_mask(10, (0.1, 0.2), gen(), min_available=2)
