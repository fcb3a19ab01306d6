"""Command line: ``python -m redcore_lite COMMAND`` (installed as ``redcore-lite``).

``train`` fits RedCore on a dataset and writes every result file to an output folder;
``evaluate`` re-scores a checkpoint under every availability pattern.

Errors are one line on stderr, ``redcore-lite COMMAND: error: ...``, naming the argument or the
file: exit code 2 for bad input and unreadable or unwritable files (ValueError, OSError, a
diverged run), 1 for anything else; ``--debug`` also prints the traceback. An output folder is
locked while a command writes it (``OUT/.redcore-lite.lock``: a second ``train`` on the same
``--out`` stops at once, naming the first one's pid) and must be new or empty unless
``--resume`` (continue its checkpoint) or ``--overwrite`` (replace its results) is given.

Nothing is lost by a mistaken command: with ``--overwrite`` the new results are written to a
folder inside OUT (``.redcore-lite.new.PID``) and replace the old ones only once all are written
(a bad config, data file or checkpoint, a diverged run, Ctrl-C or SIGTERM leave OUT as it was);
no output file may be an input of the same command (compared by real path); SIGTERM is turned
into a clean stop (locks released, temporary files removed, one line, exit code 143).

Add a command with :func:`register` (a name, a help line, a function adding its arguments and a
function running it that returns an exit code); :func:`build_parser` builds one sub-parser per
registered command. :func:`add_data_arguments`, :func:`add_run_arguments`,
:func:`config_from_args` and :func:`write_result` are shared by commands.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import shutil
import signal
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ._files import (LockedError, atomic_write_text, check_not_inputs, dump_json, exclusive, is_temp_of,
                     pid_alive, real_path, replace_files)
from .checkpoint import load_model
from .config import (PRESETS, RELEASE_PROTOCOL, Config, config_from_file,
                     config_to_dict, override, override_from_strings, preset)
from .data import Splits, load_data
from .datasets import DATASETS
from .masking import MECHANISMS, SIMULATE, realised_rates, simulating
from .state import check_evaluable
from .trainer import LatentCollapseWarning, Result, SetupWarning, evaluate, fit, resolve_device

__all__ = ["Subcommand", "SUBCOMMANDS", "register", "build_parser", "main", "add_data_arguments",
           "add_run_arguments", "add_config_arguments", "config_from_args", "write_result"]

PROG = "redcore-lite"


@dataclass(frozen=True)
class Subcommand:
    """One command of the CLI."""

    help: str  # one line shown by ``redcore-lite --help``
    add_arguments: Callable[[argparse.ArgumentParser], None]  # adds the command's arguments
    run: Callable[[argparse.Namespace], int]  # runs it; returns the exit code


SUBCOMMANDS: dict[str, Subcommand] = {}  # name -> command, in the order shown by --help


def register(name: str, help: str, add_arguments: Callable[[argparse.ArgumentParser], None],
             run: Callable[[argparse.Namespace], int]) -> None:
    """Add (or replace) the command ``name``."""
    SUBCOMMANDS[name] = Subcommand(help, add_arguments, run)


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line (``--help`` shows the usage)."""

    def error(self, message: str) -> Any:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one sub-parser per registered command."""
    from ._version import __version__

    parser = _Parser(prog=PROG, description="RedCore (AAAI 2024) for learning with missing "
                     "modalities: train and evaluate.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    debug = "print the traceback of an error too (errors are one line without it)"
    parser.add_argument("--debug", action="store_true", help=debug)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, cmd in SUBCOMMANDS.items():
        short = cmd.help.replace("%", "%%")  # argparse %-formats help strings
        sub = subparsers.add_parser(name, help=short, description=cmd.help)
        sub.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=debug)
        cmd.add_arguments(sub)
    return parser


USER_ERRORS = (ValueError, OSError, FloatingPointError, ImportError)  # exit code 2, one line
MAX_ERROR = 1000  # characters of an error line


def error_line(err: BaseException) -> tuple[int, str]:
    """The exit code and the one-line message of an error a command raised."""
    from .sweep import WorkerDied

    if isinstance(err, OSError) and err.filename is not None and err.strerror:
        text = f"{err.filename}: {err.strerror}" + (f" ({err.filename2})" if err.filename2 else "")
    else:
        text = str(err) or type(err).__name__
    text = " ".join(text.split())
    if len(text) > MAX_ERROR:  # one line of sane length, whatever the value quoted in it
        text = f"{text[:MAX_ERROR]}... ({len(text)} characters)"
    if isinstance(err, USER_ERRORS):
        return 2, text
    if isinstance(err, WorkerDied):
        return 1, text
    return 1, (f"unexpected {type(err).__name__}: {text} (a bug? --debug prints the traceback; "
               "please report it)")


PLUGIN_GROUP = "redcore_lite.plugins"


def load_plugins() -> list[str]:
    """Import every module named by an installed ``redcore_lite.plugins`` entry point (a package
    that registers its datasets and encoders on import), so that the command line knows them.
    Returns the names loaded; a plugin that fails to import is an error naming it."""
    from importlib.metadata import entry_points

    loaded = []
    for ep in entry_points(group=PLUGIN_GROUP):
        try:
            ep.load()
        except Exception as err:
            raise ValueError(f"plugin {ep.name!r} ({ep.value}) failed to import: {err!r}; allowed: "
                             f"an importable module in the {PLUGIN_GROUP} entry points") from err
        loaded.append(ep.name)
    return loaded


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread of :func:`main` so that locks, temporary files and
    unfinished ``--overwrite`` results are cleaned up on the way out, as for Ctrl-C."""


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated("SIGTERM")


@contextlib.contextmanager
def _sigterm_stops() -> Any:
    """SIGTERM raises :class:`Terminated` for the block (the main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def stopped(err: KeyboardInterrupt) -> tuple[int, str]:
    """Exit code and word of an interruption: 143 and "stopped by SIGTERM", or 130 and
    "interrupted" (Ctrl-C)."""
    return (143, "stopped by SIGTERM") if isinstance(err, Terminated) else (130, "interrupted")


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``) and run the command. An error is printed as
    one line naming what was wrong (:func:`error_line`; ``--debug`` adds the traceback): exit
    code 2 for bad input and file errors, 1 otherwise, 130 when interrupted (Ctrl-C), 143 when
    stopped by SIGTERM (one line each; locks and temporary files are removed first)."""
    args: argparse.Namespace | None = None
    with _sigterm_stops():
        try:
            load_plugins()
            args = build_parser().parse_args(argv)
            return SUBCOMMANDS[args.command].run(args)
        except KeyboardInterrupt as err:
            if args is not None and args.debug:
                traceback.print_exc()
            code, word = stopped(err)
            print(f"{PROG}{'' if args is None else ' ' + args.command}: {word}", file=sys.stderr)
            return code
        except Exception as err:
            if args is None:  # a plugin that fails to import: as before
                raise
            if args.debug:
                traceback.print_exc()
            code, text = error_line(err)
            print(f"{PROG} {args.command}: error: {text}", file=sys.stderr)
            return code


# ---------------------------------------------------------------- shared arguments and helpers

def _listed(kind: type) -> Callable[[str], list[Any]]:
    """argparse type: one value or a comma-separated list ("0.2,0.5" or "0.2 0.5")."""
    def parse(text: str) -> list[Any]:
        try:
            return [kind(v) for v in text.split(",") if v.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"got {text!r}; expected {kind.__name__} values "
                                             "separated by commas or spaces") from None
    return parse


def _frames(text: str) -> int:
    """argparse type of --max-frames: an integer >= 0."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"got {text!r}; allowed: an integer >= 0 (0 = all frames)")
    return value


def _flat(values: list[list[Any]] | None) -> tuple[Any, ...] | None:
    return None if values is None else tuple(v for group in values for v in group)


def add_data_arguments(p: argparse.ArgumentParser, dataset_required: bool = True) -> None:
    """Dataset name (positional when required, else ``--dataset``) and where its files are."""
    from .registry import dataset_names

    added = [n for n in dataset_names() if n not in DATASETS]  # registered (a plugin)
    names = ("synthetic | mfeat | avdigits | iemocap | msp | mosei | custom (your own file: --data)"
             + "".join(f" | {n}" for n in added))
    if dataset_required:
        p.add_argument("dataset", choices=dataset_names(), metavar="DATASET", help=names)
    else:
        p.add_argument("--dataset", choices=dataset_names(), metavar="DATASET",
                       help=f"{names} (default: the checkpoint's)")
    p.add_argument("--root", help="iemocap/msp: feature root holding A/, V/, L/; "
                   "mosei: path of aligned_50.pkl (a pickle: name only a file you trust)")
    p.add_argument("--target-root", help="iemocap/msp: folder of fold folders (default ROOT/target)")
    p.add_argument("--fold", type=int, help="iemocap: 1..10, msp: 1..12; avdigits: the held-out "
                   "speaker 1..6 (default 1)")
    p.add_argument("--holdout", choices=("speakers", "takes"), help="avdigits: test on an unseen "
                   "speaker (default) or on the official test takes 0-4")
    p.add_argument("--modalities", type=_listed(str), nargs="+",
                   help="avdigits: modalities to use (default audio image shape)")
    p.add_argument("--views", type=_listed(str), nargs="+",
                   help="mfeat: views to use (default fou kar pix; also fac, zer, mor)")
    p.add_argument("--max-frames", type=_frames, help="iemocap/msp/avdigits: keep at most this many "
                   "frames per sample (default 0 = all)")
    p.add_argument("--no-normalise", action="store_true",
                   help="do not z-score features with training statistics")
    g = p.add_argument_group("custom data (DATASET custom: your own file; see redcore_lite.custom_io)")
    g.add_argument("--data", help="custom: a .npz (one array per modality, labels, optional mask, "
                   "ids, split), a CSV / Parquet table (one row per sample; needs --modality "
                   "NAME=COLUMNS), or a folder with labels.csv and NAME.h5 per modality")
    g.add_argument("--modality", action="append", metavar="NAME=COLUMNS",
                   help="custom tables: a modality and its columns, comma-separated, globs allowed "
                   "(--modality audio='mfcc_*' --modality text=t1,t2); repeat per modality, in "
                   "order. For .npz / HDF5: NAME only, to keep a subset. A modality is absent in a "
                   "row where all its columns are NaN")
    g.add_argument("--label", help="custom tables / labels.csv: the label column (default label; "
                   "integers or class names)")
    g.add_argument("--split-column", help="custom: a column of train/val/test per row (default: a "
                   "seeded stratified split)")
    g.add_argument("--id-column", help="custom tables: a column of sample ids (default: row numbers)")


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    """Preset, missing rates, method variant, seed, device, epochs and the output folder."""
    p.add_argument("--preset", default="auto", choices=("auto", *PRESETS),
                   help="smoke (CI), teach (laptop), paper (release recipe, GPU), auto (default: "
                   "smoke if CI is set, else teach)")
    p.add_argument("--rates", type=_listed(float), nargs="+",
                   help="missing rate per modality, in modality order, e.g. 0.2 0.5 0.8")
    p.add_argument("--simulate", choices=SIMULATE, help="mask.simulate: draw a simulated mask "
                   "(auto: only when the training data has no holes of its own; on: also on top "
                   "of them; off: never)")
    p.add_argument("--mechanism", choices=MECHANISMS, help="mask.mechanism of the simulated mask: "
                   "mcar (default), class, score, menu (their settings: --set mask.FIELD=...)")
    p.add_argument("--eval-complete", action="store_true", help="train.eval_complete: with holes "
                   "in val/test, also score their complete rows under every pattern")
    p.add_argument("--mode", choices=("ra", "fixed", "uniform", "inverse", "matched"),
                   help="advantage.mode: ra (RedCore), fixed (no RA), uniform, inverse, matched "
                        "(peer-matched RA)")
    p.add_argument("--backbone", choices=("mlp", "transformer"),
                   help="encoder backbone (default: transformer for frame sequences, else the "
                   "preset's)")
    p.add_argument("--epochs", type=int, help="total epochs, split between constant and decay "
                   "in the preset's proportion")
    p.add_argument("--seed", type=int, help="seed of split, masks, initialisation and batches")
    p.add_argument("--device", help="auto | cpu | cuda | cuda:N (default: the preset's, auto)")
    p.add_argument("--bf16", action="store_true", help="train.bf16: bf16 autocast in training")
    p.add_argument("--compile", action="store_true", help="train.compile: torch.compile the model")
    p.add_argument("--tf32", action="store_true", help="train.tf32: TF32 matmuls (CUDA only)")
    p.add_argument("--cuda-graph", action="store_true", help="train.cuda_graph: replay each step "
                   "as one CUDA graph (CUDA only, not under torchrun; fastest with --bf16 --compile)")
    add_config_arguments(p)
    p.add_argument("--out", required=True, type=Path, help="output folder: new or empty (a "
                   "folder with files needs --resume or --overwrite)")
    p.add_argument("--resume", action="store_true", help="continue OUT/checkpoint.pt (on the "
                   "data and config it was trained on: anything else is an error naming what differs)")
    p.add_argument("--force", action="store_true", help="with --resume: continue although the "
                   "data's values changed (its sha256, labels or feature values; never its "
                   "modalities, dims, classes or split); recorded in summary.json")
    p.add_argument("--overwrite", action="store_true", help="replace the results already in "
                   "OUT (the files train writes; other files stay) once the new run has written "
                   "all of its own; until then, and on any error, OUT is left as it was")



def add_config_arguments(p: argparse.ArgumentParser) -> None:
    """The release-protocol switches, the initialisation, and ``--set`` for any config field."""
    p.add_argument("--init", choices=("release", "torch"),
                   help="model.init: the release's kaiming-normal initialisation, or PyTorch's "
                   "defaults (default: the preset's)")
    p.add_argument("--redraw-masks", action="store_true", help="mask.redraw_each_epoch: draw new "
                   "training masks every epoch (the release protocol: modality dropout)")
    p.add_argument("--sample-at-eval", action="store_true", help="model.sample_at_eval: sample z "
                   "at evaluation too (the release: random test predictions)")
    p.add_argument("--no-mask-padding", action="store_true", help="model.mask_padding=False: the "
                   "Transformer attends to and pools over padded frames (the release)")
    p.add_argument("--release-protocol", action="store_true", help="all three of --redraw-masks "
                   "--sample-at-eval --no-mask-padding")
    p.add_argument("--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE",
                   help="set any config field, e.g. --set train.lr=1e-3 --set mask.rates=0.2,0.5,0.8 "
                   "(repeatable; applied last)")


def config_from_args(args: argparse.Namespace, base: Config | None = None) -> Config:
    """The preset (or ``base``) with the data and run arguments given on the command line."""
    config = base if base is not None else preset(getattr(args, "preset", "auto"))
    if base is None and getattr(args, "config", None) is not None:  # train --config FILE
        config = config_from_file(args.config, config)
    data: dict[str, Any] = {}
    if getattr(args, "dataset", None):
        data["name"] = args.dataset
    if args.root:
        data["root"] = str(Path(args.root).expanduser().resolve())
    if args.target_root:
        data["target_root"] = str(Path(args.target_root).expanduser().resolve())
    if args.fold is not None:
        data["fold"] = args.fold
    if args.views:
        data["views"] = _flat(args.views)
    if args.max_frames is not None:
        data["max_frames"] = args.max_frames
    if args.holdout:
        data["holdout"] = args.holdout
    if args.modalities:
        data["modalities"] = _flat(args.modalities)
    if data.get("name", config.data.name) == "avdigits":  # audio as frames for the transformer
        data["sequences"] = (getattr(args, "backbone", None) or config.model.backbone) == "transformer"
    if args.no_normalise:
        data["normalise"] = False
    if getattr(args, "data", None):
        data["path"] = str(Path(args.data).expanduser().resolve())
    for flag, key in (("modality", "modalities"), ("label", "label"),
                      ("split_column", "split_column"), ("id_column", "id_column")):
        value = getattr(args, flag, None)
        if value:
            data[key] = tuple(value) if flag == "modality" else value
    train: dict[str, Any] = {}
    if getattr(args, "eval_complete", False):
        train["eval_complete"] = True
    if getattr(args, "seed", None) is not None:
        train["seed"] = args.seed
    if getattr(args, "device", None):
        train["device"] = args.device
    for flag in ("bf16", "compile", "tf32", "cuda_graph"):  # speed options: on when given
        if getattr(args, flag, False):
            train[flag] = True
    epochs = getattr(args, "epochs", None)
    if epochs is not None:
        if epochs < 1:
            raise ValueError(f"--epochs: got {epochs}; allowed: an integer >= 1")
        share = config.train.epochs_constant / max(1, config.epochs)
        train["epochs_constant"] = max(1, round(epochs * share))
        train["epochs_decay"] = epochs - train["epochs_constant"]
    sections: dict[str, dict[str, Any]] = {"data": data, "train": train, "model": {}, "mask": {}}
    if getattr(args, "mode", None):
        sections["advantage"] = {"mode": args.mode}
    if getattr(args, "rates", None):
        sections["mask"]["rates"] = _flat(args.rates)
    for flag in ("simulate", "mechanism"):
        if getattr(args, flag, None):
            sections["mask"][flag] = getattr(args, flag)
    if getattr(args, "init", None):
        sections["model"]["init"] = args.init
    if getattr(args, "release_protocol", False):
        for section, fields in RELEASE_PROTOCOL.items():
            sections[section].update(fields)
    for flag, (section, name, value) in {"redraw_masks": ("mask", "redraw_each_epoch", True),
                                         "sample_at_eval": ("model", "sample_at_eval", True),
                                         "no_mask_padding": ("model", "mask_padding", False)}.items():
        if getattr(args, flag, False):
            sections[section][name] = value
    return override_from_strings(override(config, **sections), getattr(args, "assignments", []))


def _rates_source(args: argparse.Namespace, config: Config) -> str:
    """Where ``mask.rates`` came from, for an error message: ``--set``, ``--rates``, ``--config``
    or the preset."""
    if any(a.partition("=")[0].strip() == "mask.rates" for a in getattr(args, "assignments", [])):
        return "--set mask.rates"
    if getattr(args, "rates", None):
        return "--rates"
    name = getattr(args, "preset", "auto")
    if getattr(args, "config", None) is not None and config.mask.rates != preset(name).mask.rates:
        return f"mask.rates (from --config {args.config})"
    return f"--rates (the preset's {list(config.mask.rates)})"


def _fit_data(config: Config, splits: Splits, backbone: str | None, rates_given: bool | str) -> Config:
    """Adapt the backbone and check the rates against the loaded data."""
    mods, sequences = splits.modalities, any(x.dim() == 3 for x in splits.train.features.values())
    backbone = backbone or ("transformer" if sequences else config.model.backbone)
    if backbone == "mlp" and sequences:
        raise ValueError(f"--backbone: got 'mlp' but {config.data.name} holds frame sequences "
                         "[N, T, D]; allowed: transformer")
    rates = config.mask.rates
    uses_rates = config.mask.mechanism in ("mcar", "score") or config.advantage.mode == "inverse"
    if simulating(config.mask, splits.train.mask) and uses_rates and len(rates) != len(mods):
        where = (rates_given if isinstance(rates_given, str) else
                 "--rates" if rates_given else f"--rates (the preset's {list(rates)})")
        raise ValueError(f"{where}: got {len(rates)} rate(s) for {len(mods)} modalities "
                         f"{list(mods)}; allowed: one rate in [0, 1] per modality, in that order")
    return override(config, model={"backbone": backbone})


def _write_csv(path: Path, frame: pd.DataFrame) -> None:
    atomic_write_text(path, frame.to_csv(index=False))


def write_result(result: Result, out: Path, seconds: float | None = None) -> dict[str, Any]:
    """Write config.json, epochs.csv, val/test_patterns.csv, history.csv, mask_rates.csv and
    summary.json to ``out``; return the summary."""
    out.mkdir(parents=True, exist_ok=True)
    dump_json(out / "config.json", config_to_dict(result.config))
    _write_csv(out / "epochs.csv", result.epochs)
    _write_csv(out / "val_patterns.csv", result.val)
    _write_csv(out / "test_patterns.csv", result.test)
    for part in ("val", "test"):
        if getattr(result, f"{part}_complete", None) is not None:
            _write_csv(out / f"{part}_complete_patterns.csv", getattr(result, f"{part}_complete"))
    _write_csv(out / "history.csv", result.history)
    kind = result.extra.get("mask", {}).get("kind", "simulated")
    requested = result.config.mask.rates if kind.endswith("simulated") else None
    if requested is not None and (len(requested) != len(result.modalities)
                                  or result.config.mask.mechanism not in ("mcar", "score")):
        requested = None
    rates = realised_rates(result.train_mask, result.modalities, requested, result.observed_mask)
    _write_csv(out / "mask_rates.csv", rates)
    overall = {"val": _overall(result.val), "test": _overall(result.test)}
    beta = result.beta().iloc[-1]
    summary = {"dataset": result.config.data.name, "modalities": list(result.modalities),
               "best_epoch": result.best_epoch, "epochs": result.config.epochs, **overall,
               "final_beta": {m: float(beta[m]) for m in result.modalities},
               "realised_rates": {r.modality: float(r.realised) for r in rates.itertuples()},
               **({"observed_rates": {r.modality: float(r.observed_rate) for r in rates.itertuples()},
                   "simulated_rates": {r.modality: float(r.simulated_rate)
                                       for r in rates.itertuples()}}
                  if result.observed_mask is not None else {}),
               "mask": result.extra.get("mask"), "data": result.extra.get("data"),
               "seconds": seconds, "checkpoint": "checkpoint.pt", "warnings": list(result.warnings),
               **({"resume": result.extra["resume"]} if "resume" in result.extra else {}),
               "run": {k: result.extra[k] for k in ("device", "world_size", "torch", "threads", "bf16",
                                                    "compile", "cuda_graph", "tf32")
                       if k in result.extra}}
    dump_json(out / "summary.json", summary)
    return summary


def _overall(df: pd.DataFrame) -> dict[str, float]:
    """WA, UA and F1 of the ``overall`` row of a per-pattern table."""
    row = df.set_index("pattern").loc["overall"]
    return {k: float(row[k]) for k in ("wa", "ua", "f1")}


def _pattern_line(df: pd.DataFrame, col: str = "f1") -> str:
    rows = df[df["pattern"] != "overall"]
    return "  ".join(f"{p} {int(v)}" if col == "n" else f"{p} {v:.3f}"
                     for p, v in zip(rows["pattern"], rows[col]))


# ---------------------------------------------------------------- output folders

TRAIN_FILES = ("config.json", "epochs.csv", "val_patterns.csv", "test_patterns.csv",
               "val_complete_patterns.csv", "test_complete_patterns.csv", "history.csv",
               "mask_rates.csv", "summary.json", "checkpoint.pt")  # what train writes to --out
EVALUATE_FILES = ("val_patterns.csv", "test_patterns.csv", "evaluate.json")
LOCK_NAME = ".redcore-lite.lock"  # held while a command writes an output folder
STAGE_NAME = ".redcore-lite.new"  # OUT/STAGE_NAME.PID: the new results of --overwrite until done


def _stale(out: Path, entry: str, files: Sequence[str]) -> bool:
    """A temporary file of one of ``files`` whose writer is gone (removed here)."""
    for name in files:
        pid = is_temp_of(entry, name)
        if pid is not None and not pid_alive(pid):
            with contextlib.suppress(OSError):
                (out / entry).unlink()
            return True
    return False


def _earlier(out: Path) -> str:
    """``; an earlier run on 'mfeat'`` when ``out`` holds a config.json of one."""
    try:
        name = json.loads((out / "config.json").read_text())["data"]["name"]
    except (OSError, ValueError, KeyError, TypeError):
        return ""
    return f"; an earlier run on {name!r}"


@contextlib.contextmanager
def output_folder(out: Path, command: str, files: Sequence[str], resume: bool = False,
                  overwrite: bool = False,
                  inputs: dict[str, str | os.PathLike | None] | None = None) -> Any:
    """Hold ``out`` (created if needed) for one command: locked against a second writer, and
    new or empty unless ``resume`` (``out/checkpoint.pt`` is continued) or ``overwrite``.
    Checked before any data is loaded or epoch trained. Yields the folder to write to: ``out``,
    or with ``overwrite`` over earlier results a new folder inside it whose files replace the
    ``files`` in ``out`` when the block ends without an error (an earlier result the new run
    does not write is removed then); on an error or an interruption ``out`` stays as it was.

    Args:
        inputs: the files the command reads, by argument (``{"--data": path}``): none of the
            ``files`` in ``out`` may be one of them (compared by real path).
    Raises:
        ValueError: ``out`` is a file, cannot be created or written, holds results (without
            ``resume`` / ``overwrite``), an output would replace an input, or (LockedError)
            another command is writing it.
    """
    if resume and overwrite:
        raise ValueError("--resume, --overwrite: got both; allowed: one of them (--resume "
                         "continues OUT/checkpoint.pt, --overwrite replaces the results in OUT)")
    check_not_inputs({"--out": [out / name for name in files]}, inputs or {})
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out: {str(out)!r} is a file; allowed: a folder (new or empty, or "
                         "with --resume / --overwrite one written by train)")
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"--out: cannot create the folder {str(out)!r} ({err.strerror}); "
                         "allowed: a folder you can write to") from None
    try:
        with _held(out, command, files, resume, overwrite) as target:
            yield target
    except BaseException:
        if created:  # a command that failed before writing anything leaves no empty folder
            with contextlib.suppress(OSError):
                out.rmdir()
        raise


@contextlib.contextmanager
def _held(out: Path, command: str, files: Sequence[str], resume: bool, overwrite: bool) -> Any:
    """The lock and the emptiness checks of :func:`output_folder`."""
    with exclusive(out, out / LOCK_NAME, "--out", command):
        ours = {LOCK_NAME, *(f".{name}.lock" for name in files)}  # a killed run's lock files
        for entry in os.listdir(out):  # an earlier --overwrite killed with -9: we hold the lock
            if entry.startswith(STAGE_NAME + "."):
                shutil.rmtree(out / entry, ignore_errors=True)
        entries = sorted(e for e in os.listdir(out) if e not in ours and not _stale(out, e, files))
        shown = ", ".join(entries[:5]) + (f", ... ({len(entries)} entries)" if len(entries) > 5 else "")
        if resume:
            if entries and "checkpoint.pt" not in entries:
                raise ValueError(f"--resume: {str(out)!r} holds {shown} but no checkpoint.pt to "
                                 "continue; allowed: --overwrite to replace its results, or "
                                 "another --out")
        elif entries and not overwrite:
            if "checkpoint.pt" in entries and command == "train":
                raise ValueError(f"--out: {str(out)!r} already holds checkpoint.pt; allowed: "
                                 "--resume to continue it, --overwrite to replace it, or "
                                 "another --out")
            raise ValueError(f"--out: {str(out)!r} is not empty ({shown}{_earlier(out)}); "
                             "allowed: a new or empty folder, --overwrite to replace the "
                             "results in it, or another --out")
        elif any(name in entries for name in files):  # --overwrite: write aside, then replace
            stage = out / f"{STAGE_NAME}.{os.getpid()}"
            stage.mkdir()
            try:
                yield stage
                replace_files({out / name: stage / name if (stage / name).exists() else None
                               for name in files})
            finally:
                shutil.rmtree(stage, ignore_errors=True)
            return
        yield out


# ---------------------------------------------------------------- train

def _train_arguments(p: argparse.ArgumentParser) -> None:
    add_data_arguments(p, dataset_required=True)
    add_run_arguments(p)
    p.add_argument("--config", type=Path, metavar="FILE",
                   help="config sections from a JSON or YAML file, applied on top of --preset and "
                   "before the other flags and --set: e.g. {\"train\": {\"lr\": 0.001, "
                   "\"batch_size\": 64}, \"loss\": {\"kl_weight\": 0.01}}, or a whole "
                   "config.json written by train")
    p.add_argument("--tensorboard", type=Path, metavar="DIR",
                   help="log losses, beta, RA, EMA per step and metrics per epoch and pattern to a "
                   "TensorBoard event file in DIR (needs pip install 'redcore_lite[tensorboard]')")


def _train(args: argparse.Namespace) -> int:
    from . import distributed

    distributed.init_from_env()  # under torchrun: join the process group
    try:
        return _train_main(args) if distributed.is_main() else _train_worker(args)
    finally:
        distributed.shutdown()


def _train_worker(args: argparse.Namespace) -> int:
    """A rank other than 0 under torchrun: trains its shard, writes and prints nothing."""
    config = config_from_args(args)
    splits = load_data(config.data, seed=config.train.seed)
    config = _fit_data(config, splits, args.backbone, _rates_source(args, config))
    fit(config, splits, checkpoint=args.out / "checkpoint.pt", resume=args.resume, force=_forced(args))
    return 0


def _inputs(args: argparse.Namespace, config: Config | None = None) -> dict[str, Any]:
    """The files a command reads, by the argument that names them (for :func:`output_folder`)."""
    data = config.data if config is not None else None
    return {"--data": getattr(data, "path", None) or getattr(args, "data", None),
            "--root": getattr(data, "root", None) or getattr(args, "root", None),
            "--config": getattr(args, "config", None),
            "checkpoint": getattr(args, "checkpoint", None)}


def _forced(args: argparse.Namespace) -> bool:
    """``fit``'s ``force`` from ``--force`` (only with ``--resume``)."""
    if not getattr(args, "force", False):
        return False
    if not args.resume:
        raise ValueError("--force: given without --resume; allowed: --resume --force (continue a "
                         "checkpoint although its data's values changed)")
    return True


def _train_main(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    _forced(args)  # --force without --resume: an error before OUT is touched
    with output_folder(args.out, "train", TRAIN_FILES, args.resume, args.overwrite,
                       _inputs(args, config)) as target:
        return _train_into(args, config, target)


def _train_into(args: argparse.Namespace, config: Config, target: Path | None = None) -> int:
    """Train and write the results to ``target`` (default ``args.out``; held by
    :func:`output_folder`, which moves them to ``args.out`` when ``target`` is another folder)."""
    splits = load_data(config.data, seed=config.train.seed)
    config = _fit_data(config, splits, args.backbone, _rates_source(args, config))
    out: Path = target if target is not None else args.out
    ckpt = out / "checkpoint.pt"
    start = time.perf_counter()
    with warnings.catch_warnings():  # printed below, once, from result.warnings
        warnings.simplefilter("ignore", LatentCollapseWarning)
        warnings.simplefilter("ignore", SetupWarning)
        logs = []
        if args.tensorboard is not None:  # rank 0 only: the other ranks write nothing
            from .callbacks import TensorBoardLogger
            logs.append(TensorBoardLogger(args.tensorboard))
        result = fit(config, splits, checkpoint=ckpt, resume=args.resume,
                     **({"callbacks": logs} if logs else {}), force=_forced(args))
    seconds = time.perf_counter() - start
    summary = write_result(result, out, seconds)
    mods = ", ".join(f"{m} [{d}]" for m, d in zip(splits.modalities, splits.train.dims))
    device = resolve_device(config.train.device).type
    test = summary["test"]
    print(f"{config.data.name}: modalities {mods}; {len(splits.train)}/{len(splits.val)}/"
          f"{len(splits.test)} train/val/test samples, {splits.num_classes} classes")
    if result.observed_mask is None:
        rates = "  ".join(f"{m} {r:.2f} ({summary['realised_rates'][m]:.3f})"
                          for m, r in zip(result.modalities, config.mask.rates))
        print(f"missing rates (realised): {rates}")
    else:
        rates = "  ".join(f"{m} {summary['observed_rates'][m]:.3f} + "
                          f"{summary['simulated_rates'][m]:.3f} = {summary['realised_rates'][m]:.3f}"
                          for m in result.modalities)
        print(f"training mask: {summary['mask']['kind']}; missing rates observed + simulated = "
              f"total: {rates}")
    speed = [f for f in ("bf16", "compile", "tf32", "cuda_graph") if getattr(config.train, f)]
    print(f"{config.model.backbone} backbone, advantage.mode={config.advantage.mode}, "
          f"{config.epochs} epochs on {device}{' with ' + ', '.join(speed) if speed else ''}, "
          f"seed {config.train.seed}: {seconds:.1f} s")
    over = "all patterns" if splits.test.complete else "all samples, each under its own pattern"
    print(f"best epoch {result.best_epoch} (val F1 {summary['val']['f1']:.3f}); test over "
          f"{over}: WA {test['wa']:.3f}  UA {test['ua']:.3f}  F1 {test['f1']:.3f}")
    print(f"test F1 per pattern: {_pattern_line(result.test)}" + (
        "" if splits.test.complete else
        f" (samples: {_pattern_line(result.test, 'n')})"))
    print("final beta: " + "  ".join(f"{m} {b:.3f}" for m, b in summary["final_beta"].items()))
    extra = "".join(f" {part}_complete_patterns.csv" for part in ("val", "test")
                    if getattr(result, f"{part}_complete") is not None)
    print(f"wrote {args.out}/: config.json epochs.csv val_patterns.csv test_patterns.csv{extra} "
          "history.csv mask_rates.csv summary.json checkpoint.pt")
    for message in result.warnings:
        print(f"{PROG} train: warning: {message}", file=sys.stderr)
    return 0


# ---------------------------------------------------------------- evaluate

def _evaluate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", type=Path, help="a checkpoint.pt written by train (or fit)")
    add_data_arguments(p, dataset_required=False)
    p.add_argument("--which", default="best", choices=("best", "last"),
                   help="weights of the selected epoch (default) or of the last epoch")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--protocol", default="auto", choices=("auto", "observed", "patterns"),
                   help="patterns: every sample under every pattern (with holes in the data: "
                   "its complete samples); observed: every sample under its own pattern; auto "
                   "(default): observed where the split has holes, else patterns")
    p.add_argument("--out", type=Path, help="folder for val/test_patterns.csv and evaluate.json "
                   "(default: print only); new or empty unless --overwrite")
    p.add_argument("--overwrite", action="store_true", help="replace val/test_patterns.csv and "
                   "evaluate.json in OUT once the new ones are written (on an error they stay)")


def _evaluate(args: argparse.Namespace) -> int:
    if args.out is None:
        return _evaluate_into(args)
    with output_folder(args.out, "evaluate", EVALUATE_FILES, overwrite=args.overwrite,
                       inputs=_inputs(args)) as target:
        return _evaluate_into(args, target)


def _evaluate_into(args: argparse.Namespace, target: Path | None = None) -> int:
    model, saved, meta = load_model(args.checkpoint, args.which)
    config = config_from_args(args, base=saved)
    if args.out is not None:  # the data named by the checkpoint's config, too
        check_not_inputs({"--out": [args.out / n for n in EVALUATE_FILES]}, _inputs(args, config))
    splits = load_data(config.data, seed=config.train.seed)
    expected = (list(meta["modalities"]), list(meta["dims"]), meta["num_classes"])
    got = (list(splits.modalities), list(splits.train.dims), splits.num_classes)
    if got != expected:
        raise ValueError(f"checkpoint: {str(args.checkpoint)!r} expects modalities {expected[0]} "
                         f"with dims {expected[1]} and {expected[2]} classes; the data "
                         f"({config.data.name}) has {got[0]} with dims {got[1]} and {got[2]} classes")
    check_evaluable(args.checkpoint, meta, splits)
    device = resolve_device(args.device)
    model = model.to(device)
    batch = config.train.eval_batch_size
    saved_sha = ((meta.get("data") or {}).get("source") or {}).get("sha256")
    now_sha = splits.train.source.get("sha256")
    if saved_sha and now_sha and saved_sha != now_sha:
        print(f"{PROG} evaluate: warning: {config.data.path} has changed since training (sha256 "
              f"{now_sha[:12]}..., trained on {saved_sha[:12]}...)", file=sys.stderr)
    frames = {part: evaluate(model, getattr(splits, part).to(device), batch, args.protocol)
              for part in ("val", "test")}
    epoch = meta["best_epoch"] if args.which == "best" else meta["epoch"] - 1
    print(f"{args.checkpoint} ({args.which} weights, epoch {epoch}) on {config.data.name}, "
          f"{len(splits.val)}/{len(splits.test)} val/test samples, {device.type}")
    for part, df in frames.items():
        row = df.set_index("pattern").loc["overall"]
        print(f"{part}: WA {row['wa']:.3f}  UA {row['ua']:.3f}  F1 {row['f1']:.3f}; "
              f"F1 per pattern: {_pattern_line(df)}")
    if args.out is not None:
        out = target if target is not None else args.out
        for part, df in frames.items():
            _write_csv(out / f"{part}_patterns.csv", df)
        dump_json(out / "evaluate.json", {
            "checkpoint": str(args.checkpoint), "which": args.which, "epoch": epoch,
            "data": config_to_dict(config)["data"], "described": splits.describe(),
            "protocol": args.protocol,
            **{part: _overall(df) for part, df in frames.items()}})
        print(f"wrote {args.out}/: val_patterns.csv test_patterns.csv evaluate.json")
    return 0


register("train", "train RedCore on a dataset and write config, metrics, beta/RA history and "
         "the checkpoint", _train_arguments, _train)
register("evaluate", "re-score a checkpoint under every availability pattern",
         _evaluate_arguments, _evaluate)


# ---------------------------------------------------------------- sweep and report

def _sweep_arguments(p: argparse.ArgumentParser) -> None:
    from .sweep import DEFAULT_SETTINGS, SETTINGS, VARIANTS

    add_data_arguments(p, dataset_required=True)
    p.add_argument("--preset", default="teach", choices=("auto", *PRESETS),
                   help="base config of every run (default teach; the committed results use teach)")
    p.add_argument("--config", type=Path, help="base config from a JSON file instead of --preset: "
                   "a sweep manifest (RESULTS.json) or a config.json written by train")
    p.add_argument("--epochs", type=int, help="total epochs, split as in the preset")
    p.add_argument("--device", help="auto | cpu | cuda | cuda:N (default: the preset's, auto)")
    p.add_argument("--variants", type=_listed(str), nargs="+",
                   help="variants to run (default all): " + " ".join(VARIANTS))
    p.add_argument("--settings", type=_listed(str), nargs="+",
                   help=f"missing-rate settings (default {' '.join(DEFAULT_SETTINGS)}): "
                   + " ".join(SETTINGS))
    p.add_argument("--seeds", type=int, default=10, help="run seeds 0..N-1 (default 10)")
    p.add_argument("--workers", type=int, default=2, help="processes, one torch thread each "
                   "(default 2)")
    p.add_argument("--backend", choices=("local", "ray"), default="local",
                   help="local (default): --workers processes on this machine; ray: one Ray task "
                   "per run on a Ray cluster (RAY_ADDRESS or --ray-address; else a local Ray with "
                   "--workers CPUs); needs pip install 'redcore_lite[ray]'")
    p.add_argument("--ray-address", help="with --backend ray: the cluster to join (e.g. auto, "
                   "ray://HOST:10001); default RAY_ADDRESS")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--wait", action="store_true", help="when another sweep is writing OUT, wait "
                   "for it to end, then run what it left (default: stop with an error at once)")
    add_config_arguments(p)
    p.add_argument("--out", required=True, type=Path, help="results CSV: each finished run is "
                   "appended; an existing file is resumed (OUT.json holds config and sessions)")
    p.add_argument("--overwrite", action="store_true", help="run the grid afresh instead of "
                   "resuming OUT: the new runs replace OUT and OUT.json only once all are done "
                   "(until then they are in .OUT.overwrite.csv; the same command resumes them)")


def _sweep(args: argparse.Namespace) -> int:
    from . import sweep

    base = preset(args.preset)
    if args.config is not None:
        base = config_from_file(args.config, base, "--config", "a sweep manifest (RESULTS.json), "
                                "a config.json written by train, or config sections in JSON or YAML")
    config = config_from_args(args, base=base)
    inputs = _inputs(args, config)
    real = real_path(args.out)  # a symlink: the file it points to, and that file's manifest
    if args.config is not None and real_path(args.config) == real.with_suffix(".json"):
        inputs.pop("--config")  # the sweep's own manifest as its config: a resume, not a loss
    staged = sweep.overwrite_path(real)
    check_not_inputs({"--out": [real, real.with_suffix(".json"), staged,
                                staged.with_suffix(".json")]}, inputs)
    variants = list(_flat(args.variants) or sweep.VARIANTS)
    settings = list(_flat(args.settings) or sweep.DEFAULT_SETTINGS)
    listed = ("views", "modalities")  # nargs="+" lists of lists
    data = [f"--{k.replace('_', '-')} " + (" ".join(map(str, _flat(v) or ())) if k in listed else str(v))
            for k in ("root", "target_root", "fold", "views", "max_frames", "holdout", "modalities",
                      "data", "label", "split_column", "id_column")
            if (v := getattr(args, k)) is not None] + (["--no-normalise"] if args.no_normalise else [])
    data += [f"--modality {shlex.quote(m)}" for m in args.modality or []]
    source = ["--config", str(args.config)] if args.config else ["--preset", args.preset]
    command = " ".join([PROG, "sweep", args.dataset, *data, *source,
                        *([f"--epochs {args.epochs}"] if args.epochs else []),
                        *([f"--device {args.device}"] if args.device else []),
                        *([f"--init {args.init}"] if args.init else []),
                        *[f"--{f.replace('_', '-')}" for f in ("redraw_masks", "sample_at_eval",
                                                              "no_mask_padding", "release_protocol")
                          if getattr(args, f)],
                        *[f"--set {a}" for a in args.assignments],
                        "--variants", *variants, "--settings", *settings, "--seeds",
                        str(args.seeds), "--workers", str(args.workers),
                        *(["--backend", "ray"] if args.backend == "ray" else []),
                        *(["--overwrite"] if args.overwrite else []), "--out", str(args.out)])
    start = time.perf_counter()
    run: dict[str, Any] = dict(progress=not args.no_progress, command=command,
                               **({"overwrite": True} if args.overwrite else {}))
    if args.backend == "ray":
        run.update(backend="ray", address=args.ray_address)
    try:
        try:
            table = sweep.run_sweep(config, args.out, variants, settings, args.seeds,
                                    args.workers, **run)
        except LockedError as err:
            if not args.wait:
                raise LockedError(f"{_as_out(err)} (--wait: wait for it, then run what it "
                                  "left)") from err
            print(f"{PROG} sweep: {_as_out(err)}; waiting (--wait)", file=sys.stderr)
            table = sweep.run_sweep(config, args.out, variants, settings, args.seeds,
                                    args.workers, wait=True, **run)
    except ValueError as err:
        if str(err).startswith("path: ") and not isinstance(err, LockedError):
            raise ValueError(_as_out(err)) from err
        raise
    except KeyboardInterrupt as err:
        code, word = stopped(err)
        where = (f"{args.out} keeps its earlier results; the new runs finished so far are in "
                 f"{staged}" if args.overwrite and staged.exists() else
                 f"finished runs are in {args.out}")
        print(f"{PROG} sweep: {word}: {where}; run the same command to resume", file=sys.stderr)
        return code
    runs = len(table[["variant", "setting", "seed"]].drop_duplicates())
    print(f"{args.out}: {runs} runs ({time.perf_counter() - start:.0f} s in this call); "
          f"next: {PROG} report {args.out}")
    return 0


def _as_out(err: Exception) -> str:
    """A run_sweep message about its ``path`` argument, in terms of ``--out``."""
    text = str(err)
    if text.startswith("path: "):
        text = "--out: " + text[len("path: "):]
    return text.replace("or another path", "or another --out")


def _report_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("results", type=Path, help="a results CSV written by sweep")
    p.add_argument("--out", type=Path, help="report stem: writes OUT.md and OUT.csv (a .md or "
                   ".csv ending is dropped first; default: RESULTS without .csv, plus _report); "
                   "neither may be RESULTS")
    p.add_argument("--overwrite", action="store_true", help="replace OUT.md and OUT.csv if they "
                   "exist (both are replaced together, once the report is made)")
    p.add_argument("--title", help="title of the markdown report (default from RESULTS)")
    p.add_argument("--baseline", default="redcore", help="variant the others are compared with")


def _report(args: argparse.Namespace) -> int:
    from . import sweep

    stem = args.out or args.results.with_name(args.results.stem + "_report")
    md, csv = sweep.report_paths(stem)
    check_not_inputs({"--out": [md, csv]}, {"RESULTS": args.results})
    there = [str(p) for p in (md, csv) if p.exists()]
    if there and not args.overwrite:
        raise ValueError(f"--out: {' and '.join(map(repr, there))} already exist (OUT.md, OUT.csv); allowed: "
                         "--overwrite to replace the report, or another --out")
    for path in (md, csv):
        if path.is_dir():
            raise ValueError(f"--out: {str(path)!r} is a folder; allowed: a report stem whose "
                             ".md and .csv files can be written")
    table = sweep.load_table(args.results)
    title = args.title or f"Ablations: {args.results.stem}, every variant against {args.baseline}"
    _, text = sweep.report(table, stem, title, args.baseline,
                           source=f"results: {str(args.results)!r}")
    section = text.split("## Which overall differences")[1].split("\n## ")[0]
    print(f"Which overall differences{section.rstrip()}")
    print(f"wrote {md} and {csv}")
    return 0


register("sweep", "run a grid of ablation variants x missing-rate settings x seeds (resumable)",
         _sweep_arguments, _sweep)
register("report", "paired differences of every variant against RedCore, with 95% intervals",
         _report_arguments, _report)
