"""A variant's training-loss curves, from the train stage's losses.csv.

One panel a loss term (the names the trainer logged, :mod:`pipeline.train.loop`), against the
training step; a dashed line marks where a CRN stage ends and a refinement module is added
(thesis 4.5.2). Terms that stay positive are drawn on a log scale. The title gives the steps and
the training time from summary.json and the weights behind the run.

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
from pipeline.report.figures import figure, number, read_csv_rows, save_figure, title
from pipeline.report.provenance import notes_line, weight_notes

__all__ = ["SIZE", "LOG_COLUMNS", "loss_series", "draw_losses", "main"]

SIZE = (1200, 720)
LOG_COLUMNS = ("step", "stage", "epoch", "sample", "lr", "snippet")   # columns before the loss terms


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


def draw_losses(steps: np.ndarray, stages: np.ndarray, terms: dict[str, np.ndarray], heading: str, notes: str,
                output: str | Path) -> None:
    columns = min(3, len(terms))
    rows = math.ceil(len(terms) / columns)
    fig, axes = figure(*SIZE, rows, columns)
    boundaries = steps[1:][np.diff(stages) != 0]
    for axis, (name, values) in zip(axes.flat, terms.items()):
        marker = "o" if len(steps) < 50 else None
        axis.plot(steps, values, marker=marker, markersize=3, linewidth=1)
        finite = values[np.isfinite(values)]
        if finite.size and (finite > 0).all() and finite.max() / finite.min() > 10:
            axis.set_yscale("log")
        for boundary in boundaries:
            axis.axvline(boundary, color="grey", linestyle="--", linewidth=1)
        axis.set_title(name, fontsize=10)
        axis.set_xlabel("step", fontsize=8)
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.grid(alpha=0.3)
    for axis in list(axes.flat)[len(terms):]:
        axis.set_visible(False)
    title(fig, heading + ("; dashed: a new CRN stage" if len(boundaries) else ""), notes)
    fig.subplots_adjust(top=0.86, bottom=0.08, left=0.06, right=0.98, hspace=0.45, wspace=0.25)
    save_figure(fig, output)


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
    heading = (f"{variant}: training losses ({summary.get('steps', len(steps))} steps, "
               f"{float(summary.get('training_seconds', math.nan)) / 60:.1f} min)")
    draw_losses(steps, stages, terms, heading, notes_line(weight_notes([summary])), args.output)


if __name__ == "__main__":
    run_main(main)
