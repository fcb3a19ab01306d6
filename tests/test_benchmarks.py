"""The benchmark scripts still run against the library (tiny sizes; their numbers are not checked)."""
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import gpu_check  # noqa: E402
import step_time  # noqa: E402
import teach_presets  # noqa: E402
import teach_time  # noqa: E402


@pytest.mark.slow
def test_step_time_cases_run_on_cpu():
    cpu = torch.device("cpu")
    for case in ("paper", "paper-bf16", "release"):
        row = step_time.run_case(case, cpu, steps=1, warmup=1, batch=8, batches=2)
        assert row["case"] == case and row["ms_per_step"] > 0 and row["batch"] == 8


def test_static_step_cases_run_on_cpu():
    """The CUDA-graph cases' step (static shapes) runs eagerly on a CPU."""
    for case in ("paper-graph", "paper-bf16-graph"):
        row = step_time.run_case(case, torch.device("cpu"), steps=1, warmup=1, batch=8, batches=2)
        assert row["case"] == case and row["ms_per_step"] > 0


@pytest.mark.slow
def test_gpu_check_skips_what_the_budget_cannot_hold():
    import json
    import subprocess

    script = Path(gpu_check.__file__)
    out = subprocess.run([sys.executable, str(script), "--dry-run", "--budget", "0"],
                         capture_output=True, text=True, timeout=600, check=True)
    assert "skipped step_time_b128:paper" in out.stdout
    result = json.loads((script.parent.parent / "build" / "gpu_check_dry" / "gpu_check_dry.json").read_text())
    assert result["skipped"] == ["step_time_b128:paper", "step_time_b128:paper-bf16-graph", "fit_fp32-eager"]
    assert result["stages_done"] == ["start", "summary"]


def test_profile_reports_the_parts_of_the_step():
    row = step_time.run_case("paper", torch.device("cpu"), steps=1, warmup=1, batch=8, prof=True)
    parts = row["host_ms_per_step_by_part"]
    assert set(parts) == {"forward", "loss", "backward", "clip", "adam"}
    assert all(v > 0 for v in parts.values()) and row["kernels_per_step"] == 0


@pytest.mark.slow
def test_gpu_check_fit_child_runs_on_cpu():
    row = gpu_check.fit_child("fp32-eager", "cpu", epochs=1, samples=200)
    assert row["steps"] >= 1 and 0.0 <= row["test_f1"] <= 1.0 and row["device"] == "cpu"


def test_teach_time_child_reports_fastest_median_and_every_fit():
    row = teach_time.child("synthetic", repeats=2)
    assert len(row["fit_s_all"]) == 2 and row["fit_s"] == min(row["fit_s_all"])
    assert row["fit_s"] <= row["fit_s_median"] <= max(row["fit_s_all"]) and row["steps"] == 210


def test_teach_presets_summary_pairs_each_variant_with_before():
    rows = [{"dataset": "d", "setting": st, "seed": sd, "variant": v, "fit_s": 1.0 + i, "test_f1": f1}
            for i, (st, sd, v, f1) in enumerate([
                ("a", 0, "before", 0.5), ("a", 0, "teach", 0.7), ("a", 1, "before", 0.6), ("a", 1, "teach", 0.5),
                ("a", 0, "gen1", 0.5), ("a", 1, "gen1", 0.6), ("a", 0, "gen1-small", 0.4),
                ("a", 1, "gen1-small", 0.6)])]
    table = {t["variant"]: t for t in teach_presets.summary(rows)}
    t = table["teach"]
    assert abs(t["f1_minus_before_mean"] - 0.05) < 1e-12 and abs(t["f1_minus_before_min"] + 0.1) < 1e-12
    assert abs(t["f1_minus_before_max"] - 0.2) < 1e-12 and t["fit_s_min"] == 2.0 and t["fits"] == 2
    assert table["before"]["f1_minus_before_mean"] == 0.0


def test_step_flops_and_peak_fraction_against_hand_values():
    """FlopCounterMode counts 2mkn per [m, k] @ [k, n]; with only w requiring a gradient the
    backward adds one more product (dL/dw = x^T g): 4mkn in all."""
    m, k, n = 8, 16, 4
    x, w = torch.randn(m, k), torch.randn(k, n, requires_grad=True)
    assert step_time.step_flops(lambda: (x @ w).sum().backward()) == 4 * m * k * n
    assert step_time.step_flops(lambda: None) is None
    assert step_time.matmul_peak(torch.device("cpu"), n=64, repeats=1) > 0
    row = {"case": "paper", "flops_per_step": 6e9, "ms_per_step": 2000.0}
    step_time._add_peak_fraction(row, {"fp32": 1e10, "bf16": 4e10})
    assert row["achieved_tflops"] == pytest.approx(0.003) and row["peak_dtype"] == "fp32"
    assert row["peak_fraction"] == pytest.approx(0.3)  # 6e9 / 2 s = 3e9 of 1e10
    row = {"case": "paper-bf16", "flops_per_step": 6e9, "ms_per_step": 2000.0}
    step_time._add_peak_fraction(row, {"fp32": 1e10, "bf16": 4e10})
    assert row["peak_dtype"] == "bf16" and row["peak_fraction"] == pytest.approx(0.075)
