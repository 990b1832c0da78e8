"""Batch feature extraction: images → pooled penultimate-layer features.

Reading and preparing the next batch runs in a thread pool while the model works on the
current one (OpenCV and tifffile release the GIL), so the model is not starved; images of the
same shape are batched together, which lets ``--size native`` feed whole fields of mixed
sizes without resizing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from cytoimagenet.errors import ConfigError
from cytoimagenet.features.inputs import Mode, mode_inputs
from cytoimagenet.features.planes import FieldSource, FileFields

if TYPE_CHECKING:
    import torch

    from cytoimagenet.models.factory import Backbone


def _chunks(n: int, size: int) -> Iterator[range]:
    for start in range(0, n, size):
        yield range(start, min(start + size, n))


def _forward(
    backbone: Backbone, images: list[np.ndarray], device: torch.device, channels_last: bool
) -> np.ndarray:
    import torch

    x = torch.from_numpy(np.stack(images)[:, None]).to(device)
    x = backbone.preprocess(x)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return backbone.model(x).float().cpu().numpy()


def extract_features(
    backbone: Backbone,
    files: Sequence[Sequence[Path]] | FieldSource,
    mode: Mode,
    size: int | None,
    *,
    batch_size: int = 32,
    workers: int = 2,
    device: str = "cpu",
    channels_last: bool = True,
    progress: bool = True,
) -> np.ndarray:
    """Return an ``(images, inputs × features)`` float32 array for the images in ``files``.

    Parameters
    ----------
    files : sequence of sequences of Path, or FieldSource
        The channel files of each image, or any source of planes (crops of files, flat-field
        corrected files, arrays: :mod:`cytoimagenet.features.planes`).
    mode : Mode
        Concat or merge, normalised or raw (see :mod:`cytoimagenet.features.inputs`).
    size : int or None
        Resize inputs to ``size`` × ``size``; ``None`` feeds them at native size.
    batch_size : int
        Images per model batch (per shape group).
    workers : int
        Threads that read and prepare images ahead of the model.
    """
    import torch

    fields = files if isinstance(files, FieldSource) else FileFields(files)
    if not len(fields):
        raise ConfigError("no images to extract features from")
    dev = torch.device(device)
    model = backbone.model.eval().to(dev)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    width = backbone.num_features
    n_inputs = len(mode_inputs(fields.planes(0), mode, size))
    out = np.empty((len(fields), n_inputs * width), np.float32)

    def load(rows: range) -> list[list[np.ndarray]]:
        return [mode_inputs(fields.planes(i), mode, size) for i in rows]

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(fields), unit="img", desc="extract")
    chunks = list(_chunks(len(fields), batch_size))
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool, torch.inference_mode():
        # One chunk is prepared per worker ahead of the model; no more, to bound memory.
        ahead: list[Future] = [pool.submit(load, c) for c in chunks[: max(1, workers)]]
        for i, rows in enumerate(chunks):
            inputs = ahead.pop(0).result()
            nxt = i + len(ahead) + 1
            if nxt < len(chunks):
                ahead.append(pool.submit(load, chunks[nxt]))
            groups: dict[tuple[int, ...], list[tuple[int, int, np.ndarray]]] = defaultdict(list)
            for row, images in zip(rows, inputs, strict=True):
                if len(images) != n_inputs:
                    raise ConfigError(
                        f"{fields.name(row)}: {len(images)} channel planes, but earlier images "
                        f"had {n_inputs}; concat modes need the same channels for every image"
                    )
                for c, image in enumerate(images):
                    groups[image.shape].append((row, c, image))
            for members in groups.values():
                for start in range(0, len(members), batch_size):
                    part = members[start : start + batch_size]
                    feats = _forward(backbone, [m[2] for m in part], dev, channels_last)
                    for (row, c, _), f in zip(part, feats, strict=True):
                        out[row, c * width : (c + 1) * width] = f
            if bar is not None:
                bar.update(len(rows))
    if bar is not None:
        bar.close()
    return out


def zscore(features: np.ndarray) -> np.ndarray:
    """Z-score every column over the rows (constant columns become 0)."""
    mean = features.mean(axis=0, dtype=np.float64)
    std = features.std(axis=0, dtype=np.float64)
    std[std == 0] = 1.0
    return ((features - mean) / std).astype(np.float32)


def fuse(parts: Sequence[np.ndarray]) -> np.ndarray:
    """Fuse feature sets as the paper does: z-score each, then concatenate them."""
    return np.concatenate([zscore(p) for p in parts], axis=1)
