"""A resume is a continuation or an error (issue 25, item 2; repros 3 and 5).

The checkpoint records what it was trained on (:func:`redcore_lite.state.data_identity`: data
sha256, classes, modalities and dims, labels, split, feature statistics). A resume on anything
else, in the library and on the command line, is a ValueError naming the field that differs;
``force`` / ``--force`` continues only where the data's values changed (not its shape, classes
or split) and is recorded. ``evaluate`` on data with other classes is an error. Checkpoints
written before the identity still load and are checked on what they recorded.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import tiny_splits
from test_custom import holey_frame

import redcore_lite as rc
from redcore_lite import cli
from redcore_lite.checkpoint import load_checkpoint, save_checkpoint
from redcore_lite.state import FORCIBLE, data_identity, identity_differences


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def error_line(err: str, command: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err and len(lines) >= 1, err
    assert lines[-1].startswith(f"redcore-lite {command}: error: "), err
    return lines[-1]


TC = ["--modality", "A=A_*", "--modality", "V=V_0,V_1,V_2", "--modality", "L=L_*", "--label",
      "animal", "--id-column", "sample", "--preset", "smoke", "--epochs", 2, "--device", "cpu"]


@pytest.fixture
def trained(tmp_path, capsys):
    """A CSV and a finished two-epoch ``train custom`` on it."""
    path = tmp_path / "r.csv"
    holey_frame(120).to_csv(path, index=False)
    out = tmp_path / "run"
    code, _, err = run(capsys, "train", "custom", "--data", path, *TC, "--out", out)
    assert code == 0, err
    return path, out


# ---------------------------------------------------------------- the identity itself


def test_identity_is_stable_and_names_each_field(cfg3, splits3):
    a, b = data_identity(splits3), data_identity(tiny_splits(cfg3))
    assert identity_differences(a, b) == []
    other = tiny_splits(rc.override(cfg3, data={"snr": (0.5, 0.5, 0.5)}))  # same labels, other values
    assert identity_differences(a, data_identity(other)) == ["features"]
    shifted = rc.Splits(*(rc.MultimodalData(s.features, (s.labels + 1) % s.num_classes,
                                            s.num_classes) for s in (splits3.train, splits3.val,
                                                                     splits3.test)))
    assert identity_differences(a, data_identity(shifted)) == ["labels"]
    assert set(FORCIBLE) == {"sha256", "labels", "features"}


def test_identity_tolerates_float_rounding(cfg3, splits3):
    """Feature statistics are compared with a tolerance: another machine's float reductions
    (a few ulps) must not refuse a resume."""
    nudged = rc.Splits(*(rc.MultimodalData({m: x * (1 + 1e-6) for m, x in s.features.items()},
                                           s.labels, s.num_classes)
                         for s in (splits3.train, splits3.val, splits3.test)))
    assert identity_differences(data_identity(splits3), data_identity(nudged)) == []


# ---------------------------------------------------------------- the library


class _Stop(Exception):
    pass


def _stop(end) -> None:
    raise _Stop  # a Ctrl-C after the first epoch's checkpoint


@pytest.mark.slow
def test_library_resume_on_other_splits_is_an_error_then_forced(tmp_path, cfg3, splits3):
    """repro 3 in the library: rc.fit(other_splits, checkpoint=..., resume=True) continued."""
    ckpt = tmp_path / "run.pt"
    with pytest.raises(_Stop):  # interrupted after its first epoch
        rc.fit(cfg3, splits3, checkpoint=ckpt, callbacks=[_stop])
    other = tiny_splits(rc.override(cfg3, data={"snr": (0.5, 0.5, 0.5)}))
    before = ckpt.read_bytes()
    with pytest.raises(ValueError, match=r"was written for other data: the data differs in "
                       r"feature values .*allowed: the data it was trained on \(or force=True"):
        rc.fit(cfg3, other, checkpoint=ckpt, resume=True)
    assert ckpt.read_bytes() == before  # the refused resume left the checkpoint as it was
    res = rc.fit(cfg3, other, checkpoint=ckpt, resume=True, force=True)
    assert res.extra["resume"]["forced"] == ["features"]
    st = load_checkpoint(ckpt)
    assert st["resumes"][-1]["forced"] == ["features"] and "features" in st["resumes"][-1]["trained_on"]
    assert st["resumes"][-1]["epoch"] == 1
    # the checkpoint now records the data it continued on: a plain resume on it is a continuation
    again = rc.fit(cfg3, other, checkpoint=ckpt, resume=True)
    assert again.extra["resume"]["resumes"][-1]["forced"] == []


@pytest.mark.slow
def test_library_resume_refuses_other_split_even_forced(tmp_path, cfg3, splits3):
    ckpt = tmp_path / "run.pt"
    rc.fit(cfg3, splits3, checkpoint=ckpt)
    moved = rc.Splits(splits3.train.subset(torch.arange(len(splits3.train) - 1)), splits3.val,
                      splits3.test)
    with pytest.raises(ValueError, match=r"differs in split .*allowed: the data it was trained "
                       r"on$"):
        rc.fit(cfg3, moved, checkpoint=ckpt, resume=True, force=True)


@pytest.mark.slow
def test_checkpoint_without_identity_still_loads_and_resumes(tmp_path, cfg3, splits3):
    """Checkpoints written before the identity: config, modalities, dims, samples per split,
    observed rates (and classes and the file sha256 where the description has them) are checked;
    labels and feature values are not."""
    ckpt = tmp_path / "run.pt"
    rc.fit(cfg3, splits3, checkpoint=ckpt)
    st = load_checkpoint(ckpt)
    st.pop("identity")
    st.pop("format")
    save_checkpoint(ckpt, st)
    model, _, meta = rc.load_model(ckpt)
    assert meta["identity"] is None
    other = tiny_splits(rc.override(cfg3, data={"snr": (0.5, 0.5, 0.5)}))
    rc.fit(cfg3, other, checkpoint=ckpt, resume=True)  # values are not checked for such a file
    assert "identity" not in load_checkpoint(ckpt)  # (a finished run: nothing rewritten)
    fewer = rc.Splits(splits3.train.subset(torch.arange(len(splits3.train) - 1)), splits3.val,
                      splits3.test)
    with pytest.raises(ValueError, match="differs in split"):  # samples per split are
        rc.fit(cfg3, fewer, checkpoint=ckpt, resume=True)


def test_other_config_names_the_field(tmp_path, cfg3, splits3):
    ckpt = tmp_path / "run.pt"
    rc.fit(cfg3, splits3, checkpoint=ckpt)
    with pytest.raises(ValueError, match=r"different config \(differs in train.lr\)"):
        rc.fit(rc.override(cfg3, train={"lr": 0.5}), splits3, checkpoint=ckpt, resume=True)


# ---------------------------------------------------------------- the command line


@pytest.mark.slow
def test_cli_resume_after_labels_changed_is_refused(trained, capsys):
    """repro 3: shift the labels of r.csv, the same command with --resume: was exit 0."""
    path, out = trained
    frame = holey_frame(120)
    names = sorted(set(frame["animal"]))
    frame["animal"] = frame["animal"].map({n: names[(i + 1) % 3] for i, n in enumerate(names)})
    frame.to_csv(path, index=False)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    code, _, err = run(capsys, "train", "custom", "--data", path, *TC, "--out", out, "--resume")
    line = error_line(err, "train")
    assert code == 2 and "was written for other data" in line and "data sha256" in line, line
    assert "labels" in line
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    # --force does not cover a changed split (the stratified split moved samples)
    code, _, err = run(capsys, "train", "custom", "--data", path, *TC, "--out", out, "--resume",
                       "--force")
    assert code == 2 and "split" in error_line(err, "train")


@pytest.mark.slow
def test_cli_resume_force_after_values_changed_is_recorded(trained, capsys):
    path, out = trained
    frame = holey_frame(120)
    frame.loc[0, "V_0"] += 1.0  # one value corrected after training
    frame.to_csv(path, index=False)
    code, _, err = run(capsys, "train", "custom", "--data", path, *TC, "--out", out, "--resume")
    line = error_line(err, "train")
    assert code == 2 and "data sha256" in line and "--force" in line, line
    code, _, err = run(capsys, "train", "custom", "--data", path, *TC, "--out", out, "--resume",
                       "--force")
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert "sha256" in summary["resume"]["forced"]
    assert summary["resume"]["resumes"][-1]["trained_on"]["sha256"] != \
        summary["data"]["source"]["sha256"]


def test_cli_force_needs_resume(tmp_path, capsys):
    code, _, err = run(capsys, "train", "synthetic", "--preset", "smoke", "--force", "--out",
                       tmp_path / "x")
    assert code == 2 and "--force: given without --resume" in error_line(err, "train")
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_cli_evaluate_on_other_classes_is_an_error(trained, tmp_path, capsys):
    """repro 5: evaluate CKPT --data animals2.csv scored ant/bee/cow with a cat/dog/emu model."""
    _, out = trained
    frame = holey_frame(120)
    frame["animal"] = frame["animal"].map({"cat": "ant", "dog": "bee", "emu": "cow"})
    other = tmp_path / "animals2.csv"
    frame.to_csv(other, index=False)
    code, _, err = run(capsys, "evaluate", out / "checkpoint.pt", "--data", other)
    line = error_line(err, "evaluate")
    assert code == 2 and "differs in classes" in line and "'cat', 'dog', 'emu'" in line, line
    assert "'ant', 'bee', 'cow'" in line
    # the same classes in another file: scored, with the warning that the file differs
    frame = holey_frame(120)
    frame.loc[0, "V_0"] += 1.0
    frame.to_csv(other, index=False)
    code, _, err = run(capsys, "evaluate", out / "checkpoint.pt", "--data", other)
    assert code == 0 and "has changed since training" in err


def test_from_arrays_records_a_content_digest():
    feats = {"a": np.zeros((4, 2), np.float32), "b": np.ones((4, 3))}
    one = rc.from_arrays(feats, [0, 1, 0, 1]).source["sha256"]
    assert one == rc.from_arrays(feats, [0, 1, 0, 1]).source["sha256"]
    assert one != rc.from_arrays(feats, [1, 0, 0, 1]).source["sha256"]
    assert rc.from_arrays(feats, [0, 1, 0, 1], source={"name": "custom", "sha256": "f"}
                          ).source["sha256"] == "f"  # a loader's file digest is kept
