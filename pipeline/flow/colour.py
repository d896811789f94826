"""The standard flow colour coding (Middlebury colour wheel), written from its description.

Baker, Scharstein, Lewis, Roth, Black and Szeliski, "A Database and Evaluation Methodology for
Optical Flow", IJCV 92(1), 2011, figure and colour code of the Middlebury benchmark: hue is the
direction of the flow and saturation its length relative to a maximum radius. The hue wheel has
55 colours in six ramps, red -> yellow (15), yellow -> green (6), green -> cyan (4),
cyan -> blue (11), blue -> magenta (13), magenta -> red (6), chosen for perceptual evenness. A
flow ``(u, v)`` scaled by the maximum radius has angle ``atan2(-v, -u) / pi`` in [-1, 1],
mapped onto the wheel; the two nearest colours are blended linearly. Inside the unit circle a
colour fades to white with decreasing length (zero flow is white); outside it is darkened to
75 %. So rightward motion is red, downward yellow, leftward light blue, upward violet.

Our own small function, tested against these anchor colours and, inside the unit circle, against
ptlflow's ``flow_to_rgb`` (flowpy saturates beyond the radius where Middlebury darkens).
"""

from __future__ import annotations

import numpy as np

__all__ = ["colour_wheel", "flow_to_colour"]

RAMPS = (15, 6, 4, 11, 13, 6)   # RY, YG, GC, CB, BM, MR


def colour_wheel() -> np.ndarray:
    """The 55 wheel colours, float ``[55, 3]`` RGB in [0, 255], starting at red."""
    rows = []
    # Each ramp raises or lowers one channel while the others hold; (channel, rising) per ramp.
    start = np.array([255.0, 0.0, 0.0])
    steps = ((1, True), (0, False), (2, True), (1, False), (0, True), (2, False))
    colour = start.copy()
    for length, (channel, rising) in zip(RAMPS, steps):
        ramp = np.floor(255.0 * np.arange(length) / length)
        for value in ramp:
            colour[channel] = value if rising else 255.0 - value
            rows.append(colour.copy())
        colour[channel] = 255.0 if rising else 0.0
    return np.array(rows)


def flow_to_colour(flow: np.ndarray, max_radius: float | None = None) -> np.ndarray:
    """RGB uint8 ``[H, W, 3]`` of a flow ``[H, W, 2]`` (pixels, channel 0 horizontal).

    ``max_radius`` is the length shown fully saturated; by default the largest finite length in
    the field (so a picture is self-scaled; pass a fixed value to compare pictures). Non-finite
    flow is drawn black.
    """
    flow = np.asarray(flow, dtype=np.float64)
    if flow.ndim != 3 or flow.shape[-1] != 2:
        raise ValueError(f"flow must be [H, W, 2], got {flow.shape}")
    finite = np.isfinite(flow).all(axis=-1)
    u = np.where(finite, flow[..., 0], 0.0)
    v = np.where(finite, flow[..., 1], 0.0)
    radius = np.hypot(u, v)
    if max_radius is None:
        max_radius = float(radius.max()) if radius.size else 0.0
    scale = max(float(max_radius), np.finfo(np.float64).eps)
    u, v, radius = u / scale, v / scale, radius / scale

    wheel = colour_wheel() / 255.0
    count = len(wheel)
    angle = np.arctan2(-v, -u) / np.pi                      # [-1, 1]
    position = (angle + 1.0) / 2.0 * (count - 1)             # [0, count - 1]
    k0 = np.floor(position).astype(int)
    k1 = (k0 + 1) % count
    blend = (position - k0)[..., None]
    colour = (1.0 - blend) * wheel[k0] + blend * wheel[k1]   # [H, W, 3] in [0, 1]
    inside = (radius <= 1.0)[..., None]
    colour = np.where(inside, 1.0 - radius[..., None] * (1.0 - colour), colour * 0.75)
    colour[~finite] = 0.0
    return np.floor(255.0 * colour).astype(np.uint8)
