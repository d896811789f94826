"""Train one variant: ``python -m pipeline.train --variant v01 --data results/data/train.h5 ...``

Resumes from ``--resume`` if a resume file of the same variant, settings and code is there;
a SIGTERM (walltime) saves and exits 143 so that a retry continues.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from pipeline.cli import add_settings_arguments, read_settings, run_main
from pipeline.train.loop import train_variant
from pipeline.train.settings import train_settings

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipeline.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", required=True)
    parser.add_argument("--data", required=True, help="the packed train split (results/data/train.h5)")
    parser.add_argument("--output", required=True, help="folder for model.pt, losses.csv, summary.json")
    parser.add_argument("--resume", required=True, help="resume folder (not a declared output)")
    parser.add_argument("--device", default="auto", help="auto (cuda if present), cpu or cuda")
    add_settings_arguments(parser)
    args = parser.parse_args(argv)
    settings = read_settings(args, lambda config: train_settings(config, args.variant))
    train_variant(args.variant, settings, args.data, args.output, args.resume, args.device)


if __name__ == "__main__":
    run_main(main)
