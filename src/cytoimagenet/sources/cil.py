"""Adapters of the cil family (placeholder; filled in by the family's author)."""
