"""Encode and write 8-bit grey PNGs with OpenCV's fast default settings, atomically."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Temporary files carry this marker so an interrupted build can sweep them away.
TMP_MARKER = ".tmp-"


@dataclass(frozen=True)
class WrittenFile:
    """What was written: size in bytes and sha256 of the content."""

    nbytes: int
    sha256: str


def encode_png(image: np.ndarray) -> bytes:
    """Encode a 2-D ``uint8`` image as PNG.

    OpenCV's default (zlib level 1, RLE strategy) is about 10× faster than Pillow's default
    at a similar size, which matters because encoding dominates the per-image cost.
    """
    import cv2

    if image.dtype != np.uint8 or image.ndim != 2:
        raise ValueError(f"expected a 2-D uint8 image, got {image.dtype} {image.shape}")
    ok, buf = cv2.imencode(".png", image)
    if not ok:
        raise RuntimeError("OpenCV failed to encode a PNG")
    return buf.tobytes()


def write_bytes_atomic(path: Path, data: bytes) -> WrittenFile:
    """Write ``data`` to ``path`` through a temporary name in the same folder, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}{TMP_MARKER}{os.getpid()}")
    with tmp.open("wb") as handle:
        handle.write(data)
    tmp.replace(path)
    return WrittenFile(nbytes=len(data), sha256=hashlib.sha256(data).hexdigest())


def write_png(path: Path, image: np.ndarray) -> WrittenFile:
    """Encode ``image`` and write it atomically to ``path``."""
    return write_bytes_atomic(path, encode_png(image))
