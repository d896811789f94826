"""One test video of a variant as a strip of frames: real, synthesised, labels, flow.

Rows: the real frames, the variant's frames, the labels the variant was given (Cityscapes
colours, :func:`pipeline.data.labels.colorize`) and the reference flow into each frame (Middlebury
colours, :func:`pipeline.flow.colour.flow_to_colour`, one radius for the strip, white where no
motion or no flow, as at the snippet's first frame). Columns: frames spread evenly over the
video. Labels and flow come from the packed test split at the scoring size, at the frames the
real videos were cut from (their provenance: snippet ids and the start frame).

    python -m pipeline.report.strip --videos results/videos/v01.h5 --real results/videos/real.h5 \\
        --data results/data/val.h5 --provenance results/train/v01/summary.json \\
        --output results/report/strips/v01.png
"""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.cli import run_main
from pipeline.data.labels import colorize
from pipeline.errors import PipelineError
from pipeline.flow.colour import flow_to_colour
from pipeline.fvd.videos import read_videos
from pipeline.report.figures import display_scale, label_panel, text_bar, upscale, write_png
from pipeline.report.provenance import load_record, notes_line, weight_notes

__all__ = ["ROWS", "GAP", "MARGIN", "HEADER_LINES", "LINE_HEIGHT", "strip_columns", "paired_videos",
           "packed_frames", "strip_picture", "main"]

ROWS = ("real", "synthesised", "labels", "flow")
GAP = 4             # white pixels between panels
MARGIN = 112        # left band with the row names
HEADER_LINES = 3    # a title line and up to two lines of weight notes
LINE_HEIGHT = 18


def strip_columns(frames: int, columns: int) -> list[int]:
    """Up to ``columns`` frame positions spread evenly over ``frames``, first and last included."""
    return sorted({int(round(x)) for x in np.linspace(0, frames - 1, min(columns, frames))})


def paired_videos(videos_path: str | Path, real_path: str | Path) -> tuple[np.ndarray, np.ndarray, dict, dict]:
    """``(synthesised, real, synthesised provenance, real provenance)``; the sets must pair up."""
    fake, fake_record = read_videos(videos_path)
    real, real_record = read_videos(real_path)
    if fake.shape != real.shape:
        raise PipelineError(f"videos {list(fake.shape)} do not pair with the real videos {list(real.shape)} "
                            f"of {real_path}", videos_path)
    return fake, real, fake_record, real_record


def packed_frames(data_path: str | Path, real_record: dict[str, Any], video: int, size: tuple[int, int],
                  frames: int) -> tuple[np.ndarray, np.ndarray, str, int]:
    """``(label ids [T, H, W], flow [T, H, W, 2], snippet id, start frame)`` of real video ``video``."""
    from pipeline.pack.dataset import PackedFile   # torch: only this picture needs it

    snippets = real_record.get("snippets") or []
    start = (real_record.get("settings") or {}).get("start_frame")
    if video >= len(snippets) or start is None:
        raise PipelineError("the real videos' provenance lacks the snippet ids or start frame the strip needs")
    packed = PackedFile(data_path, size)
    if snippets[video] not in packed.snippets:
        raise PipelineError(f"snippet {snippets[video]} of the real videos is not in the packed file", data_path)
    arrays = packed.read(packed.snippets.index(snippets[video]), int(start), int(start) + frames)
    flow = arrays["flow"].astype(np.float32)
    flow[~packed.flow_valid[packed.snippets.index(snippets[video]), int(start):int(start) + frames]] = 0.0
    return arrays["labels"], flow, snippets[video], int(start)


def _header(width: int, heading: str, notes: str) -> np.ndarray:
    characters = max(20, (width - 12) // 8)
    lines = textwrap.wrap(notes, characters)
    if len(lines) > HEADER_LINES - 1:
        lines = lines[:HEADER_LINES - 2] + [textwrap.shorten(" ".join(lines[HEADER_LINES - 2:]), characters)]
    lines = [heading[:characters]] + lines
    return text_bar(width, lines + [""] * (HEADER_LINES - len(lines)), LINE_HEIGHT)


def strip_picture(real: np.ndarray, fake: np.ndarray, labels: np.ndarray, flow: np.ndarray,
                  columns: Sequence[int], heading: str, notes: str) -> np.ndarray:
    """The strip, RGB uint8: a header, then one row per :data:`ROWS`, one column per frame."""
    height, width = real.shape[1:3]
    scale = display_scale(height)
    shown = list(columns)
    radius = float(np.linalg.norm(flow[shown], axis=-1).max()) if len(shown) else 0.0
    panels = {"real": real[shown], "synthesised": fake[shown],
              "labels": np.stack([colorize(labels[t]) for t in shown]),
              "flow": np.stack([flow_to_colour(flow[t], max(radius, 1e-6)) for t in shown])}
    cell_h, cell_w = height * scale, width * scale
    total_w = MARGIN + len(shown) * cell_w + (len(shown) - 1) * GAP
    grid = np.full((len(ROWS) * cell_h + (len(ROWS) - 1) * GAP, total_w, 3), 255, np.uint8)
    for row, name in enumerate(ROWS):
        top = row * (cell_h + GAP)
        grid[top:top + cell_h, :MARGIN] = label_panel(cell_h, MARGIN, name)
        for column, panel in enumerate(upscale(panels[name], scale)):
            left = MARGIN + column * (cell_w + GAP)
            grid[top:top + cell_h, left:left + cell_w] = panel
    return np.concatenate([_header(total_w, heading, notes), grid])


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipeline.report.strip", description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", required=True, help="the variant's videos (results/videos/{variant}.h5)")
    parser.add_argument("--real", required=True, help="the real videos (results/videos/real.h5)")
    parser.add_argument("--data", required=True, help="the packed test split (labels and flow)")
    parser.add_argument("--provenance", nargs="*", default=[], help="more files whose provenance names the weights")
    parser.add_argument("--video", type=int, default=0, help="which test video (default: the first)")
    parser.add_argument("--columns", type=int, default=4, help="frames shown (default 4)")
    parser.add_argument("--output", required=True, help="PNG to write")
    args = parser.parse_args(argv)
    fake, real, fake_record, real_record = paired_videos(args.videos, args.real)
    if not 0 <= args.video < len(real):
        raise PipelineError(f"--video {args.video}: the file holds {len(real)} videos", args.videos)
    frames, height, width = real.shape[1:4]
    labels, flow, snippet, start = packed_frames(args.data, real_record, args.video, (height, width), frames)
    columns = strip_columns(frames, args.columns)
    variant = fake_record.get("variant", Path(args.videos).stem)
    heading = (f"{variant}: test video {args.video} ({snippet}), frames "
               f"{', '.join(str(start + c) for c in columns)} of the snippet")
    notes = notes_line(weight_notes([fake_record, *(load_record(p) for p in args.provenance)]))
    write_png(args.output, strip_picture(real[args.video], fake[args.video], labels, flow, columns, heading, notes))


if __name__ == "__main__":
    run_main(main)
