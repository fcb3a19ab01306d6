"""Sweep runner: statistics against hand-computed values, resume after a kill, file repair."""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from conftest import tiny_config

from redcore_lite import sweep

GRID = {"variants": ["redcore", "no_ra"], "settings": ["balanced"], "seeds": 2}


def _table(diffs: dict[str, list[float]], setting: str = "balanced") -> pd.DataFrame:
    """A hand-made tidy table: redcore at 0.8 and each variant at 0.8 - d per seed."""
    rows = []
    for variant, ds in {"redcore": [0.0] * len(next(iter(diffs.values()))), **diffs}.items():
        for seed, d in enumerate(ds):
            rows.append({"variant": variant, "setting": setting, "rates": "0.5/0.5/0.5",
                         "seed": seed, "split": "test", "pattern": "overall", "metric": "f1",
                         "value": 0.8 - d})
    return pd.DataFrame(rows, columns=sweep.COLUMNS)


def test_mean_ci_matches_hand_values():
    # mean 2.5, sd = sqrt(5/3), t(0.975, 3) = 3.182446 -> half width 2.054260
    mean, lo, hi = sweep.mean_ci([1.0, 2.0, 3.0, 4.0])
    assert mean == pytest.approx(2.5)
    assert (lo, hi) == pytest.approx((0.445740, 4.554260), abs=1e-5)
    assert np.isnan(sweep.mean_ci([1.0])[1])


def test_paired_differences_match_hand_values():
    # no_ra: d = 0.1, 0.0, 0.3 -> mean 0.13333, sd 0.152753, t(0.975, 2) = 4.302653 -> ±0.379460
    # uniform: d = 0.10, 0.12, 0.11 -> mean 0.11, sd 0.01 -> ±0.024841 (excludes 0)
    table = _table({"no_ra": [0.1, 0.0, 0.3], "uniform": [0.10, 0.12, 0.11]})
    out = sweep.paired_differences(table, metrics=("f1",)).set_index("variant")
    a, b = out.loc["no_ra"], out.loc["uniform"]
    assert a["n"] == 3 and a["diff"] == pytest.approx(0.133333, abs=1e-6)
    assert (a["ci_low"], a["ci_high"]) == pytest.approx((-0.246127, 0.512794), abs=1e-5)
    assert a["wins"] == pytest.approx(2.5 / 3) and not a["distinguishable"]
    assert (b["ci_low"], b["ci_high"]) == pytest.approx((0.085159, 0.134841), abs=1e-5)
    assert b["wins"] == 1.0 and b["distinguishable"]
    assert a["baseline_mean"] == pytest.approx(0.8)
    assert a["variant_mean"] == pytest.approx(0.66667, abs=1e-5)


def test_holm_by_hand():
    # sorted: 0.005 x 4 = 0.02, 0.01 x 3 = 0.03, 0.03 x 2 = 0.06, 0.04 x 1 = 0.04 -> max so far 0.06
    got = sweep.holm([0.01, 0.04, 0.03, 0.005])
    assert np.allclose(got, [0.03, 0.06, 0.06, 0.02])
    assert np.allclose(sweep.holm([0.5, 0.9]), [1.0, 1.0])  # capped at 1
    got = sweep.holm([0.02, np.nan, 0.01])  # NaN stays out of the family (m = 2)
    assert np.isnan(got[1]) and np.allclose(got[[0, 2]], [0.02, 0.02])


def test_paired_p_matches_the_t_test_and_the_interval():
    from scipy import stats
    x = [0.1, 0.0, 0.3]
    assert sweep.paired_p(x) == pytest.approx(stats.ttest_1samp(x, 0.0).pvalue)
    assert sweep.paired_p([0.10, 0.12, 0.11]) < 0.05  # its 95% interval excludes 0 (above)
    assert sweep.paired_p([0.2, 0.2]) == 0.0 and sweep.paired_p([0.0, 0.0]) == 1.0
    assert np.isnan(sweep.paired_p([0.1]))


def test_worst_pattern_is_each_runs_minimum():
    rows = [("redcore", "s", "r", 0, "test", p, "f1", v) for p, v in
            (("A", 0.5), ("V", 0.3), ("AV", 0.9), ("overall", 0.7))]
    rows += [("no_ra", "s", "r", 0, "test", p, "f1", v) for p, v in
             (("A", 0.2), ("V", 0.4), ("AV", 0.8), ("overall", 0.6))]
    t = sweep.with_worst(pd.DataFrame(rows, columns=sweep.COLUMNS))
    w = t[t["pattern"] == sweep.WORST].set_index("variant")["value"]
    assert w["redcore"] == 0.3 and w["no_ra"] == 0.2  # the worst pattern may differ per run
    only = pd.DataFrame([rows[3]], columns=sweep.COLUMNS)
    assert sweep.with_worst(only).equals(only)


def test_paired_differences_holm_families():
    table = _table({"no_ra": [0.1, 0.0, 0.3], "uniform": [0.10, 0.12, 0.11]})
    out = sweep.paired_differences(table, metrics=("f1",)).set_index("variant")
    p = out["p"].to_numpy()
    assert np.allclose(out["p_holm"].to_numpy(), sweep.holm(p))  # one family: the overall rows
    assert out.loc["uniform", "holm"] == (out.loc["uniform", "p_holm"] < 0.05)


def test_setting_group_averages_each_seed_first():
    perms = sweep.SETTING_GROUPS["imbalanced"]
    d = {s: [0.01 * k, 0.02 * k] for k, s in enumerate(perms, 1)}  # seed 0: 0.01..0.06
    table = pd.concat([_table({"no_ra": d[s]}, s) for s in perms])
    out = sweep.paired_differences(table, metrics=("f1",)).set_index("setting")
    assert out.loc["imbalanced", "n"] == 2
    assert out.loc["imbalanced", "diff"] == pytest.approx((0.035 + 0.07) / 2)
    part = sweep.paired_differences(table[table["setting"] != perms[0]], metrics=("f1",))
    assert "imbalanced" not in set(part["setting"])  # a group needs all its settings


def test_run_config_and_bad_names():
    cfg = sweep.run_config(tiny_config(3), "inverse", "imb_852", 7)
    assert cfg.mask.rates == (0.8, 0.5, 0.2) and cfg.train.seed == 7
    assert cfg.advantage.mode == "inverse"
    with pytest.raises(ValueError, match="variant"):
        sweep.run_config(tiny_config(3), "no_such", "balanced", 0)
    with pytest.raises(ValueError, match="settings"):
        sweep.run_sweep(tiny_config(3), "unused.csv", settings=["nope"])


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> pd.DataFrame:
    """An uninterrupted sweep of four tiny runs."""
    path = tmp_path_factory.mktemp("ref") / "r.csv"
    return sweep.run_sweep(tiny_config(3), path, workers=1, **GRID)


def test_table_is_tidy_and_paired(reference):
    assert list(reference.columns) == sweep.COLUMNS
    assert len(reference) == 4 * 2 * 8 * 3  # runs x splits x (7 patterns + overall) x metrics
    assert set(reference["rates"]) == {"0.5/0.5/0.5"}
    assert reference["value"].between(0, 1).all()


def test_tidy_gives_the_rows_a_sweep_writes(reference):
    """``sweep.tidy`` on a run trained by hand: the sweep's rows for that run, to 4 decimals."""
    from redcore_lite.trainer import fit

    run = fit(sweep.run_config(tiny_config(3), "no_ra", "balanced", 1))
    got = sweep.tidy(run, "no_ra", "balanced", 1)
    want = reference[(reference["variant"] == "no_ra") & (reference["seed"] == 1)]
    pd.testing.assert_frame_equal(got.reset_index(drop=True), want.reset_index(drop=True),
                                  check_dtype=False)


def test_killed_sweep_resumes_without_redoing_runs(tmp_path, reference):
    path = tmp_path / "r.csv"

    first: list[tuple] = []

    def kill_after_two(key, n):
        first.append(key)
        if n == 2:
            raise KeyboardInterrupt("simulated kill")

    with pytest.raises(KeyboardInterrupt):
        sweep.run_sweep(tiny_config(3), path, workers=1, on_run=kill_after_two, **GRID)
    assert len(sweep.load_table(path)) == 2 * 48
    redone = []
    table = sweep.run_sweep(tiny_config(3), path, workers=1,
                            on_run=lambda key, n: redone.append(key), **GRID)
    assert len(redone) == 2 and not set(redone) & set(first)  # only the two missing runs
    every = set(itertools.product(["redcore", "no_ra"], ["balanced"], [0, 1]))
    assert set(redone) | set(first) == every
    pd.testing.assert_frame_equal(table, reference)
    manifest = pd.read_json(path.with_suffix(".json"), typ="series")
    assert [s["runs_finished"] for s in manifest["sessions"]] == [2, 2]


def test_truncated_tail_and_partial_run_are_dropped_and_redone(tmp_path, reference):
    path = tmp_path / "r.csv"
    sweep.run_sweep(tiny_config(3), path, workers=1, **GRID)
    lines = path.read_text().splitlines(keepends=True)
    # the last run lost 10 of its 48 rows, and a write stopped in the middle of a line
    path.write_text("".join(lines[:-10]) + lines[-10][:17])
    assert len(sweep.load_table(path)) == 3 * 48
    redone = []
    table = sweep.run_sweep(tiny_config(3), path, workers=1,
                            on_run=lambda key, n: redone.append(key), **GRID)
    assert redone == [tuple(reference.iloc[-1][["variant", "setting", "seed"]])]
    pd.testing.assert_frame_equal(table, reference)


@pytest.mark.slow
def test_two_worker_processes_give_the_same_table(tmp_path, reference):
    table = sweep.run_sweep(tiny_config(3), tmp_path / "r.csv", workers=2, **GRID)
    pd.testing.assert_frame_equal(table, reference)


def test_different_base_config_is_refused(tmp_path, reference):
    path = tmp_path / "r.csv"
    one = {"variants": ["redcore"], "settings": ["none"], "seeds": 1}
    sweep.run_sweep(tiny_config(3), path, workers=1, **one)
    other = tiny_config(3, train={"lr": 1e-3})
    with pytest.raises(ValueError, match="different base config"):
        sweep.run_sweep(other, path, workers=1, **one)


def test_report_states_what_is_distinguishable(tmp_path, reference):
    diffs, text = sweep.report(reference, tmp_path / "rep", title="Tiny")
    assert (tmp_path / "rep.md").read_text() == text
    saved = pd.read_csv(tmp_path / "rep.csv")
    assert len(saved) == len(diffs) == 9 * 2  # no_ra x (7 patterns + overall + worst) x (f1, wa)
    assert "Holm" in text and "worst pattern: redcore F1" in text
    assert {"p", "p_holm", "holm"} <= set(saved.columns)
    assert text.startswith("# Tiny") and "distinguishable from zero" in text
    assert "macro-F1, redcore better:" in text and "WA, not distinguishable:" in text
    assert set(diffs["n"]) == {2}


def test_cli_sweep_then_report(tmp_path, capsys):
    from redcore_lite.cli import main

    out = tmp_path / "s.csv"
    args = ["sweep", "synthetic", "--preset", "smoke", "--epochs", "1", "--variants", "redcore",
            "no_ra", "--settings", "none", "--seeds", "2", "--workers", "1", "--no-progress",
            "--out", str(out)]
    assert main(args) == 0
    assert main(args) == 0  # a second call finds every run done
    pinned = args[:2] + ["--config", str(out.with_suffix(".json"))] + args[4:]  # config, no preset
    assert main(pinned) == 0
    manifest = pd.read_json(out.with_suffix(".json"), typ="series")
    assert [s["runs_todo"] for s in manifest["sessions"]] == [4, 0, 0]
    assert "--config" in manifest["sessions"][2]["command"]
    command = manifest["sessions"][0]["command"]
    assert command.startswith("redcore-lite sweep synthetic --preset smoke")
    assert main(["report", str(out)]) == 0
    assert (tmp_path / "s_report.md").is_file() and (tmp_path / "s_report.csv").is_file()
    assert "macro-F1, redcore better" in capsys.readouterr().out
    assert main(["sweep", "synthetic", "--settings", "nope", "--out", str(out)]) == 2
