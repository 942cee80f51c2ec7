"""Meshing: fuse aligned depth maps into one coloured surface mesh (TSDF fusion + marching cubes).

No bpy, and importing this package loads no torch: `fuse_mesh` imports torch on first call.
World frame and units are those of the cameras handed in (OpenCV camera axes in `cam2world`).
"""

from .errors import MeshingError
from .mesh import Mesh
from .options import MeshOptions

__all__ = ["Mesh", "MeshOptions", "MeshingError", "fuse_mesh", "fuse_reconstruction"]


def __getattr__(name):
    if name in ("fuse_mesh", "fuse_reconstruction"):
        from . import fuse

        return getattr(fuse, name)
    raise AttributeError(f"module 'pointmap.core.meshing' has no attribute {name!r}")
