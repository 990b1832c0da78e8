"""Per-route planning (catalog files, IDR, CIL, Kaggle, manual) and the Kaggle client wrapper."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from cytoimagenet.download.http import ChecksumError, DownloadError
from cytoimagenet.download.routes import (
    CIL_IMAGE_URL,
    fetch_kaggle,
    follow_up,
    kaggle_api,
    mirrored,
    parse_kaggle,
    plan_source,
)
from cytoimagenet.download.step import DownloadJob, run_download
from cytoimagenet.sources.catalog import RemoteFile, get_source


def test_metadata_only_keeps_metadata_files() -> None:
    full = plan_source(get_source("rec_rxrx1"), metadata_only=False)
    meta = plan_source(get_source("rec_rxrx1"), metadata_only=True)
    assert {f.path for f in full.files} == {"rxrx1-images.zip", "rxrx1-metadata.zip"}
    assert [f.path for f in meta.files] == ["rxrx1-metadata.zip"] and not meta.manual


def test_idr_plans_annotations_and_says_how_to_get_images() -> None:
    plan = plan_source(get_source("idr0088"), metadata_only=False)
    assert [f.kind for f in plan.files] == ["metadata"]
    assert plan.files[0].sha256 and plan.files[0].is_archive is False  # the .csv.zip stays
    assert any("Aspera" in m and "idr0088@fasp.ebi.ac.uk" in m for m in plan.manual)
    assert not plan_source(get_source("idr0088"), metadata_only=True).manual


@pytest.mark.parametrize(
    ("name", "metadata_only", "says"),
    [
        ("cyclops", False, "no automatic download"),
        ("coos7", False, "no download URL is recorded"),
        ("sample", False, "cytoimagenet sample"),
        ("bbbc041", True, "ships with the images"),
        ("bbbc005", True, "folder and file names"),
    ],
)
def test_what_the_user_must_do_by_hand(name: str, metadata_only: bool, says: str) -> None:
    plan = plan_source(get_source(name), metadata_only=metadata_only)
    assert not plan.files and len(plan.manual) == 1 and says in plan.manual[0]
    if name in ("cyclops", "coos7"):
        assert str(get_source(name).url) in plan.manual[0]  # the home page


def test_cil_images_are_planned_from_the_kinase_table(tmp_path: Path) -> None:
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta" / "map.csv").write_text("file_name,kinase\n53464.zip,AGC\n7.zip,TK\n")
    done = RemoteFile(url="https://example.org/map.csv", path="meta/map.csv", kind="metadata")
    info = get_source("cil_kinome")
    files = follow_up(info, tmp_path, done, metadata_only=False)
    assert [(f.url, f.path) for f in files] == [
        (CIL_IMAGE_URL.format(id="53464"), "meta/53464.zip"),
        (CIL_IMAGE_URL.format(id="7"), "meta/7.zip"),
    ]
    assert all(f.is_archive for f in files)
    assert follow_up(info, tmp_path, done, metadata_only=True) == []


def test_mirror_rewrites_host_and_path_only() -> None:
    url = "https://raw.githubusercontent.com/IDR/x/abc/a%20b.csv?raw=true"
    assert mirrored(url, "http://127.0.0.1:8/m/") == (
        "http://127.0.0.1:8/m/raw.githubusercontent.com/IDR/x/abc/a%20b.csv?raw=true"
    )
    assert mirrored(url, None) == url
    assert mirrored("kaggle://competition/x", "http://m") == "kaggle://competition/x"


def test_parse_kaggle_references() -> None:
    assert parse_kaggle("kaggle://competition/hpa/train.csv") == ("competition", "hpa", "train.csv")
    assert parse_kaggle("kaggle://dataset/own/set") == ("dataset", "own/set", None)
    assert parse_kaggle("kaggle://dataset/own/set/a/b.csv") == ("dataset", "own/set", "a/b.csv")
    with pytest.raises(DownloadError):
        parse_kaggle("kaggle://dataset/only-owner")


class FakeKaggle:
    """Stands in for ``KaggleApi``: writes what the real client would into ``path``."""

    def __init__(self, payload: bytes = b"Id,Target\n1,0\n", zipped: bool = False) -> None:
        self.payload, self.zipped, self.calls = payload, zipped, []

    def competition_download_file(self, ref: str, file: str, path: str, quiet: bool) -> None:
        self.calls.append(("competition_file", ref, file))
        out = Path(path) / (file + ".zip" if self.zipped else file)
        if self.zipped:
            with zipfile.ZipFile(out, "w") as zf:
                zf.writestr(file, self.payload)
        else:
            out.write_bytes(self.payload)

    def dataset_download_files(self, ref: str, path: str, quiet: bool, unzip: bool) -> None:
        self.calls.append(("dataset", ref, unzip))
        with zipfile.ZipFile(Path(path) / (ref.split("/")[1] + ".zip"), "w") as zf:
            zf.writestr("nematode cells/interphase/a.jpg", b"jpg")


def test_kaggle_single_file_delivered_zipped_is_unpacked(tmp_path: Path) -> None:
    api = FakeKaggle(zipped=True)
    remote = RemoteFile(url="kaggle://competition/hpa/train.csv", kind="metadata")
    got = fetch_kaggle(remote, tmp_path / "train.csv", api_factory=lambda: api)
    assert got.status == "downloaded" and (tmp_path / "train.csv").read_bytes() == api.payload
    assert got.sha256 == hashlib.sha256(api.payload).hexdigest()
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")] == ["train.csv"]
    again = fetch_kaggle(remote, tmp_path / "train.csv", api_factory=lambda: 1 / 0)
    assert again.status == "skipped"  # no client needed for a valid file


def test_kaggle_file_with_wrong_recorded_hash_is_refused(tmp_path: Path) -> None:
    remote = RemoteFile(url="kaggle://competition/hpa/train.csv", sha256="0" * 64)
    with pytest.raises(ChecksumError, match=r"train\.csv"):
        fetch_kaggle(remote, tmp_path / "train.csv", api_factory=FakeKaggle)
    assert not (tmp_path / "train.csv").exists()


def test_kaggle_without_package_or_credentials_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "none"))
    for var in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(DownloadError, match=r"not installed|no Kaggle credentials") as info:
        kaggle_api()
    assert "kaggle.json" in str(info.value) and "KAGGLE_USERNAME" in str(info.value)
    monkeypatch.setattr("importlib.util.find_spec", lambda name: object())
    with pytest.raises(DownloadError, match="no Kaggle credentials"):
        kaggle_api()


def test_run_download_kaggle_source_with_the_client(tmp_path: Path) -> None:
    api = FakeKaggle()
    job = DownloadJob(sources=["kag_cell_cycle"], to=tmp_path)
    report = run_download(job, progress=False, kaggle_factory=lambda: api)
    assert [o.status for o in report.outcomes] == ["downloaded"]
    assert api.calls == [("dataset", "paultimothymooney/cell-cycle-experiments", False)]
    assert (tmp_path / "kag_cell_cycle" / "nematode cells" / "interphase" / "a.jpg").exists()
    meta = run_download(
        DownloadJob(sources=["kag_hpa"], to=tmp_path, metadata_only=True),
        progress=False,
        kaggle_factory=lambda: api,
    )
    assert [o.path for o in meta.outcomes] == ["train.csv"]
    assert api.calls[-1] == (
        "competition_file",
        "human-protein-atlas-image-classification",
        "train.csv",
    )
