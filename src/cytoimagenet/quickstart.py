"""The main job on the embedded sample: generate it, harmonise it, label it, build the dataset."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from cytoimagenet.config import BuildJob, LabelJob, MetadataJob, QuickstartJob
from cytoimagenet.curation.build import BuildResult, run_build
from cytoimagenet.curation.label_step import run_labels
from cytoimagenet.curation.metadata import run_metadata
from cytoimagenet.curation.summary import summarize
from cytoimagenet.sample import SampleSpec, generate_sample

#: The sample's classes hold 24 fields each; the paper's thresholds (287 / 500) scale down.
SAMPLE_THRESHOLD = 10
SAMPLE_MIN_CLASS = 10


@dataclass(frozen=True)
class QuickstartResult:
    """Where the quickstart wrote its outputs, and what it found."""

    raw: Path
    metadata: Path
    table: pl.DataFrame
    summary: dict[str, object]
    labels: Path
    build: BuildResult


def run_quickstart(
    job: QuickstartJob, spec: SampleSpec | None = None, *, progress: bool = True
) -> QuickstartResult:
    """Run every curation step on the embedded sample under ``job.out``.

    Writes ``raw/sample/`` (the synthetic plate), ``metadata/sample.parquet``,
    ``labels/labels.parquet`` (+ report) and ``dataset/`` (PNGs, metadata, build report).

    Parameters
    ----------
    job : QuickstartJob
        Output folder, seed and worker count.
    spec : SampleSpec, optional
        Sample size; defaults to :class:`SampleSpec` with ``job.seed``.
    """
    spec = spec or SampleSpec(seed=job.seed)
    raw_root = job.out / "raw"
    raw = raw_root / "sample"
    generate_sample(raw, spec)
    meta = job.out / "metadata" / "sample.parquet"
    table = run_metadata(MetadataJob(source="sample", raw=raw, out=meta))
    labels = job.out / "labels" / "labels.parquet"
    run_labels(LabelJob(metadata=[meta], out=labels, threshold=SAMPLE_THRESHOLD, seed=job.seed))
    build = run_build(
        BuildJob(
            labels=labels,
            root=raw_root,
            out=job.out / "dataset",
            workers=job.workers,
            seed=job.seed,
            min_class_size=SAMPLE_MIN_CLASS,
            shard_size=8,
        ),
        progress=progress,
    )
    return QuickstartResult(
        raw=raw, metadata=meta, table=table, summary=summarize(table), labels=labels, build=build
    )
