"""A catalogue of bad inputs and hostile-but-fair uses (issue 18): config, data, files, the
command line, concurrency, ``kill -9`` during train / sweep / a checkpoint write, and write
failures under a file-size limit.

Every error case asserts the exact error type, that the message names the argument (or the
file), the value and what is allowed, and that no result file was lost or half-written (the
folder's files hash the same before and after). Cases that train in a subprocess are marked
``slow`` and have generous timeouts (the suite must pass on a loaded 2-core machine).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import resource
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import torch
from conftest import tiny_config, tiny_splits

import redcore_lite as rc
from redcore_lite import cli, sweep
from redcore_lite._files import LockedError, exclusive, lock_path
from redcore_lite.checkpoint import content_digest
from redcore_lite.trainer import SetupWarning

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 600  # seconds per subprocess: generous, the machine may be busy


# ---------------------------------------------------------------- helpers


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (hidden ones too) -> sha256 of its bytes."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def check_message(err: BaseException | str, needles: list[str]) -> None:
    text = str(err)
    for needle in needles:
        assert needle in text, f"{needle!r} not in {text!r}"


def run_cli(capsys, argv: list[str]) -> tuple[int, str, str]:
    """``redcore-lite ARGV`` in this process: exit code, stdout, stderr."""
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as exc:  # argparse usage errors
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str, command: str) -> str:
    """stderr holds exactly one line, the command's error (no traceback); return it."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err, err
    errors = [line for line in lines if line.startswith(f"redcore-lite {command}: error: ")]
    assert len(errors) == 1 and errors == lines[-1:], err
    return errors[0]


def env(threads: int = 1) -> dict[str, str]:
    """Environment of a subprocess: this checkout first on the path, fixed thread count."""
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": str(threads),
            "MPLBACKEND": "Agg"}


def python(code: str, *args: str, preexec_fn=None, timeout: int = TIMEOUT,
           cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], env=env(),
                          capture_output=True, text=True, timeout=timeout, preexec_fn=preexec_fn,
                          cwd=cwd)


def redcore(*argv, preexec_fn=None, timeout: int = TIMEOUT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "redcore_lite", *map(str, argv)], env=env(),
                          capture_output=True, text=True, timeout=timeout, preexec_fn=preexec_fn)


def wait_for(condition, proc: subprocess.Popen | None = None, limit: float = TIMEOUT) -> None:
    """Poll ``condition()`` (no timing assertion: only a generous limit against a hang)."""
    start = time.monotonic()
    while not condition():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process ended early: {proc.returncode}\n"
                                 f"{proc.stderr.read() if proc.stderr else ''}")
        assert time.monotonic() - start < limit, "gave up waiting"
        time.sleep(0.2)


def put(path: Path, data: bytes | str) -> Path:
    """Write ``data`` to ``path``; return ``path``."""
    if isinstance(data, str):
        path.write_text(data)
    else:
        path.write_bytes(data)
    return path


def flip_tensor_byte(src: Path, dst: Path, index: int = 3) -> None:
    """Copy a checkpoint with one byte of a tensor record changed (the zip stays intact)."""
    data = bytearray(src.read_bytes())
    with zipfile.ZipFile(src) as z:
        info = [i for i in z.infolist() if "/data/" in i.filename and i.file_size >= 16][index]
    head = info.header_offset
    name_len = int.from_bytes(data[head + 26:head + 28], "little")
    extra_len = int.from_bytes(data[head + 28:head + 30], "little")
    data[head + 30 + name_len + extra_len + 5] ^= 0x10
    dst.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A tiny fit's checkpoint (read only: cases copy it)."""
    path = tmp_path_factory.mktemp("trained") / "checkpoint.pt"
    cfg = tiny_config(3)
    rc.fit(cfg, tiny_splits(cfg), checkpoint=path)
    return path


# ---------------------------------------------------------------- config (through fit)

INF, NAN = math.inf, math.nan
CONFIG_CASES = [  # id, override sections, needles of the ValueError (argument, value, allowed)
    ("lr-inf", {"train": {"lr": INF}}, ["train.lr", "inf", "allowed: a finite number"]),
    ("lr-nan", {"train": {"lr": NAN}}, ["train.lr", "nan", "allowed: a finite number"]),
    ("eta-inf", {"advantage": {"eta": INF}}, ["advantage.eta", "inf", "allowed: a finite number"]),
    ("floor-inf", {"advantage": {"floor": INF}}, ["advantage.floor", "inf", "allowed: a finite"]),
    ("kl-inf", {"loss": {"kl_weight": INF}}, ["loss.kl_weight", "inf", "allowed: a finite"]),
    ("rho-str", {"advantage": {"rho": "0.7"}}, ["advantage.rho", "'0.7' (str)", "allowed: a finite"]),
    ("seed-str", {"train": {"seed": "0"}}, ["train.seed", "'0' (str)", "allowed: an integer"]),
    ("seed-bool", {"train": {"seed": True}}, ["train.seed", "True (bool)", "allowed: an integer"]),
    ("batch-float", {"train": {"batch_size": 16.0}}, ["train.batch_size", "16.0", "an integer"]),
    ("rates-str", {"mask": {"rates": "0.2,0.5,0.8"}},
     ["mask.rates", "'0.2,0.5,0.8'", "allowed: a sequence of finite numbers"]),
    ("rates-1.5", {"mask": {"rates": (0.2, 0.5, 1.5)}}, ["mask.rates", "1.5", "every rate in [0, 1]"]),
    ("rates-two", {"mask": {"rates": (0.2, 0.5)}}, ["mask.rates", "[0.2, 0.5]", "exactly 3"]),
    ("rates-all-1", {"mask": {"rates": (1.0, 1.0, 1.0)}},
     ["mask.rates=[1.0, 1.0, 1.0]", "no modality in any training sample",
      "allowed: rates or a mechanism that leave some modality observed"]),
    ("mlp-hidden-0", {"model": {"mlp_hidden": 0}}, ["model.mlp_hidden", "got 0", "an integer > 0"]),
    ("head-layers-0", {"model": {"head_layers": (0,)}},
     ["model.head_layers", "(0,)", "allowed: layer widths that are integers >= 1"]),
    ("gen-layers-0", {"model": {"gen_layers": (32, 0)}}, ["model.gen_layers", "(32, 0)", ">= 1"]),
    ("latent-0", {"model": {"latent_dim": 0}}, ["model.latent_dim", "got 0", "an integer > 0"]),
    ("head-dropout-1", {"model": {"head_dropout": 1.0}}, ["model.head_dropout", "1.0", "[0, 1)"]),
    ("backbone", {"model": {"backbone": "cnn"}}, ["model.backbone", "'cnn'", "'mlp', 'transformer'"]),
    ("beta1-1", {"train": {"adam_beta1": 1.0}}, ["train.adam_beta1", "1.0", "a number in [0, 1)"]),
    ("batch-0", {"train": {"batch_size": 0}}, ["train.batch_size", "got 0", "an integer > 0"]),
    ("epochs-0", {"train": {"epochs_constant": 0, "epochs_decay": 0}},
     ["train.epochs_constant + train.epochs_decay", "got 0", "allowed: >= 1"]),
    ("device", {"train": {"device": "tpu"}}, ["train.device", "'tpu'", "allowed: 'auto', 'cpu'"]),
    ("mode", {"advantage": {"mode": "best"}}, ["advantage.mode", "'best'", "allowed: 'ra'"]),
    ("rho-0", {"advantage": {"rho": 0.0}}, ["advantage.rho", "0.0", "a number in (0, 1]"]),
    ("mechanism", {"mask": {"mechanism": "mnar"}}, ["mask.mechanism", "'mnar'", "'mcar'"]),
    ("split", {"data": {"split": (0.5, 0.5)}},
     ["data.split", "(0.5, 0.5)", "allowed: a sequence of 3 finite numbers"]),
]


@pytest.mark.parametrize("sections, needles", [c[1:] for c in CONFIG_CASES],
                         ids=[c[0] for c in CONFIG_CASES])
def test_config_case(cfg3, splits3, tmp_path, sections, needles):
    ckpt = tmp_path / "run" / "checkpoint.pt"
    with pytest.raises(ValueError) as info:
        rc.fit(rc.override(cfg3, **sections), splits3, checkpoint=ckpt)
    assert type(info.value) is ValueError
    check_message(info.value, needles)
    assert not ckpt.exists() and snapshot(tmp_path) == {}  # nothing written, no lock left


DATA_CONFIG_CASES = [  # fit(config) loads the data itself: these fail in load_data
    ("max-frames-neg", {"max_frames": -3}, ["data.max_frames", "-3", "an integer >= 0"]),
    ("num-samples-0", {"num_samples": 0}, ["data.num_samples", "got 0", "an integer >= 1"]),
    ("num-classes-1", {"num_classes": 1}, ["data.num_classes", "got 1", "an integer >= 2"]),
    ("dim-0", {"dims": (6, 0, 4)}, ["train.features['V']", "(84, 0)", "at least 1 feature"]),
    ("dims-str", {"dims": "6,5,4"}, ["data.dims", "'6,5,4'", "a sequence of integers"]),
]


@pytest.mark.parametrize("fields, needles", [c[1:] for c in DATA_CONFIG_CASES],
                         ids=[c[0] for c in DATA_CONFIG_CASES])
def test_data_config_case(cfg3, fields, needles):
    with pytest.raises(ValueError) as info:
        rc.fit(rc.override(cfg3, data=fields))
    assert type(info.value) is ValueError
    check_message(info.value, needles)


# ---------------------------------------------------------------- data


def _with(splits: rc.Splits, part: str = "train", **changes) -> rc.Splits:
    data = getattr(splits, part)
    new = rc.MultimodalData(changes.get("features", dict(data.features)),
                            changes.get("labels", data.labels),
                            changes.get("num_classes", data.num_classes), dict(data.lengths))
    return rc.Splits(**{"train": splits.train, "val": splits.val, "test": splits.test, part: new})


def _class_only_in_val(s: rc.Splits) -> rc.Splits:
    y = s.train.labels.clone()
    y[y == 3] = 0
    return _with(s, labels=y)


def _nan(s: rc.Splits) -> rc.Splits:
    x = s.val.features["V"].clone()
    x[3, 1] = float("nan")
    return _with(s, "val", features={**s.val.features, "V": x})


def _labels(s: rc.Splits, y: torch.Tensor) -> rc.Splits:
    return _with(s, labels=y)


DATA_CASES = [  # id, splits -> bad splits (or another object), needles
    ("one-modality", lambda s: _with(s, features={"A": s.train.features["A"]}),
     ["train.features", "['A']", "allowed: at least 2"]),
    ("dim-0", lambda s: _with(s, features={**s.train.features, "L": s.train.features["L"][:, :0]}),
     ["train.features['L']", "(84, 0)", "allowed: at least 1 feature"]),
    ("class-only-in-val", _class_only_in_val,
     ["val.labels: class 3", "none in train", "allowed: labels of classes the training split has"]),
    ("float-labels", lambda s: _labels(s, s.train.labels.float()),
     ["train.labels", "torch.float32", "allowed: a 1-D integer tensor"]),
    ("labels-out-of-range", lambda s: _labels(s, torch.where(s.train.labels == 0, 7, s.train.labels)),
     ["train.labels", "[1, 7]", "allowed: integers in [0, 3]"]),
    ("negative-labels", lambda s: _labels(s, s.train.labels - 1),
     ["train.labels", "[-1, 2]", "allowed: integers in [0, 3]"]),
    ("nan", _nan, ["val.features['V']", "1 NaN", "allowed: finite numbers only"]),
    ("complex", lambda s: _with(s, features={**s.train.features,
                                             "A": s.train.features["A"].to(torch.complex64)}),
     ["train.features['A']", "complex64", "allowed: real numbers"]),
    ("empty-val", lambda s: rc.Splits(s.train, s.val.subset(torch.arange(0)), s.test),
     ["val: the split is empty (0 samples)", "allowed: at least 1 sample"]),
    ("dims-differ", lambda s: _with(s, "test", features={**s.test.features,
                                                         "L": s.test.features["L"][:, :2]}),
     ["test.features['L']", "feature dim 2", "allowed: 4"]),
    ("not-splits", lambda s: {"train": s.train}, ["data: got a dict", "allowed: redcore_lite.Splits"]),
]


@pytest.mark.parametrize("make, needles", [c[1:] for c in DATA_CASES], ids=[c[0] for c in DATA_CASES])
def test_data_case(cfg3, splits3, make, needles):
    with pytest.raises(ValueError) as info:
        rc.fit(cfg3, make(splits3))
    assert type(info.value) is ValueError
    check_message(info.value, needles)


def test_never_observed_modality_is_left_out_of_ra_with_a_warning(cfg3, splits3):
    """Rates (0.2, 1, 0.3): V's EMA stays 0; RA and beta's norm run over A and L only."""
    with pytest.warns(SetupWarning, match="modality 'V' is missing from every training sample"):
        res = rc.fit(rc.override(cfg3, mask={"rates": (0.2, 1.0, 0.3)},
                                 advantage={"interval": 1}), splits3)
    assert len(res.warnings) >= 1 and "beta_V = 0" in res.warnings[0]
    h = res.history
    assert (h["beta_V"] == 0).all() and (h["ra_V"] == 0).all()
    assert np.allclose(np.hypot(h["beta_A"], h["beta_L"]), 1.0, atol=1e-5)
    assert np.allclose(h["ra_A"] + h["ra_L"], 0.0, atol=1e-5)  # RA averages A and L only
    assert (h[["beta_A", "beta_L"]] > 0.1).all().all()  # not both driven to the floor


def test_inverse_weights_ignore_a_never_observed_modality(cfg3, splits3):
    """Before: beta ∝ 1/(1 - r) gave V (r = 1) ~1000x the others; now V has 0, A and L unit norm."""
    with pytest.warns(SetupWarning):
        res = rc.fit(rc.override(cfg3, mask={"rates": (0.2, 1.0, 0.3)},
                                 advantage={"mode": "inverse"}), splits3)
    b = res.beta().iloc[0]
    assert b["V"] == 0 and math.isclose(math.hypot(b["A"], b["L"]), 1.0, rel_tol=1e-5)
    assert b["A"] / b["L"] == pytest.approx(0.7 / 0.8, rel=1e-5)


def test_class_absent_from_every_split_is_a_warning(cfg3, splits3):
    wide = rc.Splits(*(rc.MultimodalData(dict(d.features), d.labels, 5, dict(d.lengths))
                       for d in (splits3.train, splits3.val, splits3.test)))
    with pytest.warns(SetupWarning, match=r"class\(es\) \[4\] of num_classes=5"):
        res = rc.fit(cfg3, wide)
    assert any("have no sample in any split" in w for w in res.warnings)


@pytest.mark.parametrize("features, labels, note", [
    (torch.float64, torch.long, "features['A'] of train/val/test: float64 converted to float32"),
    (torch.float32, torch.int32, "labels of train/val/test: int32 converted to int64"),
    (torch.float16, torch.int16, "float16 converted to float32"),
])
def test_dtypes_are_converted_with_a_note(cfg3, splits3, features, labels, note):
    """float64 copies of float32 data train exactly like the data itself (a lossless round
    trip); float16 features and int16 labels train too."""
    conv = rc.Splits(*(rc.MultimodalData({m: x.to(features) for m, x in d.features.items()},
                                         d.labels.to(labels), d.num_classes)
                       for d in (splits3.train, splits3.val, splits3.test)))
    with pytest.warns(SetupWarning, match="converted"):
        res = rc.fit(cfg3, conv)
    assert any(note in w for w in res.warnings), res.warnings
    if features != torch.float16:
        pd.testing.assert_frame_equal(res.history, rc.fit(cfg3, splits3).history)
    assert len(rc.evaluate(res.model, conv.test)) == 8  # evaluate converts too


def test_bool_labels_and_integer_features_train(cfg3):
    data = rc.make_synthetic(120, (6, 5), num_classes=2, seed=0)
    feats = {m: (x * 4).round().to(torch.int64) for m, x in data.features.items()}
    own = rc.MultimodalData(feats, data.labels.bool(), 2)
    splits = rc.stratified_split(own, seed=0)
    with pytest.warns(SetupWarning):
        res = rc.fit(rc.override(cfg3, mask={"rates": (0.2, 0.5)}), splits)
    assert any("bool converted to int64" in w for w in res.warnings)
    assert any("int64 converted to float32" in w for w in res.warnings)


# ---------------------------------------------------------------- files (library)


def _checkpoint_with(src: Path, dst: Path, change, rehash: bool) -> Path:
    """A copy of a checkpoint with ``change(state)`` applied, its digest kept (damage) or
    recomputed (a consistent file holding what ``change`` wrote)."""
    state = torch.load(src, weights_only=True)
    change(state)
    if rehash:
        state["sha256"] = content_digest(state)
    torch.save(state, dst)
    return dst


def _nan_weight(state: dict) -> None:
    key = next(iter(state["model"]))
    state["model"][key] = torch.full_like(state["model"][key], float("nan"))


def _optimizer_bits(state: dict) -> None:
    state["optimizer"]["exp_avg"][0].add_(1e-3)


def _legacy_nan(state: dict) -> None:
    _nan_weight(state)
    state["best"]["state"] = dict(state["model"])
    del state["sha256"]  # a file written before checkpoints had a digest


FILE_CASES = [  # id, make(tmp, trained) -> path, call(path), needles ({p} = the path)
    ("ckpt-missing", lambda t, c: t / "nope.pt", rc.load_model,
     ["checkpoint: '{p}' does not exist", "allowed: a complete checkpoint file"]),
    ("ckpt-folder", lambda t, c: t, rc.load_model, ["checkpoint: '{p}' is a folder, not a file"]),
    ("ckpt-empty", lambda t, c: put(t / "e.pt", b""), rc.load_model,
     ["checkpoint: '{p}' is empty (0 bytes)", "allowed: a complete checkpoint file"]),
    ("ckpt-truncated", lambda t, c: put(t / "t.pt", c.read_bytes()[:4000]),
     rc.load_model, ["checkpoint: '{p}' cannot be read as a checkpoint", "truncated",
                     "allowed: a complete checkpoint file"]),
    ("ckpt-random", lambda t, c: put(t / "r.pt", np.random.default_rng(0).bytes(5000)), rc.load_model,
     ["checkpoint: '{p}' cannot be read as a checkpoint"]),
    ("ckpt-text", lambda t, c: put(t / "x.pt", "not a checkpoint\n"),
     rc.load_model,
     ["checkpoint: '{p}' cannot be read as a checkpoint"]),
    ("ckpt-flipped-byte", lambda t, c: flip_tensor_byte(c, t / "f.pt") or t / "f.pt",
     rc.load_model, ["checkpoint: '{p}' is damaged", "no longer matches the sha256",
                     "allowed: a complete checkpoint file"]),
    ("ckpt-nan-weights", lambda t, c: _checkpoint_with(c, t / "n.pt", _nan_weight, True),
     rc.load_model, ["checkpoint: '{p}' holds", "NaN or infinite value(s) in its model",
                     "allowed: a complete checkpoint file written by redcore_lite"]),
    ("ckpt-legacy-nan", lambda t, c: _checkpoint_with(c, t / "l.pt", _legacy_nan, False),
     rc.load_model, ["checkpoint: '{p}' holds", "NaN or infinite value(s)"]),
    ("ckpt-foreign", lambda t, c: torch.save({"weights": torch.ones(2)}, t / "o.pt") or t / "o.pt",
     rc.load_model, ["checkpoint: '{p}' is not a redcore_lite.checkpoint/1 file"]),
    ("ckpt-hollow", lambda t, c: rc.checkpoint.save_checkpoint(t / "h.pt", {"config": {}}),
     rc.load_model, ["checkpoint: '{p}' does not describe a model", "KeyError"]),
]


@pytest.mark.parametrize("make, call, needles", [c[1:] for c in FILE_CASES],
                         ids=[c[0] for c in FILE_CASES])
def test_file_case(tmp_path, trained, make, call, needles):
    path = make(tmp_path, trained)
    before = snapshot(tmp_path)
    with pytest.raises(ValueError) as info:
        call(path)
    assert type(info.value) is ValueError
    check_message(info.value, [n.format(p=path) for n in needles])
    assert snapshot(tmp_path) == before


def test_resume_refuses_a_corrupted_optimizer_state(tmp_path, cfg3, splits3, trained):
    """Before: resumed from silently. Now: the digest differs, the resume stops, nothing written."""
    ckpt = _checkpoint_with(trained, tmp_path / "checkpoint.pt", _optimizer_bits, False)
    before = snapshot(tmp_path)
    with pytest.raises(ValueError, match=r"is damaged: its content no longer matches"):
        rc.fit(cfg3, splits3, checkpoint=ckpt, resume=True)
    assert snapshot(tmp_path) == before


def test_checkpoint_in_an_unwritable_place_fails_before_training(tmp_path, cfg3, splits3):
    (tmp_path / "f").write_text("a file")
    with pytest.raises(ValueError, match=r"checkpoint: cannot create the folder '.*/f' \(File "
                                         r"exists\); allowed: a path in a folder you can write"):
        rc.fit(cfg3, splits3, checkpoint=tmp_path / "f" / "checkpoint.pt",
               callbacks=[lambda e: pytest.fail("trained an epoch")])
    with pytest.raises(ValueError, match=r"checkpoint: .* is a folder; allowed: a file path"):
        rc.fit(cfg3, splits3, checkpoint=tmp_path, callbacks=[lambda e: pytest.fail("trained")])


def test_two_fits_on_one_checkpoint(tmp_path, cfg3, splits3):
    ckpt = tmp_path / "checkpoint.pt"
    with exclusive(ckpt, lock_path(ckpt), "checkpoint", "fit"):
        with pytest.raises(LockedError) as info:
            rc.fit(cfg3, splits3, checkpoint=ckpt)
    check_message(info.value, [f"checkpoint: '{ckpt}' is in use by another process (fit, pid "
                               f"{os.getpid()}", "allowed: wait until it has finished"])
    assert isinstance(info.value, ValueError) and not ckpt.exists()


def test_stale_temporary_file_is_removed_by_the_next_write(tmp_path, cfg3, splits3):
    """A writer killed between write and rename leaves .NAME.PID.XXXX.tmp; the next write of NAME
    removes it when PID is gone, and keeps one whose writer is alive."""
    ckpt = tmp_path / "checkpoint.pt"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, timeout=TIMEOUT)
    stale = tmp_path / f".checkpoint.pt.{int(dead.stdout)}.abcd1234.tmp"
    alive = tmp_path / f".checkpoint.pt.{os.getpid()}.live0000.tmp"
    stale.write_bytes(b"half a checkpoint")
    alive.write_bytes(b"being written")
    rc.fit(cfg3, splits3, checkpoint=ckpt)
    assert not stale.exists() and alive.exists() and rc.load_checkpoint(ckpt)["epoch"] == 2


def _mmin(tmp: Path) -> Path:
    from test_datasets import write_mmin

    write_mmin(tmp / "feat", "iemocap")
    return tmp / "feat"


def _truncate(path: Path, keep: int) -> None:
    path.write_bytes(path.read_bytes()[:keep])


def _iemocap_truncated_h5(tmp: Path):
    root = _mmin(tmp)
    _truncate(root / "V" / "denseface.h5", 1500)
    return lambda: rc.datasets.load_mmin(root), [f"{root / 'V' / 'denseface.h5'}: cannot be read "
                                                "as HDF5", "expected the V features of iemocap"]


def _iemocap_nan(tmp: Path):
    root = _mmin(tmp)
    with h5py.File(root / "L" / "bert_large.h5", "a") as f:
        uid = sorted(f)[2]
        x = f[uid][()]
        x[0, 3] = np.nan
        del f[uid]
        f[uid] = x
    return lambda: rc.datasets.load_mmin(root, normalise=True), [
        f"{root / 'L' / 'bert_large.h5'}[{uid!r}]: holds 1 NaN", "expected finite features"]


def _iemocap_max_frames(tmp: Path):
    root = _mmin(tmp)
    return lambda: rc.datasets.load_mmin(root, max_frames=-2), [
        "max_frames: got -2", "allowed: an integer >= 0"]


def _mosei_truncated(tmp: Path):
    from test_datasets import write_mosei

    write_mosei(tmp / "m.pkl", seq_len=4)
    _truncate(tmp / "m.pkl", 500)
    return lambda: rc.datasets.load_mosei(tmp / "m.pkl"), [
        f"{tmp / 'm.pkl'}: cannot be read as a pickle", "expected the MMSA aligned_50.pkl"]


def _npz_truncated(tmp: Path):
    from test_custom import write_npz

    write_npz(tmp / "own.npz")
    _truncate(tmp / "own.npz", 700)
    return lambda: rc.custom_io.read_npz(tmp / "own.npz"), [
        f"{tmp / 'own.npz'}: cannot be read as .npz", "expected an .npz file"]


def _csv_binary(tmp: Path):
    (tmp / "own.csv").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    return lambda: rc.custom_io.read_table(tmp / "own.csv", {"A": "a"}), [
        f"{tmp / 'own.csv'}: cannot be read as a table", "expected a CSV (UTF-8 text"]


def _h5_folder_truncated(tmp: Path):
    from test_custom import write_h5_folder

    folder = write_h5_folder(tmp / "h5")
    _truncate(folder / "V.h5", 900)
    return lambda: rc.custom_io.read_hdf5_folder(folder, label="animal"), [
        f"{folder / 'V.h5'}: cannot be read as HDF5", "expected one dataset per sample id"]


def _manifest_bad_json(tmp: Path):
    (tmp / "s.csv").write_text(",".join(sweep.COLUMNS) + "\n")
    (tmp / "s.json").write_text('{"config": ')
    return lambda: sweep.run_sweep(tiny_config(3), tmp / "s.csv", ["redcore"], ["none"], 1, 1), [
        f"path: '{tmp / 's.json'}' is not valid JSON", "allowed: the JSON manifest run_sweep"]


def _results_binary(tmp: Path):
    (tmp / "s.csv").write_bytes(bytes(range(256)) * 8)
    return lambda: sweep.load_table(tmp / "s.csv"), [
        f"path: '{tmp / 's.csv'}' cannot be read as a table", "allowed: a CSV written by run_sweep"]


def _results_folder(tmp: Path):
    return lambda: sweep.load_table(tmp), [f"path: '{tmp}' is a folder, not a file",
                                           "allowed: a CSV written by run_sweep"]


def _sweep_into_folder(tmp: Path):
    return lambda: sweep.run_sweep(tiny_config(3), tmp, ["redcore"], ["none"], 1, 1), [
        f"path: '{tmp}' is a folder", "allowed: a CSV file"]


def _sweep_json_path(tmp: Path):
    return lambda: sweep.run_sweep(tiny_config(3), tmp / "r.json", ["redcore"], ["none"], 1, 1), [
        "path: got", "r.json", "allowed: a results file not ending in .json"]


def _sweep_bad_seeds(tmp: Path):
    return lambda: sweep.run_sweep(tiny_config(3), tmp / "r.csv", ["redcore"], ["none"], "3", 1), [
        "seeds: got '3'", "allowed: a count (int) or a list of integers"]


def _sweep_bad_config(tmp: Path):
    bad = rc.override(tiny_config(3), train={"lr": INF})
    return lambda: sweep.run_sweep(bad, tmp / "r.csv", ["redcore"], ["none"], 1, 1), [
        "train.lr: got inf", "allowed: a finite number"]


READER_CASES = [  # id, make(tmp) -> (call, needles)
    ("iemocap-truncated-h5", _iemocap_truncated_h5),
    ("iemocap-nan-utterance", _iemocap_nan),
    ("iemocap-max-frames", _iemocap_max_frames),
    ("mosei-truncated-pickle", _mosei_truncated),
    ("custom-truncated-npz", _npz_truncated),
    ("custom-binary-csv", _csv_binary),
    ("custom-truncated-h5", _h5_folder_truncated),
    ("sweep-manifest-bad-json", _manifest_bad_json),
    ("sweep-results-binary", _results_binary),
    ("sweep-results-folder", _results_folder),
    ("sweep-into-folder", _sweep_into_folder),
    ("sweep-json-path", _sweep_json_path),
    ("sweep-seeds-str", _sweep_bad_seeds),
    ("sweep-config-inf", _sweep_bad_config),
]


@pytest.mark.parametrize("make", [c[1] for c in READER_CASES], ids=[c[0] for c in READER_CASES])
def test_reader_case(tmp_path, make):
    call, needles = make(tmp_path)
    before = snapshot(tmp_path)
    with pytest.raises(ValueError) as info:
        call()
    assert type(info.value) is ValueError
    check_message(info.value, needles)
    assert snapshot(tmp_path) == before


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> pd.DataFrame:
    """An uninterrupted sweep of four tiny runs (the table every other sweep must reproduce)."""
    path = tmp_path_factory.mktemp("ref") / "r.csv"
    return sweep.run_sweep(tiny_config(3), path, ["redcore", "no_ra"], ["balanced"], 2, workers=1)


def test_a_run_appended_twice_is_kept_once(tmp_path, reference):
    """Before: two sweeps on one file appended each run twice and load_table dropped every run
    with twice the expected rows (0 rows left). Now: the first copy of each run is kept."""
    path = tmp_path / "r.csv"
    path.write_text(reference.to_csv(index=False, float_format="%.4f")
                    + reference.to_csv(index=False, header=False, float_format="%.4f"))
    table = sweep.load_table(path, repair=True)
    pd.testing.assert_frame_equal(table, reference)
    assert len(pd.read_csv(path)) == len(reference)  # repaired on disk


# ---------------------------------------------------------------- command line (in process)


def _earlier_results(tmp: Path) -> Path:
    """A folder of an earlier train (mfeat) whose checkpoint.pt was deleted."""
    out = tmp / "run"
    out.mkdir()
    (out / "config.json").write_text(json.dumps({"data": {"name": "mfeat"}}))
    (out / "test_patterns.csv").write_text("pattern,wa\noverall,0.9\n")
    return out


def _with_checkpoint(tmp: Path) -> Path:
    out = _earlier_results(tmp)
    (out / "checkpoint.pt").write_bytes(b"an earlier checkpoint")
    return out


def _ckpt_copy(tmp: Path, trained: Path, how: str) -> Path:
    path = tmp / "c.pt"
    data = trained.read_bytes()
    if how == "flip":
        flip_tensor_byte(trained, path)
    else:
        path.write_bytes({"truncated": data[:4000], "empty": b"", "random": os.urandom(3000)}[how])
    return path


SMOKE = ["--preset", "smoke", "--epochs", "1", "--device", "cpu"]
CLI_CASES = [  # id, command, argv (formatted with t = tmp_path and the made paths), needles
    ("out-is-a-file", "train", lambda t, c: ["train", "synthetic", *SMOKE, "--out", t / "f.txt"],
     ["--out: '{t}/f.txt' is a file", "allowed: a folder"]),
    ("out-not-empty", "train", lambda t, c: ["train", "synthetic", *SMOKE, "--out", _earlier_results(t)],
     ["--out: '{t}/run' is not empty", "an earlier run on 'mfeat'",
      "allowed: a new or empty folder, --overwrite"]),
    ("out-has-checkpoint", "train", lambda t, c: ["train", "synthetic", *SMOKE, "--out",
                                                  _with_checkpoint(t)],
     ["--out: '{t}/run' already holds checkpoint.pt", "allowed: --resume to continue it"]),
    ("resume-and-overwrite", "train", lambda t, c: ["train", "synthetic", *SMOKE, "--resume",
                                                    "--overwrite", "--out", t / "run"],
     ["--resume, --overwrite: got both", "allowed: one of them"]),
    ("resume-without-checkpoint", "train", lambda t, c: ["train", "synthetic", *SMOKE, "--resume",
                                                         "--out", _earlier_results(t)],
     ["--resume: '{t}/run' holds config.json", "no checkpoint.pt", "allowed: --overwrite"]),
    ("max-frames-negative", "train", lambda t, c: ["train", "iemocap", "--max-frames", "-3",
                                                   "--out", t / "run"],
     ["argument --max-frames: got '-3'", "allowed: an integer >= 0"]),
    ("epochs-0", "train", lambda t, c: ["train", "synthetic", "--epochs", "0", "--out", t / "run"],
     ["--epochs: got 0", "allowed: an integer >= 1"]),
    ("set-lr-inf", "train", lambda t, c: ["train", "synthetic", *SMOKE, "--set", "train.lr=inf",
                                          "--out", t / "run"],
     ["--set train.lr: got 'inf'", "allowed: a finite number"]),
    ("set-head-0", "train", lambda t, c: ["train", "synthetic", *SMOKE, "--set",
                                          "model.head_layers=[0]", "--out", t / "run"],
     ["model.head_layers: got (0,)", "allowed: layer widths"]),
    ("rates-all-1", "train", lambda t, c: ["train", "synthetic", *SMOKE, "--rates", "1", "1", "1",
                                           "--out", t / "run"],
     ["mask.rates=[1.0, 1.0, 1.0]", "allowed: rates or a mechanism"]),
    ("rates-too-many", "train", lambda t, c: ["train", "synthetic", *SMOKE, "--rates", "0.1,0.2",
                                              "--out", t / "run"],
     ["--rates: got 2 rate(s) for 3 modalities", "allowed: one rate in [0, 1] per modality"]),
    ("custom-missing", "train", lambda t, c: ["train", "custom", *SMOKE, "--data", t / "no.csv",
                                              "--modality", "A=a", "--out", t / "run"],
     ["data.path: '{t}/no.csv' does not exist"]),
    ("evaluate-missing", "evaluate", lambda t, c: ["evaluate", t / "no.pt"],
     ["checkpoint: '{t}/no.pt' does not exist", "allowed: a complete checkpoint file"]),
    ("evaluate-folder", "evaluate", lambda t, c: ["evaluate", t],
     ["checkpoint: '{t}' is a folder, not a file"]),
    ("evaluate-empty", "evaluate", lambda t, c: ["evaluate", _ckpt_copy(t, c, "empty")],
     ["checkpoint: '{t}/c.pt' is empty (0 bytes)"]),
    ("evaluate-truncated", "evaluate", lambda t, c: ["evaluate", _ckpt_copy(t, c, "truncated")],
     ["checkpoint: '{t}/c.pt' cannot be read as a checkpoint"]),
    ("evaluate-random", "evaluate", lambda t, c: ["evaluate", _ckpt_copy(t, c, "random")],
     ["checkpoint: '{t}/c.pt' cannot be read as a checkpoint"]),
    ("evaluate-damaged", "evaluate", lambda t, c: ["evaluate", _ckpt_copy(t, c, "flip")],
     ["checkpoint: '{t}/c.pt' is damaged", "sha256"]),
    ("evaluate-out-not-empty", "evaluate", lambda t, c: ["evaluate", c, "--out",
                                                         _earlier_results(t)],
     ["--out: '{t}/run' is not empty", "allowed: a new or empty folder, --overwrite"]),
    ("sweep-config-binary", "sweep", lambda t, c: put(t / "b.json", bytes(range(256)))
     and ["sweep", "synthetic", "--config", t / "b.json", "--out", t / "s.csv"],
     ["--config: '{t}/b.json' is not UTF-8 text", "allowed: a sweep manifest"]),
    ("sweep-config-bad-json", "sweep", lambda t, c: put(t / "j.json", "{'a': 1}")
     and ["sweep", "synthetic", "--config", t / "j.json", "--out", t / "s.csv"],
     ["--config: '{t}/j.json' is not valid JSON", "line 1, column 2", "allowed: a sweep manifest"]),
    ("sweep-config-list", "sweep", lambda t, c: put(t / "l.json", "[1, 2]")
     and ["sweep", "synthetic", "--config", t / "l.json", "--out", t / "s.csv"],
     ["--config: '{t}/l.json' holds a JSON list, not a config", "allowed: a sweep manifest"]),
    ("sweep-config-folder", "sweep", lambda t, c: ["sweep", "synthetic", "--config", t, "--out",
                                                   t / "s.csv"],
     ["--config: '{t}' is a folder, not a file"]),
    ("sweep-out-folder", "sweep", lambda t, c: ["sweep", "synthetic", "--out", t],
     ["--out: '{t}' is a folder", "allowed: a CSV file"]),
    ("sweep-settings", "sweep", lambda t, c: ["sweep", "synthetic", "--settings", "nope", "--out",
                                              t / "s.csv"],
     ["settings: got ['nope']", "allowed: a non-empty list of none, balanced"]),
    ("report-missing", "report", lambda t, c: ["report", t / "no.csv"],
     ["path: '{t}/no.csv' does not exist", "allowed: a CSV written by run_sweep"]),
    ("report-binary", "report", lambda t, c: put(t / "s.csv", b"\xff\xfe" * 40)
     and ["report", t / "s.csv"],
     ["path: '{t}/s.csv' cannot be read as a table"]),
]


@pytest.mark.parametrize("command, make, needles", [c[1:] for c in CLI_CASES],
                         ids=[c[0] for c in CLI_CASES])
def test_cli_case(tmp_path, capsys, monkeypatch, trained, command, make, needles):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "f.txt").write_text("a file in the way\n")
    argv = make(tmp_path, trained)
    before = snapshot(tmp_path)
    code, out, err = run_cli(capsys, argv)
    assert code == 2, err
    line = one_error_line(err, command)
    check_message(line, [n.format(t=tmp_path) for n in needles])
    assert snapshot(tmp_path) == before  # nothing written, nothing lost
    assert not (tmp_path / "run").exists() or any((tmp_path / "run").iterdir())  # no empty --out


def test_out_read_only_fails_before_training(tmp_path, capsys, monkeypatch):
    """Before: a read-only --out failed only after a full trained epoch. Now: at once."""
    out = tmp_path / "ro"
    out.mkdir()
    if os.geteuid() == 0:  # root writes anywhere: make creating a file in ``out`` fail instead
        real = os.open

        def deny(path, *args, **kwargs):
            if Path(path).parent == out:
                raise PermissionError(13, "Permission denied", str(path))
            return real(path, *args, **kwargs)

        monkeypatch.setattr(os, "open", deny)
    else:
        out.chmod(0o555)
    monkeypatch.setattr(cli, "load_data", lambda *a, **k: pytest.fail("loaded data"))
    code, _, err = run_cli(capsys, ["train", "synthetic", *SMOKE, "--out", out])
    out.chmod(0o755)
    assert code == 2
    check_message(one_error_line(err, "train"), [f"--out: cannot write in '{out}'",
                                                 "Permission denied", "allowed: a folder you can"])
    assert list(out.iterdir()) == []


def test_overwrite_replaces_the_results_and_keeps_other_files(tmp_path, capsys):
    """Before: train --out over earlier results silently replaced them (mfeat became synthetic).
    Now only with --overwrite, which removes the files train writes first (no mix of runs)."""
    out = _earlier_results(tmp_path)
    (out / "val_complete_patterns.csv").write_text("from the earlier run\n")
    (out / "notes.txt").write_text("mine\n")
    code, _, err = run_cli(capsys, ["train", "synthetic", *SMOKE, "--overwrite", "--out", out])
    assert code == 0, err
    assert json.loads((out / "config.json").read_text())["data"]["name"] == "synthetic"
    assert not (out / "val_complete_patterns.csv").exists()  # the earlier run's file is gone
    assert (out / "notes.txt").read_text() == "mine\n"
    assert not any(p.name.endswith((".lock", ".tmp")) for p in out.iterdir())


def test_train_on_an_out_another_train_is_writing(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    with exclusive(out, out / cli.LOCK_NAME, "--out", "train"):
        code, _, err = run_cli(capsys, ["train", "synthetic", *SMOKE, "--out", out])
        assert code == 2
        check_message(one_error_line(err, "train"), [
            f"--out: '{out}' is in use by another process (train, pid {os.getpid()}",
            "allowed: wait until it has finished, or another --out"])
        assert [p.name for p in out.iterdir()] == [cli.LOCK_NAME]  # ours: nothing else written


def test_sweep_on_a_file_another_sweep_is_writing(tmp_path, capsys):
    path = tmp_path / "s.csv"
    with exclusive(path, lock_path(path), "path", "sweep"):
        code, _, err = run_cli(capsys, ["sweep", "synthetic", *SMOKE, "--seeds", "1", "--out", path])
    assert code == 2
    check_message(one_error_line(err, "sweep"), [
        f"--out: '{path}' is in use by another process (sweep, pid {os.getpid()}",
        "or another --out", "--wait: wait for it"])
    assert not path.exists() and not path.with_suffix(".json").exists()


def test_debug_prints_the_traceback(tmp_path, capsys):
    code, _, err = run_cli(capsys, ["--debug", "evaluate", tmp_path / "no.pt"])
    assert code == 2 and "Traceback (most recent call last)" in err
    assert err.rstrip().splitlines()[-1].startswith("redcore-lite evaluate: error: checkpoint:")
    code, _, err = run_cli(capsys, ["evaluate", tmp_path / "no.pt", "--debug"])
    assert code == 2 and "Traceback" in err


def test_an_unexpected_error_is_one_line_too(tmp_path, capsys, monkeypatch):
    def boom(*args, **kwargs):
        raise TypeError("something nobody foresaw")

    monkeypatch.setattr(cli, "load_data", boom)
    code, _, err = run_cli(capsys, ["train", "synthetic", *SMOKE, "--out", tmp_path / "run"])
    assert code == 1
    check_message(one_error_line(err, "train"), ["unexpected TypeError: something nobody foresaw",
                                                 "--debug prints the traceback"])
    assert not (tmp_path / "run").exists()  # the folder it created is removed again


def test_argparse_errors_are_one_line(capsys):
    code, _, err = run_cli(capsys, ["train"])
    assert code == 2 and len(err.strip().splitlines()) == 1 and "see redcore-lite train --help" in err


# ---------------------------------------------------------------- subprocesses: kills, races, limits


TRAIN = ["train", "synthetic", "--preset", "smoke", "--device", "cpu", "--seed", "3"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    """``train`` of 20 smoke epochs without interruption (the run every resume must equal)."""
    out = tmp_path_factory.mktemp("full") / "run"
    proc = redcore(*TRAIN, "--epochs", "20", "--out", out)
    assert proc.returncode == 0, proc.stderr
    return out


def same_results(a: Path, b: Path) -> None:
    for name in ("history.csv", "epochs.csv", "test_patterns.csv", "val_patterns.csv"):
        pd.testing.assert_frame_equal(pd.read_csv(a / name), pd.read_csv(b / name))


@pytest.mark.slow
def test_kill_9_during_train_then_resume(tmp_path, uninterrupted):
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "redcore_lite", *TRAIN, "--epochs", "20",
                             "--out", str(out)], env=env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: (out / "checkpoint.pt").exists(), proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait(TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
    epoch = rc.load_checkpoint(out / "checkpoint.pt")["epoch"]  # whole and intact
    if epoch == 20:
        pytest.skip("the run finished before it could be killed")  # not seen: 20 epochs
    resumed = redcore(*TRAIN, "--epochs", "20", "--resume", "--out", out)
    assert resumed.returncode == 0, resumed.stderr  # the dead run's lock is not held
    same_results(out, uninterrupted)
    assert not any(p.name.endswith((".lock", ".tmp")) for p in out.iterdir())


KILL_IN_WRITE = """
import os, signal, sys
import redcore_lite.cli as cli
real, seen = os.replace, []
def replace(src, dst):
    if str(dst).endswith("checkpoint.pt"):
        seen.append(dst)
        if len(seen) == 3:  # the third checkpoint write: written, not yet renamed
            os.kill(os.getpid(), signal.SIGKILL)
    return real(src, dst)
os.replace = replace
sys.exit(cli.main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_kill_9_during_a_checkpoint_write(tmp_path, uninterrupted):
    """Killed between writing a checkpoint's temporary file and renaming it: the previous
    checkpoint stays whole, the temporary file is removed by the next write, and the resumed
    run equals the uninterrupted one."""
    out = tmp_path / "run"
    proc = python(KILL_IN_WRITE, *TRAIN, "--epochs", "20", "--out", out)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    temps = [p for p in out.iterdir() if p.name.endswith(".tmp")]
    assert len(temps) == 1 and temps[0].name.startswith(".checkpoint.pt.")
    assert rc.load_checkpoint(out / "checkpoint.pt")["epoch"] == 2
    resumed = redcore(*TRAIN, "--epochs", "20", "--resume", "--out", out)
    assert resumed.returncode == 0, resumed.stderr
    assert not temps[0].exists()
    same_results(out, uninterrupted)


SWEEP = ["sweep", "synthetic", "--preset", "smoke", "--epochs", "2", "--device", "cpu",
         "--variants", "redcore", "no_ra", "--settings", "balanced", "--seeds", "2", "--workers",
         "1", "--no-progress"]
GRID = {"variants": ["redcore", "no_ra"], "settings": ["balanced"], "seeds": 2}


@pytest.fixture(scope="module")
def sweep_reference(tmp_path_factory) -> pd.DataFrame:
    path = tmp_path_factory.mktemp("sref") / "s.csv"
    base = rc.override(rc.preset("smoke"), train={"device": "cpu", "epochs_constant": 1,
                                                  "epochs_decay": 1})
    return sweep.run_sweep(base, path, workers=1, **GRID)


@pytest.mark.slow
def test_kill_9_during_a_sweep_then_resume(tmp_path, sweep_reference):
    path = tmp_path / "s.csv"
    proc = subprocess.Popen([sys.executable, "-m", "redcore_lite", *SWEEP, "--out", str(path)],
                            env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: path.exists() and path.read_text().count("\n") > 1, proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait(TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
    runs = sweep.load_table(path).groupby(["variant", "setting", "seed"]).ngroups
    assert 1 <= runs <= 4
    resumed = redcore(*SWEEP, "--out", path)
    assert resumed.returncode == 0, resumed.stderr
    pd.testing.assert_frame_equal(sweep.load_table(path), sweep_reference)
    sessions = json.loads(path.with_suffix(".json").read_text())["sessions"]
    assert [s["runs_todo"] for s in sessions] == [4, 4 - runs]


HOLD_SWEEP = """
import os, sys, time
from pathlib import Path
import redcore_lite as rc
from redcore_lite import sweep
path, gate = Path(sys.argv[1]), Path(sys.argv[2])
def pause(key, n):  # hold the file (and its lock) until the test opens the gate
    (gate.parent / "started").write_text(str(os.getpid()))
    while n == 1 and not gate.exists():
        time.sleep(0.1)
base = rc.override(rc.preset("smoke"), train={"device": "cpu", "epochs_constant": 1, "epochs_decay": 1})
sweep.run_sweep(base, path, ["redcore", "no_ra"], ["balanced"], 2, 1, command="A", on_run=pause)
"""


@pytest.mark.slow
def test_two_identical_sweeps_lose_nothing(tmp_path, sweep_reference):
    """Before: two identical sweeps on one CSV both exited 0 and left 0 rows (every run written
    twice, then dropped), and the manifest kept one session. Now the second stops at once naming
    the first one's pid; a third with --wait (and other variants) waits, then runs what is left."""
    path, gate = tmp_path / "s.csv", tmp_path / "gate"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_SWEEP, str(path), str(gate)], env=env(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    waiter = None
    try:
        wait_for(lambda: (tmp_path / "started").exists(), holder)
        second = redcore(*SWEEP, "--out", path)
        assert second.returncode == 2
        check_message(one_error_line(second.stderr, "sweep"), [
            f"--out: '{path}' is in use by another process (sweep, pid {holder.pid}", "--wait"])
        other = [*SWEEP[:8], "--variants", "redcore", "uniform", *SWEEP[11:], "--wait",
                 "--out", str(path)]
        waiter = subprocess.Popen([sys.executable, "-m", "redcore_lite", *other], env=env(),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_for(lambda: "waiting (--wait)" in _peek(waiter))
        gate.write_text("go")
        assert holder.wait(TIMEOUT) == 0, holder.stderr.read()
        assert waiter.wait(TIMEOUT) == 0, waiter.stderr.read()
    finally:
        for proc in (holder, waiter):
            if proc is not None and proc.poll() is None:
                proc.kill()
    table = sweep.load_table(path)
    first = table[table["variant"].isin(["redcore", "no_ra"])].reset_index(drop=True)
    pd.testing.assert_frame_equal(first, sweep_reference)
    runs = table.groupby(["variant", "seed"]).size()
    assert len(runs) == 6 and (runs == 48).all()  # redcore, no_ra, uniform x 2 seeds, once each
    sessions = json.loads(path.with_suffix(".json").read_text())["sessions"]
    assert [s["command"].split()[0] if s["command"] else None for s in sessions] == ["A", "redcore-lite"]
    assert [s["runs_todo"] for s in sessions] == [4, 2]  # the waiter skipped the finished runs


_PEEKED: dict[int, str] = {}


def _peek(proc: subprocess.Popen) -> str:
    """What ``proc`` has written to stderr so far (read without blocking)."""
    import fcntl

    fd = proc.stderr.fileno()
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NONBLOCK)
    with contextlib.suppress(BlockingIOError, TypeError):
        chunk = os.read(fd, 65536).decode("utf-8", "replace")
        _PEEKED[proc.pid] = _PEEKED.get(proc.pid, "") + chunk
    return _PEEKED.get(proc.pid, "")


HOLD_TRAIN = """
import os, sys, time
from pathlib import Path
import redcore_lite.cli as cli
gate = Path(sys.argv[1])
real_fit = cli.fit
def fit(*args, **kwargs):
    def pause(info):
        (gate.parent / "started").write_text(str(os.getpid()))
        while not gate.exists():
            time.sleep(0.1)
    return real_fit(*args, callbacks=[pause], **kwargs)
cli.fit = fit
sys.exit(cli.main(sys.argv[2:]))
"""


@pytest.mark.slow
def test_two_trains_on_one_out(tmp_path):
    """Before: two trains on one --out raced (both wrote every file). Now the second stops at
    once, naming the first one's pid, and the first one's results are whole."""
    out, gate = tmp_path / "run", tmp_path / "gate"
    first = subprocess.Popen([sys.executable, "-c", HOLD_TRAIN, str(gate), *TRAIN, "--epochs", "2",
                              "--out", str(out)], env=env(), stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: (tmp_path / "started").exists(), first)
        second = redcore(*TRAIN, "--epochs", "2", "--out", out)
        assert second.returncode == 2
        check_message(one_error_line(second.stderr, "train"), [
            f"--out: '{out}' is in use by another process (train, pid {first.pid}",
            "another --out"])
        gate.write_text("go")
        assert first.wait(TIMEOUT) == 0, first.stderr.read()
    finally:
        if first.poll() is None:
            first.kill()
    assert json.loads((out / "summary.json").read_text())["epochs"] == 2
    rc.load_model(out / "checkpoint.pt")


def _file_limit(nbytes: int):
    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))
    return limit


@pytest.mark.slow
def test_file_size_limit_during_train(tmp_path):
    """``ulimit -f``: the checkpoint write fails; one line naming the file, exit 2, no temporary
    file left, and every file in the folder whole."""
    out = tmp_path / "run"
    proc = redcore(*TRAIN, "--epochs", "2", "--out", out, preexec_fn=_file_limit(60_000))
    assert proc.returncode == 2, proc.stderr
    check_message(one_error_line(proc.stderr, "train"), [
        f"{out / 'checkpoint.pt'}: cannot write the file (File too large)",
        "any earlier version is unchanged"])
    assert not out.exists() or not any(p.name.endswith(".tmp") for p in out.iterdir())
    again = redcore(*TRAIN, "--epochs", "2", "--out", out)  # nothing half-written is in the way
    assert again.returncode == 0, again.stderr


@pytest.mark.slow
def test_file_size_limit_during_a_sweep(tmp_path, sweep_reference):
    """An append that hits the limit is cut back off: the CSV holds whole runs only, and the
    same command without the limit completes the table exactly."""
    path = tmp_path / "s.csv"
    proc = redcore(*SWEEP, "--out", path, preexec_fn=_file_limit(4_000))
    assert proc.returncode == 2, proc.stderr
    check_message(one_error_line(proc.stderr, "sweep"), [
        f"{path}: cannot append a finished run (File too large)", "holds the runs finished before"])
    text = path.read_text()
    assert text.endswith("\n") and len(text) <= 4_000
    table = sweep.load_table(path)
    assert len(table) == (text.count("\n") - 1) and len(table) % 48 == 0  # whole runs only
    again = redcore(*SWEEP, "--out", path)
    assert again.returncode == 0, again.stderr
    pd.testing.assert_frame_equal(sweep.load_table(path), sweep_reference)
