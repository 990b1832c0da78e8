"""Adapters of the kaggle family (placeholder; filled in by the family's author)."""
