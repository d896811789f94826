"""How feature-encoder variants draw their cluster features, and the automatic choice of the draw.

A draw is one k-means centre per class (``choose_centres``), drawn by a torch generator seeded
with :func:`draw_seed`::

    draw_seed(seed, candidate, slot) = (seed * 1_000_003 + slot + candidate * 2**20) mod 2**32

``seed`` is ``fvd.draw_seed``. The modulus is explicit because torch's CPU generator keeps only the
low 32 bits of a seed (seeds 2**32 apart give the same draw); for one seed no two (candidate,
slot) pairs collide while slot < 2**20 and candidate < 4096 (the schema's bound).

``fvd.feature_draw: run`` (the thesis's way) draws once for all of a variant's videos: slot 0.
The thesis chose one set of feature encodings per network (5.2: 50 random sets, the best picked
by eye), and its code drew the class-to-centre list once for a whole sampling run
(``FeatureExtractionsSampler``). Without ``fvd.draw_choice.auto`` that draw is candidate 0's;
with it, candidate ``c`` (0 <= c < ``candidates``) is synthesised on the held-out videos, the FVD
stage (:mod:`pipeline.fvd.draws`) picks the candidate with the lowest FVD there, and every test
video uses the chosen draw.

``fvd.feature_draw: video`` draws for each video instead (more appearance variety between
videos than the thesis's outputs had): the slot is the test video's index, and with the draw
choice a candidate is a *set* of draws, one per held-out video (slots 0 .. H-1, H =
``heldout_videos``), test video ``i`` using slot ``i mod H`` of the chosen set.
"""

from __future__ import annotations

from collections.abc import Mapping
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
    """The draws of a video set, candidate ``candidate``: slot 0 for every video, or with
    ``per_video`` a slot a video, repeating every ``period`` videos (``None``: never)."""

    seed: int
    candidate: int = 0
    period: int | None = None
    per_video: bool = False

    @classmethod
    def of(cls, settings: Mapping[str, Any], candidate: int = 0, period: int | None = None) -> DrawSeeding:
        """The seeding ``settings`` (config ``fvd``: ``draw_seed``, ``feature_draw``) ask for."""
        return cls(settings["draw_seed"], candidate, period, per_video=settings["feature_draw"] == "video")

    def seed_of(self, index: int) -> int:
        return draw_seed(self.seed, self.candidate, self._slot(index))

    def _slot(self, index: int) -> int:
        if not self.per_video:
            return 0
        return index % self.period if self.period else index

    def describe(self) -> dict[str, Any]:
        slot = ("0: one draw for every video" if not self.per_video
                else f"video index mod {self.period}" if self.period else "video index")
        return {"formula": SEEDING, "seed": self.seed, "candidate": self.candidate, "slot": slot}


def read_draw_choice(path: str | Path, seed: int) -> dict[str, Any]:
    """The chosen draw of ``results/fvd/draws/{variant}.json``, checked against ``fvd.draw_seed``
    (the synthesis checks the variant), with the file's path under ``file``."""
    choice = read_json(path)
    missing = [key for key in ("variant", "chosen", "heldout_videos", "draw_seed") if key not in choice]
    if missing:
        raise PipelineError(f"not a draw choice (missing {missing}; written by pipeline.fvd.draws)", path)
    if choice["draw_seed"] != seed:
        raise PipelineError(f"the draw was chosen with fvd.draw_seed {choice['draw_seed']}, the settings say {seed}",
                            path)
    return dict(choice, file=str(path))
