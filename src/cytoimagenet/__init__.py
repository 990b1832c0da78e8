"""cytoimagenet: curate weakly-labelled microscopy pretraining sets and benchmark transfer."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("cytoimagenet")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = ["__version__"]
