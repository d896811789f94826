"""model.pt: a trained variant's generator and encoder with what rebuilds them (its entry, size,
label set, overrides) and its provenance. The training loop writes it after its last stage;
synthesis and cluster_features read it. One home for the format, writer and reader together."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from pipeline.data.labels import num_channels
from pipeline.errors import PipelineError
from pipeline.io import atomic_path
from pipeline.models.build import build_feature_encoder, build_generator
from pipeline.train.schedule import StagePlan
from pipeline.train.step import Models

__all__ = ["MODEL_KEYS", "save_trained", "load_trained"]

MODEL_KEYS = ("variant", "entry", "height", "width", "output_images", "label_set", "model_overrides", "generator",
              "encoder", "provenance")


def save_trained(target: Path, variant: str, models: Models, plan: StagePlan, settings: Mapping[str, Any],
                 record: Mapping[str, Any]) -> None:
    """Write ``models``' generator and encoder, as trained to the last stage ``plan``, atomically."""
    checkpoint = {
        "variant": variant, "entry": dict(models.entry), "height": plan.height, "width": plan.width,
        "output_images": plan.output_images, "label_set": settings["label_set"],
        "model_overrides": settings["train"].get("model_overrides", {}),
        "generator": _cpu_state(models.generator),
        "encoder": _cpu_state(models.encoder) if models.encoder is not None else None,
        "provenance": dict(record),
    }
    with atomic_path(target, suffix=".pt") as tmp:
        torch.save(checkpoint, tmp)


def _cpu_state(module: torch.nn.Module) -> dict:
    module = getattr(module, "_orig_mod", module)
    return {k: v.detach().cpu() for k, v in module.state_dict().items()}


def load_trained(path: str | Path, device: str | torch.device = "cpu") -> tuple[Models, dict]:
    """A trained variant's generator and encoder (eval mode) and its checkpoint record."""
    path = Path(path)
    if not path.is_file():
        raise PipelineError("trained model not found (run the train rule)", path)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # noqa: BLE001
        raise PipelineError(f"not a readable model checkpoint ({err.__class__.__name__})", path) from err
    missing = [key for key in MODEL_KEYS if not isinstance(checkpoint, dict) or key not in checkpoint]
    if missing:
        hint = " (a resume state: the finished model is results/train/{variant}/model.pt)" \
            if isinstance(checkpoint, dict) and "fingerprint" in checkpoint else ""
        raise PipelineError(f"not a trained model of pipeline.train: no {', '.join(missing)}{hint}", path)
    entry = checkpoint["entry"]
    labels = num_channels(checkpoint["label_set"])
    generator = build_generator(entry, labels, checkpoint["height"], checkpoint["width"],
                                stage_output_images=checkpoint["output_images"],
                                **checkpoint["model_overrides"].get("generator", {}))
    generator.load_state_dict(checkpoint["generator"])
    encoder = build_feature_encoder(entry, **checkpoint["model_overrides"].get("encoder", {}))
    if encoder is not None:
        encoder.load_state_dict(checkpoint["encoder"])
    models = Models(entry, generator.to(device).eval(), torch.nn.ModuleDict(),
                    encoder.to(device).eval() if encoder is not None else None)
    return models, checkpoint
