"""Shared tiny fixtures: a smoke config and small synthetic splits.

``REDCORE_TEST_DEVICE=cuda pytest tests/`` runs the fixtures' fits on a GPU (default: cpu).
"Another machine" without one (README, True on every machine): ``REDCORE_SEED_BASE=1000`` offsets the
fixtures' seeds (data, split and training), ``REDCORE_THREADS=2`` sets every test's torch thread count,
``ATEN_CPU_CAPABILITY=default`` or ``MKL_CBWR=COMPATIBLE`` another floating-point path.
"""
from __future__ import annotations

import os

import pytest
import torch

import redcore_lite as rc


TEST_DEVICE = os.environ.get("REDCORE_TEST_DEVICE", "cpu")


def tiny_config(num_modalities: int = 3, **sections) -> rc.Config:
    """The smoke preset shrunk further, with one missing rate per modality."""
    cfg = rc.preset("smoke")
    rates = (0.2, 0.5, 0.8, 0.4)[:num_modalities]
    cfg = rc.override(cfg, data={"dims": (6, 5, 4, 3)[:num_modalities],
                                 "snr": (1.5,) * num_modalities, "num_samples": 120},
                      mask={"rates": rates}, train={"epochs_constant": 1, "epochs_decay": 1,
                                                    "batch_size": 16, "seed": rc.seed_base(),
                                                    "device": TEST_DEVICE})
    return rc.override(cfg, **sections) if sections else cfg


def tiny_splits(cfg: rc.Config, seed: int = 0) -> rc.Splits:
    return rc.load_data(cfg.data, seed=seed + rc.seed_base())


@pytest.fixture
def cfg3() -> rc.Config:
    return tiny_config(3)


@pytest.fixture
def splits3(cfg3) -> rc.Splits:
    return tiny_splits(cfg3)


@pytest.fixture(autouse=True)
def _threads():
    rc.set_threads()  # 1, or $REDCORE_THREADS
    yield


def holey_splits(cfg: rc.Config, seed: int = 0) -> rc.Splits:
    """The config's synthetic data with observed holes (whole-row NaN, a fixed rule: rows
    i % 5 == 1 lack the first modality, i % 4 == 2 the second, i % 3 == 0 the third unless
    that would leave nothing), read with ``from_arrays``, split and normalised."""
    d, seed = cfg.data, seed + rc.seed_base()
    data = rc.make_synthetic(d.num_samples, d.dims, d.num_classes, d.snr, seed=seed)
    i = torch.arange(len(data))
    rules = [i % 5 != 1, i % 4 != 2, (i % 3 != 0) | ((i % 5 == 1) & (i % 4 == 2))]
    rules += [i % 7 != 3] * (len(d.dims) - 3)
    feats = {m: torch.where(rules[k][:, None], x, float("nan"))
             for k, (m, x) in enumerate(data.features.items())}
    own = rc.from_arrays(feats, data.labels, num_classes=d.num_classes)
    return rc.normalise(rc.split_data(own, d.split, seed))


@pytest.fixture(scope="session")
def executed_notebooks(tmp_path_factory):
    """Every notebook of notebooks/ executed with papermill under the smoke preset (``CI=true``)
    into a temporary folder, as ``scripts/workbook.sh`` does into build/notebooks/ (slow: minutes).
    Used by the figure check (tests/test_book.py) and the book's browser test.
    ``REDCORE_EXECUTED_NOTEBOOKS=build/notebooks`` reuses notebooks executed before (e.g. by
    ``scripts/workbook.sh``) instead; it must hold every notebook of notebooks/."""
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    reuse = os.environ.get("REDCORE_EXECUTED_NOTEBOOKS")
    if reuse:
        folder = Path(reuse)
        missing = [p.name for p in (repo / "notebooks").glob("[0-9]*.ipynb") if not (folder / p.name).is_file()]
        assert not missing, f"REDCORE_EXECUTED_NOTEBOOKS={reuse}: no executed {missing}"
        return folder
    out = tmp_path_factory.mktemp("executed")
    env = {**os.environ, "CI": "true", "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(repo), os.environ.get("PYTHONPATH")]))}
    for nb in sorted((repo / "notebooks").glob("[0-9]*.ipynb")):
        run = subprocess.run([sys.executable, "-m", "papermill", str(nb), str(out / nb.name), "-k", "python3",
                              "--cwd", str(repo / "notebooks"), "-p", "PRESET", "smoke", "--log-level",
                              "WARNING", "--no-progress-bar"], env=env, capture_output=True, text=True)
        assert run.returncode == 0, f"{nb.name} failed under papermill:\n{run.stderr[-3000:]}"
    return out


# Hypothesis profiles (tests/test_generated_inputs.py): "ci" (the default) is small, deterministic
# (derandomize: the same cases on every run) and has a deadline generous enough for a loaded
# 2-core machine; "big" (HYPOTHESIS_PROFILE=big, run by hand) draws many more random cases.
try:
    from datetime import timedelta

    from hypothesis import HealthCheck, settings

    settings.register_profile("ci", max_examples=25, deadline=timedelta(seconds=20), derandomize=True,
                              database=None, print_blob=True,
                              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                     HealthCheck.function_scoped_fixture])
    settings.register_profile("big", max_examples=600, deadline=timedelta(seconds=60), database=None,
                              print_blob=True,
                              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                     HealthCheck.function_scoped_fixture])
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
except ImportError:  # hypothesis is in the dev extra; the generated tests skip without it
    pass
