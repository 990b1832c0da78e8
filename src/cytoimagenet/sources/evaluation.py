"""Adapters of the evaluation family (placeholder; filled in by the family's author)."""
