"""The command line, end to end on fixture files (smoke preset, one or two tiny epochs)."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

import redcore_lite as rc
from redcore_lite import cli
from test_datasets import write_mmin, write_mosei

RESULT_FILES = ("config.json", "epochs.csv", "val_patterns.csv", "test_patterns.csv", "history.csv",
                "mask_rates.csv", "summary.json", "checkpoint.pt")
PATTERNS = ["A", "V", "L", "AV", "AL", "VL", "AVL", "overall"]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def check_outputs(out: Path, modalities: list[str], epochs: int) -> dict:
    for name in RESULT_FILES:
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["modalities"] == modalities
    assert len(pd.read_csv(out / "epochs.csv")) == epochs
    hist = pd.read_csv(out / "history.csv")
    assert {f"beta_{m}" for m in modalities} | {f"ra_{m}" for m in modalities} <= set(hist.columns)
    assert len(pd.read_csv(out / "test_patterns.csv")) == 2 ** len(modalities)
    config = rc.config_from_dict(json.loads((out / "config.json").read_text()))
    assert config.epochs == epochs
    model, saved, meta = rc.load_model(out / "checkpoint.pt")
    assert saved == config and meta["best_epoch"] == summary["best_epoch"]
    return summary


@pytest.fixture(scope="module")
def mfeat_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("mfeat") / "run"
    code = cli.main(["train", "mfeat", "--views", "fou,mor", "--rates", "0.2", "0.8",
                     "--preset", "smoke", "--epochs", "1", "--device", "cpu", "--seed", "1",
                     "--out", str(out)])
    assert code == 0
    return out


def test_train_mfeat_writes_everything(mfeat_run):
    summary = check_outputs(mfeat_run, ["fou", "mor"], epochs=1)
    assert (summary["realised_rates"]["fou"], summary["realised_rates"]["mor"]) == (0.2, 0.8)
    config = json.loads((mfeat_run / "config.json").read_text())
    assert config["data"]["name"] == "mfeat" and config["data"]["views"] == ["fou", "mor"]
    assert config["mask"]["rates"] == [0.2, 0.8] and config["train"]["seed"] == 1


def test_evaluate_reproduces_test_metrics(mfeat_run, capsys, tmp_path):
    code, out, _ = run(capsys, "evaluate", mfeat_run / "checkpoint.pt", "--out", tmp_path)
    assert code == 0 and "test: WA" in out
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "test_patterns.csv"),
                                  pd.read_csv(mfeat_run / "test_patterns.csv"))
    assert json.loads((tmp_path / "evaluate.json").read_text())["which"] == "best"


def test_evaluate_on_mismatching_data(mfeat_run, capsys):
    code, _, err = run(capsys, "evaluate", mfeat_run / "checkpoint.pt", "--views", "fou", "kar")
    assert code == 2
    assert "expects modalities ['fou', 'mor'] with dims [76, 6]" in err
    assert "has ['fou', 'kar'] with dims [76, 64]" in err


def test_out_folder_is_not_overwritten(mfeat_run, capsys):
    code, _, err = run(capsys, "train", "mfeat", "--views", "fou,mor", "--rates", "0.2,0.8",
                       "--preset", "smoke", "--out", mfeat_run)
    assert code == 2 and "already holds checkpoint.pt; allowed: --resume" in err


def test_train_iemocap_end_to_end(tmp_path, capsys):
    root = tmp_path / "features"
    write_mmin(root, "iemocap", folds=(3,))
    out = tmp_path / "run"
    code, stdout, err = run(capsys, "train", "iemocap", "--root", root, "--fold", 3, "--preset",
                            "smoke", "--epochs", 2, "--device", "cpu", "--out", out)
    assert code == 0, err
    summary = check_outputs(out, ["A", "V", "L"], epochs=2)
    assert summary["dataset"] == "iemocap"
    assert "transformer backbone" in stdout and "iemocap: modalities A [130], V [342], L [1024]" in stdout
    assert "12/4/4 train/val/test samples, 4 classes" in stdout
    assert json.loads((out / "config.json").read_text())["model"]["backbone"] == "transformer"
    assert list(pd.read_csv(out / "test_patterns.csv")["pattern"]) == PATTERNS
    code, stdout, _ = run(capsys, "evaluate", out / "checkpoint.pt", "--which", "last")
    assert code == 0 and "last weights, epoch 1" in stdout


def test_train_msp_end_to_end(tmp_path, capsys):
    root = tmp_path / "msp"
    write_mmin(root, "msp", folds=(12,))
    code, _, err = run(capsys, "train", "msp", "--root", root, "--fold", 12, "--preset", "smoke",
                       "--epochs", 1, "--mode", "fixed", "--max-frames", 3, "--out", tmp_path / "run")
    assert code == 0, err
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["advantage"]["mode"] == "fixed" and config["data"]["max_frames"] == 3


def test_train_mosei_end_to_end(tmp_path, capsys):
    path = tmp_path / "aligned_50.pkl"
    write_mosei(path, seq_len=4)
    code, stdout, err = run(capsys, "train", "mosei", "--root", path, "--preset", "smoke",
                            "--epochs", 1, "--rates", "0.5,0.5,0.5", "--out", tmp_path / "run")
    assert code == 0, err
    assert "A [74], V [35], L [768]" in stdout and "3 classes" in stdout
    check_outputs(tmp_path / "run", ["A", "V", "L"], epochs=1)


def test_train_avdigits_vectors_then_evaluate(tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout, err = run(capsys, "train", "avdigits", "--holdout", "takes", "--modalities",
                            "audio,image", "--rates", "0.2", "0.8", "--preset", "smoke", "--epochs", 1,
                            "--device", "cpu", "--out", out)
    assert code == 0, err
    assert "avdigits: modalities audio [64], image [64]; 2400/300/300 train/val/test" in stdout
    assert "mlp backbone" in stdout
    data = json.loads((out / "config.json").read_text())["data"]
    assert (data["holdout"], data["modalities"], data["sequences"]) == ("takes", ["audio", "image"], False)
    check_outputs(out, ["audio", "image"], epochs=1)
    code, _, _ = run(capsys, "evaluate", out / "checkpoint.pt", "--out", tmp_path / "ev")
    assert code == 0
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "ev" / "test_patterns.csv"),
                                  pd.read_csv(out / "test_patterns.csv"))


def test_train_avdigits_frames_for_the_transformer(tmp_path, capsys):
    code, stdout, err = run(capsys, "train", "avdigits", "--backbone", "transformer", "--max-frames", 8,
                            "--fold", 6, "--preset", "smoke", "--epochs", 1, "--device", "cpu",
                            "--out", tmp_path)
    assert code == 0, err
    assert "modalities audio [32], image [8], shape [76]; 2000/500/500" in stdout
    assert "transformer backbone" in stdout
    data = json.loads((tmp_path / "config.json").read_text())["data"]
    assert data["sequences"] is True and data["fold"] == 6 and data["max_frames"] == 8


def test_sweep_records_the_data_arguments(tmp_path):
    out = tmp_path / "s.csv"
    assert cli.main(["sweep", "avdigits", "--holdout", "takes", "--fold", "2", "--modalities",
                     "audio,image,shape", "--preset", "smoke", "--epochs", "1", "--variants",
                     "redcore", "--settings", "none", "--seeds", "1", "--workers", "1",
                     "--no-progress", "--out", str(out)]) == 0
    command = json.loads(out.with_suffix(".json").read_text())["sessions"][0]["command"]
    assert command.startswith("redcore-lite sweep avdigits --fold 2 --holdout takes --modalities "
                              "audio image shape --preset smoke")


def test_train_synthetic_epochs_split(tmp_path, capsys):
    code, stdout, _ = run(capsys, "train", "synthetic", "--preset", "smoke", "--epochs", 3,
                          "--mode", "uniform", "--out", tmp_path)
    assert code == 0 and "best epoch" in stdout and "final beta" in stdout
    train = json.loads((tmp_path / "config.json").read_text())["train"]
    assert (train["epochs_constant"], train["epochs_decay"]) == (2, 1)  # the smoke proportion 2:1
    assert not any(train[f] for f in ("bf16", "compile", "tf32", "cuda_graph"))  # off by default
    run_info = json.loads((tmp_path / "summary.json").read_text())["run"]
    assert run_info["device"] == "cpu" and run_info["cuda_graph"] is False


def test_train_speed_flags_reach_the_config(tmp_path, capsys):
    code, stdout, _ = run(capsys, "train", "synthetic", "--preset", "smoke", "--epochs", 1,
                          "--device", "cpu", "--bf16", "--tf32", "--out", tmp_path)
    assert code == 0 and "on cpu with bf16, tf32" in stdout
    train = json.loads((tmp_path / "config.json").read_text())["train"]
    assert train["bf16"] and train["tf32"] and not train["compile"] and not train["cuda_graph"]
    run_info = json.loads((tmp_path / "summary.json").read_text())["run"]
    assert run_info["bf16"] is True and run_info["tf32"] is False  # TF32 is CUDA only


@pytest.mark.parametrize("argv,message", [
    (["train", "iemocap", "--root", "{tmp}/nowhere"], r"root: '.*nowhere' is not a folder"),
    (["train", "iemocap", "--root", "{root}", "--fold", "11"], "fold: got 11; allowed: an integer in 1..10"),
    (["train", "msp", "--root", "{root}", "--fold", "13"], "fold: got 13; allowed: an integer in 1..12"),
    (["train", "iemocap"], "data.root: empty for data.name='iemocap'"),
    (["train", "mosei", "--root", "{tmp}/aligned_50.pkl"], "is not a file; expected the MMSA"),
    (["train", "mfeat", "--views", "fou", "kar"], r"--rates \(the preset's \[0.2, 0.5, 0.8\]\): got 3 "
                                                  r"rate\(s\) for 2 modalities"),
    (["train", "mfeat", "--rates", "0.2", "0.5"], r"--rates: got 2 rate\(s\) for 3 modalities"),
    (["train", "mfeat", "--views", "fou", "digits"], "views: got .*allowed: two or more"),
    (["train", "iemocap", "--root", "{root}", "--backbone", "mlp"], "got 'mlp' but iemocap holds frame"),
    (["train", "synthetic", "--epochs", "0"], "--epochs: got 0"),
    (["train", "avdigits", "--fold", "7"], r"fold: got 7; allowed: an integer in 1\.\.6"),
    (["train", "avdigits", "--modalities", "audio"], "modalities: got .*allowed: two or more"),
    (["train", "synthetic", "--cuda-graph", "--device", "cpu"],
     "train.cuda_graph: got True with device 'cpu'.*allowed: True only on a CUDA device"),
    (["evaluate", "{tmp}/none.pt"], r"checkpoint: '.*none\.pt' does not exist"),
    (["train", "synthetic", "--set", "train.lr"], r"--set: got 'train.lr'; allowed: SECTION.FIELD=VALUE"),
    (["train", "synthetic", "--set", "model.depth=3"], r"unknown field 'depth' of 'model'; allowed: "),
    (["train", "synthetic", "--set", "optim.lr=1"], r"unknown section 'optim'; allowed: data, mask"),
    (["train", "synthetic", "--set", "train.lr=fast"], r"--set train.lr: got 'fast'; allowed: a number"),
    (["train", "synthetic", "--set", "model.vib=perhaps"], r"--set model.vib: got 'perhaps'; allowed: true or false"),
    (["train", "synthetic", "--set", "model.init=xavier"], r"model.init: got 'xavier'; allowed: 'release', 'torch'"),
])
def test_cli_errors(tmp_path, capsys, argv, message):
    root = tmp_path / "features"
    write_mmin(root, "iemocap")
    argv = [a.format(tmp=tmp_path, root=root) for a in argv]
    if argv[0] == "train":
        argv += ["--preset", "smoke", "--out", str(tmp_path / "run")]
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert err.startswith(f"redcore-lite {argv[0]}: error: ")
    assert re.search(message, err), err


def test_cli_missing_modality_and_dims(tmp_path, capsys):
    root = tmp_path / "features"
    folds = write_mmin(root, "iemocap")
    uid = folds[1]["val"][1]
    with h5py.File(root / "L" / "bert_large.h5", "a") as f:
        del f[uid]
        f.create_dataset(uid, data=np.zeros((2, 768), np.float32))
    code, _, err = run(capsys, "train", "iemocap", "--root", root, "--out", tmp_path / "r")
    assert code == 2 and f"bert_large.h5['{uid}']: feature dim 768; expected 1024" in err
    (root / "V" / "denseface.h5").unlink()
    code, _, err = run(capsys, "train", "iemocap", "--root", root, "--out", tmp_path / "r")
    assert code == 2 and "denseface.h5: no such file" in err


def test_parser_lists_commands_and_is_extensible(capsys):
    parser = cli.build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["--help"])
    assert "train" in capsys.readouterr().out
    cli.register("hello", "say hello", lambda p: p.add_argument("--name", default="x"),
                 lambda args: print(f"hello {args.name}") or 0)
    try:
        assert run(capsys, "hello", "--name", "beta")[:2] == (0, "hello beta\n")
    finally:
        del cli.SUBCOMMANDS["hello"]
    assert "hello" not in cli.SUBCOMMANDS and list(cli.SUBCOMMANDS)[:2] == ["train", "evaluate"]


@pytest.mark.slow
def test_python_dash_m_entry_point():
    proc = subprocess.run([sys.executable, "-m", "redcore_lite", "--help"], capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0 and "evaluate" in proc.stdout and "train" in proc.stdout


def test_release_protocol_init_and_set_reach_the_config(tmp_path, capsys):
    code, _, _ = run(capsys, "train", "synthetic", "--preset", "smoke", "--epochs", 1,
                     "--release-protocol", "--init", "release", "--set", "train.lr=5e-3",
                     "--set", "mask.rates=0.1,0.4,0.7", "--set", "model.head_layers=[8, 8]",
                     "--out", tmp_path)
    assert code == 0
    saved = rc.config_from_dict(json.loads((tmp_path / "config.json").read_text()))
    assert saved.mask.redraw_each_epoch and saved.model.sample_at_eval and not saved.model.mask_padding
    assert (saved.model.init, saved.train.lr, saved.mask.rates) == ("release", 5e-3, (0.1, 0.4, 0.7))
    assert saved.model.head_layers == (8, 8)
    assert json.loads((tmp_path / "summary.json").read_text())["warnings"] == []


def test_each_protocol_switch_alone(tmp_path, capsys):
    args = cli.build_parser().parse_args(["train", "synthetic", "--sample-at-eval", "--out", "x"])
    config = cli.config_from_args(args)
    assert config.model.sample_at_eval and config.model.mask_padding and not config.mask.redraw_each_epoch
    args = cli.build_parser().parse_args(["train", "synthetic", "--no-mask-padding", "--redraw-masks",
                                          "--set", "model.mask_padding=true", "--out", "x"])
    config = cli.config_from_args(args)  # --set is applied last
    assert config.model.mask_padding and config.mask.redraw_each_epoch and not config.model.sample_at_eval


def test_collapse_is_printed_and_recorded(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("redcore_lite.trainer.COLLAPSE_RATIO", 1e9)  # every run "collapses"
    monkeypatch.setattr("redcore_lite.trainer.collapse_warning.__defaults__", (1e9,))
    code, _, err = run(capsys, "train", "synthetic", "--preset", "smoke", "--epochs", 1, "--out", tmp_path)
    assert code == 0 and err.count("redcore-lite train: warning: latent collapse at epoch 0") == 1
    assert json.loads((tmp_path / "summary.json").read_text())["warnings"][0].startswith("latent collapse")


# ---------------------------------------------------------------- your own data: train custom


def test_train_custom_table_end_to_end(tmp_path, capsys):
    from test_custom import holey_frame

    path = tmp_path / "own.csv"
    holey_frame(120).to_csv(path, index=False)
    out = tmp_path / "run"
    code, stdout, err = run(capsys, "train", "custom", "--data", path, "--modality", "A=A_*",
                            "--modality", "V=V_0,V_1,V_2", "--modality", "L=L_*", "--label",
                            "animal", "--id-column", "sample", "--preset", "smoke", "--epochs", 2,
                            "--device", "cpu", "--eval-complete", "--out", out)
    assert code == 0, err
    assert "custom: modalities A [4], V [3], L [2]; 84/18/18 train/val/test samples, 3 classes" in stdout
    assert "training mask: observed; missing rates observed + simulated = total: A 0.214 + 0.000 = 0.214" in stdout
    config = json.loads((out / "config.json").read_text())["data"]
    assert config["name"] == "custom" and config["path"] == str(path.resolve())
    assert config["modalities"] == ["A=A_*", "V=V_0,V_1,V_2", "L=L_*"] and config["label"] == "animal"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["data"]["source"]["sha256"] == rc.custom_io.file_digest(path)
    assert summary["data"]["classes"] == ["cat", "dog", "emu"] and summary["mask"]["kind"] == "observed"
    assert summary["observed_rates"]["A"] == summary["realised_rates"]["A"] > 0
    rates = pd.read_csv(out / "mask_rates.csv")
    assert list(rates.columns) == ["modality", "requested", "observed_missing", "simulated_missing",
                                   "missing", "realised", "observed_rate", "simulated_rate"]
    test = pd.read_csv(out / "test_patterns.csv").set_index("pattern")
    assert test["n"].drop("overall").sum() == test.loc["overall", "n"] == 18
    assert len(pd.read_csv(out / "test_complete_patterns.csv")) == 8
    model, saved, meta = rc.load_model(out / "checkpoint.pt")
    assert saved.data.name == "custom" and meta["mask_kind"] == "observed"
    code, stdout, _ = run(capsys, "evaluate", out / "checkpoint.pt", "--out", tmp_path / "ev")
    assert code == 0 and "on custom, 18/18 val/test samples" in stdout
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "ev" / "test_patterns.csv"),
                                  pd.read_csv(out / "test_patterns.csv"))
    changed = holey_frame(120)
    changed.loc[0, "V_0"] += 1.0  # one value edited after training
    changed.to_csv(path, index=False)
    _, _, err = run(capsys, "evaluate", out / "checkpoint.pt")
    assert "has changed since training" in err


def test_train_custom_npz_with_split_and_simulation_on_top(tmp_path, capsys):
    from test_custom import holey_frame, write_npz

    path = write_npz(tmp_path / "own.npz", split=holey_frame()["split"].to_numpy(dtype=str))
    out = tmp_path / "run"
    code, stdout, err = run(capsys, "train", "custom", "--data", path, "--split-column", "split",
                            "--simulate", "on", "--rates", "0.5,0,0", "--preset", "smoke",
                            "--epochs", 1, "--out", out)
    assert code == 0, err
    assert "36/12/12 train/val/test samples" in stdout and "observed+simulated" in stdout
    rates = pd.read_csv(out / "mask_rates.csv").set_index("modality")
    n_a = 36 - rates.loc["A", "observed_missing"]
    assert rates.loc["A", "simulated_missing"] == n_a // 2 and rates.loc["V", "simulated_missing"] == 0
    assert rates.loc["A", "requested"] == 0.5


def test_train_custom_hdf5_folder_of_sequences(tmp_path, capsys):
    from test_custom import write_h5_folder

    folder = write_h5_folder(tmp_path / "h5")
    code, stdout, err = run(capsys, "train", "custom", "--data", folder, "--label", "animal",
                            "--modality", "V", "--modality", "A", "--modality", "L", "--preset", "smoke",
                            "--epochs", 1, "--set", "model.num_heads=1", "--out", tmp_path / "run")
    assert code == 0, err
    assert "modalities V [3], A [4], L [2]" in stdout and "transformer backbone" in stdout


@pytest.mark.parametrize("argv, message", [
    (["--modality", "A=A_*", "--modality", "V=V_*"], "data.path: empty for data.name='custom'"),
    (["--data", "{csv}"], "data.modalities: empty for a table"),
    (["--data", "{csv}", "--modality", "A", "--modality", "V=V_*"], r"modalities: got 'A'"),
    (["--data", "{csv}", "--modality", "A=A_*", "--modality", "V=V_*", "--label", "y"],
     "label: column 'y' is not in the table"),
    (["--data", "{csv}", "--modality", "A=A_*", "--modality", "V=V_*", "--modality", "L=L_*",
      "--label", "animal", "--simulate", "on", "--rates", "0.2,0.5"],
     r"--rates: got 2 rate\(s\) for 3 modalities"),
])
def test_train_custom_errors(tmp_path, capsys, argv, message):
    from test_custom import holey_frame

    csv = tmp_path / "own.csv"
    holey_frame().to_csv(csv, index=False)
    argv = ["train", "custom", *[a.format(csv=csv) for a in argv], "--preset", "smoke",
            "--out", str(tmp_path / "run")]
    code, _, err = run(capsys, *argv)
    assert code == 2 and re.search(message, err), err
