"""The "Reproduce" block of the quickstart report: every command line that redoes the run.

The lines are what the stages run, as ordinary ``cytoimagenet`` commands with the run's
settings, in order, from nothing: the pretraining sample, its curation, pretraining, the
evaluation screen (``sample --kind bbbc021``), every feature set, its evaluation and the
results table. A test runs them (``tests/e2e/test_quickstart.py``) and checks they give the
run's numbers, so the block cannot drift from what the quickstart does.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from cytoimagenet.numerics import PINNED_ENV, PINNED_THREADS
from cytoimagenet.quickstart.curate import SAMPLE_MIN_CLASS, SAMPLE_SHARD, SAMPLE_THRESHOLD
from cytoimagenet.quickstart.notes import transfer_checkpoint
from cytoimagenet.quickstart.run import FEATURE_SETS, MODE, MODEL, Run, lite0_available

#: Feature sets computed by ``extract`` with no network.
NO_NETWORK = frozenset({"intensity"})


def _q(value: object) -> str:
    return shlex.quote(str(value))


def planned_sets(run: Run) -> list[str]:
    """Feature sets of the run: those on disk, else those the extract stage would write."""
    present = [s for s in FEATURE_SETS if (run.paths.features / f"{s}.parquet").is_file()]
    if present:
        return present
    return [s for s in FEATURE_SETS if lite0_available() or s not in ("imagenet", "fusion")]


def extract_spec(stem: str, checkpoint: Path) -> str:
    """Return the ``extract --model`` spec of a quickstart feature set."""
    return {
        "random": "random",
        "intensity": "intensity",
        "imagenet": "lite0-imagenet",
        "cytoimagenet": str(checkpoint),
        "fusion": f"fusion:lite0-imagenet+{checkpoint}",
    }[stem]


def _curate(run: Run, seed: str) -> list[str]:
    out, sample = run.out, run.sizes.sample
    return [
        "# curate: the synthetic pretraining source, its metadata, weak labels, the dataset",
        f"cytoimagenet sample --kind source --out {_q(out / 'raw/sample')} "
        f"--plates {sample.plates} --sites {sample.sites} --size {sample.size} "
        f"--cells {sample.cells}{seed}",
        f"cytoimagenet metadata sample --raw {_q(out / 'raw/sample')} "
        f"--out {_q(out / 'metadata/sample.parquet')}",
        f"cytoimagenet labels --metadata {_q(out / 'metadata/sample.parquet')} "
        f"--out {_q(out / 'labels/labels.parquet')} --threshold {SAMPLE_THRESHOLD} "
        f"--include-controls{seed}",
        f"cytoimagenet build --labels {_q(out / 'labels/labels.parquet')} "
        f"--root {_q(out / 'raw')} --out {_q(out / 'dataset')} "
        f"--min-class-size {SAMPLE_MIN_CLASS} --shard-size {SAMPLE_SHARD}{seed}",
    ]


def _extract(run: Run, sets: list[str], seed: str) -> list[str]:
    out, sizes = run.out, run.sizes
    plate = sizes.plate
    screen = out / "raw/bbbc021-sample"
    checkpoint = transfer_checkpoint(run.paths.pretrain)
    lines = [
        "# extract: the evaluation screen in BBBC021's layout, its image table, the features",
        f"cytoimagenet sample --kind bbbc021 --out {_q(screen)} --plates {plate.weeks} "
        f"--sites {plate.sites} --size {plate.size} --cells {plate.cells} "
        f"--dmso-wells {plate.dmso_wells}{seed}",
        f"cytoimagenet benchmark-images bbbc021 --root {_q(screen)} "
        f"--out {_q(out / 'eval/images.parquet')}",
    ]
    for stem in sets:
        line = (
            f"cytoimagenet extract --model {_q(extract_spec(stem, checkpoint))} "
            f"--images {_q(out / 'eval/images.parquet')} --root {_q(screen)} "
            f"--out {_q(out / 'features' / f'{stem}.parquet')}"
        )
        if stem not in NO_NETWORK:
            line += f" --mode {MODE} --size {sizes.extract_size}"
        if stem == "random":  # the other networks' weights fix their architecture
            line += f" --arch {MODEL}{seed}"
        if stem not in NO_NETWORK and stem != "fusion":
            line += f" --name {stem}"
        lines.append(line)
    return lines


def reproduce_commands(run: Run) -> list[str]:
    """Return the command lines that redo ``run`` from nothing, in order.

    ``export`` and ``#`` lines set the quickstart's CPU numerics and name the stages; every
    other line is one ``cytoimagenet`` command, its paths shell-quoted.
    """
    out, sizes = run.out, run.sizes
    seed = f" --seed {run.seed}" if run.seed else ""
    sets = planned_sets(run)
    results = [out / "results" / f"{s}.json" for s in sets]
    pins = " ".join(f"{k}={v}" for k, v in PINNED_ENV.items())
    return [
        "# the quickstart's CPU numerics (see README: the same numbers on every machine)",
        f"export {pins} OMP_NUM_THREADS={PINNED_THREADS}",
        *_curate(run, seed),
        "# pretrain: the lowest-validation-loss epoch is the checkpoint transferred below",
        f"cytoimagenet pretrain --data {_q(out / 'dataset')} --out {_q(out / 'pretrain')} "
        f"--model {MODEL} --epochs {sizes.epochs} --batch-size {sizes.batch_size} "
        f"--size {sizes.train_size} --workers 0 --device cpu{seed}",
        *_extract(run, sets, seed),
        "# evaluate: the paper's BBBC021 protocol on each feature set, then the table",
        *(
            f"cytoimagenet evaluate bbbc021 --features {_q(out / 'features' / f'{s}.parquet')} "
            f"--out {_q(r)} --protocol cytoimagenet --name {_q(FEATURE_SETS[s])}{seed}"
            for s, r in zip(sets, results, strict=True)
        ),
        f"cytoimagenet report {' '.join(_q(r) for r in results)} "
        f"--out {_q(out / 'report/table.md')}",
    ]
