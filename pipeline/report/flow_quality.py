"""Reference-flow quality on the synthetic city, where the true motion of every pixel is known.

The flow variants learn from, and the warping error is measured with, the reference flow
(FlowNet2 in the study, DIS in the demo); its error bounds both. Per split and city: the mean
end-point error (EPE, pixels at the frames' own size, over pixels visible in both frames;
:func:`pipeline.flow.quality.end_point_error`) beside the EPE of zero flow, which is the mean
true motion: a backend that tracks the motion sits well below it. Below: one frame pair, its
true and computed flow (one colour radius, :func:`pipeline.flow.colour.flow_to_colour`) and the
per-pixel error.

    python -m pipeline.report.flow_quality --subset results/data/subset.json \\
        --flow results/flow/*/*.h5 --output results/report/flow_quality.png \\
        --record results/report/flow_quality.json
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from pipeline.cli import run_main
from pipeline.data.cityscapes import Snippet, read_frame
from pipeline.data.subset import load_subset, subset_snippets
from pipeline.errors import PipelineError
from pipeline.flow.colour import flow_to_colour
from pipeline.flow.quality import end_point_error, load_truth
from pipeline.flow.stage import read_flow
from pipeline.io import write_json
from pipeline.pack.resize import resize_flow
from pipeline.report.figures import figure, report_record, save_figure, title
from pipeline.report.provenance import load_record, notes_line, weight_notes

__all__ = ["SIZE", "COMPUTED_COLOUR", "BACKEND_NAMES", "backend_names", "snippet_errors", "evaluate_flow",
           "draw_flow_quality", "main"]

SIZE = (1400, 820)
COMPUTED_COLOUR = "#4d4d4d"     # dark grey: NETWORK_COLOURS' blue means CRN in the report
BACKEND_NAMES = {"dis": "DIS (OpenCV, no learned weights)", "flownet2": "FlowNet2"}


def snippet_errors(flow_path: str | Path, snippet: Snippet) -> tuple[list[float], list[float]]:
    """``(EPE, zero-flow EPE)`` of each frame pair of a snippet, at the frames' size."""
    computed = read_flow(flow_path, snippet.id)        # entry i: frame i -> i + 1
    truth = load_truth(snippet.root, snippet)           # entry t: frame t - 1 -> t; entry 0 unused
    if len(computed) != len(truth["flow"]) - 1:
        raise PipelineError(f"{len(computed)} flow fields for snippet {snippet.id} of "
                            f"{len(truth['flow'])} frames", flow_path)
    size = truth["flow"].shape[1:3]
    errors, zero = [], []
    for t in range(1, len(truth["flow"])):
        true_flow, valid = truth["flow"][t], truth["valid"][t]
        errors.append(end_point_error(resize_flow(computed[t - 1], size), true_flow, valid))
        zero.append(end_point_error(np.zeros_like(true_flow), true_flow, valid))
    return errors, zero


def evaluate_flow(subset_path: str | Path, flow_paths: Sequence[str | Path]) -> dict[str, Any]:
    """Per city and overall: mean EPE and zero-flow EPE over frame pairs, and the pair count."""
    subset = load_subset(subset_path)
    cities: dict[str, dict[str, float]] = {}
    all_errors, all_zero = [], []
    for path in tqdm(sorted(map(Path, flow_paths)), desc="flow quality", unit="city"):
        split, city = path.parent.name, path.stem
        errors, zero = [], []
        for snippet in subset_snippets(subset, split, city):
            snippet_epe, snippet_zero = snippet_errors(path, snippet)
            errors += snippet_epe
            zero += snippet_zero
        cities[f"{split}/{city}"] = {"epe": float(np.nanmean(errors)), "zero_flow_epe": float(np.nanmean(zero)),
                                     "pairs": len(errors)}
        all_errors += errors
        all_zero += zero
    if not cities:
        raise PipelineError("no flow files given", subset_path)
    return {"cities": cities, "epe": float(np.nanmean(all_errors)), "zero_flow_epe": float(np.nanmean(all_zero)),
            "pairs": len(all_errors)}


def _example(subset_path: str | Path, flow_path: Path) -> dict[str, np.ndarray]:
    """The middle frame pair of the file's first snippet: frame, true and computed flow, validity."""
    split, city = flow_path.parent.name, flow_path.stem
    snippet = subset_snippets(load_subset(subset_path), split, city)[0]
    truth = load_truth(snippet.root, snippet)
    t = len(truth["flow"]) // 2
    computed = resize_flow(read_flow(flow_path, snippet.id)[t - 1], truth["flow"].shape[1:3])
    return {"frame": read_frame(snippet.frame_paths[t]), "truth": truth["flow"][t], "computed": computed,
            "valid": truth["valid"][t], "name": np.array(f"{snippet.id}, frame {t - 1} -> {t}")}


def backend_names(backends: Sequence[str]) -> str:
    """The flow backends as the title names them: the reader cannot tell DIS from FlowNet2 by the
    weights line alone (no weights and real FlowNet2 weights read alike)."""
    return ", ".join(BACKEND_NAMES.get(backend, backend) for backend in backends) or "backend unknown"


def draw_flow_quality(result: dict[str, Any], example: dict[str, np.ndarray], backends: Sequence[str], notes: str,
                      output: str | Path, *, record: dict) -> None:
    fig, axes = figure(*SIZE, 2, 4, gridspec_kw={"height_ratios": [1, 1.1]})
    for axis in axes[0][1:]:
        axis.remove()
    bars = fig.add_subplot(2, 1, 1)
    axes[0][0].remove()
    names = list(result["cities"])
    positions = np.arange(len(names))
    bars.bar(positions - 0.2, [result["cities"][n]["epe"] for n in names], 0.4, color=COMPUTED_COLOUR,
             label="computed flow")
    bars.bar(positions + 0.2, [result["cities"][n]["zero_flow_epe"] for n in names], 0.4, color="lightgrey",
             label="zero flow (= mean true motion)")
    bars.set_xticks(positions, names, fontsize=8)
    bars.set_ylabel("end-point error (px)")
    bars.set_title(f"mean EPE {result['epe']:.3f} px against {result['zero_flow_epe']:.3f} px for zero flow "
                   f"({result['pairs']} frame pairs)", fontsize=10)
    bars.legend(fontsize=8)
    bars.grid(axis="y", alpha=0.3)
    radius = float(np.linalg.norm(example["truth"][example["valid"]], axis=-1).max(initial=1e-6))
    error = np.linalg.norm(example["computed"] - example["truth"], axis=-1)
    error[~example["valid"]] = np.nan
    panels = [(example["frame"], "frame t"), (flow_to_colour(example["truth"], radius), "true flow"),
              (flow_to_colour(example["computed"], radius), "computed flow")]
    for axis, (image, name) in zip(axes[1], panels):
        axis.imshow(image)
        axis.set_title(name, fontsize=9)
        axis.axis("off")
    shown = axes[1][3].imshow(error, cmap="magma")
    axes[1][3].set_title("EPE (px); blank: occluded", fontsize=9)
    axes[1][3].axis("off")
    # A bar as tall as the image beside it (fraction= sizes it to the axes' box, twice the image).
    fig.colorbar(shown, cax=axes[1][3].inset_axes([1.02, 0, 0.04, 1]))
    title(fig, f"Reference flow, {backend_names(backends)}, against the synthetic city's true motion "
               f"(below: {example['name']})", notes)
    fig.subplots_adjust(top=0.88, bottom=0.03, left=0.05, right=0.97, hspace=0.3, wspace=0.08)
    save_figure(fig, output, record)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipeline.report.flow_quality",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--subset", required=True, help="results/data/subset.json (its root holds the truth)")
    parser.add_argument("--flow", nargs="+", required=True, help="reference flow files {split}/{city}.h5")
    parser.add_argument("--output", required=True, help="PNG to write")
    parser.add_argument("--record", required=True, help="JSON of the numbers to write")
    args = parser.parse_args(argv)
    result = evaluate_flow(args.subset, args.flow)
    notes = notes_line(weight_notes(load_record(path) for path in args.flow))
    backends = sorted({str(load_record(path).get("backend")) for path in args.flow})
    record = report_record("pipeline.report.flow_quality", args)
    draw_flow_quality(result, _example(args.subset, sorted(map(Path, args.flow))[0]), backends, notes, args.output,
                      record=record)
    write_json(args.record, {**result, "backends": backends, "weights": notes, "provenance": record})


if __name__ == "__main__":
    run_main(main)
