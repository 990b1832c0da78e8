"""The main job on the embedded sample: generate it, harmonise it, summarise it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from cytoimagenet.config import MetadataJob, QuickstartJob
from cytoimagenet.curation.metadata import run_metadata
from cytoimagenet.curation.summary import summarize
from cytoimagenet.sample import SampleSpec, generate_sample


@dataclass(frozen=True)
class QuickstartResult:
    """Where the quickstart wrote its outputs, and what it found."""

    raw: Path
    metadata: Path
    table: pl.DataFrame
    summary: dict[str, object]


def run_quickstart(job: QuickstartJob, spec: SampleSpec | None = None) -> QuickstartResult:
    """Generate the sample source under ``job.out/raw`` and harmonise it.

    Parameters
    ----------
    job : QuickstartJob
        Output folder and seed.
    spec : SampleSpec, optional
        Sample size; defaults to :class:`SampleSpec` with ``job.seed``.
    """
    spec = spec or SampleSpec(seed=job.seed)
    raw = job.out / "raw" / "sample"
    generate_sample(raw, spec)
    out = job.out / "metadata" / "sample.parquet"
    table = run_metadata(MetadataJob(source="sample", raw=raw, out=out))
    return QuickstartResult(raw=raw, metadata=out, table=table, summary=summarize(table))
