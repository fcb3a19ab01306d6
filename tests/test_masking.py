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


# ---------------------------------------------------------------- observed masks and mechanisms


def small_data(labels, features=None, mask=None, names=("A", "V")):
    """MultimodalData with the given labels, one-feature modalities (or ``features``), a mask."""
    n = len(labels)
    feats = features or {m: torch.arange(n, dtype=torch.float32)[:, None] for m in names}
    y = torch.tensor(labels)
    return rc.MultimodalData(feats, y, int(y.max()) + 1, mask=mask)


def cfg(**fields):
    return rc.config.MaskConfig(**fields)


def test_mcar_without_observed_mask_is_make_mask_and_all_true_mask_too():
    data = small_data([0, 1] * 25)
    c = cfg(rates=(0.3, 0.62), min_available=1)
    want = rc.make_mask(50, (0.3, 0.62), gen(4), min_available=1)
    assert torch.equal(rc.masking.training_mask(c, data, gen(4)), want)
    full = small_data([0, 1] * 25, mask=torch.ones(50, 2, dtype=torch.bool))
    assert torch.equal(rc.masking.simulate_mask(c, full, gen(4), full.mask), want)
    assert torch.equal(rc.masking.training_mask(c, full, gen(4)), want)  # "auto": no holes


def test_mcar_on_top_of_observed_counts_among_present_rows():
    observed = torch.ones(10, 2, dtype=torch.bool)
    observed[8:, 0] = False  # rows 8, 9 really lack A
    data = small_data([0, 1] * 5, mask=observed)
    c = cfg(rates=(0.5, 0.3), simulate="on")
    a = rc.masking.training_mask(c, data, gen(0))
    assert not a[8:, 0].any()  # observed holes stay holes
    assert (~a[:8, 0]).sum() == 4 and (~a[:, 1]).sum() == 3  # floor(8 * .5), floor(10 * .3)
    assert torch.equal(a, rc.masking.training_mask(c, data, gen(0)))
    assert not torch.equal(a, rc.masking.training_mask(c, data, gen(1)))
    assert torch.equal(rc.masking.training_mask(cfg(rates=(0.5, 0.3)), data, gen(0)), observed)
    assert torch.equal(rc.masking.training_mask(cfg(simulate="off"), small_data([0, 1] * 5), gen(0)),
                       torch.ones(10, 2, dtype=torch.bool))
    df = rc.realised_rates(a, ("A", "V"), (0.5, 0.3), observed)
    assert df["observed_missing"].tolist() == [2, 0, 0]
    assert df["simulated_missing"].tolist() == [4, 3, int((~a.any(1)).sum())]
    assert df["missing"].tolist() == [6, 3, int((~a.any(1)).sum())]
    assert df["observed_rate"].tolist()[:2] == [0.2, 0.0] and df["realised"].tolist()[:2] == [0.6, 0.3]


def test_class_mechanism_exact_per_class_counts():
    labels = [0, 0, 0, 0, 1, 1, 1, 1, 1, 1]  # 4 of class 0, 6 of class 1
    c = cfg(mechanism="class", class_rates=((0.5, 0.0), (1 / 3, 1.0)))
    a = rc.masking.training_mask(c, small_data(labels), gen(2))
    assert (~a[:4, 0]).sum() == 2 and (~a[4:, 0]).sum() == 2  # floor(4 / 2), floor(6 / 3)
    assert a[:4, 1].all() and not a[4:, 1].any()
    assert torch.equal(a, rc.masking.training_mask(c, small_data(labels), gen(2)))
    with pytest.raises(ValueError, match=r"mask.class_rates: .*allowed: 2 rows \(one per class\) "
                                         "of 2 rates"):
        rc.masking.training_mask(cfg(mechanism="class", class_rates=((0.1, 0.2),)),
                                 small_data(labels), gen(0))


def test_tilted_class_rates_keep_the_mean():
    r = rc.masking.tilted_class_rates((0.2, 0.5), 3, tilt=0.5)
    assert r == ((0.1, 0.75), (0.2, 0.5), (0.3, 0.25))
    assert rc.masking.tilted_class_rates((0.2, 0.5), 3, tilt=0.0) == ((0.2, 0.5),) * 3


def test_score_mechanism_takes_the_largest_or_smallest_rows():
    a_feat = torch.tensor([[0.0], [5.0], [3.0], [9.0], [1.0], [7.0], [2.0], [8.0], [4.0], [6.0]])
    v_feat = torch.tensor([[1.0, 3.0]] * 5 + [[0.0, 0.0]] * 5)  # mean 2 on rows 0-4, 0 on 5-9
    data = small_data([0, 1] * 5, features={"A": a_feat, "V": v_feat})
    a = rc.masking.training_mask(cfg(mechanism="score", rates=(0.3, 0.0)), data, gen(0))
    assert torch.nonzero(~a[:, 0]).flatten().tolist() == [3, 5, 7]  # the 3 largest A (MNAR)
    small = cfg(mechanism="score", rates=(0.3, 0.0), score_largest=False)
    a = rc.masking.training_mask(small, data, gen(0))
    assert torch.nonzero(~a[:, 0]).flatten().tolist() == [0, 4, 6]
    mar = cfg(mechanism="score", rates=(0.2, 0.0), score_modality="V", score_feature=1)
    a = rc.masking.training_mask(mar, data, gen(0))
    assert (~a[:, 0]).sum() == 2 and (~a[:5, 0]).sum() == 2  # ties among V = 3: seeded choice
    assert torch.equal(a, rc.masking.training_mask(mar, data, gen(0)))
    with pytest.raises(ValueError, match="mask.score_feature: got 5"):
        rc.masking.training_mask(cfg(mechanism="score", score_feature=5, rates=(0.1, 0.1)),
                                 data, gen(0))
    with pytest.raises(ValueError, match="mask.score_modality: got 'X'"):
        rc.masking.training_mask(cfg(mechanism="score", score_modality="X", rates=(0.1, 0.1)),
                                 data, gen(0))


def test_menu_mechanism_exact_counts_by_largest_remainder():
    data = small_data([0, 1] * 5)
    c = cfg(mechanism="menu", patterns=("AV", "A", "V"), pattern_freqs=(0.55, 0.25, 0.2))
    a = rc.masking.training_mask(c, data, gen(0))
    counts = pattern_counts(a, ("A", "V"))
    assert counts.to_dict() == {"none": 0, "A": 2, "V": 2, "AV": 6}  # 5.5, 2.5, 2 -> 6, 2, 2
    assert rc.masking._menu_counts(7, (1 / 3, 1 / 3, 1 / 3)) == [3, 2, 2]
    block = cfg(mechanism="menu", patterns=("AVL", "L"), pattern_freqs=(0.7, 0.3))
    a = rc.masking.training_mask(block, small_data([0] * 20, names=("A", "V", "L")), gen(1))
    assert ((~a[:, 0]) == (~a[:, 1])).all() and (~a[:, 0]).sum() == 6  # A and V missing together
    with pytest.raises(ValueError, match="mask.patterns: got 'AX'"):
        rc.masking.training_mask(cfg(mechanism="menu", patterns=("AX",), pattern_freqs=(1.0,)),
                                 data, gen(0))
    with pytest.raises(ValueError, match="mask.pattern_freqs: got .*summing to 1"):
        rc.masking.training_mask(cfg(mechanism="menu", patterns=("A", "V"),
                                     pattern_freqs=(0.5, 0.6)), data, gen(0))


def test_repair_never_restores_an_observed_hole():
    observed = torch.ones(40, 3, dtype=torch.bool)
    observed[:10, 0] = False
    observed[5:15, 1] = False
    data = small_data([0, 1] * 20, mask=observed, names=("A", "V", "L"))
    c = cfg(rates=(0.9, 0.9, 0.9), simulate="on", min_available=1)
    a = rc.masking.training_mask(c, data, gen(3))
    assert a.any(1).all() and not (a & ~observed).any()


def test_bad_simulate_and_mechanism_names():
    with pytest.raises(ValueError, match="mask.simulate: got 'yes'"):
        rc.masking.training_mask(cfg(simulate="yes"), small_data([0, 1]), gen(0))
    with pytest.raises(ValueError, match="mask.mechanism: got 'mnar'"):
        rc.masking.training_mask(cfg(mechanism="mnar"), small_data([0, 1]), gen(0))
