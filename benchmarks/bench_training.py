"""Pretraining throughput against the model's pure forward+backward rate.

Writes a synthetic built dataset (grey 8-bit PNGs of ``--side`` px + ``metadata.parquet``),
runs ``run_pretrain`` on it (data loading, rotation, resize, transfer, AMP, channels_last,
Adam step — the real loop) and times the same model's forward+backward+step on random
tensors already on the device. Prints both rates, their ratio, and what the pipeline rate
means for the paper's full dataset (890,737 images × 24 epochs)::

    python benchmarks/bench_training.py [--n 2048] [--batch-size 64] [--size 224]
        [--workers 8] [--device auto] [--amp auto] [--model efficientnet_b0] [--json PATH]
        [--loader-only]

It also times the data loader alone (decode, resize, rotate, collate with ``--workers``
processes): that rate does not need a GPU, and it says how many workers a GPU's rate needs.

On a GPU the goal is a pipeline/pure ratio near 1 and under 2 hours for the full run; on a
2-core CPU both rates are single digits to tens of images/s.
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import polars as pl
import torch

from cytoimagenet.config import validate_job
from cytoimagenet.models.factory import create_backbone
from cytoimagenet.training.config import PretrainJob
from cytoimagenet.training.distributed import resolve_amp, resolve_channels_last, resolve_device
from cytoimagenet.training.loop import run_pretrain

FULL_IMAGES = 890_737
FULL_EPOCHS = 24


def write_dataset(root: Path, n: int, side: int, classes: int = 16) -> Path:
    """``n`` train PNGs (plus a small val split) in ``classes`` folders, seeded."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n + classes):
        label = f"class-{i % classes:02d}"
        (root / label).mkdir(parents=True, exist_ok=True)
        image = rng.integers(0, 256, (side, side), dtype=np.uint8)
        cv2.imwrite(str(root / label / f"{label}-{i}.png"), image)
        dset = "val" if i < classes else "train"
        rows.append({"label": label, "path": label, "filename": f"{label}-{i}.png", "dset": dset})
    pl.DataFrame(rows).write_parquet(root / "metadata.parquet")
    return root


def pure_rate(args: argparse.Namespace, steps: int) -> float:
    """Images/s of forward+backward+Adam step on device-resident random batches."""
    device = resolve_device(args.device, 0, 1)
    amp = resolve_amp(args.amp, device)
    backbone = create_backbone(args.model, in_chans=1, num_classes=16, seed=0)
    model = backbone.model.to(device).train()
    if resolve_channels_last("auto", device):
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp, torch.float32)
    scaler = torch.amp.GradScaler(device.type, enabled=amp == "fp16")
    x = torch.randn(args.batch_size, 1, args.size, args.size, device=device)
    x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 16, (args.batch_size,), device=device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True

    def step() -> None:
        with torch.autocast(device.type, dtype=dtype, enabled=amp != "off"):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    for _ in range(3):  # warm-up: cudnn autotuning, allocator
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    began = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * args.batch_size / (time.perf_counter() - began)


def loader_rate(args: argparse.Namespace, data: Path) -> float:
    """Images/s of the training data loader alone: decode, resize, rotate, collate.

    The rate with ``--workers`` processes, after the first batches (worker start-up) are
    done. It does not depend on the GPU, so it says how many workers a GPU's training rate
    needs, on any machine.
    """
    from cytoimagenet.training.data import EpochSampler, ImageDataset, make_loader, read_splits

    splits = read_splits(data)
    dataset = ImageDataset(
        splits.root, splits.train_paths, splits.train_targets, args.size, augment=True, seed=0
    )
    loader = make_loader(
        dataset,
        EpochSampler(len(dataset), seed=0),
        batch_size=args.batch_size,
        workers=args.workers,
        pin_memory=False,
        drop_last=True,
        seed=0,
    )
    warm = max(1, 2 * args.workers)  # every worker has delivered its first batches
    seen, began = 0, 0.0
    for i, (images, _) in enumerate(loader):
        if i == warm:
            began, seen = time.perf_counter(), 0
        seen += images.shape[0]
    if not began:
        raise SystemExit(f"--n {args.n} gives too few batches to time the loader; raise it")
    return seen / (time.perf_counter() - began)


def pipeline_rate(args: argparse.Namespace, data: Path, out: Path) -> float:
    """Images/s of the real training loop, from the second epoch (warm workers and caches)."""
    job = validate_job(
        PretrainJob,
        data=data,
        out=out,
        model=args.model,
        epochs=2,
        batch_size=args.batch_size,
        size=args.size,
        workers=args.workers,
        device=args.device,
        amp=args.amp,
        val_every=1000,
    )
    run_pretrain(job, progress=False)
    with (out / "metrics.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    return float(rows[-1]["images_per_s"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2048, help="training images")
    parser.add_argument("--side", type=int, default=256, help="side of the stored PNGs")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--amp", default="auto")
    parser.add_argument("--model", default="efficientnet_b0")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--loader-only", action="store_true", help="time the data loader alone, no model"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        data = write_dataset(Path(tmp) / "data", args.n, args.side)
        loader = loader_rate(args, data)
        per_worker = loader / max(1, args.workers)
        print(
            f"data loader alone: {loader:.0f} img/s with {args.workers} workers "
            f"({per_worker:.0f} per worker; {args.side}px PNG → {args.size}px, rotated)"
        )
        if args.loader_only:
            if args.json:
                args.json.write_text(json.dumps({"loader_images_per_s": round(loader, 1)}))
            return
        pipeline = pipeline_rate(args, data, Path(tmp) / "run")
    pure = pure_rate(args, steps=max(5, min(50, args.n // args.batch_size)))
    hours = FULL_IMAGES * FULL_EPOCHS / pipeline / 3600
    device = resolve_device(args.device, 0, 1)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    result = {
        "device": name,
        "amp": resolve_amp(args.amp, device),
        "model": args.model,
        "batch_size": args.batch_size,
        "size": args.size,
        "workers": args.workers,
        "pipeline_images_per_s": round(pipeline, 1),
        "pure_images_per_s": round(pure, 1),
        "ratio": round(pipeline / pure, 3),
        "loader_images_per_s": round(loader, 1),
        "full_run_hours": round(hours, 2),
    }
    print(
        f"{name} {args.model} @{args.size}px batch {args.batch_size} amp={result['amp']}: "
        f"training pipeline {pipeline:.1f} img/s, pure forward+backward {pure:.1f} img/s, "
        f"ratio {pipeline / pure:.2f}; 890,737 images x 24 epochs = {hours:.1f} h"
    )
    if pipeline < 0.9 * pure and loader < 1.1 * pure:
        print(f"the loader limits training: use at least {pure / per_worker:.0f} workers")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
