"""TensorBoard event files of a training run: every loss term and the learning rate per window,
the rows of ``losses.csv`` under the tags ``loss/<term>`` and ``lr``.

The loop writes them live into the resume folder (``tensorboard --logdir results/resume``
follows running jobs), and ``model.pt``'s run copies them to ``results/train/{variant}/tensorboard``.
A resumed job opens its writer with ``purge_step`` one past its last saved window, so TensorBoard
drops what a killed job logged after its last checkpoint, as ``losses.csv`` is truncated.
"""

from __future__ import annotations

import shutil
import sys
import types
from pathlib import Path

# tensorboard.compat takes TensorFlow's file API wherever TensorFlow imports, as it does in this
# environment (the FVD stages'): that costs a torch process ~5 s, and TensorFlow imported beside
# triton crashes. The `notf` module that TensorBoard's TensorFlow-free build ships selects its
# own stub instead; it has to be there before the (lazy) compat module first resolves.
sys.modules.setdefault("tensorboard.compat.notf", types.ModuleType("tensorboard.compat.notf"))

from torch.utils.tensorboard import SummaryWriter  # noqa: E402

from pipeline.io import atomic_dir  # noqa: E402

__all__ = ["EVENTS_DIR", "ScalarLog", "copy_events"]

EVENTS_DIR = "tensorboard"


class ScalarLog:
    """A run's scalars in ``folder``: ``kept_steps`` windows were saved, later ones are purged;
    0 starts afresh (a finished run of other settings may have left its events)."""

    def __init__(self, folder: Path, kept_steps: int):
        if kept_steps == 0:
            shutil.rmtree(folder, ignore_errors=True)
        self.writer = SummaryWriter(str(folder), purge_step=kept_steps + 1 if kept_steps else None)

    def write(self, step: int, lr: float, terms: dict[str, float]) -> None:
        self.writer.add_scalar("lr", lr, step)
        for name, value in terms.items():
            self.writer.add_scalar(f"loss/{name}", value, step)

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def copy_events(source: Path, target: Path) -> None:
    """``source``'s event files into ``target``, replaced whole (``atomic_dir``)."""
    with atomic_dir(target) as partial:
        shutil.copytree(source, partial, dirs_exist_ok=True)
