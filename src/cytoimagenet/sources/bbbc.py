"""Adapters of the bbbc family (placeholder; filled in by the family's author)."""
