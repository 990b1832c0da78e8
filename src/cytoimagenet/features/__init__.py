"""Feature extraction: penultimate-layer features in the paper's four modes, and fusion."""
