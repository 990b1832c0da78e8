"""The ``score`` command: accuracy, confusion matrix and conformal sets of a predictions table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cytoimagenet.cli._errors import friendly, reading
from cytoimagenet.errors import ConfigError


def register(app: typer.Typer) -> None:
    """Add the commands of this module to ``app``."""
    app.command("score")(score)


def _split(values: list[str] | None) -> list[str]:
    """Accept repeated options and comma-separated values alike."""
    return [v.strip() for item in values or [] for v in item.split(",") if v.strip()]


def _floats(values: list[str] | None, option: str) -> list[float]:
    try:
        return [float(v) for v in _split(values)]
    except ValueError as exc:
        raise ConfigError(f"{option}: expected numbers such as 0.1 ({exc})") from exc


@friendly
def score(
    predictions: Annotated[
        Path, typer.Option(help="Predictions table (.parquet, .csv, .csv.gz, .tsv).")
    ],
    out: Annotated[Path, typer.Option(help="RESULT.json to write.")],
    level: Annotated[str, typer.Option(help="Scored level: treatment | well | crop.")] = (
        "treatment"
    ),
    from_: Annotated[
        str | None,
        typer.Option(
            "--from", help="Level of the table's rows (crop | well | treatment); default --level."
        ),
    ] = None,
    classes: Annotated[
        list[str] | None,
        typer.Option(help="Class columns in order (repeat or comma-separate); default: detect."),
    ] = None,
    figure: Annotated[Path | None, typer.Option(help="Confusion-matrix PNG to write.")] = None,
    benchmark: Annotated[str, typer.Option(help="What was scored (free text).")] = "predictions",
    name: Annotated[
        str | None, typer.Option(help="Name of the scored run; default the file stem.")
    ] = None,
    conformal_alpha: Annotated[
        list[str] | None,
        typer.Option(help="Conformal error rate(s), e.g. 0.1 (repeat or comma-separate)."),
    ] = None,
    conformal_score: Annotated[str, typer.Option(help="Nonconformity: lac | aps.")] = "lac",
    mondrian: Annotated[
        bool, typer.Option("--mondrian", help="Class-conditional (Mondrian) calibration.")
    ] = False,
    randomize: Annotated[
        bool, typer.Option("--randomize", help="Randomised APS (exact coverage).")
    ] = False,
    conformal_calibration: Annotated[
        Path | None,
        typer.Option(
            help="Compound-disjoint table to calibrate on; default leave-one-compound-out."
        ),
    ] = None,
    group: Annotated[
        str, typer.Option(help="Column held out together in calibration.")
    ] = "Metadata_Compound",
    seed: Annotated[int, typer.Option(help="Seed of randomised APS.")] = 0,
) -> None:
    """Score a table of class probabilities: accuracy, confusion, recall, conformal sets."""
    from cytoimagenet.config import validate_job
    from cytoimagenet.finetune.figures import format_conformal, format_confusion, format_recall
    from cytoimagenet.finetune.score_step import ScoreJob, run_score

    job = validate_job(
        ScoreJob,
        predictions=predictions,
        out=out,
        level=level,
        aggregate_from=from_,
        classes=_split(classes) or None,
        figure=figure,
        benchmark=benchmark,
        name=name,
        conformal_alpha=_floats(conformal_alpha, "--conformal-alpha"),
        conformal_score=conformal_score,
        mondrian=mondrian,
        randomize=randomize,
        conformal_calibration=conformal_calibration,
        group=group,
        seed=seed,
    )
    with reading(job.predictions, job.conformal_calibration):
        result = run_score(job)
    for lvl, s in result["scores"].items():  # type: ignore[attr-defined]
        ci = s["ci95"]
        typer.echo(
            f"{lvl} accuracy: {100 * s['accuracy']:.1f}% ({s['correct']}/{s['n']}), "
            f"95% CI [{100 * ci['low']:.1f}, {100 * ci['high']:.1f}] (Wilson)"
        )
    primary = result["scores"][job.level]  # type: ignore[index]
    typer.echo(format_confusion(primary["confusion"], primary["labels"]))
    typer.echo(f"per-class recall ({job.level}):")
    extra = primary["extra"]
    typer.echo(format_recall(extra["per_class_recall"], extra["support"]))
    if "conformal" in result:
        typer.echo(format_conformal(result["conformal"]))  # type: ignore[arg-type]
    typer.echo(f"wrote {job.out}" + (f" and {job.figure}" if job.figure else ""))
