"""redcore_lite: RedCore (Sun et al., AAAI 2024) for learning with missing modalities.

``import redcore_lite as rc``; train with ``rc.fit(rc.preset("teach"))``.
"""
from . import (advantage, batching, callbacks, config, custom, custom_io, data, datasets, distributed,
               evaluation, generators, grid, losses, masking, metrics, model, optim, registry, report,
               result, shipped, state, stats, step, sweep, trainer, vib)
from .checkpoint import load_checkpoint, load_model
from .config import Config, config_from_dict, config_to_dict, override, preset, seed_base, set_threads
from .custom import from_arrays, from_frame, split_by, split_data
from .data import MultimodalData, Splits, load_data, make_synthetic, normalise, stratified_split
from .masking import eval_patterns, make_mask, pattern_names, realised_rates
from .model import RedCore, RedCoreOutput, build_model
from .callbacks import Callback, StepEnd, TensorBoardLogger
from .evaluation import evaluate
from .result import EpochEnd, Result
from .state import TrainState
from .trainer import fit

from ._version import __version__

# rc.data.from_arrays, from_frame, split_by: defined in custom (which imports data), so they are
# attached here rather than imported by data (an upward import; docs/structure.md)
for _name in ("from_arrays", "from_frame", "split_by"):
    setattr(data, _name, getattr(custom, _name))
del _name


def __getattr__(name: str):
    """Import ``plots`` and ``diagrams`` (matplotlib, seaborn), ``widgets`` (ipywidgets) and ``book``
    (nbconvert; the notebooks extra) on first use, so that ``import redcore_lite`` stays light."""
    if name in ("plots", "diagrams", "widgets", "book"):
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "advantage", "config", "data", "generators", "losses", "masking", "metrics", "model", "optim",
    "trainer", "vib", "plots", "diagrams", "widgets", "book", "sweep", "datasets", "distributed", "custom", "custom_io",
    "from_arrays", "from_frame", "split_by", "split_data",
    "Config", "preset", "seed_base", "set_threads", "override", "config_to_dict", "config_from_dict",
    "MultimodalData", "Splits", "load_data", "make_synthetic", "normalise", "stratified_split",
    "eval_patterns", "make_mask", "pattern_names", "realised_rates", "RedCore", "RedCoreOutput",
    "build_model", "EpochEnd", "Result", "evaluate", "fit", "load_checkpoint", "load_model",
    "callbacks", "Callback", "StepEnd", "TensorBoardLogger", "registry", "shipped", "grid", "stats",
    "report", "batching", "evaluation", "result", "state", "step", "TrainState",
    "__version__",
]
