"""Exceptions raised by cytoimagenet; every message says what went wrong and what to do."""

from __future__ import annotations


class CytoImageNetError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigError(CytoImageNetError, ValueError):
    """A configuration value is invalid; raised before any work starts."""


class UnknownSourceError(CytoImageNetError, KeyError):
    """A source name is not in the catalog."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class MetadataError(CytoImageNetError):
    """A raw metadata file is missing, unreadable, or lacks an expected column."""


class SchemaError(CytoImageNetError):
    """A table does not follow the unified metadata schema."""


class BuildError(CytoImageNetError):
    """A dataset build ran but cannot give a usable dataset (e.g. every field quarantined)."""


class WeightsConversionError(CytoImageNetError, ValueError):
    """A weights file or state dict does not have the layers or shapes the converter expects."""


class DownloadError(CytoImageNetError):
    """A file could not be fetched; the message names the URL and what to try."""


class ChecksumError(DownloadError):
    """A fetched file does not have the expected size or SHA-256; nothing was kept."""
