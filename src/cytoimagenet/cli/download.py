"""The ``download`` command: fetch catalog sources, verified and resumable."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cytoimagenet.cli._errors import friendly


def register(app: typer.Typer) -> None:
    """Add the commands of this module to ``app``."""
    app.command("download")(download)


@friendly
def download(
    to: Annotated[Path, typer.Option(help="Download root; each source goes to DIR/<source>/.")],
    sources: Annotated[
        list[str] | None,
        typer.Argument(
            help="Catalog shorthands, e.g. bbbc021 idr0088 (with --labels: only these sources)."
        ),
    ] = None,
    labels: Annotated[
        Path | None,
        typer.Option(
            help="A labels table: fetch only the files its build reads (members of remote "
            "zips by HTTP Range, single Kaggle/CIL files, an Aspera list for IDR).",
        ),
    ] = None,
    connections: Annotated[
        int, typer.Option(help="Concurrent requests per source (with --labels).")
    ] = 4,
    metadata_only: Annotated[
        bool, typer.Option("--metadata-only", help="Fetch only the metadata files.")
    ] = False,
    extract: Annotated[bool, typer.Option(help="Unpack archives after download.")] = True,
    retries: Annotated[int, typer.Option(help="Retries per file after a transient error.")] = 3,
    timeout: Annotated[float, typer.Option(help="Socket timeout in seconds.")] = 60.0,
    mirror: Annotated[
        str | None, typer.Option(help="Mirror base URL holding the files as <host>/<path>.")
    ] = None,
    list_only: Annotated[
        bool, typer.Option("--list", help="Print the planned files and steps; fetch nothing.")
    ] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar per file.")] = True,
    refresh: Annotated[
        bool,
        typer.Option(
            "--refresh",
            help="Fetch again files without a catalog checksum (and re-verify the others), "
            "ignoring the hashes recorded in downloads.json.",
        ),
    ] = False,
    deadline: Annotated[
        float,
        typer.Option(
            help="Seconds one file may take, retries included.",
            envvar="CYTOIMAGENET_DOWNLOAD_DEADLINE",
        ),
    ] = 24 * 3600.0,
    stall: Annotated[
        float,
        typer.Option(
            help="Seconds within which at least 64 KiB must arrive, else retry.",
            envvar="CYTOIMAGENET_DOWNLOAD_STALL",
        ),
    ] = 300.0,
    max_unknown_size: Annotated[
        float,
        typer.Option(
            help="GB taken at most from a file of unknown length.",
            envvar="CYTOIMAGENET_DOWNLOAD_MAX_UNKNOWN",
        ),
    ] = 64 * 1.024**3,
    max_extract_size: Annotated[
        float,
        typer.Option(help="GB one archive may unpack to.", envvar="CYTOIMAGENET_EXTRACT_MAX_SIZE"),
    ] = 2 * 1.024**4 * 1000,
    max_ratio: Annotated[
        float,
        typer.Option(
            help="Largest unpacked/packed size ratio of an archive (zip-bomb guard).",
            envvar="CYTOIMAGENET_EXTRACT_MAX_RATIO",
        ),
    ] = 200.0,
) -> None:
    """Download source datasets: resumable, checksum-verified, archives unpacked safely.

    With --labels, fetch only what a build of that labels table reads.
    """
    from cytoimagenet.config import validate_job

    shared = {
        "to": to,
        "retries": retries,
        "timeout": timeout,
        "mirror": mirror,
        "deadline": deadline,
        "stall": stall,
        "max_unknown_size": int(max_unknown_size * 1e9),
        "max_extract_size": int(max_extract_size * 1e9),
        "max_ratio": max_ratio,
    }
    if labels is not None:
        from cytoimagenet.cli.fetch import fetch_for_labels

        fetch_for_labels(
            labels=labels,
            sources=sources or [],
            connections=connections,
            list_only=list_only,
            progress=progress,
            **shared,
        )
        return
    if not sources:
        from cytoimagenet.errors import ConfigError

        raise ConfigError("name one or more sources, or pass --labels LABELS.parquet")
    from cytoimagenet.download.step import DownloadJob, run_download

    job = validate_job(
        DownloadJob,
        sources=sources,
        metadata_only=metadata_only,
        extract=extract,
        refresh=refresh,
        **shared,
    )
    if list_only:
        _print_plan(job.sources, metadata_only, job.to)
        return
    report = run_download(job, progress=progress)
    for o in report.outcomes:
        if o.status == "manual":
            typer.echo(f"to do by hand  {o.reason.replace('<DIR>', str(job.to))}")
        elif o.status == "failed":
            typer.secho(f"failed         {o.source}/{o.path}: {o.reason}", err=True, fg="red")
        elif o.reason:
            typer.echo(f"note           {o.source}/{o.path}: {o.reason}")
    total = sum(o.size or 0 for o in report.outcomes if o.status == "downloaded")
    typer.echo(
        f"{report.count('downloaded')} downloaded ({total / 1e6:,.1f} MB), "
        f"{report.count('skipped')} skipped (already valid), {report.count('failed')} failed, "
        f"{report.count('manual')} manual step(s); checksums recorded in {job.to}/downloads.json"
    )
    if report.failed:
        raise typer.Exit(code=1)


def _print_plan(names: list[str], metadata_only: bool, root: Path) -> None:
    from cytoimagenet.download.routes import plan_source
    from cytoimagenet.sources.catalog import get_source

    for name in names:
        plan = plan_source(get_source(name), metadata_only=metadata_only)
        for f in plan.files:
            check = "sha256" if f.sha256 else "no checksum"
            typer.echo(f"{name}/{f.path}  [{f.kind}, {check}]  {f.url}")
        for text in plan.manual:
            typer.echo(f"to do by hand  {text.replace('<DIR>', str(root))}")
