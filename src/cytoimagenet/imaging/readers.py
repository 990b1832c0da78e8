"""Read microscopy image files at full bit depth as 2-D grey planes.

Every reader returns a list of 2-D planes: one for a single-page grey file, one per page of a
multi-page TIFF or FLEX (pages are channels or z-planes; both are merged the same way), and one
for an RGB(A) file, which becomes grey by the mean of its colour channels. Nothing is ever
truncated to 8 bits: 16-bit PNG and TIFF keep their values (the original read them through an
8-bit path and kept 16 grey levels of 12-bit data).

Readers are chosen by file suffix from :data:`READERS`; adding a format is one entry.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final

import numpy as np

from cytoimagenet.errors import CytoImageNetError

Plane = np.ndarray

#: TIFF tag that holds the Opera/Evotec FLEX XML.
FLEX_XML_TAG: Final = 65200

#: Compressions that OpenCV's libtiff decodes faster than tifffile (measured: LZW 2x).
_LIBTIFF_FASTER: Final = frozenset({5})  # 5 = LZW


class ImageReadError(CytoImageNetError):
    """An image file is missing, truncated or in a form we cannot decode.

    Attributes
    ----------
    path : Path
        The offending file.
    reason : str
        Short machine-friendly reason (``missing``, ``unreadable``, ``unsupported`` …).
    """

    def __init__(self, path: Path, reason: str, detail: str = "") -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}" + (f" ({detail})" if detail else ""))


def _grey(array: np.ndarray) -> list[Plane]:
    """Split a decoded array into 2-D grey planes; colour becomes the channel mean."""
    if array.ndim == 2:
        return [array]
    if array.ndim == 3 and array.shape[-1] in (3, 4):
        # RGB(A): mean of the colour channels; alpha carries no signal.
        return [array[..., :3].mean(axis=-1, dtype=np.float32)]
    if array.ndim == 3:
        return list(array)
    if array.ndim >= 4:
        return _grey(array.reshape(-1, *array.shape[-2:]))
    raise ValueError(f"cannot make grey planes from an array of shape {array.shape}")


def _flex_factors(xml: str, n_pages: int) -> list[float] | None:
    """Per-page intensity factors of FLEX ``<Array … Factor="…">`` elements, if any."""
    factors = [float(f) for f in re.findall(r"<Array\b[^>]*\bFactor=\"([0-9.eE+-]+)\"", xml)]
    return factors if len(factors) == n_pages else None


def _tiff_page_planes(page: object) -> list[Plane]:
    """Grey planes of one TIFF page, using its tags rather than guessing from the shape."""
    import tifffile

    array = page.asarray()  # type: ignore[attr-defined]
    samples = int(page.samplesperpixel)  # type: ignore[attr-defined]
    if samples == 1:
        return [array] if array.ndim == 2 else list(array.reshape(-1, *array.shape[-2:]))
    if page.planarconfig == tifffile.PLANARCONFIG.CONTIG:  # type: ignore[attr-defined]
        array = np.moveaxis(array, -1, 0)  # samples first, like the separate layout
    array = array.reshape(-1, samples, *array.shape[-2:])  # (depth, samples, H, W)
    extra = len(page.extrasamples)  # type: ignore[attr-defined]
    colour = samples - extra
    if page.photometric == tifffile.PHOTOMETRIC.RGB and colour >= 3:  # type: ignore[attr-defined]
        # RGB: grey is the mean of the colour samples; alpha carries no signal.
        return list(array[:, :3].mean(axis=1, dtype=np.float32))
    # Other multi-sample pages: each colour sample is a channel of its own.
    return [plane for volume in array for plane in volume[:colour]]


def _read_with_libtiff(path: Path, shape: tuple[int, ...], dtype: np.dtype) -> Plane | None:
    """Decode a single-plane TIFF with OpenCV's libtiff; ``None`` if it disagrees on layout."""
    import cv2

    plane = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if plane is None or plane.shape != shape or plane.dtype != dtype:
        return None
    return plane


def _read_tiff(path: Path) -> list[Plane]:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        if not tif.pages:
            raise ValueError("no pages")
        page = tif.pages[0]
        xml_tag = page.tags.get(FLEX_XML_TAG)  # type: ignore[union-attr]
        xml = str(xml_tag.value) if xml_tag is not None else None
        single = (
            len(tif.pages) == 1
            and xml is None
            and page.samplesperpixel == 1  # type: ignore[union-attr]
            and page.compression in _LIBTIFF_FASTER  # type: ignore[union-attr]
        )
        if single:
            layout = (page.shape, page.dtype)  # type: ignore[union-attr]
        else:
            planes = [p for page in tif.pages for p in _tiff_page_planes(page)]
    if single:
        # libtiff decodes LZW about twice as fast as tifffile's codec, with the same result.
        plane = _read_with_libtiff(path, *layout)
        if plane is not None:
            return [plane]
        with tifffile.TiffFile(path) as tif:
            planes = _tiff_page_planes(tif.pages[0])
    if xml is not None:
        factors = _flex_factors(xml, len(planes))
        if factors and any(f != 1.0 for f in factors):
            # Bio-Formats semantics: 8-bit FLEX planes are scaled by their Factor.
            planes = [p.astype(np.float32) * f for p, f in zip(planes, factors, strict=True)]
    return planes


def _read_cv2(path: Path) -> list[Plane]:
    import cv2

    data = np.fromfile(path, dtype=np.uint8)
    array = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if array is None:
        raise ValueError("OpenCV could not decode it")
    if array.ndim == 3:
        array = array[..., ::-1] if array.shape[-1] == 3 else array  # BGR order; mean is the same
    return _grey(array)


def _read_dv(path: Path) -> list[Plane]:
    # imported on use: imaging/dv.py imports this module (ImageReadError), and needs `mrc`
    from cytoimagenet.imaging.dv import read_dv

    return read_dv(path)


#: File suffix → reader. Suffixes are matched lower-case.
READERS: Final[dict[str, Callable[[Path], list[Plane]]]] = {
    ".tif": _read_tiff,
    ".tiff": _read_tiff,
    ".flex": _read_tiff,
    ".png": _read_cv2,
    ".jpg": _read_cv2,
    ".jpeg": _read_cv2,
    ".bmp": _read_cv2,
    ".dib": _read_cv2,
    ".dv": _read_dv,  # DeltaVision (idr0021, idr0067): imaging/dv.py
}


def _check_size(path: Path, shape: tuple[int, int], max_pixels: int | None) -> None:
    """Refuse a plane over ``max_pixels`` (``too-large``): it would cost gigabytes to decode."""
    if max_pixels is not None and shape[0] * shape[1] > max_pixels:
        raise ImageReadError(
            path,
            "too-large",
            f"{shape[0]} x {shape[1]} = {shape[0] * shape[1]:,} pixels per plane, over "
            f"--max-pixels {max_pixels:,}",
        )


def read_planes(path: Path, max_pixels: int | None = None) -> list[Plane]:
    """Read one image file into grey 2-D planes at full bit depth.

    Parameters
    ----------
    path : Path
        Image file; the format comes from its suffix (see :data:`READERS`).
    max_pixels : int, optional
        Largest plane (height x width) to accept. Checked from the file's header before any
        pixel is decoded (see :mod:`cytoimagenet.imaging.headers`), and again after decoding
        for formats whose header is not parsed.

    Returns
    -------
    list of numpy.ndarray
        One 2-D plane per page (TIFF/FLEX) or one grey plane (PNG, JPEG, BMP/DIB; RGB → mean).

    Raises
    ------
    ImageReadError
        With reason ``missing``, ``unsupported``, ``unreadable`` or ``too-large``.
    """
    path = Path(path)
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise ImageReadError(path, "unsupported", f"no reader for {path.suffix!r} files")
    if not path.is_file():
        raise ImageReadError(path, "missing", "no such file")
    if max_pixels is not None:
        from cytoimagenet.imaging.headers import header_shape

        shape = header_shape(path)
        if shape is not None:
            _check_size(path, shape, max_pixels)
    try:
        planes = reader(path)
    except ImageReadError:
        raise
    except Exception as exc:  # every decoder has its own exceptions; all mean "corrupt"
        raise ImageReadError(path, "unreadable", f"{type(exc).__name__}: {exc}") from None
    if not planes or any(p.ndim != 2 or 0 in p.shape for p in planes):
        raise ImageReadError(path, "unreadable", "no 2-D image data")
    for plane in planes:
        _check_size(path, plane.shape, max_pixels)
    return planes


def read_field(paths: Sequence[Path], max_pixels: int | None = None) -> list[Plane]:
    """Read every channel file of one field of view into a flat list of planes.

    ``max_pixels`` bounds each plane (see :func:`read_planes`).

    Raises
    ------
    ImageReadError
        For the first file that cannot be read, or ``shape-mismatch`` if the planes differ in size.
    """
    if not paths:
        raise ImageReadError(Path(), "missing", "the row lists no channel files")
    planes = [plane for path in paths for plane in read_planes(path, max_pixels)]
    shapes = {p.shape for p in planes}
    if len(shapes) > 1:
        raise ImageReadError(
            Path(paths[0]), "shape-mismatch", f"channel planes have shapes {sorted(shapes)}"
        )
    return planes
