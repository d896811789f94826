"""Pseudo-label quality on the synthetic city, where the true labels of every frame are known.

The thesis trained on gtFine labels but tested every variant on pseudo-labels of all 30 frames
(thesis 4.4); how good those are bounds what the variants can learn. Per split and city: the
mean IoU of the semantic labels over the evaluated classes present in the truth (of the 19; the
synthetic city shows fewer) and the share of true instances matched at IoU >= 0.5
(:mod:`pipeline.labels.quality`), and the IoU of each class over all cities. With
``labels.keep_gtfine`` the annotated frame of each train snippet keeps its gtFine labels: those
frames are not scored (``frames_skipped``), only the ``frames`` the labellers made. A labeller
fit on the train cities' gtFine frames is scored partly in-sample there (the panel says so).

    python -m pipeline.report.label_quality --subset results/data/subset.json \\
        --semantic results/labels/semantic/*/* --instance results/labels/instance/*/* \\
        --output results/report/label_quality.png --record results/report/label_quality.json
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from pipeline.cli import run_main
from pipeline.data.labels import label_colors, label_table
from pipeline.data.subset import load_subset, subset_snippets
from pipeline.errors import PipelineError
from pipeline.io import write_json
from pipeline.labels.quality import Quality, evaluate_city, mean_iou
from pipeline.report.figures import figure, report_record, save_figure, title
from pipeline.report.provenance import load_record, notes_line, weight_notes

__all__ = ["SIZE", "MIOU_COLOUR", "MATCH_COLOUR", "city_folders", "evaluate_labels", "draw_label_quality", "main"]

SIZE = (1400, 600)
# Not NETWORK_COLOURS' blue and orange: in the report those mean CRN and pix2pixHD.
MIOU_COLOUR = "#4d4d4d"     # dark grey
MATCH_COLOUR = "#1b9e77"    # teal (purple: a network the record does not name)


def city_folders(paths: Sequence[str | Path]) -> dict[tuple[str, str], Path]:
    """``{(split, city): folder}`` of label folders laid out as ``.../{split}/{city}``."""
    return {(Path(path).parent.name, Path(path).name): Path(path) for path in paths}


def evaluate_labels(subset_path: str | Path, semantic: Sequence[str | Path],
                    instance: Sequence[str | Path] = ()) -> dict[str, Any]:
    """Per city and overall: mIoU, instance match share, frames scored and frames left out (kept
    gtFine); per class IoU overall."""
    subset = load_subset(subset_path)
    instances = city_folders(instance)
    total, cities = Quality(), {}
    for (split, city), folder in tqdm(sorted(city_folders(semantic).items()), desc="label quality", unit="city"):
        quality = evaluate_city(subset_snippets(subset, split, city), folder, instances.get((split, city)))
        cities[f"{split}/{city}"] = {"miou": quality.miou, "instance_match_share": quality.match_share,
                                     "frames": quality.frames, "frames_skipped": quality.skipped}
        total.merge(quality)
    if not cities:
        raise PipelineError("no semantic label folders given", subset_path)
    _, class_iou = mean_iou(total.counts)
    return {"cities": cities, "miou": total.miou, "instance_match_share": total.match_share,
            "frames": total.frames, "frames_skipped": total.skipped,
            "class_iou": {int(label): iou for label, iou in class_iou.items()}}


def _per_city_panel(axis, result: dict[str, Any]) -> None:
    names = list(result["cities"])
    positions = np.arange(len(names))
    miou = [result["cities"][name]["miou"] for name in names]
    share = [result["cities"][name]["instance_match_share"] for name in names]
    axis.bar(positions - 0.2, miou, 0.4, color=MIOU_COLOUR, label="semantic mIoU")
    axis.bar(positions + 0.2, [0.0 if math.isnan(v) else v for v in share], 0.4, color=MATCH_COLOUR,
             label="instances matched (IoU >= 0.5)")
    axis.set_xticks(positions, names, rotation=30, ha="right", fontsize=8)
    axis.set_ylim(0, 1.05)              # both are shares: 1 is perfect
    axis.set_ylabel("mIoU; share of instances matched")
    # Below the city names: above the bars it would hide a city scoring near 1.
    axis.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)
    # A labeller fit here (detectron2 trained on the train cities' gtFine frames) is scored
    # partly in-sample on the train cities: their bars read high.
    own = ("\ntrain cities: the labeller's own training scenes if it was fit here (in-sample)"
           if any(name.startswith("train/") for name in names) else "")
    axis.set_title(f"per city: overall mIoU {result['miou']:.3f}, "
                   f"instances {result['instance_match_share']:.3f}{own}", fontsize=10)


def _per_class_panel(axis, result: dict[str, Any]) -> None:
    names_by_id = {row["id"]: row["name"] for row in label_table()}
    labels = sorted(result["class_iou"])
    colours = label_colors()[labels] / 255.0 if labels else []
    axis.bar(np.arange(len(labels)), [result["class_iou"][label] for label in labels], color=colours,
             edgecolor="black", linewidth=0.5)
    axis.set_xticks(np.arange(len(labels)), [names_by_id[label] for label in labels], rotation=45,
                    ha="right", fontsize=8)
    axis.set_ylim(0, 1.05)
    axis.set_ylabel("IoU")
    skipped = result.get("frames_skipped", 0)
    axis.set_title(f"IoU per class present in the truth ({result['frames']} frames scored"
                   + (f"; {skipped} kept-gtFine frames left out)" if skipped else ")"), fontsize=10)


def draw_label_quality(result: dict[str, Any], notes: str, output: str | Path, *, record: dict) -> None:
    fig, axes = figure(*SIZE, 1, 2, gridspec_kw={"width_ratios": [1, 1.6]})
    per_city, per_class = axes[0]
    _per_city_panel(per_city, result)
    _per_class_panel(per_class, result)
    for axis in (per_city, per_class):
        axis.grid(axis="y", alpha=0.3)
    title(fig, "Pseudo-labels against the synthetic city's truth", notes)
    fig.subplots_adjust(top=0.84, bottom=0.24, left=0.06, right=0.98, wspace=0.15)
    save_figure(fig, output, record)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipeline.report.label_quality",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--subset", required=True, help="results/data/subset.json (its root holds the truth)")
    parser.add_argument("--semantic", nargs="+", required=True, help="semantic label folders {split}/{city}")
    parser.add_argument("--instance", nargs="*", default=[], help="instance label folders {split}/{city}")
    parser.add_argument("--output", required=True, help="PNG to write")
    parser.add_argument("--record", required=True, help="JSON of the numbers to write")
    args = parser.parse_args(argv)
    result = evaluate_labels(args.subset, args.semantic, args.instance)
    notes = notes_line(weight_notes(load_record(path) for path in [*args.semantic, *args.instance]))
    record = report_record("pipeline.report.label_quality", args)
    draw_label_quality(result, notes, args.output, record=record)
    write_json(args.record, {**result, "weights": notes, "provenance": record})


if __name__ == "__main__":
    run_main(main)
