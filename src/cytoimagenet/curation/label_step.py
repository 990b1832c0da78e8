"""The ``labels`` step: harmonised tables → labelled table, report and provenance on disk."""

from __future__ import annotations

from cytoimagenet.config import LabelJob
from cytoimagenet.curation.label_report import build_report, format_report, write_report
from cytoimagenet.curation.labels import LabelOptions, assign_labels
from cytoimagenet.provenance import write_provenance
from cytoimagenet.schema import LABEL_FIELDS, read_table, write_table


def options_from_job(job: LabelJob) -> LabelOptions:
    """Translate a validated job into :class:`LabelOptions`."""
    return LabelOptions(
        threshold=job.threshold,
        class_size=job.class_size,
        seed=job.seed,
        categories=tuple(job.categories) if job.categories else LABEL_FIELDS,
        min_class_size=job.min_class_size,
        unseen_classes=job.unseen_classes,
    )


def run_labels(job: LabelJob) -> str:
    """Run the label assignment, write its outputs and return the Markdown report.

    Writes ``job.out`` (+ CSV), ``<stem>.report.json``/``.md``, ``<stem>.provenance.json``
    and, when unseen classes were requested, ``<stem>.unseen.parquet``.
    """
    options = options_from_job(job)
    tables = [read_table(p) for p in job.metadata]
    result = assign_labels(tables, options)
    write_table(result.table, job.out, csv=True)
    if options.unseen_classes:
        write_table(result.unseen, job.out.with_name(f"{job.out.stem}.unseen.parquet"))
    report = build_report(result)
    write_report(report, job.out)
    write_provenance(
        job.out.with_name(f"{job.out.stem}.provenance.json"),
        command="labels",
        config=job.resolved(),
        inputs=job.metadata,
        extra={"labels": report["labels"], "images": report["images"]},
    )
    return format_report(report) + f"\nwrote {job.out}"
