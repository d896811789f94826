"""The packed file's schema: its groups, datasets, dtypes, attributes and compression codecs.

One HDF5 file per split (``results/data/{split}.h5``)::

    /                       attrs: schema, schema_version, split, frames, annotated_index,
                            snippet_count, resolutions, label_table, label_set, compression,
                            chunk_frames, provenance, complete
    /snippets/id            [N] str     snippet ids ``{city}_{seq:06d}_{annotated:06d}``
    /snippets/city          [N] str
    /flow_valid             [N, T] bool False at frame 0 (no previous frame), True elsewhere
    /{h}x{w}/frames         [N, T, h, w, 3] uint8  RGB, resized with cv2.INTER_AREA
    /{h}x{w}/labels         [N, T, h, w]    uint8  Cityscapes label ids, resized nearest
    /{h}x{w}/instances      [N, T, h, w]    uint16 labelId*1000+k on things, labelId elsewhere
    /{h}x{w}/flow           [N, T, h, w, 2] float16 (the flow stage's dtype) in pixels at
                            this size; flow[:, t] warps frame t-1 onto frame t; flow[:, 0] is 0

Every dataset is chunked ``(1, chunk_frames, h, w[, c])``: one frame per chunk by default, so a
frame or a window at any start reads exactly the chunks it needs, and stored with its array's
codec (``pack.compression``, one for all or one per array; the ``compression`` attribute is the
JSON mapping array -> codec). pipeline/pack/__init__.py has the measurements behind both.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import h5py
import hdf5plugin
import numpy as np

__all__ = [
    "SCHEMA", "SCHEMA_VERSION", "ARRAYS", "CODECS", "DEFAULT_COMPRESSION", "ROOT_ATTRS",
    "FLOW_DTYPES", "group_name", "parse_resolution", "codec_options", "array_codecs", "decode_attr",
    "instance_label_ids", "TRAINING_SPLITS",
]

SCHEMA = "pipeline.pack"
SCHEMA_VERSION = 1
FLOW_DTYPES = (np.dtype(np.float16), np.dtype(np.float32))     # the flow stage's, kept as it wrote them
# name -> (dtype, trailing channel shape); the leading shape is [N, T, h, w].
ARRAYS: dict[str, tuple[np.dtype, tuple[int, ...]]] = {
    "frames": (np.dtype(np.uint8), (3,)),
    "labels": (np.dtype(np.uint8), ()),
    "instances": (np.dtype(np.uint16), ()),
    "flow": (np.dtype(np.float16), (2,)),
}
# The splits (the ``split`` attribute) that are training data: the subset's train snippets, and the
# annotated frame of every train snippet (train.image_data's two choices). Training takes only
# these; synthesis, whose videos FVD and the warping error score, refuses them.
TRAINING_SPLITS = ("train", "gtfine_train")
ROOT_ATTRS = (
    "schema", "schema_version", "split", "frames", "annotated_index", "snippet_count",
    "resolutions", "label_table", "label_set", "compression", "chunk_frames", "provenance",
    "complete",
)

# Byte shuffle helps float16 flow (its exponent bytes repeat); for uint8 it is a no-op.
CODECS: dict[str, dict[str, Any]] = {
    "none": {},
    "lzf": {"compression": "lzf"},
    "gzip": {"compression": "gzip", "compression_opts": 1},
    "lz4": dict(hdf5plugin.LZ4()),
    "blosc-lz4": dict(hdf5plugin.Blosc(cname="lz4", clevel=5, shuffle=hdf5plugin.Blosc.SHUFFLE)),
    "zstd": dict(hdf5plugin.Zstd(clevel=3)),
    "blosc-zstd": dict(hdf5plugin.Blosc(cname="zstd", clevel=3, shuffle=hdf5plugin.Blosc.SHUFFLE)),
}


# pack.compression's default (as in workflow/schemas/config.schema.yaml), chosen by measurement.
DEFAULT_COMPRESSION: dict[str, str] = {"frames": "none", "labels": "lz4", "instances": "lz4", "flow": "none"}


def group_name(resolution: tuple[int, int] | list[int]) -> str:
    """``(256, 512)`` -> ``"256x512"``."""
    height, width = resolution
    return f"{int(height)}x{int(width)}"


def parse_resolution(resolution: str | tuple[int, int] | list[int]) -> tuple[int, int]:
    """``"256x512"``, ``(256, 512)`` or ``[256, 512]`` -> ``(256, 512)``."""
    if isinstance(resolution, str):
        height, _, width = resolution.partition("x")
        return int(height), int(width)
    height, width = resolution
    return int(height), int(width)


def codec_options(name: str) -> dict[str, Any]:
    """``create_dataset`` keyword arguments of a codec name."""
    if name not in CODECS:
        raise ValueError(f"unknown compression {name!r}; choose one of {', '.join(CODECS)}")
    return dict(CODECS[name])


def array_codecs(compression: str | Mapping[str, str]) -> dict[str, str]:
    """Each array's codec name from ``pack.compression``: one name for every array, or a mapping
    that names one for each of :data:`ARRAYS` (frames, labels, instances and flow compress so
    differently that the measured best differs per array: pipeline/pack/__init__.py)."""
    if isinstance(compression, str):
        chosen = dict.fromkeys(ARRAYS, compression)
    else:
        chosen = dict(compression)
        if set(chosen) != set(ARRAYS):
            raise ValueError(f"compression names arrays {sorted(chosen)}; name each of {', '.join(ARRAYS)}")
    for name in chosen.values():
        codec_options(name)
    return {array: chosen[array] for array in ARRAYS}


def decode_attr(value: Any) -> Any:
    """An attribute as Python: bytes to str, numpy scalars to Python scalars."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, h5py.Empty):
        return None
    return value


def instance_label_ids(instances: np.ndarray) -> np.ndarray:
    """The label id of each instance id: ``id // 1000`` on things, the id itself elsewhere."""
    return np.where(instances >= 1000, instances // 1000, instances)
