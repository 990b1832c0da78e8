"""``cytoimagenet sources``: list and describe the catalog."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from cytoimagenet.cli._errors import friendly
from cytoimagenet.sources.catalog import all_sources, get_source

app = typer.Typer(help="List and describe the source datasets.", no_args_is_help=True)


@app.command("list")
@friendly
def list_sources(
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
    include_sample: Annotated[
        bool, typer.Option("--include-sample", help="Also list the embedded sample source.")
    ] = False,
) -> None:
    """List every source dataset in the catalog."""
    entries = all_sources(include_generated=include_sample)
    if as_json:
        typer.echo(json.dumps([info.summary() for info in entries], indent=2))
        return
    typer.echo(f"{'name':<16}{'database':<10}{'images':>9}  {'use':<12}title")
    for info in entries:
        use = "evaluation" if not info.pretraining else "both" if info.evaluation else "pretraining"
        images = f"{info.images:,}" if info.images is not None else "-"
        typer.echo(f"{info.name:<16}{info.database:<10}{images:>9}  {use:<12}{info.title}")
    typer.echo(f"\n{len(entries)} sources")


@app.command("show")
@friendly
def show_source(
    name: Annotated[str, typer.Argument(help="Source shorthand, e.g. idr0088.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Describe one source dataset."""
    info = get_source(name)
    summary = info.summary()
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    for key, value in summary.items():
        if isinstance(value, list):
            value = ", ".join(map(str, value)) or "-"
        typer.echo(f"{key:<15}{value if value not in ('', None) else '-'}")
