"""Dataset builder: standardise, crop, QC and write the labelled images (paper §2.7–2.10)."""

from cytoimagenet.curation.dataset.builder import BuildResult, run_build

__all__ = ["BuildResult", "run_build"]
