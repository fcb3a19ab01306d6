"""The Ray backend of run_sweep: the same grid on a local Ray instance gives the local pool's
table, manifest and resume-by-key (a 2-variant x 1-setting x 2-seed smoke grid)."""
from __future__ import annotations

import json

import pandas as pd
import pytest
from conftest import tiny_config

from redcore_lite import cli, sweep

ray = pytest.importorskip("ray")

GRID = {"variants": ["redcore", "no_ra"], "settings": ["balanced"], "seeds": 2}


@pytest.mark.slow  # a Ray instance starts (seconds to tens of seconds on a loaded 2-core machine)
def test_ray_backend_gives_the_local_pool_table_and_resumes(tmp_path):
    local = sweep.run_sweep(tiny_config(3), tmp_path / "local.csv", workers=2, **GRID)
    path = tmp_path / "ray.csv"
    # first half on Ray, stopped after one run (as a kill would), then resumed on Ray
    stop = RuntimeError("stop after the first run")

    def after(key, finished):
        if finished == 1:
            raise stop

    with pytest.raises(RuntimeError, match="stop after the first run"):
        sweep.run_sweep(tiny_config(3), path, workers=2, backend="ray", on_run=after, **GRID)
    assert not ray.is_initialized()  # the local instance started by the sweep is shut down
    assert len(sweep.load_table(path)[["variant", "seed"]].drop_duplicates()) == 1
    table = sweep.run_sweep(tiny_config(3), path, workers=2, backend="ray", **GRID)
    pd.testing.assert_frame_equal(table, local)  # the same rows, values and order
    assert (tmp_path / "ray.csv").read_bytes() == (tmp_path / "local.csv").read_bytes()
    sessions = json.loads(path.with_suffix(".json").read_text())["sessions"]
    assert [s["runs_finished"] for s in sessions] == [1, 3]
    assert sessions[-1]["backend"]["ray"] == ray.__version__
    assert sessions[-1]["backend"]["cluster_cpus"] == 2


def test_bad_backend_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"backend: got 'spark'; allowed: 'local', 'ray'"):
        sweep.run_sweep(tiny_config(3), tmp_path / "s.csv", backend="spark", **GRID)


def test_cli_passes_the_backend(tmp_path, monkeypatch):
    seen = {}

    def fake(config, path, *args, **kwargs):
        seen.update(kwargs)
        raise SystemExit(0)

    monkeypatch.setattr(sweep, "run_sweep", fake)
    with pytest.raises(SystemExit):
        cli.main(["sweep", "synthetic", "--preset", "smoke", "--seeds", "1", "--backend", "ray",
                  "--ray-address", "auto", "--out", str(tmp_path / "s.csv")])
    assert seen["backend"] == "ray" and seen["address"] == "auto"
    assert "--backend ray" in seen["command"]
