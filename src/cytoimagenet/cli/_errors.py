"""Turn errors into one clear line on stderr and exit code 1, never a traceback."""

from __future__ import annotations

import contextlib
import errno
import functools
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ParamSpec, TypeVar

import typer

from cytoimagenet.errors import CytoImageNetError

P = ParamSpec("P")
R = TypeVar("R")


def _os_error_line(exc: OSError) -> str:
    """``PATH: what happened; what to do`` for an operating-system error."""
    where = exc.filename or ""
    if exc.filename2:
        where = f"{where} -> {exc.filename2}"
    what = exc.strerror or str(exc)
    hint = {
        errno.EACCES: "check the folder's permissions or choose another path",
        errno.EPERM: "check the folder's permissions or choose another path",
        errno.EROFS: "the file system is read-only; choose another path",
        errno.ENOSPC: "free some disk space and run the command again",
        errno.ENOTDIR: "a parent of this path is a file, not a folder; choose another path",
        errno.EISDIR: "expected a file here, found a folder",
        errno.EEXIST: "remove it or choose another path",
    }.get(exc.errno or 0)
    line = f"{where}: {what}" if where else what
    return f"{line}; {hint}" if hint else line


def _panic_types() -> tuple[type[BaseException], ...]:
    # polars raises PanicException (a BaseException) on some corrupt files.
    try:
        from polars.exceptions import PanicException
    except ImportError:  # pragma: no cover - every supported polars has it
        return ()
    return (PanicException,)


@contextlib.contextmanager
def reading(*paths: Path | list[Path] | None) -> Iterator[None]:
    """Name the input table(s) when a table reader panics on a corrupt file.

    polars' ``PanicException`` says what broke inside the reader, never which file; the
    command knows its inputs, so the error line can name them.
    """
    try:
        yield
    except _panic_types() as exc:
        named: list[str] = []
        for item in paths:
            named += [str(p) for p in (item if isinstance(item, list) else [item]) if p]
        where = named[0] if len(named) == 1 else f"one of {', '.join(named)}"
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CytoImageNetError(
            f"{where}: cannot be read, the table looks corrupt or truncated (the reader "
            f"failed: {reason[:160]}); re-create it, or download it again"
        ) from None


def _fail(line: str) -> typer.Exit:
    typer.secho(f"error: {line}", err=True, fg=typer.colors.RED)
    return typer.Exit(code=1)


def friendly(func: Callable[P, R]) -> Callable[P, R]:
    """Wrap a command so errors print one ``error: …`` line (exit 1) instead of a traceback.

    The package's own errors carry their message; operating-system errors (an unwritable
    or missing folder, a full disk) name the path; a panic in a table reader names itself.
    Anything else is a bug and keeps its traceback when ``CYTOIMAGENET_DEBUG`` is set.
    """

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except (typer.Exit, typer.Abort, KeyboardInterrupt, SystemExit):
            raise
        except CytoImageNetError as exc:
            raise _fail(str(exc)) from None
        except OSError as exc:
            raise _fail(_os_error_line(exc)) from None
        except _panic_types() as exc:
            raise _fail(f"a table could not be read (corrupt file?): {exc}") from None
        except MemoryError:
            raise _fail("out of memory; use fewer workers or smaller batches") from None
        except Exception as exc:
            if os.environ.get("CYTOIMAGENET_DEBUG"):
                raise
            raise _fail(
                f"unexpected {type(exc).__name__}: {exc} "
                "(set CYTOIMAGENET_DEBUG=1 for the traceback, and please report it)"
            ) from None

    return wrapper
