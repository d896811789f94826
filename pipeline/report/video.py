"""A variant's test videos beside the real ones: an MP4 and a page that plays it.

Thesis 5.1 recommends watching the videos: flicker, smearing and frozen textures show in motion,
not in a table. Each MP4 frame is the real video's frame (left) beside the variant's (right),
upscaled to at least 192 pixels high (nearest neighbour, so pixels stay pixels), under a band
naming both and the weights behind them. The first ``--count`` test videos play one after the
other at Cityscapes' 17 frames per second. H.264, yuv420p, even sizes: every browser plays it.

Snakemake's report offers an MP4 only as a download, so a small self-contained HTML page with the
video embedded (a data URI) is written beside it; the report shows that page in a frame.

    python -m pipeline.report.video --videos results/videos/v01.h5 --real results/videos/real.h5 \\
        --output results/report/videos/v01.mp4 --page results/report/videos/v01.html
"""

from __future__ import annotations

import argparse
import base64
import html
import textwrap
from collections.abc import Sequence
from pathlib import Path

import imageio.v2 as imageio
import numpy as np

from pipeline.cli import run_main
from pipeline.errors import PipelineError
from pipeline.io import atomic_path
from pipeline.report.figures import display_scale, provenance_html, report_record, text_bar, upscale
from pipeline.report.provenance import load_record, notes_line, weight_notes
from pipeline.report.strip import paired_videos

__all__ = ["FPS", "GAP", "HEADER_LINES", "LINE_HEIGHT", "DISPLAY_HEIGHT", "side_by_side", "write_mp4", "video_page",
           "main"]

FPS = 17            # Cityscapes sequences were recorded at 17 Hz
GAP = 4
HEADER_LINES = 3    # the two names, then up to two lines of weight notes
LINE_HEIGHT = 18
DISPLAY_HEIGHT = 192


def _even(frames: np.ndarray) -> np.ndarray:
    """Pad ``[T, H, W, 3]`` with white to even H and W (yuv420p halves both for colour)."""
    pad_h, pad_w = frames.shape[1] % 2, frames.shape[2] % 2
    return np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), constant_values=255)


def side_by_side(real: np.ndarray, fake: np.ndarray, names: tuple[str, str], notes: str) -> np.ndarray:
    """Frames ``[N*T, H', W', 3]``: for each video in turn, real | synthesised under a header band."""
    count, frames, height, width = real.shape[:4]
    scale = display_scale(height, DISPLAY_HEIGHT)
    cell_w = width * scale
    gap = np.full((count * frames, height * scale, GAP, 3), 255, np.uint8)
    pairs = np.concatenate([upscale(real.reshape(-1, height, width, 3), scale), gap,
                            upscale(fake.reshape(-1, height, width, 3), scale)], axis=2)
    total_w = pairs.shape[2]
    characters = max(20, (total_w - 12) // 8)
    lines = textwrap.wrap(notes, characters)[:HEADER_LINES - 1]
    names_band = np.concatenate([text_bar(cell_w + GAP, [names[0]], LINE_HEIGHT),
                                 text_bar(cell_w, [names[1]], LINE_HEIGHT)], axis=1)
    notes_band = text_bar(total_w, lines + [""] * (HEADER_LINES - 1 - len(lines)), LINE_HEIGHT)
    header = np.concatenate([names_band, notes_band])
    return _even(np.concatenate([np.broadcast_to(header, (len(pairs), *header.shape)), pairs], axis=1))


def write_mp4(path: str | Path, frames: np.ndarray, fps: int = FPS) -> None:
    """H.264 (libx264, yuv420p) MP4 of RGB uint8 frames ``[T, H, W, 3]`` with even H and W, atomically."""
    if frames.shape[1] % 2 or frames.shape[2] % 2:
        raise ValueError(f"yuv420p needs even sizes, got {frames.shape[1]}x{frames.shape[2]}")
    with atomic_path(path, suffix=".mp4") as tmp:
        writer = imageio.get_writer(tmp, format="FFMPEG", mode="I", fps=fps, codec="libx264",
                                    pixelformat="yuv420p", macro_block_size=1, ffmpeg_log_level="error",
                                    output_params=["-crf", "18"])
        try:
            for frame in frames:
                writer.append_data(np.ascontiguousarray(frame))
        finally:
            writer.close()


def video_page(mp4: str | Path, heading: str, notes: str, description: str, record: dict) -> str:
    """A self-contained HTML page that plays ``mp4`` (embedded as a data URI), looping, with its
    provenance ``record``."""
    data = base64.b64encode(Path(mp4).read_bytes()).decode()
    return ("<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>{html.escape(heading)}</title><style>body {{ font-family: sans-serif; margin: 12px; }} "
            "p.notes { color: #a33; font-weight: bold; }</style></head><body>"
            f"<h3>{html.escape(heading)}</h3><p class='notes'>{html.escape(notes)}</p>"
            f"<video controls autoplay loop muted playsinline src='data:video/mp4;base64,{data}'></video>"
            f"<p>{html.escape(description)}</p>{provenance_html(record)}</body></html>\n")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipeline.report.video", description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", required=True, help="the variant's videos (results/videos/{variant}.h5)")
    parser.add_argument("--real", required=True, help="the real videos (results/videos/real.h5)")
    parser.add_argument("--provenance", nargs="*", default=[], help="more files whose provenance names the weights")
    parser.add_argument("--count", type=int, default=4, help="test videos shown one after another (default 4)")
    parser.add_argument("--fps", type=int, default=FPS)
    parser.add_argument("--output", required=True, help="MP4 to write")
    parser.add_argument("--page", required=True, help="HTML page to write (plays the MP4)")
    args = parser.parse_args(argv)
    if args.count < 1:
        raise PipelineError(f"--count must be at least 1, got {args.count}")
    fake, real, fake_record, _ = paired_videos(args.videos, args.real, slice(0, args.count))
    count = len(real)       # --count, or fewer where the sets hold fewer
    variant = str(fake_record.get("variant", Path(args.videos).stem))
    notes = notes_line(weight_notes([fake_record, *(load_record(p) for p in args.provenance)]))
    frames = side_by_side(real, fake, ("real", variant), notes)
    write_mp4(args.output, frames, args.fps)
    description = (f"Test videos 0 to {count - 1}, {real.shape[1]} frames each ({len(frames)} frames at "
                   f"{args.fps} fps): the real video on the left, {variant}'s on the right, "
                   f"{real.shape[3]}x{real.shape[2]} pixels (width x height) shown at "
                   f"{display_scale(real.shape[2], DISPLAY_HEIGHT)}x.")
    with atomic_path(args.page, suffix=".html") as tmp:
        tmp.write_text(video_page(args.output, f"{variant} beside the real videos", notes, description,
                                  report_record("pipeline.report.video", args)), encoding="utf-8")


if __name__ == "__main__":
    run_main(main)
