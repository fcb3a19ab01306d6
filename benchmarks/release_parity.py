"""Side by side: the authors' release and redcore_lite's `paper` recipe on the same IEMOCAP-format data.

For every difficulty level and seed, an IEMOCAP-format corpus is written with
:mod:`redcore_lite.mmin_corpus` (700 / 150 / 150 utterances, A/V/L 130/342/1024-d frames, four
classes), then each *arm* trains on it in its own process:

  release                the authors' code (github.com/sunjunaimer/RedCore), ``train_miss.py`` with
                         the flags of its ``scripts/CAP_mmin.sh`` (on the CPU: ``--gpu_ids=-1``), run
                         from a temporary copy of the repository; nothing of it is kept here
  lite-release-protocol  redcore_lite ``paper`` preset with the release's protocol switches: masks
                         redrawn every epoch, z sampled at evaluation, padding not masked
  lite                   redcore_lite ``paper`` preset as it is (masks tied to samples, z = mu at
                         evaluation, padding masked)
  lite-redraw, lite-sample-at-eval, lite-no-mask-padding
                         ``lite`` with one of the three release-protocol switches
  lite-torch-init        ``lite`` with PyTorch's default initialisation and Adam beta1 0.5 (the
                         ``paper`` preset before 2026-12-02): the run that collapsed
  lite-torch-init-no-rec the same with ``loss.w_rec = 0`` (no reconstruction loss)

Each run gets one torch thread; ``--workers`` runs go at a time, but only one run of the release:
its memory grows with every training step (its running averages of the reconstruction losses keep
each step's autograd graph alive: about 10 GB after 300 steps of this corpus), so two at once can
exhaust a 24 GB machine. Every finished run is added to ``--out`` (JSON, rewritten atomically) and
leaves its record in ``--work``, so a killed benchmark restarted with the same command skips what
is done. The report (``--out`` with ``.md``) has, per corpus, the per-pattern test
accuracy (WA), UA and macro-F1 of every arm (mean and SD over seeds), the release's range over
seeds and whether redcore_lite's mean lies in it, the best epoch, and the training time per step.

The release's own code needs ``pytorch_warmup`` (``pip install pytorch-warmup``) and imports
``torchvision.transforms`` for image transforms that the IEMOCAP path never calls; where
torchvision is not importable (the CPU wheel of torch here has no matching torchvision), the
launcher puts a stand-in module on the release's path that raises if anything of it is used.

Usage::

    python benchmarks/release_parity.py --release /path/to/RedCore [--levels medium hard asymmetric]
        [--seeds 0 1 2] [--arms release lite-release-protocol lite] [--epochs 60] [--workers 2]
        [--work /tmp/parity] [--out benchmarks/results/release_parity.json]

``--release`` is a checkout of the authors' repository (its root or its ``RedCore/`` folder) or
a bare git directory of it (read with ``git archive``).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from redcore_lite._files import atomic_write_text, dump_json  # noqa: E402
from redcore_lite.config import RELEASE_PROTOCOL  # noqa: E402
from redcore_lite.mmin_corpus import LEVELS  # noqa: E402

ARMS = ("release", "lite-release-protocol", "lite", "lite-redraw", "lite-sample-at-eval",
        "lite-no-mask-padding", "lite-torch-init", "lite-torch-init-no-rec")
LITE_ARMS = {  # arm -> config sections changed from the paper preset
    "lite-release-protocol": RELEASE_PROTOCOL,
    "lite": {},
    # one switch of the release protocol at a time: which of its defects costs what
    "lite-redraw": {"mask": {"redraw_each_epoch": True}},
    "lite-sample-at-eval": {"model": {"sample_at_eval": True}},
    "lite-no-mask-padding": {"model": {"mask_padding": False}},
    "lite-torch-init": {"model": {"init": "torch"}, "train": {"adam_beta1": 0.5}},
    "lite-torch-init-no-rec": {"model": {"init": "torch"}, "train": {"adam_beta1": 0.5},
                               "loss": {"w_rec": 0.0}},
}
PATTERNS = ("A", "V", "L", "AV", "AL", "VL", "AVL", "overall")
# the release's result files: pattern -> result_<name>.tsv (z = the modality is missing)
RELEASE_FILES = {"A": "azz", "V": "zvz", "L": "zzl", "AV": "avz", "AL": "azl", "VL": "zvl",
                 "AVL": "avl", "overall": "total"}
RATES = (0.2, 0.5, 0.8)  # A, V, L: the release's default rate_indx=1


def release_flags(name: str, epochs: int) -> list[str]:
    """The flags of the release's scripts/CAP_mmin.sh, on the CPU, with ``epochs`` split 1:1."""
    half = epochs // 2
    return [
        "--dataset_mode=multimodal_miss", "--model=redcore_mmin", "--log_dir=./logs/redcore",
        "--checkpoints_dir=./checkpoints", "--gpu_ids=-1",
        "--A_type=comparE", "--input_dim_a=130", "--norm_method=trn", "--embd_size_a=128",
        "--embd_method_a=maxpool", "--V_type=denseface", "--input_dim_v=342", "--embd_size_v=128",
        "--embd_method_v=maxpool", "--L_type=bert_large", "--input_dim_l=1024", "--embd_size_l=128",
        "--AE_layers=256,128,64", "--n_blocks=5", "--num_thread=0", "--corpus=IEMOCAP",
        "--pretrained_path=checkpoints/CAP_utt_fusion_AVL_run1",
        "--ce_weight=1.0", "--mse_weight=4.0", "--cycle_weight=2.0",
        "--output_dim=4", "--cls_layers=128,128", "--dropout_rate=0.5",
        f"--niter={half}", f"--niter_decay={epochs - half}", "--verbose", "--print_freq=10",
        "--in_mem", "--batch_size=128", "--lr=2e-4", "--run_idx=1", "--weight_decay=1e-5",
        f"--name={name}", "--suffix=block_{n_blocks}_run{run_idx}", "--has_test",
        "--record_folder=result_visualization/redcore0", "--cvNo=1", "--etabetaind=0",
    ]


_LAUNCHER = r'''
"""Runs the release's train_miss.py with seeds set and its training step timed (written by
redcore_lite's benchmarks/release_parity.py; nothing of the release is changed)."""
import json, os, random, runpy, sys, time, types
release, seed, threads, times_path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
flags = sys.argv[5:]
os.chdir(release)
sys.path.insert(0, release)
import numpy as np
import torch
torch.set_num_threads(threads)
random.seed(seed); np.random.seed(seed); torch.manual_seed(seed)
try:
    import torchvision.transforms  # noqa: F401
except Exception:  # imported by data/base_dataset.py for image transforms IEMOCAP never uses
    def _unused(name):
        raise AttributeError(f"torchvision.transforms.{name}: a stand-in here (the release used it)")
    tv = types.ModuleType("torchvision"); tr = types.ModuleType("torchvision.transforms")
    tr.__getattr__ = _unused
    tv.transforms = tr
    sys.modules["torchvision"], sys.modules["torchvision.transforms"] = tv, tr
import models.redcore_mmin_model as rm
step_times = []
_optimize = rm.redcoreMMINModel.optimize_parameters
def _timed(self, epoch):
    start = time.perf_counter()
    _optimize(self, epoch)
    step_times.append(time.perf_counter() - start)
rm.redcoreMMINModel.optimize_parameters = _timed
sys.argv = ["train_miss.py", *flags]
try:
    runpy.run_path("train_miss.py", run_name="__main__")
finally:
    with open(times_path, "w") as f:
        json.dump(step_times, f)
'''


def _release_tree(release: Path, dest: Path) -> Path:
    """Copy the release's ``RedCore/`` folder to ``dest``; return the copy's path."""
    for cand in (release / "RedCore", release):
        if (cand / "train_miss.py").is_file():
            shutil.copytree(cand, dest / "RedCore", ignore=shutil.ignore_patterns(".git"))
            return dest / "RedCore"
    if (release / "HEAD").is_file():  # a bare git directory
        archive = subprocess.run(["git", f"--git-dir={release}", "archive", "HEAD", "RedCore"],
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
        return dest / "RedCore"
    raise ValueError(f"--release: {str(release)!r} holds neither RedCore/train_miss.py nor a git "
                     "directory; allowed: a checkout (or bare git directory) of sunjunaimer/RedCore")


def _parse_release(tree: Path, name: str) -> dict[str, Any]:
    """Per-pattern test metrics, best epoch and validation F1 per epoch from the release's files."""
    results = next((tree / "logs" / "redcore").glob(f"{name}*/results"))
    test = {}
    for pattern, stem in RELEASE_FILES.items():
        lines = (results / f"result_{stem}.tsv").read_text().splitlines()
        acc, uar, f1 = (float(v) for v in lines[1].split("\t"))  # row 1: cvNo 1
        test[pattern] = {"wa": acc, "ua": uar, "f1": f1}
    log = next((tree / "logs" / "redcore").glob(f"{name}*/1/*.log")).read_text()
    val_f1, best = [], None
    for line in log.splitlines():
        if "Val result of epoch" in line:
            val_f1.append(float(line.rsplit("f1", 1)[1]))
        if "Best eval epoch" in line:
            best = int(line.split("Best eval epoch")[1].split()[0]) - 1  # 0-based, as redcore_lite
    return {"test": test, "best_epoch": best, "val_f1": val_f1}


def run_release(release: Path, corpus: dict, seed: int, epochs: int, log: Path) -> dict[str, Any]:
    """Train the release on ``corpus`` in a temporary copy; return its record."""
    with tempfile.TemporaryDirectory(prefix="redcore_release_") as tmp:
        tree = _release_tree(release, Path(tmp))
        (tree / "data" / "config" / "IEMOCAP_config.json").write_text(json.dumps({
            "data_root": corpus["root"], "target_root": corpus["target_root"], "total_cv": 10,
            "feature_root": corpus["root"]}))
        launcher, times = Path(tmp) / "launch.py", Path(tmp) / "step_times.json"
        launcher.write_text(_LAUNCHER)
        name = f"parity_seed{seed}"
        start = time.perf_counter()
        with open(log, "w") as out:
            proc = subprocess.run([sys.executable, str(launcher), str(tree), str(seed), "1",
                                   str(times), *release_flags(name, epochs)],
                                  stdout=out, stderr=subprocess.STDOUT)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            raise RuntimeError(f"the release exited with {proc.returncode}; see {log}")
        steps = json.loads(times.read_text())
        record = _parse_release(tree, name)
    return {**record, "seconds": wall, "steps": len(steps),
            "ms_per_step": 1000 * sum(steps) / max(1, len(steps))}


def run_lite(arm: str, corpus: dict, seed: int, epochs: int) -> dict[str, Any]:
    """Train redcore_lite's ``paper`` preset (changed as ``arm`` says) on ``corpus``."""
    import torch

    import redcore_lite as rc
    from redcore_lite import step as rc_step  # EagerStep calls step.train_step once per step
    from redcore_lite.datasets import load_mmin

    torch.set_num_threads(1)
    splits = load_mmin(corpus["root"], target_root=corpus["target_root"])
    half = epochs // 2
    sections = {k: dict(v) for k, v in LITE_ARMS[arm].items()}
    sections["train"] = {**sections.get("train", {}), "device": "cpu", "seed": seed,
                         "epochs_constant": half, "epochs_decay": epochs - half}
    sections["mask"] = {**sections.get("mask", {}), "rates": RATES}
    # the CPU speed paths, as when the committed results were computed (before model.cpu_speedups
    # existed they were always on); an arm may still turn them off
    sections["model"] = {"cpu_speedups": True, **sections.get("model", {})}
    config = rc.override(rc.preset("paper"), **sections)
    steps: list[float] = []
    step = rc_step.train_step

    def timed(*args, **kwargs):
        t0 = time.perf_counter()
        out = step(*args, **kwargs)
        steps.append(time.perf_counter() - t0)
        return out

    rc_step.train_step = timed
    try:
        start = time.perf_counter()
        result = rc.fit(config, splits)
        wall = time.perf_counter() - start
    finally:
        rc_step.train_step = step
    test = result.test.set_index("pattern")
    hist = result.history.groupby("epoch")
    mods = result.modalities
    return {
        "test": {p: {k: float(test.loc[p, k]) for k in ("wa", "ua", "f1")} for p in PATTERNS},
        "best_epoch": result.best_epoch, "val_f1": result.epochs["val_f1"].tolist(),
        "spread": {m: result.epochs[f"spread_{m}"].tolist() for m in mods},
        "post_sd": {m: result.epochs[f"post_sd_{m}"].tolist() for m in mods},
        "rec": {m: hist[f"rec_{m}"].mean().tolist() for m in mods},
        "ce_fused": hist["ce_fused"].mean().tolist(), "warnings": result.warnings,
        "seconds": wall, "steps": len(steps), "ms_per_step": 1000 * sum(steps) / max(1, len(steps)),
    }


def _corpus(work: Path, level: str, seed: int) -> dict:
    from redcore_lite.mmin_corpus import corpus_spec, write_mmin_corpus

    root = work / f"corpus_{level}_seed{seed}"
    done = root / "written.json"
    if not done.is_file():
        info = write_mmin_corpus(root, corpus_spec(level, seed=seed))
        done.write_text(json.dumps({k: info[k] for k in ("root", "target_root", "fold")}))
    return json.loads(done.read_text())


def probe(corpus: dict) -> dict[str, float]:
    """Test accuracy of a logistic-regression probe on each modality's mean-pooled frames, and on
    all three concatenated (how hard the corpus is, independent of either implementation)."""
    import numpy as np
    import torch
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from redcore_lite.datasets import load_mmin

    splits = load_mmin(corpus["root"], target_root=corpus["target_root"])

    def pooled(data, mods):
        cols = []
        for m in mods:
            x, ln = data.features[m], data.lengths[m]
            w = (torch.arange(x.shape[1]) < ln[:, None]).float()[..., None]
            cols.append(((x * w).sum(1) / w.sum(1)).numpy())
        return np.concatenate(cols, 1)

    out = {}
    for name, mods in [(m, [m]) for m in splits.modalities] + [("AVL", list(splits.modalities))]:
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
        clf.fit(pooled(splits.train, mods), splits.train.labels.numpy())
        out[name] = float(clf.score(pooled(splits.test, mods), splits.test.labels.numpy()))
    return out


def _one(args: argparse.Namespace) -> int:
    """A single run (the subprocess the orchestrator starts)."""
    corpus = json.loads(args.corpus)
    if args.arm == "release":
        record = run_release(Path(args.release), corpus, args.seed, args.epochs, Path(args.log))
    else:
        record = run_lite(args.arm, corpus, args.seed, args.epochs)
    dump_json(args.record, record)
    return 0


def _key(arm: str, level: str, seed: int, epochs: int) -> str:
    return f"{arm}|{level}|{seed}|{epochs}"


def _stats(values: list[float]) -> dict[str, float]:
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else float("nan")
    return {"n": n, "mean": mean, "sd": sd, "min": min(values), "max": max(values)}


def welch(a: dict[str, float], b: dict[str, float], confidence: float = 0.95) -> dict[str, float]:
    """Difference of means ``a - b`` with a Welch t-interval, from :func:`_stats` summaries."""
    from scipy import stats

    diff = a["mean"] - b["mean"]
    va, vb = a["sd"] ** 2 / a["n"], b["sd"] ** 2 / b["n"]
    if a["n"] < 2 or b["n"] < 2 or va + vb == 0:
        return {"diff": diff, "ci_low": float("nan"), "ci_high": float("nan")}
    dof = (va + vb) ** 2 / (va ** 2 / (a["n"] - 1) + vb ** 2 / (b["n"] - 1))
    half = float(stats.t.ppf((1 + confidence) / 2, dof)) * math.sqrt(va + vb)
    return {"diff": diff, "ci_low": diff - half, "ci_high": diff + half}


def paired(runs: dict[str, dict], arms: list[str], confidence: float = 0.95) -> dict[str, Any]:
    """Every lite arm minus the release, paired by corpus (level and seed: the same files), over
    all corpora on record: per pattern, the mean test macro-F1 difference and a t-interval."""
    from scipy import stats

    out: dict[str, Any] = {}
    for arm in arms:
        if arm == "release":
            continue
        pairs = [(r, runs[_key("release", *k.split("|")[1:])]) for k, r in runs.items()
                 if k.startswith(arm + "|") and _key("release", *k.split("|")[1:]) in runs]
        if len(pairs) < 2:
            continue
        row = {}
        for p in PATTERNS:
            d = [a["test"][p]["f1"] - b["test"][p]["f1"] for a, b in pairs]
            st = _stats(d)
            half = float(stats.t.ppf((1 + confidence) / 2, st["n"] - 1)) * st["sd"] / math.sqrt(st["n"])
            row[p] = {"n": st["n"], "diff": st["mean"], "ci_low": st["mean"] - half,
                      "ci_high": st["mean"] + half}
        out[arm] = row
    return out


def summarise(runs: dict[str, dict], levels: list[str], arms: list[str]) -> dict[str, Any]:
    """Per level, arm, pattern and metric: mean, SD, min, max over seeds; for every lite arm,
    whether its mean lies within the release's range over seeds, and its mean minus the
    release's with a 95% Welch interval."""
    out: dict[str, Any] = {}
    for level in levels:
        table: dict[str, Any] = {}
        for arm in arms:
            recs = [r for k, r in runs.items() if k.split("|")[:2] == [arm, level]]
            if not recs:
                continue
            table[arm] = {
                "seeds": sorted(int(k.split("|")[2]) for k in runs if k.split("|")[:2] == [arm, level]),
                "patterns": {p: {m: _stats([r["test"][p][m] for r in recs]) for m in ("wa", "ua", "f1")}
                             for p in PATTERNS},
                "best_epoch": _stats([r["best_epoch"] for r in recs]),
                "ms_per_step": _stats([r["ms_per_step"] for r in recs]),
                "collapse_warnings": sum(bool(r.get("warnings")) for r in recs),
            }
        if "release" in table:
            ref = table["release"]["patterns"]
            for arm, row in table.items():
                if arm == "release":
                    continue
                row["in_release_range"] = {
                    p: {m: ref[p][m]["min"] <= row["patterns"][p][m]["mean"] <= ref[p][m]["max"]
                        for m in ("wa", "ua", "f1")} for p in PATTERNS}
                row["minus_release"] = {p: {m: welch(row["patterns"][p][m], ref[p][m])
                                            for m in ("wa", "ua", "f1")} for p in PATTERNS}
        out[level] = table
    return out


def report(summary: dict[str, Any], probes: dict[str, dict], meta: dict[str, Any],
           pairs: dict[str, Any] | None = None) -> str:
    """The markdown report."""
    lines = ["# Release parity: the authors' code and redcore_lite on IEMOCAP-format corpora", "",
             f"Written by `{meta['command']}` on {meta['when']} ({meta['machine']}, torch "
             f"{meta['torch']}, {meta['epochs']} epochs, rates A/V/L = {'/'.join(map(str, RATES))}). "
             "Each cell: test metric over the 7 availability patterns and pooled (`overall`), "
             "mean ± SD over seeds. *In range*: redcore_lite's mean lies within the release's "
             "[min, max] over the same seeds (✓) or not (✗).", ""]
    for level, table in summary.items():
        pr = probes.get(level, {})
        lines += [f"## Corpus `{level}`", "",
                  "Linear probe on mean-pooled frames (test accuracy, seed 0): "
                  + ", ".join(f"{k} {pr[k]:.3f}" for k in ("A", "V", "L", "AVL") if k in pr), ""]
        for metric, label in (("f1", "macro-F1"), ("wa", "accuracy (WA)"), ("ua", "UA")):
            lines += [f"**Test {label}**", "",
                      "| arm | seeds | " + " | ".join(PATTERNS) + " |",
                      "|---|---|" + "---|" * len(PATTERNS)]
            for arm, row in table.items():
                cells = []
                for p in PATTERNS:
                    st = row["patterns"][p][metric]
                    mark = ""
                    if "in_release_range" in row:
                        mark = " ✓" if row["in_release_range"][p][metric] else " ✗"
                    cells.append(f"{st['mean']:.3f} ± {st['sd']:.3f}{mark}")
                lines.append(f"| {arm} | {len(row['seeds'])} | " + " | ".join(cells) + " |")
            lines.append("")
        diffs = [(arm, row) for arm, row in table.items() if "minus_release" in row]
        if diffs:
            lines += ["**Test macro-F1 minus the release's** (mean over seeds, 95% Welch interval; "
                      "* = the interval excludes 0)", "",
                      "| arm | " + " | ".join(PATTERNS) + " |", "|---|" + "---|" * len(PATTERNS)]
            for arm, row in diffs:
                cells = []
                for p in PATTERNS:
                    d = row["minus_release"][p]["f1"]
                    star = "*" if d["ci_low"] > 0 or d["ci_high"] < 0 else ""
                    cells.append(f"{d['diff']:+.3f}{star} [{d['ci_low']:+.2f}, {d['ci_high']:+.2f}]")
                lines.append(f"| {arm} | " + " | ".join(cells) + " |")
            lines.append("")
        lines += ["| arm | best epoch (0-based), mean [min, max] | train ms / step (1 thread) | "
                  "runs with a collapse warning |", "|---|---|---|---|"]
        for arm, row in table.items():
            be, ms = row["best_epoch"], row["ms_per_step"]
            lines.append(f"| {arm} | {be['mean']:.1f} [{be['min']:.0f}, {be['max']:.0f}] | "
                         f"{ms['mean']:.0f} | {row['collapse_warnings']} |")
        lines.append("")
    if pairs:
        n = next(iter(pairs.values()))["overall"]["n"]
        lines += ["## Every corpus together, paired", "",
                  f"Test macro-F1 minus the release's, paired by corpus (the same files and seed; "
                  f"n = {n} corpora), mean and 95% t-interval; * = the interval excludes 0.", "",
                  "| arm | " + " | ".join(PATTERNS) + " |", "|---|" + "---|" * len(PATTERNS)]
        for arm, row in pairs.items():
            cells = [f"{row[p]['diff']:+.3f}{'*' if row[p]['ci_low'] > 0 or row[p]['ci_high'] < 0 else ''}"
                     f" [{row[p]['ci_low']:+.3f}, {row[p]['ci_high']:+.3f}]" for p in PATTERNS]
            lines.append(f"| {arm} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--release", help="checkout or bare git directory of sunjunaimer/RedCore")
    p.add_argument("--levels", nargs="+", default=["medium", "hard", "asymmetric"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--arms", nargs="+", default=["release", "lite-release-protocol", "lite"],
                   choices=ARMS)
    p.add_argument("--epochs", type=int, default=60, help="total epochs, half constant (release 60)")
    p.add_argument("--workers", type=int, default=2, help="runs at a time (one thread each)")
    p.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "redcore_parity"),
                   help="folder for the corpora and run logs")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "release_parity.json")
    p.add_argument("--report-only", action="store_true",
                   help="recompute the summary and report from --out without running anything")
    p.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # a single run (internal)
    p.add_argument("--arm", help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, help=argparse.SUPPRESS)
    p.add_argument("--corpus", help=argparse.SUPPRESS)
    p.add_argument("--record", help=argparse.SUPPRESS)
    p.add_argument("--log", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one:
        return _one(args)
    if args.report_only:
        state = json.loads(args.out.read_text())
        return _write_report(state, args.out, state.get("meta", {}))
    if "release" in args.arms and not args.release:
        p.error("--release is needed for the release arm (a checkout of sunjunaimer/RedCore)")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    state = json.loads(args.out.read_text()) if args.out.is_file() else {"runs": {}, "probes": {}}
    corpora = {(lv, s): _corpus(work, lv, s) for lv in args.levels for s in args.seeds}
    for lv in args.levels:
        if lv not in state["probes"]:
            state["probes"][lv] = probe(corpora[lv, args.seeds[0]])
    todo = [(arm, lv, s) for lv in args.levels for s in args.seeds for arm in args.arms
            if _key(arm, lv, s, args.epochs) not in state["runs"]]
    print(f"{len(todo)} runs to do ({len(state['runs'])} recorded in {args.out})", flush=True)

    one_release = threading.Semaphore(1)

    def launch(job: tuple[str, str, int]) -> tuple[tuple[str, str, int], dict | str]:
        arm, lv, s = job
        stem = work / f"{arm}_{lv}_seed{s}_e{args.epochs}"
        if Path(f"{stem}.json").is_file():  # finished by an earlier, interrupted invocation
            return job, json.loads(Path(f"{stem}.json").read_text())
        if arm == "release":  # one at a time: the release's memory grows with every step
            with one_release:
                return _run_job(job, stem)
        return _run_job(job, stem)

    def _run_job(job: tuple[str, str, int], stem: Path) -> tuple[tuple[str, str, int], dict | str]:
        arm, lv, s = job
        cmd = [sys.executable, __file__, "--one", "--arm", arm, "--seed", str(s),
               "--epochs", str(args.epochs), "--corpus", json.dumps(corpora[lv, s]),
               "--record", f"{stem}.json", "--log", f"{stem}.release.log",
               "--release", str(args.release or "")]
        with open(f"{stem}.log", "w") as log:
            proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT)
        if proc.returncode != 0:
            return job, f"exit {proc.returncode}; see {stem}.log"
        return job, json.loads(Path(f"{stem}.json").read_text())

    meta = {"command": "python benchmarks/release_parity.py " + " ".join(sys.argv[1:]),
            "when": time.strftime("%Y-%m-%d %H:%M"), "machine": f"{platform.machine()}, "
            f"{os.cpu_count()} CPUs", "torch": __import__("torch").__version__,
            "epochs": args.epochs, "python": platform.python_version()}
    with ThreadPoolExecutor(max_workers=max(1, args.workers)) as pool:
        for (arm, lv, s), rec in pool.map(launch, todo):
            if isinstance(rec, str):
                print(f"{arm} {lv} seed {s}: FAILED ({rec})", flush=True)
                continue
            state["runs"][_key(arm, lv, s, args.epochs)] = rec
            state["meta"] = meta
            dump_json(args.out, state)
            print(f"{arm} {lv} seed {s}: test F1 {rec['test']['overall']['f1']:.3f} "
                  f"(best epoch {rec['best_epoch']}, {rec['ms_per_step']:.0f} ms/step, "
                  f"{rec['seconds']:.0f} s)", flush=True)
    return _write_report(state, args.out, meta)


def _write_report(state: dict[str, Any], out: Path, meta: dict[str, Any]) -> int:
    """Summarise every run on record (at the epochs of ``meta``) into ``out`` and its ``.md``."""
    epochs = meta.get("epochs", 60)
    runs = {k: v for k, v in state["runs"].items() if int(k.split("|")[3]) == epochs}
    arms = [a for a in ARMS if any(k.startswith(a + "|") for k in runs)]
    levels = [lv for lv in LEVELS if any(k.split("|")[1] == lv for k in runs)]  # every level on record
    state["summary"] = summarise(runs, levels, arms)
    state["paired"] = paired(runs, arms)
    state["meta"] = meta
    dump_json(out, state)
    atomic_write_text(out.with_suffix(".md"), report(state["summary"], state["probes"], meta,
                                                     state["paired"]))
    print(f"wrote {out} and {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
