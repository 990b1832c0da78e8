"""Backbones (timm), weight sources and conversions, checkpoints."""
