"""Generated bad inputs (issue 25, item 3): property-based tests with Hypothesis.

Hypothesis generates arrays and labels for ``rc.from_arrays``, tables written as CSV files for the
custom loader, ``--set`` strings, JSON and YAML config files (with aliases), and sweep result
tables for ``report``. Every case must end in the contract: a result, or a one-line ValueError (a
CLI exit 2) that names the argument, of bounded length; never another exception, never a silent
change of data (a result holds exactly the values given), within the profile's deadline.

Profiles (tests/conftest.py): ``ci`` (default: 25 cases a test, deterministic), ``big``
(``HYPOTHESIS_PROFILE=big``: 600 random cases a test).
"""
from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

import redcore_lite as rc  # noqa: E402
from redcore_lite import cli  # noqa: E402
from redcore_lite.config import (Config, check_config, config_from_file,  # noqa: E402
                                 override_from_strings)

MAX_MESSAGE = 1200  # characters of an error message


def one_line(err: BaseException, names: tuple[str, ...]) -> str:
    """The contract of an error: a ValueError, one line of bounded length, naming an argument."""
    text = str(err)
    assert isinstance(err, ValueError), f"{type(err).__name__}: {text[:300]}"
    assert "\n" not in text and len(text) <= MAX_MESSAGE, text[:300]
    assert any(n in text for n in names), text[:300]
    return text


# ---------------------------------------------------------------- from_arrays

FLOATS = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=32),
                   st.sampled_from([np.nan, 0.0, 1.0, -1.0]))


@st.composite
def arrays_case(draw):
    n = draw(st.integers(0, 12))
    mods = draw(st.lists(st.sampled_from(["A", "V", "L", "T"]), min_size=1, max_size=3, unique=True))
    feats = {}
    for m in mods:
        d = draw(st.integers(1, 4))
        x = draw(hnp.arrays(np.float64, (n, d), elements=FLOATS))
        if draw(st.booleans()):  # whole-row holes, as users have them
            rows = draw(st.lists(st.integers(0, max(n - 1, 0)), max_size=n))
            x[rows] = np.nan
        if n and draw(st.integers(0, 9)) == 0:  # a string in a cell
            x = x.astype(object)
            x[draw(st.integers(0, n - 1)), 0] = draw(st.sampled_from(["x", "", "1e", "nan"]))
        feats[m] = x
    labels = draw(st.one_of(
        hnp.arrays(np.int64, (n,), elements=st.integers(-1, 4)),
        st.lists(st.sampled_from(["cat", "dog", "emu"]), min_size=n, max_size=n).map(np.array),
        hnp.arrays(np.float64, (n,), elements=st.sampled_from([0.0, 1.0, 2.5, np.nan])),
        st.lists(st.sampled_from(["cat", None, 1]), min_size=n, max_size=n).map(
            lambda v: np.array(v, dtype=object))))
    mask = None
    if draw(st.integers(0, 3)) == 0:
        mask = draw(hnp.arrays(np.bool_, (n, len(mods) + draw(st.sampled_from([0, 0, 1])))))
    ids = None
    if draw(st.booleans()):
        ids = draw(st.lists(st.sampled_from(["a", "b", "c", "d"]) | st.text(max_size=3),
                            min_size=n, max_size=n))
    return feats, labels, mask, ids


@given(arrays_case())
def test_from_arrays_returns_the_data_or_names_the_argument(case):
    feats, labels, mask, ids = case
    try:
        data = rc.from_arrays(feats, labels, mask=mask, ids=ids)
    except Exception as err:  # noqa: BLE001  (the contract is checked below)
        one_line(err, ("features", "labels", "mask", "ids", "num_classes", "classes", "data"))
        return
    # no silent change: present rows hold exactly the float32 values given, absent rows zeros
    for m, (name, x) in enumerate(feats.items()):
        present = data.observed[:, m].numpy()
        got = data.features[name].numpy()
        want = np.asarray(x, dtype=np.float32)
        np.testing.assert_array_equal(got[present], want[present])
        assert (got[~present] == 0).all()
        if mask is None:
            assert (np.isnan(want[~present]).all()) and not np.isnan(want[present]).any()
    y = np.asarray(labels)
    back = (np.array(data.classes)[data.labels.numpy()] if data.classes is not None
            else data.labels.numpy())
    assert [str(v) for v in back.tolist()] == [str(int(v)) if isinstance(v, (float, np.floating))
                                               else str(v) for v in y.tolist()]


# ---------------------------------------------------------------- CSV tables for the custom loader

CELL = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=32), st.integers(-5, 5),
                 st.sampled_from(["", "x", "1,5", "nan", "inf", '"q"']))


@st.composite
def table_case(draw):
    n = draw(st.integers(0, 10))
    cols = {"label": draw(st.lists(st.sampled_from(["cat", "dog", 0, 1, "", None]), min_size=n,
                                   max_size=n))}
    for m in ("A", "V"):
        for j in range(draw(st.integers(1, 3))):
            plain = draw(st.booleans())
            cols[f"{m}_{j}"] = draw(st.lists(FLOATS if plain else CELL, min_size=n, max_size=n))
    if draw(st.booleans()):
        cols["split"] = draw(st.lists(st.sampled_from(["train", "val", "test", "Train", "x"]),
                                      min_size=n, max_size=n))
    specs = draw(st.sampled_from([("A=A_*", "V=V_*"), ("A=A_0", "V=V_*,A_1"), ("A=B_*", "V=V_*"),
                                  ("A=A_*",), ("A=A_*", "A=V_*"), ("A=label", "V=V_*")]))
    return pd.DataFrame(cols), specs, "split" in cols and draw(st.booleans())


@given(table_case())
def test_csv_loading_returns_the_table_or_names_the_argument(tmp_path_factory, case):
    frame, specs, use_split = case
    path = tmp_path_factory.mktemp("csv") / "t.csv"
    frame.to_csv(path, index=False)
    config = rc.config.DataConfig(name="custom", path=str(path), modalities=specs,
                                  split_column="split" if use_split else "")
    try:
        data, _ = rc.custom_io.read_custom(path, specs, "label",
                                           split_column="split" if use_split else "")
        splits = rc.custom_io.load_custom(config)
    except Exception as err:  # noqa: BLE001
        one_line(err, ("data.", "label", "labels", "modalities", "features", "split", "fractions",
                       str(path)))
        return
    # no silent change: what the loader kept equals what pandas reads from the file
    read = pd.read_csv(path)
    for m, name in enumerate(data.modalities):
        cols = [c for c in read.columns if re.fullmatch(name + r"_\d+", c)] if name != "V" else None
        if cols is None or specs != ("A=A_*", "V=V_*"):
            continue
        want = read[cols].to_numpy(dtype=np.float32, na_value=np.nan)
        present = data.observed[:, m].numpy()
        np.testing.assert_array_equal(data.features[name].numpy()[present], want[present])
    assert sum(len(getattr(splits, p)) for p in ("train", "val", "test")) == len(data)


# ---------------------------------------------------------------- --set strings

FIELDS = [f"{s}.{k}" for s, sec in rc.config_to_dict(Config()).items() for k in sec]
VALUES = st.one_of(st.text(max_size=12), st.integers(-10**6, 10**6).map(str),
                   st.floats().map(repr), st.sampled_from(["true", "0", "[]", "[[1,2]]", "[1,2]",
                                                           "0.2,0.5", "1e400", "nan", "-inf", ""]),
                   st.lists(st.floats(-2, 2), max_size=4).map(json.dumps))


@given(st.lists(st.one_of(st.tuples(st.sampled_from(FIELDS), VALUES).map("=".join),
                          st.text(max_size=20)), min_size=1, max_size=3))
def test_set_strings_give_a_config_or_name_the_field(assignments):
    try:
        config = override_from_strings(rc.preset("smoke"), assignments)
    except Exception as err:  # noqa: BLE001
        one_line(err, ("--set",))
        return
    try:
        check_config(config)
    except Exception as err:  # noqa: BLE001
        one_line(err, tuple(FIELDS))


# ---------------------------------------------------------------- config files (JSON, YAML)

LEAF = st.one_of(st.none(), st.booleans(), st.integers(-10**9, 10**9), st.floats(), st.text(max_size=8))
JSONISH = st.recursive(LEAF, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(
    st.text(max_size=6), kids, max_size=4), max_leaves=20)


@st.composite
def config_doc(draw):
    doc = {}
    for section in draw(st.lists(st.sampled_from([*Config.__dataclass_fields__, "x"]), max_size=3)):
        names = list(rc.config_to_dict(Config()).get(section, {"y": 0}))
        doc[section] = {draw(st.sampled_from(names)): draw(JSONISH) for _ in range(draw(st.integers(0, 3)))}
    return draw(st.one_of(st.just(doc), JSONISH))


@given(config_doc())
def test_json_config_files_give_a_config_or_name_the_file(tmp_path_factory, doc):
    path = tmp_path_factory.mktemp("cfg") / "c.json"
    path.write_text(json.dumps(doc))
    try:
        config = config_from_file(path, rc.preset("smoke"))
    except Exception as err:  # noqa: BLE001
        one_line(err, ("--config",))
        return
    check_config(config)  # a config read from a file has its fields' types


@st.composite
def yaml_doc(draw):
    """YAML text with anchors and aliases nested to a random depth and fan-out."""
    depth, fan = draw(st.integers(1, 8)), draw(st.integers(1, 12))
    leaf = draw(st.sampled_from(["1", "0.1", "x", "[]", "{}", "null"]))
    parts = [f"&n0 [{', '.join([leaf] * fan)}]"]
    parts += [f"&n{i} [{', '.join([f'*n{i - 1}'] * fan)}]" for i in range(1, depth)]
    field = draw(st.sampled_from(FIELDS))
    section, name = field.split(".")
    body = f"[{', '.join(parts)}]" if draw(st.booleans()) else f"*n{depth - 1}"
    if body.startswith("*"):
        return f"x: [{', '.join(parts)}]\n{section}: {{{name}: {body}}}\n"
    return f"{section}: {{{name}: {body}}}\n"


@given(yaml_doc())
def test_yaml_config_files_are_bounded(tmp_path_factory, text):
    pytest.importorskip("yaml")
    path = tmp_path_factory.mktemp("cfg") / "c.yaml"
    path.write_text(text)
    try:
        config = config_from_file(path, rc.preset("smoke"))
    except Exception as err:  # noqa: BLE001
        one_line(err, ("--config",))
        return
    check_config(config)


# ---------------------------------------------------------------- report

VARIANTS, SETTINGS = ["redcore", "no_ra", "uniform"], ["balanced", "large"]


@st.composite
def sweep_table(draw):
    rows = []
    value = st.one_of(st.floats(0, 1), st.sampled_from([np.nan, np.inf, -0.5, 5.0, 1.0, 0.0]))
    patterns = ["A", "V", "L", "AV", "AL", "VL", "AVL", "overall"]
    for v in draw(st.lists(st.sampled_from(VARIANTS), min_size=1, max_size=3, unique=True)):
        for s in draw(st.lists(st.sampled_from(SETTINGS), min_size=1, max_size=2, unique=True)):
            for seed in range(draw(st.integers(1, 3))):
                for split in ("val", "test"):
                    for p in patterns:
                        for m in ("wa", "ua", "f1"):
                            rows.append((v, s, "0.5/0.5/0.5", seed, split, p, m,
                                         draw(value) if draw(st.integers(0, 19)) == 0 else
                                         draw(st.floats(0, 1))))
    return pd.DataFrame(rows, columns=rc.sweep.COLUMNS)


@given(sweep_table())
def test_report_gives_a_report_or_one_error_line(tmp_path_factory, capsys, table):
    folder = tmp_path_factory.mktemp("sweep")
    table.to_csv(folder / "s.csv", index=False)
    capsys.readouterr()
    try:
        code = cli.main(["report", str(folder / "s.csv"), "--out", str(folder / "r")])
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err
    assert code in (0, 2) and "unexpected" not in err and "Traceback" not in err, err[-500:]
    if code == 2:
        assert len([line for line in err.splitlines() if line.strip()]) == 1
