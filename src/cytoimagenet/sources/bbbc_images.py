"""Adapters of BBBC datasets labelled by folder and file names (placeholder)."""
