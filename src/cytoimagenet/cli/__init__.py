"""The ``cytoimagenet`` command line: a thin, typed view of the Python API."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from cytoimagenet import __version__
from cytoimagenet.cli import (
    data,
    download,
    evaluate,
    features,
    finetune,
    images,
    profile,
    report,
    score,
    sources,
    train,
)

app = typer.Typer(
    name="cytoimagenet",
    help="Curate weakly-labelled microscopy pretraining sets and benchmark transfer.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(sources.app, name="sources")
data.register(app)
features.register(app)
images.register(app)
train.register(app)
evaluate.register(app)
profile.register(app)
report.register(app)
score.register(app)
finetune.register(app)
download.register(app)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"cytoimagenet {__version__}")
        raise typer.Exit


@app.callback()
def _root(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress details.")] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


def main() -> None:
    """Entry point of the ``cytoimagenet`` console script."""
    app()
