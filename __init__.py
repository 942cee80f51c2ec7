"""pointmap: feed-forward 3D reconstruction (DUSt3R / MASt3R / VGGT) as a Blender extension.

This file is both the Blender extension entry point and the top of the Python package `pointmap`.
It touches bpy only inside register()/unregister(), so `import pointmap.core` works without Blender.
"""


def register():
    pass


def unregister():
    pass
