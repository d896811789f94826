"""Resizing to a training resolution: images smoothly, labels by nearest, flow with its vectors.

Thesis-code.md section 2 resized RGB bicubic and labels and instances nearest. Here images are
shrunk with ``cv2.INTER_AREA`` (the average over each target pixel's footprint: no ringing and
no aliasing when shrinking 2x or 4x) and enlarged bilinearly; label and instance maps take the
nearest source pixel, so a resized map only holds values present in its source. "Nearest" is
``cv2.INTER_NEAREST_EXACT``, on the same half-pixel grid as INTER_AREA and torch's
``align_corners=False``: target pixel i samples the source pixel nearest its centre
(i + 0.5) * s - 0.5, rounding half up. Shrinking 4x that is 4i + 2, half a source pixel from
the footprint's centre 4i + 1.5 where INTER_AREA's average is centred (an even footprint has no
centre pixel); ``cv2.INTER_NEAREST`` samples floor(i * s) = 4i, 1.5 source pixels off. Shrinking
2x both are half a source pixel off (2i + 1 against 2i), on opposite sides; at odd factors the
exact one is centred (3i + 1). This is the one label resizer of the pipeline (the pack and
``fit_segmenter`` use it).

Flow is resized like an image and its vectors are scaled by the size ratio of each axis (u by
w_out / w_in, v by h_out / h_in): a displacement of u source pixels is u * w_out / w_in target
pixels (cv2's half-pixel grid; the align-corners ratio (w_out - 1) / (w_in - 1) differs by
less than 0.2% at these sizes).
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["resize_image", "resize_labels", "resize_flow"]


def _interpolation(source: tuple[int, int], target: tuple[int, int]) -> int:
    shrinking = target[0] <= source[0] and target[1] <= source[1]
    return cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """An ``[H, W, C]`` image at ``size`` (height, width), same dtype."""
    if image.shape[:2] == tuple(size):
        return image.copy()
    return cv2.resize(image, (size[1], size[0]), interpolation=_interpolation(image.shape[:2], size))


def resize_labels(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A label or instance map ``[H, W]`` at ``size`` by nearest neighbour (the source pixel
    nearest each target pixel's centre, see the module docstring), same dtype."""
    if labels.shape[:2] == tuple(size):
        return labels.copy()
    # cv2's nearest has no 32-bit unsigned path; every map here fits in int32.
    source = labels.astype(np.int32) if labels.dtype == np.uint32 else labels
    resized = cv2.resize(source, (size[1], size[0]), interpolation=cv2.INTER_NEAREST_EXACT)
    return resized.astype(labels.dtype, copy=False)


def resize_flow(flow: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A flow ``[H, W, 2]`` in pixels at ``size``, vectors scaled to the new pixel size (float32)."""
    flow = np.asarray(flow, dtype=np.float32)
    height, width = flow.shape[:2]
    if (height, width) == tuple(size):
        return flow.copy()
    resized = cv2.resize(flow, (size[1], size[0]), interpolation=_interpolation((height, width), size))
    resized[..., 0] *= size[1] / width
    resized[..., 1] *= size[0] / height
    return resized
