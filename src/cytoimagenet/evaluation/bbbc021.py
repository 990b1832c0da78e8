"""BBBC021 mechanism of action: treatment profiles and 1-NN NSC / NSCB accuracy.

Two protocols (every setting can be overridden; the description records what ran):

``cytoimagenet`` — the CytoImageNet paper's: rows without an MoA and DMSO rows dropped,
features z-scored over the remaining rows, plain mean per treatment (compound +
concentration), cosine 1-NN excluding the query's compound (NSC), Wald CI over the
treatments (86/103 → 83.50 ± 7.17 %).

``standard`` — the field's: features z-scored per plate against that plate's DMSO rows
(optionally sphered on DMSO, ``sphere``), mean per well then per treatment, cosine 1-NN,
NSC and NSCB (not same compound *or batch*; batch = week, from ``Metadata_Batch`` or the
plate name's prefix ``Week1_22123`` → ``Week1``). For NSCB the MoAs whose treatments all
lie in one batch (on BBBC021: Cholesterol-lowering, Kinase inhibitors) are dropped as
queries and references; a treatment spanning several batches excludes every treatment
sharing any of them, and a query left with no allowed neighbour is reported, not scored.
Wilson CI plus a bootstrap over compounds.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import polars as pl

from cytoimagenet.errors import ConfigError, SchemaError
from cytoimagenet.evaluation.bbbc021_table import (
    COMPOUND,
    CONC_KEY,
    MOA,
    PLATE,
    WELL,
    attach_moa,
    group_codes,
    group_mean,
    row_batches,
)
from cytoimagenet.evaluation.checks import (
    check_classes,
    check_k,
    check_profiles,
    group_candidates,
    merge_checks,
    overlap_candidates,
)
from cytoimagenet.evaluation.feature_table import FeatureTable, zscore
from cytoimagenet.evaluation.knn import exclude_overlap, exclude_same, knn_predict
from cytoimagenet.evaluation.normalize import Sphering, plate_dmso
from cytoimagenet.evaluation.result import score_entry
from cytoimagenet.evaluation.stats import bootstrap_interval

CONTROL = "DMSO"
PROTOCOLS = ("cytoimagenet", "standard")
NORMALIZE = ("none", "zscore", "plate-dmso")


@dataclass(frozen=True)
class Bbbc021Protocol:
    """Resolved settings of a BBBC021 evaluation (see :func:`resolve_protocol`)."""

    name: str
    metric: str
    k: int
    normalize: str
    sphere: bool
    sphere_ridge: float
    aggregate: str  # "mean" (rows → treatment) or "well-mean" (rows → well → treatment)
    scores: tuple[str, ...]
    ci: str
    bootstrap: int
    seed: int

    def description(self) -> str:
        """Return the frozen, human-readable description of every step."""
        norm = {
            "none": "features used as given",
            "zscore": "features z-scored (population std) over the evaluation rows",
            "plate-dmso": "features z-scored per plate by the mean/std of that plate's DMSO rows",
        }[self.normalize]
        if self.sphere:
            norm += (
                f", then sphered (ZCA/TVN) on all DMSO rows with a ridge of {self.sphere_ridge:g}"
                "× the mean eigenvalue"
            )
        agg = (
            "mean per treatment over its rows"
            if self.aggregate == "mean"
            else "mean per well (plate + well), then mean of its wells per treatment"
        )
        scores = ["NSC: neighbours of another compound only"]
        if "nscb" in self.scores:
            scores.append(
                "NSCB: of another compound and sharing no batch (week, from Metadata_Batch or the "
                "plate-name prefix), MoAs whose treatments all lie in one batch dropped, queries "
                "without an allowed neighbour left unscored"
            )
        ci = (
            "Wald 95% CI 1.96·sqrt(p(1−p)/n) over the n treatments (as in the paper)"
            if self.ci == "wald"
            else f"Wilson 95% CI; percentile bootstrap over compounds ({self.bootstrap} "
            f"replicates, seed {self.seed}) in extra"
        )
        return (
            f"BBBC021 MoA, {self.name} protocol: rows joined to the MoA table on compound + "
            "concentration; DMSO rows and rows without an MoA are not evaluated; "
            f"{norm}; {agg} (treatment = compound + concentration); {self.metric} "
            f"{self.k}-NN over treatment profiles, majority vote with ties to the class of the "
            f"nearest member; {'; '.join(scores)}; accuracy over treatments, {ci}."
        )

    def block(self) -> dict[str, object]:
        """Return the RESULT.json ``protocol`` block."""
        out: dict[str, object] = asdict(self)
        out["scores"] = list(self.scores)
        out["description"] = self.description()
        out["unit"] = "treatment"
        out["control"] = CONTROL
        return out


def resolve_protocol(
    name: str = "cytoimagenet",
    *,
    metric: str | None = None,
    k: int | None = None,
    normalize: str | None = None,
    sphere: bool | None = None,
    sphere_ridge: float = 1.0,
    bootstrap: int = 2000,
    seed: int = 0,
) -> Bbbc021Protocol:
    """Return a protocol's settings with any given override applied."""
    if name not in PROTOCOLS:
        raise ConfigError(f"unknown BBBC021 protocol {name!r}; choose one of {list(PROTOCOLS)}")
    if normalize is not None and normalize not in NORMALIZE:
        raise ConfigError(f"--normalize {normalize!r}: choose one of {list(NORMALIZE)}")
    standard = name == "standard"
    return Bbbc021Protocol(
        name=name,
        metric=metric or "cosine",
        k=k or 1,
        normalize=normalize or ("plate-dmso" if standard else "zscore"),
        sphere=bool(sphere),
        sphere_ridge=sphere_ridge,
        aggregate="well-mean" if standard else "mean",
        scores=("nsc", "nscb") if standard else ("nsc",),
        ci="wilson" if standard else "wald",
        bootstrap=bootstrap,
        seed=seed,
    )


def treatment_profiles(
    meta: pl.DataFrame, x: np.ndarray, aggregate: str, source: str
) -> tuple[pl.DataFrame, np.ndarray]:
    """Average rows into one profile per treatment (sorted by compound, then concentration).

    Returns the treatments (compound, key, MoA, batches, rows) and their float64 profiles.
    """
    if aggregate == "well-mean":
        missing = [c for c in (PLATE, WELL) if c not in meta.columns or meta[c].null_count()]
        if missing:
            raise SchemaError(f"{source}: per-well averaging needs column(s) {missing}")
        wcodes, wells = group_codes(meta, [PLATE, WELL])
        mixed = meta.group_by(PLATE, WELL).agg(pl.col(COMPOUND, CONC_KEY).n_unique().max())
        if (mixed[COMPOUND] > 1).any() or (mixed[CONC_KEY] > 1).any():
            raise SchemaError(f"{source}: some wells hold more than one treatment")
        x = group_mean(x, wcodes, wells.height)
        by_well = meta.with_columns(pl.Series("__w", wcodes)).group_by("__w").first()
        meta = by_well.sort("__w").drop("__w")  # row i = well code i, as in the means
    tcodes, treatments = group_codes(meta, [COMPOUND, CONC_KEY])
    info = (
        meta.with_columns(pl.Series("__t", tcodes))
        .group_by("__t")
        .agg(
            pl.col(MOA).n_unique().alias("__moas"),
            pl.col(MOA).first(),
            pl.col("__batch").unique().sort().alias("batches"),
            pl.len().alias("rows"),
        )
        .sort("__t")
    )
    if (info["__moas"] > 1).any():
        raise SchemaError(f"{source}: a treatment (compound + concentration) has several MoAs")
    profiles = group_mean(x, tcodes, treatments.height)
    return treatments.drop("__code").hstack(info.select(MOA, "batches", "rows")), profiles


def _predict(
    profiles: np.ndarray, treat: pl.DataFrame, proto: Bbbc021Protocol, by_batch: bool, source: str
) -> tuple[np.ndarray, np.ndarray, dict[str, object]]:
    compounds = treat[COMPOUND].to_list()
    rules = [exclude_same(compounds)]
    if by_batch:
        sets = [frozenset(b) for b in treat["batches"].to_list()]
        rules.append(exclude_overlap(sets))
        candidates = overlap_candidates(compounds, sets)
    else:
        candidates = group_candidates(compounds)
    checks = check_k(proto.k, candidates, source, "treatment")
    pred = knn_predict(
        profiles, treat[MOA].to_list(), k=proto.k, metric=proto.metric, exclude=rules
    )
    return pred.labels, pred.neighbors.indices[:, 0], checks


def _score(
    treat: pl.DataFrame,
    labels: np.ndarray,
    nearest: np.ndarray,
    checks: dict[str, object],
    proto: Bbbc021Protocol,
    source: str,
) -> dict[str, object]:
    scored = np.array([v is not None for v in labels], dtype=bool)
    if not scored.any():
        raise SchemaError(
            f"{source}: none of the {treat.height} treatment(s) has a neighbour of another "
            "compound (and batch); BBBC021 needs several annotated compounds per MoA"
        )
    true = treat[MOA].to_list()
    names = [f"{c}@{k}" for c, k in treat.select(COMPOUND, CONC_KEY).iter_rows()]
    extra: dict[str, object] = {
        "treatments": int(scored.sum()),
        "compounds": treat.filter(pl.Series(scored))[COMPOUND].n_unique(),
        "moas": len({t for t, s in zip(true, scored, strict=True) if s}),
        "unscored": [n for n, s in zip(names, scored, strict=True) if not s],
        "predictions": [
            {
                "treatment": names[i],
                "moa": true[i],
                "predicted": labels[i],
                "nearest": names[nearest[i]] if nearest[i] >= 0 else None,
            }
            for i in range(len(names))
        ],
        "checks": checks,
    }
    t = [true[i] for i in np.flatnonzero(scored)]
    p = [str(labels[i]) for i in np.flatnonzero(scored)]
    if proto.ci != "wald":
        hits = [a == b for a, b in zip(t, p, strict=True)]
        groups = treat.filter(pl.Series(scored))[COMPOUND].to_list()
        extra["bootstrap_ci95"] = bootstrap_interval(
            hits, groups, n_boot=proto.bootstrap, seed=proto.seed
        )
    return score_entry(t, p, ci=proto.ci, extra=extra)


@dataclass(frozen=True)
class Prepared:
    """A BBBC021 table after the protocol's normalisation (see :func:`prepare`).

    ``x`` holds the normalised features of every row (rows neither evaluated nor DMSO are
    zeros); ``rows`` is the metadata of the evaluated rows with a ``__batch`` column.
    """

    meta: pl.DataFrame
    x: np.ndarray
    evaluated: np.ndarray
    control: np.ndarray
    rows: pl.DataFrame


def prepare(table: FeatureTable, proto: Bbbc021Protocol, moa: Path | None = None) -> Prepared:
    """Join the MoA, find DMSO and evaluated rows, and normalise as the protocol says.

    Raises
    ------
    SchemaError
        On missing metadata columns, no MoA, or missing controls where normalisation needs
        them.
    """
    table = attach_moa(table, moa)
    meta = table.meta
    is_control = (meta[COMPOUND].str.to_uppercase() == CONTROL) | (
        meta[MOA].fill_null("").str.to_uppercase() == CONTROL
    )
    control = is_control.to_numpy()
    evaluated = (~is_control & meta[MOA].is_not_null()).to_numpy()
    if not evaluated.any():
        raise SchemaError(f"{table.source}: no row has an MoA (and is not {CONTROL})")
    x = table.features
    keep = evaluated | control
    if proto.normalize == "plate-dmso":
        table.require([PLATE], " (per-plate DMSO normalisation)")
        plates = meta[PLATE].to_numpy()
        x = np.zeros_like(x)
        x[keep] = plate_dmso(table.features[keep], plates[keep], control[keep], table.source)
    elif proto.normalize == "zscore":
        x = zscore(x, x[evaluated])
    if proto.sphere:
        if control.sum() < 2:
            raise SchemaError(f"{table.source}: sphering needs at least two {CONTROL} rows")
        sph = Sphering(proto.sphere_ridge).fit(x[control])
        whitened = np.zeros_like(x)
        whitened[keep] = sph.transform(x[keep])
        x = whitened
    batches = row_batches(meta, table.source) if "nscb" in proto.scores else ["?"] * meta.height
    rows = meta.with_columns(pl.Series("__batch", batches)).filter(pl.Series(evaluated))
    return Prepared(meta, x, evaluated, control, rows)


def evaluate_bbbc021(
    table: FeatureTable, proto: Bbbc021Protocol, moa: Path | None = None
) -> dict[str, dict[str, object]]:
    """Run the protocol on a feature table; return the ``scores`` (``nsc``, maybe ``nscb``).

    Raises
    ------
    SchemaError
        On missing metadata columns, no MoA, missing controls where normalisation needs
        them, or inconsistent treatments.
    """
    prep = prepare(table, proto, moa)
    x, evaluated, rows = prep.x, prep.evaluated, prep.rows
    treat, profiles = treatment_profiles(rows, x[evaluated], proto.aggregate, table.source)
    source = table.source
    check_classes(
        treat[MOA].to_list(),
        source,
        "treatment",
        "left after dropping DMSO and rows without an MoA",
    )
    profile_checks = check_profiles(profiles, proto.metric, source, "treatment")
    labels, nearest, k_checks = _predict(profiles, treat, proto, False, source)
    checks = merge_checks(profile_checks, k_checks)
    scores = {"nsc": _score(treat, labels, nearest, checks, proto, source)}
    if "nscb" in proto.scores:
        per_moa = rows.group_by(MOA).agg(pl.col("__batch").n_unique().alias("n"))
        single = sorted(per_moa.filter(pl.col("n") == 1)[MOA].to_list())
        keep = ~treat[MOA].is_in(single).to_numpy()
        sub = treat.filter(pl.Series(keep))
        stage = f"left for NSCB after dropping the one-batch MoA(s) {single}"
        check_classes(sub[MOA].to_list(), source, "treatment", stage)
        labels, nearest, k_checks = _predict(profiles[keep], sub, proto, True, source)
        checks = merge_checks(profile_checks, k_checks)
        scores["nscb"] = _score(sub, labels, nearest, checks, proto, source)
        scores["nscb"]["extra"]["excluded_moas"] = single  # type: ignore[index]
    return scores
