"""``python -m pipeline.synthesize``: a variant's test videos, or with ``--real`` the real ones.

    python -m pipeline.synthesize --model results/train/v01/model.pt --data results/data/val.h5 \\
        --output results/videos/v01.h5 --warping results/fvd/warping/v01.json --settings JSON
    python -m pipeline.synthesize --real --data results/data/val.h5 --output results/videos/real.h5 --settings JSON

``--settings`` is config.yaml's ``fvd`` section (sizes, frames, start frame, warm-up, counts, seed).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import numpy as np
import torch

from pipeline.cli import add_settings_arguments, read_settings, run_main
from pipeline.errors import PipelineError
from pipeline.fvd.videos import write_videos
from pipeline.io import write_json
from pipeline.provenance import code_version, provenance
from pipeline.synthesize.video import real_videos, synthesize_videos


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipeline.synthesize", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--real", action="store_true", help="extract the real test videos instead")
    parser.add_argument("--model", help="a trained variant's model.pt")
    parser.add_argument("--clusters", help="its feature cluster bank (feature-encoder variants)")
    parser.add_argument("--data", required=True, help="the packed test split")
    parser.add_argument("--output", required=True, help="videos HDF5 to write")
    parser.add_argument("--warping", help="warping-error JSON to write (variants)")
    parser.add_argument("--device", default="auto")
    add_settings_arguments(parser)
    args = parser.parse_args(argv)
    settings = read_settings(args, lambda config: config["fvd"])
    code = code_version("synthesize", "train", "models", "pack")
    if args.real:
        videos, record = real_videos(args.data, settings)
        write_videos(args.output, videos, provenance("real_videos", settings, code, data=args.data, **record))
        return
    if not args.model or not args.warping:
        raise PipelineError("synthesizing a variant needs --model and --warping (or --real)")
    device = "cuda" if args.device == "auto" and torch.cuda.is_available() else (
        "cpu" if args.device == "auto" else args.device)
    videos, result = synthesize_videos(args.model, args.data, settings, args.clusters, device)
    record = provenance("synthesize", settings, code, settings["seed"], data=args.data, **result["record"])
    errors = np.asarray(result["warping_errors"], dtype=np.float64)
    write_json(args.warping, {"variant": result["record"]["variant"], "warping_error": float(np.nanmean(errors)),
                              "warping_error_std": float(np.nanstd(errors)), "per_video": errors.tolist()})
    write_videos(args.output, videos, record)


if __name__ == "__main__":
    run_main(main)
