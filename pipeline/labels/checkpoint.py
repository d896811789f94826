"""Labeller checkpoints: read a state dict in the formats people have, check it fits, save ours.

A checkpoint is a file ``torch.load`` reads (a bare state dict, or one wrapped as
``{'state_dict': ..}``, ``{'model_state': ..}`` (VainF/DeepLabV3Plus-Pytorch) or ``{'model': ..}``
(torchvision's reference scripts), optionally with ``'meta'``), or a segmentation-models-pytorch
``save_pretrained`` folder (``config.json`` + ``model.safetensors``). Whatever does not fit the
configured network stops the run with a PipelineError naming the file and the mismatch: missing
or unexpected keys, shapes that differ (a classifier for another class count), or meta that
names another encoder or class count. Our own fits save ``{'state_dict', 'meta'}`` atomically.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pipeline.errors import PipelineError
from pipeline.io import atomic_path

__all__ = ["read_checkpoint", "load_into", "check_meta", "save_checkpoint", "checkpoint_record"]

WRAPPER_KEYS = ("state_dict", "model_state", "model")
SHOWN_KEYS = 4  # keys listed per kind of mismatch; the count says how many more


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(state_dict, meta)`` of a checkpoint file or ``save_pretrained`` folder (on the CPU)."""
    path = Path(path)
    if not path.exists():
        raise PipelineError("checkpoint not found", path)
    if path.is_dir():
        return _read_pretrained_folder(path)
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for a file that is not a checkpoint
        raise PipelineError(f"not a readable torch checkpoint ({type(err).__name__}: {err})", path) from err
    return _unwrap(loaded, path)


def _unwrap(loaded: Any, path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    if not isinstance(loaded, Mapping):
        raise PipelineError(f"a checkpoint holds a state dict, this one holds {type(loaded).__name__}", path)
    meta = dict(loaded.get("meta") or {})
    for key in WRAPPER_KEYS:
        if isinstance(loaded.get(key), Mapping):
            loaded = loaded[key]
            break
    state = {k: v for k, v in loaded.items() if isinstance(v, torch.Tensor)}
    if not state:
        raise PipelineError(f"no state dict found (top-level keys: {sorted(loaded)[:8]})", path)
    prefix = "module."  # saved from DataParallel / DistributedDataParallel
    if all(key.startswith(prefix) for key in state):
        state = {key[len(prefix):]: value for key, value in state.items()}
    return state, meta


def _read_pretrained_folder(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """A ``save_pretrained`` folder; its config.json becomes the meta (encoder, classes)."""
    config_file = path / "config.json"
    weights_file = path / "model.safetensors"
    for needed in (config_file, weights_file):
        if not needed.is_file():
            raise PipelineError(f"a save_pretrained folder needs {needed.name}; it is missing", path)
    try:
        config = json.loads(config_file.read_text())
    except json.JSONDecodeError as err:
        raise PipelineError(f"not valid JSON ({err})", config_file) from err
    from safetensors.torch import load_file

    meta = {"architecture": config.get("_model_class"), "encoder": config.get("encoder_name"),
            "classes": config.get("classes")}
    return load_file(str(weights_file)), {k: v for k, v in meta.items() if v is not None}


def check_meta(meta: Mapping[str, Any], expected: Mapping[str, Any], path: str | Path) -> None:
    """Stop where the checkpoint's own record names another network than the configured one."""
    clashes = [f"{key} is {meta[key]!r} in the checkpoint, {value!r} in the config"
               for key, value in expected.items() if key in meta and meta[key] != value]
    if clashes:
        raise PipelineError("checkpoint does not fit the configured network: " + "; ".join(clashes), path)


def load_into(model: nn.Module, state: Mapping[str, torch.Tensor], path: str | Path, what: str) -> None:
    """Load ``state`` into ``model`` strictly, or raise naming the missing, extra and misshapen keys."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    misshapen = [f"{key} is {list(state[key].shape)} in the file, {list(expected[key].shape)} in the model"
                 for key in expected if key in state and state[key].shape != expected[key].shape]
    problems = []
    if misshapen:
        problems.append("shape mismatch: " + _listing(misshapen))
    if missing:
        problems.append(f"{len(missing)} missing keys: " + _listing(missing))
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys: " + _listing(unexpected))
    if problems:
        raise PipelineError(f"checkpoint does not fit {what}: " + "; ".join(problems), path)
    model.load_state_dict(state)


def _listing(items: list[str]) -> str:
    shown = ", ".join(items[:SHOWN_KEYS])
    return shown + (f" (+{len(items) - SHOWN_KEYS} more)" if len(items) > SHOWN_KEYS else "")


def save_checkpoint(path: str | Path, state: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> None:
    """Write ``{'state_dict', 'meta'}`` atomically (CPU tensors, loadable with weights_only)."""
    cpu_state = {key: value.detach().cpu() for key, value in state.items()}
    with atomic_path(path, suffix=Path(path).suffix or ".pt") as tmp:
        torch.save({"state_dict": cpu_state, "meta": dict(meta)}, tmp)


def checkpoint_record(path: str | Path, meta: Mapping[str, Any]) -> dict[str, Any]:
    """What a label set's provenance says about its weights: file, hash, and their own record."""
    path = Path(path)
    weights = path / "model.safetensors" if path.is_dir() else path
    digest = hashlib.sha256()
    with open(weights, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return {"path": str(path), "sha256": digest.hexdigest(), "meta": dict(meta),
            "self_trained": bool(meta.get("self_trained", False))}
