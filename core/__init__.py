"""pointmap core: images, models, inference, alignment, geometry. Never imports bpy.

Importing this package is cheap and needs no torch: heavy modules are imported on first use, so
Blender can register the extension (and offer to install torch) before torch exists.
"""

from .errors import (
    Cancelled,
    CancelToken,
    CheckpointError,
    DependencyError,
    InputError,
    PointmapError,
    UnsupportedOption,
)
from .options import AlignOptions, DA3Options, PairwiseOptions, ReconstructOptions, SequenceOptions, VGGTOptions
from .progress import Progress
from .reconstruction import Reconstruction

__all__ = [
    "Cancelled", "CancelToken", "CheckpointError", "DependencyError", "InputError", "PointmapError",
    "Progress", "Reconstruction", "reconstruct", "UnsupportedOption",
    "AlignOptions", "DA3Options", "PairwiseOptions", "ReconstructOptions", "SequenceOptions", "VGGTOptions",
]


def __getattr__(name):
    if name == "reconstruct":
        from .pipeline import reconstruct

        return reconstruct
    raise AttributeError(f"module 'pointmap.core' has no attribute {name!r}")
