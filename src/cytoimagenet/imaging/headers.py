"""Image sizes from file headers, read before any pixel is decoded.

A 3.7 MB zlib TIFF can hold a 40000 × 40000 plane: decoding it first and checking its size
afterwards costs gigabytes of memory (enough for the OOM killer). These functions read only
the header (a few hundred bytes, or a TIFF's tags), so the build can quarantine such a file
with reason ``too-large`` for the price of opening it.

Each returns the ``(height, width)`` of the largest plane in the file, or ``None`` when the
header cannot be understood (the decoder then reports the file as unreadable, or the size is
checked after decoding).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path
from typing import Final

Shape = tuple[int, int]

#: JPEG start-of-frame markers (baseline, progressive, lossless, arithmetic …); not DHT/DAC.
_JPEG_SOF: Final = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}

#: DeltaVision files carry this id at byte 96, in their own byte order.
_DV_ID: Final = 0xC0A0


def tiff_shape(path: Path) -> Shape | None:
    """Largest ``(height, width)`` over a TIFF's (or FLEX's) pages, from their tags only."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        shapes = [(int(p.imagelength), int(p.imagewidth)) for p in tif.pages]  # type: ignore[union-attr]
    return max(shapes, key=lambda s: s[0] * s[1]) if shapes else None


def png_shape(path: Path) -> Shape | None:
    """``(height, width)`` from a PNG's IHDR chunk."""
    with Path(path).open("rb") as fh:
        head = fh.read(24)
    if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", head[16:24])
    return height, width


def bmp_shape(path: Path) -> Shape | None:
    """``(height, width)`` from a BMP/DIB header (core or info header; height may be negative)."""
    with Path(path).open("rb") as fh:
        head = fh.read(26)
    if len(head) < 26 or head[:2] != b"BM":
        return None
    (size,) = struct.unpack("<I", head[14:18])
    if size == 12:  # BITMAPCOREHEADER: 16-bit sides
        width, height = struct.unpack("<HH", head[18:22])
    else:
        width, height = struct.unpack("<ii", head[18:26])
    return abs(height), abs(width)


def jpeg_shape(path: Path) -> Shape | None:
    """``(height, width)`` from a JPEG's start-of-frame segment (skipping EXIF and the rest)."""
    with Path(path).open("rb") as fh:
        if fh.read(2) != b"\xff\xd8":
            return None
        while True:
            byte = fh.read(1)
            while byte == b"\xff":  # fill bytes before a marker
                byte = fh.read(1)
            if not byte:
                return None
            marker = byte[0]
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
                continue
            if marker == 0xD9:
                return None
            size = fh.read(2)
            if len(size) < 2:
                return None
            (length,) = struct.unpack(">H", size)
            if marker in _JPEG_SOF:
                body = fh.read(5)
                if len(body) < 5:
                    return None
                height, width = struct.unpack(">HH", body[1:5])
                return height, width
            fh.seek(length - 2, 1)


def dv_shape(path: Path) -> Shape | None:
    """``(height, width)`` of a DeltaVision section (``nx``, ``ny`` of its MRC header)."""
    with Path(path).open("rb") as fh:
        head = fh.read(98)
    if len(head) < 98:
        return None
    for order in "<>":
        if struct.unpack(f"{order}H", head[96:98])[0] == _DV_ID:
            nx, ny = struct.unpack(f"{order}ii", head[0:8])
            return (ny, nx) if nx > 0 and ny > 0 else None
    return None


#: File suffix → header reader (suffixes lower-case). A format not listed is checked after
#: decoding only.
HEADERS: Final[dict[str, Callable[[Path], Shape | None]]] = {
    ".tif": tiff_shape,
    ".tiff": tiff_shape,
    ".flex": tiff_shape,
    ".png": png_shape,
    ".jpg": jpeg_shape,
    ".jpeg": jpeg_shape,
    ".bmp": bmp_shape,
    ".dib": bmp_shape,
    ".dv": dv_shape,
}


def header_shape(path: Path) -> Shape | None:
    """Return the largest plane's ``(height, width)`` from ``path``'s header, if known.

    Never raises for a corrupt file: the decoder names that problem better.
    """
    reader = HEADERS.get(Path(path).suffix.lower())
    if reader is None:
        return None
    try:
        return reader(Path(path))
    except Exception:  # a corrupt header is the decoder's to report, as "unreadable"
        return None
