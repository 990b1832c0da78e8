"""Write byte-exact DeltaVision ``.dv`` files per the published header layout (either endian).

DeltaVision (Applied Precision / GE "IVE" format, an MRC variant): a 1024-byte header, an
extended header of ``NumIntegers`` 4-byte ints and ``NumFloats`` 4-byte floats per section,
then the sections, each ``ny`` rows of ``nx`` pixels. Offsets below are the header's, from
the priism/IVE documentation of the format (0-based bytes); every field not named is zero.
This module is the script that makes the DV fixtures of the tests: it is independent of the
reader's library, so a reader that got the layout wrong fails against it.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Final

import numpy as np

#: Pixel type codes (header ``mode``) by numpy dtype.
MODES: Final = {
    np.dtype(np.uint8): 0,
    np.dtype(np.int16): 1,
    np.dtype(np.float32): 2,
    np.dtype(np.uint16): 6,
    np.dtype(np.int32): 7,
}
#: The DeltaVision ID at byte 96; as read in the file's own byte order.
DVID: Final = -16224  # 0xC0A0
#: ImgSequence → the order sections are stored in, slowest axis first (numpy order).
SEQUENCES: Final = {0: "CTZ", 1: "TZC", 2: "TCZ"}  # 0 = ZTW, 1 = WZT, 2 = ZWT (fastest first)
#: Fields of the 1024-byte header: (byte offset, struct code, name).
HEADER: Final = (
    (0, "i", "nx"),
    (4, "i", "ny"),
    (8, "i", "nsections"),
    (12, "i", "mode"),
    (28, "i", "mx"),
    (32, "i", "my"),
    (36, "i", "mz"),
    (40, "f", "dx"),
    (44, "f", "dy"),
    (48, "f", "dz"),
    (52, "f", "alpha"),
    (56, "f", "beta"),
    (60, "f", "gamma"),
    (64, "i", "mapc"),
    (68, "i", "mapr"),
    (72, "i", "maps"),
    (76, "f", "min"),
    (80, "f", "max"),
    (84, "f", "mean"),
    (92, "i", "next"),  # extended header size in bytes
    (96, "h", "dvid"),
    (128, "h", "nint"),
    (130, "h", "nfloat"),
    (180, "h", "ntimes"),
    (182, "h", "imgsequence"),
    (196, "h", "nwaves"),
    (198, "h", "wave1"),
    (200, "h", "wave2"),
    (202, "h", "wave3"),
    (220, "i", "ntitles"),
)
#: Floats per section that DeltaVision writes (photosensor, time, stage x/y/z, min, max,
#: mean, exposure, ND filter, excitation, emission, intensity scale, energy factor …).
EXT_INTS: Final = 8
EXT_FLOATS: Final = 32


def write_dv(
    path: Path,
    stack: np.ndarray,
    *,
    byte_order: str = "<",
    sequence: int = 0,
    ext_header: bool = True,
    title: str = "cytoimagenet test fixture",
) -> Path:
    """Write ``stack`` (shape ``(C, T, Z, Y, X)``) as a DeltaVision file.

    Parameters
    ----------
    byte_order : {"<", ">"}
        Little- or big-endian (DeltaVision files of both kinds exist).
    sequence : {0, 1, 2}
        ``ImgSequence``: 0 ZTW (z fastest), 1 WZT (wavelength fastest), 2 ZWT.
    ext_header : bool
        Write the usual 8 ints + 32 floats per section (exposure, wavelengths …).
    """
    c, t, z, ny, nx = stack.shape
    n = c * t * z
    dtype = stack.dtype
    values = {
        "nx": nx,
        "ny": ny,
        "nsections": n,
        "mode": MODES[np.dtype(dtype)],
        "mx": nx,
        "my": ny,
        "mz": z,
        "dx": 0.08,
        "dy": 0.08,
        "dz": 0.2,
        "alpha": 90.0,
        "beta": 90.0,
        "gamma": 90.0,
        "mapc": 1,
        "mapr": 2,
        "maps": 3,
        "min": float(stack.min()),
        "max": float(stack.max()),
        "mean": float(stack.mean()),
        "next": n * (EXT_INTS + EXT_FLOATS) * 4 if ext_header else 0,
        "dvid": DVID,
        "nint": EXT_INTS if ext_header else 0,
        "nfloat": EXT_FLOATS if ext_header else 0,
        "ntimes": t,
        "imgsequence": sequence,
        "nwaves": c,
        "wave1": 435,
        "wave2": 528 if c > 1 else 0,
        "wave3": 617 if c > 2 else 0,
        "ntitles": 1,
    }
    header = bytearray(1024)
    for offset, code, name in HEADER:
        struct.pack_into(byte_order + code, header, offset, values[name])
    header[224 : 224 + len(title)] = title.encode("ascii")
    order = SEQUENCES[sequence]
    stored = np.transpose(stack, ["CTZ".index(a) for a in order] + [3, 4])
    extended = b""
    if ext_header:
        per = np.zeros((n, EXT_INTS + EXT_FLOATS), dtype=byte_order + "f4")
        planes = stored.reshape(n, ny, nx)
        per[:, EXT_INTS + 5] = planes.min(axis=(1, 2))  # min, max, mean intensity
        per[:, EXT_INTS + 6] = planes.max(axis=(1, 2))
        per[:, EXT_INTS + 7] = planes.mean(axis=(1, 2))
        per[:, EXT_INTS + 8] = 0.05  # exposure time (s)
        extended = per.tobytes()
    data = np.ascontiguousarray(stored).astype(dtype.newbyteorder(byte_order), copy=False)
    path.write_bytes(bytes(header) + extended + data.tobytes())
    return path
