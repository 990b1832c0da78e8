"""``download --labels``: the selective fetch's output (the plan, the outcomes, the summary)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer


def fetch_for_labels(*, list_only: bool, progress: bool, **options: Any) -> None:
    """Validate the options, then print the plan (``--list``) or fetch and report."""
    from cytoimagenet.config import validate_job
    from cytoimagenet.download.fetch_step import FetchJob, run_fetch

    job = validate_job(FetchJob, **options)
    report = run_fetch(job, progress=progress and not list_only, dry_run=list_only)
    if list_only:
        _print_plan(report)
        return
    for source in report.sources:
        for o in source.outcomes:
            where = f"{o.source}/{o.path}" if o.path else o.source
            if o.status == "manual":
                typer.echo(f"to do by hand  {where}: {o.reason}")
            elif o.status == "failed":
                typer.secho(f"failed         {where}: {o.reason}", err=True, fg="red")
            else:
                typer.echo(f"note           {where}: {o.reason}")
        typer.echo(
            f"{source.source:<16} {source.route:<13} {source.needed:>8,} needed  "
            f"{source.fetched:>8,} fetched  {source.skipped:>8,} already there  "
            f"{source.failed:>6,} failed  {_mb(source.received)} received"
        )
    typer.echo(report.summary() + f"; records in {Path(job.to)}/<source>/.fetch/fetched.jsonl")
    if report.failed:
        raise typer.Exit(code=1)


def _print_plan(report: Any) -> None:
    typer.echo(f"{'source':<16} {'route':<13} {'files':>8}  {'needed':>10}  {'whole':>10}  share")
    for s in report.sources:
        needed = _mb(s.needed_bytes) if s.needed_bytes else "?"
        whole = _mb(s.whole_bytes) if s.whole_bytes else "?"
        share = f"{100 * s.needed_bytes / s.whole_bytes:.1f}%" if s.whole_bytes else "?"
        typer.echo(
            f"{s.source:<16} {s.route:<13} {s.needed:>8,}  {needed:>10}  {whole:>10}  {share}"
        )
        for o in s.outcomes:
            typer.echo(f"  {o.status:<8} {o.path}: {o.reason}")
    known = [s for s in report.sources if s.whole_bytes]
    if known:
        need = sum(s.needed_bytes for s in known)
        whole = sum(s.whole_bytes for s in known)
        typer.echo(
            f"archives read by range: {_mb(need)} needed of {_mb(whole)} "
            f"({100 * need / whole:.1f}%); the directories read are kept for the fetch"
        )


def _mb(n: int) -> str:
    return f"{n / 1e9:,.2f} GB" if n >= 1e9 else f"{n / 1e6:,.1f} MB"
