"""--config FILE (JSON or YAML) for train and sweep, composed with --set: every config field is
settable from the command line."""
from __future__ import annotations

import json

import pytest

import redcore_lite as rc
from redcore_lite import cli
from redcore_lite.config import config_from_file, read_config_file


def run(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_partial_json_changes_only_its_fields(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"train": {"lr": 0.001, "batch_size": 64},
                                "mask": {"rates": [0.2, 0.5, 0.8]}}))
    base = rc.preset("teach")
    got = config_from_file(path, base)
    assert got == rc.override(base, train={"lr": 0.001, "batch_size": 64},
                              mask={"rates": (0.2, 0.5, 0.8)})


def test_yaml_and_json_give_the_same_config(tmp_path):
    pytest.importorskip("yaml")
    (tmp_path / "c.yaml").write_text("train:\n  lr: 0.001\nloss:\n  kl_weight: 0.01\n"
                                     "model:\n  head_layers: [64, 64]\n")
    (tmp_path / "c.json").write_text(json.dumps({"train": {"lr": 0.001}, "loss": {"kl_weight": 0.01},
                                                 "model": {"head_layers": [64, 64]}}))
    base = rc.preset("smoke")
    y, j = config_from_file(tmp_path / "c.yaml", base), config_from_file(tmp_path / "c.json", base)
    assert y == j and y.model.head_layers == (64, 64) and y.loss.kl_weight == 0.01


def test_a_whole_saved_config_reads_back_exactly(tmp_path):
    cfg = rc.override(rc.preset("smoke"), train={"lr": 0.0042}, model={"init": "release"})
    (tmp_path / "config.json").write_text(json.dumps(rc.config_to_dict(cfg)))
    assert config_from_file(tmp_path / "config.json", rc.preset("teach")) == cfg
    (tmp_path / "m.json").write_text(json.dumps({"config": rc.config_to_dict(cfg), "sessions": []}))
    assert config_from_file(tmp_path / "m.json", rc.preset("teach")) == cfg  # a sweep manifest


@pytest.mark.parametrize("name, text, message", [
    ("a.json", '{"trian": {"lr": 1}}', r"unknown section 'trian'; allowed: data, "),
    ("b.json", '{"train": {"learning_rate": 1}}', r"unknown field\(s\) \['learning_rate'\] of 'train'"),
    ("c.json", '{"train": 3}', r"section 'train' is a int, not a mapping of fields"),
    ("d.json", "[1, 2]", r"holds a JSON list, not a config"),
    ("e.json", "{'a': 1}", r"is not valid JSON"),
    ("f.yaml", "train: [1\n", r"is not valid YAML"),
    ("g.yaml", "", r"holds nothing, not a config"),
])
def test_bad_config_files(tmp_path, name, text, message):
    if name.endswith(".yaml"):
        pytest.importorskip("yaml")
    (tmp_path / name).write_text(text)
    with pytest.raises(ValueError, match=r"--config: '.*" + name.replace(".", r"\.") + r"'.*" + message):
        read_config_file(tmp_path / name)


def test_train_config_then_flags_then_set(tmp_path, capsys):
    """Order: --preset, then --config FILE, then the flags, then --set (the last word wins)."""
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"train": {"lr": 0.002, "batch_size": 48},
                                "loss": {"kl_weight": 0.5}}))
    out = tmp_path / "run"
    code, _, _ = run(capsys, "train", "synthetic", "--preset", "smoke", "--config", path,
                     "--epochs", 1, "--device", "cpu", "--set", "loss.kl_weight=0.25",
                     "--tensorboard", tmp_path / "tb", "--out", out)
    assert code == 0
    saved = rc.config_from_dict(json.loads((out / "config.json").read_text()))
    assert (saved.train.lr, saved.train.batch_size, saved.loss.kl_weight) == (0.002, 48, 0.25)
    assert saved.epochs == 1  # the flag, after the file
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))  # --tensorboard wrote its log


def test_sweep_config_accepts_partial_yaml(tmp_path, monkeypatch):
    pytest.importorskip("yaml")
    (tmp_path / "c.yaml").write_text("train:\n  lr: 0.003\n")
    seen = {}

    def fake_run_sweep(config, path, *args, **kwargs):
        seen["config"] = config
        raise SystemExit(0)

    monkeypatch.setattr(rc.sweep, "run_sweep", fake_run_sweep)
    with pytest.raises(SystemExit):
        cli.main(["sweep", "synthetic", "--preset", "smoke", "--config", str(tmp_path / "c.yaml"),
                  "--seeds", "1", "--out", str(tmp_path / "s.csv")])
    assert seen["config"].train.lr == 0.003
    assert seen["config"].train.batch_size == rc.preset("smoke").train.batch_size
