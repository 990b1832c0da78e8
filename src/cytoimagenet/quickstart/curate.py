"""Quickstart stage 1: generate the sample source, harmonise it, label it, build the dataset."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from cytoimagenet.config import BuildJob, LabelJob, MetadataJob
from cytoimagenet.curation.dataset import BuildResult, run_build
from cytoimagenet.curation.label_step import run_labels
from cytoimagenet.curation.metadata import run_metadata
from cytoimagenet.curation.summary import summarize
from cytoimagenet.sample import SampleSpec, generate_sample

#: The sample's classes hold 24 fields each; the paper's thresholds (287 / 500) scale down.
SAMPLE_THRESHOLD = 10
SAMPLE_MIN_CLASS = 10
#: Fields per build task (the unit of resumption): small, for a small source.
SAMPLE_SHARD = 8


@dataclass(frozen=True)
class CurateResult:
    """Where the curation stage wrote its outputs, and what it found."""

    raw: Path
    metadata: Path
    table: pl.DataFrame
    summary: dict[str, object]
    labels: Path
    build: BuildResult

    @property
    def dataset(self) -> Path:
        """The built dataset folder."""
        return self.build.metadata.parent


def curate(
    out: Path, spec: SampleSpec, *, seed: int, workers: int, progress: bool = True
) -> CurateResult:
    """Run every curation step on the embedded sample under ``out``.

    Writes ``raw/sample/`` (the synthetic plate), ``metadata/sample.parquet``,
    ``labels/labels.parquet`` (+ report) and ``dataset/`` (PNGs, metadata, build report).
    The build resumes where it stopped; the other steps are seconds and simply rerun.
    """
    raw_root = out / "raw"
    raw = raw_root / "sample"
    generate_sample(raw, spec)
    meta = out / "metadata" / "sample.parquet"
    table = run_metadata(MetadataJob(source="sample", raw=raw, out=meta))
    labels = out / "labels" / "labels.parquet"
    # The synthetic screen is too small to lose its DMSO wells: DMSO (the untreated look)
    # stays one of its four classes, as the user may ask with `labels --include-controls`.
    job = LabelJob(
        metadata=[meta], out=labels, threshold=SAMPLE_THRESHOLD, seed=seed, include_controls=True
    )
    run_labels(job)
    build = run_build(
        BuildJob(
            labels=labels,
            root=raw_root,
            out=out / "dataset",
            workers=workers,
            seed=seed,
            min_class_size=SAMPLE_MIN_CLASS,
            shard_size=SAMPLE_SHARD,
        ),
        progress=progress,
    )
    return CurateResult(
        raw=raw, metadata=meta, table=table, summary=summarize(table), labels=labels, build=build
    )
