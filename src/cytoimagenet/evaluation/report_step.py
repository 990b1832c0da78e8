"""The ``report`` step: RESULT.json files → a Markdown table, confusion PNGs, an optional UMAP."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, model_validator

from cytoimagenet.config import _Job
from cytoimagenet.evaluation.figures import confusion_figure, require_umap, umap_figure
from cytoimagenet.evaluation.report import (
    benchmark_title,
    read_result,
    results_table,
    score_title,
    scores_of,
    slug,
)
from cytoimagenet.fields import OutputDir, existing_file, existing_files, output_file
from cytoimagenet.io.atomic import atomic_path


class ReportJob(_Job):
    """Build the results report.

    Attributes
    ----------
    results : list of Path
        RESULT.json files; their order gives the column order.
    out : Path
        Markdown file to write.
    figures : Path, optional
        Folder for confusion-matrix PNGs (and the UMAP); none are drawn without it.
    umap : Path, optional
        Features table to draw a UMAP of (needs the ``umap`` extra and ``figures``).
    umap_label : str, optional
        Column the UMAP is coloured by.
    """

    results: Annotated[list[Path], Field(min_length=1), existing_files("result file(s)")]
    out: Annotated[Path, output_file(".md", ".markdown", noun="report")]
    figures: OutputDir | None = None
    umap: Annotated[Path | None, existing_file("features table")] = None
    umap_label: str | None = None
    seed: int = 0

    @model_validator(mode="after")
    def _umap_needs_figures(self) -> ReportJob:
        if self.umap is not None and self.figures is None:
            raise ValueError("--umap writes a figure: give --figures DIR too")
        return self


@dataclass(frozen=True)
class Report:
    """What :func:`run_report` wrote."""

    markdown: str
    table: str
    figures: list[Path]


def confusion_figures(results: Sequence[Mapping[str, Any]], folder: Path) -> list[tuple[str, Path]]:
    """Write one confusion-matrix PNG per result and score that has one.

    Returns
    -------
    list of (str, Path)
        Caption and path of each figure, in result order.
    """
    written: list[tuple[str, Path]] = []
    taken: set[str] = set()
    for result in results:
        protocol = result["protocol"]
        proto = protocol.get("name", "") if isinstance(protocol, Mapping) else str(protocol)
        for key, score in scores_of(result):
            if not score.get("labels") or score.get("confusion") is None:
                continue
            caption = (
                f"{benchmark_title(str(result['benchmark']))} {score_title(key)} ({proto}) — "
                f"{result['feature_set']}: {100 * score['accuracy']:.2f} %"
            )
            stem = slug(f"{result['benchmark']}-{proto}-{key}-{result['feature_set']}")
            name, i = stem, 1
            while name in taken:  # two results whose names slug alike keep both figures
                i += 1
                name = f"{stem}-{i}"
            taken.add(name)
            path = folder / f"confusion-{name}.png"
            confusion_figure(score["labels"], score["confusion"], caption, path)
            written.append((caption, path))
    return written


def _link(path: Path, base: Path) -> str:
    return Path(os.path.relpath(path.resolve(), base.resolve())).as_posix()


def run_report(job: ReportJob) -> Report:
    """Read the results, draw the figures, write the Markdown report atomically."""
    results = [read_result(p) for p in job.results]
    if job.umap is not None:
        require_umap()  # fail before any file is written
    table = results_table(results)
    parts = ["# Transfer benchmarks", "", table]
    figures: list[Path] = []
    base = job.out.parent
    if job.figures is not None:
        drawn = confusion_figures(results, job.figures)
        if drawn:
            parts += ["## Confusion matrices", ""]
            for caption, path in drawn:
                parts += [f"### {caption}", "", f"![{caption}]({_link(path, base)})", ""]
                figures.append(path)
        if job.umap is not None:
            path = umap_figure(
                job.umap,
                job.figures / f"umap-{slug(job.umap.stem)}.png",
                label_column=job.umap_label,
                seed=job.seed,
            )
            figures.append(path)
            parts += ["## UMAP", "", f"![UMAP of {job.umap.name}]({_link(path, base)})", ""]
    markdown = "\n".join(parts).rstrip() + "\n"
    with atomic_path(job.out) as tmp:
        tmp.write_text(markdown, encoding="utf-8")
    return Report(markdown, table, figures)
