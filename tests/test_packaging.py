"""LICENSE and CITATION.cff: present, consistent with pyproject.toml, and CITATION.cff well-formed.

``cffconvert`` (the reference validator) pins ``jsonschema<4``, which breaks Jupyter, so it is not a
dependency; this test checks the rules of CFF 1.2.0 that a citation tool relies on: the required
keys, their types, the author entries, a DOI of the form ``10.NNNN/...``, and the version and
licence matching ``pyproject.toml``.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")
tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]
PERSON_KEYS = {"family-names", "given-names", "name-particle", "name-suffix", "affiliation",
               "email", "orcid", "website", "alias", "address", "city", "country"}
ENTITY_KEYS = {"name", "email", "website", "address", "city", "country", "orcid", "alias"}


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def _check_authors(authors, where: str) -> None:
    assert isinstance(authors, list) and authors, f"{where}.authors: a non-empty list"
    for i, a in enumerate(authors):
        assert isinstance(a, dict), f"{where}.authors[{i}]: a mapping"
        if "name" in a:  # an entity
            assert set(a) <= ENTITY_KEYS, f"{where}.authors[{i}]: unknown keys {set(a) - ENTITY_KEYS}"
        else:  # a person
            assert "family-names" in a, f"{where}.authors[{i}]: a person needs family-names"
            assert set(a) <= PERSON_KEYS, f"{where}.authors[{i}]: unknown keys {set(a) - PERSON_KEYS}"
        assert all(isinstance(v, str) and v for v in a.values()), f"{where}.authors[{i}]"


def test_license_is_mit_as_pyproject_says():
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert _pyproject()["license"] == "MIT"
    assert text.startswith("MIT License")
    assert "redcore_lite contributors" in text
    assert "THE SOFTWARE IS PROVIDED \"AS IS\"" in text


def test_citation_cff_is_valid_cff_1_2():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    for key in ("cff-version", "message", "title", "authors"):
        assert key in cff, f"CITATION.cff: required key {key!r} missing"
    assert cff["cff-version"] == "1.2.0"
    assert isinstance(cff["message"], str) and isinstance(cff["title"], str)
    _check_authors(cff["authors"], "CITATION.cff")
    assert cff["type"] in ("software", "dataset")
    assert str(cff["version"]) == _pyproject()["version"]
    assert cff["license"] == _pyproject()["license"]

    ref = cff["preferred-citation"]  # the RedCore paper (Sun et al., AAAI 2024)
    for key in ("type", "title", "authors"):
        assert key in ref, f"preferred-citation: required key {key!r} missing"
    assert ref["type"] == "conference-paper"
    assert ref["title"].startswith("RedCore: Relative Advantage Aware")
    _check_authors(ref["authors"], "preferred-citation")
    assert ref["authors"][0]["family-names"] == "Sun" and len(ref["authors"]) == 5
    assert ref["year"] == 2024 and ref["volume"] == 38
    assert re.fullmatch(r"10\.\d{4,9}/\S+", ref["doi"]), ref["doi"]


def test_citation_check_can_fail(tmp_path):
    """The author check rejects a person without family-names (so the test above can fail)."""
    with pytest.raises(AssertionError, match="family-names"):
        _check_authors([{"given-names": "Jun"}], "x")


def test_version_is_one_string():
    """``redcore_lite.__version__`` (from ``_version.py``, which sweep.py and cli.py import without
    the package root) is pyproject's version."""
    from redcore_lite._version import __version__

    import redcore_lite
    assert redcore_lite.__version__ == __version__ == _pyproject()["version"]
