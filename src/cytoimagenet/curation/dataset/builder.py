"""The ``build`` step: labels table + raw images → PNG dataset, resumable and parallel.

State on disk, under ``OUT/.build/`` (see :mod:`.state` and :mod:`.records`):

* ``lock`` — held while a run works, so a second run into the same folder stops at once.
* ``plan.json`` — the settings that decide the output and the labels table's checksum. A
  second run with other settings refuses to mix its files into this build.
* ``shards/NNNNNN.parquet`` — one record per finished shard, written last, fsynced and
  renamed into place; a damaged record is deleted and its shard redone.

A run processes the shards that have no (valid) record yet, then finalises from all records.
Killing it at any moment loses at most the shards in flight; they are redone with identical
bytes. A shard whose worker process dies (the OOM killer) is redone one field per process,
and the field that kills its process is quarantined as ``worker-died``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from cytoimagenet.config import BuildJob
from cytoimagenet.curation.dataset.finalize import finalize, remove_dropped
from cytoimagenet.curation.dataset.plan import check_labels, plan_shards
from cytoimagenet.curation.dataset.records import (
    RECORD_SCHEMA,
    load_records,
    read_record,
    record_path,
)
from cytoimagenet.curation.dataset.report import build_report, write_report
from cytoimagenet.curation.dataset.state import build_lock, check_out, claim_plan, open_state
from cytoimagenet.curation.dataset.tasks import Shard
from cytoimagenet.curation.dataset.worker import isolate_shard, process_shard
from cytoimagenet.errors import BuildError
from cytoimagenet.imaging.png import TMP_MARKER
from cytoimagenet.io.atomic import atomic_path
from cytoimagenet.parallel import run_tasks
from cytoimagenet.provenance import sha256_file, write_provenance
from cytoimagenet.schema import read_table, to_csv_frame


@dataclass(frozen=True)
class BuildResult:
    """What a build produced."""

    metadata: Path
    dataset: pl.DataFrame
    report: dict[str, object]


def _sweep_temporaries(out: Path) -> int:
    """Remove temporary files left by a killed run."""
    stale = [p for p in out.rglob(f"*{TMP_MARKER}*") if p.is_file()]
    stale += [p for p in out.rglob(".*.tmp") if p.is_file()]
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)


def _valid_records(shards: list[Shard], results: Path) -> dict[int, pl.DataFrame]:
    """Return the records of finished shards, deleting damaged ones (their shards are redone).

    A record that does not list exactly its shard's fields counts as damaged.
    """
    records = load_records(results, [s.shard_id for s in shards])
    for shard in shards:
        frame = records.get(shard.shard_id)
        if frame is not None and set(frame["idx"]) != {t.idx for t in shard.tasks}:
            record_path(results, shard.shard_id).unlink(missing_ok=True)
            del records[shard.shard_id]
    return records


def _run_shards(job: BuildJob, shards: list[Shard], results: Path, progress: bool) -> pl.DataFrame:
    """Process the shards without a record; return all records, in shard order."""
    records = _valid_records(shards, results)
    pending = [s for s in shards if s.shard_id not in records]
    bar = None
    if progress and pending:
        from tqdm.auto import tqdm

        total = sum(len(s.tasks) for s in shards)
        done_before = total - sum(len(s.tasks) for s in pending)
        bar = tqdm(total=total, initial=done_before, unit="img", desc="build")
    tasks = run_tasks(
        process_shard,
        pending,
        workers=job.workers,
        scheduler=job.scheduler,
        on_died=isolate_shard,
    )
    for shard, _ in tasks:
        frame = read_record(record_path(results, shard.shard_id))
        if frame is None:
            raise BuildError(
                f"{record_path(results, shard.shard_id)}: the record just written cannot be "
                "read back; check the disk (full? failing?) and run the build again"
            )
        records[shard.shard_id] = frame
        if bar is not None:
            bar.update(len(shard.tasks))
    if bar is not None:
        bar.close()
    if not shards:
        return pl.DataFrame(schema=RECORD_SCHEMA)
    return pl.concat([records[s.shard_id] for s in shards])


def _empty_dataset_error(report: dict[str, object], job: BuildJob) -> BuildError:
    """Say why no image is left: every field quarantined, or every class too small."""

    def counts(key: str) -> str:
        items = report[key]  # type: ignore[index]
        return ", ".join(f"{k} {v}" for k, v in items.items()) or "none"  # type: ignore[union-attr]

    fields, rejected = report["fields"], report["fields_rejected"]
    if report["outputs_written"] == 0:
        why = f"all {fields} fields were quarantined ({counts('rejected_by_reason')})"
    else:
        why = (
            f"{report['outputs_written']} images were written but every class has fewer than "
            f"--min-class-size {job.min_class_size} ({rejected} of {fields} fields quarantined: "
            f"{counts('rejected_by_reason')}; crops dropped: {counts('crops_dropped_by_reason')})"
            "; lower --min-class-size or add fields"
        )
    return BuildError(
        f"the build made an empty dataset: {why}; see {job.out / 'quarantine.csv'} and "
        f"{job.out / 'build_report.md'}"
    )


def run_build(job: BuildJob, *, progress: bool = True) -> BuildResult:
    """Build (or resume building) the dataset described by ``job``.

    Raises
    ------
    ConfigError, SchemaError
        Before any image is read: missing root or source folders, paths that leave the root,
        a labels table without the needed columns, an ``--out`` that is a file, an output
        folder that holds a different build, or another build running into it.
    BuildError
        After the work, if no image is left in the dataset (the report says why).
    """
    check_out(job.out)
    table = read_table(job.labels)
    rows = check_labels(table, job.root, job.labels)
    plan = {"labels_sha256": sha256_file(job.labels), **job.fingerprint()}
    state = open_state(job.out)
    with build_lock(state):
        claim_plan(job.out, state, plan)
        results = state / "shards"
        shards = plan_shards(rows, job, results)
        records = _run_shards(job, shards, results, progress)
        return _finish(job, rows, records)


def _finish(job: BuildJob, rows: pl.DataFrame, records: pl.DataFrame) -> BuildResult:
    """Finalise from all records and write the dataset's tables (the Parquet table last)."""
    dataset, dropped = finalize(
        records,
        rows,
        class_size=job.class_size,
        min_class_size=job.min_class_size,
        val_fraction=job.val_fraction,
        seed=job.seed,
    )
    remove_dropped(job.out, dropped)
    _sweep_temporaries(job.out)

    quarantine = records.filter(pl.col("status") == "rejected").select("idx", "reason", "detail")
    with atomic_path(job.out / "quarantine.csv") as tmp:
        quarantine.write_csv(tmp)
    report = build_report(records, dropped, dataset)
    write_report(report, job.out)
    if dataset.is_empty():
        raise _empty_dataset_error(report, job)
    metadata = job.out / "metadata.parquet"
    with atomic_path(job.out / "metadata.csv") as tmp:
        to_csv_frame(dataset).write_csv(tmp)
    write_provenance(
        job.out / "provenance.json",
        command="build",
        config=job.resolved(),
        inputs=[job.labels],
        extra={"images": dataset.height, "classes": dataset["label"].n_unique()},
    )
    # The Parquet table goes last: its presence marks a finished build.
    with atomic_path(metadata) as tmp:
        dataset.write_parquet(tmp, compression="zstd")
    return BuildResult(metadata=metadata, dataset=dataset, report=report)
