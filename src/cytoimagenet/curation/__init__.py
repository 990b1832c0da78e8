"""Curation: harmonising metadata, weak labels, image standardisation, QC and writing."""
