"""Inputs bounded (issue 25, item 5; repros 6, 8, 10, 11): config files parsed with limits, error
lines of sane length, grid sizes checked before anything is allocated, degenerate values that
turn the method off refused, strings in feature files named by file, modality and sample."""
from __future__ import annotations

import time
import warnings

import h5py
import numpy as np
import pandas as pd
import pytest
from conftest import tiny_config, tiny_splits

import redcore_lite as rc
from redcore_lite import cli, sweep
from redcore_lite.advantage import RelativeAdvantage
from redcore_lite.config import AdvantageConfig, check_config, config_from_file, override_from_strings
from redcore_lite.trainer import SetupWarning


def run(capsys, *argv):
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def last_line(err: str, command: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err and lines and lines[-1].startswith(f"redcore-lite {command}: error: "), err
    return lines[-1]


def bomb(levels: int, field: str, leaf: str = "1") -> str:
    """A YAML "billion laughs": each level a list of 9 aliases of the one before."""
    names = "abcdefghijkl"[:levels]
    parts = [f"&{names[0]} [{', '.join([leaf] * 9)}]"]
    parts += [f"&{cur} [{', '.join(['*' + prev] * 9)}]" for prev, cur in zip(names, names[1:])]
    section, name = field.split(".")
    return f"{section}: {{{name}: [{', '.join(parts)}]}}\n"


# ---------------------------------------------------------------- config files (repros 8, 11)


@pytest.mark.parametrize("levels, field", [(9, "train.lr"), (6, "mask.rates"), (3, "mask.rates")])
def test_yaml_alias_bomb_is_refused_quickly(tmp_path, levels, field):
    """repro 8: 9 levels inside train.lr took 60 s and 5.2 GB, then 'unexpected MemoryError';
    six levels inside mask.rates gave a 1.9 MB error line."""
    pytest.importorskip("yaml")
    path = tmp_path / "bomb.yaml"
    path.write_text(bomb(levels, field))
    start = time.perf_counter()
    with pytest.raises(ValueError) as info:
        config_from_file(path, rc.preset("smoke"))
    assert time.perf_counter() - start < 5
    text = str(info.value)
    assert len(text) < 600 and "\n" not in text and "--config" in text and str(path) in text, text


def test_recursive_yaml_alias_and_deep_json_are_refused(tmp_path):
    pytest.importorskip("yaml")
    rec = tmp_path / "rec.yaml"
    rec.write_text("mask: &x {rates: [*x]}\n")
    with pytest.raises(ValueError, match="nested more than"):
        config_from_file(rec, rc.preset("smoke"))
    deep = tmp_path / "deep.json"
    deep.write_text('{"mask": {"rates": ' + "[" * 50_000 + "]" * 50_000 + "}}")
    with pytest.raises(ValueError, match="nested too deeply|nested more than"):
        config_from_file(deep, rc.preset("smoke"))
    big = tmp_path / "big.json"
    big.write_text('{"train": {"lr": 0.001}, "data": {"path": "' + "x" * (2 << 20) + '"}}')
    with pytest.raises(ValueError, match="at most 1048576 bytes"):
        config_from_file(big, rc.preset("smoke"))


def test_config_file_values_are_type_checked_when_read(tmp_path):
    """repro 11: `rates: {a: 1}` in a config file was not type-checked."""
    path = tmp_path / "c.json"
    path.write_text('{"mask": {"rates": {"a": 1}}}')
    with pytest.raises(ValueError, match=r"--config: .*c.json.*: mask.rates: got \{'a': 1\} \(dict\); "
                       r"allowed: a sequence of finite numbers"):
        config_from_file(path, rc.preset("smoke"))


def test_set_rates_of_the_wrong_length_names_set(tmp_path, capsys):
    """repro 11: `--set mask.rates=0.2,0.5` was reported as "--rates (the preset's [0.2, 0.5])"."""
    code, _, err = run(capsys, "train", "synthetic", "--preset", "smoke", "--set",
                       "mask.rates=0.2,0.5", "--out", tmp_path / "x")
    line = last_line(err, "train")
    assert code == 2 and "--set mask.rates: got 2 rate(s) for 3 modalities" in line, line
    path = tmp_path / "c.json"
    path.write_text('{"mask": {"rates": [0.2, 0.5]}}')
    code, _, err = run(capsys, "train", "synthetic", "--preset", "smoke", "--config", path,
                       "--out", tmp_path / "y")
    assert code == 2 and "mask.rates (from --config" in last_line(err, "train")


def test_error_values_are_cut_to_a_sane_length():
    with pytest.raises(ValueError) as info:
        override_from_strings(rc.preset("smoke"), ["train.lr=" + "9" * 100_000 + "x"])
    assert len(str(info.value)) < 300
    with pytest.raises(ValueError) as info:
        check_config(rc.override(rc.preset("smoke"), mask={"rates": [[0.1] * 1000] * 1000}))
    assert len(str(info.value)) < 300
    code, text = cli.error_line(ValueError("x" * 100_000))
    assert code == 2 and len(text) < 1100


def test_set_nested_tuple_needs_lists():
    """Found while writing the generated cases (its input is one they draw): `--set
    mask.class_rates=[1,2]` was "unexpected TypeError"."""
    with pytest.raises(ValueError, match=r"--set mask.class_rates: got '\[1,2\]'; allowed: a JSON "
                       "list of lists"):
        override_from_strings(rc.preset("smoke"), ["mask.class_rates=[1,2]"])


# ---------------------------------------------------------------- grid sizes


def test_sweep_seeds_beyond_memory_are_refused_before_allocating(tmp_path):
    """`sweep --seeds 100000000` died with 'unexpected MemoryError' after 3 GB."""
    start = time.perf_counter()
    with pytest.raises(ValueError, match=r"seeds: got 100000000 \(\d+ runs\); allowed: a grid of at "
                       r"most \d+ runs on this machine"):
        sweep.run_sweep(rc.preset("smoke"), tmp_path / "s.csv", seeds=100_000_000)
    assert time.perf_counter() - start < 5 and not (tmp_path / "s.csv").exists()


# ---------------------------------------------------------------- degenerate values (repro 6)


@pytest.mark.parametrize("mode", ["ra", "matched"])
def test_floor_at_or_above_uniform_makes_ra_inert_and_is_refused(mode):
    """repro 6: --set advantage.floor=2 kept beta at 0.57735 every step, labelled RedCore."""
    cfg = AdvantageConfig(mode=mode, floor=2.0)
    with pytest.raises(ValueError, match=r"advantage.floor: got 2.0 .* below 1/sqrt\(3\) = 0.57735"):
        RelativeAdvantage(cfg, 3)
    with pytest.raises(ValueError, match=r"below 1/sqrt\(2\)"):  # the observed modalities count
        RelativeAdvantage(AdvantageConfig(mode=mode, floor=0.75), 3, active=[True, True, False])
    RelativeAdvantage(AdvantageConfig(mode=mode, floor=0.6), 3, active=[True, True, False])  # < 0.707
    RelativeAdvantage(AdvantageConfig(mode=mode, floor=0.57), 3)  # below: fine
    RelativeAdvantage(AdvantageConfig(mode="uniform", floor=2.0), 3)  # beta never moves anyway


def test_floor_at_uniform_is_inert(cfg3):
    """Why: with floor >= 1/sqrt(M) beta does not leave the uniform value (the check's reason)."""
    import torch

    from redcore_lite.advantage import beta_step
    beta = torch.full((3,), 3 ** -0.5)
    for ra in ([0.5, -0.2, -0.3], [0.3, 0.3, -0.6], [1.0, -0.5, -0.5]):
        assert torch.allclose(beta_step(beta, torch.tensor(ra), 0.1, 2.0), beta)


def test_eta_zero_with_ra_is_refused():
    with pytest.raises(ValueError, match="advantage.eta: got 0 with advantage.mode='ra'"):
        RelativeAdvantage(AdvantageConfig(eta=0.0), 3)
    RelativeAdvantage(AdvantageConfig(eta=0.0, mode="fixed"), 3)


@pytest.mark.slow
def test_interval_beyond_the_run_warns(cfg3, splits3):
    cfg = rc.override(cfg3, advantage={"interval": 10_000})
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        res = rc.fit(cfg, splits3)
    assert any("advantage.interval: 10000 >= the run's" in str(w.message) for w in seen
               if issubclass(w.category, SetupWarning))
    assert any(m.startswith("advantage.interval") for m in res.warnings)


# ---------------------------------------------------------------- strings in feature files (repro 10)


def _arrays(n=30):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 3)), rng.normal(size=(n, 2)), np.arange(n) % 3


def test_strings_in_npz_features_name_file_modality_and_sample(tmp_path):
    a, v, y = _arrays()
    a = a.astype(str)
    a[7, 1] = "x"
    path = tmp_path / "f.npz"
    np.savez(path, a=a, v=v, labels=y)
    with pytest.raises(ValueError, match=r"f.npz\['a'\]: modality 'a', sample 7: holds 'x'"):
        rc.custom_io.read_npz(path)


def test_strings_in_from_arrays_name_the_sample():
    a, v, y = _arrays()
    a = a.astype(object)
    a[4, 0] = "oops"
    with pytest.raises(ValueError, match=r"features\['a'\]: row 4 \(id 's4'\) holds 'oops'"):
        rc.from_arrays({"a": a, "v": v}, y, ids=[f"s{i}" for i in range(30)])


def test_strings_in_hdf5_name_file_modality_and_sample(tmp_path):
    a, v, y = _arrays()
    pd.DataFrame({"id": [f"s{i}" for i in range(30)], "label": y}).to_csv(tmp_path / "labels.csv",
                                                                         index=False)
    with h5py.File(tmp_path / "A.h5", "w") as f:
        for i in range(30):
            f[f"s{i}"] = a[i]
    with h5py.File(tmp_path / "V.h5", "w") as f:
        for i in range(30):
            f[f"s{i}"] = v[i] if i != 5 else np.array([b"x", b"y"])
    with pytest.raises(ValueError, match=r"V.h5\['s5'\]: modality 'V', sample id 's5': holds"):
        rc.custom_io.read_hdf5_folder(tmp_path)


def test_npz_split_array_is_not_a_modality(tmp_path):
    """repro 10: an .npz array meant as the split column was taken as a modality."""
    a, v, y = _arrays()
    fold = np.array(["train", "train", "train", "val", "test"] * 6)
    path = tmp_path / "f.npz"
    np.savez(path, a=a, v=v, labels=y, fold=fold)
    with pytest.raises(ValueError, match=r"f.npz\['fold'\]: holds split names .* \(--split-column fold\)"):
        rc.custom_io.read_custom(path)
    data, split = rc.custom_io.read_custom(path, split_column="fold")
    assert data.modalities == ("a", "v") and split == fold.tolist()
    with pytest.raises(ValueError, match="data.split_column: 'nope' given but .* has no array 'nope'"):
        rc.custom_io.read_custom(path, split_column="nope")
    np.savez(path, a=a, v=v, labels=y, w=np.arange(30.0))
    with pytest.raises(ValueError, match=r"f.npz\['w'\]: modality 'w' has shape \(30,\)"):
        rc.custom_io.read_custom(path)


def test_tiny_config_still_trains(cfg3):
    """The checks above leave the presets and the tiny config valid."""
    for name in ("smoke", "teach", "paper"):
        RelativeAdvantage(rc.preset(name).advantage, 3)
    assert tiny_splits(tiny_config(2)).modalities == ("A", "V")
