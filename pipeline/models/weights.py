"""Loading pretrained backbones from torchvision's own state-dict files at a configured path.

Weights cannot be downloaded on the study's machines, so the ``weights:`` section of config.yaml
names local files (torchvision's ``vgg19-dcbb9e9d.pth``, ``mobilenet_v2-b0353104.pth``, ...).
A file is checked before use: it exists, ``torch.load`` reads it as a mapping of tensors, its
SHA-256 starts with the hash in its name where torchvision's naming carries one (as
``torchvision``'s own ``check_hash`` does), and its keys and shapes fit the architecture
exactly. Every failure is a ``PipelineError`` naming the file.

Random weights only with ``allow_random`` (demo); the source is recorded either way as
``"path:<file> sha256:<hex>"`` or ``"random"`` for the checkpoint's provenance.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from torch import nn

from pipeline.errors import PipelineError

__all__ = ["RANDOM_SOURCE", "sha256_file", "load_state_dict_file", "load_pretrained"]

RANDOM_SOURCE = "random"
# torchvision names its files <arch>-<first hex digits of the SHA-256>.pth
_HASH_IN_NAME = re.compile(r"-([a-f0-9]{6,})\.pth?$")


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_state_dict_file(path: str | Path) -> tuple[dict[str, torch.Tensor], str]:
    """The state dict in ``path`` and its SHA-256, checked as the module docstring says."""
    path = Path(path)
    if not path.is_file():
        raise PipelineError("weights file not found", path)
    digest = sha256_file(path)
    named = _HASH_IN_NAME.search(path.name)
    if named and not digest.startswith(named.group(1)):
        raise PipelineError(f"SHA-256 {digest[:12]}... does not start with the {named.group(1)} in "
                            "the file's name: the file is corrupt or not the named one", path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for a bad file
        raise PipelineError(f"not a readable torch state dict: {err}", path) from err
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise PipelineError("expected a state dict (a mapping of names to tensors)", path)
    return dict(state), digest


def load_pretrained(build: Callable[[], nn.Module], name: str, path: str | Path | None,
                    allow_random: bool) -> tuple[nn.Module, str]:
    """``build()`` with weights from ``path``, or random weights if ``allow_random`` and no path.

    Returns the model and its weights source. Keys and shapes must match the architecture.
    """
    if path is None:
        if not allow_random:
            raise PipelineError(f"no weights file for {name}: set weights.{name} in the config to "
                                "torchvision's file, or weights.allow_random: true for a demo")
        return build(), RANDOM_SOURCE
    state, digest = load_state_dict_file(path)
    with torch.device("meta"):
        model = build()  # no random init: every tensor comes from the file
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as err:
        raise PipelineError(f"state dict does not fit torchvision's {name}: {err}", path) from err
    left = [key for key, value in [*model.named_parameters(), *model.named_buffers()] if value.is_meta]
    if left:
        raise PipelineError(f"state dict leaves {name} tensors unset: {', '.join(left[:5])}", path)
    return model, f"path:{Path(path).resolve()} sha256:{digest}"
