"""Exclusion rules of a k-NN search: pairs of (query, training row) that may not be neighbours.

Each rule sets the forbidden similarities of one block of queries to −inf, so a search over
``n`` rows never holds an ``n × n`` mask for the group rules: same group (e.g. compound),
overlapping group sets (e.g. batches), leave-one-out, or a dense mask for small problems.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from cytoimagenet.errors import ConfigError


class Exclusion(Protocol):
    """A rule that forbids some (query, training row) pairs."""

    def apply(self, scores: np.ndarray, start: int) -> None:
        """Set the forbidden similarities of queries ``start:start+len(scores)`` to −inf."""


@dataclass(frozen=True)
class SelfExclusion:
    """Leave-one-out: query ``i`` may not be its own neighbour (queries = training rows)."""

    def apply(self, scores: np.ndarray, start: int) -> None:  # noqa: D102
        rows = np.arange(scores.shape[0])
        scores[rows, start + rows] = -np.inf


@dataclass(frozen=True)
class GroupExclusion:
    """Forbid pairs with equal integer group codes (e.g. the same compound)."""

    query_codes: np.ndarray
    train_codes: np.ndarray

    def apply(self, scores: np.ndarray, start: int) -> None:  # noqa: D102
        stop = start + scores.shape[0]
        scores[self.query_codes[start:stop, None] == self.train_codes[None, :]] = -np.inf


@dataclass(frozen=True)
class OverlapExclusion:
    """Forbid pairs whose item sets intersect (one-hot rows over the items, e.g. batches)."""

    query_items: np.ndarray
    train_items: np.ndarray

    def apply(self, scores: np.ndarray, start: int) -> None:  # noqa: D102
        stop = start + scores.shape[0]
        shared = self.query_items[start:stop] @ self.train_items.T
        scores[shared > 0] = -np.inf


@dataclass(frozen=True)
class MaskExclusion:
    """Forbid the pairs set in a dense boolean ``(n_query, n_train)`` mask."""

    mask: np.ndarray

    def apply(self, scores: np.ndarray, start: int) -> None:  # noqa: D102
        scores[self.mask[start : start + scores.shape[0]]] = -np.inf


def _codes(query: Sequence[Hashable], train: Sequence[Hashable]) -> tuple[np.ndarray, np.ndarray]:
    index: dict[Hashable, int] = {}
    q = np.array([index.setdefault(v, len(index)) for v in query], dtype=np.int64)
    t = np.array([index.setdefault(v, len(index)) for v in train], dtype=np.int64)
    return q, t


def exclude_same(query: Sequence[Hashable], train: Sequence[Hashable] | None = None) -> Exclusion:
    """Exclude training rows of the query's group (``train`` defaults to ``query``)."""
    q, t = _codes(list(query), list(query if train is None else train))
    return GroupExclusion(q, t)


def exclude_overlap(
    query: Sequence[frozenset[Hashable]], train: Sequence[frozenset[Hashable]] | None = None
) -> Exclusion:
    """Exclude training rows sharing any item with the query's set (e.g. any batch)."""
    train = query if train is None else train
    items = sorted({i for s in [*query, *train] for i in s}, key=str)
    pos = {item: j for j, item in enumerate(items)}

    def onehot(sets: Sequence[frozenset[Hashable]]) -> np.ndarray:
        out = np.zeros((len(sets), len(items)), dtype=np.float32)
        for r, s in enumerate(sets):
            out[r, [pos[i] for i in s]] = 1.0
        return out

    return OverlapExclusion(onehot(query), onehot(train))


def as_exclusions(exclude: object, n_query: int, n_train: int, same: bool) -> list[Exclusion]:
    """Normalise an ``exclude`` argument: None, ``"self"``, a rule, a bool mask, or a list."""
    if exclude is None:
        return []
    if isinstance(exclude, str):
        if exclude != "self":
            raise ConfigError(f"exclude={exclude!r}: the only named rule is 'self'")
        if not same:
            raise ConfigError("exclude='self' needs the queries to be the training rows")
        return [SelfExclusion()]
    if isinstance(exclude, np.ndarray):
        if exclude.shape != (n_query, n_train) or exclude.dtype != bool:
            raise ConfigError(f"an exclusion mask must be bool {(n_query, n_train)}")
        return [MaskExclusion(exclude)]
    if isinstance(exclude, list | tuple):
        return [r for e in exclude for r in as_exclusions(e, n_query, n_train, same)]
    return [exclude]  # type: ignore[list-item]
