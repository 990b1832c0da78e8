"""Selective fetch from the Image Data Resource: an Aspera pair list and the one ``ascp`` call.

IDR serves a study's raw files in bulk over Aspera (``fasp.ebi.ac.uk``, port 33001, one
passwordless user ``idrNNNN`` per study whose home is the study's top folder, IDR's public
key ``asperaweb_id_dsa.openssh``) and over anonymous FTP/Globus under
``ftp.ebi.ac.uk/pub/databases/IDR/<study folder>/``; see ``docs/idr-routes.md`` for the
sources. This module never runs anything: :func:`plan_idr` writes the list of the files the
build reads and returns the ``ascp`` argv that fetches exactly them into ``RAW/<source>/``.

The list is an ``ascp --file-pair-list``: a server path (relative to the Aspera user's
home, i.e. the study folder) on one line and its local destination (the channel path,
relative to the target folder ``RAW/<source>/``) on the next. Pairs, rather than
``--file-list`` with ``--src-base``, fix each destination whatever the server's folders are
named, so the files land where ``cytoimagenet build --root RAW`` looks.

Caveat (IDR's own plate tables, ``idrNNNN-screenX-plates.tsv``): the server keeps each
submitter's original folders and instrument files (``201301120/Images/DTT/p1`` for the
plate ``DTT p1`` of idr0003; ``.wpi``/``.flex``/``.HTD`` plates for idr0088/idr0072/idr0081),
which need not match the channel paths. Until a study's server names are mapped, the
server side of each pair is the channel path itself, and the note says to check it.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from cytoimagenet.io.atomic import atomic_path
from cytoimagenet.sources.catalog import RemoteFile, SourceInfo

#: IDR's Aspera server and SSH port (idr.openmicroscopy.org/about/download.html).
ASPERA_HOST = "fasp.ebi.ac.uk"
ASPERA_PORT = "33001"
#: The rate IDR's documented command uses (``-l40m``).
ASPERA_RATE = "40m"
#: IDR's key file, as Aspera Connect installs it; IDR also serves it for download.
ASPERA_KEY = Path.home() / ".aspera" / "connect" / "etc" / "asperaweb_id_dsa.openssh"
KEY_URL = "https://idr.openmicroscopy.org/about/img/aspera/asperaweb_id_dsa.openssh"
IDR_DOWNLOAD = "https://idr.openmicroscopy.org/about/download.html"
#: IDR's FTP tree (also browsed over HTTPS and Globus "EMBL-EBI Public Data").
IDR_FTP = "ftp.ebi.ac.uk/pub/databases/IDR"
#: Where the list goes, relative to ``RAW/<source>/``.
LIST_NAME = ".fetch/aspera-files.txt"
GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class IdrRoute:
    """How to fetch the needed files of one IDR study.

    Attributes
    ----------
    source : str
        Catalog name (``idr0088``), also the Aspera user.
    file_list : Path
        The pair list written: per file, its server path (relative to the study folder)
        on one line and its destination (the channel path) on the next.
    files : int
        How many files it lists.
    command : list of str
        The ``ascp`` argv that fetches exactly them into ``RAW/<source>/``.
    http : list of RemoteFile
        Files a per-file HTTP route serves. Empty: the only HTTP(S) copy is the FTP tree,
        and no study's server paths are mapped to channel paths yet.
    note : str
        What to run and why, for the user.
    skipped : list of str
        Needed paths that could not be listed (glob characters).
    """

    source: str
    file_list: Path
    files: int
    command: list[str]
    http: list[RemoteFile] = field(default_factory=list)
    note: str = ""
    skipped: list[str] = field(default_factory=list)


def plan_idr(
    info: SourceInfo,
    paths: Sequence[str],
    raw: Path,
    *,
    key: Path = ASPERA_KEY,
    ascp: str = "ascp",
) -> IdrRoute:
    """Write the Aspera pair list of ``paths`` and return the ``ascp`` call that fetches them.

    Parameters
    ----------
    info : SourceInfo
        Catalog entry of an IDR study (``access == "idr"``).
    paths : sequence of str
        Needed channel paths, relative to ``RAW/<source>/``, already deduplicated.
    raw : Path
        The raw root; the list goes to ``raw/<source>/.fetch/aspera-files.txt``.
    key : Path
        IDR's Aspera key file ``asperaweb_id_dsa.openssh``.
    ascp : str
        The ``ascp`` executable.

    Returns
    -------
    IdrRoute
        The list written, its size, the argv, and a note for the user.

    Raises
    ------
    ValueError
        If ``info`` is not an IDR study, or a path is absolute, leaves the folder or
        holds a line break (it would corrupt the list).
    """
    if info.access != "idr":
        raise ValueError(f"{info.name}: not an IDR study (access = {info.access!r})")
    listed, skipped = split_listable(paths)
    target = Path(raw) / info.name
    file_list = target / LIST_NAME
    with atomic_path(file_list) as tmp:
        tmp.write_text(pair_lines(listed), encoding="utf-8")
    command = ascp_command(info.name, file_list, target, key=key, ascp=ascp)
    return IdrRoute(
        source=info.name,
        file_list=file_list,
        files=len(listed),
        command=command,
        http=[],
        note=_note(info, len(listed), command, skipped),
        skipped=skipped,
    )


def split_listable(paths: Sequence[str]) -> tuple[list[str], list[str]]:
    """Split ``paths`` into those a list can name and those with glob characters.

    Raises
    ------
    ValueError
        For an absolute path, one with ``..``, a backslash or a line break.
    """
    listed: list[str] = []
    skipped: list[str] = []
    for path in paths:
        pure = PurePosixPath(path)
        if (
            not path
            or pure.is_absolute()
            or ".." in pure.parts
            or "\\" in path
            or any(c in path for c in "\r\n")
        ):
            raise ValueError(f"{path!r}: not a relative channel path inside the source folder")
        (skipped if GLOB_CHARS.intersection(path) else listed).append(pure.as_posix())
    return listed, skipped


def pair_lines(paths: Sequence[str]) -> str:
    """Return the ``--file-pair-list`` text: server path, then destination, per file.

    The server path is the channel path relative to the study folder (the Aspera user's
    home); the destination is the same channel path, relative to the target folder.
    """
    return "".join(f"{path}\n{path}\n" for path in paths)


def ascp_command(
    source: str, file_list: Path, target: Path, *, key: Path = ASPERA_KEY, ascp: str = "ascp"
) -> list[str]:
    """Return the argv of IDR's documented ``ascp`` download, driven by a pair list.

    ``-T -l 40m -P 33001 -i <key>`` are IDR's options (no encryption, 40 Mbps, SSH port
    33001, its key) and ``--policy=fair`` the spelling ``ascp --help`` lists for IDR's
    ``-Q``; ``-k 1`` resumes or skips files already there (same size and time);
    ``--mode=recv --user=<study> --host=fasp.ebi.ac.uk`` name the remote side; each pair's
    destination is relative to ``target`` (``RAW/<source>/``).
    """
    return [
        ascp,
        "-T",
        "--policy=fair",
        "-l",
        ASPERA_RATE,
        "-P",
        ASPERA_PORT,
        "-k",
        "1",
        "-i",
        str(key),
        "--mode=recv",
        f"--user={source}",
        f"--host={ASPERA_HOST}",
        f"--file-pair-list={file_list}",
        str(target),
    ]


def _note(info: SourceInfo, files: int, command: list[str], skipped: list[str]) -> str:
    where = (
        f"the study folder {info.idr_folder} (Aspera user {info.name}'s home; "
        f"{IDR_FTP}/{info.idr_folder}/ over FTP)"
        if info.idr_folder
        else f"the study folder (Aspera user {info.name}'s home; find its name under {IDR_FTP}/)"
    )
    text = (
        f"{info.name}: run `{shlex.join(command)}` (IBM Aspera ascp; key from {KEY_URL}; see "
        f"{IDR_DOWNLOAD}) to fetch the {files} listed files into {command[-1]}/. The server "
        f"paths (first line of each pair in {command[-2].split('=', 1)[1]}) are relative to "
        f"{where} and follow our layout ({info.file_pattern}), but IDR keeps the submitters' "
        f"own folders and files: check them against the study's {info.name}-*-plates.tsv or "
        f"-filePaths.tsv (github.com/IDR) and edit them before running."
    )
    if skipped:
        text += f" Skipped {len(skipped)} path(s) with glob characters, e.g. {skipped[0]!r}."
    return text
