"""The ``evaluate`` step: a feature table + a benchmark protocol → RESULT.json.

Every option is validated (:class:`EvaluateJob`) before the table is read; the protocol's
defaults are then resolved and any override applied, and the resolved settings with their
frozen description go into the result next to the numbers.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from cytoimagenet.config import _Job
from cytoimagenet.evaluation.checks import check_identical
from cytoimagenet.evaluation.feature_table import TABLE_SUFFIXES, read_feature_table, table_suffix
from cytoimagenet.evaluation.result import RESULT_FORMAT, build_result, write_result
from cytoimagenet.fields import JsonOut, existing_file

Benchmark = Literal["bbbc021", "coos7", "cyclops", "profiles"]
#: copairs' name of each kNN metric, for mAP.
MAP_DISTANCE = {"cosine": "cosine", "pearson": "correlation", "euclidean": "euclidean"}


class EvaluateJob(_Job):
    """Evaluate a feature table on one benchmark.

    Attributes
    ----------
    benchmark : {"bbbc021", "coos7", "cyclops", "profiles"}
        Which benchmark's protocol to run (``profiles``: mAP of any profile table,
        :mod:`cytoimagenet.evaluation.profiles`).
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
    map : bool
        BBBC021: also copairs mAP (activity and consistency); ``metric="map"`` sets it.
        Always on for ``profiles``.
    null_size, fdr : int, float
        mAP: draws of the permutation null, and the FDR level of "significant".
    group_by : list of str, optional
        ``profiles``: the columns naming a treatment. ``coos7``/``cyclops``: the grouped
        protocol, where neighbours sharing the query's values of these columns (e.g.
        ``Metadata_Field``) cannot vote.
    control, moa_column : optional
        ``profiles`` only: ``COL=VALUE`` of the controls, and the annotation for phenotypic
        consistency.
    """

    benchmark: Benchmark
    features: Path
    out: JsonOut
    protocol: Literal["cytoimagenet", "standard"] | None = None
    metric: Literal["cosine", "pearson", "euclidean"] | None = None
    map: bool = False
    null_size: int = Field(default=10_000, ge=10, le=10_000_000)
    fdr: float = Field(default=0.05, gt=0, lt=1)
    group_by: list[str] | None = None
    control: str | None = None
    moa_column: str | None = None
    normalize: Literal["none", "zscore", "plate-dmso"] | None = None
    k: int | None = Field(default=None, ge=1, le=1000)
    sphere: bool | None = None
    sphere_ridge: float = Field(default=1.0, gt=0)
    moa: Annotated[Path | None, existing_file("MoA table (BBBC021_v1_moa.csv)")] = None
    name: str | None = None
    bootstrap: int = Field(default=2000, ge=1, le=1_000_000)
    seed: int = 0
    ignore_non_numeric: bool = False

    @model_validator(mode="before")
    @classmethod
    def _metric_map(cls, data: Any) -> Any:
        # ``--metric map`` asks for mAP next to the kNN, whose metric stays the protocol's.
        if isinstance(data, dict) and data.get("metric") == "map":
            data = {**data, "metric": None, "map": True}
        return data

    @field_validator("group_by")
    @classmethod
    def _group_columns(cls, value: list[str] | None) -> list[str] | None:
        from cytoimagenet.evaluation.profiles import group_columns

        return None if value is None else group_columns(value)

    @field_validator("control")
    @classmethod
    def _control_pair(cls, value: str | None) -> str | None:
        from cytoimagenet.evaluation.profiles import parse_control

        if value is None:
            return value
        return "=".join(parse_control(value))

    @field_validator("moa_column")
    @classmethod
    def _moa_column(cls, value: str | None) -> str | None:
        from cytoimagenet.evaluation.profiles import metadata_name

        return None if value is None else metadata_name(value.strip())

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
            if self.map and self.benchmark != "profiles":
                wrong.append("--map (--metric map)")
            if wrong:
                raise ValueError(f"{', '.join(wrong)}: only for bbbc021, not {self.benchmark}")
        grouped = self.benchmark in ("coos7", "cyclops", "profiles")
        given = [
            opt
            for opt, value in (
                ("--group-by", self.group_by and not grouped),
                ("--control", self.control),
                ("--moa-column", self.moa_column),
            )
            if value
        ]
        if self.benchmark != "profiles" and given:
            where = "profiles, coos7 and cyclops" if given == ["--group-by"] else "profiles"
            raise ValueError(f"{', '.join(given)}: only for {where}, not {self.benchmark}")
        if self.benchmark == "profiles":
            if not self.group_by or not self.control:
                raise ValueError(
                    "profiles needs --group-by COLS (the columns naming a treatment) and "
                    "--control COL=VALUE (the control rows)"
                )
            knn = [o for o, v in (("--k", self.k), ("--normalize", self.normalize)) if v]
            if knn:
                raise ValueError(f"{', '.join(knn)}: kNN options, not for profiles (mAP only)")
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


def _map_settings(job: EvaluateJob, metric: str) -> Any:
    from cytoimagenet.evaluation.mean_ap import MapSettings

    return MapSettings(
        distance=MAP_DISTANCE[metric], null_size=job.null_size, threshold=job.fdr, seed=job.seed
    )


def _run_profiles(job: EvaluateJob, table: Any) -> dict[str, object]:
    """Run the ``profiles`` benchmark: mAP only, the headline accuracy fields empty."""
    from cytoimagenet.evaluation.profiles import evaluate_profiles, parse_control
    from cytoimagenet.evaluation.result import versions, with_input
    from cytoimagenet.provenance import sha256_file

    assert job.group_by is not None and job.control is not None  # noqa: S101 - validated
    settings = _map_settings(job, job.metric or "cosine")
    protocol, block = evaluate_profiles(
        table, job.group_by, parse_control(job.control), job.moa_column, settings
    )
    activity: dict[str, Any] = block["activity"]  # type: ignore[assignment]
    base = {
        "format": RESULT_FORMAT,
        "benchmark": "profiles",
        "protocol": protocol,
        "primary": "map",
        "accuracy": None,
        "correct": None,
        "n": activity["groups"],
        "ci95": None,
        "scores": {},
        "map": block,
        "versions": versions(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    result = with_input(
        base,
        feature_set=job.feature_set(),
        features=job.features,
        features_sha256=sha256_file(job.features),
    )
    result["config"] = job.resolved()
    write_result(job.out, result)
    return result


def run_evaluate(job: EvaluateJob) -> dict[str, object]:
    """Run the job's benchmark on its feature table, write RESULT.json and return it."""
    from cytoimagenet.provenance import sha256_file

    if job.map or job.benchmark == "profiles":
        from cytoimagenet.evaluation.mean_ap import require_copairs

        require_copairs()  # before any work
    table = read_feature_table(job.features, ignore_non_numeric=job.ignore_non_numeric)
    check_identical(table.features, str(job.features), "row")
    if job.benchmark == "profiles":
        return _run_profiles(job, table)
    map_block = None
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
        if job.map:
            from cytoimagenet.evaluation.bbbc021_map import map_bbbc021

            map_block = map_bbbc021(table, proto, job.moa, _map_settings(job, proto.metric))
    else:
        from cytoimagenet.evaluation.singlecell import (
            evaluate_coos7,
            evaluate_cyclops,
            resolve_singlecell,
        )

        sc = resolve_singlecell(
            job.benchmark,
            metric=job.metric,
            k=job.k,
            normalize=job.normalize,
            group_by=job.group_by,
        )
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
    if map_block is not None:
        result["map"] = map_block
    result["config"] = job.resolved()
    write_result(job.out, result)
    return result
