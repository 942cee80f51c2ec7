"""Depth Anything 3 (DA3): any-view depth + camera network, monocular/metric variants, weights loading.

Imports torch; only imported when the DA3 backend is used.
"""

from .camera import pose_encoding_to_c2w_intrinsics
from .config import DA3_INPUT_SIZE, METRIC_PRESETS, NESTED, PRESETS, DA3Config, config_from_dict
from .model import DA3Nested, DA3Net, build_da3

__all__ = ["DA3Config", "DA3Nested", "DA3Net", "DA3_INPUT_SIZE", "METRIC_PRESETS", "NESTED",
           "PRESETS", "build_da3", "config_from_dict", "pose_encoding_to_c2w_intrinsics"]
