"""One-file GPU check (about 6 minutes on one H200): speed, memory, no host sync, a short fit.

1. ``step_time.py --device cuda`` at the `paper` batch (128), rotating over 4 random batches: fp32
   eager, TF32, bf16 autocast, bf16 + torch.compile, the release's step
   (``release_reference.py``) and a whole `teach` fit, side by side (ms/step, samples/s, peak
   memory, kernels launched and GPU-busy ms per step).
2. The training step under ``torch.cuda.set_sync_debug_mode("error")``: any host sync raises.
3. The same `paper` cases at batch 1024, where the GPU rather than the launch queue sets the pace.
4. A short end-to-end ``fit`` of the `paper` preset (Transformer) on synthetic sequences with
   IEMOCAP's dimensions in fp32 eager (seconds, test macro-F1); with ``--compiled-fit`` also one
   in bf16 + compile (on an H200 it did not finish within 200 s: compilation and recompilation).

Every stage is guarded: a failure is recorded and the next stage runs. The results file is
rewritten (atomically) after every stage: benchmarks/results/gpu_check.json, and a copy in
``--copy-to`` when given.

Usage: python benchmarks/gpu_check.py [--copy-to DIR] [--compiled-fit]
       python benchmarks/gpu_check.py --dry-run   (CPU, a few steps: checks that the script runs)
"""
from __future__ import annotations

import argparse
import json
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
               "bf16": variant == "bf16-compiled", "compile": variant == "bf16-compiled"})
    splits = rc.load_data(cfg.data, seed=0)
    t0 = time.perf_counter()
    res = rc.fit(cfg, splits)
    secs = time.perf_counter() - t0
    overall = res.test.set_index("pattern").loc["overall"]
    return {"variant": variant, "seconds": secs, "epochs": cfg.epochs, "steps": len(res.history),
            "train_samples": len(splits.train), "test_f1": float(overall["f1"]),
            "test_wa": float(overall["wa"]), "best_epoch": res.best_epoch,
            **{k: res.extra[k] for k in ("device", "bf16", "compile", "tf32") if k in res.extra}}


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
                    "python": sys.version.split()[0], "time": time.strftime("%Y-%m-%d %H:%M:%S")}
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

    save("start")
    step_script = str(ROOT / "benchmarks" / "step_time.py")
    steps = ["--steps", "3", "--warmup", "1"] if dry else ["--steps", "20", "--warmup", "12"]
    compiled = [] if dry else ["paper-compiled"]
    tf32 = [] if dry else ["paper-tf32"]
    for stage, batch, batches, cases in (
            ("step_time_b128", 128, 4, ["paper"] + tf32 + ["paper-bf16"] + compiled + ["release", "teach"]),
            ("sync_check", 0, 0, []),
            ("step_time_b1024", 1024, 2, ["paper", "paper-bf16"] + compiled)):
        try:
            if stage == "sync_check":
                result[stage] = "skipped (dry run)" if dry else sync_free_steps()
                print("sync check:", result[stage], flush=True)
            else:
                out = results_dir / f"{stage}_{device}.json"
                cmd = [sys.executable, step_script, "--device", device, "--cases", ",".join(cases),
                       "--batch", str(batch), "--batches", str(batches), "--profile",
                       "--timeout", "200", "--out", str(out)] + steps
                code, stdout, stderr = _run(cmd, 600)
                print(stdout, end="", flush=True)
                result[stage] = json.loads(out.read_text())["results"] if code == 0 else {
                    "error": _tail(stderr or stdout)}
        except Exception:
            result[stage] = {"error": _tail(traceback.format_exc())}
        save(stage)
    by = {r["case"]: r for r in result.get("step_time_b128", []) if isinstance(r, dict) and "error" not in r}
    big = {r["case"]: r for r in result.get("step_time_b1024", []) if isinstance(r, dict) and "error" not in r}
    for tag, rows in (("b128", by), ("b1024", big)):
        if {"paper", "paper-compiled"} <= set(rows):
            x = rows["paper-compiled"]["samples_per_s"] / rows["paper"]["samples_per_s"]
            result[f"speedup_bf16_compiled_vs_fp32_{tag}"] = x
            print(f"{tag}: bf16 + compile vs fp32 eager: {x:.2f}x samples/s", flush=True)
    if {"paper", "release"} <= set(by):
        result["ratio_vs_release_b128"] = by["paper"]["ms_per_step"] / by["release"]["ms_per_step"]
    fits = []
    for variant in ("fp32-eager",) + (("bf16-compiled",) if args.compiled_fit and not dry else ()):
        cmd = [sys.executable, __file__, "--fit-child", variant, "--device", device,
               "--epochs", "1" if dry else "3", "--samples", "300" if dry else "2000"]
        code, stdout, stderr = _run(cmd, 150)
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
