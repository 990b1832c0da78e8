"""Weak-label assignment: exact tokens, least count first, properties, stratification."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from cytoimagenet.curation.labels import REFUSED_NUMBER, LabelOptions, assign_labels
from cytoimagenet.curation.strata import stage1_strata, stage2_strata
from cytoimagenet.errors import ConfigError, SchemaError
from cytoimagenet.schema import LABEL_FIELDS, conform


def make_table(n: int, *, source: str = "synth", seed: int = 0, **fields: object) -> pl.DataFrame:
    """A unified table of ``n`` images; ``fields`` give per-row label lists or callables."""
    rng = np.random.default_rng(seed)
    cols: dict[str, object] = {
        "database": ["Other"] * n,
        "name": [source] * n,
        "dir_name": [source] * n,
        "path": ["p"] * n,
        "filename": [f"f{i}" for i in range(n)],
        "idx": [f"{source}-{i}" for i in range(n)],
        "crop": [False] * n,
        "pool": ["pretraining"] * n,
    }
    for name, values in fields.items():
        cols[name] = values(rng, n) if callable(values) else values
    return conform(pl.DataFrame(cols))


def test_options_are_validated() -> None:
    with pytest.raises(ConfigError, match="unknown label categories"):
        LabelOptions(categories=("colour",))
    with pytest.raises(ConfigError, match="below threshold"):
        LabelOptions(threshold=300, class_size=100)


def test_exact_tokens_never_substrings() -> None:
    # The original's str.contains made "rab5" swallow "rab5a".
    table = make_table(30, cell_visible=[["rab5"]] * 10 + [["rab5a"]] * 20)
    res = assign_labels([table], LabelOptions(threshold=5, class_size=50))
    counts = dict(res.table.group_by("label").len().iter_rows())
    assert counts == {"rab5": 10, "rab5a": 20}


def test_least_count_first_and_skip_when_below_threshold() -> None:
    # 'small' (8 images) is processed first and takes its images; 'big' (12, of which 8
    # overlap) is left with 4 < threshold 5 and is skipped with its reason.
    compound = [["small", "big"]] * 8 + [["big"]] * 4
    table = make_table(12, compound=compound)
    res = assign_labels([table], LabelOptions(threshold=5, class_size=50))
    assert res.table["label"].unique().to_list() == ["small"]
    fate = {r["label"]: r for r in res.candidates.iter_rows(named=True)}
    assert fate["big"]["available"] == 4
    assert fate["big"]["status"] == "below threshold after earlier labels"


def test_ties_are_broken_by_category_then_value() -> None:
    table = make_table(
        20,
        organism=[["zebra"]] * 10 + [None] * 10,
        compound=[None] * 10 + [["aspirin"]] * 10,
        gene=[["b"]] * 10 + [["a"]] * 10,
    )
    res = assign_labels([table], LabelOptions(threshold=5, class_size=50))
    order = res.candidates["label"].to_list()
    assert order == ["zebra", "aspirin", "a targeted", "b targeted"] or order[:2] == [
        "zebra",
        "aspirin",
    ]
    assert order.index("zebra") < order.index("aspirin")  # organism before compound


def _random_multilabel(
    rng: np.random.Generator, n: int, vocab: int, prefix: str
) -> list[list[str]]:
    k = rng.integers(0, 3, n)
    return [[f"{prefix}{v}" for v in rng.zipf(1.6, size=int(m)) % vocab] for m in k]


@pytest.fixture(scope="module")
def big_table() -> pl.DataFrame:
    rng = np.random.default_rng(7)
    n = 20_000
    tables = []
    for s, source in enumerate(["srcA", "srcB", "srcC"]):
        tables.append(
            make_table(
                n,
                source=source,
                seed=s,
                organism=[["human"] if i % 7 else ["mouse"] for i in range(n)],
                cell_type=lambda r, m: [[f"line{v}"] for v in r.integers(0, 6, m)],
                compound=lambda r, m: _random_multilabel(r, m, 60, "cpd"),
                sirna=lambda r, m: _random_multilabel(r, m, 40, "s"),
                cell_visible=lambda r, m: [[c] for c in r.choice(["nucleus", "actin", "er"], m)],
            )
        )
    del rng
    return pl.concat(tables)


def test_properties_on_a_large_random_table(big_table: pl.DataFrame) -> None:
    opts = LabelOptions(threshold=150, class_size=400, stage1_size=2000, seed=1)
    res = assign_labels([big_table], opts)
    table = res.table
    assert table.height > 0
    assert table["idx"].is_unique().all()  # no image in two labels
    sizes = table.group_by("label").len()["len"]
    assert sizes.min() >= opts.threshold and sizes.max() <= opts.class_size
    # Each labelled image really carries its label token in the label's category.
    for cat in LABEL_FIELDS:
        sub = table.filter(pl.col("category") == cat)
        if sub.height:
            assert sub.select(pl.col(cat).list.contains(pl.col("label"))).to_series().all()
    assert set(res.candidates.filter(pl.col("status") == "labelled")["label"]) == set(
        table["label"]
    )


def test_same_seed_same_output_different_seed_different_sample(big_table: pl.DataFrame) -> None:
    opts = LabelOptions(threshold=150, class_size=400, stage1_size=2000, seed=1)
    a = assign_labels([big_table], opts).table
    b = assign_labels([big_table], opts).table
    c = assign_labels(
        [big_table], LabelOptions(threshold=150, class_size=400, stage1_size=2000, seed=2)
    ).table
    assert a.equals(b)
    assert set(a["label"]) == set(c["label"])
    assert not a["idx"].equals(c["idx"])


def test_stratification_is_proportional(big_table: pl.DataFrame) -> None:
    # The 'mouse' rows are 1/7 of the pool: a down-sampled organism-stratified label keeps
    # that share to within one image per stratum.
    opts = LabelOptions(
        threshold=150, class_size=700, stage1_size=5000, seed=3, categories=("cell_visible",)
    )
    res = assign_labels([big_table], opts)
    for label in res.table["label"].unique():
        sub = res.table.filter(pl.col("label") == label)
        pool = big_table.filter(pl.col("cell_visible").list.contains(label))
        share_pool = pool["organism"].list.first().eq("mouse").mean()
        share_sub = sub["organism"].list.first().eq("mouse").mean()
        assert abs(share_pool - share_sub) < 0.02


@pytest.mark.parametrize(
    ("category", "small", "large"),
    [
        (
            "organism",
            ["cell_type", "cell_visible", "sirna", "compound", "phenotype"],
            ["cell_visible", "sirna", "compound", "phenotype"],
        ),
        (
            "cell_type",
            ["organism", "cell_visible", "sirna", "compound", "phenotype"],
            ["cell_visible", "sirna", "compound", "phenotype"],
        ),
        (
            "cell_visible",
            ["organism", "cell_type", "sirna", "compound", "phenotype"],
            ["sirna", "compound", "phenotype"],
        ),
        (
            "phenotype",
            ["organism", "cell_type", "cell_visible", "sirna", "compound"],
            ["cell_visible", "sirna", "compound"],
        ),
        (
            "compound",
            ["organism", "cell_type", "cell_visible", "phenotype"],
            ["cell_visible", "phenotype"],
        ),
        (
            "sirna",
            ["organism", "cell_type", "cell_visible", "phenotype"],
            ["cell_visible", "phenotype"],
        ),
        (
            "gene",
            ["organism", "cell_type", "cell_visible", "sirna", "compound", "phenotype"],
            ["cell_visible", "sirna", "compound", "phenotype"],
        ),
    ],
)
def test_strata_follow_the_documented_table(
    category: str, small: list[str], large: list[str]
) -> None:
    assert stage2_strata(category, stage1_ran=False) == small
    assert stage2_strata(category, stage1_ran=True) == large
    assert "name" not in stage1_strata(category) and category not in stage1_strata(category)


def test_evaluation_rows_are_never_labelled() -> None:
    keep = make_table(10, compound=[["x"]] * 10)
    held = make_table(10, source="bbbc021", compound=[["x"]] * 10)
    # Even a tampered table that claims its BBBC021 rows are pretraining data.
    res = assign_labels([keep, held], LabelOptions(threshold=5, class_size=50))
    assert res.table["dir_name"].unique().to_list() == ["synth"]
    assert res.table.height == 10


def test_duplicate_idx_across_tables_is_an_error() -> None:
    t = make_table(5, compound=[["x"]] * 5)
    with pytest.raises(SchemaError, match="share an idx"):
        assign_labels([t, t], LabelOptions(threshold=2, class_size=5))


def test_min_class_size_and_excluded_labels() -> None:
    table = make_table(30, compound=[["a"]] * 10 + [["b"]] * 20)
    res = assign_labels([table], LabelOptions(threshold=5, class_size=50, min_class_size=15))
    assert res.table["label"].unique().to_list() == ["b"]
    res = assign_labels([table], LabelOptions(threshold=5, class_size=50, exclude_labels=("b",)))
    assert res.table["label"].unique().to_list() == ["a"]


def test_unseen_classes_come_from_below_the_threshold_and_unused_images() -> None:
    table = make_table(60, compound=[["big"]] * 40 + [["rare"]] * 12 + [["rarer"]] * 8)
    res = assign_labels(
        [table], LabelOptions(threshold=30, class_size=50, unseen_classes=1, unseen_min_size=5)
    )
    assert res.table["label"].unique().to_list() == ["big"]
    assert res.unseen["label"].unique().to_list() == ["rare"]  # most images first
    assert not set(res.unseen["idx"]) & set(res.table["idx"])


def test_real_rxrx1_control_sirnas_are_never_labels() -> None:
    from tests.conftest import shared_path

    from cytoimagenet.sources import build_metadata

    raw = shared_path("source_metadata", "rec_rxrx1")
    table = build_metadata("rec_rxrx1", raw)
    # The survey's 31 siRNAs at >= 287 sites are RxRx1's controls (1108-1137 positive,
    # 1138 negative): controls are left out, and no treatment siRNA reaches 287 sites.
    res = assign_labels([table], LabelOptions(categories=("sirna",)))
    assert res.table.height == 0 and res.candidates.height == 0
    kinds = dict(zip(res.controls["control"], res.controls["images"], strict=True))
    assert kinds == {"positive": 12_194, "negative": 492}
    # Asked to include controls, the 31 come back as candidates, and are refused anyway:
    # an anonymised integer is not a name.
    res = assign_labels([table], LabelOptions(categories=("sirna",), include_controls=True))
    assert res.candidates.height == 31
    assert set(res.candidates["status"]) == {REFUSED_NUMBER}
    assert res.table.height == 0 and res.controls.height == 0


def test_control_rows_are_left_out_unless_asked() -> None:
    table = make_table(
        30,
        compound=[["dmso"]] * 10 + [["taxol"]] * 20,
        control=["vehicle"] * 10 + [None] * 20,
    )
    res = assign_labels([table], LabelOptions(threshold=5, class_size=50))
    assert res.table["label"].unique().to_list() == ["taxol"]
    assert res.table["control"].null_count() == res.table.height
    assert res.controls.to_dicts() == [{"dir_name": "synth", "control": "vehicle", "images": 10}]
    res = assign_labels([table], LabelOptions(threshold=5, class_size=50, include_controls=True))
    assert sorted(res.table["label"].unique()) == ["dmso", "taxol"]


def test_bare_numbers_are_refused_and_reported() -> None:
    table = make_table(20, sirna=[["1138"]] * 10 + [["s35651"]] * 10)
    res = assign_labels([table], LabelOptions(threshold=5, class_size=50, unseen_classes=2))
    assert res.table["label"].unique().to_list() == ["s35651"]
    fate = dict(zip(res.candidates["label"], res.candidates["status"], strict=True))
    assert fate == {"1138": REFUSED_NUMBER, "s35651": "labelled"}
    assert res.unseen.height == 0  # nor as an unseen class


def test_moa_is_a_category_only_when_asked() -> None:
    table = make_table(20, compound=[["taxol"]] * 20, moa=[["tubulin stabilizer"]] * 20)
    res = assign_labels([table], LabelOptions(threshold=5, class_size=50))
    assert res.table["category"].unique().to_list() == ["compound"]
    res = assign_labels([table], LabelOptions(threshold=5, class_size=50, categories=("moa",)))
    assert res.table["label"].unique().to_list() == ["tubulin stabilizer"]
