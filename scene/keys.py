"""Custom-property keys pointmap writes on Blender data and reads back (one name each, used everywhere).

On a camera object: WIDTH, HEIGHT (original image pixels), PIXEL_ASPECT ([x, y]), VIEW (index in the
reconstruction), PATH (source photo), PHOTO (its image datablock), DEPTH / CONF (depth-texture images).
On a per-view mesh object: VIEW. On the run's collection: FAMILY, MODEL, SOURCE, PATHS, WORLD_ORIENTATION,
WORLD_MATRIX (the 4x4 OpenCV-world -> Blender-world matrix, row-major), SCENE_SIMILARITY (what the scene
tools applied since the build), WARNINGS, RECONSTRUCTION (the run's saved .npz).
"""

WIDTH = "pointmap_width"
HEIGHT = "pointmap_height"
PIXEL_ASPECT = "pointmap_pixel_aspect"
VIEW = "pointmap_view"
PATH = "pointmap_path"
PHOTO = "pointmap_photo"
DEPTH = "pointmap_depth"
CONF = "pointmap_conf"

FAMILY = "pointmap_family"
MODEL = "pointmap_model"
SOURCE = "pointmap_source"
PATHS = "pointmap_paths"
WORLD_ORIENTATION = "pointmap_world_orientation"
WORLD_MATRIX = "pointmap_world_matrix"
SCENE_SIMILARITY = "pointmap_scene_similarity"   # 4x4 row-major, accumulated by scene/tools.py
WARNINGS = "pointmap_warnings"
# The run's saved Reconstruction (.npz): "//relative" to the .blend when beside it, else absolute.
RECONSTRUCTION = "pointmap_reconstruction"
TEXTURE_DIR = "pointmap_texture_dir"   # the run's own OpenEXR folder (collection property)

# On the fused-mesh object of a run (bool), so Re-mesh can find and replace it.
FUSED_MESH = "pointmap_fused_mesh"
