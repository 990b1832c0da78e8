"""Feature column names that profiling tools recognise as they are.

pycytominer's ``features="infer"`` takes the columns that start with a CellProfiler
compartment (``Cells_``, ``Nuclei_``, ``Cytoplasm_``), so every feature file names its
columns

``Cells_CNN_<model>_<channel>_<i>``
    a network's features: ``<model>`` a short token for the weights (``random``,
    ``imagenet``, ``lite0imagenet``, ``cytoimagenet``, a checkpoint's name …), ``<channel>``
    the channel's name (from the images table's ``channels`` column) or ``ch<index>``, and
    ``merged`` for the merge modes, ``<i>`` the unit of the pooled layer (zero-padded);
``Cells_Intensity_<channel>_<stat>``
    the intensity baseline (``Mean``, ``Std``, ``Min``, ``P01`` … ``P99``, ``Max``).

Tokens keep letters and digits only, so ``_`` always separates the parts. Older files named
``feature_00000 …`` read as before: readers take every numeric non-``Metadata_`` column.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Final

COMPARTMENT: Final = "Cells"
MERGED: Final = "merged"
#: File and folder names that say nothing about which weights a checkpoint holds.
_GENERIC: Final = frozenset(
    {"last", "best", "model", "models", "checkpoint", "checkpoints", "weights", "final", "ckpt"}
)


def token(text: str) -> str:
    """Return ``text`` with only its letters and digits (``''`` when none are left).

    Examples
    --------
    >>> token("lite0-imagenet"), token("f_nucleus"), token("Orig DNA")
    ('lite0imagenet', 'fnucleus', 'OrigDNA')
    """
    return re.sub(r"[^A-Za-z0-9]", "", text)


def model_token(spec: str) -> str:
    """Return a short name for a weight spec, for feature column names.

    Named specs keep their name; a path (``keras:PATH``, a checkpoint) gives its file stem,
    or the nearest folder with a telling name when the stem is generic (``last``, ``best``).

    Examples
    --------
    >>> model_token("lite0-imagenet"), model_token("keras:w/effnet_b0.h5")
    ('lite0imagenet', 'effnetb0')
    >>> model_token("runs/pre24/checkpoints/last.pt")
    'pre24'
    """
    spec = spec.removeprefix("keras:")
    if "/" not in spec and "\\" not in spec and "." not in spec:
        return token(spec) or "model"
    path = Path(spec)
    for part in [path.stem, *(p.name for p in path.parents)]:
        if part and part.lower() not in _GENERIC and token(part):
            return token(part)
    return "checkpoint"


def channel_tokens(names: Sequence[str] | None, count: int) -> list[str]:
    """Return ``count`` distinct channel tokens: the given names, else ``ch0``, ``ch1`` ….

    Names are used when there are exactly ``count`` of them and they stay distinct and
    non-empty as tokens.

    Examples
    --------
    >>> channel_tokens(["DAPI", "Tubulin"], 2), channel_tokens(["a_b", "ab"], 2)
    (['DAPI', 'Tubulin'], ['ch0', 'ch1'])
    """
    if names is not None and len(names) == count:
        tokens = [token(n) for n in names]
        if all(tokens) and len(set(tokens)) == count:
            return tokens
    return [f"ch{i}" for i in range(count)]


def cnn_names(model: str, channels: Sequence[str], width: int) -> list[str]:
    """Return ``Cells_CNN_<model>_<channel>_<i>`` for each channel block of ``width`` units.

    Examples
    --------
    >>> cnn_names("imagenet", ["DNA", "Actin"], 1)
    ['Cells_CNN_imagenet_DNA_0000', 'Cells_CNN_imagenet_Actin_0000']
    """
    digits = max(4, len(str(width - 1)))
    return [
        f"{COMPARTMENT}_CNN_{model}_{channel}_{i:0{digits}d}"
        for channel in channels
        for i in range(width)
    ]


def intensity_names(channels: Sequence[str], stats: Sequence[str]) -> list[str]:
    """Return ``Cells_Intensity_<channel>_<stat>`` for every channel and statistic."""
    return [f"{COMPARTMENT}_Intensity_{c}_{s}" for c in channels for s in stats]


def distinct(tokens: Sequence[str]) -> list[str]:
    """Make repeated tokens distinct by a count suffix (``a``, ``a2``, ``a3``).

    Examples
    --------
    >>> distinct(["random", "random", "imagenet"])
    ['random', 'random2', 'imagenet']
    """
    seen: dict[str, int] = {}
    out = []
    for t in tokens:
        seen[t] = seen.get(t, 0) + 1
        out.append(t if seen[t] == 1 else f"{t}{seen[t]}")
    return out
