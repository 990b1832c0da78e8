"""The ``evaluate`` step: a feature table + a benchmark protocol → RESULT.json.

Every option is validated (:class:`EvaluateJob`) before the table is read; the protocol's
defaults are then resolved and any override applied, and the resolved settings with their
frozen description go into the result next to the numbers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from cytoimagenet.config import _Job
from cytoimagenet.evaluation.checks import check_identical
from cytoimagenet.evaluation.feature_table import TABLE_SUFFIXES, read_feature_table, table_suffix
from cytoimagenet.evaluation.result import build_result, write_result
from cytoimagenet.fields import JsonOut, existing_file

Benchmark = Literal["bbbc021", "coos7", "cyclops"]


class EvaluateJob(_Job):
    """Evaluate a feature table on one benchmark.

    Attributes
    ----------
    benchmark : {"bbbc021", "coos7", "cyclops"}
        Which benchmark's protocol to run.
    features : Path
        Parquet or CSV/TSV (``.gz`` allowed): ``Metadata_*`` columns + numeric features.
    out : Path
        RESULT.json to write.
    protocol : {"cytoimagenet", "standard"}, optional
        BBBC021 only (default ``cytoimagenet``).
    metric, normalize, k : optional
        Overrides of the protocol's defaults (BBBC021: cosine, zscore / plate-dmso, 1;
        COOS-7 and CYCLoPs: euclidean, zscore, 11).
    sphere : bool, optional
        BBBC021: sphere (TVN) on the DMSO rows after normalisation.
    moa : Path, optional
        BBBC021 MoA table, joined when the features lack ``Metadata_MoA``.
    name : str, optional
        Feature-set name shown in reports (default: the file name without suffixes).
    bootstrap, seed : int
        Bootstrap replicates and seed (BBBC021 standard protocol).
    ignore_non_numeric : bool
        Drop non-numeric columns that are not ``Metadata_*`` instead of refusing the table.
    """

    benchmark: Benchmark
    features: Path
    out: JsonOut
    protocol: Literal["cytoimagenet", "standard"] | None = None
    metric: Literal["cosine", "pearson", "euclidean"] | None = None
    normalize: Literal["none", "zscore", "plate-dmso"] | None = None
    k: int | None = Field(default=None, ge=1, le=1000)
    sphere: bool | None = None
    sphere_ridge: float = Field(default=1.0, gt=0)
    moa: Annotated[Path | None, existing_file("MoA table (BBBC021_v1_moa.csv)")] = None
    name: str | None = None
    bootstrap: int = Field(default=2000, ge=1, le=1_000_000)
    seed: int = 0
    ignore_non_numeric: bool = False

    @field_validator("features")
    @classmethod
    def _features_exist(cls, value: Path) -> Path:
        if not value.is_file():
            raise ValueError(f"{value}: no such feature table")
        if not table_suffix(value):
            raise ValueError(f"{value}: a feature table must be one of {list(TABLE_SUFFIXES)}")
        return value

    @model_validator(mode="after")
    def _bbbc021_only(self) -> EvaluateJob:
        if self.benchmark != "bbbc021":
            wrong = [
                opt
                for opt, value in (
                    ("--protocol", self.protocol),
                    ("--moa", self.moa),
                    ("--sphere", self.sphere),
                )
                if value
            ]
            if self.normalize == "plate-dmso":
                wrong.append("--normalize plate-dmso")
            if wrong:
                raise ValueError(f"{', '.join(wrong)}: only for bbbc021, not {self.benchmark}")
        return self

    def feature_set(self) -> str:
        """Return the name of the feature set (``--name`` or the file stem)."""
        return self.name or self.features.name[: -len(table_suffix(self.features))]


def _warnings(scores: dict[str, dict[str, object]]) -> list[str]:
    """Every distinct warning the checks recorded in the scores' ``extra``, in order."""
    out: list[str] = []
    for score in scores.values():
        extra: dict[str, Any] = score.get("extra", {})  # type: ignore[assignment]
        for text in extra.get("checks", {}).get("warnings", []):
            if text not in out:
                out.append(text)
    return out


def run_evaluate(job: EvaluateJob) -> dict[str, object]:
    """Run the job's benchmark on its feature table, write RESULT.json and return it."""
    from cytoimagenet.provenance import sha256_file

    table = read_feature_table(job.features, ignore_non_numeric=job.ignore_non_numeric)
    check_identical(table.features, str(job.features), "row")
    if job.benchmark == "bbbc021":
        from cytoimagenet.evaluation.bbbc021 import evaluate_bbbc021, resolve_protocol

        proto = resolve_protocol(
            job.protocol or "cytoimagenet",
            metric=job.metric,
            k=job.k,
            normalize=job.normalize,
            sphere=job.sphere,
            sphere_ridge=job.sphere_ridge,
            bootstrap=job.bootstrap,
            seed=job.seed,
        )
        scores = evaluate_bbbc021(table, proto, job.moa)
        block = proto.block()
        primary = "nsc"
    else:
        from cytoimagenet.evaluation.singlecell import (
            evaluate_coos7,
            evaluate_cyclops,
            resolve_singlecell,
        )

        sc = resolve_singlecell(job.benchmark, metric=job.metric, k=job.k, normalize=job.normalize)
        scores = (
            evaluate_coos7(table, sc) if job.benchmark == "coos7" else evaluate_cyclops(table, sc)
        )
        block = sc.block()
        primary = "test1" if "test1" in scores else next(iter(scores))
    block["rows"] = len(table)
    block["feature_columns"] = len(table.names)
    x = table.features
    constant = int((x.max(axis=0) == x.min(axis=0)).sum())
    result = build_result(
        benchmark=job.benchmark,
        feature_set=job.feature_set(),
        features=job.features,
        features_sha256=sha256_file(job.features),
        protocol=block,
        scores=scores,
        primary=primary,
    )
    result["checks"] = {
        "constant_feature_columns": constant,
        "warnings": _warnings(scores),
    }
    result["config"] = job.resolved()
    write_result(job.out, result)
    return result
