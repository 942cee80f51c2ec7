"""Options of `reconstruct()`: one typed tree instead of keyword arguments.

`ReconstructOptions` holds what every backend shares (device, precision, input handling, what is known
about the camera) and one nested group per stage or backend:

    ReconstructOptions
      .pairwise  PairwiseOptions   scene graph and memory plan of DUSt3R / MASt3R
      .align     AlignOptions      global alignment of pairwise pointmaps
      .vggt      VGGTOptions       VGGT's preprocessing and outputs
      .da3       DA3Options        Depth Anything 3's preprocessing and known cameras
      .sequence  SequenceOptions   a shot: frame range, stride, first frame number, chunking

Adding a group (e.g. `DA3Options`, `SequenceOptions`, `MeshOptions`): define the dataclass in its own
module or here, and add one `name: Group = field(default_factory=Group)` line to `ReconstructOptions`;
nothing else changes. Every group is a plain dataclass with defaults, so `ReconstructOptions()` is a
complete, valid run description, and `dataclasses.replace` / attribute assignment edit it.

Confidence thresholds: `AlignOptions.conf_threshold` decides which pixels weigh in the *alignment*; the
display / export threshold (`SceneOptions.min_conf`, `write_ply(min_conf=...)`) only filters what is shown
or written afterwards. They are different knobs with different names.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

BACKENDS = ("auto", "pairs", "vggt", "da3")
DA3_METHODS = ("upper_bound_resize", "upper_bound_crop", "lower_bound_resize", "lower_bound_crop")
DA3_REF_STRATEGIES = ("saddle_balanced", "first", "middle", "saddle_sim_range")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
BAD_IMAGE_POLICIES = ("skip", "raise")
INPUT_CROPS = ("auto", "square", "whole")


@dataclass
class PairwiseOptions:
    """Pairwise (DUSt3R / MASt3R) inference.

    graph:         scene graph: complete, swin-K, swin-K-noncyclic, logwin-K, oneref-R, retrieval-K
                   (see `core.pairwise.graph.make_pairs`).
    memory_budget: bytes the pair predictions + alignment may take on the device (None: the free GPU
                   memory; on the CPU the available RAM). Above it predictions stay in host memory and are
                   streamed to the GPU (a warning says so). Without a budget, predictions larger than
                   `pairwise.memory.DEVICE_PREDICTIONS_MAX` (long shots) also stay in pinned host memory,
                   so the GPU peak is the alignment's, not the stored pairs'.
    offload:       True keeps predictions in host memory whatever the estimate, False never does, None
                   decides from `memory_budget`.
    """

    graph: str = "complete"
    memory_budget: int | None = None
    offload: bool | None = None


@dataclass
class AlignOptions:
    """Global alignment (`core.align.refine.global_align`). Focal lengths and intrinsics in network pixels.

    `focals`, `intrinsics`, `known_poses` and `device` are per-run data that `reconstruct()` fills in from
    the top-level options; scripts calling `global_align` directly set them themselves.
    """

    iterations: int | None = None          # most optimisation steps; None: 200 (early stop)
    shared_focal: bool = False             # one focal for all views with an unknown focal
    focals: Sequence[float] | None = None  # per image known focal; NaN = unknown
    intrinsics: Sequence | None = None     # per image known 3x3 K_net, or None entries; fixed if given
    known_poses: dict[int, np.ndarray] | None = None   # image → 4x4 cam2world (OpenCV), kept fixed
    conf_threshold: float = 1.0            # pixels below this confidence get no alignment weight
    robust_scale: float | None = None      # Cauchy scale on |residual|/depth; None = from the data
    lr: float = 0.003                      # Adam step (radians, log units, scene-scale units)
    lr_final_factor: float = 0.01          # cosine decay to lr * this
    coarse_samples: int = 1024             # pixels per observation in the coarse stage
    fine_samples: int = 8192               # ... and in the fine stage
    fine_fraction: float = 0.25            # share of the iterations spent in the fine stage
    tolerance: float = 1e-5                # stop a stage when the loss fell by less than this (relative) in
                                           # 10 steps (a shot uses `align.schedule.for_shot`'s 2e-3)
    device: str | None = None              # default: the device of the predictions
    cuda_graph: bool = True                # on CUDA, replay each stage's step as one captured graph


@dataclass
class VGGTOptions:
    """VGGT single pass.

    points: "depth" (depth map unprojected with the cameras, the reference's recommendation) or "head"
            (the point head).
    mode:   preprocessing, "crop" or "pad".
    fused:  compile the transformer blocks (CUDA; ~4 % faster on long runs, ~15 s one-time compile).
    """

    points: str = "depth"
    mode: str = "crop"
    fused: bool = False


@dataclass
class DA3Options:
    """Depth Anything 3 single pass (core/backends/da3.py).

    method:       preprocessing: "upper_bound_resize" (the reference API's default: long side to the input size,
                  sides to multiples of 14), "upper_bound_crop", "lower_bound_resize", "lower_bound_crop".
    intrinsics:   known (N, 3, 3) intrinsics in original-image pixels, one per input image, or None (predicted).
    world2cam:    known (N, 4, 4) world-to-camera poses (OpenCV axes) or None; needs `intrinsics` and runs the
                  camera-conditioned mode (the result keeps these cameras).
    ref_strategy: which view defines the world frame when no cameras are given: "saddle_balanced" (the
                  reference's default), "first", "middle", "saddle_sim_range".
    fused:        compile the transformer blocks (CUDA, MLP backbones; one-time compile).
    """

    method: str = "upper_bound_resize"
    intrinsics: Sequence | np.ndarray | None = None
    world2cam: Sequence | np.ndarray | None = None
    ref_strategy: str = "saddle_balanced"
    fused: bool = False


@dataclass
class SequenceOptions:
    """How a shot (a movie file or a folder holding an image sequence) becomes frames.

    Used when `reconstruct()`'s input is a movie file or `is_shot` is set for an image folder. Frame numbers
    are the clip's own (a plate may start at 1001); the result's `Reconstruction.frame_numbers` holds them.

    is_shot:      treat an image folder as one ordered shot (numbers from the file names) rather than a photo set.
    first_frame:  number of a movie's first frame (image sequences take theirs from the file names).
    start, end:   first and last clip frame to solve, inclusive (None: the clip's first / last).
    stride:       solve every stride-th frame (the scene builder interpolates the rest).
    on_bad_frame: "skip" (the frame gets no camera; the report names it) or "raise" (stop, naming it).
    window:       pairwise backend: the sliding window of the `seq-K` graph used for shots (log links and
                  retrieval loop closures come with it) unless `pairwise.graph` is set to another graph than
                  the default.
    shared_focal: pairwise backend: one focal for the whole shot (False: one per frame, for zooms). VGGT and
                  DA3 predict a focal per frame whatever this says.
    chunk:        VGGT / DA3: frames per chunk (None: from free GPU memory; 32 on the CPU).
    overlap:      VGGT / DA3: frames shared by consecutive chunks (None: 10 % of the chunk, at least 4).
    """

    is_shot: bool = False
    first_frame: int = 1
    start: int | None = None
    end: int | None = None
    stride: int = 1
    on_bad_frame: str = "skip"
    window: int = 4
    shared_focal: bool = True
    chunk: int | None = None
    overlap: int | None = None


@dataclass
class ReconstructOptions:
    """Everything `reconstruct()` can be told. Defaults reproduce a plain run.

    backend:        "auto" (from the checkpoint's family), "pairs", "vggt" or "da3".
    device:         "cuda", "cpu", "mps" or None (CUDA when available).
    precision:      "auto", "fp32", "bf16", "fp16".
    image_size:     network input size (None: what the checkpoint was trained for).
    input_crop:     DUSt3R/MASt3R at size 224: "square" (the official rule: short side to 224, central square),
                    "whole" (the whole photo: long side to 224, sides cropped to multiples of 16, squares
                    stay square) or "auto" (what the checkpoint declares: config.json `pointmap_crop`, else
                    "square"). At other sizes DUSt3R's rule keeps the whole photo anyway: there "whole" only
                    keeps square photos square (instead of 4:3) and "square" changes nothing. VGGT/DA3 ignore it.
    on_bad_image:   "skip" (report in `warnings`, use the rest) or "raise" (stop at the first bad file).
    cache_dir:      where registry checkpoints are looked up (None: the default weights folder).
    known_focal_mm: the lens, if known; with `sensor_width_mm` = the sensor's long side (36: full frame).
    intrinsics:     known intrinsics in original-image pixels (pixel centres at integers): one 3x3 K for every
                    image or frame (a calibrated lens), or (N, 3, 3) one per input image (photos). Every
                    backend keeps them: the aligner holds them fixed, VGGT and DA3 unproject depth with them.
    known_poses:    {key: 4x4 cam2world, OpenCV axes} for views whose pose is known (a surveyed set, an
                    earlier solve); keys: clip frame numbers for a shot, file names / image names / indices
                    for photos. The pairwise aligner holds them fixed; a VGGT / DA3 solve is moved onto them
                    by one similarity and the known views set exactly (`core.align.anchor`). Two or more fix
                    the scale and the world frame; the result is in the poses' world and units.
    """

    backend: str = "auto"
    device: str | None = None
    precision: str = "auto"
    image_size: int | None = None
    input_crop: str = "auto"
    on_bad_image: str = "skip"
    cache_dir: str | Path | None = None
    known_focal_mm: float | None = None
    sensor_width_mm: float = 36.0
    intrinsics: Sequence | np.ndarray | None = None
    known_poses: dict | None = None
    pairwise: PairwiseOptions = field(default_factory=PairwiseOptions)
    align: AlignOptions = field(default_factory=AlignOptions)
    vggt: VGGTOptions = field(default_factory=VGGTOptions)
    da3: DA3Options = field(default_factory=DA3Options)
    sequence: SequenceOptions = field(default_factory=SequenceOptions)

    def check(self) -> None:
        """Raise `ValueError` naming the first option with a value no backend understands."""
        for name, value, allowed in (("backend", self.backend, BACKENDS), ("precision", self.precision, PRECISIONS),
                                     ("on_bad_image", self.on_bad_image, BAD_IMAGE_POLICIES),
                                     ("input_crop", self.input_crop, INPUT_CROPS),
                                     ("vggt.points", self.vggt.points, ("depth", "head")),
                                     ("vggt.mode", self.vggt.mode, ("crop", "pad")),
                                     ("da3.method", self.da3.method, DA3_METHODS),
                                     ("da3.ref_strategy", self.da3.ref_strategy, DA3_REF_STRATEGIES),
                                     ("sequence.on_bad_frame", self.sequence.on_bad_frame, BAD_IMAGE_POLICIES)):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}, not {value!r}")
        if self.known_focal_mm is not None and (self.known_focal_mm <= 0 or self.sensor_width_mm <= 0):
            raise ValueError("known_focal_mm and sensor_width_mm must be positive (mm)")
        if self.image_size is not None and self.image_size <= 0:
            raise ValueError(f"image_size must be positive, not {self.image_size}")
        if self.intrinsics is not None:
            from .priors import check_intrinsics

            check_intrinsics(self.intrinsics)
            if self.known_focal_mm:
                raise ValueError("give known_focal_mm or intrinsics, not both (intrinsics hold the focal length)")
            if self.da3.intrinsics is not None:
                raise ValueError("give intrinsics or da3.intrinsics, not both")
        if self.known_poses is not None:
            if not isinstance(self.known_poses, dict):
                raise ValueError(f"known_poses must be a dict {{view: 4x4 cam2world}}, not "
                                 f"{type(self.known_poses).__name__}")
            if self.da3.world2cam is not None:
                raise ValueError("give known_poses or da3.world2cam, not both")
            from .priors import check_pose

            for key, T in self.known_poses.items():
                check_pose(T, repr(key))
        seq = self.sequence
        if seq.stride < 1 or seq.window < 1:
            raise ValueError(f"sequence.stride and sequence.window must be at least 1, not {seq.stride} / {seq.window}")
        if seq.start is not None and seq.end is not None and seq.end < seq.start:
            raise ValueError(f"sequence.end ({seq.end}) is before sequence.start ({seq.start})")
        if seq.chunk is not None and seq.chunk < 8:
            raise ValueError(f"sequence.chunk must be at least 8 frames, not {seq.chunk}")

    def unit_warnings(self) -> list[str]:
        """Warnings for values that are valid but almost certainly in the wrong unit: a known focal length
        below 1 mm, a sensor outside 1–150 mm (36 = full frame). The run goes on with them as given."""
        out = []
        f, s = self.known_focal_mm, self.sensor_width_mm
        if f is None:
            return out
        if f < 1.0:
            fov = math.degrees(2 * math.atan(s / (2 * f)))
            out.append(f"The known focal length is {f:g} mm, below 1 mm: with a {s:g} mm sensor that is a "
                       f"{fov:.0f}° field of view. Focal lengths are in millimetres (e.g. 35), not metres.")
        if not 1.0 <= s <= 150.0:
            out.append(f"The sensor width is {s:g} mm, outside any real camera's (1–150 mm; 36 is full frame): "
                       "it is in millimetres, along the image's long side.")
        return out


__all__ = ["AlignOptions", "DA3Options", "PairwiseOptions", "ReconstructOptions", "SequenceOptions", "VGGTOptions"]
