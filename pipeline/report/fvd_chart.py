"""FVD per variant with its bootstrap interval, beside the thesis's figure (table 5.1).

Left: this run. Bars are the pooled FVD of all test videos (mean over the three crops) with the
bootstrap interval of :mod:`pipeline.fvd.protocol` as whiskers at the bar's centre; dots, beside
the bar so the interval is not read as theirs, are the thesis's protocol (FVD per batch of 16,
mean over batches and crops, thesis 4.5.4). Right: the FVD table 5.1 reports for the same
variant. The two panels have their own scales: the demo's narrow random I3D gives numbers that
compare only with each other, so the reader compares orderings, not values; the title gives how
well they agree (Kendall's tau of the pooled FVD against the thesis's, over the variants with
both). A missing value is written "n/a" and a bar without an interval (``fvd.bootstrap: 0``)
"no interval": neither is drawn as a zero or as an exact value.

    python -m pipeline.report.fvd_chart --table results/fvd_table.csv \\
        --provenance results/fvd/scores/*.json --output results/report/fvd.png
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau

from pipeline.cli import run_main
from pipeline.report.figures import (figure, mark_missing, network_colour, number, read_csv_rows,
                                     report_record, save_figure, title)
from pipeline.report.provenance import load_record, notes_line, weight_notes

__all__ = ["SIZE", "chart_rows", "rank_agreement", "draw_fvd_chart", "main"]

SIZE = (1400, 640)
BAR_WIDTH = 0.55
DOT_OFFSET = 0.4    # the batch-mean dot sits right of its bar, clear of the bar's whisker
TABLE_COLUMNS = ("variant", "index", "network", "fvd", "fvd_pooled", "fvd_pooled_ci_low", "fvd_pooled_ci_high",
                 "thesis_fvd")


def chart_rows(table_path: str | Path) -> list[dict]:
    """The table's rows with the chart's columns as numbers, in table order."""
    rows = read_csv_rows(table_path, TABLE_COLUMNS, "FVD table")
    numeric = TABLE_COLUMNS[3:]
    return [{"variant": row["variant"], "index": row["index"], "network": row["network"],
             **{key: number(row[key]) for key in numeric}} for row in rows]


def rank_agreement(rows: Sequence[dict]) -> tuple[float, float, int]:
    """``(Kendall's tau, p-value, variants)`` of our pooled FVD against the thesis's, over the
    variants that have both; NaNs when fewer than two do."""
    pairs = [(row["fvd_pooled"], row["thesis_fvd"]) for row in rows
             if math.isfinite(row["fvd_pooled"]) and math.isfinite(row["thesis_fvd"])]
    if len(pairs) < 2:
        return math.nan, math.nan, len(pairs)
    tau, p_value = kendalltau(*zip(*pairs))
    return float(tau), float(p_value), len(pairs)


def _agreement_text(rows: Sequence[dict]) -> str:
    tau, p_value, count = rank_agreement(rows)
    if math.isnan(tau):
        return f"rank agreement with the thesis: n/a ({count} variant(s) with both FVDs)"
    return f"rank agreement with the thesis: Kendall's tau {tau:.2f} (p = {p_value:.2g}, {count} variants)"


def _whiskers(axis, positions: np.ndarray, pooled: np.ndarray, low: np.ndarray, high: np.ndarray) -> bool:
    """The bootstrap interval as whiskers where the table has one, "no interval" over a bar
    without (``fvd.bootstrap: 0``): a zero-length whisker would read as an exact value. Whether
    any bar has one."""
    interval = np.isfinite(pooled) & np.isfinite(low) & np.isfinite(high)
    if interval.any():
        errors = np.vstack([np.clip(pooled - low, 0, None), np.clip(high - pooled, 0, None)])[:, interval]
        axis.errorbar(positions[interval], pooled[interval], yerr=errors, fmt="none", ecolor="black", capsize=3,
                      label="bootstrap interval of the pooled FVD")
    for x, value in zip(positions[~interval], pooled[~interval]):
        if np.isfinite(value):
            axis.annotate("no interval", (x, value), ha="center", va="bottom", fontsize=7)
    return bool(interval.any())


def _this_run_panel(axis, rows: Sequence[dict], positions: np.ndarray, colours: list[str]) -> None:
    pooled, low, high, batch_mean = (np.array([row[key] for row in rows]) for key in
                                     ("fvd_pooled", "fvd_pooled_ci_low", "fvd_pooled_ci_high", "fvd"))
    bars = axis.bar(positions, pooled, BAR_WIDTH, color=colours, label="pooled FVD (bar)")
    if not _whiskers(axis, positions, pooled, low, high):
        bars.set_label("pooled FVD (bar; no bootstrap interval)")
    axis.plot(positions + DOT_OFFSET, batch_mean, "k.", markersize=9, label="thesis protocol: batch mean (dot)")
    mark_missing(axis, positions, pooled)
    mark_missing(axis, positions + DOT_OFFSET, batch_mean)
    axis.set_title("this run")
    axis.set_ylabel("FVD (lower is better)")
    axis.set_ylim(0, axis.get_ylim()[1] * 1.2)     # headroom: the legend covers no whisker or dot
    axis.legend(loc="upper right", fontsize=8)


def _thesis_panel(axis, rows: Sequence[dict], positions: np.ndarray, colours: list[str]) -> None:
    values = [row["thesis_fvd"] for row in rows]
    axis.bar(positions, [0.0 if math.isnan(v) else v for v in values], BAR_WIDTH, color=colours)
    mark_missing(axis, positions, values)
    axis.set_title("thesis, table 5.1")
    axis.set_ylabel("FVD in the thesis (lower is better)")


def draw_fvd_chart(rows: Sequence[dict], notes: str, output: str | Path, *, record: dict) -> None:
    fig, axes = figure(*SIZE, 1, 2)
    ours, thesis = axes[0]
    positions = np.arange(len(rows))
    colours = [network_colour(row["network"]) for row in rows]
    _this_run_panel(ours, rows, positions, colours)
    _thesis_panel(thesis, rows, positions, colours)
    names = [f"{row['index']}\n{row['variant']}" for row in rows]
    for axis in (ours, thesis):
        axis.set_xticks(positions, names, fontsize=7)
        axis.set_xlim(-0.6, len(rows) - 0.4 + DOT_OFFSET)   # a NaN bar has no extent to autoscale to
        axis.grid(axis="y", alpha=0.3)
    title(fig, f"FVD per variant (blue: CRN, orange: pix2pixHD); {_agreement_text(rows)}", notes)
    fig.subplots_adjust(top=0.82, bottom=0.12, left=0.06, right=0.98, wspace=0.18)
    save_figure(fig, output, record)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipeline.report.fvd_chart", description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", required=True, help="results/fvd_table.csv")
    parser.add_argument("--provenance", nargs="*", default=[], help="files whose provenance names the weights")
    parser.add_argument("--output", required=True, help="PNG to write")
    args = parser.parse_args(argv)
    notes = notes_line(weight_notes(load_record(path) for path in args.provenance))
    draw_fvd_chart(chart_rows(args.table), notes, args.output, record=report_record("pipeline.report.fvd_chart", args))


if __name__ == "__main__":
    run_main(main)
