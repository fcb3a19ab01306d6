"""A/B speed of two checkouts of redcore_lite, alternated in one run (for "no loss of speed").

Each round runs, for checkout A then B (B then A on odd rounds), one child process per part:
``step``: CPU seconds of single `paper` steps (IEMOCAP-shaped batches, B = 128, as
benchmarks/step_time.py builds them) and of the release's step (benchmarks/release_reference.py,
the same code in both checkouts: its ratio shows the measurement's noise), min and median of 8
steps after 2 warm-up steps; ``teach``: CPU seconds of one `teach` fit on mfeat and on synthetic
data, the fastest of 3. One torch thread everywhere. CPU time (``time.process_time``), not wall
time, so that other work on a shared machine inflates the numbers less; the ratios B / A of the
medians over rounds are printed.

Usage:  python benchmarks/ab_time.py --a /path/to/main --b . [--rounds 6] [--out FILE.json]
(each checkout needs benchmarks/step_time.py and benchmarks/release_reference.py.)
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path


def child(root: str, what: str) -> dict[str, float]:
    sys.path[:0] = [root, os.path.join(root, "benchmarks")]
    import torch

    torch.set_num_threads(1)
    import redcore_lite as rc

    if not rc.__file__.startswith(str(Path(root).resolve())):
        raise RuntimeError(f"imported {rc.__file__}, not the checkout {root}")
    out: dict[str, float] = {}
    if what == "step":
        import step_time
        from release_reference import ReleaseStep

        dev, gen = torch.device("cpu"), torch.Generator().manual_seed(0)
        torch.manual_seed(0)
        data = [step_time._batch(dev, gen, 128) for _ in range(2)]
        rel = ReleaseStep(step_time.DIMS, 4, device=dev)
        turn = iter(range(1 << 62))

        def release() -> None:
            xs, _, avail, y = data[next(turn) % 2]
            rel(xs[0], xs[1], xs[2], avail.long(), y)

        # the CPU speed paths on (a checkout before model.cpu_speedups had them always on)
        fast = getattr(step_time, "CPU_FAST", "paper")
        for case, step in (("paper", step_time.paper_step(fast, dev, data)), ("release", release)):
            for _ in range(2):
                step()
            times = []
            for _ in range(8):
                t0 = time.process_time()
                step()
                times.append(time.process_time() - t0)
            times.sort()
            out[f"{case}_step_cpu_ms_min"] = times[0] * 1000
            out[f"{case}_step_cpu_ms_median"] = times[len(times) // 2] * 1000
    else:
        import warnings

        warnings.simplefilter("ignore")
        for ds in ("mfeat", "synthetic"):
            cfg = rc.override(rc.preset("teach"), data={"name": ds}, train={"device": "cpu"})
            splits = rc.load_data(cfg.data, seed=0)
            times = []
            for _ in range(3):
                t0 = time.process_time()
                rc.fit(cfg, splits)
                times.append(time.process_time() - t0)
            out[f"teach_{ds}_cpu_s_min"] = min(times)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", help="checkout A (e.g. main); required")
    ap.add_argument("--b", default=str(Path(__file__).resolve().parent.parent), help="checkout B")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--out", default=None, help="JSON of every measurement")
    ap.add_argument("--child", nargs=2, metavar=("ROOT", "PART"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return
    if args.a is None:
        ap.error("the following arguments are required: --a")
    roots = {"A": str(Path(args.a).resolve()), "B": str(Path(args.b).resolve())}
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    res: dict[str, dict[str, list[float]]] = {"A": {}, "B": {}}
    for r in range(args.rounds):
        for name in ("A", "B") if r % 2 == 0 else ("B", "A"):
            for part in ("step", "teach"):
                proc = subprocess.run([sys.executable, __file__, "--child", roots[name], part],
                                      capture_output=True, text=True, check=True, env=env, cwd="/")
                for k, v in json.loads(proc.stdout.strip().splitlines()[-1]).items():
                    res[name].setdefault(k, []).append(v)
        print(f"round {r + 1}/{args.rounds} done", flush=True)
    print(f"A = {roots['A']}\nB = {roots['B']}\nmedian over {args.rounds} rounds:")
    for key in res["A"]:
        a, b = statistics.median(res["A"][key]), statistics.median(res["B"][key])
        print(f"  {key:28s} A {a:9.3f}  B {b:9.3f}  B/A {b / a:.3f}")
    if args.out:
        Path(args.out).write_text(json.dumps({"roots": roots, "results": res}, indent=1) + "\n")


if __name__ == "__main__":
    main()
