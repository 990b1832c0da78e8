"""Stable hashes: the same input gives the same number on every machine and Python run."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def stable_hash(*parts: object) -> int:
    """Return a 63-bit integer hash of ``parts`` (their ``str``), independent of PYTHONHASHSEED.

    Examples
    --------
    >>> stable_hash("bbbc021-Week1_A01_s1") == stable_hash("bbbc021-Week1_A01_s1")
    True
    """
    text = "\x1f".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little") >> 1


def hashed_share(sizes: Iterable[tuple[str, int]], want: int, seed: int) -> set[str]:
    """Pick groups in the order of their stable hash until they hold ``want`` members.

    The split rule of the build and of the published layout: the choice depends on the group
    keys and the seed only, never on row order or on other classes.

    Examples
    --------
    >>> groups = [("a", 2), ("b", 2), ("c", 2)]
    >>> hashed_share(groups, 3, 0) == hashed_share(groups[::-1], 3, 0)
    True
    >>> len(hashed_share(groups, 3, 0))  # whole groups: 2 + 2 members reach 3
    2
    """
    chosen: set[str] = set()
    taken = 0
    for key, size in sorted(sizes, key=lambda r: stable_hash(seed, "split", r[0])):
        if taken >= want:
            break
        chosen.add(key)
        taken += size
    return chosen
