"""The time each stage and each variant's training took.

Stages: Snakemake's benchmark files (column ``s`` is the job's wall-clock seconds), summed over
each rule's jobs, with the job count and the longest job. A file is counted for the rule whose
``benchmark:`` pattern it matches (``--benchmarks``: the rules' patterns, which the report_timing
rule reads from the workflow), the most specific where several match: ``embed/heldout/real.tsv``
is embed_heldout_real's, not embed's or embed_draw_candidates'. The patterns are not renamed to
``results/timing/{rule}/...``: Snakemake counts a benchmark file as an output, so a new path would
rerun each job (pack_gtfine, and the image variants' training after it). A file no pattern
matches (a renamed line's leftovers) counts for its first folder, or its stem.

Training: ``training_seconds`` of each variant's summary.json, which counts only the time spent
training, across resumed jobs (a benchmark file sees only the last attempt), coloured by the
network its provenance names. Each panel counts in minutes, in seconds while its largest bar
stays under two minutes (a demo run's stages: minutes would print 0.0), or in hours once its
largest bar passes three (the study's stages run for days).

    python -m pipeline.report.timing --timing results/timing --benchmarks '{"embed": ...}' \\
        --summaries results/train/*/summary.json --output results/report/timing.png
"""

from __future__ import annotations

import argparse
import csv
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.patches import Patch

from pipeline.cli import run_main
from pipeline.errors import PipelineError
from pipeline.io import read_json
from pipeline.report.figures import (NETWORK_COLOURS, NETWORK_NAMES, figure, network_colour, number, report_record,
                                     save_figure, title)
from pipeline.report.provenance import notes_line, weight_notes

__all__ = ["SIZE", "benchmark_seconds", "benchmark_rule", "stage_times", "training_times", "training_networks",
           "time_unit", "draw_timing", "main"]

SIZE = (1400, 640)
HOURS_FROM = 3 * 3600       # seconds: a longer largest bar is counted in hours
MINUTES_FROM = 120          # seconds: a shorter largest bar is counted in seconds
WILDCARD = re.compile(r"\{[^}]+\}")   # a wildcard in a benchmark: pattern


def benchmark_seconds(path: str | Path) -> float:
    """Wall-clock seconds of a Snakemake benchmark TSV (the mean over repeats)."""
    path = Path(path)
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    if not rows or "s" not in rows[0]:
        raise PipelineError("not a Snakemake benchmark file (no column 's')", path)
    return float(np.mean([number(row["s"]) for row in rows]))


def _pattern_regex(pattern: str) -> re.Pattern:
    """A ``benchmark:`` pattern as a regex for the end of a path: a wildcard is one path part
    (the workflow's wildcard constraints hold no slash)."""
    return re.compile("(?:^|/)" + "[^/]+".join(map(re.escape, WILDCARD.split(pattern))) + "$")


def benchmark_rule(path: Path, root: Path, patterns: Mapping[str, str]) -> str:
    """The rule whose ``benchmark:`` pattern matches ``path``, the one with the most fixed text
    where several do; else the first folder under ``root``, or the file's stem."""
    matches = [(len(WILDCARD.sub("", pattern)), rule) for rule, pattern in patterns.items()
               if _pattern_regex(pattern).search(path.as_posix())]
    if matches:
        return max(matches)[1]
    relative = path.relative_to(root)
    return relative.parts[0] if len(relative.parts) > 1 else path.stem


def stage_times(root: str | Path, patterns: Mapping[str, str] | None = None) -> dict[str, dict[str, float]]:
    """``{rule: {"seconds": total, "jobs": count, "longest": seconds}}`` of the benchmark files
    under ``root``; ``patterns``: each rule's ``benchmark:`` pattern (:func:`benchmark_rule`)."""
    root = Path(root)
    stages: dict[str, dict[str, float]] = {}
    for path in sorted(root.rglob("*.tsv")) if root.is_dir() else []:
        rule = benchmark_rule(path, root, patterns or {})
        seconds = benchmark_seconds(path)
        entry = stages.setdefault(rule, {"seconds": 0.0, "jobs": 0, "longest": 0.0})
        entry["seconds"] += seconds
        entry["jobs"] += 1
        entry["longest"] = max(entry["longest"], seconds)
    return stages


def training_times(paths: Sequence[str | Path]) -> tuple[dict[str, float], list[dict]]:
    """``({variant: training seconds}, summaries)`` of the train stage's summary.json files."""
    times, summaries = {}, []
    for path in map(Path, paths):
        summary = read_json(path)
        if not isinstance(summary, dict) or "training_seconds" not in summary:
            raise PipelineError("not a training summary (no 'training_seconds')", path)
        times[str(summary.get("variant") or path.parent.name)] = float(summary["training_seconds"])
        summaries.append(summary)
    return dict(sorted(times.items())), summaries


def training_networks(summaries: Sequence[dict]) -> dict[str, str | None]:
    """``{variant: network}`` from each summary's provenance (its variant entry); None where absent."""
    networks = {}
    for summary in summaries:
        entry = ((summary.get("provenance") or {}).get("settings") or {}).get("entry") or {}
        networks[str(summary.get("variant"))] = entry.get("network")
    return networks


def time_unit(largest_seconds: float) -> tuple[float, str, str]:
    """``(seconds per unit, short name, long name)``: hours when the largest bar passes
    :data:`HOURS_FROM` (thousands of minutes read badly), seconds below :data:`MINUTES_FROM`
    (a fraction of a minute prints as 0.0 min), else minutes. NaN (no time recorded): minutes."""
    if largest_seconds > HOURS_FROM:
        return 3600.0, "h", "hours"
    if largest_seconds < MINUTES_FROM:
        return 1.0, "s", "seconds"
    return 60.0, "min", "minutes"


def _stage_panel(axis, stages: dict[str, dict[str, float]]) -> None:
    if not stages:
        axis.text(0.5, 0.5, "no benchmark files\n(stages ran before their benchmark: lines)",
                  ha="center", va="center", transform=axis.transAxes)
        axis.set_xlabel("seconds, summed over the rule's jobs")
        return
    names = sorted(stages, key=lambda rule: stages[rule]["seconds"])
    unit, _, long = time_unit(max(stages[rule]["seconds"] for rule in names))
    totals = [stages[rule]["seconds"] / unit for rule in names]
    axis.barh(np.arange(len(names)), totals, color="#6a9f58")
    axis.set_yticks(np.arange(len(names)), names, fontsize=8)
    for y, rule in enumerate(names):
        longest = stages[rule]["longest"]
        own, own_short, _ = time_unit(longest)       # its own unit: a 3 s job in a panel of minutes
        axis.annotate(f" {int(stages[rule]['jobs'])} job(s), longest {longest / own:.1f} {own_short}",
                      (totals[y], y), va="center", fontsize=7)
    axis.set_xlim(0, max(totals) * 1.45 if max(totals) > 0 else 1)
    axis.set_xlabel(f"{long}, summed over the rule's jobs")


def _training_panel(axis, training: dict[str, float], networks: dict[str, str | None]) -> None:
    names = list(training)
    unit, _, long = time_unit(max(training.values(), default=0.0))
    colours = [network_colour(networks.get(name)) for name in names]
    axis.bar(np.arange(len(names)), [training[name] / unit for name in names], color=colours)
    axis.set_xticks(np.arange(len(names)), names, fontsize=8)
    axis.set_ylabel(f"{long} of training")
    shown = sorted({networks.get(name) for name in names} & set(NETWORK_COLOURS))
    if shown:
        axis.legend(handles=[Patch(color=NETWORK_COLOURS[net], label=NETWORK_NAMES[net]) for net in shown],
                    fontsize=8)


def draw_timing(stages: dict[str, dict[str, float]], training: dict[str, float], notes: str,
                output: str | Path, networks: dict[str, str | None] | None = None, *, record: dict) -> None:
    fig, axes = figure(*SIZE, 1, 2)
    by_stage, by_variant = axes[0]
    _stage_panel(by_stage, stages)
    by_stage.set_title("stages (Snakemake benchmark files)", fontsize=10)
    _training_panel(by_variant, training, networks or {})
    by_variant.set_title("training per variant (summary.json)", fontsize=10)
    for axis in (by_stage, by_variant):
        axis.grid(alpha=0.3)
    title(fig, "Where the time went", notes)
    fig.subplots_adjust(top=0.84, bottom=0.1, left=0.12, right=0.98, wspace=0.25)
    save_figure(fig, output, record)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipeline.report.timing", description=__doc__.split("\n\n")[0])
    parser.add_argument("--timing", required=True, help="folder of benchmark files (results/timing)")
    parser.add_argument("--benchmarks", default="{}", help="JSON: each rule's benchmark: pattern")
    parser.add_argument("--summaries", nargs="+", required=True, help="summary.json of every variant")
    parser.add_argument("--output", required=True, help="PNG to write")
    args = parser.parse_args(argv)
    patterns = json.loads(args.benchmarks)
    if not isinstance(patterns, dict):
        raise PipelineError(f"--benchmarks must be a JSON object of rule: pattern, got {args.benchmarks[:80]}")
    training, summaries = training_times(args.summaries)
    draw_timing(stage_times(args.timing, patterns), training, notes_line(weight_notes(summaries)), args.output,
                training_networks(summaries), record=report_record("pipeline.report.timing", args))


if __name__ == "__main__":
    run_main(main)
