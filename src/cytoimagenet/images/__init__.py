"""A lab's own images in: image tables and flat-field illumination correction.

Image tables come from plate folders, LoadData CSVs, DeepProfiler-style indexes and
single-cell locations.

``cytoimagenet images`` writes the table ``extract`` reads; ``cytoimagenet illumination``
computes flat fields that ``extract --illumination`` divides by. See docs/images.md.
"""
