"""THE edge map from instance maps: the one function the datasets and the models call.

Two definitions (thesis-code.md §2, networks.md §1):

- ``"thesis"`` (default): a 3x3 Laplacian cross (4c - up - down - left - right) on the instance
  map; a nonzero response is an edge (1), and the one-pixel border is set to 0.
- ``"pix2pixhd"``: a pixel is an edge if its id differs from its right or lower neighbour, and
  both pixels of such a pair are marked (2-pixel-wide boundaries, border included).

The instance map uses the Cityscapes instanceIds encoding (label id for stuff, label id x 1000 +
k for things), so class boundaries between stuff classes are edges too. ``classes`` adds the
edges of a class map (the thesis added the class-argmax edges for generated label maps).
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["EDGE_METHODS", "edge_map"]

EDGE_METHODS: tuple[str, ...] = ("thesis", "pix2pixhd")


def _as_batch(ids: torch.Tensor | np.ndarray) -> torch.Tensor:
    """An integer tensor [B, H, W] from [H, W], [B, H, W] or [B, 1, H, W], in the dtype the
    Laplacian is computed in (:func:`_arithmetic_dtype`)."""
    ids = torch.as_tensor(np.asarray(ids) if isinstance(ids, np.ndarray) else ids)
    if ids.is_floating_point() or ids.is_complex():
        raise ValueError(f"edge_map needs integer ids, got {ids.dtype}")
    ids = ids.to(_arithmetic_dtype(ids))
    if ids.dim() == 2:
        return ids[None]
    if ids.dim() == 4 and ids.shape[1] == 1:
        return ids[:, 0]
    if ids.dim() == 3:
        return ids
    raise ValueError(f"edge_map takes [H, W], [B, H, W] or [B, 1, H, W], got {tuple(ids.shape)}")


def _arithmetic_dtype(ids: torch.Tensor) -> torch.dtype:
    """int32 where the Laplacian cannot overflow it (every |id| below 2**28), else int64.

    int32 halves the memory traffic, which is what the edge map costs on a CPU (Cityscapes ids
    are below 2**16). Ids of at most 16 bits always fit; int32 ids are checked on the CPU (one
    pass, a small part of the saving) and widen on a GPU, where the check would cost a sync."""
    if ids.dtype in (torch.bool, torch.uint8, torch.int8, torch.int16, torch.uint16):
        return torch.int32
    if ids.dtype == torch.int32 and ids.device.type == "cpu" and ids.numel() > 0:
        low, high = torch.aminmax(ids)
        if max(-int(low), int(high)) < 2**28:
            return torch.int32
    return torch.int64


def _laplacian_edges(ids: torch.Tensor) -> torch.Tensor:
    """Nonzero 4-neighbour Laplacian on the interior; the border stays 0 (thesis)."""
    edges = torch.zeros_like(ids, dtype=torch.bool)
    # In place: one temporary instead of five, the same integers.
    response = ids[:, 1:-1, 1:-1] * 4
    response -= ids[:, :-2, 1:-1]
    response -= ids[:, 2:, 1:-1]
    response -= ids[:, 1:-1, :-2]
    response -= ids[:, 1:-1, 2:]
    edges[:, 1:-1, 1:-1] = response != 0
    return edges


def _neighbour_edges(ids: torch.Tensor) -> torch.Tensor:
    """Both pixels of every right or lower neighbour pair with different ids (pix2pixHD)."""
    edges = torch.zeros_like(ids, dtype=torch.bool)
    horizontal = ids[:, :, 1:] != ids[:, :, :-1]
    vertical = ids[:, 1:, :] != ids[:, :-1, :]
    edges[:, :, 1:] |= horizontal
    edges[:, :, :-1] |= horizontal
    edges[:, 1:, :] |= vertical
    edges[:, :-1, :] |= vertical
    return edges


def edge_map(instances: torch.Tensor | np.ndarray, classes: torch.Tensor | np.ndarray | None = None,
             method: str = "thesis") -> torch.Tensor:
    """A float32 0/1 edge map [B, 1, H, W] (or [1, H, W] for a single [H, W] map).

    ``instances``: integer ids, [H, W], [B, H, W] or [B, 1, H, W]. ``classes``: an optional
    integer class map of the same shape whose boundaries are added.
    """
    if method not in EDGE_METHODS:
        raise ValueError(f"unknown edge method {method!r}; allowed: {', '.join(EDGE_METHODS)}")
    find = _laplacian_edges if method == "thesis" else _neighbour_edges
    single = (instances.dim() if torch.is_tensor(instances) else np.ndim(instances)) == 2
    batch = _as_batch(instances)
    edges = find(batch)
    if classes is not None:
        class_batch = _as_batch(classes)
        if class_batch.shape != batch.shape:
            raise ValueError(f"classes {tuple(class_batch.shape)} and instances {tuple(batch.shape)} differ")
        edges |= find(class_batch)
    edges = edges.float()[:, None]
    return edges[0] if single else edges
