"""BBBC021 protocols: brute-force NSC/NSCB on simulated plates, and the real plate layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from cytoimagenet.errors import ConfigError, SchemaError
from cytoimagenet.evaluation.bbbc021 import evaluate_bbbc021, resolve_protocol
from cytoimagenet.evaluation.feature_table import FeatureTable
from cytoimagenet.evaluation.normalize import Sphering, plate_dmso

DATA = Path(__file__).parents[2] / ".." / "shared" / "data" / "bbbc021_metadata"
MOA_CSV = DATA / "BBBC021_v1_moa.csv"
# compound → (MoA, weeks): B is a single-batch MoA, c3 spans every week (like taxol).
COMPOUNDS = {
    "a1": ("A", [1]), "a2": ("A", [2]), "a3": ("A", [3]),
    "b1": ("B", [1]), "b2": ("B", [1]),
    "c1": ("C", [2]), "c2": ("C", [3]), "c3": ("C", [1, 2, 3]),
    "d1": ("D", [1]), "d2": ("D", [3]),
}  # fmt: skip


def simulate(
    seed: int = 0, plate_effect: float = 0.0, signal: float = 1.0, d: int = 6
) -> FeatureTable:
    """Three weeks × two plates; per plate one well per treatment and four DMSO wells."""
    rng = np.random.default_rng(seed)
    moa_dir = {m: rng.standard_normal(d) for m in "ABCD"}
    rows, feats = [], []
    for week in (1, 2, 3):
        for plate in (f"Week{week}_{100 * week}", f"Week{week}_{100 * week + 1}"):
            offset = plate_effect * rng.standard_normal(d)
            wells = [("DMSO", "0.0", None)] * 4
            wells += [
                (c, conc, moa)
                for c, (moa, weeks) in COMPOUNDS.items()
                if week in weeks
                for conc in ("0.1", "1.0")
            ]
            for w, (compound, conc, moa) in enumerate(wells):
                for _ in range(rng.integers(1, 5)):  # unequal sites: well means ≠ row means
                    base = signal * moa_dir[moa] if moa else np.zeros(d)
                    feats.append(base + offset + 0.5 * rng.standard_normal(d))
                    rows.append(
                        {
                            "Metadata_Plate": plate,
                            "Metadata_Well": f"W{w:02d}",
                            "Metadata_Compound": compound,
                            "Metadata_Concentration": conc,
                            "Metadata_MoA": moa if moa else "DMSO",
                        }
                    )
    x = np.asarray(feats, dtype=np.float32)
    return FeatureTable("sim", pl.DataFrame(rows), x, [f"f{i}" for i in range(d)])


def brute_force(table: FeatureTable, normalize: str, by_well: bool, nscb: bool) -> dict:
    """Plain-Python reference: returns {(compound, conc): predicted MoA or None}."""
    meta = table.meta.to_dicts()
    x = table.features.astype(np.float64)
    if normalize == "plate-dmso":
        x = x.copy()
        for plate in {r["Metadata_Plate"] for r in meta}:
            idx = [i for i, r in enumerate(meta) if r["Metadata_Plate"] == plate]
            ctl = [i for i in idx if meta[i]["Metadata_Compound"] == "DMSO"]
            mu, sd = x[ctl].mean(axis=0), x[ctl].std(axis=0)
            x[idx] = (x[idx] - mu) / sd
    groups: dict = {}
    for i, r in enumerate(meta):
        if r["Metadata_Compound"] == "DMSO":
            continue
        key = (r["Metadata_Compound"], float(r["Metadata_Concentration"]))
        unit = (r["Metadata_Plate"], r["Metadata_Well"]) if by_well else i
        groups.setdefault(key, {}).setdefault(unit, []).append(i)
    treat = {}
    for key, units in groups.items():
        prof = np.mean([x[rows].mean(axis=0) for rows in units.values()], axis=0)
        first = meta[next(iter(units.values()))[0]]
        weeks = {meta[i]["Metadata_Plate"].split("_")[0] for r in units.values() for i in r}
        treat[key] = (prof, first["Metadata_MoA"], weeks)
    if nscb:
        weeks_of: dict = {}
        for _, moa, weeks in treat.values():
            weeks_of.setdefault(moa, set()).update(weeks)
        single = {m for m, w in weeks_of.items() if len(w) == 1}
        treat = {k: v for k, v in treat.items() if v[1] not in single}
    out = {}
    for key, (p, _, weeks) in treat.items():
        best, best_d = None, np.inf
        for other, (q, moa, w2) in sorted(treat.items()):
            if other[0] == key[0] or (nscb and weeks & w2):
                continue
            dist = 1 - p @ q / np.linalg.norm(p) / np.linalg.norm(q)
            if dist < best_d:
                best, best_d = moa, dist
        out[key] = best
    return out


def _predictions(score: dict) -> dict:
    out = {}
    for row in score["extra"]["predictions"]:
        compound, conc = row["treatment"].rsplit("@", 1)
        out[(compound, float(conc))] = row["predicted"]
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_standard_nsc_nscb_match_the_brute_force_loop(seed: int) -> None:
    table = simulate(seed, plate_effect=0.3, signal=0.6)
    scores = evaluate_bbbc021(table, resolve_protocol("standard"))
    for name, nscb in (("nsc", False), ("nscb", True)):
        expect = brute_force(table, "plate-dmso", by_well=True, nscb=nscb)
        got = _predictions(scores[name])
        assert got == expect, name
        scored = [k for k, v in expect.items() if v is not None]
        assert scores[name]["n"] == len(scored)
    nscb = scores["nscb"]["extra"]
    assert nscb["excluded_moas"] == ["B"]
    assert nscb["unscored"] == ["c3@0.1", "c3@1.0"]  # every batch is c3's: no neighbour left


def test_cytoimagenet_protocol_matches_brute_force_with_row_means() -> None:
    table = simulate(4, signal=0.5)
    proto = resolve_protocol("cytoimagenet", normalize="none")
    got = _predictions(evaluate_bbbc021(table, proto)["nsc"])
    assert got == brute_force(table, "none", by_well=False, nscb=False)


def test_plate_dmso_normalisation_removes_plate_effects() -> None:
    table = simulate(5, plate_effect=6.0, signal=1.0)
    raw = evaluate_bbbc021(table, resolve_protocol("standard", normalize="zscore"))
    fixed = evaluate_bbbc021(table, resolve_protocol("standard"))
    assert fixed["nscb"]["accuracy"] == 1.0
    assert raw["nscb"]["accuracy"] < 0.8


def test_plate_dmso_gives_controls_zero_mean_unit_std_per_plate() -> None:
    table = simulate(6, plate_effect=3.0)
    control = (table.meta["Metadata_Compound"] == "DMSO").to_numpy()
    plates = table.meta["Metadata_Plate"].to_numpy()
    z = plate_dmso(table.features, plates, control)
    for plate in set(plates):
        ctl = z[(plates == plate) & control].astype(np.float64)
        np.testing.assert_allclose(ctl.mean(axis=0), 0, atol=1e-5)
        np.testing.assert_allclose(ctl.std(axis=0), 1, atol=1e-5)
    with pytest.raises(SchemaError, match=r"Week1_100.*fewer than two control"):
        plate_dmso(table.features, plates, control & (plates != "Week1_100"))


@pytest.mark.parametrize(("n", "d"), [(400, 12), (20, 50)])
def test_sphering_whitens_the_controls(n: int, d: int) -> None:
    rng = np.random.default_rng(7)
    mix = rng.standard_normal((d, d)) * np.linspace(0.1, 5, d)
    controls = rng.standard_normal((n, d)) @ mix + 3.0
    white = Sphering(ridge=1e-9).fit(controls).transform(controls).astype(np.float64)
    cov = np.cov(white, rowvar=False)
    rank = min(n - 1, d)
    eig = np.sort(np.linalg.eigvalsh(cov))[::-1]
    np.testing.assert_allclose(eig[:rank], 1.0, atol=1e-3)  # unit variance in the controls' span
    np.testing.assert_allclose(white.mean(axis=0), 0, atol=1e-4)
    soft = Sphering(ridge=1.0).fit(controls).transform(controls)
    assert np.linalg.eigvalsh(np.cov(soft, rowvar=False)).max() < 1.0  # ridge shrinks


def test_sphere_option_runs_and_is_described() -> None:
    table = simulate(8, plate_effect=1.0)
    proto = resolve_protocol("standard", sphere=True, metric="pearson", sphere_ridge=0.5)
    scores = evaluate_bbbc021(table, proto)
    assert scores["nsc"]["n"] == 20
    text = proto.description()
    assert "sphered (ZCA/TVN) on all DMSO rows with a ridge of 0.5" in text
    assert "pearson 1-NN" in text


def test_batch_column_overrides_plate_prefix_and_bad_plate_names_fail() -> None:
    table = simulate(9)
    weeks = table.meta["Metadata_Plate"].str.split("_").list.first()
    # Same batches under other names: identical NSCB predictions.
    renamed = table.with_meta(
        table.meta.with_columns(
            Metadata_Batch=weeks.str.replace("Week", "B"),
            Metadata_Plate=pl.col("Metadata_Plate").str.replace("_", "-"),
        )
    )
    proto = resolve_protocol("standard")
    a = evaluate_bbbc021(table, proto)["nscb"]["extra"]["predictions"]
    b = evaluate_bbbc021(renamed, proto)["nscb"]["extra"]["predictions"]
    assert a == b
    no_batch = renamed.with_meta(renamed.meta.drop("Metadata_Batch"))
    with pytest.raises(SchemaError, match="cannot derive the batch"):
        evaluate_bbbc021(no_batch, proto)


def test_protocol_defaults_overrides_and_errors() -> None:
    ci = resolve_protocol("cytoimagenet")
    assert (ci.metric, ci.k, ci.normalize, ci.aggregate, ci.scores, ci.ci) == (
        "cosine", 1, "zscore", "mean", ("nsc",), "wald"
    )  # fmt: skip
    std = resolve_protocol("standard", k=3, metric="euclidean")
    assert (std.normalize, std.aggregate, std.scores, std.ci, std.k) == (
        "plate-dmso", "well-mean", ("nsc", "nscb"), "wilson", 3
    )  # fmt: skip
    assert "euclidean 3-NN" in std.description() and "NSCB" in std.description()
    assert "Wald 95% CI" in ci.description() and "NSCB" not in ci.description()
    with pytest.raises(ConfigError, match="unknown BBBC021 protocol"):
        resolve_protocol("loco")
    with pytest.raises(ConfigError, match="--normalize"):
        resolve_protocol("standard", normalize="robust")


def test_missing_moa_and_columns_name_the_file(tmp_path: Path) -> None:
    table = simulate(10)
    bare = table.with_meta(table.meta.drop("Metadata_MoA"))
    with pytest.raises(SchemaError, match="sim: no Metadata_MoA column; pass --moa"):
        evaluate_bbbc021(bare, resolve_protocol())
    with pytest.raises(SchemaError, match=r"sim: missing metadata column.*Metadata_Compound"):
        evaluate_bbbc021(table.with_meta(table.meta.drop("Metadata_Compound")), resolve_protocol())
    moa = tmp_path / "moa.csv"
    moa.write_text("compound,concentration,moa\na1,1e-1,A\n")
    with pytest.raises(SchemaError, match=r"sim: fewer than 2 classes \(only 'A'\) among the 1"):
        evaluate_bbbc021(bare, resolve_protocol(), moa)  # one MoA (and no NSC neighbour)
    # Concentrations match numerically whatever their spelling (1e-1 = 0.1, 1 = 1.0).
    moa.write_text("compound,concentration,moa\na1,1e-1,A\nc1,1,A\nd1,0.10,D\nx9,1,A\n")
    nsc = evaluate_bbbc021(bare, resolve_protocol(), moa)["nsc"]
    names = {p["treatment"] for p in nsc["extra"]["predictions"]}
    assert names == {"a1@0.1", "c1@1.0", "d1@0.1"} and nsc["n"] == 3


# ----- the real BBBC021 plate layout ---------------------------------------------------------


def load_real_meta() -> pl.DataFrame | None:
    """The real image table's plate/well/compound/concentration columns (None if absent)."""
    image = DATA / "BBBC021_v1_image.csv.gz"
    if not image.is_file() or not MOA_CSV.is_file():
        return None
    raw = pl.read_csv(image, infer_schema=False)
    return raw.select(
        pl.col("Image_Metadata_Plate_DAPI").alias("Metadata_Plate"),
        pl.col("Image_Metadata_Well_DAPI").alias("Metadata_Well"),
        pl.col("Image_Metadata_Compound").alias("Metadata_Compound"),
        pl.col("Image_Metadata_Concentration").alias("Metadata_Concentration"),
    )


@pytest.fixture(scope="module")
def real_meta() -> pl.DataFrame:
    meta = load_real_meta()
    if meta is None:
        pytest.skip(f"{DATA} not available")
    return meta


WRONG_MOAS = ("Actin disruptors", "Aurora kinase inhibitors")  # 5 + 12 treatments


def designed_table(meta: pl.DataFrame, seed: int = 0) -> FeatureTable:
    """MoA one-hot + noise, except two MoAs that point at Eg5 instead: 86/103 by design.

    Their treatments get a compound-specific direction plus a weak Eg5 component, so the
    nearest other-compound treatment is always an Eg5 inhibitor; every other treatment has
    its MoA's direction and finds another compound of its MoA.
    """
    moa = pl.read_csv(MOA_CSV)
    keyed = meta.with_columns(pl.col("Metadata_Concentration").cast(pl.Float64))
    joined = keyed.join(
        moa,
        left_on=["Metadata_Compound", "Metadata_Concentration"],
        right_on=["compound", "concentration"],
        how="left",
        maintain_order="left",
    )
    moas = sorted(set(joined["moa"].drop_nulls().to_list()) - {"DMSO"})
    compounds = sorted(set(meta["Metadata_Compound"].to_list()))
    rng = np.random.default_rng(seed)
    x = 0.5 * rng.standard_normal((meta.height, len(moas) + len(compounds)))
    eg5 = moas.index("Eg5 inhibitors")
    pairs = zip(joined["moa"].to_list(), meta["Metadata_Compound"].to_list(), strict=True)
    for i, (m, c) in enumerate(pairs):
        if m in WRONG_MOAS:
            x[i, len(moas) + compounds.index(c)] += 3
            x[i, eg5] += 1
        elif m is not None and m != "DMSO":
            x[i, moas.index(m)] += 3
    names = [f"f{i}" for i in range(x.shape[1])]
    return FeatureTable("bbbc021", meta, x.astype(np.float32), names)


def test_real_layout_cytoimagenet_protocol_reads_86_of_103(real_meta: pl.DataFrame) -> None:
    scores = evaluate_bbbc021(designed_table(real_meta), resolve_protocol(), MOA_CSV)
    nsc = scores["nsc"]
    extra = nsc["extra"]
    assert (extra["treatments"], extra["compounds"], extra["moas"]) == (103, 38, 12)
    assert (nsc["correct"], nsc["n"]) == (86, 103)
    assert f"{100 * nsc['accuracy']:.2f} ± {100 * nsc['ci95']['half_width']:.2f}" == "83.50 ± 7.17"
    wrong = {p["moa"] for p in extra["predictions"] if p["predicted"] != p["moa"]}
    assert wrong == set(WRONG_MOAS)
    assert len(nsc["labels"]) == 12 and sum(map(sum, nsc["confusion"])) == 103


def test_real_layout_standard_protocol_nscb(real_meta: pl.DataFrame) -> None:
    table = designed_table(real_meta, seed=1)
    scores = evaluate_bbbc021(table, resolve_protocol("standard"), MOA_CSV)
    assert (scores["nsc"]["correct"], scores["nsc"]["n"]) == (86, 103)
    nscb = scores["nscb"]
    extra = nscb["extra"]
    assert extra["excluded_moas"] == ["Cholesterol-lowering", "Kinase inhibitors"]
    # 103 − 11 treatments of the two single-week MoAs = 92; the one taxol dose on all ten
    # weeks shares a week with every other treatment, so it cannot be scored.
    assert extra["unscored"] == ["taxol@0.3"] and nscb["n"] == 91
    assert nscb["correct"] == 91 - 17  # the designed failures, every other query right
    assert extra["bootstrap_ci95"]["groups"] == 33
    assert nscb["ci95"]["method"] == "wilson"


def test_candidate_counts_match_a_brute_force_count() -> None:
    from cytoimagenet.evaluation.checks import group_candidates, overlap_candidates

    names = list(COMPOUNDS)
    groups = [COMPOUNDS[c][0] for c in names]  # compound → its MoA letter as the group
    sets = [frozenset(COMPOUNDS[c][1]) for c in names]
    want_group = [sum(g != h for h in groups) for g in groups]
    want_overlap = [
        sum(g != h and not (s & t) for h, t in zip(groups, sets, strict=True))
        for g, s in zip(groups, sets, strict=True)
    ]
    assert group_candidates(groups).tolist() == want_group
    assert overlap_candidates(groups, sets).tolist() == want_overlap
