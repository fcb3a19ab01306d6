"""Nothing lost (issue 25, items 1 and 4): a mistaken command never costs earlier results.

- ``--overwrite`` (train, evaluate, sweep, report) checks config, data and checkpoint first and
  replaces the old files only once the new ones are written (a failure, Ctrl-C or SIGTERM on
  the way leaves them as they were);
- no output path names an input of the same command (real paths: ``report s.csv --out s``);
- locks and writes follow symlinks (``l.csv -> s.csv`` is one file with one lock);
- SIGTERM is a clean stop (one line, exit 143, no lock or temporary file left) and a Ctrl-C at
  any moment of ``sweep --workers 2`` prints one line;
- ``report`` checks the table: every value a finite number in [0, 1] (file, line and column
  named; nothing dropped silently) and at least one variant paired with the baseline.

Each test failed before the fix (the repro it is named after is in the issue).
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

import redcore_lite as rc
from redcore_lite import cli, sweep
from redcore_lite._files import LockedError, atomic_write_text, exclusive, lock_path

ROOT = Path(__file__).resolve().parents[1]
STAGE = getattr(cli, "STAGE_NAME", ".redcore-lite.new")  # where --overwrite writes aside
SMOKE = ["--preset", "smoke", "--epochs", "1", "--device", "cpu"]
TIMEOUT = 600  # seconds per subprocess: generous, the machine may be busy


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (hidden ones too) -> sha256 of its bytes."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def run_cli(capsys, argv: list) -> tuple[int, str, str]:
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str, command: str) -> str:
    """stderr holds exactly one line, from ``redcore-lite COMMAND`` (no traceback)."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err and len(lines) == 1, err
    assert lines[0].startswith(f"redcore-lite {command}: "), err
    return lines[0]


def earlier_run(tmp: Path) -> Path:
    """A folder of earlier train results (and a file of the user's)."""
    out = tmp / "run"
    out.mkdir()
    (out / "config.json").write_text(json.dumps({"data": {"name": "mfeat"}}))
    (out / "test_patterns.csv").write_text("pattern,wa\noverall,0.9\n")
    (out / "val_complete_patterns.csv").write_text("from the earlier run\n")
    (out / "checkpoint.pt").write_bytes(b"the earlier checkpoint")
    (out / "notes.txt").write_text("mine\n")
    return out


def leftovers(folder: Path) -> list[str]:
    """Lock files, temporary files and unfinished --overwrite folders left in ``folder``."""
    return sorted(p.name for p in folder.iterdir()
                  if p.name.endswith((".lock", ".tmp")) or p.name.startswith(STAGE))


# ---------------------------------------------------------------- item 1: --overwrite


def _diverge(config, splits, checkpoint=None, **kwargs):
    """fit that writes its checkpoint, then diverges (the new results are half made)."""
    Path(checkpoint).write_bytes(b"half of a new run")
    raise FloatingPointError("train loss is nan at epoch 3 (diverged)")


def _interrupt(config, splits, checkpoint=None, **kwargs):
    Path(checkpoint).write_bytes(b"half of a new run")
    raise KeyboardInterrupt


def _terminate(config, splits, checkpoint=None, **kwargs):
    Path(checkpoint).write_bytes(b"half of a new run")
    signal.raise_signal(signal.SIGTERM)  # as `kill PID` would
    raise AssertionError("SIGTERM did not stop the command")


OVERWRITE_FAILS = [  # id, argv (t: tmp_path, o: the earlier run), fit stand-in, exit code, needles
    ("rates", lambda t, o: ["train", "synthetic", *SMOKE, "--rates", "0.2", "0.5", "--overwrite",
                            "--out", o], None, 2, ["--rates: got 2 rate(s)"]),
    ("batch-size-0", lambda t, o: ["train", "synthetic", *SMOKE, "--set", "train.batch_size=0",
                                   "--overwrite", "--out", o], None, 2, ["train.batch_size: got 0"]),
    ("bad-data", lambda t, o: ["train", "custom", *SMOKE, "--data", t / "no.csv", "--modality",
                               "A=a", "--overwrite", "--out", o], None, 2, ["no.csv' does not exist"]),
    ("bad-checkpoint", lambda t, o: ["evaluate", t / "BAD.pt", "--out", o, "--overwrite"], None, 2,
     ["checkpoint: '{t}/BAD.pt' cannot be read"]),
    ("diverged", lambda t, o: ["train", "synthetic", *SMOKE, "--overwrite", "--out", o], _diverge,
     2, ["train loss is nan"]),
    ("ctrl-c", lambda t, o: ["train", "synthetic", *SMOKE, "--overwrite", "--out", o], _interrupt,
     130, ["redcore-lite train: interrupted"]),
    ("sigterm", lambda t, o: ["train", "synthetic", *SMOKE, "--overwrite", "--out", o], _terminate,
     143, ["redcore-lite train: stopped by SIGTERM"]),
]


@pytest.mark.parametrize("make, fit, code, needles", [c[1:] for c in OVERWRITE_FAILS],
                         ids=[c[0] for c in OVERWRITE_FAILS])
def test_overwrite_keeps_the_old_results_when_the_command_fails(tmp_path, capsys, monkeypatch,
                                                                 make, fit, code, needles):
    """Repro 1. Before: --overwrite removed the old results first; a command that then failed
    (exit 2) left OUT empty, checkpoint and all. Now OUT is exactly as it was."""
    (tmp_path / "BAD.pt").write_text("garbage\n")
    out = earlier_run(tmp_path)
    if fit is not None:
        monkeypatch.setattr(cli, "fit", fit)
    before = snapshot(out)
    got, _, err = run_cli(capsys, make(tmp_path, out))
    assert got == code, err
    line = one_line(err, make(tmp_path, out)[0])
    for needle in needles:
        assert needle.format(t=tmp_path) in line, line
    assert snapshot(out) == before
    assert leftovers(out) == []


def test_overwrite_replaces_the_old_results_only_once_the_new_ones_are_written(
        tmp_path, capsys, monkeypatch):
    """While the new run trains, OUT still holds the old results; at the end the new ones replace
    them, an old file the new run does not write is removed, the user's files stay."""
    out = earlier_run(tmp_path)
    before = snapshot(out)
    real_fit = cli.fit
    seen = {}

    def fit(config, splits, checkpoint=None, **kwargs):
        seen["during"] = snapshot(out)
        seen["checkpoint"] = Path(checkpoint)
        return real_fit(config, splits, checkpoint=checkpoint, **kwargs)

    monkeypatch.setattr(cli, "fit", fit)
    code, stdout, err = run_cli(capsys, ["train", "synthetic", *SMOKE, "--overwrite", "--out", out])
    assert code == 0, err
    assert {k: v for k, v in seen["during"].items() if "/" not in k and k != cli.LOCK_NAME} == before
    assert seen["checkpoint"].parent.parent == out and seen["checkpoint"].parent.name.startswith(
        STAGE)
    assert json.loads((out / "config.json").read_text())["data"]["name"] == "synthetic"
    assert (out / "checkpoint.pt").read_bytes() != b"the earlier checkpoint"
    assert not (out / "val_complete_patterns.csv").exists()
    assert (out / "notes.txt").read_text() == "mine\n"
    assert leftovers(out) == []
    assert f"wrote {out}/" in stdout


def test_evaluate_overwrite_replaces_its_files_once_written(tmp_path, capsys):
    from conftest import tiny_config, tiny_splits

    cfg = tiny_config(3)
    ckpt = tmp_path / "c.pt"
    rc.fit(cfg, tiny_splits(cfg), checkpoint=ckpt)
    out = earlier_run(tmp_path)
    (out / "evaluate.json").write_text("{}\n")
    code, stdout, err = run_cli(capsys, ["evaluate", ckpt, "--out", out, "--overwrite"])
    assert code == 0, err
    assert json.loads((out / "evaluate.json").read_text())["checkpoint"] == str(ckpt)
    assert (out / "test_patterns.csv").read_text() != "pattern,wa\noverall,0.9\n"
    assert (out / "checkpoint.pt").read_bytes() == b"the earlier checkpoint"  # not evaluate's
    assert (out / "notes.txt").read_text() == "mine\n" and leftovers(out) == []


def test_a_killed_overwrite_leaves_nothing_behind(tmp_path, capsys):
    """An --overwrite killed with -9 leaves its folder of new results; the next command on OUT
    (which holds the lock, so no other writer can own it) removes it."""
    out = earlier_run(tmp_path)
    stale = out / f"{STAGE}.999999"
    stale.mkdir()
    (stale / "checkpoint.pt").write_bytes(b"half")
    code, _, err = run_cli(capsys, ["train", "synthetic", *SMOKE, "--out", out])
    assert code == 2 and "already holds checkpoint.pt" in one_line(err, "train")
    assert not stale.exists()


# ---------------------------------------------------------------- item 1: outputs never inputs


def _put(path: Path, text: str = "a,b\n1,2\n") -> Path:
    path.write_text(text)
    return path


NAMES_AN_INPUT = [  # id, argv (t: tmp_path, o: the earlier run), needles
    ("train-data-in-out", lambda t, o: ["train", "custom", *SMOKE, "--data",
                                        _put(o / "history.csv"), "--modality", "A=a",
                                        "--overwrite", "--out", o],
     ["--out: writing '{o}/history.csv' would replace the --data file"]),
    ("train-config-in-out", lambda t, o: ["train", "synthetic", *SMOKE, "--config",
                                          o / "config.json", "--overwrite", "--out", o],
     ["--out: writing '{o}/config.json' would replace the --config file"]),
    ("evaluate-data-in-out", lambda t, o: ["evaluate", t / "BAD.pt", "--data",
                                           _put(o / "val_patterns.csv"), "--overwrite", "--out", o],
     ["--out: writing '{o}/val_patterns.csv' would replace the --data file"]),
    ("sweep-out-is-data", lambda t, o: ["sweep", "custom", *SMOKE, "--data", _put(t / "r.csv"),
                                        "--modality", "A=a", "--out", t / "r.csv"],
     ["--out: writing '{t}/r.csv' would replace the --data file '{t}/r.csv'"]),
    ("sweep-out-is-data-by-a-link", lambda t, o: os.symlink(_put(t / "r.csv"), t / "l.csv")
     or ["sweep", "custom", *SMOKE, "--data", t / "r.csv", "--modality", "A=a", "--out",
         t / "l.csv"],
     ["would replace the --data file '{t}/r.csv'"]),
]


@pytest.mark.parametrize("make, needles", [c[1:] for c in NAMES_AN_INPUT],
                         ids=[c[0] for c in NAMES_AN_INPUT])
def test_no_output_names_an_input(tmp_path, capsys, make, needles):
    (tmp_path / "BAD.pt").write_text("garbage\n")
    out = earlier_run(tmp_path)
    argv = make(tmp_path, out)
    before = snapshot(tmp_path)
    code, _, err = run_cli(capsys, argv)
    assert code == 2, err
    line = one_line(err, argv[0])
    for needle in needles:
        assert needle.format(t=tmp_path, o=out) in line, line
    assert snapshot(tmp_path) == before


# ---------------------------------------------------------------- report


def results_table(tmp: Path, variants=("redcore", "no_ra"), seeds=(0, 1, 2)) -> Path:
    """A sweep-format CSV of made-up, plausible scores (two modalities)."""
    rows = []
    for v in variants:
        for seed in seeds:
            for split in ("val", "test"):
                for pattern in ("overall", "A", "B", "AB"):
                    for m in sweep.METRICS:
                        value = 0.6 + 0.05 * seed + (0.02 if v == "redcore" else 0.0)
                        rows.append((v, "none", "0/0", seed, split, pattern, m, round(value, 4)))
    path = tmp / "s.csv"
    pd.DataFrame(rows, columns=sweep.COLUMNS).to_csv(path, index=False)
    return path


@pytest.mark.parametrize("out", ["s", "s.md", "s.csv", "./s", "link"])
def test_report_out_never_replaces_the_results(tmp_path, capsys, monkeypatch, out):
    """Repro 2. Before: `report s.csv --out s` (or s.md, s.json: the suffix was replaced by
    .csv) exited 0 and replaced the sweep's results s.csv with the report table."""
    monkeypatch.chdir(tmp_path)
    path = results_table(tmp_path)
    os.symlink("s.csv", tmp_path / "link.csv")
    before = snapshot(tmp_path)
    code, _, err = run_cli(capsys, ["report", "s.csv", "--out", out])
    assert code == 2
    assert "would replace the RESULTS file 's.csv'" in one_line(err, "report")
    assert snapshot(tmp_path) == before and path.is_file()


def test_report_out_with_another_suffix_keeps_it(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    results_table(tmp_path)
    before = snapshot(tmp_path)
    code, _, err = run_cli(capsys, ["report", "s.csv", "--out", "s.json"])
    assert code == 0, err
    assert {k: v for k, v in snapshot(tmp_path).items() if k in before} == before
    assert (tmp_path / "s.json.md").is_file() and (tmp_path / "s.json.csv").is_file()
    from redcore_lite.report import report_paths

    assert report_paths("a/b.md") == report_paths("a/b") == (Path("a/b.md"), Path("a/b.csv"))


def test_report_replaces_an_earlier_report_only_with_overwrite(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    results_table(tmp_path)
    assert run_cli(capsys, ["report", "s.csv"])[0] == 0
    before = snapshot(tmp_path)
    code, _, err = run_cli(capsys, ["report", "s.csv", "--title", "new"])
    assert code == 2 and "allowed: --overwrite to replace the report" in one_line(err, "report")
    assert snapshot(tmp_path) == before
    code, _, err = run_cli(capsys, ["report", "s.csv", "--title", "new", "--overwrite"])
    assert code == 0, err
    assert (tmp_path / "s_report.md").read_text().startswith("# new\n")


def _edit(path: Path, line: int, value: str) -> None:
    lines = path.read_text().splitlines(True)
    cells = lines[line - 1].rstrip("\n").split(",")
    cells[-1] = value
    lines[line - 1] = ",".join(cells) + "\n"
    path.write_text("".join(lines))


@pytest.mark.parametrize("value, got", [("5.0", "got 5.0"), ("inf", "got inf"), ("-0.1", "got -0.1"),
                                        ("", "got ''"), ("nan", "got ''"), ("abc", "got 'abc'")])
def test_report_refuses_impossible_values(tmp_path, capsys, value, got):
    """Repro 7 and 9. Before: an F1 of 5.0 gave "mean 2.554, CI [-33.2, 28.4]", inf was kept, a
    NaN row was dropped without a word, a non-numeric value was an "unexpected TypeError"."""
    path = results_table(tmp_path)
    line = 40
    _edit(path, line, value)
    before = snapshot(tmp_path)
    code, _, err = run_cli(capsys, ["report", path])
    assert code == 2
    text = one_line(err, "report")
    assert f"path: '{path}' line {line}, column value: {got}; allowed: a number in [0, 1]" in text
    assert snapshot(tmp_path) == before


def test_report_with_nothing_paired_with_the_baseline(tmp_path, capsys):
    """Repro 9. Before: `sweep --variants redcore --seeds 2` then `report` was an "unexpected
    KeyError"; now an error naming the file and what is needed."""
    path = results_table(tmp_path, variants=("redcore",))
    code, _, err = run_cli(capsys, ["report", path])
    assert code == 2
    text = one_line(err, "report")
    assert f"results: '{path}': no run of another variant" in text and "--variants redcore no_ra" in text
    table = sweep.load_table(results_table(tmp_path, variants=("redcore", "no_ra")))
    lonely = pd.concat([table[table["variant"] == "redcore"],
                        table[(table["variant"] == "no_ra")].assign(seed=lambda t: t["seed"] + 10)])
    with pytest.raises(ValueError, match="no run of another variant has a 'redcore' run of the same"):
        sweep.report(lonely)


def test_report_checks_a_table_given_in_python(tmp_path):
    from redcore_lite.report import check_table

    table = sweep.load_table(results_table(tmp_path))
    check_table(table)
    bad = table.copy()
    bad.loc[7, "value"] = 5.0
    with pytest.raises(ValueError, match=r"table: row 7, column value: got 5.0; allowed: a number "
                                         r"in \[0, 1\]"):
        sweep.report(bad)
    with pytest.raises(ValueError, match=r"baseline: got 'x'; allowed: a variant with test runs"):
        sweep.report(table, baseline="x")


# ---------------------------------------------------------------- item 4: locks on the real file


def test_a_symlink_to_a_sweep_file_shares_its_lock(tmp_path, capsys):
    """Repro 4. Before: the lock was named after the path given, so a sweep on l.csv -> s.csv
    ran beside one on s.csv (one run landed twice, and l.csv became a separate file)."""
    real = results_table(tmp_path)
    link = tmp_path / "l.csv"
    os.symlink("s.csv", link)
    assert lock_path(link) == lock_path(real) == tmp_path / ".s.csv.lock"
    with exclusive(real, lock_path(real), "path", "sweep"):
        with pytest.raises(LockedError, match="is in use by another process"):
            sweep.run_sweep(rc.preset("smoke"), link, ["redcore"], ["none"], 1, workers=1)
        code, _, err = run_cli(capsys, ["sweep", "synthetic", *SMOKE, "--seeds", "1", "--out", link])
        assert code == 2 and "is in use by another process (sweep" in one_line(err, "sweep")
    atomic_write_text(link, "new\n")  # a write through the link replaces the file it names
    assert link.is_symlink() and real.read_text() == "new\n"


@pytest.mark.slow
def test_sweep_overwrite_replaces_the_file_only_when_every_run_is_done(tmp_path):
    """sweep --overwrite: the new runs go aside; an interruption keeps the old file (and the same
    call resumes the new runs); the end replaces file and manifest together."""
    base = rc.override(rc.preset("smoke"), train={"epochs_constant": 1, "epochs_decay": 0})
    path = tmp_path / "s.csv"
    sweep.run_sweep(base, path, ["redcore"], ["none"], 1, workers=1)
    before = snapshot(tmp_path)
    other = rc.override(base, train={"lr": base.train.lr / 2})
    with pytest.raises(ValueError, match="holds runs of a different base config"):
        sweep.run_sweep(other, path, ["redcore"], ["none"], 2, workers=1)

    def stop(key, n):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sweep.run_sweep(other, path, ["redcore"], ["none"], 2, workers=1, on_run=stop,
                        overwrite=True)
    assert {k: v for k, v in snapshot(tmp_path).items() if k in before} == before
    staged = sweep.overwrite_path(path)
    assert len(sweep.load_table(staged)) == len(sweep.load_table(path))  # one new run aside
    table = sweep.run_sweep(other, path, ["redcore"], ["none"], 2, workers=1, overwrite=True)
    assert sorted(set(table["seed"])) == [0, 1] and not staged.exists()
    manifest = json.loads(path.with_suffix(".json").read_text())
    assert rc.config_from_dict(manifest["config"]) == other
    assert [s["runs_done_before"] for s in manifest["sessions"]] == [0, 1]
    assert not staged.with_suffix(".json").exists() and not lock_path(path).exists()


# ---------------------------------------------------------------- item 4: signals


def _env() -> dict[str, str]:
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = TIMEOUT) -> None:
    end = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < end, f"{path} did not appear"
        time.sleep(0.05)


@pytest.mark.slow
def test_sigterm_during_an_overwrite_stops_cleanly(tmp_path):
    """Before: SIGTERM killed the process where it stood (no message; lock files left). Now it
    stops like Ctrl-C: one line, exit 143, locks and the unfinished new results removed, the
    old results intact."""
    out = earlier_run(tmp_path)
    before = snapshot(out)
    proc = subprocess.Popen([sys.executable, "-m", "redcore_lite", "train", "synthetic",
                             "--preset", "smoke", "--epochs", "200", "--device", "cpu",
                             "--overwrite", "--out", str(out)], env=_env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        stage = None
        end = time.monotonic() + TIMEOUT
        while stage is None or not (stage / "checkpoint.pt").exists():  # an epoch is written
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < end
            stage = next((p for p in out.iterdir() if p.name.startswith(STAGE)), None)
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=TIMEOUT)
    finally:
        proc.kill()
    assert proc.returncode == 143, err
    assert [line for line in err.splitlines() if line.strip()] == [
        "redcore-lite train: stopped by SIGTERM"], err
    assert snapshot(out) == before and leftovers(out) == []


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.0, 1.0])
def test_ctrl_c_at_any_moment_of_a_sweep_prints_one_line(tmp_path, delay):
    """Repro 12. Before: Ctrl-C in the first second of `sweep --workers 2` printed ~45-69 lines
    (tracebacks of workers still importing). Now every worker starts with SIGINT blocked, and
    the sweep alone reports, in one line. SIGINT goes to the whole process group, as from a
    terminal; ``delay``: seconds after the sweep wrote its manifest (the workers start then)."""
    path = tmp_path / "s.csv"
    proc = subprocess.Popen([sys.executable, "-m", "redcore_lite", "sweep", "synthetic",
                             "--preset", "smoke", "--variants", "redcore", "no_ra", "--settings",
                             "none", "--seeds", "3", "--workers", "2", "--no-progress",
                             "--out", str(path)], env=_env(), text=True, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_for(path.with_suffix(".json"), proc)
        time.sleep(delay)
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=TIMEOUT)
    finally:
        ps = subprocess.run(["ps", "-s", str(proc.pid), "-o", "pid=,stat="], capture_output=True,
                            text=True).stdout.split("\n")
        with_group = [line.split()[0] for line in ps if line.strip() and "Z" not in line.split()[1]]
        for pid in with_group:  # nothing should be left running (a zombie is not running)
            os.kill(int(pid), signal.SIGKILL)
    assert proc.returncode == 130, err
    assert [line for line in err.splitlines() if line.strip()] == [
        f"redcore-lite sweep: interrupted: finished runs are in {path}; run the same command "
        "to resume"], err
    assert with_group == []
    assert not lock_path(path).exists()


MASK = """
import signal
from concurrent.futures import ProcessPoolExecutor
import multiprocessing
from redcore_lite import sweep
with sweep._sigint_blocked_for_children():
    pool = ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn"))
    futures = [pool.submit(signal.pthread_sigmask, signal.SIG_BLOCK, []) for _ in range(2)]
print(all(signal.SIGINT in f.result() for f in futures), signal.SIGINT in
      signal.pthread_sigmask(signal.SIG_BLOCK, []))
pool.shutdown()
"""


@pytest.mark.slow
def test_sweep_workers_start_with_sigint_blocked():
    """The mechanism behind the one line: workers inherit SIGINT blocked, from their first
    instruction, while this process has it unblocked again after. Before the fix of a first
    version, multiprocessing's resource tracker (started with the pool) unblocked SIGINT in the
    middle of the window, so workers still importing printed tracebacks under load."""
    proc = subprocess.run([sys.executable, "-c", MASK], env=_env(), capture_output=True,
                          text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "False"], proc.stdout + proc.stderr
