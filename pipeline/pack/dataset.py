"""Training datasets over a packed file: single frames and windows of consecutive frames.

- :class:`FrameDataset`: one frame a sample, for the image variants. The thesis trained them on
  the annotated gtFine frames (thesis-code.md section 2), so ``frames='annotated'`` (default)
  yields frame ``annotated_index`` of each snippet; ``frames='all'`` yields every frame.
- :class:`WindowDataset`: ``window`` consecutive frames of a snippet, for the video variants
  (thesis-code.md section 6: 6 frames of 30, +1 with flow, one random window per snippet per
  epoch). The start is drawn from ``(seed, stage, epoch, index)``, so a sample does not depend on the
  worker that loads it; every start 0..T-window is possible (the thesis's ``int(rand*(30-N))``
  never drew the last one). ``start=`` fixes it instead (validation, synthesis).

A sample is a dict (window samples have a leading ``[k]`` dimension on every array)::

    image       float32 [.., 3, H, W] in [0, 1]
    labels      float32 [.., C, H, W] one-hot via ``channel_lut(label_set)``
    label_ids   uint8   [.., H, W]    Cityscapes label ids
    instances   int32   [.., H, W]    Cityscapes instance ids
    edge        float32 [.., 1, H, W] ``pipeline.models.edges.edge_map(instances)``
    flow        float32 [.., 2, H, W] pixels, flow[t] warps frame t-1 onto frame t
    flow_valid  bool    [..]          False at frame 0 (its flow is zero)
    snippet     str, city str, snippet_index int, frame int (window: int64 [k])

The HDF5 file is opened lazily in the process that reads (each DataLoader worker opens its
own handle; no worker_init_fn needed). ``expand=False`` returns the compact arrays as stored
(image uint8 [.., H, W, 3], flow [.., H, W, 2], no one-hot or edge): at 512x1024 a float
one-hot alone is 40 MB a frame, so a trainer may rather collate compact samples and call
:func:`expand` on the GPU, which gives the same dict.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from pipeline.data.labels import channel_lut, num_channels
from pipeline.errors import PipelineError
from pipeline.models.edges import edge_map
from pipeline.pack.schema import ARRAYS, decode_attr, group_name, parse_resolution
from pipeline.pack.verify import open_packed, read_snippet

__all__ = ["PackedFile", "FrameDataset", "WindowDataset", "expand", "window_start"]

# Stored array name -> sample key.
SAMPLE_KEYS = {"frames": "image", "labels": "label_ids", "instances": "instances", "flow": "flow"}


class PackedFile:
    """A packed file's metadata and arrays at one resolution, opened lazily once per process.

    ``in_memory=True`` reads every array into memory at construction (small data, benchmarks);
    reads are then plain array copies.
    """

    def __init__(self, path: str | Path, resolution: str | tuple[int, int] | list[int],
                 in_memory: bool = False):
        self.path = Path(path)
        self.resolution = parse_resolution(resolution)
        self.group = group_name(self.resolution)
        with open_packed(self.path) as file:
            attrs = {key: decode_attr(value) for key, value in file.attrs.items()}
            if not attrs.get("complete"):
                raise PipelineError("not a complete packed file (check it: python -m pipeline.pack --verify)",
                                    self.path)
            packed = [tuple(int(v) for v in r) for r in np.asarray(attrs["resolutions"]).reshape(-1, 2)]
            if self.resolution not in packed:
                raise PipelineError(f"no resolution {self.group} in this file; it holds "
                                    f"{', '.join(group_name(r) for r in packed)}", self.path)
            self.snippets = [_text(s) for s in file["snippets/id"][()]]
            self.cities = [_text(c) for c in file["snippets/city"][()]]
            self.flow_valid = file["flow_valid"][()]
            self._memory = ({name: _load(file[f"{self.group}/{name}"], self.path) for name in ARRAYS}
                            if in_memory else None)
        self.frames = int(attrs["frames"])
        self.split = attrs.get("split")
        self.annotated_index = int(attrs["annotated_index"])
        self.label_set = str(attrs["label_set"])
        self.provenance: dict[str, Any] = json.loads(attrs["provenance"])   # labellers, weights, sources
        self._file: h5py.File | None = None
        self._pid: int | None = None
        self._open: dict[str, h5py.Dataset] = {}

    def __len__(self) -> int:
        return len(self.snippets)

    def read(self, snippet: int, first: int, stop: int) -> dict[str, np.ndarray]:
        """Frames ``first..stop-1`` of a snippet, compact (as stored)."""
        if self._memory is not None:
            arrays = {name: self._memory[name][snippet, first:stop].copy() for name in ARRAYS}
        else:
            arrays = {name: read_snippet(dataset, self.path, snippet, slice(first, stop))
                      for name, dataset in self._datasets().items()}
        return arrays

    def _datasets(self) -> dict[str, h5py.Dataset]:
        """This process's open datasets; kept, since an h5py lookup by name costs more than a read."""
        # A handle opened before a fork shares the parent's HDF5 state: reopen in each process.
        if self._file is None or self._pid != os.getpid():
            self._file = open_packed(self.path)
            self._pid = os.getpid()
            self._open = {name: self._file[f"{self.group}/{name}"] for name in ARRAYS}
        return self._open

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_file"], state["_pid"], state["_open"] = None, None, {}
        return state


def _load(dataset: h5py.Dataset, path: Path) -> np.ndarray:
    """A whole packed dataset, read a snippet at a time so that a corrupt chunk's error names its
    snippet (``read_snippet``); chunks hold one snippet's frames, so this reads each chunk once."""
    array = np.empty(dataset.shape, dataset.dtype)
    for index in range(len(dataset)):
        array[index] = read_snippet(dataset, path, index)
    return array


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def window_start(seed: int, epoch: int, index: int, frames: int, window: int, stage: int = 0) -> int:
    """The first frame of sample ``index``'s window in ``epoch`` of training stage ``stage``:
    uniform over 0..frames-window. The stage is part of the key so that a CRN's second stage,
    whose epochs count from 0 again, does not replay the first stage's windows."""
    return int(np.random.default_rng((seed, stage, epoch, index)).integers(0, frames - window + 1))


def compact_sample(arrays: dict[str, np.ndarray], flow_valid: np.ndarray) -> dict[str, torch.Tensor]:
    """Stored arrays as tensors under the sample keys (instances widened to int32)."""
    sample = {SAMPLE_KEYS[name]: torch.from_numpy(np.ascontiguousarray(array))
              for name, array in arrays.items()}
    sample["instances"] = sample["instances"].to(torch.int32)
    sample["flow_valid"] = torch.as_tensor(np.asarray(flow_valid, dtype=bool))
    return sample


def expand(compact: dict[str, Any], label_set: str) -> dict[str, Any]:
    """The full sample from a compact one (or a collated batch), on the tensors' device.

    Image to float [.., 3, H, W] in [0, 1], one-hot labels, edge map, flow to float [.., 2, H, W];
    other entries pass through.
    """
    sample = dict(compact)
    image = compact["image"]
    sample["image"] = _float_empty((*image.shape[:-3], 3, *image.shape[-3:-1]), image.device)
    sample["image"].copy_(image.movedim(-1, -3)).div_(255.0)
    sample["labels"] = _one_hot(compact["label_ids"], label_set)
    instances = compact["instances"]
    height, width = instances.shape[-2:]
    edges = edge_map(instances.reshape(-1, height, width))
    sample["edge"] = edges.reshape(*instances.shape[:-2], 1, height, width)
    flow = compact["flow"]
    sample["flow"] = _float_empty((*flow.shape[:-3], 2, *flow.shape[-3:-1]), flow.device)
    sample["flow"].copy_(flow.movedim(-1, -3))
    return sample


def _float_empty(shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """An uninitialised float32 tensor; on the CPU allocated by numpy.

    Most of an expanded sample's cost on a CPU is the kernel handing out fresh pages (a 512x1024
    one-hot is 40 MB); numpy asks for huge pages on large arrays (madvise), torch's allocator
    does not, which made touching fresh memory about 4x slower through torch here.
    """
    if device.type == "cpu":
        return torch.from_numpy(np.empty(shape, dtype=np.float32))
    return torch.empty(shape, dtype=torch.float32, device=device)


def _one_hot(label_ids: torch.Tensor, label_set: str, use_numpy: bool | None = None) -> torch.Tensor:
    """Float one-hot [.., C, H, W]; ids whose channel is -1 (``train19``) give all-zero pixels.

    ``use_numpy`` (default: on the CPU) picks the numpy path, several times faster than torch's
    on one CPU thread (a compare written straight into numpy-allocated float output, see
    :func:`_float_empty`); both give the same tensor.
    """
    lut = channel_lut(label_set)
    channels = num_channels(label_set)
    lut8 = np.where(lut < 0, 255, lut).astype(np.uint8)
    shape = (*label_ids.shape[:-2], channels, *label_ids.shape[-2:])
    if use_numpy is None:
        use_numpy = label_ids.device.type == "cpu"
    if use_numpy:
        channel = np.take(lut8, label_ids.numpy())[..., None, :, :]
        one_hot = np.empty(shape, dtype=np.float32)
        np.equal(channel, np.arange(channels, dtype=np.uint8).reshape(channels, 1, 1), out=one_hot,
                 casting="unsafe")
        return torch.from_numpy(one_hot)
    channel = torch.from_numpy(lut8).to(label_ids.device)[label_ids.long()].unsqueeze(-3)
    ladder = torch.arange(channels, dtype=torch.uint8, device=label_ids.device).view(channels, 1, 1)
    return (channel == ladder).to(torch.float32)


class _PackedDataset(Dataset):
    def __init__(self, path: str | Path, resolution: str | tuple[int, int] | list[int],
                 label_set: str | None, expand: bool, in_memory: bool):
        self.packed = PackedFile(path, resolution, in_memory=in_memory)
        self.label_set = label_set or self.packed.label_set
        num_channels(self.label_set)   # an unknown label set fails here, not in a worker
        self.expand = expand

    def _sample(self, snippet: int, first: int, stop: int, window: bool) -> dict[str, Any]:
        arrays = self.packed.read(snippet, first, stop)
        valid = self.packed.flow_valid[snippet, first:stop]
        if not window:
            arrays = {name: array[0] for name, array in arrays.items()}
            valid = valid[0]
        sample = compact_sample(arrays, valid)
        if self.expand:
            sample = expand(sample, self.label_set)
        sample["snippet"] = self.packed.snippets[snippet]
        sample["city"] = self.packed.cities[snippet]
        sample["snippet_index"] = snippet
        sample["frame"] = torch.arange(first, stop) if window else first
        return sample


class FrameDataset(_PackedDataset):
    """Single frames of a packed file at one resolution (image variants).

    ``frames='annotated'``: the annotated (gtFine) frame of each snippet; ``'all'``: every frame,
    index ``i`` being frame ``i % T`` of snippet ``i // T``.
    """

    def __init__(self, path: str | Path, resolution: str | tuple[int, int] | list[int] = (256, 512),
                 label_set: str | None = None, frames: str = "annotated", expand: bool = True,
                 in_memory: bool = False):
        if frames not in ("annotated", "all"):
            raise ValueError(f"frames must be 'annotated' or 'all', got {frames!r}")
        super().__init__(path, resolution, label_set, expand, in_memory)
        self.frames = frames

    def __len__(self) -> int:
        per_snippet = 1 if self.frames == "annotated" else self.packed.frames
        return len(self.packed) * per_snippet

    def locate(self, index: int) -> tuple[int, int]:
        """(snippet, frame) of sample ``index``."""
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} outside 0..{len(self) - 1}")
        if self.frames == "annotated":
            return index, self.packed.annotated_index
        return divmod(index, self.packed.frames)

    def __getitem__(self, index: int) -> dict[str, Any]:
        snippet, frame = self.locate(index)
        return self._sample(snippet, frame, frame + 1, window=False)


class WindowDataset(_PackedDataset):
    """Windows of ``window`` consecutive frames, one per snippet, at a start drawn per epoch.

    The start of sample ``i`` is ``window_start(seed, epoch, i, T, window, stage)`` unless ``start``
    fixes it. Call ``set_epoch(epoch, stage)`` before each epoch (the DataLoader copies the dataset
    into its workers at each new iterator, so leave ``persistent_workers`` off).
    """

    def __init__(self, path: str | Path, resolution: str | tuple[int, int] | list[int] = (256, 512),
                 window: int = 6, label_set: str | None = None, seed: int = 0, start: int | None = None,
                 expand: bool = True, in_memory: bool = False):
        super().__init__(path, resolution, label_set, expand, in_memory)
        if window < 1:
            raise ValueError(f"window must be at least 1, got {window}")
        if window > self.packed.frames:       # a file packed for another variant (gtfine_train) or frame count
            frames, split = self.packed.frames, self.packed.split
            held = f"{frames} frame{'s' if frames != 1 else ''} a snippet"
            raise PipelineError(f"holds {held}{f' (split {split!r})' if split is not None else ''}, too few "
                                f"for the window of {window} consecutive frames asked of it", self.packed.path)
        if start is not None and not 0 <= start <= self.packed.frames - window:
            raise ValueError(f"start must be 0..{self.packed.frames - window} for a window of {window}")
        self.window, self.seed, self.start, self.epoch, self.stage = window, seed, start, 0, 0

    def set_epoch(self, epoch: int, stage: int = 0) -> None:
        self.epoch, self.stage = int(epoch), int(stage)

    def __len__(self) -> int:
        return len(self.packed)

    def window_start(self, index: int) -> int:
        if self.start is not None:
            return self.start
        return window_start(self.seed, self.epoch, index, self.packed.frames, self.window, self.stage)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} outside 0..{len(self) - 1}")
        first = self.window_start(index)
        return self._sample(index, first, first + self.window, window=True)
