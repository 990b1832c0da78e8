"""The ``labels`` step: harmonised tables → labelled table, report and provenance on disk."""

from __future__ import annotations

from cytoimagenet.config import LabelJob
from cytoimagenet.curation.label_report import build_report, format_report, write_report
from cytoimagenet.curation.labels import LabelOptions, assign_labels
from cytoimagenet.curation.user_tables import read_blocklist, read_synonyms
from cytoimagenet.provenance import sha256_file, write_provenance
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
        include_controls=job.include_controls,
        split_by_dose=job.split_by_dose,
        synonyms=read_synonyms(job.synonyms) if job.synonyms else (),
        blocklist=read_blocklist(job.blocklist) if job.blocklist else (),
    )


def user_tables(job: LabelJob) -> dict[str, dict[str, str] | None]:
    """Return the user's synonym and blocklist files as ``{path, sha256}`` (or ``None``)."""
    return {
        name: {"path": str(path), "sha256": sha256_file(path)} if path else None
        for name, path in (("synonyms", job.synonyms), ("blocklist", job.blocklist))
    }


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
        extra={
            "labels": report["labels"],
            "images": report["images"],
            "user_tables": user_tables(job),
        },
    )
    return format_report(report) + f"\nwrote {job.out}"
