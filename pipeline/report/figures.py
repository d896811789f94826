"""Shared drawing: matplotlib figures of a fixed pixel size, picture grids, text, atomic writes.

A figure is made at an exact size (``width`` x ``height`` pixels at :data:`DPI`, saved without
tight bounding boxes) so the report's pictures have predictable sizes. Pictures assembled from
frames (strips, videos) are NumPy arrays; their labels are drawn with OpenCV's Hershey font.
"""

from __future__ import annotations

import csv
import math
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import matplotlib

matplotlib.use("Agg")  # no display on cluster nodes; must precede pyplot

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from pipeline.errors import PipelineError  # noqa: E402
from pipeline.io import atomic_path  # noqa: E402

__all__ = ["DPI", "NETWORK_COLOURS", "NETWORK_NAMES", "figure", "save_figure", "write_png", "title", "text_bar",
           "label_panel", "upscale", "read_csv_rows", "number", "display_scale"]

DPI = 100
NETWORK_COLOURS = {"crn": "#3b75af", "pix2pixhd": "#ef8636"}
NETWORK_NAMES = {"crn": "CRN", "pix2pixhd": "pix2pixHD"}
WHITE = 255


def figure(width: int, height: int, rows: int = 1, columns: int = 1, **subplots: Any):
    """``(fig, axes)`` of exactly ``width`` x ``height`` pixels (``axes`` as plt.subplots gives)."""
    return plt.subplots(rows, columns, figsize=(width / DPI, height / DPI), dpi=DPI, squeeze=False, **subplots)


def title(fig, heading: str, notes: str) -> None:
    """The heading and below it the weights line of the picture, wrapped to the figure's width."""
    characters = int(fig.get_figwidth() * DPI / 9)       # DejaVu Sans at 11 pt: 7 to 9 px a character
    fig.suptitle("\n".join([heading, *textwrap.wrap(notes, characters)]), fontsize=11)


def save_figure(fig, path: str | Path) -> None:
    """Write the figure as PNG, atomically, at its own pixel size, and close it."""
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=DPI, format="png")
    plt.close(fig)


def write_png(path: str | Path, rgb: np.ndarray) -> None:
    """Write an RGB uint8 picture as PNG, atomically."""
    with atomic_path(path, suffix=".png") as tmp:
        if not cv2.imwrite(str(tmp), cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR)):
            raise PipelineError("could not write the picture", path)


def text_bar(width: int, lines: Sequence[str], line_height: int = 18, scale: float = 0.45) -> np.ndarray:
    """A white band ``[len(lines) * line_height (even), width, 3]`` with black text lines.

    OpenCV's Hershey font draws ASCII only: other characters become '?'.
    """
    height = len(lines) * line_height
    height += height % 2
    bar = np.full((height, width, 3), WHITE, np.uint8)
    for row, line in enumerate(lines):
        text = line.encode("ascii", "replace").decode()
        cv2.putText(bar, text, (6, row * line_height + line_height - 5), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    (0, 0, 0), 1, cv2.LINE_AA)
    return bar


def label_panel(height: int, width: int, text: str, scale: float = 0.5) -> np.ndarray:
    """A white ``[height, width, 3]`` panel with ``text`` centred vertically, at the left."""
    panel = np.full((height, width, 3), WHITE, np.uint8)
    cv2.putText(panel, text.encode("ascii", "replace").decode(), (6, height // 2 + 5), cv2.FONT_HERSHEY_SIMPLEX,
                scale, (0, 0, 0), 1, cv2.LINE_AA)
    return panel


def display_scale(height: int, target: int = 128) -> int:
    """The integer upscale that shows frames of ``height`` at least ``target`` pixels high."""
    return max(1, math.ceil(target / max(height, 1)))


def upscale(image: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour upscale of ``[..., H, W, C]`` by an integer factor (pixels stay visible)."""
    if factor == 1:
        return image
    return np.repeat(np.repeat(image, factor, axis=-3), factor, axis=-2)


def read_csv_rows(path: str | Path) -> list[dict[str, str]]:
    path = Path(path)
    if not path.is_file():
        raise PipelineError("file not found", path)
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def number(text: str | None) -> float:
    """A CSV cell as a float; an empty cell (a missing value) is NaN."""
    if text is None or text == "":
        return math.nan
    return float(text)
