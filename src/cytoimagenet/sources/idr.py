"""Adapters of the idr family (placeholder; filled in by the family's author)."""
