"""Reference-flow backends behind one interface: FlowNet2 (ptlflow) and OpenCV's DIS.

Every backend takes two batches of RGB uint8 frames ``[B, H, W, 3]`` (frame t-1, frame t) and
returns float32 flow ``[B, H, W, 2]`` in pixels, channel 0 horizontal, in the convention of
:mod:`pipeline.flow.warp`: the flow at a pixel of frame t points to where frame t-1 is sampled,
so ``warp(frame_{t-1}, flow) ~= frame_t``. That is the flow *from* frame t *to* frame t-1, which
is how vid2vid and the thesis call FlowNet2, ``flow(current, previous)`` (thesis-code.md
section 6; networks.md, FlowNet2).

- ``flownet2``: the full FlowNet2 (Ilg et al., CVPR 2017; FlowNetC + 2 x FlowNetS + FlowNetSD +
  fusion, 162.5 M parameters) from ptlflow 0.4.2. ptlflow's models take
  ``{'images': [B, 2, 3, H, W]}``, BGR in [0, 1], and return ``flows`` ``[B, 1, 2, H, W]`` that
  map pixels of image 0 into image 1 (``FlowNet2.warp`` samples image 1 back onto image 0), so
  image 0 is frame t and image 1 is frame t-1. FlowNet2 subtracts each image's mean itself
  (``rgb_max = 1``), resizes to the next multiple of its stride 64 (bilinear) and scales the
  flow back to the input size. The checkpoint is ptlflow's format (a dict with ``state_dict``),
  a local file, or one of ptlflow's checkpoint names (``things``) where the machine can download.
- ``dis``: Kroeger et al., "Fast Optical Flow using Dense Inverse Search" (ECCV 2016), OpenCV's
  ``DISOpticalFlow`` on grayscale frames, no weights. Preset MEDIUM (finest scale 1, 8x8
  patches, variational refinement) was chosen for quality over ULTRAFAST/FAST; OpenCV computes
  ``I0(x) ~= I1(x + flow)``, so it is called as ``calc(frame_t, frame_{t-1})``. It runs on the
  CPU and is deterministic.
"""

from __future__ import annotations

import abc
import hashlib
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from pipeline.errors import PipelineError
from pipeline.flow.convention import CONVENTION   # lives without torch so the pack stage can check it

__all__ = ["CONVENTION", "FlowBackend", "DISBackend", "FlowNet2Backend", "BACKENDS", "make_backend",
           "check_checkpoint", "default_device"]


def default_device() -> torch.device:
    """The device a run uses: chosen once, CUDA where available, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class FlowBackend(abc.ABC):
    """Flow from batches of (frame t-1, frame t), in :mod:`pipeline.flow.warp`'s convention."""

    name: str = ""
    weights_real: bool = True

    def __call__(self, prev_rgb: np.ndarray, next_rgb: np.ndarray) -> np.ndarray:
        """``prev_rgb``, ``next_rgb``: uint8 ``[B, H, W, 3]``; returns float32 ``[B, H, W, 2]``."""
        _check_pair(prev_rgb, next_rgb)
        flow = self.compute(prev_rgb, next_rgb)
        return np.ascontiguousarray(flow, dtype=np.float32)

    @abc.abstractmethod
    def compute(self, prev_rgb: np.ndarray, next_rgb: np.ndarray) -> np.ndarray:
        """The backend's work on checked inputs."""

    @abc.abstractmethod
    def describe(self) -> dict[str, Any]:
        """Provenance: backend, settings, weights (file, hash, real or random)."""


def _check_pair(prev_rgb: np.ndarray, next_rgb: np.ndarray) -> None:
    for name, batch in (("prev_rgb", prev_rgb), ("next_rgb", next_rgb)):
        if batch.dtype != np.uint8 or batch.ndim != 4 or batch.shape[-1] != 3:
            raise ValueError(f"{name} must be uint8 [B, H, W, 3], got {batch.dtype} {batch.shape}")
    if prev_rgb.shape != next_rgb.shape:
        raise ValueError(f"frame batches differ in shape: {prev_rgb.shape} vs {next_rgb.shape}")


class DISBackend(FlowBackend):
    """OpenCV's Dense Inverse Search optical flow (weight-free), on grayscale frames."""

    name = "dis"
    weights_real = True     # no weights at all: nothing random about it
    PRESETS = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
               "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
               "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}

    def __init__(self, preset: str = "medium"):
        if preset not in self.PRESETS:
            raise ValueError(f"unknown DIS preset {preset!r}; one of {sorted(self.PRESETS)}")
        self.preset = preset
        self._dis = cv2.DISOpticalFlow_create(self.PRESETS[preset])

    def compute(self, prev_rgb: np.ndarray, next_rgb: np.ndarray) -> np.ndarray:
        flows = []
        for prev, nxt in zip(prev_rgb, next_rgb):
            gray_prev = cv2.cvtColor(prev, cv2.COLOR_RGB2GRAY)
            gray_next = cv2.cvtColor(nxt, cv2.COLOR_RGB2GRAY)
            # calc(I0, I1) gives I0(x) ~= I1(x + flow): I0 = frame t, I1 = frame t-1.
            flows.append(self._dis.calc(gray_next, gray_prev, None))
        return np.stack(flows)

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "method": "cv2.DISOpticalFlow", "preset": self.preset,
                "opencv": cv2.__version__, "weights": None, "weights_real": True}


class FlowNet2Backend(FlowBackend):
    """FlowNet2 from ptlflow, loaded from a checkpoint in ptlflow's format (or random weights)."""

    name = "flownet2"
    MODEL = "flownet2"

    def __init__(self, checkpoint: str | Path | None, device: torch.device | str | None = None,
                 allow_random: bool = False, seed: int = 0):
        import ptlflow  # imported here: it pulls in lightning and takes seconds

        self.device = torch.device(device) if device is not None else default_device()
        self.checkpoint = None if checkpoint is None else str(checkpoint)
        self.checkpoint_sha256: str | None = None
        if self.checkpoint is None:
            if not allow_random:
                raise PipelineError("flow.checkpoint is not set: FlowNet2 needs a checkpoint file in "
                                    "ptlflow's format (a dict with 'state_dict'), or use flow.backend: dis")
            torch.manual_seed(seed)   # random weights only for timing and tests, recorded as such
            model = ptlflow.get_model(self.MODEL)
            self.weights_real = False
        else:
            model = self._load(ptlflow, self.checkpoint)
            self.weights_real = True
        self.seed = None if self.weights_real else seed
        self.model = model.eval().to(self.device)

    def _load(self, ptlflow: Any, checkpoint: str) -> torch.nn.Module:
        path = Path(checkpoint)
        names = ptlflow.get_model_reference(self.MODEL).pretrained_checkpoints
        if not path.exists():
            if checkpoint in names:   # a ptlflow name: downloads where the machine is online
                try:
                    return ptlflow.get_model(self.MODEL, ckpt_path=checkpoint)
                except Exception as err:  # noqa: BLE001 - any download failure is reported the same
                    raise PipelineError(f"could not fetch ptlflow checkpoint {checkpoint!r} "
                                        f"({type(err).__name__}: {err}); download it and give the "
                                        f"file path", checkpoint) from err
            raise PipelineError(f"FlowNet2 checkpoint file not found (flow.checkpoint; ptlflow "
                                f"names: {sorted(names)})", path)
        check_checkpoint(path, self._expected_shapes(ptlflow))
        self.checkpoint_sha256 = _sha256(path)
        return ptlflow.get_model(self.MODEL, ckpt_path=str(path))

    def _expected_shapes(self, ptlflow: Any) -> dict[str, tuple[int, ...]]:
        # On the meta device the model costs no memory and no initialisation time.
        with torch.device("meta"):
            reference = ptlflow.get_model(self.MODEL)
        return {key: tuple(value.shape) for key, value in reference.state_dict().items()}

    @torch.inference_mode()
    def compute(self, prev_rgb: np.ndarray, next_rgb: np.ndarray) -> np.ndarray:
        # image 0 = frame t, image 1 = frame t-1: ptlflow's flow maps image 0 into image 1.
        pair = np.stack([next_rgb, prev_rgb], axis=1)[..., ::-1]            # RGB -> BGR
        images = torch.from_numpy(np.ascontiguousarray(pair)).to(self.device)
        images = images.permute(0, 1, 4, 2, 3).float().div_(255.0)          # [B, 2, 3, H, W]
        flows = self.model({"images": images})["flows"][:, 0]              # [B, 2, H, W]
        return flows.permute(0, 2, 3, 1).float().cpu().numpy()

    def describe(self) -> dict[str, Any]:
        import ptlflow

        return {"backend": self.name, "method": "ptlflow flownet2", "ptlflow": ptlflow.__version__,
                "weights": self.checkpoint, "weights_sha256": self.checkpoint_sha256,
                "weights_real": self.weights_real, "random_seed": self.seed,
                "device": str(self.device)}


def check_checkpoint(path: str | Path, expected: dict[str, tuple[int, ...]]) -> None:
    """Raise a PipelineError naming ``path`` unless it is ptlflow's format and fits ``expected``.

    ``expected`` maps state-dict keys to shapes. The message lists the first missing,
    unexpected and wrongly shaped keys, so a checkpoint of another model is recognisable.
    """
    path = Path(path)
    checkpoint = _load_tensors(path)
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("state_dict"), dict):
        found = sorted(map(str, checkpoint))[:5] if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise PipelineError(f"not a ptlflow checkpoint: expected a dict with 'state_dict', found {found}", path)
    state = checkpoint["state_dict"]
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    wrong = [f"{key} {tuple(state[key].shape)} != {shape}" for key, shape in expected.items()
             if key in state and tuple(getattr(state[key], "shape", ())) != shape]
    if missing or unexpected or wrong:
        parts = [f"{label} ({len(items)}): {', '.join(items[:3])}{', ...' if len(items) > 3 else ''}"
                 for label, items in (("missing keys", missing), ("unexpected keys", unexpected),
                                      ("wrong shapes", wrong)) if items]
        raise PipelineError("checkpoint does not fit ptlflow's flownet2: " + "; ".join(parts), path)


def _load_tensors(path: Path) -> Any:
    """``torch.load`` without code execution; memory-mapped where the file allows it."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 - old (non-zip) files cannot be mapped: read them whole
        pass
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises many types for a bad file
        raise PipelineError(f"not a readable torch checkpoint ({type(err).__name__}: {err})", path) from err


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


BACKENDS = {"dis": DISBackend, "flownet2": FlowNet2Backend}


def make_backend(settings: dict[str, Any], device: torch.device | str | None = None,
                 allow_random: bool = False) -> FlowBackend:
    """The backend named by ``settings['backend']`` (config ``flow``), ready to run.

    ``allow_random`` lets FlowNet2 run without a checkpoint (timing and tests only); its
    ``weights_real`` is then False and every output says so.
    """
    name = settings.get("backend", "flownet2")
    if name == "dis":
        return DISBackend()
    if name == "flownet2":
        return FlowNet2Backend(settings.get("checkpoint"), device=device, allow_random=allow_random)
    raise PipelineError(f"unknown flow.backend {name!r}; one of {sorted(BACKENDS)}")
