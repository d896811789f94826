"""Loading pretrained backbones from torchvision's own state-dict files at a configured path.

Weights cannot be downloaded on the study's machines, so the ``weights:`` section of config.yaml
names local files: torchvision's own, the ones ``PINNED`` lists (the one home for which file each
backbone must be, its URL and its hash). A file is checked before use: it exists, its SHA-256
starts with the hash in its name where torchvision's naming carries one (as ``torchvision``'s own
``check_hash`` does) *and* with the backbone's pinned prefix, ``torch.load`` reads it as a mapping
of tensors, and its keys and shapes fit the architecture exactly. Every failure is a
``PipelineError`` naming the file; a file of the right architecture but another release (e.g.
torchvision's MobileNetV2 IMAGENET1K_V2, ``mobilenet_v2-7ebf99e0.pth``) is refused, named.

Random weights only with ``allow_random`` (demo); the source is recorded either way as
``"path:<file> sha256:<hex>"`` or ``"random"`` for the checkpoint's provenance.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from pipeline.errors import PipelineError

__all__ = ["RANDOM_SOURCE", "TORCHVISION_URL", "PinnedFile", "PINNED", "OTHER_FILES", "sha256_file",
           "check_pinned", "load_state_dict_file", "load_pretrained"]

RANDOM_SOURCE = "random"
TORCHVISION_URL = "https://download.pytorch.org/models/"
# torchvision names its files <arch>-<first hex digits of the SHA-256>.pth
_HASH_IN_NAME = re.compile(r"-([a-f0-9]{6,})\.pth?$")


@dataclass(frozen=True)
class PinnedFile:
    """The torchvision file a backbone must be loaded from: ``file`` (<arch>-<hash prefix>.pth,
    at ``TORCHVISION_URL``), the torchvision weights it holds and why it is the thesis's."""

    file: str
    weights: str
    why: str

    @property
    def prefix(self) -> str:
        """The first hex digits of the file's SHA-256, as its name carries them."""
        return _HASH_IN_NAME.search(self.file).group(1)

    @property
    def url(self) -> str:
        return TORCHVISION_URL + self.file


# The thesis (2020-21) loaded torchvision's models with pretrained=True, which then meant these
# files (and since torchvision 0.13 means IMAGENET1K_V1 too).
PINNED: dict[str, PinnedFile] = {
    "vgg19": PinnedFile("vgg19-dcbb9e9d.pth", "VGG19_Weights.IMAGENET1K_V1",
                        "torchvision's pretrained=True VGG-19 (its only ImageNet weights)"),
    "mobilenet_v2": PinnedFile("mobilenet_v2-b0353104.pth", "MobileNet_V2_Weights.IMAGENET1K_V1",
                               "torchvision's pretrained=True MobileNetV2 in 2020-21, the thesis's"),
}
# Other torchvision files of the same architectures, named when one is refused.
OTHER_FILES: dict[str, dict[str, str]] = {
    "mobilenet_v2": {"7ebf99e0": "torchvision's MobileNet_V2_Weights.IMAGENET1K_V2 (mobilenet_v2-7ebf99e0.pth, "
                                 "a later training recipe), not the thesis's V1"},
}


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_pinned(name: str, path: str | Path, digest: str) -> None:
    """Refuse a file for backbone ``name`` whose SHA-256 ``digest`` is not the pinned file's."""
    pin = PINNED.get(name)
    if pin is None:
        raise PipelineError(f"no pinned torchvision file for {name!r}; pinned: {', '.join(PINNED)}", path)
    if digest.startswith(pin.prefix):
        return
    found = digest[:len(pin.prefix)]
    what = OTHER_FILES.get(name, {}).get(found, f"not a torchvision {name} file known here")
    raise PipelineError(f"{name} weights must be {pin.file} (torchvision's {pin.weights}, {pin.url}): "
                        f"SHA-256 prefix {pin.prefix} expected, {found} found: {what}", path)


def load_state_dict_file(path: str | Path, pinned: str | None = None) -> tuple[dict[str, torch.Tensor], str]:
    """The state dict in ``path`` and its SHA-256, checked as the module docstring says;
    ``pinned`` names the backbone whose ``PINNED`` file it must be."""
    path = Path(path)
    if not path.is_file():
        raise PipelineError("weights file not found", path)
    digest = sha256_file(path)
    named = _HASH_IN_NAME.search(path.name)
    if named and not digest.startswith(named.group(1)):
        raise PipelineError(f"SHA-256 {digest[:12]}... does not start with the {named.group(1)} in "
                            "the file's name: the file is corrupt or not the named one", path)
    if pinned is not None:
        check_pinned(pinned, path, digest)
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

    Returns the model and its weights source. The file must be ``PINNED[name]``
    (``allow_random`` does not relax this) and its keys and shapes must match the architecture.
    """
    if path is None:
        if not allow_random:
            raise PipelineError(f"no weights file for {name}: set weights.{name} in the config to "
                                "torchvision's file, or weights.allow_random: true for a demo")
        return build(), RANDOM_SOURCE
    state, digest = load_state_dict_file(path, pinned=name)
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
