"""Which switches give "another machine" here: one `teach` fit per floating-point path, each in a
fresh process, compared with the fit on this machine's default path.

A number computed on one CPU is one sample of the computation: another BLAS kernel, vector width
or thread count rounds differently, and a training run that starts one ulp apart ends elsewhere
within the seed spread. This script shows which of the documented switches really changes a fit
on *this* machine (a switch that changes nothing here, e.g. MKL_ENABLE_INSTRUCTIONS on a CPU
without AVX-512, perturbs nothing and proves nothing), and by how much, next to the spread that
another seed gives.

Usage:  python benchmarks/fp_paths.py [--dataset synthetic|mfeat] [--seed 0]
Prints a table and writes benchmarks/results/fp_paths_cpu.json (atomically).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# name -> environment variables of the child (the base path sets none of them)
PATHS: dict[str, dict[str, str]] = {
    "base": {},
    "aten_default": {"ATEN_CPU_CAPABILITY": "default"},
    "mkl_cbwr_compatible": {"MKL_CBWR": "COMPATIBLE"},
    "threads_2": {"REDCORE_THREADS": "2"},
    "mkl_avx2": {"MKL_ENABLE_INSTRUCTIONS": "AVX2"},
    "mkl_sse4_2": {"MKL_ENABLE_INSTRUCTIONS": "SSE4_2"},
    "seed_base_1000": {"REDCORE_SEED_BASE": "1000"},
}
CLEARED = ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "MKL_ENABLE_INSTRUCTIONS", "REDCORE_THREADS", "REDCORE_SEED_BASE")


def child(dataset: str, seed: int) -> dict:
    import torch

    import redcore_lite as rc

    threads = rc.set_threads()
    cfg = rc.override(rc.preset("teach"), data={"name": dataset}, train={"seed": seed + rc.seed_base()})
    res = rc.fit(cfg)
    overall = res.test.set_index("pattern").loc["overall"]
    return {"threads": threads, "capability": torch.backends.cpu.get_cpu_capability(),
            "loss": res.history["loss"].tolist(), "beta_last": [float(res.history[f"beta_{m}"].iloc[-1])
                                                                for m in res.modalities],
            "test_f1": float(overall["f1"]), "test_wa": float(overall["wa"])}


def cpu_model() -> str:
    """The CPU's model name (Linux), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="synthetic", choices=["synthetic", "mfeat"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.dataset, args.seed)))
        return
    runs = {}
    for name, extra in PATHS.items():
        env = {k: v for k, v in os.environ.items() if k not in CLEARED} | extra
        out = subprocess.run([sys.executable, __file__, "--child", name, "--dataset", args.dataset,
                              "--seed", str(args.seed)], env=env, check=True, capture_output=True, text=True)
        runs[name] = json.loads(out.stdout.strip().splitlines()[-1])
    base = runs["base"]
    rows = []
    print(f"{'path':<22}{'capability':<12}{'threads':>8}{'identical':>10}{'max |d loss|':>14}"
          f"{'test F1':>9}{'d F1':>9}")
    for name, r in runs.items():
        identical = r["loss"] == base["loss"] and r["beta_last"] == base["beta_last"]
        gap = max(abs(a - b) for a, b in zip(r["loss"], base["loss"]))
        rows.append({"path": name, "env": PATHS[name], "capability": r["capability"], "threads": r["threads"],
                     "history_identical": identical, "max_abs_loss_diff": gap, "test_f1": r["test_f1"],
                     "test_f1_diff": r["test_f1"] - base["test_f1"], "test_wa": r["test_wa"]})
        print(f"{name:<22}{r['capability']:<12}{r['threads']:>8}{str(identical):>10}{gap:>14.3g}"
              f"{r['test_f1']:>9.4f}{r['test_f1'] - base['test_f1']:>+9.4f}")
    import torch

    from redcore_lite._files import dump_json

    dump_json(ROOT / "benchmarks" / "results" / "fp_paths_cpu.json", {
        "command": " ".join([Path(sys.executable).name, *sys.argv]), "dataset": args.dataset, "seed": args.seed,
        "machine": {"processor": cpu_model(), "cpus": os.cpu_count(),
                    "torch": torch.__version__}, "rows": rows})


if __name__ == "__main__":
    main()
