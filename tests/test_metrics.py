import numpy as np

from redcore_lite.metrics import classification_metrics, pattern_metrics


def test_hand_values():
    y = np.array([0, 0, 0, 1, 1, 2])
    y_hat = np.array([0, 0, 1, 1, 0, 2])
    m = classification_metrics(y, y_hat)
    assert m["wa"] == 4 / 6
    assert np.isclose(m["ua"], (2 / 3 + 1 / 2 + 1) / 3)
    # F1 per class: c0 p=2/3 r=2/3 -> 2/3 ; c1 p=1/2 r=1/2 -> 1/2 ; c2 -> 1
    assert np.isclose(m["f1"], (2 / 3 + 1 / 2 + 1) / 3)


def test_ua_ignores_classes_absent_from_truth():
    m = classification_metrics(np.array([0, 0, 1]), np.array([0, 2, 1]))
    assert np.isclose(m["ua"], (0.5 + 1.0) / 2)


def test_pattern_metrics_overall_pools_rows():
    y = np.array([0, 1])
    logits = np.array([[[2.0, 0.0], [0.0, 2.0]],   # pattern 0: both right
                       [[0.0, 2.0], [0.0, 2.0]]])  # pattern 1: one right
    df = pattern_metrics(y, logits, ["A", "B"]).set_index("pattern")
    assert df.loc["A", "wa"] == 1.0 and df.loc["B", "wa"] == 0.5
    assert df.loc["overall", "wa"] == 0.75 and df.loc["overall", "n"] == 4


def test_pattern_metrics_equal_scikit_learn_on_random_data():
    rng = np.random.default_rng(0)
    for trial in range(20):
        c = int(rng.integers(2, 6))
        n = int(rng.integers(1, 40))
        y = rng.integers(0, c, n)
        logits = rng.normal(size=(3, n, c))
        if trial % 4 == 0:
            logits[..., 0] += 5  # predictions collapse onto one class
        df = pattern_metrics(y, logits, ["a", "b", "c"]).set_index("pattern")
        for p, name in enumerate("abc"):
            ref = classification_metrics(y, logits[p].argmax(-1))
            for k in ("wa", "ua", "f1"):
                assert np.isclose(df.loc[name, k], ref[k], atol=1e-12), (trial, name, k)
        ref = classification_metrics(np.tile(y, 3), logits.argmax(-1).reshape(-1))
        for k in ("wa", "ua", "f1"):
            assert np.isclose(df.loc["overall", k], ref[k], atol=1e-12)
