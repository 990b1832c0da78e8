"""The ``metadata`` step: one source's raw metadata → a harmonised table on disk."""

from __future__ import annotations

import logging
from pathlib import Path

import polars as pl

from cytoimagenet.config import MetadataJob
from cytoimagenet.io.tables import find_files
from cytoimagenet.provenance import write_provenance
from cytoimagenet.schema import write_table
from cytoimagenet.sources import build_metadata, get_source

log = logging.getLogger(__name__)


def provenance_path(out: Path) -> Path:
    """Return the provenance file written beside a table: ``<stem>.provenance.json``."""
    return out.with_name(f"{out.stem}.provenance.json")


def run_metadata(job: MetadataJob) -> pl.DataFrame:
    """Build, validate and write the harmonised metadata of ``job.source``.

    Writes ``job.out`` (Parquet), optionally the CSV export beside it, and
    ``<stem>.provenance.json`` (resolved job, versions, sha256 of the metadata files read).
    Nothing is written if reading or validation fails.

    Returns
    -------
    polars.DataFrame
        The table that was written.
    """
    table = build_metadata(job.source, job.raw)
    write_table(table, job.out, csv=job.csv)
    inputs = find_files(job.raw, get_source(job.source).metadata_files)
    write_provenance(
        provenance_path(job.out),
        command="metadata",
        config=job.resolved(),
        inputs=inputs,
        root=job.raw,
        extra={"rows": table.height},
    )
    log.info("wrote %s (%d rows)", job.out, table.height)
    return table
