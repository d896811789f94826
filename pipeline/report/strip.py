"""One test video of a variant as a strip of frames: real, synthesised, labels, flow.

Rows: the real frames, the variant's frames, the labels the variant was given (Cityscapes
colours, :func:`pipeline.data.labels.colorize`) and the reference flow into each frame (Middlebury
colours, :func:`pipeline.flow.colour.flow_to_colour`, one radius for the strip, white where no
motion or no flow, as at the snippet's first frame; its key, a colour wheel in the same colours,
sits under the row's name and the header gives the radius). Columns: frames spread evenly over the
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
from pipeline.fvd.videos import read_video_rows, read_videos_header
from pipeline.report.figures import display_scale, label_panel, report_record, text_bar, upscale, write_png
from pipeline.report.provenance import load_record, notes_line, weight_notes

__all__ = ["ROWS", "GAP", "MARGIN", "HEADER_LINES", "LINE_HEIGHT", "KEY_SIZE", "strip_columns", "paired_videos",
           "packed_frames", "flow_key", "flow_scale_line", "strip_picture", "main"]

ROWS = ("real", "synthesised", "labels", "flow")
GAP = 4             # white pixels between panels
MARGIN = 112        # left band with the row names
HEADER_LINES = 4    # a title line, up to two lines of weight notes, the flow row's scale
NOTE_LINES = 2
LINE_HEIGHT = 18
KEY_SIZE = 64       # the flow colour wheel's diameter at most, pixels
NAME_HEIGHT = 30    # the flow row's name above its wheel


def strip_columns(frames: int, columns: int) -> list[int]:
    """Up to ``columns`` frame positions spread evenly over ``frames``, first and last included."""
    return sorted({int(round(x)) for x in np.linspace(0, frames - 1, min(columns, frames))})


def paired_videos(videos_path: str | Path, real_path: str | Path,
                  shown: slice) -> tuple[np.ndarray, np.ndarray, dict, dict]:
    """``(synthesised, real, synthesised provenance, real provenance)`` of the videos ``shown``
    (a slice of the sets, which must pair up). The shapes come from the files' headers and only
    the videos shown are read: a study's set is 800 MB, the strip shows one video, the MP4 four."""
    fake_shape, fake_record = read_videos_header(videos_path)
    real_shape, real_record = read_videos_header(real_path)
    if fake_shape != real_shape:
        raise PipelineError(f"videos {list(fake_shape)} do not pair with the real videos {list(real_shape)} "
                            f"of {real_path}", videos_path)
    start, stop, _ = shown.indices(real_shape[0])
    if not 0 <= start < stop:
        raise PipelineError(f"videos {shown.start}..{shown.stop}: the file holds {real_shape[0]} videos", videos_path)
    return (read_video_rows(videos_path, start, stop), read_video_rows(real_path, start, stop), fake_record,
            real_record)


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


def flow_key(diameter: int) -> np.ndarray:
    """The flow colours as a wheel, RGB uint8 ``[diameter, diameter, 3]``: each point has the colour
    of a flow from the centre to it, the rim the strip's full radius; white outside the disc."""
    centre = (diameter - 1) / 2
    y, x = np.mgrid[:diameter, :diameter] - centre        # image axes: y grows downwards, as flow's v
    wheel = flow_to_colour(np.stack([x, y], axis=-1), max(centre, 1e-6))
    wheel[np.hypot(x, y) > centre] = 255
    return wheel


def flow_scale_line(radius: float, height: int, width: int) -> str:
    return f"flow: max |flow| = {radius:.2f} px at {width}x{height} (full colour, the wheel's rim)"


def _row_name(name: str, height: int) -> np.ndarray:
    """A row's name panel; the flow row's holds its colour wheel below the name, as the row's key."""
    if name != "flow":
        return label_panel(height, MARGIN, name)
    diameter = max(0, min(KEY_SIZE, height - NAME_HEIGHT - 4, MARGIN - 12))
    top = (height - NAME_HEIGHT - diameter) // 2        # name and wheel centred, as the other names
    panel = np.full((height, MARGIN, 3), 255, np.uint8)
    panel[top:top + NAME_HEIGHT] = label_panel(NAME_HEIGHT, MARGIN, name)
    panel[top + NAME_HEIGHT:top + NAME_HEIGHT + diameter, 6:6 + diameter] = flow_key(diameter)
    return panel


def _header(width: int, heading: str, notes: str, scale_line: str) -> np.ndarray:
    characters = max(20, (width - 12) // 8)
    lines = textwrap.wrap(notes, characters)
    if len(lines) > NOTE_LINES:
        lines = lines[:NOTE_LINES - 1] + [textwrap.shorten(" ".join(lines[NOTE_LINES - 1:]), characters)]
    lines = [heading[:characters], *lines, scale_line[:characters]]
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
        grid[top:top + cell_h, :MARGIN] = _row_name(name, cell_h)
        for column, panel in enumerate(upscale(panels[name], scale)):
            left = MARGIN + column * (cell_w + GAP)
            grid[top:top + cell_h, left:left + cell_w] = panel
    return np.concatenate([_header(total_w, heading, notes, flow_scale_line(radius, height, width)), grid])


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
    if args.video < 0:
        raise PipelineError(f"--video must be 0 or more, got {args.video}")
    fake, real, fake_record, real_record = paired_videos(args.videos, args.real, slice(args.video, args.video + 1))
    frames, height, width = real.shape[1:4]
    labels, flow, snippet, start = packed_frames(args.data, real_record, args.video, (height, width), frames)
    columns = strip_columns(frames, args.columns)
    variant = fake_record.get("variant", Path(args.videos).stem)
    heading = (f"{variant}: test video {args.video} ({snippet}), frames "
               f"{', '.join(str(start + c) for c in columns)} of the snippet")
    notes = notes_line(weight_notes([fake_record, *(load_record(p) for p in args.provenance)]))
    write_png(args.output, strip_picture(real[0], fake[0], labels, flow, columns, heading, notes),
              report_record("pipeline.report.strip", args))


if __name__ == "__main__":
    run_main(main)
