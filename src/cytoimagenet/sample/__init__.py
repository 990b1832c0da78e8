"""The embedded sample source: a synthetic plate generated on demand, no downloads."""

from cytoimagenet.sample.generate import SampleSpec, generate_sample

__all__ = ["SampleSpec", "generate_sample"]
