"""Cascaded Refinement Network (Chen and Koltun 2017) as the thesis built it (ch. 3.2.1, 4.5.2;
thesis-code.md §3, §6).

Modules run from 4x8 up to the output size, doubling each time (log2(H) - 1 modules: 7 at
256x512, 8 at 512x1024), with widths 1024 x5, 512, 512, 128, 32 by module index. Every module
sees the semantic input (labels, edge, features, prior labels) resized nearest, the prior images
resized bilinearly, and the previous module's features upsampled bilinearly (align_corners=True).

- Standard module: concat -> two (3x3 conv, norm, LeakyReLU 0.2).
- ResNeXt module (thesis appendix A.1 as its code built it): a 3x3 conv-norm-LeakyReLU *entry*
  per input group plus a 3x3 conv of the previous features, summed, then two ``ResNeXtBlock``s
  (7 convs in module 0, 8 later).
- Processing blocks (``processing_blocks``, the thesis's CRN_NUM_RESNET_PROCESSING_RMS): C -> C
  3x3 convs on the final module's output before the image head and, in a twin, on the final twin
  module's output before the flow and mask heads (``CRN_Video_Network.py`` gives both final
  modules the count); norm -> LeakyReLU -> conv after ResNeXt modules, conv -> norm -> LeakyReLU
  after plain ones (``Refinement_Module.py``, ``relu_loc``). The study uses 0 (see ``CRN``).
- Head: 1x1 conv (Xavier, zero bias) to 3K channels; image k takes R, G, B from channels k,
  K + k, 2K + k; output (x + 1) / 2 with no tanh and no clamp (thesis; the official CRN scales
  to [0, 255]).
- Twin (flow variants): a twin module beside each module takes the prior images and the
  previous features; levels pass on main + twin; the final twin module feeds ``FlowHeads``
  (PyTorch's default init, as the thesis's plain flow and mask convs). Only the ResNeXt twin
  (v09) is the thesis's: its plain-module twins used another layout (``complex_input_mode``),
  not ported, so ``pipeline.config.check_variant`` refuses a variant with twin and no residual.
- Init: every other conv N(0, 0.02) with PyTorch's default bias (the thesis's RMBlock).

Thesis vs. official CRN: the thesis resizes labels nearest (official: area) and uses a
per-channel LayerNorm over (H, W) with a per-pixel affine (official: GroupNorm(1, C), norm
"group" here). Growing by one module (``grow``) transfers modules by index as the thesis did.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from pipeline.models.blocks import ConvNormAct, ProcessingBlock, ResNeXtBlock, init_conv_
from pipeline.models.inputs import InputSpec
from pipeline.models.norms import check_norm
from pipeline.models.twin import FlowHeads, merge_with_prior

__all__ = [
    "CRN_WIDTHS", "BASE_SIZE", "module_sizes", "module_widths", "RefinementModule",
    "ResNeXtRefinementModule", "CRN",
]

CRN_WIDTHS: tuple[int, ...] = (1024, 1024, 1024, 1024, 1024, 512, 512, 128, 32)
BASE_SIZE: tuple[int, int] = (4, 8)  # CRN_INPUT_TENSOR_SIZE_HEIGHT / _WIDTH
HEAD_PREFIXES = ("to_image.", "heads.", "process.", "twin_process.")


def module_sizes(height: int, width: int, base: tuple[int, int] = BASE_SIZE) -> list[tuple[int, int]]:
    """(H, W) of every refinement module, from ``base`` doubling up to (height, width)."""
    doublings = math.log2(height / base[0]) if height >= base[0] else -1.0
    if doublings < 0 or doublings != int(doublings) or width != base[1] * 2 ** int(doublings):
        raise ValueError(f"a CRN needs (height, width) = {base} x 2^n, got ({height}, {width})")
    return [(base[0] * 2 ** i, base[1] * 2 ** i) for i in range(int(doublings) + 1)]


def module_widths(count: int, width_divisor: int = 1, widths: Sequence[int] = CRN_WIDTHS) -> list[int]:
    """Channels of modules 0..count-1 (the last listed width repeats), divided by ``width_divisor``."""
    return [max(1, -(-widths[min(i, len(widths) - 1)] // width_divisor)) for i in range(count)]


def _resize(x: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    if mode == "nearest":
        return F.interpolate(x, size=size, mode="nearest")
    return F.interpolate(x, size=size, mode="bilinear", align_corners=True)


class RefinementModule(nn.Module):
    """Two 3x3 conv-norm-LeakyReLU layers over concat(previous features, input groups)."""

    def __init__(self, group_channels: Sequence[int], previous_channels: int, channels: int,
                 size: tuple[int, int], norm: str):
        super().__init__()
        self.body = nn.Sequential(
            ConvNormAct(previous_channels + sum(group_channels), channels, norm, size),
            ConvNormAct(channels, channels, norm, size),
        )

    def forward(self, groups: Sequence[torch.Tensor], previous: torch.Tensor | None) -> torch.Tensor:
        parts = ([] if previous is None else [previous]) + list(groups)
        return self.body(torch.cat(parts, 1))


class ResNeXtRefinementModule(nn.Module):
    """Sum of per-group entries and a conv of the previous features, then two ResNeXt blocks."""

    def __init__(self, group_channels: Sequence[int], previous_channels: int, channels: int,
                 size: tuple[int, int], norm: str, cardinality: int = 32, blocks: int = 2):
        super().__init__()
        self.entries = nn.ModuleList(ConvNormAct(c, channels, norm, size) for c in group_channels)
        self.previous = None
        if previous_channels:
            conv = init_conv_(nn.Conv2d(previous_channels, channels, 3, padding=1))
            # No activation on the previous features: they arrive already activated.
            self.previous = weight_norm(conv) if norm == "weight" else conv
        self.blocks = nn.Sequential(*(ResNeXtBlock(channels, cardinality) for _ in range(blocks)))

    def forward(self, groups: Sequence[torch.Tensor], previous: torch.Tensor | None) -> torch.Tensor:
        x = sum(entry(group) for entry, group in zip(self.entries, groups))
        if self.previous is not None and previous is not None:
            x = x + self.previous(previous)
        return self.blocks(x)


class CRN(nn.Module):
    """The CRN generator for one output size; see the module docstring.

    forward(inputs) -> {"image": [B, 3, H, W]} (K = 1), {"images": [B, K, 3, H, W], "image":
    the first of them} (K > 1), plus ``hallucinated``, ``flow``, ``mask``, ``warped`` (twin).
    """

    def __init__(self, spec: InputSpec, height: int, width: int, *, output_images: int = 1,
                 norm: str = "layer", residual: bool = False, twin: bool = False,
                 width_divisor: int = 1, cardinality: int = 32, processing_blocks: int = 0,
                 widths: Sequence[int] = CRN_WIDTHS, base_size: tuple[int, int] = BASE_SIZE):
        # processing_blocks = 0 is this project's choice: the thesis does not record the value it
        # trained with, and its code's default (CRN_NUM_RESNET_PROCESSING_RMS) went from 2 to 0
        # at MastersProject commit 2f48c3a (Jan 2021). Set it with
        # train.model_overrides.generator.processing_blocks.
        super().__init__()
        check_norm(norm)
        if twin and spec.prior is None:
            raise ValueError("a twin CRN needs prior images (a prior mode)")
        if output_images < 1 or (twin and output_images != 1):
            raise ValueError(f"output_images must be >= 1 (1 for twin networks), got {output_images}")
        self.settings: dict[str, Any] = dict(
            output_images=output_images, norm=norm, residual=residual, twin=twin,
            width_divisor=width_divisor, cardinality=cardinality,
            processing_blocks=processing_blocks, widths=tuple(widths), base_size=tuple(base_size))
        self.spec = spec
        self.size = (height, width)
        self.sizes = module_sizes(height, width, base_size)
        self.channels = module_widths(len(self.sizes), width_divisor, widths)
        self.output_images = output_images
        self.twin_network = twin
        main_groups = [spec.semantic_channels]
        if spec.prior is not None and not twin:
            main_groups.append(spec.prior_image_channels)
        self.refine = self._modules_for(main_groups)
        self.twin = self._modules_for([spec.prior_image_channels]) if twin else None
        final = self.channels[-1]
        self.process = self._processing(processing_blocks)
        self.twin_process = self._processing(processing_blocks) if twin else None
        self.to_image = nn.Conv2d(final, 3 * output_images, 1)
        nn.init.xavier_uniform_(self.to_image.weight)
        nn.init.zeros_(self.to_image.bias)
        self.heads = FlowHeads(final, std=None) if twin else None

    def _processing(self, count: int) -> nn.Sequential:
        """``count`` processing blocks for the final module's output (see the module docstring)."""
        order = "before" if self.settings["residual"] else "after"
        return nn.Sequential(*(ProcessingBlock(self.channels[-1], self.settings["norm"], self.sizes[-1], order)
                               for _ in range(count)))

    def _modules_for(self, group_channels: Sequence[int]) -> nn.ModuleList:
        settings = self.settings
        modules = []
        for index, (size, channels) in enumerate(zip(self.sizes, self.channels)):
            previous = self.channels[index - 1] if index else 0
            if settings["residual"]:
                modules.append(ResNeXtRefinementModule(group_channels, previous, channels, size,
                                                       settings["norm"], settings["cardinality"]))
            else:
                modules.append(RefinementModule(group_channels, previous, channels, size, settings["norm"]))
        return nn.ModuleList(modules)

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        semantic = self.spec.semantic(inputs, self.size)
        prior_images = self.spec.prior_images(inputs, self.size)
        previous: torch.Tensor | None = None
        last = len(self.sizes) - 1
        for index, size in enumerate(self.sizes):
            upsampled = None if previous is None else _resize(previous, size, "bilinear")
            groups = [_resize(semantic, size, "nearest")]
            priors = None if prior_images is None else _resize(prior_images, size, "bilinear")
            if priors is not None and not self.twin_network:
                groups.append(priors)
            main = self.refine[index](groups, upsampled)
            side = self.twin[index]([priors], upsampled) if self.twin is not None else None
            if index < last:
                previous = main if side is None else main + side
        return self._outputs(main, side, prior_images)

    def _outputs(self, main: torch.Tensor, side: torch.Tensor | None,
                 prior_images: torch.Tensor | None) -> dict[str, torch.Tensor]:
        raw = self.to_image(self.process(main))
        images = (raw + 1.0) / 2.0
        if self.output_images > 1:
            batch, _, height, width = images.shape
            # Channel c*K + k is colour c of image k.
            stacked = images.view(batch, 3, self.output_images, height, width).transpose(1, 2)
            return {"images": stacked, "image": stacked[:, 0]}
        if side is None:
            return {"image": images}
        flow, mask = self.heads(self.twin_process(side))
        return merge_with_prior(images, flow, mask, prior_images, self.spec.prior)

    def grow(self, output_images: int | None = None) -> "CRN":
        """A CRN one module larger (twice the size) with this one's modules transferred by index.

        ``output_images`` changes K (the thesis went from 9 to 3). The heads and the new final
        module start fresh; see ``load_grown_state``.
        """
        settings = copy.deepcopy(self.settings)
        if output_images is not None:
            settings["output_images"] = output_images
        grown = CRN(self.spec, self.size[0] * 2, self.size[1] * 2, **settings)
        grown.load_grown_state(self.state_dict())
        return grown

    def load_grown_state(self, old_state: dict[str, torch.Tensor]) -> dict[str, list[str]]:
        """Load a smaller CRN's state by module index, as the thesis's ``strict=False`` load did.

        Parameters whose name and shape match are copied; the old heads (image, flow, mask, both
        chains' processing blocks) are dropped. Returns the ``transferred``, ``dropped`` and
        ``fresh`` keys.
        """
        own = self.state_dict()
        transferred, dropped = [], []
        for key, value in old_state.items():
            fits = key in own and own[key].shape == value.shape and not key.startswith(HEAD_PREFIXES)
            (transferred if fits else dropped).append(key)
        self.load_state_dict({key: old_state[key] for key in transferred}, strict=False)
        fresh = [key for key in own if key not in set(transferred)]
        return {"transferred": transferred, "dropped": dropped, "fresh": fresh}
