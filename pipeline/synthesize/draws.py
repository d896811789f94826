"""How feature-encoder variants draw their cluster features, and the automatic choice of the draw.

Each video gets one k-means centre per class (``choose_centres``), drawn by a torch generator
seeded with :func:`draw_seed`::

    draw_seed(seed, candidate, slot) = (seed * 1_000_003 + slot + candidate * 2**20) mod 2**32

``seed`` is ``fvd.seed``. The modulus is explicit because torch's CPU generator keeps only the
low 32 bits of a seed (seeds 2**32 apart give the same draw); for one seed no two (candidate,
slot) pairs collide while slot < 2**20 and candidate < 4096 (the schema's bound).

Without ``fvd.draw_choice.auto`` the slot is the test video's index and the candidate 0: the
draw the pipeline has always made. With it, candidate ``c`` (0 <= c <
``candidates``) is a *set* of draws, one per held-out video (slots 0 .. H-1, H =
``heldout_videos``); the FVD stage (:mod:`pipeline.fvd.draws`) picks the set with the lowest
FVD on the held-out videos, and test video ``i`` then uses slot ``i mod H`` of the chosen set,
so every test video's features come from a draw that was scored. (The thesis looked at 50 sets
and picked one by eye; thesis-code.md section 8.)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import PipelineError
from pipeline.io import read_json

__all__ = ["SEEDING", "draw_seed", "DrawSeeding", "read_draw_choice"]

SEEDING = "(seed * 1_000_003 + slot + candidate * 2**20) mod 2**32"
SEED_STRIDE = 1_000_003
CANDIDATE_STRIDE = 2**20
SEED_MODULUS = 2**32        # torch.Generator.manual_seed uses the low 32 bits only


def draw_seed(seed: int, candidate: int, slot: int) -> int:
    """The generator seed of one video's draw (the module docstring's formula)."""
    return (seed * SEED_STRIDE + slot + candidate * CANDIDATE_STRIDE) % SEED_MODULUS


@dataclass(frozen=True)
class DrawSeeding:
    """The draws of a video set: candidate ``candidate``, slots repeating every ``period`` videos
    (``None``: one slot per video, as without the draw choice)."""

    seed: int
    candidate: int = 0
    period: int | None = None

    def seed_of(self, index: int) -> int:
        slot = index % self.period if self.period else index
        return draw_seed(self.seed, self.candidate, slot)

    def describe(self) -> dict[str, Any]:
        return {"formula": SEEDING, "seed": self.seed, "candidate": self.candidate,
                "slot": f"video index mod {self.period}" if self.period else "video index"}


def read_draw_choice(path: str | Path, seed: int) -> dict[str, Any]:
    """The chosen draw of ``results/fvd/draws/{variant}.json``, checked against ``fvd.seed``
    (the synthesis checks the variant), with the file's path under ``file``."""
    choice = read_json(path)
    missing = [key for key in ("variant", "chosen", "heldout_videos", "seed") if key not in choice]
    if missing:
        raise PipelineError(f"not a draw choice (missing {missing}; written by pipeline.fvd.draws)", path)
    if choice["seed"] != seed:
        raise PipelineError(f"the draw was chosen with fvd.seed {choice['seed']}, the settings say {seed}", path)
    return dict(choice, file=str(path))
