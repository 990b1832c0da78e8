"""Fake raw tree of the embedded sample source: the generator itself, at a tiny size."""

from __future__ import annotations

from pathlib import Path

from cytoimagenet.sample import SampleSpec, generate_sample


def fake_sample(root: Path) -> int:
    generate_sample(root, SampleSpec(plates=1, sites=1, size=24, cells=2))
    return 24


FAKES = {"sample": fake_sample}
