"""`Mesh`: the fused surface handed from core to the Blender side and to file writers."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class Mesh:
    """A triangle mesh in the world frame of the cameras it was fused from (OpenCV world, metres or
    the reconstruction's units).

    vertices: (V, 3) float32 positions.
    faces:    (F, 3) int32 vertex indices, counter-clockwise seen from outside (the side the
              cameras saw), so face normals point out of the solid.
    normals:  (V, 3) float32 unit vertex normals, pointing out of the solid.
    colors:   (V, 3) uint8 sRGB vertex colours.
    info:     what was done (voxel size, truncation, bounds, counts, seconds), JSON-able.
    uvs:      (F, 3, 2) float32 per-corner UVs into `texture` (v up, Blender's convention), or None.
    texture:  (S, S, 3) float32 sRGB in [0, 1], row 0 at the top: the atlas projected from the best
              photo per face (`atlas.texture_atlas`), or None (vertex colours only).
    """

    vertices: np.ndarray
    faces: np.ndarray
    normals: np.ndarray
    colors: np.ndarray
    info: dict = field(default_factory=dict)
    uvs: np.ndarray | None = None
    texture: np.ndarray | None = None

    @property
    def n_vertices(self) -> int:
        return int(len(self.vertices))

    @property
    def n_faces(self) -> int:
        return int(len(self.faces))

    def write_ply(self, path: str | Path) -> None:
        """Binary little-endian PLY: float x y z, float nx ny nz, uchar red green blue; uchar-int faces."""
        v = np.zeros(self.n_vertices, dtype=[("p", "<f4", 3), ("n", "<f4", 3), ("c", "u1", 3)])
        v["p"], v["n"], v["c"] = self.vertices, self.normals, self.colors
        f = np.zeros(self.n_faces, dtype=[("k", "u1"), ("i", "<i4", 3)])
        f["k"], f["i"] = 3, self.faces
        header = (
            "ply\nformat binary_little_endian 1.0\n"
            f"element vertex {self.n_vertices}\n"
            "property float x\nproperty float y\nproperty float z\n"
            "property float nx\nproperty float ny\nproperty float nz\n"
            "property uchar red\nproperty uchar green\nproperty uchar blue\n"
            f"element face {self.n_faces}\nproperty list uchar int vertex_indices\nend_header\n"
        )
        with open(path, "wb") as fh:
            fh.write(header.encode("ascii"))
            fh.write(v.tobytes())
            fh.write(f.tobytes())
