"""Where a torch stage runs: one home for ``auto``'s choice, shared by the labellers, training and
synthesis (the TensorFlow stages never import it, so their environment needs no torch)."""

from __future__ import annotations

import torch

__all__ = ["pick_device"]


def pick_device(name: str | torch.device = "auto") -> torch.device:
    """For ``auto``, the first GPU where there is one, else the CPU; otherwise the device named
    (``--device``)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
