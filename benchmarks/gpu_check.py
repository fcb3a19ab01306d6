"""One-file GPU check (under 8 minutes on one H200; ``--budget`` caps it): tests, speed, memory,
no host sync, short fits. Every result is saved as soon as it exists.

1. ``tests/test_graphs.py`` (and the optimizer and no-sync tests) with ``REDCORE_TEST_DEVICE=cuda``:
   the captured CUDA-graph step against the same step run eagerly, resume, no host sync in replay.
2. ``step_time.py --device cuda`` at the `paper` batch (128), rotating over 4 random batches, one
   process per case: fp32 eager, the CUDA-graph step (``train.cuda_graph``) in fp32, bf16 and
   bf16 + torch.compile, bf16 autocast, bf16 + torch.compile, the release's step
   (``release_reference.py``) and a whole `teach` fit (ms/step, samples/s, peak memory, kernels
   launched and GPU-busy ms per step); then fp32 eager and the graph step at batch 1024.
3. The eager training step under ``torch.cuda.set_sync_debug_mode("error")``: any host sync raises.
4. Short end-to-end ``fit``s of the `paper` preset (Transformer) on synthetic sequences with
   IEMOCAP's dimensions: fp32 eager and bf16 + CUDA graph (seconds, test macro-F1); with
   ``--compiled-fit`` also bf16 + compile.

Every stage is guarded: a failure is recorded and the next stage runs; no stage starts once
``--budget`` seconds have passed. The results file is rewritten (atomically) after every case:
benchmarks/results/gpu_check.json, and a copy in ``--copy-to`` when given.

Usage: python benchmarks/gpu_check.py [--copy-to DIR] [--budget 480] [--compiled-fit]
       python benchmarks/gpu_check.py --dry-run   (CPU, a few steps: checks that the script runs)
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import redcore_lite as rc  # noqa: E402
from redcore_lite.checkpoint import dump_json  # noqa: E402


def sync_free_steps(steps: int = 5) -> str:
    """Run bf16 training steps with sync debug mode 'error'; return 'ok' or the error."""
    from step_time import _batch, paper_step

    dev = torch.device("cuda")
    step = paper_step("paper-bf16", dev, [_batch(dev, torch.Generator().manual_seed(0))])
    step()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(steps):
            step()
        return "ok"
    except RuntimeError as err:
        return f"sync: {err}"
    finally:
        torch.cuda.set_sync_debug_mode(0)
        torch.cuda.synchronize()


def fit_child(variant: str, device: str, epochs: int, samples: int) -> dict:
    """One `paper`-preset fit on synthetic IEMOCAP-shaped sequences (run in its own process)."""
    from step_time import DIMS

    cfg = rc.override(
        rc.preset("paper"),
        data={"name": "synthetic", "dims": DIMS, "seq_len": 50, "num_samples": samples,
              "snr": (1.0, 1.0, 1.0)},
        train={"device": device, "epochs_constant": epochs, "epochs_decay": 0,
               "bf16": variant.startswith("bf16"), "compile": "compiled" in variant,
               "cuda_graph": variant.endswith("graph")})
    splits = rc.load_data(cfg.data, seed=0)
    t0 = time.perf_counter()
    res = rc.fit(cfg, splits)
    secs = time.perf_counter() - t0
    overall = res.test.set_index("pattern").loc["overall"]
    return {"variant": variant, "seconds": secs, "epochs": cfg.epochs, "steps": len(res.history),
            "train_samples": len(splits.train), "test_f1": float(overall["f1"]),
            "test_wa": float(overall["wa"]), "best_epoch": res.best_epoch,
            **{k: res.extra[k] for k in ("device", "bf16", "compile", "cuda_graph", "tf32") if k in res.extra}}


def _run(cmd: list[str], timeout: float) -> tuple[int, str, str]:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        return out.returncode, out.stdout, out.stderr
    except subprocess.TimeoutExpired:
        return -1, "", f"timed out after {timeout:.0f} s"


def _tail(text: str, n: int = 4) -> str:
    return " | ".join(text.strip().splitlines()[-n:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--copy-to", default=None, help="also copy the results file into this folder")
    ap.add_argument("--dry-run", action="store_true", help="CPU, few steps, no compile")
    ap.add_argument("--compiled-fit", action="store_true", help="also fit in bf16 + compile")
    ap.add_argument("--budget", type=float, default=480.0,
                    help="seconds: no new stage starts after this (default 480)")
    ap.add_argument("--fit-child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--device", default="cuda", help=argparse.SUPPRESS)
    ap.add_argument("--epochs", type=int, default=3, help=argparse.SUPPRESS)
    ap.add_argument("--samples", type=int, default=2000, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.fit_child:
        print(json.dumps(fit_child(args.fit_child, args.device, args.epochs, args.samples)))
        return
    dry = args.dry_run
    if not dry:
        assert torch.cuda.is_available(), "gpu_check.py needs a CUDA GPU (or --dry-run)"
    device = "cpu" if dry else "cuda"
    t_start = time.time()
    # a dry run writes into build/ (ignored by git), a real one into benchmarks/results/
    results_dir = ROOT / "build" / "gpu_check_dry" if dry else ROOT / "benchmarks" / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / ("gpu_check_dry.json" if dry else "gpu_check.json")
    result: dict = {"device": device, "torch": torch.__version__, "cuda": torch.version.cuda,
                    "python": sys.version.split()[0], "time": time.strftime("%Y-%m-%d %H:%M:%S"),
                    "budget_s": args.budget}
    if not dry:
        props = torch.cuda.get_device_properties(0)
        result.update({"gpu": props.name, "capability": f"{props.major}.{props.minor}",
                       "gpu_memory_gb": props.total_memory / 2 ** 30,
                       "multiprocessors": props.multi_processor_count})

    def save(stage: str) -> None:
        result["seconds"] = time.time() - t_start
        result.setdefault("stages_done", []).append(stage)
        dump_json(path, result)
        if args.copy_to:
            Path(args.copy_to).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(args.copy_to) / path.name)
        print(f"[{result['seconds']:5.0f} s] stage {stage} saved", flush=True)

    def left() -> float:
        return args.budget - (time.time() - t_start)

    save("start")
    # 1. the CUDA-graph step's tests on the GPU (graph vs eager, resume, no sync)
    if not dry:
        env = dict(os.environ, REDCORE_TEST_DEVICE="cuda")
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_graphs.py",
               "tests/test_optim.py", "tests/test_no_sync.py"]
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=min(150, left()),
                                 env=env, cwd=ROOT)
            result["tests_cuda"] = {"returncode": out.returncode, "tail": out.stdout.strip().splitlines()[-25:]}
        except Exception:
            result["tests_cuda"] = {"error": _tail(traceback.format_exc())}
        print("tests:", *result["tests_cuda"].get("tail", [result["tests_cuda"].get("error")])[-3:], flush=True)
        save("tests_cuda")
    # 2. one step_time process per case (each saved as it finishes), most telling cases first
    step_script = str(ROOT / "benchmarks" / "step_time.py")
    steps = ["--steps", "3", "--warmup", "1"] if dry else ["--steps", "20", "--warmup", "12"]
    b128 = (["paper", "paper-graph", "paper-bf16-graph"] if dry else
            ["paper", "paper-bf16-graph", "paper-graph", "paper-bf16", "release",
             "paper-compiled-graph", "teach", "paper-compiled"])
    b1024 = ["paper", "paper-bf16-graph"] + ([] if dry else ["paper-graph"])
    for stage, batch, batches, cases in (("step_time_b128", 128, 4, b128),
                                         ("step_time_b1024", 1024, 2, b1024)):
        rows = result.setdefault(stage, [])
        for case in cases:
            limit = 200 if "compiled" in case else 90
            if left() < min(limit, 40):
                rows.append({"case": case, "batch": batch, "error": "skipped: time budget spent"})
                continue
            out = results_dir / f"{stage}_{case}_{device}.json"
            cmd = [sys.executable, step_script, "--device", device, "--cases", case,
                   "--batch", str(batch), "--batches", str(batches), "--profile",
                   "--timeout", str(int(min(limit, left()))), "--out", str(out)] + steps
            try:
                code, stdout, stderr = _run(cmd, min(limit, left()) + 30)
                print(stdout, end="", flush=True)
                rows += json.loads(out.read_text())["results"] if code == 0 else [
                    {"case": case, "batch": batch, "error": _tail(stderr or stdout)}]
            except Exception:
                rows.append({"case": case, "batch": batch, "error": _tail(traceback.format_exc())})
            save(f"{stage}:{case}")
    by = {r["case"]: r for r in result.get("step_time_b128", []) if "error" not in r}
    big = {r["case"]: r for r in result.get("step_time_b1024", []) if "error" not in r}
    for tag, rows in (("b128", by), ("b1024", big)):
        for fast in ("paper-compiled", "paper-bf16-graph", "paper-compiled-graph", "paper-graph"):
            if {"paper", fast} <= set(rows):
                x = rows[fast]["samples_per_s"] / rows["paper"]["samples_per_s"]
                result[f"speedup_{fast}_vs_fp32_eager_{tag}"] = x
                print(f"{tag}: {fast} vs fp32 eager: {x:.2f}x samples/s", flush=True)
    if {"paper", "release"} <= set(by):
        result["ratio_vs_release_b128"] = by["paper"]["ms_per_step"] / by["release"]["ms_per_step"]
    # 3. the eager step under sync debug mode (the graph step's check is in the tests)
    if not dry and left() > 20:
        try:
            result["sync_check"] = sync_free_steps()
        except Exception:
            result["sync_check"] = {"error": _tail(traceback.format_exc())}
        print("sync check:", result["sync_check"], flush=True)
        save("sync_check")
    # 4. end-to-end `paper` fits on synthetic IEMOCAP-shaped sequences
    fits = []
    variants = ("fp32-eager", "bf16-graph") + (("bf16-compiled", "bf16-compiled-graph")
                                               if args.compiled_fit and not dry else ())
    for variant in variants:
        if dry and variant != "fp32-eager":
            continue
        if left() < 30:
            fits.append({"variant": variant, "error": "skipped: time budget spent"})
            continue
        cmd = [sys.executable, __file__, "--fit-child", variant, "--device", device,
               "--epochs", "1" if dry else "3", "--samples", "300" if dry else "2000"]
        code, stdout, stderr = _run(cmd, min(150, left() + 30))
        try:
            fits.append(json.loads(stdout.strip().splitlines()[-1]) if code == 0 else
                        {"variant": variant, "error": _tail(stderr or stdout)})
        except Exception:
            fits.append({"variant": variant, "error": _tail(stderr or stdout or traceback.format_exc())})
        print("fit:", json.dumps(fits[-1]), flush=True)
        result["fit_paper_synthetic"] = fits
        save(f"fit_{variant}")
    print(f"written {path} in {result['seconds']:.0f} s")


if __name__ == "__main__":
    main()
