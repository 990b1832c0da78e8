"""A small name → object registry that refuses duplicates and lists valid names on a miss."""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from typing import Generic, TypeVar

from cytoimagenet.errors import UnknownSourceError

T = TypeVar("T")


class Registry(Generic[T]):
    """Map lowercase names to objects.

    Parameters
    ----------
    kind : str
        What the registry holds, used in error messages (e.g. ``"source"``).

    Examples
    --------
    >>> reg: Registry[int] = Registry("number")
    >>> reg.register("one", 1)
    >>> reg.get("one")
    1
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str, item: T) -> None:
        """Add ``item`` under ``name``; a second registration of a name is a bug."""
        key = name.lower()
        if key in self._items:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._items[key] = item

    def get(self, name: str) -> T:
        """Return the item called ``name``.

        Raises
        ------
        UnknownSourceError
            If no such name is registered; the message suggests close matches.
        """
        key = name.lower()
        try:
            return self._items[key]
        except KeyError:
            close = difflib.get_close_matches(key, self._items, n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise UnknownSourceError(
                f"unknown {self.kind} {name!r}.{hint} "
                f"Valid names: {', '.join(sorted(self._items))}."
            ) from None

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def names(self) -> list[str]:
        """Return the registered names, sorted."""
        return sorted(self._items)
