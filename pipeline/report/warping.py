"""The flow-warping error of each variant's test videos (temporal consistency).

For every synthesised video, frame t-1 warped onto frame t by the real video's reference flow is
compared with frame t where the real frames agree with that flow (:mod:`pipeline.synthesize.warping`).
A flickering variant has a large error; a variant that ignores motion altogether can still be
consistent, so this figure is read beside the FVD. Bars: mean over videos; whiskers: standard
deviation over videos; dots: single videos; dashed line: the real videos' own error under the
same mask (real video changes along its flow too), the level a perfect synthesis would reach.
A bar far below it belongs to videos that move less than the real ones. An error the stage could
not measure (NaN: no pixel kept by the mask, one-frame videos) is written "n/a", not drawn as a
gap or a zero. Where the errors span more than :data:`LOG_SPREAD` times (one flickering variant
beside near-static ones) the axis is logarithmic, so the small bars still show where they sit
against the real level.

    python -m pipeline.report.warping --table results/fvd_table.csv \\
        --warping results/fvd/warping/*.json --provenance ... --output results/report/warping.png
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.cli import run_main
from pipeline.errors import PipelineError
from pipeline.io import read_json
from pipeline.report.figures import (figure, mark_missing, network_colour, read_csv_rows, report_record,
                                     save_figure, title)
from pipeline.report.provenance import load_record, notes_line, weight_notes

__all__ = ["SIZE", "LOG_SPREAD", "read_warping", "real_level", "log_scale", "draw_warping", "main"]

SIZE = (1200, 560)
LOG_SPREAD = 30.0       # largest / smallest error beyond which the axis is logarithmic


def read_warping(paths: Sequence[str | Path]) -> dict[str, dict]:
    """``{variant: record}`` of the synthesize stage's warping JSONs (keys ``warping_error``,
    ``warping_error_std``, ``per_video``, ``real_warping_error``, ``mask_kept_share``); the
    variant is the ``variant`` key or the file stem."""
    records = {}
    for path in map(Path, paths):
        record = read_json(path)
        if not isinstance(record, dict) or "warping_error" not in record:
            raise PipelineError("not a warping-error JSON (no 'warping_error')", path)
        records[str(record.get("variant") or path.stem)] = {key: _nan_for_null(value) for key, value in record.items()}
    return records


def _nan_for_null(value: Any) -> Any:
    """The JSON's null (a figure that could not be measured) as NaN, in lists too."""
    if value is None:
        return math.nan
    return [_nan_for_null(item) for item in value] if isinstance(value, list) else value


def real_level(records: Mapping[str, dict]) -> tuple[float, float] | None:
    """The real videos' own warping error and the share of pixels the mask kept, as the warping
    JSONs record them (every variant is measured on the same real videos, so they agree; the
    mean absorbs rounding); None for JSONs written before they were recorded."""
    real = [record for record in records.values() if "real_warping_error" in record]
    if not real:
        return None
    return (float(np.mean([record["real_warping_error"] for record in real])),
            float(np.mean([record.get("mask_kept_share", np.nan) for record in real])))


def _real_level_line(axis, reference: tuple[float, float] | None) -> None:
    """The real videos' level as a dashed line; said in words where it is NaN (no line to draw)."""
    if reference is None:
        return
    level, kept = reference
    share = f"{kept:.0%}" if math.isfinite(kept) else "an unrecorded share"
    if math.isfinite(level):
        axis.axhline(level, color="k", linestyle="--", linewidth=1,
                     label=f"real videos: what a perfect synthesis scores (same mask, {share} of pixels kept)")
        axis.legend(loc="best", fontsize=8)
    else:
        axis.text(0.99, 0.98, f"real videos' level: n/a (the mask kept {share} of pixels)", transform=axis.transAxes,
                  ha="right", va="top", fontsize=8)


def log_scale(values: Sequence[float]) -> bool:
    """Whether errors ``values`` need a log axis: all finite ones positive, spanning more than
    :data:`LOG_SPREAD` times (on a linear axis the largest flattens the others to nothing)."""
    finite = np.asarray([value for value in values if math.isfinite(value)], dtype=float)
    return bool(finite.size and (finite > 0).all() and finite.max() / finite.min() > LOG_SPREAD)


def draw_warping(order: Sequence[Mapping[str, str]], records: Mapping[str, dict], notes: str,
                 output: str | Path, *, record: dict) -> None:
    """One bar a variant, in the order (and with the network) of the FVD table's rows."""
    missing = [row["variant"] for row in order if row["variant"] not in records]
    if missing:
        raise PipelineError(f"no warping error for variant(s) {', '.join(missing)}")
    fig, axes = figure(*SIZE)
    axis = axes[0][0]
    positions = np.arange(len(order))
    means = [records[row["variant"]]["warping_error"] for row in order]
    spread = [records[row["variant"]].get("warping_error_std", 0.0) for row in order]
    colours = [network_colour(row.get("network")) for row in order]
    per_videos = [np.asarray(records[row["variant"]].get("per_video", []), dtype=float) for row in order]
    reference = real_level(records)
    log = log_scale([*means, *np.concatenate([[], *per_videos]),
                     *([reference[0]] if reference is not None else [])])
    if log:
        # A whisker reaching zero or below has no place on a log axis: it stops at the bar's tenth.
        lower = [min(s, 0.9 * m) if math.isfinite(m) and math.isfinite(s) else s for m, s in zip(means, spread)]
        spread = [lower, spread]
    axis.bar(positions, means, yerr=spread, color=colours, capsize=3)
    jitter = np.random.default_rng(0)     # fixed: the picture is deterministic
    for x, per_video in zip(positions, per_videos):
        axis.plot(x + jitter.uniform(-0.2, 0.2, len(per_video)), per_video, "k.", markersize=3, alpha=0.5)
    mark_missing(axis, positions, means)
    _real_level_line(axis, reference)
    axis.set_xticks(positions, [f"{row['index']}\n{row['variant']}" for row in order], fontsize=7)
    axis.set_xlim(-0.6, len(order) - 0.4)     # a NaN bar has no extent: autoscaling would drop its place
    axis.set_ylabel("mean |warped frame t-1 - frame t| (RGB in [0, 1])" + (", log scale" if log else ""))
    if log:
        axis.set_yscale("log")
    else:
        axis.set_ylim(bottom=0)
    axis.grid(axis="y", alpha=0.3, which="both" if log else "major")
    title(fig, "Warping error per variant (nearest the dashed real-videos level is best; far below it: videos that "
               "barely change; blue: CRN, orange: pix2pixHD)", notes)
    fig.subplots_adjust(top=0.84, bottom=0.12, left=0.07, right=0.98)
    save_figure(fig, output, record)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipeline.report.warping", description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", required=True, help="results/fvd_table.csv (variant order and networks)")
    parser.add_argument("--warping", nargs="+", required=True, help="warping-error JSON of every variant")
    parser.add_argument("--provenance", nargs="*", default=[], help="files whose provenance names the weights")
    parser.add_argument("--output", required=True, help="PNG to write")
    args = parser.parse_args(argv)
    notes = notes_line(weight_notes(load_record(path) for path in args.provenance))
    draw_warping(read_csv_rows(args.table), read_warping(args.warping), notes, args.output,
                 record=report_record("pipeline.report.warping", args))


if __name__ == "__main__":
    run_main(main)
