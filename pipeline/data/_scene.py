"""The synthetic city's scene: a 2.5D street under a moving camera, rendered by ray casting.

Every surface is an axis-aligned plane patch (a *face*) in world coordinates (metres; X to the
right, Y up, Z along the street) moving at a constant velocity: the ground, building facades and
upright billboards for poles, signs, traffic lights, trees, people and cars (a car is a box of
which the end and the side facing the camera are drawn). A frame casts one ray through each pixel
centre and keeps the nearest face (a z-buffer), so every pixel knows its scene point exactly. The
optical flow is then analytic: that point, moved back by its face's velocity, projected by the
previous frame's camera. This is the convention of ``pipeline.flow.warp``: ``flow[t]`` warps frame
t-1 onto frame t, ``frame_t(x, y) ~= frame_{t-1}(x + u, y + v)``. A pixel is valid when that
projection lands inside the previous frame on the same face (not occluded, not out of frame).

Textures are value noise from tables drawn with a numpy Generator, band-limited by each pixel's
footprint on its surface (octaves finer than about two pixels fade out), so distant surfaces do
not alias and bilinear warping reproduces them.

Label ids are Cityscapes' own (``pipeline.data.labels``, from cityscapesscripts).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from pipeline.data.labels import label_table

__all__ = ["LABEL", "Camera", "Noise", "Face", "Scene", "Frame", "build_scene", "render", "flow_from"]

LABEL: dict[str, int] = {record["name"]: record["id"] for record in label_table()}
NEAR = 0.3        # metres: nearer surface points are not drawn (the lens)
FAR = 2000.0      # metres: faces beyond are culled
SKY = -1          # surface index of the sky

# A painter takes local coordinates (a, b) in metres and the pixel footprints along them and
# returns (inside mask, RGB colour in [0, 1] [N, 3], label id (scalar or [N])).
Painter = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
                   tuple[np.ndarray, np.ndarray, np.ndarray | int]]
# Local axes (a, b) of a face by the axis of its normal.
_LOCAL = {0: (2, 1), 1: (0, 2), 2: (0, 1)}


# ---------------------------------------------------------------------------------------------
# Camera


@dataclass(frozen=True)
class Camera:
    """A pinhole camera driving along +Z; yaw and pitch wobble in quadrature so the view never
    stands still (even the sky, at infinity, moves every frame)."""

    height: int
    width: int
    focal: float          # pixels
    speed: float          # metres per frame
    eye: float            # height above the road
    lane: float           # mean X
    sway: float           # amplitude of a slow lateral drift (m)
    yaw: float            # wobble amplitudes (rad)
    pitch: float
    tilt: float           # mean pitch (rad, negative looks down)
    period: float         # frames per wobble cycle
    phase: float

    @property
    def centre(self) -> tuple[float, float]:
        return (self.width - 1) / 2.0, (self.height - 1) / 2.0

    def position(self, t: float) -> np.ndarray:
        x = self.lane + self.sway * np.sin(2 * np.pi * t / (3.1 * self.period) + 2 * self.phase)
        return np.array([x, self.eye, self.speed * t])

    def rotation(self, t: float) -> np.ndarray:
        """World-from-camera rotation; camera axes are x right, y down, z forward."""
        angle = 2 * np.pi * t / self.period + self.phase
        yaw = self.yaw * np.sin(angle)
        pitch = self.tilt + self.pitch * np.cos(angle)
        cy, sy, cp, sp = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch)
        turn = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
        nod = np.array([[1, 0, 0], [0, cp, sp], [0, -sp, cp]])
        return turn @ nod @ np.diag([1.0, -1.0, 1.0])

    @cached_property
    def pixel_rays(self) -> np.ndarray:
        """Camera-frame rays through pixel centres ``[H, W, 3]``, z component 1."""
        cx, cy = self.centre
        v, u = np.mgrid[0:self.height, 0:self.width].astype(np.float64)
        return np.stack([(u - cx) / self.focal, (v - cy) / self.focal, np.ones_like(u)], axis=-1)

    def to_camera(self, points: np.ndarray, t: float, directions: bool = False) -> np.ndarray:
        """World points (or directions) ``[..., 3]`` in camera coordinates at time ``t``."""
        rel = points if directions else points - self.position(t)
        return rel @ self.rotation(t)

    def pixels(self, cam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixel coordinates (u, v) of camera-frame points ``[..., 3]`` (depth must be > 0)."""
        cx, cy = self.centre
        depth = np.where(cam[..., 2] > 1e-9, cam[..., 2], 1e-9)
        return cx + self.focal * cam[..., 0] / depth, cy + self.focal * cam[..., 1] / depth


# ---------------------------------------------------------------------------------------------
# Noise and anti-aliased patterns


class Noise:
    """Value noise from a seeded table, summed over octaves that fade out below two pixels."""

    def __init__(self, rng: np.random.Generator, size: int = 256):
        self.size = size
        self.table = rng.random(size * size)

    def value(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Smoothly interpolated table values in [0, 1] at real coordinates (table cells)."""
        x0, y0 = np.floor(x), np.floor(y)
        fx, fy = x - x0, y - y0
        fx, fy = fx * fx * (3 - 2 * fx), fy * fy * (3 - 2 * fy)
        mask = self.size - 1
        ix, iy = x0.astype(np.int64) & mask, y0.astype(np.int64) & mask
        ix1, iy1 = (ix + 1) & mask, (iy + 1) & mask
        t = self.table
        top = t[iy * self.size + ix] * (1 - fx) + t[iy * self.size + ix1] * fx
        bottom = t[iy1 * self.size + ix] * (1 - fx) + t[iy1 * self.size + ix1] * fx
        return top * (1 - fy) + bottom * fy

    def fbm(self, x: np.ndarray, y: np.ndarray, footprint: np.ndarray, scale: float,
            octaves: int = 4, key: float = 0.0) -> np.ndarray:
        """Fractal noise, roughly in [-1, 1], of coarsest wavelength ``scale`` metres."""
        total = np.zeros(np.shape(x))
        weight_sum = sum(0.55 ** octave for octave in range(octaves))
        for octave in range(octaves):
            wavelength = scale / 2.0 ** octave
            weight = 0.55 ** octave
            # Present when the wavelength spans 5 pixels or more, gone at 2.5: no aliasing, and
            # what remains is smooth enough for a bilinear warp to reproduce.
            fade = np.minimum(np.maximum(wavelength / np.maximum(footprint, 1e-9) / 2.5 - 1.0, 0.0), 1.0)
            if not fade.any():
                break       # finer octaves are unresolved too
            offset = 37.17 * key + 11.31 * octave
            total += weight * fade * (self.value(x / wavelength + offset, y / wavelength - offset) - 0.5)
        return total * (2.4 / weight_sum)

    def curve(self, x: np.ndarray, scale: float, key: float) -> np.ndarray:
        """A smooth 1-D profile in [0, 1] (building tops of parks, tree crowns)."""
        return self.value(x / scale + 7.3 * key, np.full(np.shape(x), 3.7 * key))


def _cover(distance: np.ndarray, footprint: np.ndarray) -> np.ndarray:
    """The fraction of a pixel inside a region, from the signed distance (m) to its edge.

    Edges ramp over 1.25 pixels, about the blur of a real lens, so bilinear warping works.
    """
    return np.minimum(np.maximum(0.5 + distance / np.maximum(1.25 * footprint, 1e-9), 0.0), 1.0)


def _span(x: np.ndarray, lo: float, hi: float, footprint: np.ndarray) -> np.ndarray:
    """The fraction of a pixel (a box 1.25 footprints wide) inside [lo, hi]: exact for
    features thinner than a pixel (lane lines, seams), which point sampling would alias."""
    half = np.maximum(0.625 * footprint, 1e-9)
    return np.maximum(np.minimum(x + half, hi) - np.maximum(x - half, lo), 0.0) / (2 * half)


def _stripes(x: np.ndarray, period: float, start: float, width: float,
             footprint: np.ndarray) -> np.ndarray:
    """Coverage of stripes [start, start + width) repeating every ``period`` (box filtered, the
    nearest three stripes); a pattern finer than two pixels fades to its mean."""
    m = np.mod(x - start, period)
    coverage = sum(_span(m, k * period, k * period + width, footprint) for k in (-1, 0, 1))
    fade = np.clip(2.0 * footprint / period - 0.5, 0.0, 1.0)
    return coverage + (width / period - coverage) * fade


def _mix(base: np.ndarray, other: np.ndarray, weight: np.ndarray) -> np.ndarray:
    weight = np.asarray(weight)[..., None]
    return base + (np.asarray(other) - base) * weight


def _rgb(colour, n: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(colour, dtype=np.float64), (n, 3)).copy()


# ---------------------------------------------------------------------------------------------
# Faces and scene


@dataclass
class Face:
    """An axis-aligned rectangle of a plane, moving at ``velocity`` (m/frame)."""

    axis: int                       # normal axis: 0 X (facades, car sides), 1 Y (ground), 2 Z
    origin: np.ndarray              # world position of the local origin at t = 0
    velocity: np.ndarray
    a_range: tuple[float, float]    # extent in local coordinates (see _LOCAL)
    b_range: tuple[float, float]
    paint: Painter
    thing: int = -1                 # index into Scene.things for car and person faces
    unbounded: bool = False         # the ground: every pixel is a candidate

    def corners(self) -> np.ndarray:
        ia, ib = _LOCAL[self.axis]
        out = np.repeat(self.origin[None].astype(np.float64), 4, axis=0)
        for row, (a, b) in enumerate([(a, b) for a in self.a_range for b in self.b_range]):
            out[row, ia] += a
            out[row, ib] += b
        return out


@dataclass
class Scene:
    camera: Camera
    faces: list[Face]
    things: list[int]               # label id of each thing (car, person)
    sky: Callable[[np.ndarray, np.ndarray], np.ndarray]   # (world directions, footprint) -> RGB
    corners: np.ndarray = field(init=False)               # [F, 4, 3] at t = 0
    velocities: np.ndarray = field(init=False)            # [F + 1, 3]; the last row is the sky

    def __post_init__(self) -> None:
        # An unbounded face (the ground) is never culled; its corners are placeholders.
        self.corners = np.stack([np.zeros((4, 3)) if face.unbounded else face.corners()
                                 for face in self.faces])
        self.velocities = np.concatenate([np.stack([f.velocity for f in self.faces]), np.zeros((1, 3))])


@dataclass
class Frame:
    """One rendered frame: colour in [0, 1], label ids, and what each pixel sees."""

    t: float
    image: np.ndarray       # [H, W, 3] float
    label: np.ndarray       # [H, W] uint8 label ids
    surface: np.ndarray     # [H, W] int32 face index, SKY for the sky
    thing: np.ndarray       # [H, W] int32 thing index or -1
    depth: np.ndarray       # [H, W] camera depth, inf for the sky
    rays: np.ndarray        # [H, W, 3] world ray directions (camera z component 1)


# Corner order of Face.corners() is (a0 b0, a0 b1, a1 b0, a1 b1); these are the quad's edges.
_EDGES = np.array([(0, 1), (1, 3), (3, 2), (2, 0)])


def _visible(scene: Scene, t: float) -> list[tuple[int, tuple[int, int, int, int]]]:
    """Faces in view at ``t`` with their pixel boxes (v0, v1, u0, u1), nearest first.

    A face reaching behind the camera is clipped at the near plane first (corners in front plus
    edge crossings), so a facade beside the camera does not claim the whole image.
    """
    cam = scene.camera
    corners = cam.to_camera(scene.corners + scene.velocities[:-1, None, :] * t, t)
    depth = corners[..., 2]
    start, end = corners[:, _EDGES[:, 0]], corners[:, _EDGES[:, 1]]
    d0, d1 = depth[:, _EDGES[:, 0]], depth[:, _EDGES[:, 1]]
    with np.errstate(divide="ignore", invalid="ignore"):
        share = (NEAR - d0) / (d1 - d0)
    crossing = (d0 - NEAR) * (d1 - NEAR) < 0
    cuts = start + np.where(crossing, share, 0.0)[..., None] * (end - start)
    points = np.concatenate([corners, cuts], axis=1)
    usable = np.concatenate([depth >= NEAR, crossing], axis=1)
    points[..., 2] = np.maximum(points[..., 2], NEAR)
    u, v = cam.pixels(points)
    # Pixel centres sit at integer coordinates: a box holding none is culled.
    lo_v, hi_v = np.where(usable, v, np.inf).min(axis=1), np.where(usable, v, -np.inf).max(axis=1)
    lo_u, hi_u = np.where(usable, u, np.inf).min(axis=1), np.where(usable, u, -np.inf).max(axis=1)
    with np.errstate(invalid="ignore"):
        boxes = np.stack([np.ceil(lo_v), np.floor(hi_v) + 1, np.ceil(lo_u), np.floor(hi_u) + 1], axis=1)
    boxes = np.nan_to_num(boxes, nan=0.0, posinf=0.0, neginf=0.0)
    boxes[:, 0:2] = np.clip(boxes[:, 0:2], 0, cam.height)
    boxes[:, 2:4] = np.clip(boxes[:, 2:4], 0, cam.width)
    unbounded = np.array([face.unbounded for face in scene.faces])
    keep = ((depth >= NEAR).any(axis=1) & (depth.min(axis=1) < FAR)
            & (boxes[:, 1] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 2])) | unbounded
    boxes[unbounded] = (0, cam.height, 0, cam.width)
    nearest = np.where(usable, points[..., 2], np.inf).min(axis=1)
    # Unbounded faces last: they fill what the nearer patches left.
    order = sorted(np.flatnonzero(keep), key=lambda i: (unbounded[i], nearest[i]))
    return [(int(i), tuple(int(x) for x in boxes[i])) for i in order]


def _footprints(rays: np.ndarray, depth: np.ndarray, axis: int, focal: float):
    """Pixel footprints (m) along a face's two local axes: longer where the ray grazes."""
    ia, ib = _LOCAL[axis]
    length = np.linalg.norm(rays, axis=-1)
    across = depth * length / focal
    cosine = np.maximum(np.abs(rays[:, axis]) / length, 0.02)
    along = across / cosine
    in_plane = np.hypot(rays[:, ia], rays[:, ib]) + 1e-12
    ra, rb = rays[:, ia] / in_plane, rays[:, ib] / in_plane
    fa = np.hypot(along * ra, across * rb)
    fb = np.hypot(along * rb, across * ra)
    return fa, fb


def render(scene: Scene, t: float) -> Frame:
    """Ray-cast the scene at time ``t`` (frame number; may be fractional)."""
    cam = scene.camera
    origin = cam.position(t)
    rays = cam.pixel_rays @ cam.rotation(t).T
    shape = (cam.height, cam.width)
    depth = np.full(shape, np.inf)
    surface = np.full(shape, SKY, dtype=np.int32)
    thing = np.full(shape, -1, dtype=np.int32)
    label = np.full(shape, LABEL["sky"], dtype=np.uint8)
    image = np.zeros(shape + (3,))
    for index, (v0, v1, u0, u1) in _visible(scene, t):
        face = scene.faces[index]
        box_rays = rays[v0:v1, u0:u1]
        axis = face.axis
        plane = face.origin[axis] + face.velocity[axis] * t
        with np.errstate(divide="ignore", invalid="ignore"):
            s = (plane - origin[axis]) / box_rays[..., axis]
        rows, cols = np.nonzero((s > NEAR) & (s < depth[v0:v1, u0:u1]))
        if rows.size == 0:
            continue
        s = s[rows, cols]
        hit_rays = box_rays[rows, cols]
        ia, ib = _LOCAL[axis]
        now = face.origin + face.velocity * t
        a = origin[ia] + s * hit_rays[:, ia] - now[ia]
        b = origin[ib] + s * hit_rays[:, ib] - now[ib]
        inside = ((a >= face.a_range[0]) & (a <= face.a_range[1])
                  & (b >= face.b_range[0]) & (b <= face.b_range[1]))
        if not inside.any():
            continue
        rows, cols, s, hit_rays, a, b = (x[inside] for x in (rows, cols, s, hit_rays, a, b))
        fa, fb = _footprints(hit_rays, s, axis, cam.focal)
        mask, colour, ids = face.paint(a, b, fa, fb)
        ids = np.broadcast_to(np.asarray(ids, dtype=np.uint8), mask.shape)
        rows, cols = rows[mask] + v0, cols[mask] + u0
        depth[rows, cols] = s[mask]
        surface[rows, cols] = index
        thing[rows, cols] = face.thing
        label[rows, cols] = ids[mask]
        image[rows, cols] = colour[mask]
    sky = surface == SKY
    if sky.any():
        image[sky] = scene.sky(rays[sky], np.full(int(sky.sum()), 1.0 / cam.focal))
    return Frame(t, np.clip(image, 0.0, 1.0), label, surface, thing, depth, rays)


def flow_from(scene: Scene, frame: Frame, previous_surface: np.ndarray,
              dt: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """The true flow warping the frame at ``frame.t - dt`` onto ``frame`` and its validity.

    Each pixel's scene point is moved back by its face's velocity and projected by the earlier
    camera; valid where it lands in frame, in front of the camera, and on the same face at all
    four pixels a bilinear warp reads.
    """
    cam = scene.camera
    t0 = frame.t - dt
    sky = frame.surface == SKY
    depth = np.where(sky, 0.0, frame.depth)
    points = cam.position(frame.t) + depth[..., None] * frame.rays
    points = points - scene.velocities[frame.surface] * dt
    local = np.where(sky[..., None], cam.to_camera(frame.rays, t0, directions=True),
                     cam.to_camera(points, t0))
    u1, v1 = cam.pixels(local)
    v, u = np.mgrid[0:cam.height, 0:cam.width]
    flow = np.stack([u1 - u, v1 - v], axis=-1).astype(np.float32)
    valid = (local[..., 2] > NEAR) & (u1 >= 0) & (u1 <= cam.width - 1) & (v1 >= 0) & (v1 <= cam.height - 1)
    us = np.clip(np.floor(u1), 0, cam.width - 1).astype(np.int64)
    vs = np.clip(np.floor(v1), 0, cam.height - 1).astype(np.int64)
    for du in (0, 1):
        for dv in (0, 1):
            rows, cols = np.minimum(vs + dv, cam.height - 1), np.minimum(us + du, cam.width - 1)
            neighbour = previous_surface[rows, cols]
            valid &= neighbour == frame.surface
    # A point behind the earlier camera has no image there: no flow (and not valid).
    flow[(local[..., 2] <= NEAR) | ~np.isfinite(flow).all(axis=-1)] = 0.0
    return flow, valid


# ---------------------------------------------------------------------------------------------
# Painters: the look of each kind of surface


_CAR_COLOURS = np.array([
    (0.86, 0.86, 0.86), (0.08, 0.08, 0.09), (0.58, 0.59, 0.61), (0.30, 0.31, 0.33), (0.14, 0.22, 0.45),
    (0.62, 0.10, 0.10), (0.15, 0.30, 0.22), (0.72, 0.66, 0.52), (0.40, 0.45, 0.55), (0.85, 0.55, 0.10),
])
_FACADE_COLOURS = np.array([
    (0.78, 0.72, 0.62), (0.85, 0.82, 0.72), (0.70, 0.70, 0.68), (0.55, 0.30, 0.22), (0.86, 0.78, 0.55),
    (0.82, 0.60, 0.50), (0.45, 0.45, 0.46), (0.88, 0.88, 0.85), (0.52, 0.40, 0.30), (0.60, 0.66, 0.72),
])
_SHIRTS = np.array([
    (0.70, 0.12, 0.12), (0.15, 0.25, 0.60), (0.90, 0.90, 0.88), (0.12, 0.12, 0.13), (0.25, 0.50, 0.25),
    (0.85, 0.70, 0.20), (0.55, 0.55, 0.58), (0.45, 0.25, 0.50), (0.85, 0.45, 0.20), (0.20, 0.55, 0.65),
])
_TROUSERS = np.array([(0.12, 0.15, 0.28), (0.08, 0.08, 0.09), (0.35, 0.33, 0.30), (0.62, 0.55, 0.42),
                      (0.22, 0.28, 0.45)])
_SKIN = np.array([(0.93, 0.76, 0.64), (0.80, 0.60, 0.45), (0.55, 0.38, 0.26), (0.36, 0.24, 0.16)])
_GLASS = np.array([0.13, 0.16, 0.21])


def _pick(rng: np.random.Generator, palette: np.ndarray, jitter: float = 0.04) -> np.ndarray:
    colour = palette[rng.integers(len(palette))]
    return np.clip(colour * (1 + rng.uniform(-jitter, jitter, 3)), 0, 1)


def _glass(noise: Noise, a, b, fa, fb, key: float) -> np.ndarray:
    """Dark glass with a soft reflection, brighter towards the top."""
    shine = noise.fbm(a, b, np.maximum(fa, fb), 1.5, 3, key)
    return _rgb(_GLASS, a.size) * (1.0 + 0.35 * shine)[:, None] + 0.06


def car_end(noise: Noise, colour: np.ndarray, width: float, height: float, front: bool,
            key: float) -> Painter:
    """The rear (or front) of a car, seen square on: wheels, bumper, lamps, plate, window."""
    half, belt = width / 2, 0.6 * height
    lamp = np.array([0.95, 0.92, 0.78]) if front else np.array([0.78, 0.06, 0.05])

    def paint(a, b, fa, fb):
        n = a.size
        rise = np.clip((b - belt) / (height - belt), 0, 1)
        cabin_half = half - 0.08 - 0.3 * rise
        mask = (b < belt) | (np.abs(a) < cabin_half)
        body = _rgb(colour, n) * 0.88 * (1 + 0.05 * noise.fbm(a, b, fa, 1.0, 2, key))[:, None]
        out = _mix(body, colour * 0.55 + 0.03, _span(b, 0.16, 0.34, fb))                      # bumper
        out = _mix(out, lamp, _span(np.abs(a), half - 0.36, half - 0.06, fa)
                   * _span(b, belt - 0.27, belt - 0.08, fb))
        if front:
            out = _mix(out, np.array([0.1, 0.1, 0.11]), _span(np.abs(a), -1, half - 0.45, fa)
                       * _span(b, 0.38, belt - 0.1, fb))                                       # grille
        out = _mix(out, np.array([0.88, 0.88, 0.84]), _span(np.abs(a), -1, 0.26, fa)
                   * _span(b, 0.36, 0.5, fb))                                                  # plate
        window = (_cover(cabin_half - 0.07 - np.abs(a), fa) * _span(b, belt + 0.06, height - 0.07, fb))
        out = _mix(out, _glass(noise, a, b, fa, fb, key), window)
        shadow = _cover(0.16 - b, fb)                                                         # under the car
        wheels = _cover(0.4 - b, fb) * _cover(np.abs(a) - (half - 0.3), fa)
        out = _mix(out, np.array([0.05, 0.05, 0.05]), np.maximum(shadow, wheels))
        return mask, out, LABEL["car"]

    return paint


def car_side(noise: Noise, colour: np.ndarray, length: float, height: float, facing: int,
             key: float) -> Painter:
    """The side of a car: body, two wheels with rims, windows with a pillar, door seams."""
    half, belt = length / 2, 0.6 * height
    wheel_x = half - 0.85
    roof_front = half - 1.1 if height < 1.6 else half - 0.7

    def paint(a, b, fa, fb):
        n = a.size
        fwd = facing * a
        rise = np.clip((b - belt) / (height - belt), 0, 1)
        cabin_lo, cabin_hi = -half + 0.3 + 0.35 * rise, roof_front - 0.8 * rise + 0.6 * (1 - rise)
        radius = np.minimum(np.hypot(np.abs(fwd) - wheel_x, b - 0.33), 9.0)
        in_wheel = radius < 0.33
        in_body = (b >= 0.2) & (b < belt) & (np.abs(fwd) < half)
        in_cabin = (b >= belt) & (fwd > cabin_lo) & (fwd < cabin_hi)
        mask = in_wheel | in_body | in_cabin
        shade = 1.0 + 0.06 * noise.fbm(a, b, fa, 1.0, 2, key) - 0.18 * np.clip((0.55 - b) / 0.4, 0, 1)
        out = _rgb(colour, n) * shade[:, None]
        out = _mix(out, colour * 1.2 + 0.08, _span(b, belt - 0.06, belt - 0.02, fb) * 0.6)   # crease
        seams = np.maximum(_span(fwd, 0.085, 0.115, fa), _span(fwd, -1.065, -1.035, fa)) * (b > 0.25)
        out = _mix(out, colour * 0.5, seams * 0.8)
        windows = (_span(fwd, cabin_lo + 0.08, cabin_hi - 0.08, fa) * _span(b, belt + 0.05, height - 0.08, fb)
                   * (1 - _span(fwd, -0.4, -0.3, fa)))
        out = _mix(out, _glass(noise, a, b, fa, fb, key + 0.5), windows)
        tyre = _cover(0.33 - radius, np.maximum(fa, fb))
        rim = _cover(0.19 - radius, np.maximum(fa, fb))
        out = _mix(out, np.array([0.05, 0.05, 0.05]), tyre)
        out = _mix(out, np.array([0.55, 0.56, 0.58]), rim * (1 - 0.5 * _cover(0.05 - radius, fa)))
        ends = _cover(np.abs(fwd) - (half - 0.12), fa) * _span(b, belt - 0.25, belt - 0.08, fb)
        out = _mix(out, np.where((fwd > 0)[:, None], [0.95, 0.7, 0.2], [0.75, 0.08, 0.06]), ends)
        return mask, out, LABEL["car"]

    return paint


def person(noise: Noise, height: float, shirt: np.ndarray, trousers: np.ndarray, skin: np.ndarray,
           hair: np.ndarray, key: float) -> Painter:
    """A pedestrian seen front or back: legs, torso, arms, head with hair."""
    hip, shoulder = 0.48 * height, 0.81 * height
    head_y, head_r = height - 0.115, 0.11

    def paint(a, b, fa, fb):
        legs = (b < hip) & (np.abs(np.abs(a) - 0.085) < 0.07 + 0.02 * (b < 0.05))
        torso_half = 0.16 + 0.035 * np.clip((b - hip) / (shoulder - hip), 0, 1)
        torso = (b >= hip - 0.02) & (b < shoulder) & (np.abs(a) < torso_half)
        arms = ((b >= 0.43 * height) & (b < shoulder - 0.02)
                & (np.abs(a) >= torso_half) & (np.abs(a) < torso_half + 0.07))
        neck = (b >= shoulder) & (b < head_y - 0.08) & (np.abs(a) < 0.05)
        head = np.hypot(a, (b - head_y) * 0.9) < head_r
        mask = legs | torso | arms | neck | head
        folds = 1 + 0.12 * noise.fbm(a, b, np.maximum(fa, fb), 0.3, 2, key)
        out = np.where(torso[:, None] | arms[:, None], shirt, trousers) * folds[:, None]
        out = np.where(((b < 0.05) & legs)[:, None], np.array([0.08, 0.07, 0.07]), out)
        hands = arms & (b < 0.5 * height)
        out = np.where((neck | head | hands)[:, None], skin, out)
        out = np.where((head & ((b > head_y + 0.02) | (np.abs(a) > 0.085)))[:, None], hair, out)
        return mask, out, LABEL["person"]

    return paint


def pole(radius: float, height: float, arm: float, grey: float) -> Painter:
    """A round metal pole; ``arm`` (signed, m) draws a street-lamp arm and head at the top."""

    def paint(a, b, fa, fb):
        shaft = np.abs(a) < radius
        reach = (a * np.sign(arm) > 0) & (np.abs(a) < abs(arm))
        arm_part = reach & (b > height - 0.14) if arm else np.zeros_like(shaft)
        lamp = (np.abs(a - arm) < 0.35) & (b > height - 0.24) if arm else np.zeros_like(shaft)
        mask = shaft | arm_part | lamp
        round_shade = np.sqrt(np.clip(1 - (a / radius) ** 2, 0.05, 1))
        shade = np.where(shaft, 0.65 + 0.45 * round_shade, 0.85)
        out = _rgb((grey, grey, grey * 1.03), a.size) * shade[:, None]
        out = np.where((lamp & (b < height - 0.17))[:, None], np.array([0.95, 0.93, 0.8]), out)
        return mask, out, LABEL["pole"]

    return paint


def sign(size: float, kind: int) -> Painter:
    """A traffic sign centred on its origin: 0 round red-rimmed, 1 round blue, 2 warning
    triangle, 3 blue square, 4 yellow priority diamond."""
    r = size / 2
    red, white = np.array([0.78, 0.08, 0.08]), np.array([0.93, 0.93, 0.9])
    blue, black = np.array([0.1, 0.25, 0.65]), np.array([0.1, 0.1, 0.1])

    def paint(a, b, fa, fb):
        f = np.maximum(fa, fb)
        n = a.size
        if kind in (0, 1):
            d = r - np.hypot(a, b)
            mask = d > 0
            if kind == 0:
                out = _mix(_rgb(red, n), white, _cover(d - 0.18 * r, f))
                bar = _span(a, -0.45 * r, 0.45 * r, fa) * _span(b, -0.12 * r, 0.12 * r, fb)
                out = _mix(out, black, bar)
            else:
                bar = _span(a, -0.5 * r, 0.5 * r, fa) * _span(b, -0.1 * r, 0.1 * r, fb)
                out = _mix(_rgb(blue, n), white, bar)
        elif kind == 2:
            d = np.minimum(b + 0.5 * r, (0.8 * r - b - 1.73 * np.abs(a)) * 0.5)
            mask = d > 0
            out = _mix(_rgb(red, n), white, _cover(d - 0.14 * r, f))
        elif kind == 3:
            d = np.minimum(r - np.abs(a), r - np.abs(b))
            mask = d > 0
            out = _mix(_rgb(blue, n), white, _cover(d - 0.12 * r, f))
            out = _mix(out, blue, _span(a, -0.05 * r, 0.35 * r, fa) * _span(b, -0.55 * r, 0.3 * r, fb))
        else:
            d = (r - np.abs(a) - np.abs(b)) * 0.7
            mask = d > 0
            out = _mix(_rgb(white, n), np.array([0.95, 0.75, 0.1]), _cover(d - 0.15 * r, f))
        return mask, out, LABEL["traffic sign"]

    return paint


def traffic_light(lit: int) -> Painter:
    """A three-lamp traffic light box centred on its origin; lamp ``lit`` (0 red .. 2 green) on."""
    lamps = np.array([[0.9, 0.1, 0.08], [0.95, 0.7, 0.1], [0.1, 0.85, 0.35]])

    def paint(a, b, fa, fb):
        out = _rgb((0.1, 0.1, 0.1), a.size)
        for index, y in enumerate((0.27, 0.0, -0.27)):
            colour = lamps[index] if index == lit else lamps[index] * 0.25
            out = _mix(out, colour, _cover(0.1 - np.hypot(a, b - y), np.maximum(fa, fb)))
        return np.ones(a.size, dtype=bool), out, LABEL["traffic light"]

    return paint


def tree(noise: Noise, trunk: float, radius: float, green: np.ndarray, key: float) -> Painter:
    """A street tree: a bark trunk and a leafy crown with a ragged outline."""
    centre = trunk + radius

    def paint(a, b, fa, fb):
        f = np.maximum(fa, fb)
        crown = np.hypot(a / radius, (b - centre) / (0.9 * radius))
        ragged = 0.22 * noise.fbm(a, b, f * 3, 1.2, 3, key)
        in_crown = crown + ragged < 1.0
        in_trunk = (np.abs(a) < 0.13 + 0.02 * (b < 0.4)) & (b < centre)
        mask = in_crown | in_trunk
        leaves = noise.fbm(a, b, f, 0.6, 4, key + 1)
        light = 1.0 + 0.25 * (b - centre) / radius
        foliage = _rgb(green, a.size) * (light * (1.0 + 0.45 * leaves))[:, None]
        bark = _rgb((0.33, 0.27, 0.21), a.size) * (1 + 0.2 * noise.fbm(a * 4, b, f * 4, 0.5, 2, key))[:, None]
        return mask, np.where(in_crown[:, None], foliage, bark), LABEL["vegetation"]

    return paint


def bin_box(colour: np.ndarray) -> Painter:
    """A litter bin (label 'static')."""

    def paint(a, b, fa, fb):
        out = _rgb(colour, a.size) * (1 - 0.25 * _span(b, 0.72, 0.8, fb))[:, None]
        return np.ones(a.size, dtype=bool), out, LABEL["static"]

    return paint


def building(noise: Noise, rng: np.random.Generator, length: float, height: float,
             light: float, key: float) -> Painter:
    """A facade: plaster, a shop-front ground floor, rows of framed windows, a cornice."""
    colour = _pick(rng, _FACADE_COLOURS, 0.06) * light
    trim = np.clip(colour * 1.18 + 0.05, 0, 1)
    ground_floor = rng.uniform(3.4, 4.4)
    floor = rng.uniform(2.8, 3.4)
    column = rng.uniform(2.2, 3.6)
    window_w = column * rng.uniform(0.38, 0.6)
    window_h = floor * rng.uniform(0.42, 0.6)
    offset = rng.uniform(0, column)
    shop = rng.uniform(3.5, 6.0)
    has_shops = rng.random() < 0.7

    def paint(a, b, fa, fb):
        f = np.maximum(fa, fb)
        plaster = 1 + 0.07 * noise.fbm(a, b, f, 3.0, 5, key)
        out = _rgb(colour, a.size) * plaster[:, None]
        upper = _cover(b - ground_floor, fb)
        col = _stripes(a, column, offset, window_w, fa)
        row = _stripes(b - ground_floor, floor, 0.9, window_h, fb) * upper * _cover(height - 0.9 - b, fb)
        frame_col = _stripes(a, column, offset - 0.09, window_w + 0.18, fa)
        frame_row = (_stripes(b - ground_floor, floor, 0.8, window_h + 0.2, fb) * upper
                     * _cover(height - 0.8 - b, fb))
        out = _mix(out, trim * 0.9, frame_col * frame_row)
        out = _mix(out, _glass(noise, a, b, fa, fb, key) * light, col * row)
        out = _mix(out, trim, _span(b, ground_floor - 0.35, ground_floor, fb))                 # band
        out = _mix(out, trim * 0.8, _cover(b - (height - 0.45), fb))                          # cornice
        if has_shops:
            bay = _stripes(a, shop, 0.6, shop - 1.2, fa) * _span(b, 0.4, ground_floor - 0.6, fb)
            out = _mix(out, _glass(noise, a, b, fa, fb, key + 3) * (1.2 * light), bay)
        out = _mix(out, colour * 0.6, _cover(0.12 - np.minimum(a, length - a), fa))            # party wall
        return np.ones(a.size, dtype=bool), out, LABEL["building"]

    return paint


def park(noise: Noise, base: float, amplitude: float, green: np.ndarray, key: float) -> Painter:
    """A row of trees behind the pavement: vegetation with a rolling top."""

    def paint(a, b, fa, fb):
        f = np.maximum(fa, fb)
        top = base + amplitude * noise.curve(a, 4.0, key) + 0.6 * noise.curve(a, 1.1, key + 1)
        mask = b < top
        leaves = noise.fbm(a, b, f, 0.8, 4, key + 2)
        shade = 0.75 + 0.3 * np.clip(b / np.maximum(top, 1e-3), 0, 1)
        return mask, _rgb(green, a.size) * (shade * (1 + 0.4 * leaves))[:, None], LABEL["vegetation"]

    return paint


@dataclass(frozen=True)
class Street:
    road: float              # half width of the road (kerb at +-road)
    facade: float            # X of the building lines
    crossings: np.ndarray    # Z of zebra crossings
    park_spans: dict         # side (-1, 1) -> array [n, 2] of Z ranges with vegetation verges


def ground(noise: Noise, street: Street, asphalt: np.ndarray, paving: np.ndarray) -> Painter:
    """Road (lanes, dashes, parking lines, zebra crossings), kerbs, tiled pavements, verges."""
    lane_edge = street.road - 2.0

    def paint(x, z, fx, fz):
        ax = np.abs(x)
        f = np.maximum(fx, fz)
        grain = noise.fbm(x, z, f, 0.9, 5, 1.0)
        patches = noise.fbm(x, z, f, 7.0, 2, 2.0)
        road = _rgb(asphalt, x.size) * (1 + 0.16 * grain + 0.12 * patches)[:, None]
        dashes = _span(x, -0.075, 0.075, fx) * _stripes(z, 9.0, 0.0, 3.0, fz)
        edges = _span(ax, lane_edge - 0.06, lane_edge + 0.06, fx)
        k = np.clip(np.searchsorted(street.crossings, z) - 1, 0, None)
        zebra = (_span(z - street.crossings[k], 0.0, 4.0, fz) * _stripes(x, 1.0, 0.0, 0.5, fx)
                 * _cover(lane_edge - 0.2 - ax, fx))
        paint_cover = np.maximum(np.maximum(dashes, edges) * (1 - zebra), zebra)
        road = _mix(road, np.array([0.84, 0.84, 0.82]) * (1 + 0.05 * grain)[:, None], paint_cover)
        seams = np.maximum(_stripes(x, 0.5, -0.015, 0.03, fx), _stripes(z, 0.5, -0.015, 0.03, fz))
        walk = _rgb(paving, x.size) * ((1 + 0.08 * grain) * (1 - 0.3 * seams))[:, None]
        walk = _mix(walk, paving * 1.2, _span(ax, street.road, street.road + 0.25, fx))       # kerb
        verge = np.zeros(x.size)
        for side, spans in street.park_spans.items():
            if len(spans):
                j = np.clip(np.searchsorted(spans[:, 0], z) - 1, 0, None)
                verge = np.maximum(verge, (np.sign(x) == side) * _span(z, spans[j, 0], spans[j, 1], fz)
                                   * _cover(ax - (street.facade - 1.6), fx))
        grass = _rgb((0.33, 0.45, 0.2), x.size) * (1 + 0.3 * noise.fbm(x, z, f, 0.7, 4, 3.0))[:, None]
        # Blended, not switched: a colour step inside one surface would alias as it moves.
        road_share = _span(x, -street.road, street.road, fx)
        out = _mix(_mix(walk, grass, verge), road, road_share)
        ids = np.where(ax < street.road, LABEL["road"],
                       np.where(verge > 0.5, LABEL["terrain"], LABEL["sidewalk"]))
        return np.ones(x.size, dtype=bool), out, ids

    return paint


def sky_painter(noise: Noise, rng: np.random.Generator) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """Blue to hazy white towards the horizon, with soft clouds fixed to directions."""
    zenith = np.array([0.30, 0.50, 0.82]) * rng.uniform(0.9, 1.1)
    horizon = np.array([0.80, 0.86, 0.92])
    cover = rng.uniform(0.0, 0.5)

    def paint(rays: np.ndarray, footprint: np.ndarray) -> np.ndarray:
        unit = rays / np.linalg.norm(rays, axis=-1, keepdims=True)
        elevation = np.clip(unit[:, 1], -0.2, 1.0)
        azimuth = np.arctan2(unit[:, 0], unit[:, 2])
        out = _mix(_rgb(horizon, len(unit)), zenith, np.clip(elevation * 3.0, 0, 1) ** 0.7)
        clouds = noise.fbm(azimuth * 8, elevation * 20, footprint * 20, 1.5, 4, 9.0)
        out = _mix(out, np.array([0.95, 0.95, 0.96]), np.clip(clouds * 1.5 + cover - 0.3, 0, 0.85))
        return out

    return paint


# ---------------------------------------------------------------------------------------------
# Building a scene


def _camera(rng: np.random.Generator, height: int, width: int, road: float) -> Camera:
    """A car-mounted camera in the right-hand driving lane (the outer 2 m are parking), about
    58 degrees wide, 6 to 11 m/s at Cityscapes' 17 frames per second."""
    return Camera(
        height=height, width=width, focal=0.9 * width,
        speed=rng.uniform(0.35, 0.6), eye=rng.uniform(1.3, 1.6), lane=(road - 2.0) / 2,
        sway=rng.uniform(0.1, 0.3), yaw=np.radians(rng.uniform(1.5, 2.5)),
        pitch=np.radians(rng.uniform(0.6, 1.0)), tilt=np.radians(rng.uniform(-2.5, -1.0)),
        period=rng.uniform(40, 70), phase=rng.uniform(0, 2 * np.pi),
    )


def _segments(lo: float, hi: float, rng: np.random.Generator, short: float, long: float):
    """Consecutive (start, length) spans covering [lo, hi), lengths drawn in [short, long)."""
    z = lo
    while z < hi:
        length = rng.uniform(short, long)
        yield z, length
        z += length


class _Builder:
    """Collects faces and things while a scene is laid out."""

    def __init__(self, rng: np.random.Generator, noise: Noise):
        self.rng, self.noise = rng, noise
        self.faces: list[Face] = []
        self.things: list[int] = []

    def key(self) -> float:
        return float(self.rng.uniform(0, 1000))

    def add(self, axis: int, origin, a_range, b_range, paint: Painter, velocity=(0, 0, 0),
            thing: int = -1, unbounded: bool = False) -> None:
        self.faces.append(Face(axis, np.asarray(origin, dtype=np.float64),
                               np.asarray(velocity, dtype=np.float64), a_range, b_range, paint,
                               thing, unbounded))

    def thing(self, label_id: int) -> int:
        self.things.append(label_id)
        return len(self.things) - 1


def _facades(b: _Builder, street: float, facade: float, lo: float, hi: float, sun: int) -> dict:
    """Building rows on both sides, some gaps filled by parks; returns the park spans."""
    spans = {}
    for side in (-1, 1):
        light = 1.0 if side == sun else 0.72
        parks = []
        for z0, length in _segments(lo - 20, hi, b.rng, 9.0, 26.0):
            origin = (side * facade, 0.0, z0)
            if b.rng.random() < 0.18:
                green = np.array([0.2, 0.34, 0.12]) * b.rng.uniform(0.8, 1.15) * light
                top = b.rng.uniform(4.0, 7.0)
                b.add(0, origin, (0.0, length), (0.0, top + 3.0), park(b.noise, top, 3.0, green, b.key()))
                parks.append((z0, z0 + length))
            else:
                height = b.rng.uniform(9.0, 24.0)
                b.add(0, origin, (0.0, length), (0.0, height),
                      building(b.noise, b.rng, length, height, light, b.key()))
        spans[side] = np.array(parks, dtype=np.float64).reshape(-1, 2)
    # The far end of the street: a building across it, so the street does not end in void.
    height = b.rng.uniform(14.0, 24.0)
    width = 2 * facade + 40
    b.add(2, (-width / 2, 0.0, hi), (0.0, width), (0.0, height),
          building(b.noise, b.rng, width, height, 0.85, b.key()))
    return spans


def _furniture(b: _Builder, street: float, facade: float, lo: float, hi: float,
               crossings: np.ndarray) -> None:
    """Street lamps, sign posts, trees, bins on both pavements; traffic lights at crossings."""
    grey = b.rng.uniform(0.35, 0.6)
    for side in (-1, 1):
        for z, _ in _segments(lo, hi, b.rng, 16.0, 28.0):                   # street lamps
            height = b.rng.uniform(6.0, 8.5)
            b.add(2, (side * (street + 0.45), 0.0, z), (-2.0, 2.0), (0.0, height),
                  pole(0.11, height, -side * 1.6, grey))
        for z, _ in _segments(lo + 5, hi, b.rng, 12.0, 30.0):                 # sign posts
            x = side * (street + 0.55)
            size = b.rng.uniform(0.6, 0.85)
            top = b.rng.uniform(2.0, 2.6)
            b.add(2, (x, 0.0, z), (-0.05, 0.05), (0.0, top), pole(0.05, top, 0.0, grey))
            b.add(2, (x, top + size / 2, z - 0.04), (-size / 2, size / 2), (-size / 2, size / 2),
                  sign(size, int(b.rng.integers(5))))
        for z, _ in _segments(lo + 2, hi, b.rng, 9.0, 22.0):                  # trees
            if b.rng.random() < 0.75:
                radius = b.rng.uniform(1.4, 2.6)
                trunk = b.rng.uniform(1.8, 3.0)
                green = np.array([0.22, 0.36, 0.12]) * b.rng.uniform(0.75, 1.2)
                b.add(2, (side * (street + 1.1), 0.0, z), (-radius, radius), (0.0, trunk + 2 * radius),
                      tree(b.noise, trunk, radius, green, b.key()))
        for z, _ in _segments(lo + 8, hi, b.rng, 20.0, 60.0):                 # bins
            b.add(2, (side * (facade - 0.6), 0.0, z), (-0.3, 0.3), (0.0, 0.95),
                  bin_box(np.array([0.2, 0.32, 0.24]) * b.rng.uniform(0.7, 1.3)))
        for z in crossings:                                                   # traffic lights
            x = side * (street + 0.5)
            b.add(2, (x, 0.0, z - 1.0), (-0.07, 0.07), (0.0, 3.4), pole(0.07, 3.4, 0.0, grey))
            b.add(2, (x, 3.0, z - 1.05), (-0.18, 0.18), (-0.45, 0.45),
                  traffic_light(int(b.rng.integers(3))))


def _people(b: _Builder, street: float, facade: float, lo: float, hi: float, t_mid: float) -> None:
    """Pedestrians walking along both pavements (about one per 6 m and side)."""
    for side in (-1, 1):
        count = b.rng.poisson((hi - lo) / 6.0)
        for z in np.sort(b.rng.uniform(lo, hi, count)):
            x = side * b.rng.uniform(street + 1.3, facade - 0.6)
            speed = b.rng.uniform(0.04, 0.09) * b.rng.choice([-1, 1])
            height = b.rng.uniform(1.55, 1.92)
            paint = person(b.noise, height, _pick(b.rng, _SHIRTS, 0.1), _pick(b.rng, _TROUSERS, 0.1),
                           _pick(b.rng, _SKIN, 0.05), _pick(b.rng, np.array([[0.08, 0.06, 0.05],
                           [0.35, 0.22, 0.12], [0.7, 0.6, 0.4], [0.5, 0.5, 0.5]])), b.key())
            b.add(2, (x, 0.0, z - speed * t_mid), (-0.36, 0.36), (0.0, height), paint,
                  velocity=(0.0, 0.0, speed), thing=b.thing(LABEL["person"]))


def _car(b: _Builder, x: float, z_end: float, facing: int, velocity: float, camera_x: float,
         side: bool = True) -> float:
    """A car box at lateral ``x`` whose low-Z end is at ``z_end`` at t = 0: that end (its rear
    when ``facing`` +Z, else its front) and, with ``side``, the flank facing the camera lane.
    Returns its length."""
    width = b.rng.uniform(1.7, 1.95)
    length = b.rng.uniform(3.9, 4.9)
    height = b.rng.uniform(1.4, 1.55) if b.rng.random() < 0.75 else b.rng.uniform(1.65, 1.95)
    colour = _pick(b.rng, _CAR_COLOURS)
    key = b.key()
    thing = b.thing(LABEL["car"])
    vel = (0.0, 0.0, velocity)
    b.add(2, (x, 0.0, z_end), (-width / 2, width / 2), (0.0, height),
          car_end(b.noise, colour, width, height, front=facing < 0, key=key), vel, thing)
    if side:
        side_x = x - width / 2 if x > camera_x else x + width / 2
        b.add(0, (side_x, 0.0, z_end + length / 2), (-length / 2, length / 2), (0.0, height),
              car_side(b.noise, colour, length, height, facing, key), vel, thing)
    return length


def _traffic(b: _Builder, camera: Camera, street: float, lo: float, hi: float, t0: float,
             t1: float) -> None:
    """Parked cars on both sides, a queue ahead in the camera's lane, oncoming traffic.

    Positions are drawn for time ``t0`` and moved back to t = 0 by each car's velocity."""
    occupancy = b.rng.uniform(0.4, 0.8)
    for side in (-1, 1):                                                      # parked
        z = lo
        while z < hi:
            bay = b.rng.uniform(5.2, 7.0)
            if b.rng.random() < occupancy:
                _car(b, side * (street - 1.0) + b.rng.uniform(-0.1, 0.1), z + 0.3, side, 0.0, camera.lane)
            z += bay
    lane = camera.lane
    queue = camera.speed * b.rng.uniform(0.85, 1.1)                           # ahead, same lane
    closing = (queue - camera.speed) * (t1 - t0)
    gap = b.rng.uniform(10.0, 22.0)
    while camera.speed * t0 + gap < hi:
        length = 4.5
        # Only cars that stay 8 m ahead all snippet long: none drives into the lens.
        if min(gap, gap + closing) > 8.0:
            z = camera.speed * t0 + gap - queue * t0
            length = _car(b, lane + b.rng.uniform(-0.15, 0.15), z, 1, queue, lane, side=False)
        gap += length + b.rng.uniform(8.0, 35.0)
    oncoming = -b.rng.uniform(0.3, 0.6)                                       # other lane
    z = lo
    while z < hi - oncoming * (t1 - t0):
        z += b.rng.uniform(15.0, 70.0)
        z += _car(b, -lane + b.rng.uniform(-0.15, 0.15), z - oncoming * t0, -1, oncoming, lane)


def build_scene(rng: np.random.Generator, height: int, width: int, t0: float, t1: float) -> Scene:
    """A street for the camera's drive from frame ``t0`` to ``t1`` (frame numbers)."""
    noise = Noise(rng)
    road = rng.uniform(4.6, 5.6)
    facade = road + rng.uniform(2.6, 4.0)
    camera = _camera(rng, height, width, road)
    lo, hi = camera.speed * t0 - 25.0, camera.speed * t1 + 180.0
    crossings = np.sort(rng.uniform(lo, hi - 60.0, max(1, int((hi - lo) / 90))))
    b = _Builder(rng, noise)
    spans = _facades(b, road, facade, lo, hi, sun=int(rng.choice([-1, 1])))
    street = Street(road, facade, crossings, spans)
    asphalt = np.array([0.31, 0.31, 0.33]) * rng.uniform(0.85, 1.15)
    paving = np.array([0.60, 0.57, 0.53]) * rng.uniform(0.9, 1.1)
    b.add(1, (0.0, 0.0, 0.0), (-np.inf, np.inf), (-np.inf, np.inf), ground(noise, street, asphalt, paving),
          unbounded=True)
    # Objects stop 110 m ahead of the last position (a person there is a few pixels tall at
    # 2048 wide); buildings run on to the far end of the street.
    reach = camera.speed * t1 + 110.0
    _furniture(b, road, facade, lo, reach, crossings)
    _people(b, road, facade, lo, reach, (t0 + t1) / 2)
    _traffic(b, camera, road, lo, reach, t0, t1)
    return Scene(camera, b.faces, b.things, sky_painter(noise, rng))
