"""The ``build`` step: labels table + raw images → PNG dataset, resumable and parallel.

State on disk, under ``OUT/.build/``:

* ``plan.json`` — the settings that decide the output and the labels table's checksum. A
  second run with other settings refuses to mix its files into this build.
* ``shards/NNNNNN.parquet`` — one record per finished shard, written last and atomically.

A run processes the shards that have no record yet, then finalises from all records. Killing
it at any moment loses at most the shards in flight; they are redone with identical bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from cytoimagenet.config import BuildJob
from cytoimagenet.curation.dataset.finalize import finalize, remove_dropped
from cytoimagenet.curation.dataset.plan import check_labels, plan_shards
from cytoimagenet.curation.dataset.report import build_report, write_report
from cytoimagenet.curation.dataset.worker import RECORD_SCHEMA, process_shard
from cytoimagenet.errors import ConfigError
from cytoimagenet.imaging.png import TMP_MARKER
from cytoimagenet.io.atomic import atomic_path
from cytoimagenet.parallel import run_tasks
from cytoimagenet.provenance import sha256_file, write_provenance
from cytoimagenet.schema import read_table, to_csv_frame

STATE_DIR = ".build"


@dataclass(frozen=True)
class BuildResult:
    """What a build produced."""

    metadata: Path
    dataset: pl.DataFrame
    report: dict[str, object]


def _claim(out: Path, plan: dict[str, object]) -> Path:
    """Create or reopen the build state; refuse a folder holding a different build."""
    state = out / STATE_DIR
    plan_file = state / "plan.json"
    if plan_file.is_file():
        previous = json.loads(plan_file.read_text())
        if previous != plan:
            changed = sorted(k for k in plan if previous.get(k) != plan.get(k))
            raise ConfigError(
                f"{out} holds a build with other settings ({', '.join(changed)} differ); "
                "use a new --out, or delete that folder to start over"
            )
    elif out.exists() and any(p.name != STATE_DIR for p in out.iterdir()):
        raise ConfigError(f"{out} is not empty and holds no build; choose an empty --out folder")
    (state / "shards").mkdir(parents=True, exist_ok=True)
    if not plan_file.is_file():
        with atomic_path(plan_file) as tmp:
            tmp.write_text(json.dumps(plan, indent=2, sort_keys=True))
    return state


def _sweep_temporaries(out: Path) -> int:
    """Remove temporary files left by a killed run."""
    stale = [p for p in out.rglob(f"*{TMP_MARKER}*") if p.is_file()]
    stale += [p for p in out.rglob(".*.tmp") if p.is_file()]
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)


def run_build(job: BuildJob, *, progress: bool = True) -> BuildResult:
    """Build (or resume building) the dataset described by ``job``.

    Raises
    ------
    ConfigError, SchemaError
        Before any image is read: missing root or source folders, a labels table without
        the needed columns, or an output folder that holds a different build.
    """
    table = read_table(job.labels)
    rows = check_labels(table, job.root, job.labels)
    plan = {"labels_sha256": sha256_file(job.labels), **job.fingerprint()}
    state = _claim(job.out, plan)
    results = state / "shards"
    shards = plan_shards(rows, job, results)
    pending = [s for s in shards if not (results / f"{s.shard_id:06d}.parquet").is_file()]

    bar = None
    if progress and pending:
        from tqdm.auto import tqdm

        done_before = sum(len(s.tasks) for s in shards) - sum(len(s.tasks) for s in pending)
        bar = tqdm(total=rows.height, initial=done_before, unit="img", desc="build")
    for shard, _ in run_tasks(process_shard, pending, workers=job.workers, scheduler=job.scheduler):
        if bar is not None:
            bar.update(len(shard.tasks))
    if bar is not None:
        bar.close()

    records = (
        pl.concat([pl.read_parquet(results / f"{s.shard_id:06d}.parquet") for s in shards])
        if shards
        else pl.DataFrame(schema=RECORD_SCHEMA)
    )
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
