"""Ablation sweeps: variant x missing-rate setting x seed through :func:`fit`, a tidy results file
that survives interruption, and paired statistics of every variant against RedCore.

The runner lives here; the grid (variants, settings) in :mod:`redcore_lite.grid`, the statistics
in :mod:`redcore_lite.stats` and the report in :mod:`redcore_lite.report`, each also reachable
here (``rc.sweep.VARIANTS``, ``rc.sweep.paired_differences``, ``rc.sweep.report``).

Runs with the same seed share the split, the training mask and the initialisation of every
sub-network they have, so ``RedCore - variant`` per seed is a paired difference.
The results file (CSV, columns :data:`COLUMNS`) gets each finished run's rows in one append
(write, flush, fsync; a failed append is cut back off). On resume a truncated last line and runs
with missing rows are dropped, a run written twice keeps its first copy, finished runs are
skipped. A JSON manifest next to it keeps the base config and, per session, the command, grid,
versions (package, git, torch), wall time and CPU time.

One sweep at a time per results file: :func:`run_sweep` holds an exclusive lock
(``fcntl.flock`` on ``.NAME.csv.lock`` next to the CSV) from before it reads the file until its
last rewrite. A second sweep on the same file stops at once with a
:class:`~redcore_lite._files.LockedError` naming the file and the holder's pid (``wait=True``:
it waits, then skips the runs the first one finished), so nothing is appended twice and no
manifest session is lost. The lock dies with its holder (``kill -9`` included). The lock and
every write follow symlinks: ``l.csv -> s.csv`` is the file ``s.csv``, with its lock and manifest.

``overwrite=True`` starts the grid afresh without losing the old results first: the new runs go
to ``.NAME.overwrite.csv`` (and its manifest) next to the file, which replace the file and its
manifest only once every run is done; an interrupted overwrite is resumed by the same call.

Worker processes never see SIGINT (they are started with it blocked, then ignore it): a Ctrl-C
reaches the sweep only, which stops the workers (SIGTERM) and raises one KeyboardInterrupt.
"""
from __future__ import annotations

import contextlib
import io
import multiprocessing
import os
import platform
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ._files import (atomic_write_text, dump_json, exclusive, lock_path, read_json, readable_file,
                     real_path, replace_files)
from .config import Config, check_config, config_from_dict, config_to_dict, override
from .grid import BASELINE, DEFAULT_SETTINGS, METRICS, SETTING_GROUPS, SETTINGS, VARIANTS, _order
from .report import report, report_paths
from .stats import WORST, holm, mean_ci, paired_differences, paired_p, seed_differences, with_worst

__all__ = ["VARIANTS", "SETTINGS", "DEFAULT_SETTINGS", "SETTING_GROUPS", "BASELINE", "COLUMNS",
           "run_config", "run_sweep", "load_table", "tidy", "mean_ci", "seed_differences", "WORST",
           "with_worst", "holm", "paired_p",
           "paired_differences", "report", "report_paths", "overwrite_path", "WorkerDied"]


class WorkerDied(RuntimeError):
    """A worker process of :func:`run_sweep` died (killed, out of memory); finished runs are kept."""


COLUMNS = ["variant", "setting", "rates", "seed", "split", "pattern", "metric", "value"]
FORMAT = "redcore_lite.sweep/1"


def _check_names(names: Iterable[str], registry: dict[str, Any], arg: str) -> list[str]:
    names = list(names)
    bad = [n for n in names if n not in registry]
    if bad or not names:
        raise ValueError(f"{arg}: got {bad or names}; allowed: a non-empty list of "
                         + ", ".join(registry))
    return names


def run_config(base: Config, variant: str, setting: str, seed: int) -> Config:
    """``base`` with the setting's missing rates, the seed, then the variant's switch."""
    _check_names([variant], VARIANTS, "variant")
    _check_names([setting], SETTINGS, "setting")
    cfg = override(base, mask={"rates": SETTINGS[setting]}, train={"seed": int(seed)})
    return override(cfg, **VARIANTS[variant]) if VARIANTS[variant] else cfg


def _run(base: Config, key: tuple[str, str, int]) -> tuple[tuple[str, str, int], str, float]:
    """Worker: train one run; its tidy rows as CSV text (no header) and the CPU seconds it took."""
    from .trainer import fit

    variant, setting, seed = key
    cpu = time.process_time()
    result = fit(run_config(base, variant, setting, seed))
    rates = "/".join(f"{r:g}" for r in SETTINGS[setting])
    lines = []
    for split, frame in (("val", result.val), ("test", result.test)):
        for row in frame.itertuples(index=False):
            for m in METRICS:
                lines.append(f"{variant},{setting},{rates},{seed},{split},{row.pattern},{m},"
                             f"{getattr(row, m):.4f}\n")
    return key, "".join(lines), time.process_time() - cpu


def tidy(result: Any, variant: str, setting: str, seed: int) -> pd.DataFrame:
    """One finished run's val and test tables as rows of :data:`COLUMNS` (as :func:`run_sweep`
    writes them, values rounded to 4 decimals), so that
    :func:`~redcore_lite.stats.paired_differences` also serves runs trained by hand, e.g. on your
    own data.

    Args:
        result: a :class:`~redcore_lite.trainer.Result`; variant, setting, seed: its labels.
    """
    kind = result.extra.get("mask", {}).get("kind", "simulated")
    rates = ("/".join(f"{r:g}" for r in result.config.mask.rates) if kind.endswith("simulated")
             else kind)
    rows = [(variant, setting, rates, int(seed), split, row.pattern, m,
             round(float(getattr(row, m)), 4))
            for split, frame in (("val", result.val), ("test", result.test))
            for row in frame.itertuples(index=False) for m in METRICS]
    return pd.DataFrame(rows, columns=COLUMNS)


def _init_worker(parent: int) -> None:
    """One torch thread, SIGINT ignored; exit when the parent dies (a killed sweep leaves no
    idle workers)."""
    import signal
    import threading

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    torch.set_num_threads(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C is for the sweep, which stops us
    threading.Thread(target=watch, daemon=True).start()


@contextlib.contextmanager
def _sigint_blocked_for_children() -> Iterator[None]:
    """While worker processes are started: SIGINT blocked in this thread, so that the workers
    inherit the blocked signal (the mask survives fork and exec) and a Ctrl-C never reaches
    them, even while they start. This process still gets it: another thread takes it, or it is
    delivered here when the block ends, and raises KeyboardInterrupt as usual."""
    import signal
    import threading

    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        yield
        return
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()  # starting it unblocks SIGINT here: start it before
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def _stop(procs: list[Any]) -> None:
    """End the worker processes (SIGTERM; they print nothing) and wait for them briefly."""
    for proc in procs:
        with contextlib.suppress(Exception):
            proc.terminate()
    for proc in procs:
        with contextlib.suppress(Exception):
            proc.join(5)


def load_table(path: str | os.PathLike, repair: bool = False) -> pd.DataFrame:
    """The tidy results of finished runs; a truncated last line and incomplete runs are dropped.

    Args:
        repair: also rewrite the file (atomically) without the dropped rows.
    Returns:
        DataFrame with :data:`COLUMNS` (``seed`` int, ``value`` float).
    """
    path = readable_file(path, "path", "a CSV written by run_sweep")
    allowed = f"a CSV written by run_sweep (header {','.join(COLUMNS)})"
    try:
        text = path.read_text(encoding="utf-8")
        complete = text[:text.rfind("\n") + 1]
        table = pd.read_csv(io.StringIO(complete), dtype={"rates": str, "pattern": str})
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise ValueError(f"path: {str(path)!r} cannot be read as a table ({type(err).__name__}: "
                         f"{' '.join(str(err).split())[:120]}); allowed: {allowed}") from None
    if list(table.columns) != COLUMNS:
        raise ValueError(f"path: {str(path)!r} has columns {list(table.columns)}; "
                         f"allowed: {COLUMNS}")
    table = _checked(table, path, complete)
    read = len(table)
    keys = ["variant", "setting", "seed"]
    # a run appended twice (two sweeps on one file before the lock existed): its first copy
    table = table[~table.duplicated(keys + ["split", "pattern", "metric"])]
    counts = table.groupby(keys)["value"].transform("size")
    # rows per run: 2 splits x (2^M - 1 patterns + overall) x metrics, M = number of rates
    expected = table["rates"].map(lambda r: 2 * 2 ** len(str(r).split("/")) * len(METRICS))
    table = table[counts == expected].reset_index(drop=True)
    if repair and (len(complete) != len(text) or len(table) != read):
        atomic_write_text(path, table.to_csv(index=False, float_format="%.4f"))
    return table


def _checked(table: pd.DataFrame, path: Path, text: str) -> pd.DataFrame:
    """``table`` with ``seed`` as int and ``value`` as float, after checking every row: no empty
    cell, an integer seed, a metric of :data:`METRICS` and a value in [0, 1] (NaN, inf or 5.0
    would silently change the statistics). Raises a ValueError naming the file, the line and
    the column of the first bad cell."""
    lines = [n for n, line in enumerate(text.splitlines(), 1) if line.strip()][1:]  # rows' lines

    def bad(row: int, column: str, got: Any, allowed: str) -> ValueError:
        line = lines[row] if row < len(lines) else row + 2
        return ValueError(f"path: {str(path)!r} line {line}, column {column}: got {got!r}; "
                          f"allowed: {allowed} (fix or delete the line; nothing is dropped "
                          "silently)")

    for column in COLUMNS:
        empty = table[column].isna().to_numpy()
        if column != "value" and empty.any():
            row = int(np.flatnonzero(empty)[0])
            raise bad(row, column, "", "a value in every column")
    seed = pd.to_numeric(table["seed"], errors="coerce")
    wrong = (seed.isna() | (seed != seed.round())).to_numpy()
    if wrong.any():
        row = int(np.flatnonzero(wrong)[0])
        raise bad(row, "seed", table["seed"].iloc[row], "an integer")
    metric = ~table["metric"].isin(METRICS).to_numpy()
    if metric.any():
        row = int(np.flatnonzero(metric)[0])
        raise bad(row, "metric", table["metric"].iloc[row], f"one of {', '.join(METRICS)}")
    value = pd.to_numeric(table["value"], errors="coerce").astype(float)
    wrong = ~((value >= 0) & (value <= 1)).to_numpy()  # NaN and inf fail too
    if wrong.any():
        row = int(np.flatnonzero(wrong)[0])
        got = table["value"].iloc[row]
        got = "" if isinstance(got, float) and np.isnan(got) else got
        raise bad(row, "value", got.item() if isinstance(got, np.generic) else got,
                  f"a number in [0, 1] (the metric {table['metric'].iloc[row]!r})")
    return table.assign(seed=seed.astype(np.int64), value=value)


def _append(path: Path, text: str) -> None:
    """Append one run's rows (unbuffered writes, then fsync); on failure (disk full, a file-size
    limit) cut the file back to its old length, so no partial run is left behind."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        size = os.fstat(fd).st_size  # the lock makes this process the only writer
        try:
            data = memoryview(text.encode("utf-8"))
            while data:
                data = data[os.write(fd, data):]
            os.fsync(fd)
        except OSError as err:
            try:
                os.ftruncate(fd, size)
            except OSError:
                pass
            raise OSError(err.errno, f"cannot append a finished run ({err.strerror}); the file "
                          "holds the runs finished before", str(path)) from err
    finally:
        os.close(fd)


BYTES_PER_RUN = 32 << 10  # a run's share of the in-memory table, plan and manifest (~50 rows)


def _available_memory() -> int | None:
    """Bytes of memory available now (Linux / macOS sysconf), or None where unknown."""
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_grid_size(runs: int, name: str, value: int) -> None:
    """Refuse a grid whose table would not fit in half the memory available now, before
    anything is allocated (``sweep --seeds 100000000`` was a MemoryError after 3 GB)."""
    free = _available_memory()
    if free is not None and runs * BYTES_PER_RUN > free // 2:
        most = max(1, free // 2 // BYTES_PER_RUN)
        raise ValueError(f"{name}: got {value} ({runs} runs); allowed: a grid of at most {most} "
                         f"runs on this machine (each run's results take about "
                         f"{BYTES_PER_RUN >> 10} kB of the {free >> 20} MB available)")


def run_sweep(base: Config, path: str | os.PathLike, variants: Iterable[str] = tuple(VARIANTS),
              settings: Iterable[str] = DEFAULT_SETTINGS, seeds: int | Iterable[int] = 10,
              workers: int = 2, progress: bool = False, command: str | None = None,
              on_run: Callable[[tuple[str, str, int], int], None] | None = None,
              wait: bool = False, backend: str = "local", address: str | None = None,
              overwrite: bool = False) -> pd.DataFrame:
    """Run every (variant, setting, seed) not yet in ``path``; append each run's rows as it ends.

    Args:
        base: the config every run starts from (its ``mask.rates`` and ``train.seed`` are replaced).
        path: the tidy CSV; ``path.with_suffix('.json')`` is the manifest (config, sessions).
        seeds: a count (seeds 0..n-1) or the seeds themselves.
        workers: processes (spawn, one torch thread each); 1 runs in this process.
        command: the command line to record in the manifest.
        on_run: called after each run is written with ``(variant, setting, seed)`` and the number
            of runs finished in this call (a test can raise from it to simulate a kill).
        wait: when another sweep holds ``path``, wait for it to end (then skip the runs it
            finished) instead of raising :class:`~redcore_lite._files.LockedError`.
        backend: ``"local"`` (this machine: ``workers`` processes) or ``"ray"`` (one Ray task per
            run on a Ray cluster, :mod:`redcore_lite.sweep_ray`; same file, resume and table).
        address: with ``backend="ray"``, the cluster to join (default ``RAY_ADDRESS``, else a
            local Ray instance with ``workers`` CPUs).
        overwrite: run the whole grid again into :func:`overwrite_path` and replace ``path`` and
            its manifest with it once every run is done (until then ``path`` is untouched).
    Returns:
        The whole table (sorted canonically and rewritten once every requested run is done).
    """
    check_config(base)
    variants = _check_names(variants, VARIANTS, "variants")
    settings = _check_names(settings, SETTINGS, "settings")
    if isinstance(seeds, bool) or not isinstance(seeds, int) and (
            isinstance(seeds, str) or not all(isinstance(s, (int, np.integer)) for s in seeds)):
        raise ValueError(f"seeds: got {seeds!r}; allowed: a count (int) or a list of integers")
    if isinstance(seeds, int):
        check_grid_size(len(variants) * len(settings) * seeds, "seeds", seeds)
    seeds = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    if not seeds or isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"seeds, workers: got {seeds}, {workers!r}; allowed: >= 1 seed, an "
                         "integer >= 1 of workers")
    if backend not in ("local", "ray"):
        raise ValueError(f"backend: got {backend!r}; allowed: 'local', 'ray'")
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"path: {str(path)!r} is a folder; allowed: a CSV file (new, or "
                         "written by run_sweep)")
    if path.suffix.lower() == ".json":
        raise ValueError(f"path: got {str(path)!r}; allowed: a results file not ending in .json "
                         "(the manifest is written next to it, as PATH.json)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"path: cannot create the folder {str(path.parent)!r} ({err.strerror}); "
                         "allowed: a file in a folder you can write to") from None
    real = real_path(path)  # a symlink or relative path: the file itself (lock, writes, manifest)
    with exclusive(path, lock_path(real), "path", "sweep", wait=wait):
        if not overwrite or not (real.exists() or real.with_suffix(".json").exists()):
            return _sweep_locked(base, real, variants, settings, seeds, workers, progress, command,
                                 on_run, backend, address)
        staged = overwrite_path(real)
        if not _same_base(staged.with_suffix(".json"), base):  # a stale one of another config
            for stale in (staged, staged.with_suffix(".json")):
                stale.unlink(missing_ok=True)
        table = _sweep_locked(base, staged, variants, settings, seeds, workers, progress, command,
                              on_run, backend, address)
        replace_files({real: staged, real.with_suffix(".json"): staged.with_suffix(".json")})
        return table


def overwrite_path(path: str | os.PathLike) -> Path:
    """Where ``run_sweep(overwrite=True)`` puts the new runs until they replace ``path``:
    ``.NAME.overwrite.csv`` next to it (its manifest: ``.NAME.overwrite.json``)."""
    path = Path(path)
    return path.with_name(f".{path.stem}.overwrite{path.suffix}")


def _same_base(manifest: Path, base: Config) -> bool:
    """Whether ``manifest`` exists and holds ``base``."""
    try:
        return config_from_dict(read_json(manifest, "path", "a manifest")["config"]) == base
    except (ValueError, TypeError, KeyError, AttributeError):
        return False


def _sweep_locked(base: Config, path: Path, variants: list[str], settings: list[str],
                  seeds: list[int], workers: int, progress: bool, command: str | None,
                  on_run: Callable[[tuple[str, str, int], int], None] | None,
                  backend: str = "local", address: str | None = None) -> pd.DataFrame:
    """:func:`run_sweep` while it holds the lock on ``path``."""
    from ._version import __version__

    manifest_path = path.with_suffix(".json")
    manifest: dict[str, Any] = {"format": FORMAT, "config": config_to_dict(base), "sessions": []}
    if manifest_path.exists():
        old = read_json(manifest_path, "path", "the JSON manifest run_sweep writes next to the "
                        f"CSV (delete {manifest_path.name} only together with the CSV)")
        if not isinstance(old, dict) or not isinstance(old.get("sessions", []), list):
            raise ValueError(f"path: {str(manifest_path)!r} is not a sweep manifest (no "
                             "'config' and 'sessions'); allowed: the JSON file run_sweep writes")
        try:
            same = config_from_dict(old.get("config", {})) == base
        except (TypeError, AttributeError) as err:
            raise ValueError(f"path: {str(manifest_path)!r} holds a config redcore_lite cannot "
                             f"read ({err}); allowed: the JSON file run_sweep writes") from None
        if not same:
            raise ValueError(f"path: {str(path)!r} holds runs of a different base config (see "
                             f"{manifest_path.name}); allowed: the same config, or a new path")
        manifest = {**old, "sessions": list(old.get("sessions", []))}
    if path.is_file():
        done = set(load_table(path, repair=True)[["variant", "setting", "seed"]]
                   .itertuples(index=False, name=None))
    else:
        atomic_write_text(path, ",".join(COLUMNS) + "\n")
        done = set()
    todo = [(v, s, seed) for seed in seeds for s in settings for v in variants
            if (v, s, seed) not in done]
    session: dict[str, Any] = {"command": command, "variants": variants, "settings": settings, "seeds": seeds,
               "workers": workers, "runs_done_before": len(done), "runs_todo": len(todo),
               "redcore_lite": __version__, "git": _git_version(), "torch": torch.__version__,
               "torch_threads": 1,
               "python": platform.python_version(), "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
    manifest["sessions"].append(session)
    dump_json(manifest_path, manifest)
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=len(todo), desc="runs")
    t0, finished, cpu = time.perf_counter(), 0, 0.0

    def record(key: tuple[str, str, int], text: str, seconds: float) -> None:
        nonlocal finished, cpu
        _append(path, text)
        finished, cpu = finished + 1, cpu + seconds
        if bar is not None:
            bar.update(1)
        if on_run is not None:
            on_run(key, finished)

    try:
        if backend == "ray":
            from .sweep_ray import run_on_ray

            session["backend"] = run_on_ray(_run, base, todo, record, workers, address, lambda err: WorkerDied(
                f"path: a Ray task of the sweep on {str(path)!r} failed ({type(err).__name__}); the "
                f"{finished} run(s) finished in this call are in the file; allowed: run the same "
                "command again to resume (finished runs are skipped)"))
        elif workers == 1:
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                for key in todo:
                    record(*_run(base, key))
            finally:
                torch.set_num_threads(threads)
        else:
            ctx = multiprocessing.get_context("spawn")
            pool: ProcessPoolExecutor | None = None
            procs: list[Any] = []
            try:
                with _sigint_blocked_for_children():  # a Ctrl-C reaches this process only
                    pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                                               initargs=(os.getpid(),))
                    futures = [pool.submit(_run, base, key) for key in todo]  # starts the workers
                    procs = list((pool._processes or {}).values())
                for fut in as_completed(futures):
                    record(*fut.result())
            except BrokenProcessPool as err:
                raise WorkerDied(f"path: a worker process of the sweep on {str(path)!r} died "
                                 f"(killed, or out of memory); the {finished} run(s) finished in "
                                 "this call are in the file; allowed: run the same command again "
                                 "to resume (finished runs are skipped)") from err
            except BaseException:  # Ctrl-C, SIGTERM, a failed append: stop the runs at once
                _stop(procs or list((getattr(pool, "_processes", None) or {}).values()))
                raise
            finally:
                if pool is not None:
                    pool.shutdown(wait=False, cancel_futures=True)
    finally:
        if bar is not None:
            bar.close()
        session.update(runs_finished=finished, wall_s=round(time.perf_counter() - t0, 1),
                       cpu_s=round(cpu, 1))
        dump_json(manifest_path, manifest)
    table = load_table(path)
    table = _order(table, table["pattern"].unique(), ["variant", "setting", "seed", "split",
                                                      "pattern", "metric"])
    atomic_write_text(path, table.to_csv(index=False, float_format="%.4f"))
    return table


def _git_version() -> str | None:
    """``git describe --always --dirty`` of the package's checkout, or None outside git."""
    import subprocess

    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True,
                             text=True, cwd=Path(__file__).parent, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None
