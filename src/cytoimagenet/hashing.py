"""Stable hashes: the same input gives the same number on every machine and Python run."""

from __future__ import annotations

import hashlib


def stable_hash(*parts: object) -> int:
    """Return a 63-bit integer hash of ``parts`` (their ``str``), independent of PYTHONHASHSEED.

    Examples
    --------
    >>> stable_hash("bbbc021-Week1_A01_s1") == stable_hash("bbbc021-Week1_A01_s1")
    True
    """
    text = "\x1f".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little") >> 1
