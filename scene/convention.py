"""OpenCV (core) → Blender conventions: the ONE place where frames and intrinsics are converted.

Pure numpy, no bpy, so every formula here is unit-tested without Blender.

Frames
------
* Core cameras are OpenCV: x right, y down, z forward; `cam2world` maps camera → world.
* A Blender camera looks down its local −Z with +Y up, so the camera object's matrix is
  ``matrix_world = W · cam2world · diag(1, −1, −1, 1)`` (flip y and z of the camera axes).
* W is a world re-orientation applied to points and cameras alike (a rotation, never a scale):

  - ``"z_up"`` (default): ``W = Rx(−90°)``: Blender (X, Y, Z) = OpenCV (x, z, −y). Backends put the
    first camera at the identity, so the first photo's "down" (OpenCV +y) becomes Blender −Z and
    its viewing direction becomes Blender +Y, the way a Blender user expects a level photo to sit.
  - ``"cameras_up"``: like ``"z_up"`` but the up direction is the mean of all cameras' up vectors
    (OpenCV −y), so a tilted first photo does not tilt the whole scene.
  - ``"none"``: W = identity (the raw OpenCV world, y down).

Intrinsics (derived from Blender's viewplane computation, verified by a reprojection test in bpy)
-----------------------------------------------------------------------------------------------
OpenCV puts the centre of pixel (u, v) at (u, v); Blender's normalised frame coordinates put it at
((u + 0.5)/W, 1 − (v + 0.5)/H) with y up, so the principal point in "edge" coordinates is cx + 0.5.
Blender pixel aspect (ax, ay) makes fy = fx · ax / ay. With the sensor fitted along the image's
longer side (HORIZONTAL for landscape/square, VERTICAL for portrait):

* HORIZONTAL: lens = fx · sensor / W,   D = W
* VERTICAL:   lens = fy · sensor / H,   D = H · ay / ax
* shift_x = (W/2 − (cx + 0.5)) / D,      shift_y = (cy + 0.5 − H/2) · (ay / ax) / D
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SENSOR_MM = 36.0   # sensor size along the fitted (longer) image side; any value works, 36 mm is familiar

WORLD_ORIENTATIONS = ("z_up", "cameras_up", "none")

# OpenCV camera axes (x right, y down, z forward) → Blender camera axes (x right, y up, looks down −z).
CV_TO_BLENDER_CAM = np.diag([1.0, -1.0, -1.0, 1.0])

# Rx(−90°): OpenCV world (x, y down, z forward) → Blender world (x, y forward, z up).
RX_MINUS_90 = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])


def rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Smallest rotation R (3x3) with R @ a ∥ b (Rodrigues); a and b need not be unit length."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    a = a / np.linalg.norm(a)
    b = b / np.linalg.norm(b)
    v = np.cross(a, b)
    c = float(np.dot(a, b))
    if c < -1.0 + 1e-9:
        # Opposite vectors: rotate 180° about any axis perpendicular to a.
        axis = np.cross(a, [1.0, 0.0, 0.0])
        if np.linalg.norm(axis) < 1e-6:
            axis = np.cross(a, [0.0, 1.0, 0.0])
        axis /= np.linalg.norm(axis)
        return 2.0 * np.outer(axis, axis) - np.eye(3)
    vx = np.array([[0.0, -v[2], v[1]], [v[2], 0.0, -v[0]], [-v[1], v[0], 0.0]])
    return np.eye(3) + vx + vx @ vx / (1.0 + c)


def world_rotation(orientation: str, cam2world: np.ndarray | None = None) -> np.ndarray:
    """The 4x4 world re-orientation W (a pure rotation) for `orientation` (see module docstring).

    cam2world: (N, 4, 4) OpenCV cameras, needed for "cameras_up".
    """
    W = np.eye(4)
    if orientation == "none":
        return W
    if orientation == "z_up":
        W[:3, :3] = RX_MINUS_90
        return W
    if orientation == "cameras_up":
        if cam2world is None or len(cam2world) == 0:
            raise ValueError("world orientation 'cameras_up' needs the cameras")
        # OpenCV camera up is −y; its world direction is −R[:, 1].
        up = -np.asarray(cam2world, np.float64)[:, :3, 1].sum(axis=0)
        if np.linalg.norm(up) < 1e-9:
            up = np.array([0.0, -1.0, 0.0])
        # First map the mean up onto OpenCV's up (−y), then apply the standard z-up turn.
        W[:3, :3] = RX_MINUS_90 @ rotation_between(up, np.array([0.0, -1.0, 0.0]))
        return W
    raise ValueError(f"unknown world orientation {orientation!r}; expected one of {WORLD_ORIENTATIONS}")


def camera_matrix_world(cam2world: np.ndarray, W: np.ndarray) -> np.ndarray:
    """Blender camera object matrices, (N, 4, 4) or (4, 4): W · cam2world · diag(1, −1, −1, 1)."""
    return W @ np.asarray(cam2world, np.float64) @ CV_TO_BLENDER_CAM


def transform_points(points: np.ndarray, W: np.ndarray) -> np.ndarray:
    """Apply the world re-orientation to (..., 3) points; returns float32 of the same shape."""
    R = W[:3, :3].astype(np.float32)
    t = W[:3, 3].astype(np.float32)
    out = np.asarray(points, np.float32) @ R.T
    if np.any(t):
        out += t
    return out


@dataclass(frozen=True)
class BlenderIntrinsics:
    """Blender camera data + render settings reproducing one OpenCV K exactly.

    width/height: render resolution (original image pixels); sensor_fit: "HORIZONTAL" | "VERTICAL";
    sensor_width/height in mm (the fitted one is SENSOR_MM, the other follows the image aspect);
    lens in mm; shift_x/y as fractions of the fitted dimension; pixel_aspect_x/y >= 1.
    sensor_scale: > 1 when the asked sensor was enlarged by that factor because the lens or a sensor side fell
    below Blender's 1 mm minimum (Blender would clamp it and change the field of view); 1 otherwise.
    """

    width: int
    height: int
    lens: float
    sensor_fit: str
    sensor_width: float
    sensor_height: float
    shift_x: float
    shift_y: float
    pixel_aspect_x: float
    pixel_aspect_y: float
    sensor_scale: float = 1.0

    @property
    def field_of_view_deg(self) -> float:
        """Field of view along the fitted side, degrees."""
        side = self.sensor_width if self.sensor_fit == "HORIZONTAL" else self.sensor_height
        return float(np.degrees(2 * np.arctan(side / (2 * self.lens))))


BLENDER_MIN_MM = 1.0   # Blender's hard minimum for Camera.lens, sensor_width and sensor_height


def blender_intrinsics(K: np.ndarray, width: int, height: int, sensor: float = SENSOR_MM,
                       above_blender_minimum: bool = False) -> BlenderIntrinsics:
    """Convert a 3x3 OpenCV K (pixel centres at integers) for a width×height image to Blender terms.
    above_blender_minimum: enlarge lens and sensor together (same rays) when either would be below 1 mm."""
    K = np.asarray(K, np.float64)
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    if not (fx > 0 and fy > 0 and width > 0 and height > 0):
        raise ValueError(f"invalid intrinsics fx={fx} fy={fy} for a {width}x{height} image")
    if abs(K[0, 1]) > 1e-6 * fx:
        # Blender cameras have no skew; a skewed K cannot be reproduced exactly.
        raise ValueError(f"intrinsics with skew ({K[0, 1]}) cannot be represented by a Blender camera")
    # Blender's pixel aspect values are >= 1: stretch whichever axis needs it. fy/fx = ax/ay.
    if fy >= fx:
        ax, ay = fy / fx, 1.0
    else:
        ax, ay = 1.0, fx / fy
    ycor = ay / ax
    if width >= height:
        fit = "HORIZONTAL"
        lens = fx * sensor / width
        D = float(width)
        sw, sh = sensor, sensor * height / width
    else:
        fit = "VERTICAL"
        lens = fy * sensor / height
        D = height * ycor
        sw, sh = sensor * width / height, sensor
    shift_x = (width / 2.0 - (cx + 0.5)) / D
    shift_y = (cy + 0.5 - height / 2.0) * ycor / D
    # lens and sensor scale together (only their ratio sets the rays): lift both so none is below 1 mm.
    scale = max(1.0, BLENDER_MIN_MM / lens, BLENDER_MIN_MM / sw, BLENDER_MIN_MM / sh) if above_blender_minimum \
        else 1.0
    return BlenderIntrinsics(int(width), int(height), float(lens * scale), fit, float(sw * scale),
                             float(sh * scale), float(shift_x), float(shift_y), float(ax), float(ay), float(scale))


def project_blender(points_cam_bl: np.ndarray, intr: BlenderIntrinsics) -> np.ndarray:
    """Reference projection of Blender-camera-frame points (..., 3) to normalised frame coords (x, y up).

    Mirrors Blender's viewplane maths; used by tests to check `blender_intrinsics` without bpy.
    """
    p = np.asarray(points_cam_bl, np.float64)
    ycor = intr.pixel_aspect_y / intr.pixel_aspect_x
    if intr.sensor_fit == "HORIZONTAL":
        viewfac = intr.width
        sensor = intr.sensor_width
    else:
        viewfac = ycor * intr.height
        sensor = intr.sensor_height
    f = intr.lens / sensor * viewfac                     # focal in pre-aspect "view pixels"
    z = -p[..., 2]
    xv = f * p[..., 0] / z
    yv = f * p[..., 1] / z
    x = (xv + 0.5 * intr.width - intr.shift_x * viewfac) / intr.width
    y = (yv + 0.5 * ycor * intr.height - intr.shift_y * viewfac) / (ycor * intr.height)
    return np.stack([x, y], axis=-1)


# --- colours -------------------------------------------------------------------------------------

def _srgb_lut() -> np.ndarray:
    c = np.arange(256, dtype=np.float64) / 255.0
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    return lin.astype(np.float32)


SRGB_TO_LINEAR = _srgb_lut()   # (256,) float32: exact IEC 61966-2-1 decoding of each byte value


def srgb8_to_linear_rgba(colors: np.ndarray) -> np.ndarray:
    """(..., 3) uint8 sRGB → (..., 4) float32 linear RGBA with alpha 1 (Blender FLOAT_COLOR layout)."""
    colors = np.asarray(colors)
    out = np.ones(colors.shape[:-1] + (4,), np.float32)
    out[..., :3] = SRGB_TO_LINEAR[colors]
    return out


def flip_rows(image: np.ndarray) -> np.ndarray:
    """Top-to-bottom rows (numpy/OpenCV) ↔ Blender's bottom-to-top image rows."""
    return np.ascontiguousarray(image[::-1])


def pixel_uv(net_to_orig: np.ndarray, h: int, w: int, orig_h: int, orig_w: int) -> np.ndarray:
    """Blender UVs (h, w, 2) of every network pixel centre inside the original image.

    Network pixel (u, v) → original pixel (x0, y0) = net_to_orig · (u, v, 1);
    UV = ((x0 + 0.5) / W0, 1 − (y0 + 0.5) / H0) (Blender's v runs bottom to top).
    """
    A = np.asarray(net_to_orig, np.float64)
    u, v = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    x0 = A[0, 0] * u + A[0, 1] * v + A[0, 2]
    y0 = A[1, 0] * u + A[1, 1] * v + A[1, 2]
    uv = np.empty((h, w, 2), np.float32)
    uv[..., 0] = (x0 + 0.5) / orig_w
    uv[..., 1] = 1.0 - (y0 + 0.5) / orig_h
    return uv
