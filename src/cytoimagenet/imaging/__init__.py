"""Pure image operations: reading at full bit depth, normalisation, merging, crops and QC."""

from cytoimagenet.imaging.crops import CropBox, crops_per_image, plan_crops
from cytoimagenet.imaging.normalize import (
    merge_channels,
    normalize,
    percentile_bounds,
    to_uint8,
)
from cytoimagenet.imaging.quality import QCThresholds
from cytoimagenet.imaging.readers import ImageReadError, read_field, read_planes

__all__ = [
    "CropBox",
    "ImageReadError",
    "QCThresholds",
    "crops_per_image",
    "merge_channels",
    "normalize",
    "percentile_bounds",
    "plan_crops",
    "read_field",
    "read_planes",
    "to_uint8",
]
