"""Shared command-line plumbing: every stage is ``python -m pipeline.<stage>``.

A stage reads its settings either from ``--settings JSON`` (what the Snakemake rule passes: the
exact params Snakemake tracks for reruns) or from ``--config FILE [FILE ...]`` (a person running
it by hand: config.yaml plus overrides, merged and validated, then the stage's section taken).
A ``PipelineError`` prints one line naming the file and exits 1; progress goes to stderr.

SIGTERM (a cluster walltime kill, a Snakemake cancel) would end Python at once, skipping every
``finally``: ``run_main`` turns it into ``Terminated`` (a ``SystemExit`` with status 143, so
Snakemake still sees a failure), which unwinds the stage so ``pipeline.io`` removes its temporaries.
A stage that installs its own SIGTERM handler (the training loop: save, then exit 143) replaces this
one while it runs; a second SIGTERM while the first is unwinding kills at once, as before.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

from pipeline.errors import PipelineError

__all__ = ["INFERENCE_KEYS", "add_batch_size_argument", "add_city_arguments", "add_frames_root_argument",
           "add_settings_arguments", "read_batch_size", "read_settings", "run_main", "Terminated", "TERMINATED_EXIT",
           "INTERRUPTED_EXIT"]

TERMINATED_EXIT = 143      # 128 + SIGTERM, what a shell reports for a process SIGTERM killed
INTERRUPTED_EXIT = 130     # 128 + SIGINT: a training or fit loop saved on Ctrl-C


class Terminated(SystemExit):
    """Raised in the main thread by SIGTERM under ``run_main``: the stage unwinds, then exits 143."""


def add_city_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of a per-city stage: which subset, split and city it works on, and where the
    dataset is."""
    parser.add_argument("--subset", required=True,
                        help="results/data/subset/{split}.json (the split's part), or results/data/subset.json")
    parser.add_argument("--split", required=True)
    parser.add_argument("--city", required=True)
    add_frames_root_argument(parser)


def add_frames_root_argument(parser: argparse.ArgumentParser) -> None:
    """``--frames-root``: the dataset root, apart from the subset file (its parts record none),
    so that moving the dataset changes no file a stage reads."""
    parser.add_argument("--frames-root", help="Cityscapes root (or the synthetic city); default: the "
                                              "root results/data/subset.json records")


def add_settings_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--settings", help="the stage's settings as JSON (what the rule passes)")
    group.add_argument("--config", nargs="+", metavar="FILE",
                       help="config.yaml and override files, merged in order (by hand)")


# What says how an inference stage runs, not what it writes: kept out of its --settings (a rule's
# resource instead), so Snakemake, which compares params, reruns nothing when it changes.
INFERENCE_KEYS = ("batch_size",)


def add_batch_size_argument(parser: argparse.ArgumentParser, unit: str, key: str) -> None:
    """``--batch-size``: an inference stage's batch, which the rule passes from a resource (how a
    job runs, not what it writes: Snakemake compares params, not resources)."""
    parser.add_argument("--batch-size", type=int,
                        help=f"{unit} a batch ({key}; the rule's resource); default: that of --config or --settings")


def read_batch_size(given: int | None, section: dict, key: str) -> int:
    """``--batch-size``, else the section's own ``batch_size`` (a hand run's ``--config``, or a
    ``--settings`` holding it). No default here (the config schema holds it): with neither, an
    error naming the argument and the config ``key``."""
    batch_size = given if given is not None else section.get("batch_size")
    if batch_size is None:
        raise PipelineError(f"no batch size: give --batch-size (the rule passes {key})")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise PipelineError(f"the batch size ({key}, --batch-size) must be a positive integer, got {batch_size!r}")
    return batch_size


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
    """Call a stage's ``main``; report a ``PipelineError`` on one line and exit 1.

    SIGTERM exits 143 after the stage's cleanups ran (see the module docstring); the handler goes in
    only where SIGTERM still has its default action, and comes out again when ``main`` returns.
    """
    handler = _install_sigterm_exit()
    try:
        main(argv)
    except PipelineError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
    except Terminated:
        print("error: terminated by SIGTERM", file=sys.stderr)
        raise
    finally:
        if handler is not None and signal.getsignal(signal.SIGTERM) is handler:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


class _ExitOnSigterm:
    """The first SIGTERM raises ``Terminated``; a second one, or one in a forked child, kills at once."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.fired = False

    def __call__(self, signum: int, frame: object) -> None:  # noqa: ARG002
        if self.fired or os.getpid() != self.pid:     # a DataLoader worker or pool process inherits it
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        self.fired = True
        raise Terminated(TERMINATED_EXIT)


def _install_sigterm_exit() -> _ExitOnSigterm | None:
    """Install ``_ExitOnSigterm`` unless something else already handles (or ignores) SIGTERM."""
    if threading.current_thread() is not threading.main_thread():
        return None
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return None
    handler = _ExitOnSigterm()
    signal.signal(signal.SIGTERM, handler)
    return handler
