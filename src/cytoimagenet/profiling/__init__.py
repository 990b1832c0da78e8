"""Profiles from feature tables: aggregation, normalisation, feature selection (pycytominer)."""
