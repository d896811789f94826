"""The one warp: backward warping of an image by a flow in pixels (vid2vid's convention).

Convention, used by the flow stage, the training losses and the flow variants' synthesis: for
frame t > 0 of a sequence, ``flow[t]`` is the flow that warps frame t-1 onto frame t, i.e.
``frame_t(x, y) ~= frame_{t-1}(x + u(x, y), y + v(x, y))`` with ``(u, v) = flow[t](x, y)`` in
pixels, channel 0 horizontal. Frame 0 has none.

``align_corners=True``: the centres of the corner pixels sit at -1 and +1 of grid_sample's normalised range, so a
flow of ``u`` pixels moves by ``2u / (W - 1)`` there, as vid2vid's base grid (linspace(-1, 1))
assumes and the thesis did. Sampling is
bilinear; samples outside the image are zero (``padding_mode='zeros'``, the thesis's choice;
vid2vid's resample pads with the border; quality measures pass ``'border'``). With align_corners=True an integer flow
moves pixels exactly and a fractional one interpolates linearly between the two neighbours
(tests/test_flow.py checks both on shifted images).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["warp", "flow_to_grid"]


def flow_to_grid(flow: torch.Tensor) -> torch.Tensor:
    """A float32 sampling grid for ``grid_sample`` from a flow ``[B, 2, H, W]`` in pixels.

    float32 whatever the flow's dtype: bf16 holds integers only up to 256 exactly (past 512 they
    step by 4), so a bf16 grid would sample pixel 1020 for 1021.
    """
    flow = flow.float()
    batch, _, height, width = flow.shape
    ys = torch.arange(height, device=flow.device, dtype=flow.dtype)
    xs = torch.arange(width, device=flow.device, dtype=flow.dtype)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    sample_x = grid_x + flow[:, 0]
    sample_y = grid_y + flow[:, 1]
    # align_corners=True: pixel 0 -> -1, pixel W-1 -> +1.
    norm_x = 2.0 * sample_x / max(width - 1, 1) - 1.0
    norm_y = 2.0 * sample_y / max(height - 1, 1) - 1.0
    return torch.stack((norm_x, norm_y), dim=-1)


def warp(image: torch.Tensor, flow: torch.Tensor, padding_mode: str = "zeros") -> torch.Tensor:
    """Warp ``image`` ``[B, C, H, W]`` (frame t-1) onto frame t with ``flow`` ``[B, 2, H, W]``.

    Sampled in float32 (see ``flow_to_grid``) and returned in the image's dtype.
    """
    if flow.ndim != 4 or flow.shape[1] != 2:
        raise ValueError(f"flow must be [B, 2, H, W], got {tuple(flow.shape)}")
    if image.shape[0] != flow.shape[0] or image.shape[-2:] != flow.shape[-2:]:
        raise ValueError(f"image {tuple(image.shape)} and flow {tuple(flow.shape)} differ in batch or size")
    warped = F.grid_sample(image.float(), flow_to_grid(flow), mode="bilinear", padding_mode=padding_mode,
                           align_corners=True)
    return warped.to(image.dtype)
