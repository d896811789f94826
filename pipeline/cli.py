"""Shared command-line plumbing: every stage is ``python -m pipeline.<stage>``.

A stage reads its settings either from ``--settings JSON`` (what the Snakemake rule passes: the
exact params Snakemake tracks for reruns) or from ``--config FILE [FILE ...]`` (a person running
it by hand: config.yaml plus overrides, merged and validated, then the stage's section taken).
A ``PipelineError`` prints one line naming the file and exits 1; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from pipeline.errors import PipelineError

__all__ = ["add_city_arguments", "add_settings_arguments", "read_settings", "run_main"]


def add_city_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of a per-city stage: which subset, split and city it works on."""
    parser.add_argument("--subset", required=True, help="results/data/subset.json")
    parser.add_argument("--split", required=True)
    parser.add_argument("--city", required=True)


def add_settings_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--settings", help="the stage's settings as JSON (what the rule passes)")
    group.add_argument("--config", nargs="+", metavar="FILE",
                       help="config.yaml and override files, merged in order (by hand)")


def read_settings(args: argparse.Namespace, pick: Callable[[dict], Any]) -> Any:
    """The stage's settings: parsed ``--settings``, or ``pick(config)`` of the merged ``--config``."""
    if args.settings is not None:
        try:
            return json.loads(args.settings)
        except json.JSONDecodeError as err:
            raise PipelineError(f"--settings is not valid JSON: {err}") from err
    from pipeline.config import DEFAULT_CONFIG, load_config

    return pick(load_config(args.config or [DEFAULT_CONFIG]))


def run_main(main: Callable[[Sequence[str] | None], None], argv: Sequence[str] | None = None) -> None:
    """Call a stage's ``main``; report a ``PipelineError`` on one line and exit 1."""
    try:
        main(argv)
    except PipelineError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
