"""The main job on embedded synthetic data: the whole pipeline and a report, in minutes."""

from cytoimagenet.quickstart.pipeline import PRESETS, STAGES, Run, parse_stages, run_pipeline

__all__ = ["PRESETS", "STAGES", "Run", "parse_stages", "run_pipeline"]
