"""pix2pixHD's global generator (Wang et al. 2018, "High-Resolution Image Synthesis and Semantic
Manipulation with Conditional GANs") as the thesis used it: no local enhancer (ch. 4.5.2).

Layers (networks.md §1; the thesis's own GAN code is not available): reflection pad 3, 7x7 conv
to ngf = 64, instance norm, ReLU; 4 downsamplings (3x3 stride 2) to 1024 channels; 9 residual
blocks; 4 transposed convs (3x3 stride 2) back to 64; reflection pad 3, 7x7 conv to 3, tanh.
About 182.6 M parameters (182,556,163, counted) with pix2pixHD's 39 input channels (35 label
ids + edge + 3 feature channels); with the thesis's 24 (20 labels + edge + 3 features) it is
47,040 fewer (182,509,123).

The image leaves as (tanh + 1) / 2, so every generator here emits images in [0, 1].

Twin (flow variants): vid2vid's composite generator as the thesis describes it (ch. 3.3.1,
4.5.2): the trunk splits after blocks - blocks // 2 = 5 residual blocks; a second encoder
(own stem, downsamplings and 5 blocks) takes the prior images; the two encodings are summed and
feed both the image decoder (4 blocks, upsampling, head) and a flow decoder of the same shape
ending in ``FlowHeads``. That doubles the parameters, as the thesis says.
"""

from __future__ import annotations

import torch
from torch import nn

from pipeline.models.blocks import ResnetBlock, init_conv_, reflect_conv
from pipeline.models.inputs import InputSpec
from pipeline.models.twin import FlowHeads, merge_with_prior

__all__ = ["Pix2PixHDEncoderHalf", "Pix2PixHDDecoderHalf", "GlobalGenerator"]


class Pix2PixHDEncoderHalf(nn.Sequential):
    """Stem, ``downsamplings`` strided convs and ``blocks`` residual blocks."""

    def __init__(self, in_channels: int, ngf: int, downsamplings: int, blocks: int):
        layers: list[nn.Module] = [reflect_conv(in_channels, ngf, 7), nn.InstanceNorm2d(ngf), nn.ReLU(True)]
        for i in range(downsamplings):
            channels = ngf * 2 ** i
            layers += [init_conv_(nn.Conv2d(channels, channels * 2, 3, stride=2, padding=1)),
                       nn.InstanceNorm2d(channels * 2), nn.ReLU(True)]
        bottleneck = ngf * 2 ** downsamplings
        layers += [ResnetBlock(bottleneck) for _ in range(blocks)]
        super().__init__(*layers)


class Pix2PixHDDecoderHalf(nn.Sequential):
    """``blocks`` residual blocks and ``downsamplings`` transposed convs back to ngf channels."""

    def __init__(self, ngf: int, downsamplings: int, blocks: int):
        bottleneck = ngf * 2 ** downsamplings
        layers: list[nn.Module] = [ResnetBlock(bottleneck) for _ in range(blocks)]
        for i in range(downsamplings, 0, -1):
            channels = ngf * 2 ** i
            up = nn.ConvTranspose2d(channels, channels // 2, 3, stride=2, padding=1, output_padding=1)
            layers += [init_conv_(up), nn.InstanceNorm2d(channels // 2), nn.ReLU(True)]
        super().__init__(*layers)


class GlobalGenerator(nn.Module):
    """pix2pixHD's global generator, optionally as a vid2vid-style twin; see the module docstring.

    forward(inputs) -> {"image": [B, 3, H, W]} plus ``hallucinated``, ``flow``, ``mask``,
    ``warped`` for twin networks. H and W must be multiples of 2^downsamplings.
    """

    def __init__(self, spec: InputSpec, *, ngf: int = 64, downsamplings: int = 4, blocks: int = 9,
                 twin: bool = False, width_divisor: int = 1):
        super().__init__()
        if twin and spec.prior is None:
            raise ValueError("a twin pix2pixHD generator needs prior images (a prior mode)")
        self.spec = spec
        self.twin_network = twin
        self.multiple = 2 ** downsamplings
        ngf = max(1, ngf // width_divisor)
        encoder_blocks = blocks - blocks // 2  # vid2vid's split point; the sum is the same chain
        in_channels = spec.semantic_channels + (0 if twin else spec.prior_image_channels)
        self.encoder = Pix2PixHDEncoderHalf(in_channels, ngf, downsamplings, encoder_blocks)
        self.decoder = Pix2PixHDDecoderHalf(ngf, downsamplings, blocks // 2)
        self.to_image = nn.Sequential(reflect_conv(ngf, 3, 7), nn.Tanh())
        self.prior_encoder = self.flow_decoder = self.heads = None
        if twin:
            self.prior_encoder = Pix2PixHDEncoderHalf(spec.prior_image_channels, ngf, downsamplings, encoder_blocks)
            self.flow_decoder = Pix2PixHDDecoderHalf(ngf, downsamplings, blocks // 2)
            self.heads = FlowHeads(ngf)

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        semantic = self.spec.semantic(inputs)
        height, width = semantic.shape[-2:]
        if height % self.multiple or width % self.multiple:
            raise ValueError(f"pix2pixHD needs H and W divisible by {self.multiple}, got {height}x{width}")
        prior_images = self.spec.prior_images(inputs, (height, width))
        if self.prior_encoder is None:
            x = semantic if prior_images is None else torch.cat([semantic, prior_images], 1)
            return {"image": self._image(self.encoder(x))}
        joint = self.encoder(semantic) + self.prior_encoder(prior_images)
        flow, mask = self.heads(self.flow_decoder(joint))
        return merge_with_prior(self._image(joint), flow, mask, prior_images, self.spec.prior)

    def _image(self, encoded: torch.Tensor) -> torch.Tensor:
        return (self.to_image(self.decoder(encoded)) + 1.0) / 2.0
