"""A built wheel (not the editable install) carries and loads every shipped data set.

Builds the wheel from a copy of the sources (so a stale ``build/`` of the checkout cannot leak into
it), installs it with ``--no-deps`` into a fresh venv outside the checkout, makes the dependencies
importable through a ``.pth`` file naming this interpreter's site-packages (a plain path line: the
``.pth`` files there, among them the editable install's finder, are not run), and fits the
``teach`` model for a few epochs on mfeat and AV-digits from a folder outside the checkout.
No network: pip runs with ``--no-index`` and ``--no-build-isolation`` (the installed setuptools).
"""
from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TIMEOUT = 600  # seconds per step: CI is a loaded 2-core machine

FIT = """
import sys
from pathlib import Path

import torch

import redcore_lite as rc

torch.set_num_threads(1)
here = Path(rc.__file__).resolve()
assert here.is_relative_to(Path(sys.prefix).resolve()), f"not the wheel's copy: {here}"
assert rc.datasets.MFEAT_PATH.is_file() and rc.datasets.AVDIGITS_PATH.is_file()
for name in ("mfeat", "avdigits"):
    cfg = rc.override(rc.preset("teach"), data={"name": name},
                      train={"epochs_constant": 2, "epochs_decay": 1, "device": "cpu"})
    f1 = rc.fit(cfg).test.set_index("pattern").loc["overall", "f1"]
    print(name, "overall F1", round(float(f1), 3))
seq = rc.datasets.load_avdigits(sequences=True, max_frames=16)
print("avdigits sequences", tuple(seq.train.features["audio"].shape))
print("loaded from", here.parent)
"""


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, **kwargs)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.mark.slow
def test_wheel_install_loads_every_shipped_dataset(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(REPO / "redcore_lite", src / "redcore_lite",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env |= {"PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1", "OMP_NUM_THREADS": "1"}
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
          "-w", str(tmp_path / "dist"), str(src)], env=env, cwd=tmp_path)
    wheel, = (tmp_path / "dist").glob("redcore_lite-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    for name in ("mfeat.npz", "avdigits.npz", "README.md"):
        assert f"redcore_lite/data_files/{name}" in names, name

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], env=env)
    python = venv / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index",
          str(wheel)], env=env, cwd=tmp_path)
    target = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                  env=env).stdout.strip()
    deps = [p for p in site.getsitepackages() if Path(p).is_dir()]
    (Path(target) / "redcore_deps.pth").write_text("\n".join(deps) + "\n")

    proc = _run([str(python), "-c", FIT], env=env, cwd=tmp_path)
    assert "mfeat overall F1" in proc.stdout and "avdigits overall F1" in proc.stdout
    assert "avdigits sequences (2000, 16, 32)" in proc.stdout
    assert f"loaded from {Path(target).resolve() / 'redcore_lite'}" in proc.stdout
