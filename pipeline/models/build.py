"""Variant entry -> modules: the one place that reads a row of table 5.1 (thesis ch. 4.2, 4.5).

A variant is a flat dict from ``variants:`` in config.yaml (index, network, output_images,
output_images_stage2, norm, perceptual, edge, feature_encoder, residual, discriminator, prior,
twin, flow, thesis_fvd; the training settings drop index and thesis_fvd, the table's columns);
``pipeline.config.check_variant`` has already rejected contradictions.
Builders look names up in registries and raise a ValueError listing the allowed names for an
unknown one; they print nothing and return CPU modules (build under ``torch.device("meta")`` to
count parameters without allocating them).

``overrides`` shrink or tweak a network without a new variant (demos, tests): ``width_divisor``
divides every channel count; see ``GENERATOR_OVERRIDES`` for the rest.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from pipeline.config import check_variant
from pipeline.models.crn import CRN
from pipeline.models.discriminators import TEMPORAL_CHANNELS, MultiscaleDiscriminator
from pipeline.models.encoder import FeatureEncoder
from pipeline.models.inputs import InputSpec
from pipeline.models.losses import FeatureMatchingLoss, FlowLoss, LSGANLoss, WarpLoss
from pipeline.models.perceptual import LAYER_DIVISORS, PerceptualLoss, load_backbone
from pipeline.models.pix2pixhd import GlobalGenerator

__all__ = [
    "GENERATORS", "GENERATOR_OVERRIDES", "DISCRIMINATOR_OVERRIDES", "ENCODER_OVERRIDES", "LOSS_OVERRIDES",
    "DISCRIMINATOR_BETAS",
    "Criteria", "input_spec", "input_channels", "build_generator", "build_discriminators",
    "build_feature_encoder", "build_losses", "optimizer_settings", "image_discriminator_input",
    "temporal_discriminator_input",
]

GENERATORS: tuple[str, ...] = ("crn", "pix2pixhd")
GENERATOR_OVERRIDES: dict[str, tuple[str, ...]] = {
    "crn": ("width_divisor", "output_images", "cardinality", "processing_blocks", "widths", "base_size"),
    "pix2pixhd": ("width_divisor", "ngf", "downsamplings", "blocks"),
}
DISCRIMINATOR_OVERRIDES: tuple[str, ...] = ("width_divisor", "ndf", "layers", "last_stride")
ENCODER_OVERRIDES: tuple[str, ...] = ("width_divisor", "nef", "downsamplings")
LOSS_OVERRIDES: tuple[str, ...] = ("feature_matching_style", "pixel_divisor")
DISCRIMINATOR_BETAS = (0.5, 0.999)  # thesis: every discriminator, whatever the network


def _check_name(kind: str, name: Any, allowed: tuple) -> None:
    if name not in allowed:
        raise ValueError(f"unknown {kind} {name!r}; allowed: {', '.join(map(str, allowed))}")


def _check_overrides(kind: str, overrides: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(overrides) - set(allowed))
    if unknown:
        raise ValueError(f"unknown {kind} override(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}")


def input_spec(entry: Mapping[str, Any], label_channels: int) -> InputSpec:
    """The named generator inputs of a variant."""
    return InputSpec(label_channels, edge=bool(entry["edge"]), features=bool(entry["feature_encoder"]),
                     prior=entry["prior"])


def input_channels(entry: Mapping[str, Any], label_channels: int) -> dict[str, int]:
    """Every channel count of a variant (0 where a part is absent).

    ``labels``, ``edge``, ``features``, ``prior_labels``, ``prior_images``: the named inputs.
    ``generator``: all generator input channels; ``generator_main``: those of the first layer of
    the main network; ``generator_twin``: those of the twin half (prior images only).
    ``image_discriminator``: labels + edge + image (+ prior labels and images with priors and
    no flow); ``temporal_discriminator``: 13 for flow variants with discriminators.
    """
    spec = input_spec(entry, label_channels)
    named = {key: spec.channels().get(key, 0)
             for key in ("labels", "edge", "features", "prior_labels", "prior_images")}
    twin = bool(entry["twin"])
    has_discriminator = entry["discriminator"] > 0
    discriminator = named["labels"] + named["edge"] + 3
    if entry["prior"] is not None and not entry["flow"]:
        discriminator += named["prior_labels"] + named["prior_images"]
    return {
        **named,
        "generator": spec.semantic_channels + spec.prior_image_channels,
        "generator_main": spec.semantic_channels + (0 if twin else spec.prior_image_channels),
        "generator_twin": spec.prior_image_channels if twin else 0,
        "image_discriminator": discriminator if has_discriminator else 0,
        "temporal_discriminator": TEMPORAL_CHANNELS if has_discriminator and entry["flow"] else 0,
    }


def build_generator(entry: Mapping[str, Any], label_channels: int, height: int, width: int, *,
                    stage_output_images: int | None = None, **overrides: Any) -> nn.Module:
    """The variant's generator at (height, width); a CRN has log2(height) - 1 modules.

    ``stage_output_images``: the training stage's number of output images (a CRN's second stage
    may have its own, ``output_images_stage2``); pix2pixHD makes one whatever the stage."""
    network = entry["network"]
    _check_name("network", network, GENERATORS)
    # Also for entries that bypassed the config; a trained one has no index (train_settings drops it).
    check_variant(f"index {entry['index']}" if "index" in entry else f"{network} entry", entry)
    _check_overrides(f"{network} generator", overrides, GENERATOR_OVERRIDES[network])
    spec = input_spec(entry, label_channels)
    if network == "crn":
        settings = {"output_images": entry["output_images"], **overrides}
        if stage_output_images is not None:
            settings["output_images"] = stage_output_images
        return CRN(spec, height, width, norm=entry["norm"], residual=bool(entry["residual"]),
                   twin=bool(entry["twin"]), **settings)
    return GlobalGenerator(spec, twin=bool(entry["twin"]), **overrides)


def build_discriminators(entry: Mapping[str, Any], label_channels: int,
                         **overrides: Any) -> nn.ModuleDict | None:
    """``{"image": ..., "temporal": ...}`` (temporal for flow variants), or None without a GAN."""
    _check_overrides("discriminator", overrides, DISCRIMINATOR_OVERRIDES)
    scales = int(entry["discriminator"])
    if scales == 0:
        return None
    settings = dict(overrides)
    ndf = max(1, settings.pop("ndf", 64) // settings.pop("width_divisor", 1))
    channels = input_channels(entry, label_channels)
    discriminators = nn.ModuleDict(
        {"image": MultiscaleDiscriminator(channels["image_discriminator"], scales, ndf, **settings)})
    if channels["temporal_discriminator"]:
        discriminators["temporal"] = MultiscaleDiscriminator(
            channels["temporal_discriminator"], scales, ndf, **settings)
    return discriminators


def build_feature_encoder(entry: Mapping[str, Any], **overrides: Any) -> FeatureEncoder | None:
    """pix2pixHD's feature encoder for variants with ``feature_encoder``, else None."""
    _check_overrides("feature encoder", overrides, ENCODER_OVERRIDES)
    return FeatureEncoder(**overrides) if entry["feature_encoder"] else None


class Criteria(nn.ModuleDict):
    """Named loss terms, each returning its weighted value; ``provenance`` for checkpoints."""

    def provenance(self) -> dict[str, str]:
        """Where pretrained parts came from (``{"perceptual": "path:... sha256:..." | "random"}``)."""
        return {name: module.weights_source for name, module in self.items()
                if hasattr(module, "weights_source")}


def build_losses(entry: Mapping[str, Any], losses_cfg: Mapping[str, Any], weights_cfg: Mapping[str, Any],
                 **overrides: Any) -> Criteria:
    """The variant's criteria, from the ``losses:`` and ``weights:`` sections of the config.

    Names: ``perceptual`` (diversity loss for K > 1), ``gan`` and ``feature_matching`` (with
    discriminators), ``temporal_gan`` and ``temporal_feature_matching`` (flow variants with
    discriminators), ``flow`` and ``warp`` (flow variants). For K > 1 call
    ``criteria["perceptual"](outputs["images"], real, labels)``: the diversity loss needs the labels.
    ``overrides``: ``feature_matching_style`` ("thesis" | "pix2pixhd"), ``pixel_divisor`` (None: no
    pixel term).
    """
    _check_overrides("loss", overrides, LOSS_OVERRIDES)
    criteria = Criteria()
    backbone_name = entry["perceptual"]
    if backbone_name is not None:
        backbone = load_backbone(backbone_name, weights_cfg.get(backbone_name),
                                 bool(weights_cfg.get("allow_random", False)))
        criteria["perceptual"] = PerceptualLoss(
            backbone, losses_cfg.get("perceptual_layer_divisors", LAYER_DIVISORS),
            pixel_divisor=overrides.get("pixel_divisor", 1.0), weight=losses_cfg.get("perceptual", 1.0))
    scales = int(entry["discriminator"])
    style = overrides.get("feature_matching_style", "thesis")
    matching = losses_cfg.get("feature_matching", 10.0)
    if scales:
        criteria["gan"] = LSGANLoss()
        criteria["feature_matching"] = FeatureMatchingLoss(scales, matching, style)
        if entry["flow"]:
            criteria["temporal_gan"] = LSGANLoss()
            criteria["temporal_feature_matching"] = FeatureMatchingLoss(scales, matching, style)
    if entry["flow"]:
        criteria["flow"] = FlowLoss(losses_cfg.get("flow", 10.0))
        criteria["warp"] = WarpLoss(losses_cfg.get("warp", 10.0))
    return criteria


def optimizer_settings(entry: Mapping[str, Any], train_cfg: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Adam settings: ``generator`` (its network's lr and betas; the feature encoder joins it) and
    ``discriminator`` (train.discriminator.lr, betas (0.5, 0.999)) where the variant has one."""
    network = entry["network"]
    _check_name("network", network, GENERATORS)
    schedule = train_cfg[network]
    settings = {"generator": {"lr": float(schedule["lr"]), "betas": tuple(schedule["betas"])}}
    if entry["discriminator"] > 0:
        settings["discriminator"] = {"lr": float(train_cfg["discriminator"]["lr"]),
                                     "betas": DISCRIMINATOR_BETAS}
    return settings


def image_discriminator_input(entry: Mapping[str, Any], inputs: Mapping[str, torch.Tensor],
                              image: torch.Tensor) -> torch.Tensor:
    """What the image discriminator sees: labels, edge, image, and with priors but no flow the
    prior labels and images (real priors in the real branch: pass them in ``inputs``)."""
    parts = [inputs["labels"]] + ([inputs["edge"]] if entry["edge"] else []) + [image]
    if entry["prior"] is not None and not entry["flow"]:
        parts += [inputs["prior_labels"], inputs["prior_images"]]
    return torch.cat(parts, 1)


def temporal_discriminator_input(image: torch.Tensor, prior_images: torch.Tensor, flow: torch.Tensor,
                                 prior_flow: torch.Tensor) -> torch.Tensor:
    """vid2vid mode: image, 2 prior images, reference flow, previous reference flow (13 channels);
    the *real* flows go with both the real and the fake frames."""
    return torch.cat([image, prior_images, flow, prior_flow], 1)
