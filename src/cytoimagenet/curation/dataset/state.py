"""The build's state folder, ``OUT/.build/``: the output check, the lock and the plan.

* ``lock`` — held (``flock``, exclusive, non-blocking) for the whole run, so two builds
  never write into one folder; the kernel releases it when the holder dies, SIGKILL
  included, and the file is removed when a run ends.
* ``plan.json`` — the settings that decide the output and the labels table's checksum. A
  second run with other settings refuses to mix its files into this build; a damaged plan
  is refused too, since nothing on disk can then be matched to any settings.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path

from cytoimagenet.curation.dataset.records import fsync_path
from cytoimagenet.errors import ConfigError
from cytoimagenet.io.atomic import atomic_path

STATE_DIR = ".build"


def check_out(out: Path) -> None:
    """Refuse an ``--out`` that is a file or lies under one, before any work.

    Raises
    ------
    ConfigError
        Naming the file in the way.
    """
    for place in (out, *out.parents):
        if place.exists() or place.is_symlink():
            if not place.is_dir():
                where = "is a file" if place == out else f"lies under {place}, which is a file"
                raise ConfigError(f"--out {out} {where}, not a folder; choose another --out folder")
            return


def open_state(out: Path) -> Path:
    """Return ``OUT/.build`` (created), refusing a non-empty folder that holds no build.

    Raises
    ------
    ConfigError
        If ``out`` holds other files but no build state.
    """
    state = out / STATE_DIR
    if not state.is_dir() and out.is_dir() and any(out.iterdir()):
        raise ConfigError(f"{out} is not empty and holds no build; choose an empty --out folder")
    (state / "shards").mkdir(parents=True, exist_ok=True)
    return state


@contextlib.contextmanager
def build_lock(state: Path) -> Iterator[Path]:
    """Hold ``state/lock`` exclusively for the duration of the block.

    Raises
    ------
    ConfigError
        If another run holds it (one line, naming the folder and what to do).
    """
    path = state / "lock"
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ConfigError(
                f"{state.parent}: another `cytoimagenet build` is writing into this folder "
                f"(it holds {path}); wait for it to finish, or use another --out"
            ) from None
        # A run that just finished may have removed the file we opened: then our lock is on
        # a file nobody else will see, so lock the one that is there now.
        try:
            current = path.stat().st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            current = False
        if current:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())  # who holds it, for a curious user
        yield path
    finally:
        path.unlink(missing_ok=True)  # before releasing, so no one locks a removed file
        os.close(fd)


def _read_plan(plan_file: Path, out: Path) -> dict[str, object]:
    try:
        plan = json.loads(plan_file.read_text(encoding="utf-8"))
        problem = None if isinstance(plan, dict) else "not a JSON object"
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        plan, problem = None, f"{type(exc).__name__}: {exc}"
    if problem is not None:
        raise ConfigError(
            f"{plan_file} is damaged ({problem}), so the files in {out} cannot be matched to "
            f"any settings; delete the folder {out} and run the build again"
        )
    return plan  # type: ignore[return-value]


def claim_plan(out: Path, state: Path, plan: dict[str, object]) -> None:
    """Record ``plan`` in a new build, or check that it is the plan of the build in ``out``.

    Raises
    ------
    ConfigError
        If ``out`` holds a build with other settings, or its plan is damaged.
    """
    plan_file = state / "plan.json"
    if plan_file.is_file():
        previous = _read_plan(plan_file, out)
        if previous != plan:
            changed = sorted(k for k in {*plan, *previous} if previous.get(k) != plan.get(k))
            raise ConfigError(
                f"{out} holds a build with other settings ({', '.join(changed)} differ); "
                "use a new --out, or delete that folder to start over"
            )
        return
    with atomic_path(plan_file) as tmp:
        tmp.write_text(json.dumps(plan, indent=2, sort_keys=True))
        fsync_path(tmp)
    fsync_path(state)
