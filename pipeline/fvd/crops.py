"""The three square crops the thesis scored (thesis 4.5.4): far left, centre, far right.

I3D takes square 224x224 frames; the thesis's videos are 256x512, so each video is scored on
three squares of side equal to the frame height, one flush with each edge and one centred, and
the crop FVDs are averaged. The reference implementation never crops (it squashes the whole
frame); these crops are the thesis's choice.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["CROP_NAMES", "crop_offset", "crop_videos", "check_crop_names"]

CROP_NAMES = ("left", "center", "right")


def crop_offset(name: str, height: int, width: int) -> int:
    """Column where the square crop ``name`` of side ``height`` starts in a frame ``width`` wide."""
    if width < height:
        raise ValueError(f"frames {height}x{width} are narrower than tall: no square crop of side {height}")
    if name == "left":
        return 0
    if name == "center":
        return (width - height) // 2
    if name == "right":
        return width - height
    raise ValueError(f"unknown crop {name!r}; allowed: {', '.join(CROP_NAMES)}")


def crop_videos(videos: np.ndarray, name: str) -> np.ndarray:
    """The square crop ``name`` of every frame of ``videos [..., H, W, C]`` (a view, no copy)."""
    height, width = videos.shape[-3], videos.shape[-2]
    start = crop_offset(name, height, width)
    return videos[..., start:start + height, :]


def check_crop_names(names: Sequence[str]) -> list[str]:
    """The crop names, validated (unknown or repeated names raise a ValueError)."""
    names = list(names)
    unknown = [name for name in names if name not in CROP_NAMES]
    if unknown or len(set(names)) != len(names) or not names:
        raise ValueError(f"crops must be distinct names from {list(CROP_NAMES)}, got {names}")
    return names

