"""Train one variant: ``python -m pipeline.train --variant v01 --data results/data/train.h5 ...``

Settings that lack a key ``train_settings`` gives are refused before anything starts, naming
the key (``check_train_settings``). Resumes from ``--resume`` if a resume file of the same
variant, settings and code is there; a SIGTERM (walltime) saves and exits 143 so that a retry
continues. ``--runtime`` (the rule's resource ``train_runtime``) says how to run: the checkpoint
interval and torch.compile, which are not part of the settings; with ``--config`` they come from
the config too.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

from pipeline.cli import add_settings_arguments, read_settings, run_main
from pipeline.config import check_section_values
from pipeline.errors import PipelineError
from pipeline.train.loop import train_variant
from pipeline.train.settings import (RUNTIME_KEYS, check_train_settings, split_runtime, train_runtime,
                                     train_settings)

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipeline.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", required=True)
    parser.add_argument("--data", required=True, help="the packed train split (results/data/train.h5)")
    parser.add_argument("--output", required=True, help="folder for model.pt, losses.csv, summary.json, tensorboard/")
    parser.add_argument("--resume", required=True, help="resume folder (not a declared output)")
    parser.add_argument("--device", default="auto", help="auto (cuda if present), cpu or cuda")
    parser.add_argument("--runtime", help=f"JSON of {', '.join(RUNTIME_KEYS)} (how to run; not fingerprinted)")
    add_settings_arguments(parser)
    args = parser.parse_args(argv)
    from_config: dict = {}

    def pick(config: dict) -> dict:
        from_config.update(train_runtime(config))
        return train_settings(config, args.variant)

    settings = read_settings(args, pick)
    if args.settings is not None:        # hand-written or the rule's; --config's came from train_settings
        check_train_settings(settings, args.variant)
    # Runtime keys a hand-written or older --settings still holds meet the schema as --runtime's do.
    settings, in_settings = split_runtime(settings)
    runtime = {**check_section_values(in_settings, "train", "--settings"),
               **(_runtime(args.runtime) if args.runtime is not None else from_config)}
    train_variant(args.variant, settings, args.data, args.output, args.resume, args.device, runtime=runtime)


def _runtime(text: str) -> dict:
    try:
        runtime = json.loads(text)
    except json.JSONDecodeError as err:
        raise PipelineError(f"--runtime is not valid JSON: {err}") from err
    unknown = sorted(set(runtime) - set(RUNTIME_KEYS)) if isinstance(runtime, dict) else ["(not an object)"]
    if unknown:
        raise PipelineError(f"--runtime: unknown keys {', '.join(unknown)} (known: {', '.join(RUNTIME_KEYS)})")
    return check_section_values(runtime, "train", "--runtime")      # the values, as config.yaml's are


if __name__ == "__main__":
    run_main(main)
