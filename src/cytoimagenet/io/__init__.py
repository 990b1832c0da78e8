"""File input and output: atomic writes and tolerant readers for raw metadata files."""
