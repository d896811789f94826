"""pix2pixHD's feature encoder with instance-wise average pooling, and its k-means feature bank
(Wang et al. 2018 §3.4; thesis ch. 3.2.2, thesis-code.md §4, networks.md §1).

- ``FeatureEncoder``: reflection pad + 7x7 conv 3->16 (instance norm, ReLU); four 3x3 stride-2
  convs (32, 64, 128, 256); four transposed convs back (128, 64, 32, 16); reflection pad + 7x7
  conv 16->3; tanh; then ``instance_average``. Trained end to end with the generator (its
  parameters join the generator's optimiser), on the real frame in [0, 1] (the thesis's range).
- ``instance_average``: every channel replaced by its mean over each instance id's pixels. With
  the Cityscapes instanceIds encoding this gives one region per thing instance and one per stuff
  class, the regions the thesis's pooling ended up with.
- After training: ``region_means`` over the training set, ``cluster_features`` (per class,
  k-means with 10 clusters; seeded k-means++ and Lloyd iterations here, scikit-learn's KMeans
  in the originals), and at synthesis ``choose_centres`` (one random centre per class for the
  whole video, the thesis's choice; pix2pixHD drew per instance) and ``paint_features``
  (missing classes get 0).

A region's class is the most frequent label channel inside it (the thesis took the median).
"""

from __future__ import annotations

import torch
from torch import nn

from pipeline.models.blocks import reflect_conv
from pipeline.models.pix2pixhd import Pix2PixHDDecoderHalf, Pix2PixHDEncoderHalf

__all__ = [
    "FeatureEncoder", "instance_average", "region_means", "kmeans", "cluster_features",
    "choose_centres", "paint_features",
]


ID_SPAN = 1 << 16          # instance ids are uint16 (Cityscapes instanceIds)


def _regions(instances: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Region index per pixel [B, H*W] (ids are per batch element) and the region count."""
    if instances.dim() == 4:
        instances = instances[:, 0]
    ids = instances.long().flatten(1)
    ids = ids - ids.min()
    span = int(ids.max()) + 1
    keys = ids + torch.arange(ids.shape[0], device=ids.device)[:, None] * span
    _, inverse = torch.unique(keys, return_inverse=True)
    return inverse, int(inverse.max()) + 1


def _region_sums(values: torch.Tensor, inverse: torch.Tensor, count: int) -> torch.Tensor:
    """Sum of ``values`` [B, C, H, W] per region: [count, C]."""
    channels = values.shape[1]
    flat = values.flatten(2).transpose(1, 2).reshape(-1, channels)
    sums = torch.zeros(count, channels, dtype=values.dtype, device=values.device)
    return sums.index_add(0, inverse.reshape(-1), flat)


def instance_average(features: torch.Tensor, instances: torch.Tensor) -> torch.Tensor:
    """``features`` [B, C, H, W] with each channel averaged over every instance id's pixels.

    ``instances``: integer ids [B, H, W] or [B, 1, H, W] in [0, 65536) (Cityscapes instanceIds
    are uint16); the same id in two batch elements is two regions. Differentiable in
    ``features``. Regions are indexed by id directly, not by ``torch.unique``, so on a GPU the
    training step never waits for the host here (a unique, a max: a sync each, every frame).
    """
    ids = (instances[:, 0] if instances.dim() == 4 else instances).long()
    if not ids.is_cuda and ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= ID_SPAN):
        raise ValueError(f"instance ids must lie in [0, {ID_SPAN}); got {int(ids.min())}..{int(ids.max())}")
    batch, channels, height, width = features.shape
    keys = (ids + torch.arange(batch, device=ids.device)[:, None, None] * ID_SPAN).reshape(-1)
    # float32 whatever the features' dtype: CUDA's index_add accumulates in the destination's
    # dtype, and a bf16 sum or pixel count (under autocast) stops growing past 256 pixels.
    flat = features.permute(0, 2, 3, 1).reshape(-1, channels).float()
    # One scatter for the sums and the pixel counts (the last column).
    totals = flat.new_zeros(batch * ID_SPAN, channels + 1).index_add(
        0, keys, torch.cat([flat, torch.ones_like(flat[:, :1])], 1))
    means = totals[keys]
    pooled = (means[:, :channels] / means[:, channels:]).to(features.dtype)
    return pooled.view(batch, height, width, channels).permute(0, 3, 1, 2)


class FeatureEncoder(nn.Module):
    """pix2pixHD's encoder (nef 16, 4 downsamplings, 3 output channels) + instance pooling: its
    generator's two halves without residual blocks, then a 7x7 conv to the features."""

    def __init__(self, nef: int = 16, downsamplings: int = 4, out_channels: int = 3, width_divisor: int = 1):
        super().__init__()
        nef = max(1, nef // width_divisor)
        self.body = nn.Sequential(Pix2PixHDEncoderHalf(3, nef, downsamplings, blocks=0),
                                  Pix2PixHDDecoderHalf(nef, downsamplings, blocks=0),
                                  reflect_conv(nef, out_channels, 7), nn.Tanh())
        self.out_channels = out_channels

    def forward(self, image: torch.Tensor, instances: torch.Tensor) -> torch.Tensor:
        """Pooled features [B, 3, H, W] of the real ``image`` [B, 3, H, W] over ``instances``.

        ``image`` is in [0, 1] and goes in as it is: the thesis kept images in [0, 1] with no
        [-1, 1] scaling (thesis-code.md §2), where pix2pixHD fed [-1, 1]. Callers pass the frame
        unscaled, so any change of range belongs here.
        """
        return instance_average(self.body(image), instances)


def region_means(features: torch.Tensor, instances: torch.Tensor,
                 labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per region: the mean feature [R, C] and its class [R] (most frequent label channel).

    ``labels`` is the one-hot map [B, L, H, W]. These rows, collected over the training set,
    are what ``cluster_features`` clusters.
    """
    inverse, count = _regions(instances)
    sums = _region_sums(features.detach(), inverse, count)
    sizes = torch.bincount(inverse.reshape(-1), minlength=count).to(sums.dtype)
    classes = _region_sums(labels.detach().to(sums.dtype), inverse, count).argmax(1)
    return sums / sizes[:, None], classes


def kmeans(points: torch.Tensor, clusters: int, generator: torch.Generator,
           iterations: int = 100) -> torch.Tensor:
    """Centres [min(clusters, N), D] of ``points`` [N, D]: k-means++ seeding, Lloyd iterations."""
    points = points.double()
    count = min(clusters, points.shape[0])
    first = torch.randint(points.shape[0], (1,), generator=generator)
    centres = points[first]
    while centres.shape[0] < count:
        distance = torch.cdist(points, centres).min(1).values.pow(2)
        if float(distance.sum()) == 0.0:  # fewer distinct points than clusters
            break
        pick = torch.multinomial(distance / distance.sum(), 1, generator=generator)
        centres = torch.cat([centres, points[pick]])
    assignment = None
    for _ in range(iterations):
        new_assignment = torch.cdist(points, centres).argmin(1)
        if assignment is not None and torch.equal(new_assignment, assignment):
            break
        assignment = new_assignment
        for k in range(centres.shape[0]):
            members = points[assignment == k]
            if members.shape[0]:  # an empty cluster keeps its centre
                centres[k] = members.mean(0)
    return centres.float()


def cluster_features(means: torch.Tensor, classes: torch.Tensor, clusters: int = 10,
                     seed: int = 0) -> dict[int, torch.Tensor]:
    """Per class, k-means centres of its region means: {class: [<=clusters, C]}. Seeded."""
    generator = torch.Generator().manual_seed(seed)
    bank = {}
    for cls in sorted(int(c) for c in torch.unique(classes)):
        bank[cls] = kmeans(means[classes == cls], clusters, generator)
    return bank


def choose_centres(bank: dict[int, torch.Tensor], generator: torch.Generator) -> dict[int, torch.Tensor]:
    """One random centre per class (kept for a whole video, as the thesis did)."""
    chosen = {}
    for cls in sorted(bank):
        index = int(torch.randint(bank[cls].shape[0], (1,), generator=generator))
        chosen[cls] = bank[cls][index]
    return chosen


def paint_features(instances: torch.Tensor, labels: torch.Tensor, chosen: dict[int, torch.Tensor],
                   channels: int = 3) -> torch.Tensor:
    """A feature map [B, C, H, W]: every region gets the chosen centre of its class, else 0."""
    inverse, count = _regions(instances)
    classes = _region_sums(labels.to(torch.float32), inverse, count).argmax(1)
    table = torch.zeros(labels.shape[1], channels, device=labels.device)
    for cls, centre in chosen.items():
        if cls < labels.shape[1]:
            table[cls] = centre.to(table)
    batch, _, height, width = labels.shape
    values = table[classes][inverse]
    return values.view(batch, height, width, channels).permute(0, 3, 1, 2).contiguous()
