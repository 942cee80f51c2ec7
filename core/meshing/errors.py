"""The user-facing error of the meshing stage."""

from __future__ import annotations

from ..errors import PointmapError


class MeshingError(PointmapError):
    """The depth maps / cameras cannot give a mesh; the message names the view(s) and the problem."""
