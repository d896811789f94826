"""pack: ``python -m pipeline.pack`` writes a split's packed file, or checks one with ``--verify``.

Usage::

    python -m pipeline.pack --subset results/data/subset/train.json --split train --frames-root ROOT \\
        --semantic DIR [DIR ...] --instance DIR [DIR ...] --flow FILE [FILE ...] \\
        --output results/data/train.h5 --settings JSON [--threads N]
    python -m pipeline.pack --subset results/data/subset/gtfine_train.json --split gtfine_train \\
        --frames-root ROOT --output results/data/gtfine_train.h5 --settings JSON   # the image variants' gtFine frames
    python -m pipeline.pack --verify FILE [--structure-only]

``--settings`` is ``{"pack": config["pack"], "label_set": config["labels"]["label_set"]}``; by
hand, ``--config config.yaml [overrides]`` picks the same. Label directories are named after
their city (``results/labels/semantic/{split}/{city}``), flow files ``{city}.h5``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from pipeline.cli import add_frames_root_argument, add_settings_arguments, read_settings, run_main
from pipeline.errors import PipelineError

__all__ = ["main", "pick_settings"]


def pick_settings(config: dict) -> dict:
    """The pack stage's settings from a full config (what the rule passes as --settings)."""
    return {"pack": config["pack"], "label_set": config["labels"]["label_set"]}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline.pack", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--verify", metavar="FILE", help="check a packed file and exit")
    parser.add_argument("--structure-only", action="store_true",
                        help="with --verify: check attributes, datasets and shapes, not values")
    parser.add_argument("--subset", help="results/data/subset/{split}.json (the split's part), or subset.json")
    parser.add_argument("--split", help="train, val, test, heldout, or gtfine_train (every annotated train "
                                        "frame with its gtFine labels: no label or flow inputs)")
    add_frames_root_argument(parser)
    parser.add_argument("--semantic", nargs="+", default=[], help="semantic label directories, one a city")
    parser.add_argument("--instance", nargs="+", default=[], help="instance label directories, one a city")
    parser.add_argument("--flow", nargs="+", default=[], help="flow files, one a city")
    parser.add_argument("--output", help="results/data/{split}.h5")
    parser.add_argument("--threads", type=int, default=2, help="frames decoded in parallel")
    add_settings_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.verify:
        from pipeline.pack.verify import verify

        summary = verify(args.verify, values=not args.structure_only)
        print(f"ok: {summary['path']}: split {summary['split']}, {summary['snippets']} snippets x "
              f"{summary['frames']} frames at {', '.join(f'{h}x{w}' for h, w in summary['resolutions'])}")
        return
    missing = [flag for flag, value in (("--subset", args.subset), ("--split", args.split),
                                        ("--output", args.output)) if not value]
    if missing:
        raise PipelineError(f"packing needs {', '.join(missing)} (or --verify FILE)")
    from pipeline.data.subset import load_subset
    from pipeline.pack.writer import GTFINE_SPLIT, PackInputs, pack

    settings = read_settings(args, pick_settings)
    frames_root = load_subset(args.subset, args.frames_root)["root"]
    if args.split == GTFINE_SPLIT:
        if args.semantic or args.instance or args.flow:
            raise PipelineError(f"--split {GTFINE_SPLIT} packs the gtFine labels: no --semantic, --instance or --flow")
        inputs = PackInputs.from_gtfine(frames_root)
    else:
        inputs = PackInputs.from_paths(frames_root, args.semantic, args.instance, args.flow)
    pack(args.subset, args.split, inputs, args.output, settings, threads=args.threads)


if __name__ == "__main__":
    run_main(main)
