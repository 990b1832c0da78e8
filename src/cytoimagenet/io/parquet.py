"""Read Parquet tables so a damaged file is one error naming it, not a Rust panic on stderr.

polars panics on some damaged files (a page length past its buffer …): Rust's panic hook
writes "thread … panicked at …" and, with ``RUST_BACKTRACE`` set, a backtrace straight to file
descriptor 2, and Python then sees ``PanicException``, a ``BaseException`` that names no file.
:func:`read_parquet` holds what native code writes to descriptor 2 while it reads: on success
it is passed on unchanged (warnings are not lost), after a failure it is dropped and the error
says which file is damaged.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import polars as pl
from polars.exceptions import PanicException, PolarsError

from cytoimagenet.errors import SchemaError

# Descriptor 2 is one per process: two readers swapping it at once would restore it wrongly.
_FD_LOCK = threading.Lock()


@contextmanager
def native_stderr_held() -> Iterator[None]:
    """Hold what anything writes to file descriptor 2; pass it on only if the block succeeds."""
    with _FD_LOCK, tempfile.TemporaryFile() as held:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(held.fileno(), 2)
        ok = False
        try:
            yield
            ok = True
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            if ok:
                held.seek(0)
                if data := held.read():
                    os.write(2, data)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:160] if text else type(exc).__name__


def read_parquet(path: Path | str, *, columns: Sequence[str] | None = None) -> pl.DataFrame:
    """Read a Parquet file with polars, naming the file when it is missing or damaged.

    Raises
    ------
    SchemaError
        When the file cannot be read (missing, not Parquet, truncated, damaged).
    """
    path = Path(path)
    try:
        with native_stderr_held():
            return pl.read_parquet(path, columns=list(columns) if columns else None)
    except FileNotFoundError:
        raise SchemaError(f"{path}: no such Parquet file") from None
    except (PanicException, PolarsError, OSError) as exc:
        raise SchemaError(
            f"{path}: cannot be read, the Parquet file is corrupt or truncated "
            f"({_reason(exc)}); re-create it, or download it again"
        ) from None
