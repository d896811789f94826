"""The component library: norms, blocks, CRN, pix2pixHD, discriminators, encoder, losses.

Both networks are built from shared components, as the thesis did (ch. 4.5.2): a CRN with a
discriminator uses exactly the pix2pixHD discriminator. A variant of table 5.1 is a config entry
that ``build`` turns into modules; see ``pipeline/models/build.py``.

Files: ``norms`` (layer, group, weight, instance), ``blocks``, ``inputs`` (named generator
inputs), ``prior`` (prior frames, Ext./Adj.), ``twin`` (flow and mask heads, merge), ``crn``,
``pix2pixhd``, ``discriminators``, ``encoder`` (feature encoder, k-means), ``edges`` (THE edge
map), ``perceptual`` (perceptual and diversity loss), ``losses`` (GAN, feature matching, flow,
warp), ``weights`` (torchvision weight files), ``build`` (variant -> modules).
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "build_discriminators", "build_feature_encoder", "build_generator", "build_losses",
    "input_channels", "optimizer_settings", "edge_map",
]
_HOMES = {name: "pipeline.models.build" for name in __all__[:-1]} | {"edge_map": "pipeline.models.edges"}


def __getattr__(name: str) -> Any:
    # Lazy: ``pipeline.models.edges`` (used by the datasets) should not pull in torchvision.
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'pipeline.models' has no attribute {name!r}")
