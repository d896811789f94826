"""Shared drawing: matplotlib figures of a fixed pixel size, picture grids, text, atomic writes.

A figure is made at an exact size (``width`` x ``height`` pixels at :data:`DPI`, saved without
tight bounding boxes) so the report's pictures have predictable sizes. Pictures assembled from
frames (strips, videos) are NumPy arrays; their labels are drawn with OpenCV's Hershey font.

Every picture and page records its provenance (:func:`report_record`: the module's code version
and the command's arguments, its inputs): a PNG in a ``provenance`` text chunk (JSON), an HTML
page in a ``<script type="application/json" id="provenance">`` element.
"""

from __future__ import annotations

import argparse
import csv
import json
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
from PIL import Image, PngImagePlugin  # noqa: E402

from pipeline.errors import PipelineError  # noqa: E402
from pipeline.io import atomic_path  # noqa: E402
from pipeline.provenance import code_version, provenance  # noqa: E402

__all__ = ["DPI", "NETWORK_COLOURS", "UNKNOWN_COLOUR", "network_colour", "NETWORK_NAMES", "PROVENANCE_KEY",
           "report_record", "provenance_html", "figure", "save_figure", "write_png", "title", "mark_missing", "text_bar", "label_panel", "upscale",
           "read_csv_rows", "number", "display_scale"]

DPI = 100
NETWORK_COLOURS = {"crn": "#3b75af", "pix2pixhd": "#ef8636"}
UNKNOWN_COLOUR = "#8c6bb1"      # purple: a network the record does not name
NETWORK_NAMES = {"crn": "CRN", "pix2pixhd": "pix2pixHD"}
WHITE = 255
PROVENANCE_KEY = "provenance"   # the PNG text chunk's keyword, the HTML element's id


def report_record(module: str, args: argparse.Namespace) -> dict[str, Any]:
    """The provenance a report output carries: stage ``report.<what>``, the code version of
    ``module`` (what its rule's params hash) and the command's arguments, which name its inputs."""
    return provenance(module.removeprefix("pipeline."), {}, code_version(module), None, arguments=vars(args))


def _record_text(record: dict[str, Any]) -> str:
    return json.dumps(record, default=str)     # ASCII: a PNG tEXt chunk holds Latin-1 only


def provenance_html(record: dict[str, Any]) -> str:
    """The record as a page's inert JSON element (``</`` escaped, so no text ends the element)."""
    text = _record_text(record).replace("</", "<\\/")
    return f"<script type='application/json' id='{PROVENANCE_KEY}'>{text}</script>"


def network_colour(network: str | None) -> str:
    """The report's colour of ``network`` (blue CRN, orange pix2pixHD), purple where unnamed."""
    return NETWORK_COLOURS.get(network or "", UNKNOWN_COLOUR)


def figure(width: int, height: int, rows: int = 1, columns: int = 1, **subplots: Any):
    """``(fig, axes)`` of exactly ``width`` x ``height`` pixels (``axes`` as plt.subplots gives)."""
    return plt.subplots(rows, columns, figsize=(width / DPI, height / DPI), dpi=DPI, squeeze=False, **subplots)


def title(fig, heading: str, notes: str) -> None:
    """The heading and below it the weights line of the picture, wrapped to the figure's width."""
    characters = int(fig.get_figwidth() * DPI / 9)       # DejaVu Sans at 11 pt: 7 to 9 px a character
    fig.suptitle("\n".join([heading, *textwrap.wrap(notes, characters)]), fontsize=11)


def save_figure(fig, path: str | Path, record: dict[str, Any]) -> None:
    """Write the figure as PNG with ``record`` in its text chunk, atomically, at its own pixel
    size, and close it."""
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=DPI, format="png", metadata={PROVENANCE_KEY: _record_text(record)})
    plt.close(fig)


def write_png(path: str | Path, rgb: np.ndarray, record: dict[str, Any]) -> None:
    """Write an RGB uint8 picture as PNG with ``record`` in its text chunk, atomically."""
    chunks = PngImagePlugin.PngInfo()
    chunks.add_text(PROVENANCE_KEY, _record_text(record))
    with atomic_path(path, suffix=".png") as tmp:
        try:
            Image.fromarray(np.ascontiguousarray(rgb)).save(tmp, format="PNG", pnginfo=chunks)
        except (OSError, ValueError) as err:
            raise PipelineError(f"could not write the picture ({err})", path) from err


def mark_missing(axis, positions: Sequence[float], values: Sequence[float], text: str = "n/a") -> None:
    """Write ``text`` on the baseline where a value is NaN: a missing bar or dot would otherwise
    read as a gap, or as zero."""
    for x, value in zip(positions, values):
        if math.isnan(value):
            axis.annotate(text, (x, 0), ha="center", va="bottom", fontsize=8)


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


def read_csv_rows(path: str | Path, required: Sequence[str] = (), what: str = "CSV file") -> list[dict[str, str]]:
    """A CSV file's rows; with ``required`` columns, at least one row and those columns, or a
    named error (an empty table would make an empty page, exit 0)."""
    path = Path(path)
    if not path.is_file():
        raise PipelineError("file not found", path)
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if required and not rows:
        raise PipelineError(f"the {what} has no rows", path)
    missing = [column for column in required if column not in rows[0]] if required else []
    if missing:
        raise PipelineError(f"the {what} lacks columns {missing}", path)
    return rows


def number(text: str | None) -> float:
    """A CSV cell as a float; an empty cell (a missing value) is NaN."""
    if text is None or text == "":
        return math.nan
    return float(text)
