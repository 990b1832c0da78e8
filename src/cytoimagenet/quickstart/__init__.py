"""The main job on embedded synthetic data: the whole pipeline and a report, in minutes."""

from cytoimagenet.quickstart.pipeline import parse_stages, run_pipeline
from cytoimagenet.quickstart.run import PRESETS, STAGES, Run

__all__ = ["PRESETS", "STAGES", "Run", "parse_stages", "run_pipeline"]
