"""The Ray backend of :func:`redcore_lite.sweep.run_sweep` (``redcore-lite sweep --backend ray``).

Each (variant, setting, seed) run is one Ray task (one CPU, one torch thread) on a Ray cluster:
an existing one (``address``, or the ``RAY_ADDRESS`` environment variable, e.g. ``auto`` on a
cluster node) or a local instance started here with ``workers`` CPUs. The driver (this process)
keeps what the local pool keeps: the lock on the results CSV, each finished run appended as it
arrives, the manifest, resume by (variant, setting, seed), the canonical sort at the end. The runs
are the same function as the local pool's (:func:`redcore_lite.sweep._run`, passed in), so a grid gives the
same table on either backend (``tests/test_sweep_ray.py``).

Ray is an optional extra: ``pip install 'redcore_lite[ray]'``. Every node needs redcore_lite
installed (the same version: the driver checks it).
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from .config import Config

__all__ = ["run_on_ray"]


Run = Callable[[Config, tuple[str, str, int]], tuple[tuple[str, str, int], str, float]]


def _start_local(ray: Any, workers: int, tries: int = 3) -> None:
    """Start a local Ray instance. Ray (2.60) gives its raylet a fixed 30 s to register, which a
    loaded 2-core machine can miss ("The current node timed out during startup"): try again."""
    for attempt in range(1, tries + 1):
        try:
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
            return
        except Exception as err:  # Ray raises a bare Exception for this
            if attempt == tries or "timed out during startup" not in str(err):
                raise
            ray.shutdown()


def _task(run: Run, base: Config, key: tuple[str, str, int], version: str
          ) -> tuple[tuple[str, str, int], str, float]:
    """A Ray task: one run with one torch thread (what a local pool worker does)."""
    import torch

    from ._version import __version__

    if version != __version__:
        raise RuntimeError(f"redcore_lite {__version__} on this Ray node, {version} on the driver; "
                           "allowed: the same version on every node")
    torch.set_num_threads(1)
    return run(base, key)


def run_on_ray(run: Run, base: Config, todo: Sequence[tuple[str, str, int]],
               record: Callable[[tuple[str, str, int], str, float], None], workers: int,
               address: str | None = None, died: Callable[[BaseException], BaseException] | None = None
               ) -> dict[str, Any]:
    """Run ``todo`` as Ray tasks of ``run(base, key)``; call ``record(key, rows, cpu_seconds)`` as
    each one ends.

    Args:
        run: what a task runs (the sweep's ``_run``; passed in, so this module imports nothing
            of the sweep).
        workers: CPUs of a local Ray instance started here (ignored when joining a cluster).
        address: a Ray cluster to join (default ``RAY_ADDRESS``; none: start a local instance).
        died: maps a task failure to the exception to raise (the sweep's WorkerDied).
    Returns:
        What the manifest records: the Ray version, the address, the cluster's CPUs.
    """
    try:
        import ray
    except ImportError:
        raise ValueError("--backend: got 'ray' but Ray is not installed; allowed: pip install "
                         "'redcore_lite[ray]', or --backend local") from None
    from ._version import __version__

    address = address or os.environ.get("RAY_ADDRESS") or None
    started = False
    if not ray.is_initialized():
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            _start_local(ray, workers)
        started = True
    info = {"ray": ray.__version__, "address": address or "local",
            "cluster_cpus": int(ray.cluster_resources().get("CPU", 0))}
    task = ray.remote(num_cpus=1, max_retries=0)(_task)
    pending = [task.remote(run, base, key, __version__) for key in todo]
    try:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            try:
                result = ray.get(done[0])
            except ray.exceptions.RayError as err:
                raise (died(err) if died is not None else err) from err
            record(*result)
    finally:
        for ref in pending:
            ray.cancel(ref, force=True)
        if started:
            ray.shutdown()
    return info
