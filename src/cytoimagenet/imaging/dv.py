"""Read DeltaVision ``.dv`` files (idr0021, idr0067) at full bit depth as 2-D grey planes.

DeltaVision is an MRC variant: a 1024-byte header whose ``dvid`` field (byte 96, ``0xC0A0``)
marks the file and tells its byte order, an optional extended header of per-section ints and
floats, then the sections. The header also says how the sections interleave wavelengths
(channels), time points and z-planes (``ImgSequence``). Decoding goes through the ``mrc``
package (``mrc.DVFile``), which reads all of this in either byte order; ``mrcfile`` is not
used because it reads DV files only in permissive mode, misses the byte order (it looks for
an MRC2014 machine stamp that DV files do not write) and knows nothing of the interleaving.

Planes come back in the order channel, time, z (every z-plane of the first channel first),
the layout the multi-page TIFF reader gives a channel-major stack; pixel values keep the
stored type (``uint8``, ``int16``, ``uint16``, ``int32`` or ``float32``) in native byte order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import numpy as np

from cytoimagenet.imaging.readers import ImageReadError, Plane

#: Axis order the planes are returned in (before flattening to a list).
PLANE_ORDER: Final = "CTZ"

#: Stored pixel kinds kept as they are; complex sections are not images we can merge.
_REAL_KINDS: Final = frozenset("uif")

MRC_HELP: Final = (
    "reading DeltaVision .dv files needs the `mrc` package (a base dependency of cytoimagenet): "
    "run `pip install 'mrc>=0.4'` in this environment"
)


def read_dv(path: Path) -> list[Plane]:
    """Read every section of a DeltaVision file into 2-D planes, channel-major.

    Parameters
    ----------
    path : Path
        A ``.dv`` file, little- or big-endian, with or without an extended header.

    Returns
    -------
    list of numpy.ndarray
        ``C × T × Z`` planes of shape ``(height, width)``, in the stored pixel type.

    Raises
    ------
    ImageReadError
        ``unsupported`` when the ``mrc`` package is missing or the pixels are complex;
        ``unreadable`` when the header is not DeltaVision's, its counts disagree or the
        file is shorter than the header says.
    """
    path = Path(path)
    try:
        from mrc import DVFile
    except ImportError:
        raise ImageReadError(path, "unsupported", MRC_HELP) from None
    if not DVFile.is_supported_file(str(path)):
        raise ImageReadError(path, "unreadable", "no DeltaVision ID (0xC0A0) at byte 96")
    dv = DVFile(path)  # reads header + extended header, memory-maps the sections
    try:
        header = dv.hdr
        counts = (header.nc or 1) * (header.nt or 1)
        if header.n_sections <= 0 or header.n_sections % counts:
            raise ImageReadError(
                path,
                "unreadable",
                f"{header.n_sections} sections do not split into {header.nc} channels "
                f"× {header.nt} time points",
            )
        if dv.dtype.kind not in _REAL_KINDS:
            raise ImageReadError(path, "unsupported", f"pixel type {dv.dtype} (complex)")
        stored = np.array(dv.data)  # a plain copy, so the memory map can close
    finally:
        dv.close()
    # The memory map's axes follow ImgSequence (e.g. "CTZYX" for ZTW); put channels first.
    axes = dv.axes
    ordered = np.transpose(stored, [axes.index(a) for a in f"{PLANE_ORDER}YX"])
    native = ordered.astype(ordered.dtype.newbyteorder("="), copy=False)
    return list(native.reshape(-1, *native.shape[-2:]))
