"""The ``benchmark-images`` step: a benchmark's raw folder → the image table ``extract`` reads."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import polars as pl
from pydantic import model_validator

from cytoimagenet.config import _Job
from cytoimagenet.evaluation.loaders import (
    COOS7_SPLITS,
    SHOWN,
    BenchmarkImages,
    load_bbbc021,
    load_coos7,
    load_cyclops,
)
from cytoimagenet.fields import ParquetOut, existing_dir
from cytoimagenet.io.atomic import atomic_path
from cytoimagenet.provenance import write_provenance


class BenchmarkImagesJob(_Job):
    """Write the image table of one benchmark.

    Attributes
    ----------
    benchmark : {"bbbc021", "coos7", "cyclops"}
        Which benchmark layout ``root`` follows.
    root : Path
        The raw folder; the table's ``channel_paths`` are relative to it.
    out : Path
        Output Parquet file.
    metadata : Path, optional
        BBBC021 only: folder with ``BBBC021_v1_image.csv`` and ``BBBC021_v1_moa.csv``.
    subset : {"annotated", "all"}
        BBBC021 only: the 103 annotated treatments + DMSO, or every field.
    allow_missing : bool
        Drop samples with missing image files (listed) instead of failing.
    """

    benchmark: Literal["bbbc021", "coos7", "cyclops"]
    root: Annotated[Path, existing_dir("the benchmark's raw folder")]
    out: ParquetOut
    metadata: Annotated[Path | None, existing_dir("the folder with the BBBC021 CSVs")] = None
    subset: Literal["annotated", "all"] = "annotated"
    allow_missing: bool = False

    @model_validator(mode="after")
    def _bbbc021_options(self) -> BenchmarkImagesJob:
        if self.benchmark != "bbbc021" and (
            self.metadata is not None or self.subset != "annotated"
        ):
            raise ValueError("--metadata and --subset apply to bbbc021 only")
        return self


def load_benchmark(job: BenchmarkImagesJob) -> BenchmarkImages:
    """Run the loader that ``job.benchmark`` names."""
    if job.benchmark == "bbbc021":
        return load_bbbc021(
            job.root,
            metadata=job.metadata,
            annotated_only=job.subset == "annotated",
            allow_missing=job.allow_missing,
        )
    loader = load_coos7 if job.benchmark == "coos7" else load_cyclops
    return loader(job.root, allow_missing=job.allow_missing)


def run_benchmark_images(job: BenchmarkImagesJob) -> BenchmarkImages:
    """Load, write ``job.out`` (+ ``.provenance.json``) atomically, and return the images."""
    images = load_benchmark(job)
    with atomic_path(job.out) as tmp:
        images.table.write_parquet(tmp)
    write_provenance(
        job.out.with_name(f"{job.out.stem}.provenance.json"),
        command="benchmark-images",
        config=job.resolved(),
        inputs=images.inputs,
        extra={
            "rows": images.table.height,
            "dropped": list(images.dropped),
            "notes": list(images.notes),
        },
    )
    return images


def _counts(frame: pl.DataFrame, column: str) -> list[str]:
    counts = frame.group_by(column).len().sort(column)
    width = max(len(str(v)) for v in counts[column])
    return [f"  {v!s:<{width}}  {n}" for v, n in counts.iter_rows()]


def _bbbc021_lines(table: pl.DataFrame) -> list[str]:
    is_dmso = pl.col("Metadata_Compound").str.to_lowercase() == "dmso"
    annotated = table.filter(pl.col("Metadata_MoA").is_not_null() & ~is_dmso)
    treatments = annotated.unique(["Metadata_Compound", "Metadata_Concentration"])
    lines = [
        f"plates: {table['Metadata_Plate'].n_unique()}, "
        f"batches (weeks): {table['Metadata_Batch'].n_unique()}",
        f"annotated treatments (DMSO excluded): {treatments.height} over "
        f"{treatments['Metadata_Compound'].n_unique()} compounds and "
        f"{treatments['Metadata_MoA'].n_unique()} MoAs ({annotated.height} fields)",
        f"DMSO fields: {table.filter(is_dmso).height}",
    ]
    unannotated = table.filter(pl.col("Metadata_MoA").is_null()).height
    if unannotated:
        lines.append(f"unannotated fields: {unannotated}")
    per_moa = (
        annotated.group_by("Metadata_MoA")
        .agg(
            pl.struct("Metadata_Compound", "Metadata_Concentration").n_unique().alias("t"),
            pl.len().alias("f"),
        )
        .sort("Metadata_MoA")
    )
    if per_moa.height:
        width = max(len(m) for m in per_moa["Metadata_MoA"])
        lines.append("per MoA:")
        lines.append(f"  {'':<{width}}  {'treatments':>10}  {'fields':>6}")
        lines += [f"  {m:<{width}}  {t:>10}  {f:>6}" for m, t, f in per_moa.iter_rows()]
    return lines


def summarize(images: BenchmarkImages) -> str:
    """Return the printed summary: rows, classes, per-class counts, drops and notes."""
    table, label = images.table, images.label_column
    classes = table.filter(pl.col(label).is_not_null())[label].n_unique()
    if images.benchmark == "bbbc021":
        lines = [f"bbbc021: {table.height} rows (fields of view)", *_bbbc021_lines(table)]
    else:
        lines = [f"{images.benchmark}: {table.height} rows (cells), {classes} classes"]
    if images.benchmark == "coos7":
        grid = (
            table.group_by(label, "Metadata_Split")
            .len()
            .pivot("Metadata_Split", index=label, values="len")
            .fill_null(0)
            .sort(label)
        )
        splits = [c for c in COOS7_SPLITS if c in grid.columns]
        width = max(len(str(v)) for v in grid[label])
        lines.append("per class and split:")
        lines.append(f"  {'':<{width}}" + "".join(f"{s:>8}" for s in splits))
        for row in grid.select(label, *splits).iter_rows():
            lines.append(f"  {row[0]:<{width}}" + "".join(f"{v:>8}" for v in row[1:]))
    elif images.benchmark == "cyclops":
        lines.append("per class:")
        lines += _counts(table, label)
    if images.dropped:
        lines.append(
            f"dropped {len(images.dropped)} samples with missing files (--allow-missing), e.g. "
            + "; ".join(images.dropped[:SHOWN])
        )
    lines += [f"note: {n}" for n in images.notes]
    return "\n".join(lines)
