"""Adapters of the rxrx family (placeholder; filled in by the family's author)."""
