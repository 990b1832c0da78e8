"""Label options of issue 16: dose labels, the user's synonyms and blocklist."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from cytoimagenet.curation.label_report import build_report, format_report
from cytoimagenet.curation.labels import LabelOptions, assign_labels
from cytoimagenet.curation.user_tables import Blocked, read_blocklist, read_synonyms
from cytoimagenet.errors import ConfigError
from cytoimagenet.schema import conform


def table(rows: list[tuple[str | None, float | None, str | None]], **extra: object) -> pl.DataFrame:
    """A unified table, one row per (compound, concentration, unit)."""
    n = len(rows)
    cols: dict[str, object] = {
        "database": ["Other"] * n,
        "name": ["synth"] * n,
        "dir_name": ["synth"] * n,
        "path": ["p"] * n,
        "filename": [f"f{i}" for i in range(n)],
        "idx": [f"synth-{i}" for i in range(n)],
        "crop": [False] * n,
        "pool": ["pretraining"] * n,
        "compound": [[c] if c else None for c, _, _ in rows],
        "concentration": [d for _, d, _ in rows],
        "concentration_unit": [u for _, _, u in rows],
        **extra,
    }
    return conform(pl.DataFrame(cols, strict=False))


SCREEN = (
    [("taxol", 0.3, "uM")] * 10
    + [("taxol", 1.0, "uM")] * 12
    + [("taxol", None, None)] * 3
    + [("aspirin", 5.0, "uM")] * 8
)


def labels_of(res: object) -> dict[str, int]:
    return dict(res.table.group_by("label").len().iter_rows())  # type: ignore[attr-defined]


# --- split by dose --------------------------------------------------------------------


def test_split_by_dose_makes_one_label_per_compound_and_dose() -> None:
    opts = LabelOptions(threshold=5, class_size=50, categories=("compound",))
    plain = assign_labels([table(SCREEN)], opts)
    assert labels_of(plain) == {"taxol": 25, "aspirin": 8}
    split = assign_labels([table(SCREEN)], LabelOptions(**{**opts.__dict__, "split_by_dose": True}))
    # The 3 taxol rows without a dose keep 'taxol', which is below the threshold.
    assert labels_of(split) == {"taxol 0.3 uM": 10, "taxol 1 uM": 12, "aspirin 5 uM": 8}
    skipped = split.candidates.filter(pl.col("label") == "taxol")
    assert skipped.height == 0  # 3 images: not even a candidate
    row = split.table.filter(pl.col("label") == "taxol 1 uM").row(0, named=True)
    assert row["compound"] == ["taxol"] and row["category"] == "compound"
    assert (row["concentration"], row["concentration_unit"]) == (1.0, "uM")


def test_split_by_dose_only_touches_compounds() -> None:
    phen = [["round"]] * len(SCREEN)
    opts = LabelOptions(threshold=5, class_size=50, categories=("phenotype",), split_by_dose=True)
    res = assign_labels([table(SCREEN, phenotype=phen)], opts)
    assert labels_of(res) == {"round": len(SCREEN)}


def test_split_by_dose_samples_deterministically_and_stratified() -> None:
    rows = [("taxol", 0.3, "uM")] * 60 + [("taxol", 1.0, "uM")] * 20
    cells = [["hela"]] * 40 + [["u2os"]] * 20 + [["hela"]] * 20
    opts = LabelOptions(threshold=5, class_size=30, categories=("compound",), split_by_dose=True)
    one = assign_labels([table(rows, cell_type=cells)], opts)
    two = assign_labels([table(rows, cell_type=cells)], opts)
    assert one.table["idx"].to_list() == two.table["idx"].to_list()
    low = one.table.filter(pl.col("label") == "taxol 0.3 uM")
    assert low.height == 30
    # Stage 2 strata include cell_type: 40 hela / 20 u2os -> 20 / 10.
    assert dict(low["cell_type"].list.first().value_counts().iter_rows()) == {
        "hela": 20,
        "u2os": 10,
    }
    other = assign_labels(
        [table(rows, cell_type=cells)], LabelOptions(**{**opts.__dict__, "seed": 1})
    )
    assert other.table["idx"].to_list() != one.table["idx"].to_list()


# --- user synonyms ----------------------------------------------------------------------


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_user_synonyms_pool_values(tmp_path: Path) -> None:
    rows = [("Paclitaxel", None, None)] * 4 + [("taxol", None, None)] * 4
    syn = read_synonyms(
        write(tmp_path / "s.csv", "category,value,canonical\ncompound,Paclitaxel,Taxol\n")
    )
    opts = LabelOptions(threshold=5, class_size=50, categories=("compound",))
    assert labels_of(assign_labels([table(rows)], opts)) == {}
    # Values in the table are harmonised tokens: lower case, as the user's values become.
    tokens = table([("paclitaxel", None, None)] * 4 + [("taxol", None, None)] * 4)
    res = assign_labels([tokens], LabelOptions(**{**opts.__dict__, "synonyms": syn}))
    assert labels_of(res) == {"taxol": 8}
    assert res.table["compound"].to_list() == [["taxol"]] * 8


def test_user_synonyms_for_genes_keep_the_suffix(tmp_path: Path) -> None:
    syn = read_synonyms(
        write(tmp_path / "s.csv", "category,value,canonical,reason\ngene,EZH2,EZH1,test\n")
    )
    assert [(s.value, s.canonical, s.reason) for s in syn] == [
        ("ezh2 targeted", "ezh1 targeted", "test")
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "cat,value,canonical\n",
            r"row 1: header is .*expected category,value,canonical\[,reason\]",
        ),
        ("category,value,canonical,extra\n", r"row 1: header"),
        ("", r"empty; expected a header"),
        ("category,value,canonical\ncolour,red,blue\n", r"row 2: unknown category 'colour'"),
        ("category,value,canonical\n\ncompound,,x\n", r"row 3: value is empty"),
        (
            "category,value,canonical\ncompound,a,n/a\n",
            r"row 2: canonical is empty or a placeholder",
        ),
        ("category,value,canonical\ncompound,a,b,c\n", r"row 2: 4 fields, the header has 3"),
        (
            "category,value,canonical\ncompound,a,b\ncompound,A,c\n",
            r"row 3: compound 'a' is already mapped to 'b' above",
        ),
        ("category,value,canonical\ncompound,a,b\ncompound,b,c\n", r"chains are not followed"),
        (
            "category,value,canonical\ncell_type,U-2 OS,osteosarcoma\n",
            r"row 2: the packaged synonyms already turn cell_type 'u-2 os' into 'u2os'.*map 'u2os'",
        ),
    ],
)
def test_bad_synonym_tables_are_one_line_errors(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path / "syn.csv", text)
    with pytest.raises(ConfigError, match=message) as err:
        read_synonyms(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_synonyms_of_a_packaged_canonical_are_allowed(tmp_path: Path) -> None:
    # 'hepg2' maps to itself in the packaged table: it does occur in harmonised tables.
    syn = read_synonyms(
        write(tmp_path / "s.csv", "category,value,canonical\ncell_type,HepG2,liver\n")
    )
    assert [(s.category, s.value, s.canonical) for s in syn] == [("cell_type", "hepg2", "liver")]


def test_non_utf8_table(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_bytes(b"category,value,canonical\ncompound,\xff\xfe,x\n")
    with pytest.raises(ConfigError, match="not a UTF-8 text file"):
        read_synonyms(path)


# --- blocklist --------------------------------------------------------------------------


def test_blocked_values_never_become_labels(tmp_path: Path) -> None:
    path = write(tmp_path / "b.csv", "category,value,reason\ncompound,Taxol,solvent artefact\n")
    blocked = read_blocklist(path)
    assert blocked == (Blocked("compound", "taxol", "solvent artefact"),)
    phen = [["round"]] * 25 + [None] * 8
    opts = LabelOptions(threshold=5, class_size=50, blocklist=blocked)
    res = assign_labels([table(SCREEN, phenotype=phen)], opts)
    # Taxol's images stay free: the phenotype takes them instead.
    assert labels_of(res) == {"round": 25, "aspirin": 8}
    fate = res.candidates.filter(pl.col("label") == "taxol").row(0, named=True)
    assert fate["status"] == "blocked: solvent artefact" and fate["taken"] == 0
    report = build_report(res)
    assert report["blocked"] == [
        {
            "category": "compound",
            "value": "taxol",
            "reason": "solvent artefact",
            "candidates": [{"label": "taxol", "images": 25}],
        }
    ]
    assert "| taxol | compound | solvent artefact | taxol (25) |" in format_report(report)


def test_blocking_a_compound_blocks_its_dose_labels(tmp_path: Path) -> None:
    blocked = read_blocklist(
        write(tmp_path / "b.csv", "category,value,reason\ncompound,taxol,no\n")
    )
    opts = LabelOptions(threshold=5, class_size=50, split_by_dose=True, blocklist=blocked)
    res = assign_labels([table(SCREEN)], opts)
    assert labels_of(res) == {"aspirin 5 uM": 8}
    stopped = build_report(res)["blocked"][0]["candidates"]
    assert sorted(c["label"] for c in stopped) == ["taxol 0.3 uM", "taxol 1 uM"]


def test_blocking_one_dose_label(tmp_path: Path) -> None:
    path = write(tmp_path / "b.csv", "category,value,reason\ncompound,taxol 1 uM,too toxic\n")
    opts = LabelOptions(
        threshold=5, class_size=50, split_by_dose=True, blocklist=read_blocklist(path)
    )
    assert labels_of(assign_labels([table(SCREEN)], opts)) == {
        "taxol 0.3 uM": 10,
        "aspirin 5 uM": 8,
    }


def test_blocked_values_are_not_unseen_classes(tmp_path: Path) -> None:
    rows = [("rare", None, None)] * 3 + [("common", None, None)] * 10
    blocked = read_blocklist(write(tmp_path / "b.csv", "category,value,reason\ncompound,rare,x\n"))
    opts = LabelOptions(
        threshold=5, class_size=50, unseen_classes=1, unseen_min_size=2, blocklist=blocked
    )
    assert assign_labels([table(rows)], opts).unseen.height == 0
    free = LabelOptions(threshold=5, class_size=50, unseen_classes=1, unseen_min_size=2)
    assert assign_labels([table(rows)], free).unseen["label"].unique().to_list() == ["rare"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "category,value\ncompound,x\n",
            r"row 1: header is 'category,value'; expected category,value,reason",
        ),
        ("category,value,reason\ncompound,x,\n", r"row 2: no reason given"),
        ("category,value,reason\ncompound,n/a,because\n", r"row 2: value is empty"),
        ("category,value,reason\nshape,x,because\n", r"row 2: unknown category 'shape'"),
    ],
)
def test_bad_blocklists_are_one_line_errors(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path / "block.csv", text)
    with pytest.raises(ConfigError, match=message) as err:
        read_blocklist(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_tables_may_name_the_optional_fields(tmp_path: Path) -> None:
    path = write(tmp_path / "b.csv", "category,value,reason\nmoa,HDAC inhibitor,too broad\n")
    assert read_blocklist(path) == (Blocked("moa", "hdac inhibitor", "too broad"),)
    moa = [["hdac inhibitor"]] * 20 + [["tubulin destabilizer"]] * 13
    opts = LabelOptions(
        threshold=5, class_size=50, categories=("moa",), blocklist=read_blocklist(path)
    )
    res = assign_labels([table(SCREEN, moa=moa)], opts)
    assert labels_of(res) == {"tubulin destabilizer": 13}
    bad = write(tmp_path / "c.csv", "category,value,reason\nstrain,sk1,not a label field\n")
    with pytest.raises(ConfigError, match="strain"):
        read_blocklist(bad)
