"""Harmonisation rules: token normalisation, synonyms, gene suffix, controls, exclusion."""

from __future__ import annotations

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cytoimagenet.curation.harmonize import (
    _normalize_expr,
    canonical,
    harmonize,
    normalize_token,
    synonyms,
)
from cytoimagenet.errors import MetadataError
from cytoimagenet.sources import get_source


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  U-2 OS ", "u-2 os"),
        ("Taxol*", "taxol-"),
        ("HeLa\tcells", "hela cells"),
        ("“quoted”", "quoted"),
        ("rho–associated kinase", "rho-associated kinase"),
        ("ＡＢＣ", "abc"),  # full-width letters (NFKC)
        ("N/A", None),
        ("missing_info_possibly_empty", None),
        ("   ", None),
        (None, None),
        # Underscores are separators: idr0088 writes 'dna alkylating_agent'.
        ("hpsi0813i-ffdm_3", "hpsi0813i-ffdm 3"),
        ("DNA alkylating_agent", "dna alkylating agent"),
        # A placeholder or control word inside a value makes the whole value name no class.
        ("unknown target unknown_moa", None),
        ("bromodomain_inhibitor negative_control", None),
        ("cdk negative_control", None),
        ("Unknown", None),
        ("none given", None),
        # ... but only as a whole word: 'na+' and 'knockdown' are not placeholders.
        (
            "ca2+/na+-activated potassium channel blocker",
            "ca2+/na+-activated potassium channel blocker",
        ),
        ("unknownase", "unknownase"),
    ],
)
def test_normalize_token(raw: str | None, expected: str | None) -> None:
    assert normalize_token(raw) == expected


# Characters unassigned in this Python's Unicode database are left out: polars (Rust) may know
# a newer Unicode version with case mappings that Python's str.lower() does not have yet.
_ASSIGNED = st.characters(exclude_categories=("Cn", "Cs"))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(_ASSIGNED, max_size=20), min_size=1, max_size=20))
def test_vectorised_normalisation_matches_the_scalar_rule(values: list[str]) -> None:
    got = pl.Series(values, dtype=pl.String).to_frame("v").select(_normalize_expr(pl.col("v")))
    assert got.to_series().to_list() == [normalize_token(v) for v in values]


def test_normalize_is_idempotent() -> None:
    for raw in ["  A  B ", "x*", "U–2 OS", "dmso."]:
        once = normalize_token(raw)
        assert normalize_token(once) == once


@pytest.mark.parametrize(
    ("field", "raw", "expected"),
    [
        ("cell_type", "Neutrophil", "white blood cell"),
        ("cell_type", "U2-OS", "u2os"),
        ("cell_type", "u-2 OS", "u2os"),
        ("cell_visible", "GPCR", "cell membrane"),
        ("cell_visible", "nuclei", "nucleus"),
        ("organism", "Homo sapiens", "human"),
        ("compound", "Dimethyl sulfoxide", "dmso"),
        ("gene", "EZH2", "ezh2 targeted"),
        ("gene", "ezh2 targeted", "ezh2 targeted"),
        ("compound", "rab5", "rab5"),  # no substring mapping: rab5 stays rab5
        ("compound", "neutrophil", "neutrophil"),  # synonyms are per field
    ],
)
def test_canonical(field: str, raw: str, expected: str) -> None:
    assert canonical(field, raw) == expected


def test_synonym_table_is_well_formed() -> None:
    table = synonyms()
    assert table["cell_type"]["neutrophil"] == "white blood cell"
    for mapping in table.values():
        for src, dst in mapping.items():
            assert normalize_token(src) == src and normalize_token(dst) == dst
            # No chains: a target is never itself mapped elsewhere.
            assert mapping.get(dst, dst) == dst


def _records(**cols: object) -> pl.DataFrame:
    base: dict[str, object] = {
        "key": ["a", "b", "c"],
        "path": ["p", "p", "p"],
        "filename": ["a.tif", "b.tif", "c.tif"],
        "channel_paths": [["p/a.tif"], ["p/b.tif"], ["p/c.tif"]],
    }
    base.update(cols)
    return pl.DataFrame(base)


def test_harmonize_lists_synonyms_defaults_and_suffix() -> None:
    info = get_source("sample")
    recs = _records(
        compound=["Dimethyl sulfoxide", "Taxol|taxol", None],
        gene=["EZH2", None, "N/A"],
        cell_type=[None, "Neutrophil", "HeLa"],
        control=["Negative Control", None, "empty well"],
    )
    out = harmonize(recs, info)
    assert out["compound"].to_list() == [["dmso"], ["taxol"], None]
    assert out["gene"].to_list() == [["ezh2 targeted"], None, None]
    # Missing cell_type falls back to the catalog default; given values are harmonised.
    assert out["cell_type"].to_list() == [["synthetic"], ["white blood cell"], ["hela"]]
    assert out["organism"].to_list() == [["human"]] * 3
    assert out["control"].to_list() == ["negative", None, "empty"]
    assert out["idx"].to_list() == ["sample-a", "sample-b", "sample-c"]
    assert out["pool"].unique().to_list() == ["pretraining"]
    assert out["label"].null_count() == 3 and not out["crop"].any()


def test_harmonize_accepts_list_columns() -> None:
    recs = _records(phenotype=[["A", "b"], [], None])
    out = harmonize(recs, get_source("sample"))
    assert out["phenotype"].to_list() == [["a", "b"], None, None]


def test_harmonize_rejects_broken_records() -> None:
    info = get_source("sample")
    with pytest.raises(MetadataError, match="key"):
        harmonize(_records().drop("key"), info)
    with pytest.raises(MetadataError, match="duplicated keys"):
        harmonize(_records(key=["a", "a", "b"]), info)
    with pytest.raises(MetadataError, match="unexpected"):
        harmonize(_records(bogus=[1, 2, 3]), info)


def test_controls_are_kinds_vehicles_and_propagated_per_reagent() -> None:
    recs = _records(
        key=["a", "b", "c", "d", "e"],
        path=["p"] * 5,
        filename=list("abcde"),
        channel_paths=[["x"]] * 5,
        compound=["Dimethyl sulfoxide", "DMSO|taxol", "Taxol", None, None],
        sirna=[None, None, None, "103860", "103860"],
        control=[None, None, None, "negative_control", None],
    )
    out = harmonize(recs, get_source("sample"))
    # DMSO alone is the vehicle; DMSO with a drug is a treatment; the siRNA the source
    # calls a negative control in one well is that control in every well.
    assert out["control"].to_list() == ["vehicle", None, None, "negative", "negative"]


def test_moa_condition_and_strain_are_harmonised() -> None:
    recs = _records(
        moa=["DNA alkylating_agent|unknown target unknown_moa", None, "Tubulin_Destabilizer"],
        condition=["Starvation", None, None],
        strain=["SK1", None, "Y6545|other"],
    )
    out = harmonize(recs, get_source("sample"))
    assert out["moa"].to_list() == [["dna alkylating agent"], None, ["tubulin destabilizer"]]
    assert out["condition"].to_list() == [["starvation"], None, None]
    assert out["strain"].to_list() == ["sk1", None, "y6545"]


def test_evaluation_sources_are_always_excluded() -> None:
    out = harmonize(_records(), get_source("bbbc021"))
    assert out["pool"].unique().to_list() == ["evaluation"]
    assert out["exclude_reason"].str.contains("held-out").all()


def test_known_overlap_is_excluded_in_any_source() -> None:
    recs = _records(plate=["Week4_27481", "SP01", None])
    out = harmonize(recs, get_source("sample"))
    assert out["exclude_reason"][0].startswith("overlaps held-out bbbc021")
    assert out["exclude_reason"][1:].to_list() == [None, None]


def test_adapter_exclusion_reason_is_kept() -> None:
    recs = _records(exclude_reason=["source QC: Excluded", None, None])
    out = harmonize(recs, get_source("sample"))
    assert out["exclude_reason"].to_list() == ["source QC: Excluded", None, None]
