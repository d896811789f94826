"""choose_draw: the feature draw set with the lowest FVD on held-out sequences (NumPy only).

With ``fvd.draw_choice.auto``, a feature-encoder variant synthesises the held-out val snippets
(not test ones; ``pipeline.data.subset``) once under each candidate draw set
(``pipeline.synthesize.draws``), and the embed stage embeds them and the real held-out videos
with the same I3D and crops as the test videos. Here each candidate's FVD is the Fréchet
distance of its H videos against the H real ones, per crop, then the mean over crops (the
thesis's crop average; one batch of H videos). Every candidate is scored at the same H, so the
comparison is fair although an FVD of so few videos is strongly biased upward. The lowest wins
(the first on a tie), and ``results/fvd/draws/{variant}.json`` records every candidate's FVD,
the choice and the provenance; the synthesize rule then draws the test videos from it.

    python -m pipeline.fvd.draws --real results/fvd/embeddings/heldout/real.npz \\
        --candidates results/fvd/embeddings/heldout/v04.npz --variant v04 \\
        --output results/fvd/draws/v04.json --settings JSON
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.cli import add_settings_arguments, read_settings, run_main
from pipeline.errors import PipelineError
from pipeline.fvd import DRAW_KEYS as SETTINGS_KEYS
from pipeline.fvd.crops import CROP_NAMES, check_crop_names
from pipeline.fvd.embeddings import read_embeddings
from pipeline.fvd.frechet import frechet_distance_features
from pipeline.fvd.score import check_compatible
from pipeline.io import write_json
from pipeline.provenance import code_version, provenance

__all__ = ["SETTINGS_KEYS", "candidate_fvds", "choose_draw", "main"]


def candidate_fvds(real: dict[str, np.ndarray], candidates: dict[str, np.ndarray], crops: list[str],
                   count: int) -> np.ndarray:
    """``[candidates, crops]``: FVD of each candidate's ``count`` videos (candidate-major rows of
    ``candidates``) against the ``count`` real ones, per crop."""
    number = len(candidates[crops[0]]) // count
    return np.array([[frechet_distance_features(real[crop], candidates[crop][c * count:(c + 1) * count])
                      for crop in crops] for c in range(number)])


def _check_count(embeddings: dict[str, np.ndarray], crops: list[str], wanted: int, path: str | Path) -> None:
    found = sorted({len(embeddings[crop]) for crop in crops if crop in embeddings})
    if found and found != [wanted]:
        raise PipelineError(f"embeddings of {found} videos a crop; fvd.draw_choice asks for {wanted} "
                            "(candidates x heldout_videos for the candidates)", path)


def choose_draw(real_path: str | Path, candidates_path: str | Path, settings: dict[str, Any],
                variant: str) -> dict[str, Any]:
    """The draw choice record of one variant (module docstring)."""
    try:
        crops = check_crop_names(settings.get("crops", list(CROP_NAMES)))
    except ValueError as err:
        raise PipelineError(f"fvd.crops: {err}") from err
    choice = settings["draw_choice"]
    count, number = choice["heldout_videos"], choice["candidates"]
    real, real_record = read_embeddings(real_path)
    candidates, candidates_record = read_embeddings(candidates_path)
    _check_count(real, crops, count, real_path)
    _check_count(candidates, crops, count * number, candidates_path)
    for c in range(number):
        block = {crop: candidates[crop][c * count:(c + 1) * count] for crop in crops}
        check_compatible(real, real_record, block, candidates_record, crops, candidates_path)
    per_crop = candidate_fvds(real, candidates, crops, count)
    fvds = per_crop.mean(axis=1)
    chosen = int(np.argmin(fvds))
    videos = candidates_record.get("videos", {}).get("provenance", {})
    return {
        "variant": variant,
        "chosen": chosen,
        "fvd": float(fvds[chosen]),
        "draw_seed": int(settings["draw_seed"]),
        "heldout_videos": count,
        "seeding": videos.get("draw_seeding"),
        "heldout_snippets": videos.get("snippets"),
        "candidates": [{"candidate": c, "fvd": float(fvds[c]), "crops": dict(zip(crops, map(float, per_crop[c])))}
                       for c in range(number)],
        "i3d": candidates_record.get("i3d"),
        "provenance": provenance("fvd.draws", {key: settings.get(key) for key in SETTINGS_KEYS},
                                 code_version("pipeline.fvd.draws"), int(settings["draw_seed"]), real=str(real_path),
                                 candidates=str(candidates_path), candidate_videos=videos),
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipeline.fvd.draws", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--real", required=True, help="embeddings .npz of the real held-out videos")
    parser.add_argument("--candidates", required=True, help="embeddings .npz of one variant's candidate videos")
    parser.add_argument("--variant", required=True, help="the variant (checked by the synthesize stage)")
    parser.add_argument("--output", required=True, help="draw choice JSON to write")
    add_settings_arguments(parser)
    args = parser.parse_args(argv)
    settings = read_settings(args, lambda config: config["fvd"])
    write_json(args.output, choose_draw(args.real, args.candidates, settings, args.variant))


if __name__ == "__main__":
    run_main(main)
