"""Feature-extraction throughput against the bare model forward pass, on this CPU.

The pipeline (``extract_features``: read PNG/TIFF files, normalise, resize to 224, batch,
preprocess, forward) should not starve the model: target ≥ 0.9 of the images/s of the bare
forward pass on same-shaped batches. Prints both rates and the ratio::

    python benchmarks/bench_features.py [--n 192] [--batch-size 32] [--mode merge-norm]
        [--model efficientnet_b0] [--threads 2] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import tifffile
import torch

from cytoimagenet.features.extract import extract_features
from cytoimagenet.features.inputs import MODES
from cytoimagenet.models.factory import create_backbone


def write_inputs(root: Path, n: int, mode: str, rng: np.random.Generator) -> list[list[Path]]:
    """Dataset-like 8-bit PNGs for merge modes; 3-channel 16-bit TIFF fields for concat modes."""
    files = []
    for i in range(n):
        if mode.startswith("merge"):
            path = root / f"img{i:04d}.png"
            cv2.imwrite(str(path), rng.integers(0, 256, (256, 256), dtype=np.uint8))
            files.append([path])
        else:
            paths = []
            for c in range(3):
                path = root / f"img{i:04d}_w{c}.tif"
                tifffile.imwrite(path, rng.integers(0, 4096, (512, 512), dtype=np.uint16))
                paths.append(path)
            files.append(paths)
    return files


def bare_forward(backbone, n_images: int, batch_size: int) -> float:
    """Images/s of the model alone on preprocessed 224² batches (channels_last)."""
    model = backbone.model.eval().to(memory_format=torch.channels_last)
    x = backbone.preprocess(torch.rand(batch_size, 1, 224, 224))
    x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        model(x)  # warm-up
        start = time.perf_counter()
        done = 0
        while done < n_images:
            model(x)
            done += batch_size
    return done / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=192)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--mode", default="merge-norm", choices=sorted(MODES))
    parser.add_argument("--model", default="efficientnet_b0")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(1)
    backbone = create_backbone(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        files = write_inputs(Path(tmp), args.n, args.mode, np.random.default_rng(0))
        per_image = 3 if args.mode.startswith("concat") else 1
        extract_features(backbone, files[: args.batch_size], MODES[args.mode], 224,
                         batch_size=args.batch_size, progress=False)  # fmt: skip
        start = time.perf_counter()
        extract_features(backbone, files, MODES[args.mode], 224, batch_size=args.batch_size,
                         workers=args.workers, progress=False)  # fmt: skip
        pipeline = args.n * per_image / (time.perf_counter() - start)
    bare = bare_forward(backbone, args.n * per_image, args.batch_size)
    print(
        f"model {args.model}, mode {args.mode}, {args.n} images x {per_image} inputs, "
        f"batch {args.batch_size}, torch threads {args.threads}, loader threads {args.workers}"
    )
    print(f"bare forward (channels_last)   {bare:8.1f} inputs/s")
    print(f"extract_features pipeline      {pipeline:8.1f} inputs/s")
    print(f"pipeline / bare forward        {pipeline / bare:8.2f}   (target >= 0.9)")
    if args.json:
        record = {"bare": bare, "pipeline": pipeline, "ratio": pipeline / bare, **vars(args)}
        args.json.write_text(json.dumps(record, default=str))


if __name__ == "__main__":
    main()
