"""The source catalog: all 40 CytoImageNet sources plus the evaluation sets, well-formed."""

from __future__ import annotations

import csv
import re
import sys

import pytest
from tests.conftest import SHARED, shared_path

from cytoimagenet.errors import UnknownSourceError
from cytoimagenet.sources.catalog import DATABASES, all_sources, get_source, load_catalog

PAPER_SOURCES = [
    "bbbc005",
    "bbbc006",
    "bbbc010",
    "bbbc011",
    "bbbc012",
    "bbbc013",
    "bbbc014",
    "bbbc015",
    "bbbc017",
    "bbbc020",
    "bbbc022",
    "bbbc025",
    "bbbc026",
    "bbbc038",
    "bbbc041",
    "bbbc045",
    "bbbc048",
    "bbbc051",
    "cil_kinome",
    "idr0003",
    "idr0009",
    "idr0016",
    "idr0017",
    "idr0021",
    "idr0037",
    "idr0041",
    "idr0067",
    "idr0072",
    "idr0080",
    "idr0081",
    "idr0088",
    "idr0093",
    "kag_cell_cycle",
    "kag_hpa",
    "kag_hpa_single",
    "kag_leukemia",
    "rec_rxrx1",
    "rec_rxrx19a",
    "rec_rxrx19b",
    "rec_rxrx2",
]
EVALUATION = ("bbbc021", "coos7", "cyclops", "bbbc014")


def test_forty_sources_and_the_evaluation_sets() -> None:
    assert len(PAPER_SOURCES) == 40
    names = {s.name for s in all_sources()}
    assert names == set(PAPER_SOURCES) | {"bbbc021", "coos7", "cyclops"}
    assert "sample" in {s.name for s in all_sources(include_generated=True)}


def test_database_split_matches_the_paper() -> None:
    # README/preprint: 18 BBBC, 1 CIL, 13 IDR, 4 Kaggle, 4 RxRx.
    counts: dict[str, int] = {}
    for name in PAPER_SOURCES:
        db = get_source(name).database
        counts[db] = counts.get(db, 0) + 1
    assert counts == {"bbbc": 18, "cil": 1, "idr": 13, "kaggle": 4, "rxrx": 4}


@pytest.mark.parametrize("name", EVALUATION)
def test_evaluation_flags(name: str) -> None:
    info = get_source(name)
    assert info.evaluation
    assert info.pretraining == (name == "bbbc014")  # bbbc014 is both


def test_every_entry_is_complete() -> None:
    for info in all_sources(include_generated=True):
        assert info.database in DATABASES
        assert info.title and info.licence and info.microscopy and info.channels
        assert str(info.url).startswith(("http://", "https://"))
        assert info.access in {"direct", "idr", "kaggle", "rxrx", "cil", "generated", "manual"}
        if info.name in PAPER_SOURCES:
            assert info.images, f"{info.name} lacks its expected image count"


def test_lookup_is_case_insensitive_and_helpful() -> None:
    assert get_source("IDR0088").name == "idr0088"
    with pytest.raises(UnknownSourceError, match="Did you mean idr0088"):
        get_source("idr088")


def _survey_key(row: dict[str, str]) -> str | None:
    match = re.search(r"BBBC(\d{3})", row["link"])
    if match:
        return f"bbbc{match.group(1)}"
    return row["dir_name"] or None


def test_expected_image_counts_come_from_the_authors_survey() -> None:
    path = shared_path("cytoimagenet_survey", "datasets_info.csv")
    csv.field_size_limit(sys.maxsize)
    with path.open(encoding="utf-8") as fh:
        survey = {_survey_key(r): r for r in csv.DictReader(fh)}
    catalog = load_catalog()
    checked = 0
    for name in [*PAPER_SOURCES, "bbbc021"]:
        row = survey.get(name)
        assert row is not None, f"{name} not in the survey"
        assert catalog.get(name).images == int(float(row["dataset_size"])), name
        checked += 1
    assert checked == 41


# --- remote files (the `download` command's plan) -----------------------------------

ROUTED = ("idr", "kaggle", "rxrx", "cil")


def test_remote_files_are_well_formed() -> None:
    for info in all_sources(include_generated=True):
        for f in info.files:
            scheme = "kaggle://" if info.access == "kaggle" else "https://"
            assert f.url.startswith(scheme), (info.name, f.url)  # TLS for every HTTP file
            assert f.path and not f.path.startswith("/") and ".." not in f.path.split("/")
            assert (f.sha256 is None) == (f.size is None), (info.name, f.path)  # verified pairs


def test_every_paper_source_with_a_route_declares_its_files() -> None:
    for name in PAPER_SOURCES:
        info = get_source(name)
        assert info.files or info.access == "manual", f"{name} declares no files"
        if info.access in ROUTED and info.metadata_files:
            assert any(f.kind == "metadata" for f in info.files), name


def test_metadata_files_match_the_adapter_patterns() -> None:
    # every metadata file a download fetches must be found by the source's adapter
    from fnmatch import fnmatch

    for info in all_sources():
        for f in info.files:
            if f.kind != "metadata" or f.is_archive or not info.metadata_files:
                continue
            assert any(fnmatch("x/" + f.path, p) for p in info.metadata_files), (info.name, f.path)


def test_pinned_checksums_match_the_real_files() -> None:
    # the recorded hashes are of the real files at the pinned commits (see each SOURCE.txt)
    import hashlib

    checked = 0
    for info in all_sources():
        folder = SHARED / "source_metadata" / info.name
        for f in info.files:
            local = folder / f.path
            if f.sha256 and local.is_file():
                data = local.read_bytes()
                assert (len(data), hashlib.sha256(data).hexdigest()) == (f.size, f.sha256)
                checked += 1
    if not checked:
        pytest.skip("../shared/data is absent")
    assert checked >= 12


def test_remote_file_validation() -> None:
    from pydantic import ValidationError

    from cytoimagenet.sources.catalog import RemoteFile

    assert RemoteFile(url="https://h/x/a%20b.zip?raw=true").path == "a b.zip"
    assert RemoteFile(url="https://h/a.tar.gz").is_archive
    assert not RemoteFile(url="https://h/a.csv.zip", extract=False).is_archive
    for bad in (
        {"url": "ftp://h/a.zip"},
        {"url": "https://h/"},
        {"url": "https://h/a.zip", "path": "../a.zip"},
        {"url": "https://h/a.zip", "path": "/abs/a.zip"},
        {"url": "https://h/a.zip", "sha256": "ABC"},
    ):
        with pytest.raises(ValidationError):
            RemoteFile(**bad)
