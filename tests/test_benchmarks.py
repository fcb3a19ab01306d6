"""The benchmark scripts still run against the library (tiny sizes; their numbers are not checked)."""
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import gpu_check  # noqa: E402
import step_time  # noqa: E402


def test_step_time_cases_run_on_cpu():
    cpu = torch.device("cpu")
    for case in ("paper", "paper-bf16", "release"):
        row = step_time.run_case(case, cpu, steps=1, warmup=1, batch=8, batches=2)
        assert row["case"] == case and row["ms_per_step"] > 0 and row["batch"] == 8


def test_profile_reports_the_parts_of_the_step():
    row = step_time.run_case("paper", torch.device("cpu"), steps=1, warmup=1, batch=8, prof=True)
    parts = row["host_ms_per_step_by_part"]
    assert set(parts) == {"forward", "loss", "backward", "clip", "adam"}
    assert all(v > 0 for v in parts.values()) and row["kernels_per_step"] == 0


def test_gpu_check_fit_child_runs_on_cpu():
    row = gpu_check.fit_child("fp32-eager", "cpu", epochs=1, samples=200)
    assert row["steps"] >= 1 and 0.0 <= row["test_f1"] <= 1.0 and row["device"] == "cpu"
