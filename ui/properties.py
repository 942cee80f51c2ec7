"""Reconstruction settings: one option list shared by the scene PropertyGroup and the operator.

`ReconstructOptions` holds the annotations once; `POINTMAP_PG_settings` (on `Scene.pointmap`, saved
with the .blend and scriptable) and `POINTMAP_OT_reconstruct` both inherit them, and the operator's
invoke copies the scene's values over the ones a caller did not set.
"""

from __future__ import annotations

import bpy
from bpy.props import (
    BoolProperty,
    CollectionProperty,
    EnumProperty,
    FloatProperty,
    IntProperty,
    PointerProperty,
    StringProperty,
)

from .preferences import DEVICE_ITEMS as PREF_DEVICE_ITEMS

INPUT_KIND_ITEMS = [
    ("PHOTOS", "Photos", "A set of photos (any order)"),
    ("SHOT", "Shot", "A movie or an image sequence: frames in order, one moving camera"),
]
SOURCE_ITEMS = [
    ("FOLDER", "Folder", "Every image in a folder"),
    ("FILES", "Files", "A list of image files"),
]
SHOT_SOURCE_ITEMS = [
    ("CLIP", "Movie Clip", "A movie clip of this file (empty: the scene's active clip)"),
    ("PATH", "File", "A movie file, or an image sequence (one of its files, or its folder)"),
]
BACKEND_ITEMS = [
    ("AUTO", "Auto", "Chosen from the checkpoint"),
    ("PAIRS", "Pairs + alignment", "DUSt3R / MASt3R pairwise pointmaps, then global alignment"),
    ("VGGT", "VGGT", "One network pass over all views"),
    ("DA3", "Depth Anything 3", "One network pass over all views (DA3-Small/Base are Apache-2.0)"),
]
GRAPH_ITEMS = [
    ("COMPLETE", "Complete", "Every pair of images (N·(N-1) pairs): best for up to ~30 images"),
    ("SWIN", "Sliding window", "Each image with its K neighbours in order (videos)"),
    ("LOGWIN", "Log window", "Neighbours at distances 1, 2, 4, ... up to K (long videos)"),
    ("ONEREF", "One reference", "Every image paired with reference image K"),
    ("RETRIEVAL", "Retrieval", "Each image with its K most similar images (MASt3R)"),
]
BAD_IMAGE_ITEMS = [
    ("SKIP", "Skip", "Leave unreadable images out and report them"),
    ("STOP", "Stop", "Stop at the first unreadable image and change nothing"),
]
DEPTH_TEXTURE_ITEMS = [
    ("NONE", "None", "No depth/confidence images"),
    ("PACK", "Packed", "Float images packed into the .blend"),
    ("EXR", "OpenEXR files", "Float images written as .exr files next to the .blend"),
]
DEVICE_ITEMS = [("PREFS", "Preferences", "Use the device chosen in the add-on preferences"), *PREF_DEVICE_ITEMS]


class FusedMeshSettings:
    """The fused mesh's settings (annotations only): a run's options and the Re-mesh operator's."""

    mesh_voxel_size: FloatProperty(name="Mesh Voxel Size", default=0.0, min=0.0, precision=4,
                                   description="Fused mesh detail: voxel edge in scene units (0: automatic)")
    mesh_min_conf: FloatProperty(name="Mesh Min Confidence", default=3.0, min=0.0, soft_max=20.0,
                                 description="Depth pixels below this confidence are left out of the fused mesh")
    mesh_face_budget: IntProperty(name="Mesh Face Budget", default=0, min=0,
                                  description="Decimate the fused mesh to at most this many faces (0: keep all)")
    mesh_texture_size: IntProperty(name="Mesh Texture Size", default=0, min=0, max=16384,
                                   description="Texture the fused mesh with an atlas of this many texels square, "
                                               "projected from the best photo per face (0: vertex colours)")
    mesh_refine_views: BoolProperty(name="Refine Views", default=True,
                                    description="Before fusing, fit each view's smooth depth error and a small "
                                                "camera turn to the other views where they overlap, and take "
                                                "them out (for the fused mesh only; the cameras stay as solved)")


class ReconstructOptions(FusedMeshSettings):
    """Every option of a reconstruction run (annotations only; mixed into a PropertyGroup and an operator)."""

    # -- input --
    input_kind: EnumProperty(name="Input", items=INPUT_KIND_ITEMS, default="PHOTOS")
    source: EnumProperty(name="Photos", items=SOURCE_ITEMS, default="FOLDER")
    directory: StringProperty(name="Folder", subtype="DIR_PATH", description="Folder of photos (or of the files)")
    files: CollectionProperty(name="Files", type=bpy.types.OperatorFileListElement,
                              description="Image file names inside Folder")
    shot_source: EnumProperty(name="Shot", items=SHOT_SOURCE_ITEMS, default="CLIP")
    clip_name: StringProperty(name="Clip", description="Movie clip of the shot (empty: the scene's active clip)")
    shot_path: StringProperty(name="Shot File", subtype="FILE_PATH",
                              description="A movie file, or a file or folder of a numbered image sequence")
    first_frame: IntProperty(name="First Frame", default=1,
                             description="Frame number of the movie's first frame (e.g. 1001); a movie clip uses "
                                         "its Start Frame, an image sequence the numbers in its file names")
    use_frame_range: BoolProperty(name="Frame Range", default=False,
                                  description="Solve only the frames Start..End (else the whole shot)")
    frame_start: IntProperty(name="Start", default=1, description="First frame to solve (the shot's frame numbers)")
    frame_end: IntProperty(name="End", default=250, description="Last frame to solve (inclusive)")
    stride: IntProperty(name="Stride", default=1, min=1,
                        description="Solve every Nth frame; the animated camera interpolates the frames between")
    per_frame_focal: BoolProperty(name="Zoom (Focal per Frame)", default=False,
                                  description="The focal length changes during the shot (else one lens throughout)")
    # -- model --
    checkpoint: StringProperty(name="Checkpoint", subtype="FILE_PATH",
                               description="Registry name or local file/folder (empty: the preferences' choice)")
    backend: EnumProperty(name="Backend", items=BACKEND_ITEMS, default="AUTO")
    device: EnumProperty(name="Device", items=DEVICE_ITEMS, default="PREFS")
    image_size: IntProperty(name="Image Size", default=0, min=0, max=2048,
                            description="Network input size (0: the checkpoint's own)")
    # -- pairs / alignment --
    graph: EnumProperty(name="Scene Graph", items=GRAPH_ITEMS, default="COMPLETE")
    graph_k: IntProperty(name="K", default=4, min=1, max=256, description="Window size / neighbours / reference")
    iterations: IntProperty(name="Iterations", default=0, min=0, max=10000,
                            description="Alignment iterations (0: the backend's default)")
    shared_focal: BoolProperty(name="Shared Focal", default=False, description="All photos taken with one lens/zoom")
    shot_window: IntProperty(name="Window", default=4, min=1, max=64,
                             description="Shots: each frame is paired with this many neighbours on each side, plus "
                                         "log-spaced links and loop closures")
    focal_mm: FloatProperty(name="Known Focal (mm)", default=0.0, min=0.0, soft_max=600.0,
                            description="Focal length in mm when known (0: estimate it)")
    sensor_mm: FloatProperty(
        name="Sensor Width (mm)", default=36.0, min=1.0, soft_max=100.0,
        description="Sensor size along the photos' long side (36 = full frame): converts a known focal length "
                    "to pixels and sets the created cameras' sensor, so their lens reads in your units")
    known_poses_file: StringProperty(
        name="Known Poses", default="", subtype="FILE_PATH",
        description="Optional file of known camera poses, held fixed: JSON {\"cameras\": {file name or frame: "
                    "4x4 camera-to-world, OpenCV axes}} or a saved reconstruction (.npz) of an earlier solve")
    on_bad_image: EnumProperty(name="Bad Images", items=BAD_IMAGE_ITEMS, default="SKIP")
    vggt_points: EnumProperty(name="VGGT Points", default="DEPTH", items=[
        ("DEPTH", "Depth + Camera", "Unproject the depth map with the predicted camera (recommended)"),
        ("HEAD", "Point Head", "The network's point map head")])
    # -- outputs --
    name: StringProperty(name="Name", default="", description="Name of the new collection (empty: from the photos)")
    point_cloud: BoolProperty(name="Point Cloud", default=True)
    min_conf: FloatProperty(name="Min Confidence", default=1.5, min=0.0, soft_max=20.0,
                            description="Drop points whose confidence is below this")
    voxel_size: FloatProperty(name="Voxel Size", default=0.0, min=0.0, description="Thin the cloud (0: keep all)")
    point_radius: FloatProperty(name="Point Radius", default=0.0, min=0.0, soft_max=0.1,
                                description="Display radius of points (0: from the pixel footprint)")
    cameras: BoolProperty(name="Cameras", default=True)
    background_images: BoolProperty(name="Background Images", default=True)
    set_render_resolution: BoolProperty(name="Set Render Resolution", default=True)
    depth_textures: EnumProperty(name="Depth & Confidence", items=DEPTH_TEXTURE_ITEMS, default="NONE")
    texture_dir: StringProperty(name="Texture Folder", subtype="DIR_PATH",
                                description="Where EXR depth/confidence files go (empty: pointmap_textures "
                                            "next to the .blend, or a temporary folder for unsaved files)")
    per_view_meshes: BoolProperty(name="Per-View Meshes", default=False)
    animated_camera: BoolProperty(name="Animated Camera", default=True,
                                  description="Shots: one camera keyed on every frame (instead of a camera per frame)")
    plate_background: BoolProperty(name="Plate Background", default=True,
                                   description="The shot as the animated camera's background (scene frame f shows "
                                               "plate frame f)")
    static_cameras: BoolProperty(name="Also Static Cameras", default=False,
                                 description="Also one still camera per solved frame")
    fused_mesh: BoolProperty(name="Fused Mesh", default=False,
                             description="One coloured surface fused from all depth maps (TSDF)")


def option_names() -> list[str]:
    """Names of all options, in declaration order."""
    names: list[str] = []
    for cls in ReconstructOptions.__mro__:
        names.extend(k for k in getattr(cls, "__annotations__", {}) if k not in names)
    return names


def copy_options(src, dst, skip=lambda name: False) -> None:
    """Copy every option from `src` to `dst` (PropertyGroup or operator), files collection included."""
    for name in option_names():
        if skip(name):
            continue
        if name == "files":
            dst.files.clear()
            for f in src.files:
                dst.files.add().name = f.name
        else:
            setattr(dst, name, getattr(src, name))


class POINTMAP_PG_settings(ReconstructOptions, bpy.types.PropertyGroup):
    """Per-scene pointmap settings (`scene.pointmap`)."""


classes = (POINTMAP_PG_settings,)


def register():
    for cls in classes:
        bpy.utils.register_class(cls)
    bpy.types.Scene.pointmap = PointerProperty(type=POINTMAP_PG_settings)


def unregister():
    del bpy.types.Scene.pointmap
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
