"""``python -m pipeline.synthesize``: a variant's test videos, or with ``--real`` the real ones.

    python -m pipeline.synthesize --model results/train/v01/model.pt --data results/data/val.h5 \\
        --output results/videos/v01.h5 --warping results/fvd/warping/v01.json --settings JSON
    python -m pipeline.synthesize --real --data results/data/val.h5 --output results/videos/real.h5 --settings JSON

With ``fvd.draw_choice.auto`` (feature-encoder variants): ``--heldout`` on the held-out pack writes
the held-out videos under every candidate draw (or with ``--real`` the real held-out videos), and
the test videos take ``--draws results/fvd/draws/v04.json``, the choice of pipeline.fvd.draws:

    python -m pipeline.synthesize --heldout --model results/train/v04/model.pt \
        --clusters results/train/v04/clusters.pt --data results/data/heldout.h5 \
        --output results/videos/heldout/v04.h5 --settings JSON

``--settings`` is config.yaml's ``fvd`` section (sizes, frames, start frame, warm-up, counts, seed;
``draw_choice`` for ``--heldout``).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from pipeline.cli import add_settings_arguments, read_settings, run_main
from pipeline.device import pick_device
from pipeline.errors import PipelineError
from pipeline.fvd.videos import write_video_stream, write_videos
from pipeline.io import atomic_path, write_json
from pipeline.pack.schema import TRAINING_SPLITS
from pipeline.pack.verify import packed_header
from pipeline.provenance import code_version, provenance
from pipeline.synthesize.draws import read_draw_choice
from pipeline.synthesize.video import candidate_videos, real_videos, synthesize_videos
from pipeline.synthesize.warping import warping_summary


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipeline.synthesize", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--real", action="store_true", help="extract the real test videos instead")
    parser.add_argument("--model", help="a trained variant's model.pt")
    parser.add_argument("--clusters", help="its feature cluster bank (feature-encoder variants)")
    parser.add_argument("--data", required=True, help="the packed test split")
    parser.add_argument("--output", required=True, help="videos HDF5 to write")
    parser.add_argument("--warping", help="warping-error JSON to write (variants): the variant's error, the real "
                        "videos' own under the same mask, the share of pixels kept, provenance")
    parser.add_argument("--heldout", action="store_true",
                        help="the held-out videos of fvd.draw_choice: every candidate draw (or --real)")
    parser.add_argument("--draws", help="the chosen draw (results/fvd/draws/{variant}.json; fvd.draw_choice.auto)")
    parser.add_argument("--device", default="auto")
    add_settings_arguments(parser)
    args = parser.parse_args(argv)
    settings = read_settings(args, lambda config: config["fvd"])
    check_held_out(args.data)
    code = code_version("pipeline.synthesize")
    if args.real:
        videos, record = real_videos(args.data, settings, heldout=args.heldout)
        stage = "real_heldout_videos" if args.heldout else "real_videos"
        write_videos(args.output, videos, provenance(stage, settings, code, data=args.data, **record))
        return
    device = pick_device(args.device)
    if args.heldout:
        if not args.model or not args.clusters:
            raise PipelineError("the draw candidates need --model and --clusters (or --real)")
        count, videos, record = candidate_videos(args.model, args.data, settings, args.clusters, device)
        write_video_stream(args.output, videos, count, lambda: provenance(
            "draw_candidates", settings, code, settings["draw_seed"], data=args.data, **record))
        return
    if not args.model or not args.warping:
        raise PipelineError("synthesizing a variant needs --model and --warping (or --real)")
    draw_choice = read_draw_choice(args.draws, settings["draw_seed"]) if args.draws else None
    videos, result = synthesize_videos(args.model, args.data, settings, args.clusters, device, draw_choice)
    record = provenance("synthesize", settings, code, settings.get("draw_seed"), data=args.data, **result["record"])
    # The videos' own record: the warping figures were made with them, from the same model and frames.
    summary = warping_summary(result["record"]["variant"], result["warping"], record)
    # Both are written whole (and fsynced) to temporaries before either is renamed in, so a failed
    # write (an unwritable path, a full disk) leaves neither new one, nor a new JSON beside old videos.
    with atomic_path(args.warping, suffix=".json") as warping_tmp, atomic_path(args.output, suffix=".h5") as videos_tmp:
        write_videos(videos_tmp, videos, record)
        write_json(warping_tmp, summary)


def check_held_out(data_path: str) -> None:
    """FVD and the warping error score videos of data no variant trained on: a training pack is
    refused (training refuses the held-out ones)."""
    _, split = packed_header(data_path)
    if split in TRAINING_SPLITS:
        raise PipelineError(f"holds the {split!r} split, training data: synthesis takes the test split "
                            "(results/data/{subset.test_split}.h5) or, with --heldout, heldout.h5", data_path)


if __name__ == "__main__":
    run_main(main)
