"""The quickstart report: what was built, how training went, and how the features transfer.

Everything is read back from the files the stages wrote, so the report can be rebuilt
alone (``--stages report``) and always shows what is on disk.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl

from cytoimagenet.io.atomic import atomic_path
from cytoimagenet.quickstart.notes import small_n_caveat, validation_loss
from cytoimagenet.quickstart.reproduce import reproduce_commands
from cytoimagenet.quickstart.run import FEATURE_SETS, MODEL, Run
from cytoimagenet.reporting import figures
from cytoimagenet.reporting.document import Code, Document, Figure, Heading, Paragraph, Table


def _json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _dataset_section(run: Run, doc: Document, fig_dir: Path) -> None:
    paths = run.paths
    build = _json(paths.dataset / "build_report.json")
    labels = _json(paths.out / "labels" / "labels.report.json")
    doc.add(Heading("1. The curated dataset"))
    if not build:
        doc.add(Paragraph("The curate stage has not run.", note=True))
        return
    doc.add(
        Paragraph(
            "A synthetic 16-bit fluorescence screen (nucleus, a tagged protein and actin; cells "
            "whose protein sits in the nucleus, cytoplasm or endosomes, and whose size, shape "
            "and actin respond to compounds) was harmonised into the unified metadata schema, "
            "weakly labelled (least frequent label first), and standardised into grey 8-bit "
            "crops exactly as CytoImageNet was built."
        ),
        Table(
            ["source fields", "fields rejected", "images", "classes", "validation images"],
            [
                [
                    build["fields"],
                    build["fields_rejected"],
                    build["images"],
                    build["classes"],
                    build["val_images"],
                ]
            ],
        ),
    )
    per_category = labels.get("labels_per_category", {})
    paper = labels.get("paper_labels_per_category", {})
    if per_category:
        doc.add(
            Heading("Labels per category", 3),
            Table(
                ["category", "labels here", "labels in CytoImageNet"],
                [[c, n, paper.get(c, "")] for c, n in per_category.items()],
            ),
        )
    doc.add(
        Heading("Classes", 3),
        Table(
            ["label", "category", "images", "val", "source images"],
            [
                [c["label"], c["category"], c["images"], c["val"], c["source_images"]]
                for c in build.get("per_class", [])
            ],
        ),
    )
    reasons = [
        *(["field", r, n] for r, n in build.get("rejected_by_reason", {}).items()),
        *(["crop", r, n] for r, n in build.get("crops_dropped_by_reason", {}).items()),
        *(["output", r, n] for r, n in build.get("outputs_dropped_by_reason", {}).items()),
    ]
    doc.add(Heading("Quality control", 3))
    if reasons:
        doc.add(Table(["level", "reason", "count"], reasons))
    else:
        doc.add(Paragraph("No field, crop or output was rejected by quality control."))
    grid = figures.class_grid(paths.dataset, fig_dir / "classes.png", seed=run.seed)
    doc.add(Figure(_rel(grid, paths.report), "Random examples of every class, as written."))


def _training_section(run: Run, doc: Document, fig_dir: Path) -> None:

    metrics = run.paths.pretrain / "metrics.csv"
    doc.add(Heading("2. Pretraining"))
    if not metrics.is_file():
        doc.add(Paragraph("The pretrain stage has not run.", note=True))
        return
    rows = figures.read_metrics(metrics)
    sizes = run.sizes
    doc.add(
        Paragraph(
            f"{MODEL} from random weights, {sizes.train_size} px inputs, batch "
            f"{sizes.batch_size}, Adam (lr 1e-3), cross-entropy, random 0–360° rotations with "
            f"reflect fill — the paper's recipe at toy scale ({len(rows)} epochs on CPU, and a "
            "smaller network than the paper's EfficientNet-B0, which needs far more steps)."
        )
    )
    curves = figures.training_curves(metrics, fig_dir / "training.png")
    doc.add(Figure(_rel(curves, run.paths.report), "Loss and top-1 accuracy per epoch."))
    summary = validation_loss(metrics)
    shown = {int(rows[-1]["epoch"]): "last"}
    if summary is not None:
        shown = {summary.best_epoch: "lowest val loss (transferred)", **shown}
        if summary.best_epoch == int(rows[-1]["epoch"]):
            shown[summary.best_epoch] = "last, lowest val loss (transferred)"
    doc.add(
        Table(
            [
                "epoch",
                "checkpoint",
                "train loss",
                "train top-1 %",
                "val loss",
                "val top-1 %",
                "classes without a correct val prediction",
            ],
            [
                [
                    int(row["epoch"]),
                    shown[int(row["epoch"])],
                    round(row["train_loss"], 3),
                    round(100 * row["train_top1"], 1),
                    round(row["val_loss"], 3),
                    round(100 * row["val_top1"], 1),
                    int(row["classes_without_correct"]),
                ]
                for row in rows
                if int(row["epoch"]) in shown
            ],
            table_id="checkpoints",
        )
    )
    if summary is not None:
        doc.add(Paragraph(summary.paragraph()))
    else:
        doc.add(Paragraph("No validation loss was recorded: features come from last.pt."))


def _results_section(run: Run, doc: Document, fig_dir: Path) -> None:
    from cytoimagenet.evaluation.figures import confusion_figure
    from cytoimagenet.evaluation.report import read_result, results_grid

    doc.add(Heading("3. Transfer: BBBC021-style mechanism-of-action benchmark"))
    files = [run.paths.results / f"{s}.json" for s in FEATURE_SETS]
    results = [read_result(f) for f in files if f.is_file()]
    if not results:
        doc.add(Paragraph("The evaluate stage has not run.", note=True))
        return
    screen = pl.read_parquet(run.paths.images)
    treated = screen.filter(pl.col("Metadata_MoA") != "DMSO")
    doc.add(
        Paragraph(
            f"A second synthetic screen in BBBC021's layout ({screen.height} fields, "
            f"{treated['Metadata_Compound'].n_unique()} compounds at "
            f"{treated['Metadata_Concentration'].n_unique()} concentrations, "
            f"{treated['Metadata_MoA'].n_unique()} mechanisms of action, DMSO controls, "
            f"{screen['Metadata_Plate'].n_unique()} plates). Features of every model were "
            "scored with the paper's protocol; the table has the paper's layout (Table 2)."
        )
    )
    grid = results_grid(results)
    doc.add(Table(grid.header, grid.rows, bold=grid.bold, table_id="results"))
    caveat = small_n_caveat(results)
    if caveat:
        doc.add(Paragraph(caveat))
    for group in grid.protocols:
        doc.add(Paragraph(f"Protocol: {group.description}", note=True))
    for note in run.notes or _json(run.paths.state).get("notes", []):
        doc.add(Paragraph(note, note=True))
    doc.add(Heading("Confusion matrices", 3))
    for result in results:
        key = result["primary"]
        score = result["scores"][key]
        name = result["feature_set"]
        slug = "".join(ch if ch.isalnum() else "-" for ch in name.lower()).strip("-")
        path = confusion_figure(
            score["labels"],
            score["confusion"],
            f"{name}: {100 * score['accuracy']:.1f} % ({score['correct']}/{score['n']})",
            fig_dir / f"confusion-{slug}.png",
        )
        caption = f"{name}: true MoA (rows) vs 1-NN MoA."
        doc.add(Figure(_rel(path, run.paths.report), caption, inline=True))
    tables = []
    for result in results:
        features = Path(result["features"])
        if features.is_file():
            tables.append((result["feature_set"], pl.read_parquet(features)))
    if tables:
        path = figures.feature_map(tables, fig_dir / "feature-map.png")
        doc.add(
            Heading("Feature map", 3),
            Figure(
                _rel(path, run.paths.report),
                "First two principal components of every model's features, one dot per "
                "field, coloured by mechanism of action. Features are robust z-scores "
                f"(median and MAD per feature, clipped at ±{figures.CLIP:g}) so that no odd "
                "field owns a component; each panel shows the 1st–99th percentile of its "
                "points plus a margin, and draws points beyond it as triangles on the edge.",
            ),
        )


def _rel(path: Path, base: Path) -> str:
    return path.relative_to(base).as_posix()


def build_document(run: Run) -> Document:
    """Assemble the report of the run in ``run.out`` from the files on disk."""
    fig_dir = run.paths.report / "figures"
    state = _json(run.paths.state)
    doc = Document("cytoimagenet quickstart report")
    timings = state.get("timings", {})
    doc.add(
        Paragraph(
            "The whole CytoImageNet pipeline, end to end, on synthetic data generated on the "
            "spot: curate a weakly labelled dataset, pretrain a CNN on it, extract features "
            "of a held-out compound screen, and score them as the paper does."
        ),
        Table(["stage", "seconds"], [[s, t] for s, t in timings.items()]),
        Paragraph(
            "Stage times as recorded when this page was written; the report stage's own time "
            "is added to quickstart.json once the page is done."
        ),
    )
    _dataset_section(run, doc, fig_dir)
    _training_section(run, doc, fig_dir)
    _results_section(run, doc, fig_dir)
    env = state.get("environment", {})
    doc.add(
        Heading("4. Reproduce"),
        Paragraph(
            "Each stage is an ordinary command; these lines redo the run from nothing, in "
            "order, in a shell (a test runs them and checks they give this page's numbers):"
        ),
        Code("\n".join(reproduce_commands(run))),
        Paragraph(
            f"Settings: preset {run.preset}, seed {run.seed}. Versions: "
            + ", ".join(
                f"{k} {v}" for k, v in env.get("packages", env).items() if isinstance(v, str)
            ),
            note=True,
        ),
    )
    return doc


def write_report(run: Run) -> Path:
    """Write ``report/index.html`` and ``report/report.md``; return the HTML path."""
    from cytoimagenet.reporting.document import to_html, to_markdown

    run.paths.report.mkdir(parents=True, exist_ok=True)
    doc = build_document(run)
    html_path = run.paths.report / "index.html"
    for path, text in (
        (run.paths.report / "report.md", to_markdown(doc)),
        (html_path, to_html(doc)),
    ):
        with atomic_path(path) as tmp:
            tmp.write_text(text, encoding="utf-8")
    return html_path
