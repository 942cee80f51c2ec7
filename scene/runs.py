"""A run's saved Reconstruction and its fused mesh: what the reconstruct and Re-mesh operators share.

Every run keeps its `Reconstruction` as an .npz file (`Reconstruction.save`) and its collection holds
the file's path (`keys.RECONSTRUCTION`), so the fused mesh can be rebuilt with other settings without
running the network again.

* `RunFile`: a file name reserved on the main thread by exclusive creation (never an existing file;
  `name.npz`, `name-2.npz`, ...), filled by the worker, removed again if the run fails or is cancelled.
* `run_work`: the worker-thread part of a run after the network (or after loading a saved file): fuse
  the mesh (a fusion failure becomes a warning; the saved run can be re-meshed), save the file.
* `remesh_work` / `replace_fused_mesh`: Re-mesh: load the saved file and fuse in the worker, then, on
  the main thread, swap the run's fused mesh object in one step (the new one is built first, so a
  failure leaves the old one in place).

No bpy at import: the worker functions run in a background thread.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

import numpy as np

from ..core.errors import PointmapError, check_cancel
from ..core.progress import ProgressFn, report
from . import keys

RUNS_FOLDER = "pointmap_runs"     # beside a saved .blend
EXTENSION = ".npz"


class RemeshError(PointmapError):
    """Re-mesh cannot run: no run found, or its saved reconstruction is missing."""


def safe_stem(name: str) -> str:
    """A file-name stem from a run / collection name (letters, digits, '.', '_', '-')."""
    return re.sub(r"[^\w.-]+", "_", name).strip("._") or "run"


@dataclass
class RunFile:
    """A reserved run file. `path` exists (empty) from `reserve()` on; `discard()` removes it and a folder
    the reservation created, once, and only while the run has not been kept (`keep()`)."""

    path: str
    made_dir: str | None = None
    kept: bool = False

    @classmethod
    def reserve(cls, folder: str, stem: str) -> RunFile:
        made = None
        try:
            if not os.path.isdir(folder):
                os.makedirs(folder)
                made = folder
            stem = safe_stem(stem)
            for k in range(1, 10000):
                path = os.path.join(folder, f"{stem}{'' if k == 1 else f'-{k}'}{EXTENSION}")
                try:
                    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
                except FileExistsError:
                    continue
                os.close(fd)
                return cls(path, made)
        except OSError as err:
            raise PointmapError(f"The run's reconstruction cannot be saved in {folder}: {err.strerror or err}.") \
                from err
        raise PointmapError(f"Could not find a free file name for the run's reconstruction in {folder}.")

    def keep(self) -> None:
        self.kept = True

    def discard(self) -> None:
        if self.kept:
            return
        try:
            os.remove(self.path)
        except OSError:
            pass
        if self.made_dir is not None:
            try:
                os.rmdir(self.made_dir)     # only when empty
            except OSError:
                pass
            self.made_dir = None


@dataclass
class RunResult:
    """What a run's worker hands to the main thread: the reconstruction, the fused mesh (or None) and the
    path of the saved reconstruction (or None when the run could not save it)."""

    recon: object
    fused_mesh: object | None = None
    saved: str | None = None
    warnings: list[str] = field(default_factory=list)


def fuse_or_warn(recon, mesh_options, progress: ProgressFn | None = None):
    """`fuse_reconstruction(recon, mesh_options)`, or (None, the sentence why) when the depth maps give
    no surface: the rest of the run is still built, and the saved run can be re-meshed."""
    from ..core.meshing import MeshingError, fuse_reconstruction

    report(progress, "mesh", 0, 1, "fusing the depth maps")
    try:
        mesh = fuse_reconstruction(recon, mesh_options)
    except MeshingError as err:
        return None, f"No fused mesh: {err} Re-mesh the run with other settings (no network needed)."
    report(progress, "mesh", 1, 1, f"{mesh.n_faces} faces")
    return mesh, None


def save_reconstruction(recon, path: str, cancel=None) -> None:
    """Write `recon` into the reserved `path`; a failed or cancelled write leaves no file behind."""
    try:
        with open(path, "wb") as f:
            recon.save(f)
        check_cancel(cancel)    # cancelled while writing: the user asked for nothing, keep nothing
    except BaseException:
        try:
            os.remove(path)
        except OSError:
            pass
        raise


def run_work(load, mesh_options, run_file: RunFile | None, existing: str | None = None,
             progress: ProgressFn | None = None, cancel=None) -> RunResult:
    """The worker-thread part of a run: recon = load(progress, cancel) (the network, or a saved file), then
    the fused mesh when `mesh_options` is given, then the reconstruction saved into `run_file`.

    existing: the path of a saved reconstruction the run was loaded from; the run refers to it instead of
    writing a copy (run_file is then None).
    """
    recon = load(progress, cancel)
    check_cancel(cancel)
    result = RunResult(recon, saved=existing)
    if mesh_options is not None:
        result.fused_mesh, warning = fuse_or_warn(recon, mesh_options, progress)
        if warning:
            result.warnings.append(warning)
        check_cancel(cancel)
    if run_file is not None:
        report(progress, "save", 0, 1, os.path.basename(run_file.path))
        save_reconstruction(recon, run_file.path, cancel)
        result.saved = run_file.path
    return result


# -- the path stored on the run's collection (main thread) --

def stored_path(path: str, blend_path: str) -> str:
    """The form kept on the collection: `//relative` when the file is inside the saved .blend's folder (the
    project can move as a whole), else absolute."""
    path = os.path.abspath(path)
    if blend_path:
        base = os.path.dirname(os.path.abspath(blend_path))
        try:
            rel = os.path.relpath(path, base)
        except ValueError:          # another drive (Windows)
            return path
        if not rel.startswith(os.pardir):
            return "//" + rel.replace(os.sep, "/")
    return path


def absolute_path(stored: str, blend_path: str) -> str:
    """Inverse of `stored_path` for the .blend at `blend_path` ('' when unsaved)."""
    if stored.startswith("//"):
        base = os.path.dirname(os.path.abspath(blend_path)) if blend_path else os.getcwd()
        return os.path.normpath(os.path.join(base, stored[2:]))
    return stored


def remember_run_file(coll, path: str, blend_path: str) -> None:
    coll[keys.RECONSTRUCTION] = stored_path(path, blend_path)


def run_file_of(coll, blend_path: str) -> str:
    """The absolute path of the run's saved reconstruction; RemeshError naming the path when it is gone."""
    stored = coll.get(keys.RECONSTRUCTION)
    if not stored:
        raise RemeshError(f"The run '{coll.name}' has no saved reconstruction (it was made before runs were "
                          "saved); reconstruct it again, or build it from a saved .npz.")
    path = absolute_path(str(stored), blend_path)
    if not os.path.isfile(path):
        raise RemeshError(f"The saved reconstruction of run '{coll.name}' is missing: {path} does not exist "
                          f"(moved or deleted?). Put it back there, or set the collection's "
                          f"'{keys.RECONSTRUCTION}' property to its new path.")
    return path


def find_run(context):
    """The run to re-mesh: the run holding the active object, else the active collection if it is a run,
    else the scene's only run. RemeshError when there is none or the choice is ambiguous."""
    from .tools import ToolError, run_collection_of

    active = context.view_layer.active_layer_collection.collection if context.view_layer else None
    obj = context.active_object
    if (obj is None or not any(keys.FAMILY in c for c in obj.users_collection)) and active is not None \
            and keys.FAMILY in active:
        return active
    try:
        return run_collection_of(obj, context.scene)
    except ToolError as err:
        raise RemeshError(str(err)) from err


def remesh_work(path: str, mesh_options, progress: ProgressFn | None = None, cancel=None):
    """Worker thread: the saved reconstruction at `path` → its fused mesh (MeshingError says why not)."""
    from ..core.meshing import fuse_reconstruction
    from ..core.reconstruction import load_reconstruction

    report(progress, "load", 0, 1, os.path.basename(path))
    recon = load_reconstruction(path)
    check_cancel(cancel)
    report(progress, "mesh", 0, 1, "fusing the depth maps")
    mesh = fuse_reconstruction(recon, mesh_options)
    report(progress, "mesh", 1, 1, f"{mesh.n_faces} faces")
    return mesh


def scene_scale(coll) -> float:
    """Scene units per reconstruction unit of the run: the scale the scene tools applied (Set Scale), 1 before.
    Re-mesh divides a voxel size given in scene units by it."""
    S = np.array(coll.get(keys.SCENE_SIMILARITY, np.eye(4).ravel().tolist()), np.float64).reshape(4, 4)
    return float(abs(np.linalg.det(S[:3, :3])) ** (1.0 / 3.0))


def fused_mesh_objects(coll) -> list:
    return [o for o in coll.objects if o.get(keys.FUSED_MESH)]


def replace_fused_mesh(coll, mesh):
    """Put `mesh` (a `core.meshing.Mesh` in the run's reconstruction frame) into the run `coll` as its fused
    mesh, replacing the old one(s): same name, same object matrix (scene tools and user moves are kept).
    The new object is built first; the old objects and their orphaned data are removed only then.
    Returns the new object. Main thread."""
    import bpy
    from mathutils import Matrix

    from .fused_mesh import build_fused_mesh
    from .ledger import Created

    old = fused_mesh_objects(coll)
    W_scene = np.array(coll.get(keys.WORLD_MATRIX, np.eye(4).ravel().tolist()), np.float64).reshape(4, 4)
    S = np.array(coll.get(keys.SCENE_SIMILARITY, np.eye(4).ravel().tolist()), np.float64).reshape(4, 4)
    # The build's own re-orientation: scene tools left WORLD_MATRIX = S · W.
    W = np.linalg.solve(S, W_scene)
    name = old[0].name if old else f"{coll.name} fused mesh"
    matrix = old[0].matrix_world.copy() if old else Matrix(S.tolist())
    created = Created()
    try:
        obj = build_fused_mesh(name, mesh, W, coll, created)
        obj[keys.FUSED_MESH] = True
        obj.matrix_world = matrix
    except BaseException:
        created.undo()
        raise
    data = [(o.data, list(o.data.materials)) for o in old]
    bpy.data.batch_remove(old)
    for me, mats in data:
        if me.users == 0:
            bpy.data.meshes.remove(me)
        for mat in mats:
            if mat is not None and mat.users == 0:
                bpy.data.materials.remove(mat)
    obj.name = name
    obj.data.name = name
    return obj
