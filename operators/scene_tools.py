"""Scene orientation operators (3D View sidebar, "Scene Tools"): floor, wall, origin, axis, scale, flip; and
View Run, which points the 3D view at a run.

Thin wrappers: the maths is `scene.orient`, the application to a run's collection `scene.tools`.
Each is one undoable step (REGISTER, UNDO) that transforms the whole run — cameras (keys included),
points, meshes — and nothing else. Select vertices of the point cloud in Edit Mode, or objects
(empties) in Object Mode, as with Blender's own tracker tools (Floor, Wall, Set Origin, Set Scale).
"""

from __future__ import annotations

import bpy
import numpy as np

_AXES = [("X", "X", "The direction becomes the +X axis"), ("Y", "Y", "The direction becomes the +Y axis")]


class _SceneTool:
    bl_options = {"REGISTER", "UNDO"}
    min_points = 0

    @classmethod
    def poll(cls, context):
        return context.scene is not None and any("pointmap_family" in c
                                                 for c in context.scene.collection.children_recursive)

    def transform(self, P: np.ndarray, coll) -> np.ndarray:
        raise NotImplementedError

    def execute(self, context):
        from ..scene.tools import ToolError, run_tool

        def make(P, coll):
            if len(P) < self.min_points:
                raise ToolError(f"{self.bl_label} needs at least {self.min_points} selected point"
                                f"{'s' if self.min_points > 1 else ''} (vertices of the point cloud in Edit "
                                f"Mode, or objects); {len(P)} selected.")
            return self.transform(P, coll)

        try:
            coll, _ = run_tool(context, make)
        except ToolError as err:
            self.report({"ERROR"}, str(err))
            return {"CANCELLED"}
        self.report({"INFO"}, f"{self.bl_label}: {coll.name} transformed.")
        return {"FINISHED"}


def _camera_mean(coll):
    from ..scene.tools import camera_centres

    c = camera_centres(coll)
    return c.mean(axis=0) if len(c) else None


class POINTMAP_OT_set_floor(_SceneTool, bpy.types.Operator):
    """Make the plane through the selected points (3 or more, robust fit) the floor: Z up, at height 0"""

    bl_idname = "pointmap.set_floor"
    bl_label = "Set Floor"
    min_points = 3

    def transform(self, P, coll):
        from ..scene.orient import floor_transform

        return floor_transform(P, up_hint=_camera_mean(coll))


class POINTMAP_OT_set_wall(_SceneTool, bpy.types.Operator):
    """Make the plane through the selected points (3 or more) a wall along the chosen axis (turns about Z)"""

    bl_idname = "pointmap.set_wall"
    bl_label = "Set Wall"
    min_points = 3
    axis: bpy.props.EnumProperty(name="Axis", items=_AXES, default="X")

    def transform(self, P, coll):
        from ..scene.orient import wall_transform

        return wall_transform(P, self.axis, toward=_camera_mean(coll))


class POINTMAP_OT_set_origin(_SceneTool, bpy.types.Operator):
    """Move the scene so the selected point (the mean of the selection) is the world origin"""

    bl_idname = "pointmap.set_origin"
    bl_label = "Set Origin"
    min_points = 1

    def transform(self, P, coll):
        from ..scene.orient import origin_transform

        return origin_transform(P.mean(axis=0))


class POINTMAP_OT_set_axis(_SceneTool, bpy.types.Operator):
    """Turn the scene about Z so the direction from the origin to a single selected point (or from the
    first to the last of two selected empties) is the chosen axis"""

    bl_idname = "pointmap.set_axis"
    bl_label = "Set Axis"
    min_points = 1
    axis: bpy.props.EnumProperty(name="Axis", items=_AXES, default="X")

    def transform(self, P, coll):
        from ..scene.orient import axis_transform

        # One point: from the origin, as Blender's Set X/Y Axis. Several: first to last, where "last"
        # is the active object (Edit Mode vertices come in index order, so prefer one point there).
        p0 = np.zeros(3) if len(P) == 1 else P[0]
        return axis_transform(p0, P[-1], self.axis)


class POINTMAP_OT_set_scale(_SceneTool, bpy.types.Operator):
    """Scale the scene about the origin so two selected points (or the camera's travel) are the given
    distance apart"""

    bl_idname = "pointmap.set_scale"
    bl_label = "Set Scale"
    distance: bpy.props.FloatProperty(name="Distance", default=1.0, min=1e-9, soft_min=0.001,
                                      unit="LENGTH", description="The real distance")
    source: bpy.props.EnumProperty(name="From", default="POINTS", items=[
        ("POINTS", "Two Points", "The first and last selected points"),
        ("CAMERA_TRAVEL", "Camera Travel", "The camera's first and last positions")])

    def transform(self, P, coll):
        from ..scene.orient import scale_transform, travel_scale_transform
        from ..scene.tools import ToolError, camera_centres

        if self.source == "CAMERA_TRAVEL":
            return travel_scale_transform(camera_centres(coll), self.distance)
        if len(P) < 2:
            raise ToolError(f"Set Scale needs two selected points; {len(P)} selected.")
        return scale_transform(P[0], P[-1], self.distance)


class POINTMAP_OT_flip_floor(_SceneTool, bpy.types.Operator):
    """Turn the scene upside down (180° about X), for a floor that came out below the cameras"""

    bl_idname = "pointmap.flip_floor"
    bl_label = "Flip Floor"

    def transform(self, P, coll):
        from ..scene.orient import flip_transform

        return flip_transform()


class POINTMAP_OT_view_run(bpy.types.Operator):
    """Look at the run (of the active object, or the scene's only one) from behind its cameras, in Solid view
    coloured by the points' own colours"""

    bl_idname = "pointmap.view_run"
    bl_label = "View Run"

    @classmethod
    def poll(cls, context):
        area = getattr(context, "area", None)
        return area is not None and area.type == "VIEW_3D" and _SceneTool.poll(context)

    def execute(self, context):
        from ..scene.tools import ToolError, run_collection_of
        from ..scene.viewport import frame_view

        try:
            coll = run_collection_of(getattr(context, "active_object", None), context.scene)
        except ToolError as err:
            self.report({"ERROR"}, str(err))
            return {"CANCELLED"}
        if frame_view(context.area.spaces.active, coll):
            self.report({"INFO"}, f"Viewing {coll.name} from behind its cameras.")
        else:
            self.report({"INFO"}, f"{coll.name} has no cameras to look along; colours shown by attribute.")
        return {"FINISHED"}


classes = (POINTMAP_OT_view_run, POINTMAP_OT_set_floor, POINTMAP_OT_set_wall, POINTMAP_OT_set_origin, POINTMAP_OT_set_axis,
           POINTMAP_OT_set_scale, POINTMAP_OT_flip_floor)
register, unregister = bpy.utils.register_classes_factory(classes)
