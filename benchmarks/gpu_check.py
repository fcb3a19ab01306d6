"""One-file GPU check: tests, speed, memory, no host sync, short fits, within a time budget
(default 290 s, under 5 minutes; on an H200 ``--budget 420`` runs every stage). Each stage's
result is saved as soon as it exists. In order, most telling first:

1. ``tests/test_graphs.py`` (and the optimizer and no-sync tests) with ``REDCORE_TEST_DEVICE=cuda``:
   the captured CUDA-graph step against the same step run eagerly, resume, no host sync in replay.
2. The eager training step under ``torch.cuda.set_sync_debug_mode("error")``: any host sync raises.
3. ``step_time.py --device cuda`` at the `paper` batch (128), rotating over 4 random batches, one
   process per case: fp32 eager, bf16 + CUDA graph (``train.cuda_graph``), bf16 + torch.compile +
   CUDA graph, bf16 eager, fp32 + CUDA graph, the release's step (``release_reference.py``)
   (ms/step, samples/s, peak memory, kernels launched and GPU-busy ms per step).
4. Short end-to-end ``fit``s of the `paper` preset (Transformer) on synthetic sequences with
   IEMOCAP's dimensions: fp32 eager and bf16 + CUDA graph (seconds, test macro-F1).
5. A whole `teach` fit; fp32 eager and bf16 + graph at batch 1024 (where the GPU, not the host,
   sets the pace); bf16 + compile without a graph; fp32 + graph at batch 1024; with
   ``--compiled-fit`` also fits in bf16 + compile with and without the graph.

A stage starts only while the budget holds the seconds it needs (about 1.2x what it took on an
H200); a failure is recorded and the next stage runs. The results file is rewritten
(atomically) after every stage: benchmarks/results/gpu_check.json, and a copy in ``--copy-to``.

Usage: python benchmarks/gpu_check.py [--copy-to DIR] [--budget 290] [--compiled-fit]
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
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import redcore_lite as rc  # noqa: E402
from redcore_lite._files import dump_json  # noqa: E402


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
    ap.add_argument("--budget", type=float, default=290.0,
                    help="seconds for the whole check: a stage starts only while the budget holds "
                    "the time it needs (default 290: under 5 minutes; 420 runs every stage)")
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
    step_script = str(ROOT / "benchmarks" / "step_time.py")
    steps = ["--steps", "3", "--warmup", "1"] if dry else ["--steps", "20", "--warmup", "12"]

    def tests() -> None:
        """The CUDA-graph step's tests on the GPU (graph vs eager, resume, no sync)."""
        env = dict(os.environ, REDCORE_TEST_DEVICE="cuda")
        cmd = [sys.executable, "-m", "pytest", "-q", "-rP", "-p", "no:cacheprovider",
               "tests/test_graphs.py", "tests/test_optim.py", "tests/test_no_sync.py"]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=150, env=env, cwd=ROOT)
        lines = out.stdout.strip().splitlines()
        result["tests_cuda"] = {"returncode": out.returncode,
                                "graph_vs_eager": [x for x in lines if "largest |graph" in x],
                                "tail": lines[-25:]}
        print("tests:", *result["tests_cuda"]["graph_vs_eager"], lines[-1] if lines else "", flush=True)

    def sync() -> None:
        """The eager step under sync debug mode (the graph step's check is in the tests)."""
        result["sync_check"] = sync_free_steps()
        print("sync check:", result["sync_check"], flush=True)

    def step_case(case: str, batch: int) -> Callable[[], None]:
        def job() -> None:
            stage, batches = f"step_time_b{batch}", 4 if batch == 128 else 2
            out = results_dir / f"{stage}_{case}_{device}.json"
            limit = 200 if "compiled" in case else 90
            cmd = [sys.executable, step_script, "--device", device, "--cases", case, "--batch", str(batch),
                   "--batches", str(batches), "--profile", "--timeout", str(limit), "--out", str(out)] + steps
            code, stdout, stderr = _run(cmd, limit + 30)
            print(stdout, end="", flush=True)
            result.setdefault(stage, []).extend(
                json.loads(out.read_text())["results"] if code == 0 else
                [{"case": case, "batch": batch, "error": _tail(stderr or stdout)}])
        return job

    def fit_job(variant: str) -> Callable[[], None]:
        def job() -> None:
            cmd = [sys.executable, __file__, "--fit-child", variant, "--device", device,
                   "--epochs", "1" if dry else "3", "--samples", "300" if dry else "2000"]
            code, stdout, stderr = _run(cmd, 150)
            try:
                row = (json.loads(stdout.strip().splitlines()[-1]) if code == 0 else
                       {"variant": variant, "error": _tail(stderr or stdout)})
            except Exception:
                row = {"variant": variant, "error": _tail(stderr or stdout or traceback.format_exc())}
            result.setdefault("fit_paper_synthetic", []).append(row)
            print("fit:", json.dumps(row), flush=True)
        return job

    # (name, seconds it needs: about 1.2x what it took on an H200, job), most telling first; a job
    # starts only while the budget has its seconds left, so a run ends within about --budget
    jobs: list[tuple[str, float, Callable[[], None]]] = [] if dry else [("tests_cuda", 30, tests),
                                                                       ("sync_check", 10, sync)]
    b128 = (["paper", "paper-bf16-graph"] if dry else
            ["paper", "paper-bf16-graph", "paper-compiled-graph", "paper-bf16", "paper-graph", "release"])
    jobs += [(f"step_time_b128:{c}", 70 if "compiled" in c else 28, step_case(c, 128)) for c in b128]
    jobs += [(f"fit_{v}", 15, fit_job(v)) for v in (("fp32-eager",) if dry else ("fp32-eager", "bf16-graph"))]
    if not dry:
        jobs += [("step_time_b128:teach", 15, step_case("teach", 128))]
        jobs += [(f"step_time_b1024:{c}", 28, step_case(c, 1024)) for c in ("paper", "paper-bf16-graph")]
        jobs += [("step_time_b128:paper-compiled", 70, step_case("paper-compiled", 128)),
                 ("step_time_b1024:paper-graph", 25, step_case("paper-graph", 1024))]
        if args.compiled_fit:
            jobs += [(f"fit_{v}", 90, fit_job(v)) for v in ("bf16-compiled", "bf16-compiled-graph")]
    for name, need, job in jobs:
        if left() < need:
            result.setdefault("skipped", []).append(name)
            print(f"skipped {name}: {left():.0f} s of the budget left, it needs about {need:.0f} s")
            continue
        try:
            job()
        except Exception:
            result.setdefault("errors", {})[name] = _tail(traceback.format_exc())
        save(name)
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
    save("summary")
    print(f"written {path} in {result['seconds']:.0f} s")


if __name__ == "__main__":
    main()
