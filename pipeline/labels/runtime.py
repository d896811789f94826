"""What the labellers and their fits share: the device, seeding, batching, the lr schedule."""

from __future__ import annotations

import functools
import math
import random
from collections.abc import Iterable, Iterator
from typing import TypeVar

import numpy as np
import torch

__all__ = ["seed_everything", "autocast", "batched", "warmup_poly_lr", "fit_steps", "EpochBatches"]

T = TypeVar("T")


def seed_everything(seed: int) -> np.random.Generator:
    """Seed python, numpy and torch; return the numpy generator the fit draws its crops from."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


def autocast(device: torch.device | str, enabled: bool) -> torch.autocast:
    """bfloat16 autocast where the device does it natively (CUDA, CPUs with AVX512-BF16/AMX);
    about twice as fast a fit step on such a CPU. Elsewhere it is off (emulated bf16 is slower)."""
    device = torch.device(device)
    if device.type == "cpu":
        enabled = enabled and _cpu_has_bf16()
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


@functools.cache
def _cpu_has_bf16() -> bool:
    """Asked once: the query takes ~30 ms, a tenth of a demo fit step when asked every step."""
    return torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of ``size`` items (the last may be shorter)."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def fit_steps(epochs: float, samples: int, batch_size: int) -> int:
    """Optimiser steps of a fit: ``epochs`` passes (fractions allowed) over ``samples``."""
    return max(1, math.ceil(epochs * samples / batch_size))


def warmup_poly_lr(step: int, total: int, base: float, warmup: int, power: float = 0.9) -> float:
    """Linear warm-up, then DeepLab's "poly" decay ``(1 - t)^0.9`` (Chen et al. 2018)."""
    if step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return base * (1.0 - min(progress, 1.0)) ** power


class EpochBatches:
    """Endless batches of sample indices: each epoch a fresh permutation drawn from ``rng``,
    batches may span two epochs so every step is full.

    A permutation is drawn only when a batch needs an index and the current one is used up, so
    what it holds between steps is ``pending`` (the drawn epoch's indices not yet batched) and
    ``rng``'s state; a resume restores both and the batches go on exactly (``labels.resume``).
    """

    def __init__(self, samples: int, batch_size: int, rng: np.random.Generator):
        self.samples, self.batch_size, self.rng = samples, batch_size, rng
        self.pending: list[int] = []

    def __iter__(self) -> EpochBatches:
        return self

    def __next__(self) -> list[int]:
        batch: list[int] = []
        while len(batch) < self.batch_size:
            if not self.pending:
                self.pending = self.rng.permutation(self.samples).tolist()
            take = self.batch_size - len(batch)
            batch += self.pending[:take]
            del self.pending[:take]
        return batch
