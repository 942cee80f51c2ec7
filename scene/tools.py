"""Scene orientation tools on a pointmap run: floor, wall, origin, axis, scale, flip.

Each tool computes one similarity S (scene.orient, pure numpy) from selected points and applies it to
the whole run's collection and to nothing else:

* meshes, point clouds, empties, anything but cameras: `matrix_world = S · matrix_world` — the
  vertices are NOT rewritten, so a tool costs the same on 10 M points as on 10 (the point count only
  matters when reading an Edit Mode selection). The object matrix then carries the similarity; the
  scene stays clean (no helper parent), and "Apply Transform" bakes it into the vertices if wanted.
* cameras: location and rotation transformed, scale kept at 1 (a scaled camera object draws and
  exports oddly; a camera's projection does not depend on the world's scale). The animated shot
  camera's keys are rewritten in bulk (`foreach_get/set`), so every frame moves with the scene.
* objects parented inside the run follow their parent and are not touched themselves.
The collection's "pointmap_world_matrix" (reconstruction world → scene) is updated to S · W, and
"pointmap_scene_similarity" accumulates S, so exports can map reconstruction cameras into the scene.

Selection: vertices selected in Edit Mode on a mesh of the run (the point cloud), or selected objects
(empties, ...) in Object Mode; points are taken in world space.
"""

from __future__ import annotations

import numpy as np

from ..core.errors import PointmapError
from . import keys
from .camera_path import continuous_quaternions, matrix_to_quaternion, quaternion_to_matrix
from .orient import OrientError, decompose_similarity


class ToolError(PointmapError):
    """A scene tool cannot run (no pointmap run, too few points selected, edited keys, ...)."""


RUN_KEY = "pointmap_family"


def run_collection_of(obj, scene):
    """The pointmap run's collection holding `obj` (or the scene's only run when obj is in none)."""
    if obj is not None:
        for coll in obj.users_collection:
            if RUN_KEY in coll:
                return coll
    runs = [c for c in scene.collection.children_recursive if RUN_KEY in c]
    if len(runs) == 1:
        return runs[0]
    if not runs:
        raise ToolError("There is no pointmap reconstruction in this scene.")
    raise ToolError("Several pointmap reconstructions are in this scene; select a point of the one to change.")


def _selected_vertices(obj) -> np.ndarray:
    """(K, 3) float64 world positions of the mesh's selected vertices (its stored selection)."""
    me = obj.data
    n = len(me.vertices)
    sel = np.zeros(n, bool)
    if obj.mode == "EDIT":
        # In Edit Mode `attributes` shows the BMesh's layers, where selection is a flag, not a layer.
        me.vertices.foreach_get("select", sel)
    else:
        # The selection's own bool layer reads as one block, where MeshVertex.select goes through RNA
        # item by item (5 ms against 0.8 s for 10 M vertices). No layer: nothing is selected.
        attr = me.attributes.get(".select_vert")
        if attr is not None:
            attr.data.foreach_get("value", sel)
    idx = np.flatnonzero(sel)
    if len(idx) <= 20_000:
        # A small selection of a big cloud: read those vertices only, not all n positions.
        P = np.array([me.vertices[int(i)].co for i in idx], np.float64).reshape(-1, 3)
    else:
        co = np.empty(n * 3, np.float32)
        me.vertices.foreach_get("co", co)
        P = co.reshape(-1, 3)[idx].astype(np.float64)
    M = np.array(obj.matrix_world)
    return P @ M[:3, :3].T + M[:3, 3]


def selected_world_points(context) -> tuple[np.ndarray, object]:
    """((K, 3) float64 world positions of the selection, the run's collection).

    Edit Mode: the selected vertices of the edited mesh. Object Mode with a mesh of a run active and
    no other object selected: that mesh's stored vertex selection (as left by Edit Mode), which avoids
    Edit Mode's conversion cost on big clouds. Otherwise the selected objects' world locations (the
    active object last, as Blender's "active" track).
    """
    obj = context.active_object
    if obj is not None and obj.type == "MESH" and obj.mode == "EDIT":
        obj.update_from_editmode()
        return _selected_vertices(obj), run_collection_of(obj, context.scene)
    objs = list(context.selected_objects)
    if obj is not None and obj.type == "MESH" and any(RUN_KEY in c for c in obj.users_collection) \
            and set(objs) <= {obj}:
        return _selected_vertices(obj), run_collection_of(obj, context.scene)
    if obj is not None and obj in objs:
        objs.remove(obj)
        objs.append(obj)
    P = np.array([np.array(o.matrix_world)[:3, 3] for o in objs], np.float64).reshape(-1, 3)
    return P, run_collection_of(obj if obj is not None else (objs[0] if objs else None), context.scene)


def camera_centres(coll) -> np.ndarray:
    """(N, 3) world centres of the run's cameras: the static ones, else the animated camera's keys."""
    cams = [o for o in coll.all_objects if o.type == "CAMERA"]
    static = [o for o in cams if not o.get("pointmap_animated")]
    if static:
        return np.array([np.array(o.matrix_world)[:3, 3] for o in static])
    out = [keys[1].T for cam in cams if (keys := _key_arrays(cam, "location", 3)) is not None]
    return np.concatenate(out) if out else np.zeros((0, 3))


def _fcurves(id_block):
    ad = id_block.animation_data
    if ad is None or ad.action is None:
        return []
    action = ad.action
    if hasattr(action, "layers"):
        slot = ad.action_slot
        out = []
        for layer in action.layers:
            for strip in layer.strips:
                cb = strip.channelbag(slot) if slot is not None else None
                if cb is not None:
                    out.extend(cb.fcurves)
        return out
    return list(action.fcurves)


def _key_arrays(obj, data_path: str, width: int):
    """(fcurves, (width, K) values) of a vector channel keyed on identical frames, else None."""
    fcs = sorted((fc for fc in _fcurves(obj) if fc.data_path == data_path), key=lambda f: f.array_index)
    if not fcs:
        return None
    if len(fcs) != width:
        raise ToolError(f"{obj.name}: its {data_path} is only partly keyed; key all channels or bake first.")
    cos = []
    for fc in fcs:
        co = np.empty(len(fc.keyframe_points) * 2, np.float32)
        fc.keyframe_points.foreach_get("co", co)
        cos.append(co.reshape(-1, 2))
    if any(len(c) != len(cos[0]) or not np.array_equal(c[:, 0], cos[0][:, 0]) for c in cos):
        raise ToolError(f"{obj.name}: its {data_path} channels are keyed on different frames; "
                        "bake the animation (one key per frame) first.")
    return fcs, np.stack([c[:, 1] for c in cos]).astype(np.float64)


def _write_keys(fcs, values: np.ndarray) -> None:
    for fc, v in zip(fcs, values, strict=True):
        kp = fc.keyframe_points
        co = np.empty(len(kp) * 2, np.float32)
        kp.foreach_get("co", co)
        co = co.reshape(-1, 2)
        delta = v.astype(np.float32) - co[:, 1]
        co[:, 1] = v
        kp.foreach_set("co", co.ravel())
        # Handles move with their key so Bezier segments keep their shape (LINEAR keys ignore them).
        for name in ("handle_left", "handle_right"):
            h = np.empty(len(kp) * 2, np.float32)
            kp.foreach_get(name, h)
            h = h.reshape(-1, 2)
            h[:, 1] += delta
            kp.foreach_set(name, h.ravel())
        fc.update()


def _transform_camera(obj, s: float, R: np.ndarray, t: np.ndarray) -> None:
    loc = _key_arrays(obj, "location", 3)
    rot_path = {"QUATERNION": "rotation_quaternion", "AXIS_ANGLE": None}.get(obj.rotation_mode, "rotation_euler")
    rot = _key_arrays(obj, rot_path, 4 if rot_path == "rotation_quaternion" else 3) if rot_path else None
    if loc is not None:
        fcs, L = loc
        _write_keys(fcs, s * (R @ L) + t[:, None])
    if rot is not None:
        if rot_path != "rotation_quaternion":
            raise ToolError(f"{obj.name}: Euler-keyed cameras are not supported by the scene tools; use "
                            "quaternion rotation (pointmap's animated camera does).")
        fcs, Q = rot
        Rk = R @ quaternion_to_matrix(Q.T)
        q = matrix_to_quaternion(Rk)
        q = continuous_quaternions(q)
        if np.dot(q[0], Q[:, 0]) < 0:           # keep the first key's sign as it was
            q = -q
        _write_keys(fcs, q.T)
    # The current pose (and any un-keyed channel): S applied to the matrix, the camera's own scale kept.
    # Keyed channels override this at the next evaluation with the keys just rewritten.
    from mathutils import Matrix

    M = np.array(obj.matrix_world)
    N = np.eye(4)
    N[:3, :3] = R @ M[:3, :3]
    N[:3, 3] = s * (R @ M[:3, 3]) + t
    obj.matrix_world = Matrix(N.tolist())


def apply_similarity(coll, S: np.ndarray, scene=None) -> int:
    """Apply the 4x4 similarity S to every top-level object of the run `coll`; returns how many."""
    from mathutils import Matrix

    s, R, t = decompose_similarity(S)
    if not (s > 0 and np.isfinite(S).all()):
        raise ToolError("The transform is not a proper similarity (zero or negative scale).")
    objs = [o for o in coll.all_objects if o.parent is None or o.parent.name not in coll.all_objects]
    SM = Matrix(np.asarray(S, np.float64).tolist())
    for obj in objs:
        if obj.type == "CAMERA":
            _transform_camera(obj, s, R, t)
        else:
            obj.matrix_world = SM @ obj.matrix_world
    W = np.array(coll.get(keys.WORLD_MATRIX, np.eye(4).ravel().tolist()), np.float64).reshape(4, 4)
    coll[keys.WORLD_MATRIX] = (S @ W).ravel().tolist()
    acc = np.array(coll.get(keys.SCENE_SIMILARITY, np.eye(4).ravel().tolist()), np.float64).reshape(4, 4)
    coll[keys.SCENE_SIMILARITY] = (S @ acc).ravel().tolist()
    if scene is not None:
        scene.frame_set(scene.frame_current)     # re-evaluate animated cameras at the current frame
    return len(objs)


def run_tool(context, make_transform) -> tuple[object, np.ndarray]:
    """Read the selection, compute S = make_transform(points, coll), apply S; return (collection, S).

    From Edit Mode the tool first goes back to Object Mode: object matrices and keys are not part of
    Edit Mode's undo steps, so this keeps the tool one global undo step, and the vertex selection is
    then read from the mesh's selection layer (leaving Edit Mode writes it; reading it costs
    milliseconds, where `update_from_editmode` would convert the whole mesh a second time). If the
    tool fails, Edit Mode is restored. Raises ToolError with a user-facing message.
    """
    import bpy

    obj = context.active_object
    was_edit = obj is not None and obj.type == "MESH" and obj.mode == "EDIT"
    if was_edit:
        bpy.ops.object.mode_set(mode="OBJECT")
        for other in context.selected_objects:      # the edited mesh's own selection is what counts
            if other is not obj:
                other.select_set(False)
        obj.select_set(True)
    try:
        P, coll = selected_world_points(context)
        try:
            S = make_transform(P, coll)
        except OrientError as err:
            raise ToolError(f"{str(err)[:1].upper()}{str(err)[1:]}.") from err
    except ToolError:
        if was_edit:
            bpy.ops.object.mode_set(mode="EDIT")
        raise
    apply_similarity(coll, S, context.scene)
    return coll, S
