"""The IDR selective-fetch route: an Aspera pair list and one ``ascp`` argv, nothing run."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pytest

from cytoimagenet.download.idr_route import (
    ASPERA_HOST,
    IdrRoute,
    pair_lines,
    plan_idr,
    split_listable,
)
from cytoimagenet.sources.catalog import get_source

KEY = Path("/keys/asperaweb_id_dsa.openssh")


def _pairs(route: IdrRoute) -> list[tuple[str, str]]:
    lines = route.file_list.read_text(encoding="utf-8").splitlines()
    assert len(lines) % 2 == 0
    return list(zip(lines[0::2], lines[1::2], strict=True))


def _option(command: list[str], name: str) -> str:
    hits = [a.split("=", 1)[1] for a in command if a.startswith(f"{name}=")]
    assert len(hits) == 1, (name, command)
    return hits[0]


def _landing(route: IdrRoute) -> list[Path]:
    """Where ascp puts each pair: its destination line, under the target (last argv item)."""
    target = Path(route.command[-1])
    return [target / dest for _, dest in _pairs(route)]


def test_list_holds_exactly_the_wanted_paths(tmp_path: Path) -> None:
    wanted = ["1013608248/L101.tif", "1013608248/L102.tif", "1013608248/L103.tif"]
    route = plan_idr(get_source("idr0088"), wanted, tmp_path, key=KEY)
    assert route.source == "idr0088"
    assert route.file_list == tmp_path / "idr0088" / ".fetch" / "aspera-files.txt"
    assert route.files == 3
    assert _pairs(route) == [(p, p) for p in wanted]
    assert route.http == []
    assert route.skipped == []


def test_argv_is_idrs_documented_call_with_a_pair_list(tmp_path: Path) -> None:
    route = plan_idr(get_source("idr0003"), ["DTT p1/A1--GFP.tif"], tmp_path, key=KEY)
    assert route.command == [
        "ascp",
        "-T",
        "--policy=fair",
        "-l",
        "40m",
        "-P",
        "33001",
        "-k",
        "1",
        "-i",
        str(KEY),
        "--mode=recv",
        "--user=idr0003",
        "--host=fasp.ebi.ac.uk",
        f"--file-pair-list={route.file_list}",
        str(tmp_path / "idr0003"),
    ]
    assert ASPERA_HOST == "fasp.ebi.ac.uk"
    assert _option(route.command, "--user") == "idr0003"
    assert Path(_option(route.command, "--file-pair-list")) == route.file_list
    assert not any(a.startswith("--src-base") or a == "--file-list" for a in route.command)


@pytest.mark.parametrize(
    ("source", "path"),
    [
        ("idr0088", "1013608248/L101.tif"),
        ("idr0003", "DTT p1/A1--GFP.tif"),
        ("idr0081", "screenA/preZ/A1_w1.tif"),
    ],
)
def test_files_land_where_the_build_reads_them(tmp_path: Path, source: str, path: str) -> None:
    route = plan_idr(get_source(source), [path], tmp_path, key=KEY)
    assert _landing(route) == [tmp_path / source / path]
    server, _ = _pairs(route)[0]
    assert server == path  # relative to the study folder, the Aspera user's home
    assert not PurePosixPath(server).is_absolute()


def test_glob_paths_are_skipped_and_reported(tmp_path: Path) -> None:
    wanted = ["24277-Hoechst/cdp2bioactives_a01_s1_w1*.tif", "24277/a01.tif", "p/[ab].tif"]
    route = plan_idr(get_source("idr0016"), wanted, tmp_path, key=KEY)
    assert route.files == 1
    assert _pairs(route) == [("24277/a01.tif", "24277/a01.tif")]
    assert route.skipped == [wanted[0], wanted[2]]
    assert "Skipped 2 path(s) with glob characters" in route.note
    assert wanted[0] in route.note


def test_write_is_atomic_and_replaces_an_old_list(tmp_path: Path) -> None:
    info = get_source("idr0088")
    plan_idr(info, ["a/1.tif", "a/2.tif"], tmp_path, key=KEY)
    route = plan_idr(info, ["b/3.tif"], tmp_path, key=KEY)
    folder = route.file_list.parent
    assert sorted(p.name for p in folder.iterdir()) == ["aspera-files.txt"]
    assert route.file_list.read_text(encoding="utf-8") == "b/3.tif\nb/3.tif\n"


def test_empty_paths_give_an_empty_list(tmp_path: Path) -> None:
    route = plan_idr(get_source("idr0088"), [], tmp_path, key=KEY)
    assert route.files == 0
    assert route.file_list.is_file()
    assert route.file_list.read_text(encoding="utf-8") == ""
    assert "fetch the 0 listed files" in route.note


def test_note_names_the_command_and_the_study_folder(tmp_path: Path) -> None:
    known = plan_idr(get_source("idr0088"), ["x/A011.tif"], tmp_path, key=KEY)
    assert " ".join(known.command) in known.note
    assert "idr0088-cox-phenomicprofiling" in known.note
    assert "ftp.ebi.ac.uk/pub/databases/IDR/idr0088-cox-phenomicprofiling/" in known.note
    unknown = plan_idr(get_source("idr0009"), ["p/A1--pm-647.tif"], tmp_path, key=KEY)
    assert get_source("idr0009").idr_folder == ""
    assert "find its name under ftp.ebi.ac.uk/pub/databases/IDR/" in unknown.note
    assert unknown.files == 1


@pytest.mark.parametrize("bad", ["/abs/a.tif", "../up.tif", "a\\b.tif", "a\nb.tif", ""])
def test_unsafe_paths_are_refused(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError, match="relative channel path"):
        plan_idr(get_source("idr0088"), [bad], tmp_path, key=KEY)
    assert not (tmp_path / "idr0088" / ".fetch" / "aspera-files.txt").exists()


def test_non_idr_source_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not an IDR study"):
        plan_idr(get_source("bbbc021"), ["a.tif"], tmp_path, key=KEY)


def test_helpers() -> None:
    assert split_listable(["a/b.tif", "c/*.tif"]) == (["a/b.tif"], ["c/*.tif"])
    assert pair_lines(["x y/z.tif"]) == "x y/z.tif\nx y/z.tif\n"


def test_catalog_folders_match_their_study() -> None:
    for name in ("idr0003", "idr0037", "idr0072", "idr0081", "idr0088"):
        folder = get_source(name).idr_folder
        assert folder.startswith(f"{name}-"), (name, folder)
