"""VGGT (Visual Geometry Grounded Transformer) network, weights loading and pose utilities.

Imports torch; only imported when the VGGT backend is used.
"""

from .checkpoint import load_vggt, read_state_dict
from .model import VGGT, VGGT_1B_CONFIG, build_vggt
from .pose import extri_intri_to_pose_encoding, pose_encoding_to_extri_intri, unproject_depth

__all__ = ["VGGT", "VGGT_1B_CONFIG", "build_vggt", "extri_intri_to_pose_encoding", "load_vggt",
           "pose_encoding_to_extri_intri", "read_state_dict", "unproject_depth"]
