"""A variant's training-loss curves, from the train stage's losses.csv.

One panel a loss term (the names the trainer logged, :mod:`pipeline.train.loop`), against the
training step; a dashed line marks where a CRN stage ends and a refinement module is added
(thesis 4.5.2). Terms that stay positive are drawn on a log scale. The logged values are drawn
faint and a rolling mean over :data:`SMOOTHING` of the logged steps solid over them (one step's
loss is noise; a long run's trend shows in the mean). The title gives the steps and the training
time from summary.json and the weights behind the run; the lines take the colour of the
network the summary's provenance names (blue: CRN, orange: pix2pixHD).

    python -m pipeline.report.losses --losses results/train/v01/losses.csv \\
        --summary results/train/v01/summary.json --output results/report/losses/v01.png
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.ticker import MaxNLocator

from pipeline.cli import run_main
from pipeline.errors import PipelineError
from pipeline.io import read_json
from pipeline.report.figures import (figure, network_colour, number, read_csv_rows, report_record, save_figure,
                                     title)
from pipeline.report.provenance import notes_line, weight_notes
from pipeline.report.timing import time_unit, training_networks
from pipeline.train.log_columns import LOG_COLUMNS

__all__ = ["SIZE", "SMOOTHING", "loss_series", "figure_size", "smoothing_window", "rolling_mean",
           "draw_losses", "duration", "main"]

SIZE = (1200, 720)          # up to three rows of panels; more rows make the picture taller
ROW_HEIGHT = 190            # pixels a row of panels needs beyond three rows
TITLE_HEIGHT = 120          # pixels of the title above the panels
SMOOTHING = 0.05            # the rolling mean's window: this share of the logged steps


def loss_series(path: str | Path) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """``(steps, stages, {term: values})`` of a losses.csv (a term missing in a row is NaN)."""
    rows = read_csv_rows(path)
    if not rows:
        raise PipelineError("no logged steps", path)
    missing = [column for column in ("step", "stage") if column not in rows[0]]
    if missing:
        raise PipelineError(f"not a losses.csv: no column(s) {missing}", path)
    terms = [column for column in rows[0] if column not in LOG_COLUMNS]
    if not terms:
        raise PipelineError("no loss columns", path)
    steps = np.array([number(row["step"]) for row in rows])
    stages = np.array([number(row["stage"]) for row in rows])
    return steps, stages, {term: np.array([number(row[term]) for row in rows]) for term in terms}


def figure_size(rows: int) -> tuple[int, int]:
    """Pixels of a figure with ``rows`` rows of panels: :data:`SIZE`, taller for more than three."""
    return SIZE[0], max(SIZE[1], TITLE_HEIGHT + ROW_HEIGHT * rows)


def smoothing_window(steps: int) -> int:
    """The rolling mean's window in logged steps: odd (a centred mean), 1 when too few steps."""
    return 2 * (round(SMOOTHING * steps) // 2) + 1


def _window_sums(values: np.ndarray, window: int) -> np.ndarray:
    """Sums of ``values`` over a centred odd ``window``, zeros beyond the ends."""
    half = window // 2
    cumulative = np.cumsum(np.concatenate([np.zeros(half + 1), values, np.zeros(half)]))
    return cumulative[window:] - cumulative[:-window]


def rolling_mean(values: np.ndarray, stages: np.ndarray, window: int) -> np.ndarray:
    """Centred mean over ``window`` logged steps, skipping NaNs, never across a stage change:
    a new CRN stage trains at a new resolution, where the losses jump."""
    mean = np.full(len(values), np.nan)
    starts = np.flatnonzero(np.r_[True, np.diff(stages) != 0])
    for start, end in zip(starts, [*starts[1:], len(values)]):
        segment = values[start:end]
        finite = np.isfinite(segment)
        sums = _window_sums(np.where(finite, segment, 0.0), window)
        counts = _window_sums(finite.astype(float), window)
        mean[start:end] = np.divide(sums, counts, out=np.full(len(segment), np.nan), where=counts > 0)
    return mean


def _loss_panel(axis, name: str, steps: np.ndarray, stages: np.ndarray, values: np.ndarray,
                boundaries: np.ndarray, window: int, colour: str) -> None:
    marker = "o" if len(steps) < 50 else None
    smoothed = window > 1
    axis.plot(steps, values, marker=marker, markersize=3, linewidth=1, alpha=0.3 if smoothed else 1.0,
              color=colour)
    if smoothed:
        axis.plot(steps, rolling_mean(values, stages, window), color=colour, linewidth=1.5)
    finite = values[np.isfinite(values)]
    log = bool(finite.size and (finite > 0).all() and finite.max() / finite.min() > 10)
    if log:
        axis.set_yscale("log")
    for boundary in boundaries:
        axis.axvline(boundary, color="grey", linestyle="--", linewidth=1)
    axis.set_title(name, fontsize=10)
    axis.set_xlabel("step", fontsize=8)
    axis.set_ylabel("loss value" + (" (log)" if log else ""), fontsize=8)
    axis.xaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))   # room for 6-digit steps
    axis.grid(alpha=0.3)


def draw_losses(steps: np.ndarray, stages: np.ndarray, terms: dict[str, np.ndarray], heading: str, notes: str,
                output: str | Path, network: str | None = None, *, record: dict) -> None:
    """One panel a loss term, its lines in the colour of ``network`` (``crn``, ``pix2pixhd``; the
    network the summary's provenance names), purple where none is named."""
    colour = network_colour(network)
    columns = min(3, len(terms))
    rows = math.ceil(len(terms) / columns)
    # Constrained layout keeps each panel's title clear of the row above's tick labels.
    fig, axes = figure(*figure_size(rows), rows, columns, layout="constrained")
    boundaries = steps[1:][np.diff(stages) != 0]
    window = smoothing_window(len(steps))
    for axis, (name, values) in zip(axes.flat, terms.items()):
        _loss_panel(axis, name, steps, stages, values, boundaries, window, colour)
    for axis in list(axes.flat)[len(terms):]:
        axis.set_visible(False)
    heading += "; dashed: a new CRN stage" if len(boundaries) else ""
    heading += f"; faint: each logged step, solid: mean over {window} logged steps" if window > 1 else ""
    title(fig, heading, notes)
    save_figure(fig, output, record)


def duration(summary: dict) -> str:
    """The summary's training time in the timing picture's unit (seconds for a short run, whose
    minutes would print 0.0); "time unknown" where it is not recorded."""
    seconds = float(summary.get("training_seconds", math.nan))
    if not math.isfinite(seconds):
        return "time unknown"
    unit, short, _ = time_unit(seconds)
    return f"{seconds / unit:.1f} {short}"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipeline.report.losses", description=__doc__.split("\n\n")[0])
    parser.add_argument("--losses", required=True, help="results/train/{variant}/losses.csv")
    parser.add_argument("--summary", required=True, help="results/train/{variant}/summary.json")
    parser.add_argument("--output", required=True, help="PNG to write")
    args = parser.parse_args(argv)
    summary = read_json(args.summary)
    if not isinstance(summary, dict):
        raise PipelineError("summary.json must hold an object", args.summary)
    steps, stages, terms = loss_series(args.losses)
    variant = summary.get("variant", Path(args.summary).parent.name)
    heading = f"{variant}: training losses ({summary.get('steps', len(steps))} steps, {duration(summary)})"
    network = training_networks([summary]).get(str(summary.get("variant")))
    draw_losses(steps, stages, terms, heading, notes_line(weight_notes([summary])), args.output, network,
                record=report_record("pipeline.report.losses", args))


if __name__ == "__main__":
    run_main(main)
