"""`build_scene`: a Reconstruction → one new Blender collection (points, cameras, textures, meshes).

Atomic: every datablock, written file and scene setting is recorded in a `Created` ledger; on any
exception (including `Cancelled` raised by the progress callback or the cancel token) the ledger is
undone and the exception re-raised, leaving bpy.data exactly as before.
"""

from __future__ import annotations

import os
from collections import Counter

import numpy as np

from ..core.errors import CancelToken, check_cancel
from ..core.progress import ProgressFn, report
from . import keys
from .convention import blender_intrinsics, camera_matrix_world, world_rotation
from .ledger import Created
from .options import SceneError, SceneOptions

STAGE = "build"


def default_name(recon) -> str:
    """"<folder of the first image, or its name> (<backend>)"."""
    base = None
    first = recon.paths[0] if recon.paths else None
    if first:
        base = os.path.basename(os.path.dirname(os.path.abspath(first))) or None
    if not base:
        base = recon.names[0] if recon.names else "pointmap"
    return f"{base} ({recon.family})" if recon.family else base


def _scene_scale(recon) -> tuple[float, float]:
    """(median depth, median network focal) over all views: sizes for points and camera gizmos."""
    depths = []
    for d in recon.depth:
        d = np.asarray(d, np.float32)
        d = d[np.isfinite(d) & (d > 0)]
        if d.size:
            depths.append(np.median(d[:: max(1, d.size // 10000)]))
    med_depth = float(np.median(depths)) if depths else 1.0
    med_f = float(np.median(np.asarray(recon.K_net)[:, 0, 0])) if recon.n_views else 1.0
    return med_depth, max(med_f, 1e-6)


def _sensor_note(name: str, intr, sensor_mm: float) -> str:
    """The warning for a camera whose lens (or sensor) would fall below Blender's 1 mm minimum."""
    lens = intr.lens / intr.sensor_scale
    fitted = intr.sensor_width if intr.sensor_fit == "HORIZONTAL" else intr.sensor_height
    return (f"View {name}: with a {sensor_mm:g} mm sensor its focal length would be {lens:.3g} mm "
            f"({intr.field_of_view_deg:.1f}° field of view), below Blender's 1 mm minimum, which Blender would "
            f"clamp (changing the view); its sensor is {fitted:.3g} mm instead, so the camera keeps that field of "
            "view. Check the sensor size (mm) if this is unexpected.")


def _render_size(recon, warnings: list[str]) -> tuple[int, int]:
    """The most common original (W, H); warn when the images differ in size."""
    sizes = Counter((int(w), int(h)) for h, w in np.asarray(recon.image_sizes))
    (w, h), _ = sizes.most_common(1)[0]
    if len(sizes) > 1:
        listing = ", ".join(f"{sw}x{sh} ({k})" for (sw, sh), k in sizes.most_common())
        warnings.append(
            f"The images differ in size ({listing}); the render resolution is set to {w}x{h}. "
            "Before rendering through another camera, match its size (camera properties "
            "pointmap_width/pointmap_height, or pointmap.scene.use_camera_render_settings).")
    return w, h


def _remember_render_settings(scene, created: Created) -> None:
    r = scene.render
    saved = (r.resolution_x, r.resolution_y, r.resolution_percentage, r.pixel_aspect_x, r.pixel_aspect_y,
             scene.camera)

    def restore():
        (r.resolution_x, r.resolution_y, r.resolution_percentage, r.pixel_aspect_x, r.pixel_aspect_y,
         scene.camera) = saved

    created.on_undo(restore)


def _build_animated_camera(recon, W, name, coll, scene, options: SceneOptions, created, med_depth,
                           warnings: list[str]) -> None:
    from .animation import build_animated_camera

    plate, first_frame = options.plate, options.plate_first_frame
    shot = recon.meta.get("shot") or {}
    if plate is None and shot.get("kind") == "movie":
        # A shot solved from a movie: the movie is the plate, numbered from the clip's first frame.
        if os.path.isfile(shot.get("source") or ""):
            plate = shot["source"]
            first_frame = shot.get("first_frame") if first_frame is None else first_frame
        else:
            warnings.append(f"The shot's movie {shot.get('source')} is not there any more: the animated camera has "
                            f"no plate (give one with SceneOptions.plate).")
    build_animated_camera(recon, W, f"{name} camera", coll, scene, created, sensor_mm=options.sensor_mm,
                          clip=(max(1e-4, 0.01 * med_depth), 100.0 * med_depth), display_size=0.3 * med_depth,
                          plate=plate, plate_first_frame=first_frame,
                          use_plate=options.plate_background,
                          set_scene=options.set_render_resolution, warnings=warnings)


def build_scene(recon, scene=None, options: SceneOptions | None = None, progress: ProgressFn | None = None,
                cancel: CancelToken | None = None, fused_mesh=None):
    """Build `recon` into a new collection under `scene` (default: the context scene); return it.

    `fused_mesh`: an optional `core.meshing.Mesh` (from `fuse_reconstruction(recon, ...)`, same world
    frame as `recon`), added as the object "<name> fused mesh" in the same atomic build.

    Must run on Blender's main thread. Warnings (e.g. images of different sizes) are appended to
    `recon.warnings` and stored on the collection as "pointmap_warnings".
    """
    import bpy

    options = options or SceneOptions()
    options.validate()
    try:
        recon.validate()
    except ValueError as err:
        raise SceneError(f"The reconstruction cannot be built: {err}.") from err
    if recon.n_views == 0:
        raise SceneError("The reconstruction has no views; there is nothing to build.")
    scene = scene or bpy.context.scene
    created = Created()
    try:
        coll = _build(bpy, recon, scene, options, created, progress, cancel, fused_mesh)
    except BaseException:
        created.undo()
        raise
    return coll


def _build(bpy, recon, scene, options: SceneOptions, created: Created, progress, cancel, fused_mesh=None):
    from . import cameras as cam_mod
    from . import geonodes, materials, meshes, pointcloud, textures

    n = recon.n_views
    warnings: list[str] = []
    W = world_rotation(options.world_orientation, recon.cam2world)
    med_depth, med_f = _scene_scale(recon)
    name = options.name or default_name(recon)
    want_tex = options.depth_textures is not None and options.cameras
    # Steps: collection, [point cloud], per view: [camera], [textures], [mesh], done.
    total = 2 + int(options.point_cloud) + int(options.animated_camera) + n * (int(options.cameras) + int(want_tex) + int(options.per_view_meshes))
    done = 0

    def step(message: str) -> None:
        nonlocal done
        check_cancel(cancel)
        report(progress, STAGE, done, total, message)
        done += 1

    step("collection")
    coll = created.add(bpy.data.collections.new(name))
    scene.collection.children.link(coll)
    coll[keys.FAMILY] = recon.family
    coll[keys.MODEL] = recon.model
    coll[keys.SOURCE] = os.path.dirname(os.path.abspath(recon.paths[0])) if recon.paths[0] else ""
    coll[keys.PATHS] = [p or "" for p in recon.paths]
    coll[keys.WORLD_ORIENTATION] = options.world_orientation
    coll[keys.WORLD_MATRIX] = W.reshape(-1).tolist()

    if options.point_cloud:
        step("point cloud")
        data = pointcloud.gather_points(recon, W, options.voxel_size)
        radius = options.point_radius or 0.5 * med_depth / med_f
        as_mesh = options.mesh_points if options.mesh_points is not None else len(data) <= options.mesh_points_max
        me = pointcloud.build_point_mesh(f"{name} points", data, created)
        if recon.frame_numbers is not None:
            pointcloud.add_frame_attribute(me, data.view, recon.frame_numbers)
        del data
        mat = materials.point_material(f"{name} points", created)
        group = geonodes.point_display_group(f"{name} point display", mat, radius, options.min_conf,
                                             as_mesh, created)
        obj = created.add(bpy.data.objects.new(f"{name} points", me))
        coll.objects.link(obj)
        mod = obj.modifiers.new("Point display", "NODES")
        mod.node_group = group
        # Modifier inputs start at the group defaults; set them explicitly so they show the values.
        geonodes.set_modifier_input(obj, mod, geonodes.INPUT_RADIUS, float(radius))
        geonodes.set_modifier_input(obj, mod, geonodes.INPUT_MIN_CONF, float(options.min_conf))
        geonodes.set_modifier_input(obj, mod, geonodes.INPUT_AS_MESH, bool(as_mesh))
        obj.data.materials.append(mat)

    cams, photos = [], {}
    if options.cameras:
        res_w, res_h = _render_size(recon, warnings)
        mats = camera_matrix_world(recon.cam2world, W)
        clip = (max(1e-4, 0.01 * med_depth), 100.0 * med_depth)
        for i in range(n):
            step(f"camera {i + 1}/{n}")
            H0, W0 = (int(s) for s in recon.image_sizes[i])
            try:
                intr = blender_intrinsics(recon.K[i], W0, H0, sensor=options.sensor_mm, above_blender_minimum=True)
            except ValueError as err:
                raise SceneError(f"View {recon.names[i]}: {err}.") from err
            if intr.sensor_scale > 1.0:
                warnings.append(_sensor_note(recon.names[i], intr, options.sensor_mm))
            cam = cam_mod.build_camera(recon.names[i], mats[i], intr, clip, 0.15 * med_depth, coll, created)
            cam[keys.VIEW] = i
            cam[keys.PATH] = recon.paths[i] or ""
            cam["pointmap_K"] = np.asarray(recon.K[i], np.float64).reshape(-1).tolist()
            cam["pointmap_cam2world_cv"] = np.asarray(recon.cam2world[i], np.float64).reshape(-1).tolist()
            if options.background_images:
                img = textures.photo_image(recon, i, f"{recon.names[i]} photo", created, warnings)
                cam_mod.set_background(cam, img)
                cam[keys.PHOTO] = img.name
                photos[i] = img
            cams.append(cam)
        aspects = {tuple(round(float(a), 4) for a in c[keys.PIXEL_ASPECT]) for c in cams}
        if len(aspects) > 1:
            warnings.append(
                "The cameras' focal lengths differ in x/y ratio (pixel aspects "
                f"{', '.join(f'{ax:g}:{ay:g}' for ax, ay in sorted(aspects))}); Blender's pixel aspect is "
                "scene-wide, so only cameras matching the render settings project exactly "
                "(pointmap.scene.use_camera_render_settings sets them per camera).")
        if options.set_render_resolution:
            _remember_render_settings(scene, created)
            first = next(c for c in cams if (c[keys.WIDTH], c[keys.HEIGHT]) == (res_w, res_h))
            cam_mod.use_camera_render_settings(scene, first)

    if options.animated_camera:
        step("animated camera")
        _build_animated_camera(recon, W, name, coll, scene, options, created, med_depth, warnings)

    if want_tex:
        tex_mode, tex_dir = options.depth_textures, None
        if tex_mode == "exr":
            parent = textures.texture_parent(options.texture_dir)
            if parent is None:
                # Never Blender's temp folder (deleted on quit): pack into the .blend instead, and say so.
                tex_mode = "pack"
                warnings.append("Depth textures were packed into the .blend instead of written as OpenEXR "
                                "files: the file is not saved yet (or the texture folder is Blender's temporary "
                                "folder). Save the .blend first, or name a texture folder.")
            else:
                tex_dir = textures.run_texture_dir(parent, coll.name, created)
                coll[keys.TEXTURE_DIR] = tex_dir
        for i, cam in enumerate(cams):
            step(f"depth texture {i + 1}/{n}")
            d = textures.float_map_image(f"{recon.names[i]} depth", recon.depth[i], tex_mode, tex_dir, created)
            c = textures.float_map_image(f"{recon.names[i]} confidence", recon.conf[i], tex_mode, tex_dir,
                                         created)
            # ID pointers, not names: they count as users, so the images are saved with the .blend.
            cam[keys.DEPTH] = d
            cam[keys.CONF] = c

    if options.per_view_meshes:
        min_conf = options.mesh_min_conf if options.mesh_min_conf is not None else options.min_conf
        for i in range(n):
            step(f"mesh {i + 1}/{n}")
            verts, tris, uv = meshes.view_mesh_arrays(recon, i, W, min_conf, options.mesh_max_depth_jump)
            if len(tris) == 0:
                # Blender 5.0 gives a mesh without vertices no "position" attribute; an empty object would
                # only clutter the outliner, so the view is left out and the user told why.
                warnings.append(f"View {recon.names[i]}: no per-view mesh (no triangle passed the confidence "
                                f"threshold {min_conf:g} and the depth-jump limit); the view was skipped.")
                continue
            me = meshes.build_mesh(f"{recon.names[i]} mesh", verts, tris, uv, created)
            img = photos.get(i) or textures.photo_image(recon, i, f"{recon.names[i]} photo", created, warnings)
            me.materials.append(materials.photo_material(f"{recon.names[i]} photo", img, created))
            obj = created.add(bpy.data.objects.new(f"{recon.names[i]} mesh", me))
            obj[keys.VIEW] = i
            coll.objects.link(obj)

    if fused_mesh is not None:
        from .fused_mesh import build_fused_mesh

        check_cancel(cancel)
        obj = build_fused_mesh(f"{name} fused mesh", fused_mesh, W, coll, created)
        obj[keys.FUSED_MESH] = True
        warnings.extend(fused_mesh.info.get("warnings", []))

    step("finishing")
    if warnings:
        recon.warnings.extend(w for w in warnings if w not in recon.warnings)
    coll[keys.WARNINGS] = list(recon.warnings)
    report(progress, STAGE, total, total, "done")
    return coll
