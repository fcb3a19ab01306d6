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
