"""Fake raw tree of the CIL Kinome Atlas: the authors' file → kinase-group table."""

from __future__ import annotations

from pathlib import Path


def fake_kinome(root: Path) -> int:
    """``cil_kinome_metadata.csv`` with three images of three kinase groups."""
    (root / "cil_kinome_metadata.csv").write_text(
        "file_name,kinase\n53464.zip,AGC\n53600.zip,TK\n53801.zip,Atypical\n"
    )
    return 3


FAKES = {"cil_kinome": fake_kinome}
