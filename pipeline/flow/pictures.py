"""Pictures of flow for the report: frame t-1, frame t, the flow's colour code, the warp.

The warped panel is frame t-1 warped onto frame t with the flow (:mod:`pipeline.flow.warp`,
border padding); where the flow is right it looks like frame t. Colours: the Middlebury wheel
(:mod:`pipeline.flow.colour`).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from pipeline.flow.colour import flow_to_colour
from pipeline.flow.quality import warp_frames
from pipeline.io import atomic_path

__all__ = ["flow_strip", "strip_image"]


def strip_image(prev_rgb: np.ndarray, next_rgb: np.ndarray, flow: np.ndarray,
                max_radius: float | None = None, gap: int = 4) -> np.ndarray:
    """RGB uint8 ``[H, 4W + 3 gap, 3]``: frame t-1 | frame t | flow colour | warped frame t-1."""
    if prev_rgb.shape != next_rgb.shape or prev_rgb.shape[:2] != flow.shape[:2]:
        raise ValueError(f"frames {prev_rgb.shape}, {next_rgb.shape} and flow {flow.shape} differ in size")
    warped = warp_frames(prev_rgb[None], flow[None])[0]
    warped = np.clip(np.rint(warped * 255.0), 0, 255).astype(np.uint8)
    panels = [prev_rgb, next_rgb, flow_to_colour(flow, max_radius), warped]
    spacer = np.full((prev_rgb.shape[0], gap, 3), 255, np.uint8)
    pieces = [piece for panel in panels for piece in (panel, spacer)][:-1]
    return np.concatenate(pieces, axis=1)


def flow_strip(prev_rgb: np.ndarray, next_rgb: np.ndarray, flow: np.ndarray, output: str | Path,
               max_radius: float | None = None) -> np.ndarray:
    """Write the strip of :func:`strip_image` to the PNG ``output`` atomically; return it."""
    strip = strip_image(prev_rgb, next_rgb, flow, max_radius)
    with atomic_path(output, suffix=".png") as tmp:
        if not cv2.imwrite(str(tmp), cv2.cvtColor(strip, cv2.COLOR_RGB2BGR)):
            raise OSError(f"could not write {output}")
    return strip
