"""The videos file shared by the synthesize stage, the real-video extraction and the FVD stage.

An HDF5 file with one dataset ``videos``: uint8 ``[N, T, H, W, 3]`` (RGB; N = batches x
batch_size, T = frames) and an attribute ``provenance`` holding the writer's record as JSON.
Torch-free and TensorFlow-free, so both sides of the process boundary read it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from pipeline.errors import PipelineError
from pipeline.io import atomic_path, open_h5

__all__ = ["DATASET", "write_videos", "write_video_stream", "read_videos", "read_videos_header", "read_video_rows",
           "video_batches"]

DATASET = "videos"


def _check_layout(dtype: np.dtype, shape: tuple[int, ...], path: str | Path) -> None:
    if dtype != np.uint8:
        raise PipelineError(f"videos must be uint8, got {dtype}", path)
    if len(shape) != 5 or shape[-1] != 3:
        raise PipelineError(f"videos must be [N, T, H, W, 3], got shape {list(shape)}", path)


def write_videos(path: str | Path, array: np.ndarray, provenance: dict[str, Any]) -> None:
    """Write uint8 videos ``[N, T, H, W, 3]`` and their provenance to ``path``, atomically.

    Chunked one video a chunk, so the FVD stage can read a batch without the whole file.
    """
    array = np.asarray(array)
    _check_layout(array.dtype, array.shape, path)
    write_video_stream(path, iter(array), len(array), lambda: provenance)


def write_video_stream(path: str | Path, videos: Iterator[np.ndarray], count: int,
                       provenance: Callable[[], dict[str, Any]]) -> None:
    """Write ``count`` uint8 videos ``[T, H, W, 3]`` as they come, atomically: a set too large for
    memory (the draw candidates). ``provenance()`` is called after the last video."""
    with atomic_path(path, suffix=".h5") as tmp:
        with h5py.File(tmp, "w") as handle:
            dataset = None
            for index, video in enumerate(videos):
                video = np.asarray(video)
                _check_layout(video.dtype, (count, *video.shape), path)
                if dataset is None:
                    dataset = handle.create_dataset(DATASET, shape=(count, *video.shape), dtype=np.uint8,
                                                    chunks=(1, *video.shape))
                dataset[index] = video
            if dataset is None or index + 1 != count:
                raise PipelineError(f"{0 if dataset is None else index + 1} videos written, {count} expected", path)
            handle.attrs["provenance"] = json.dumps(provenance(), default=str)


def _open(path: Path) -> h5py.File:
    return open_h5(path, "videos file")


def read_videos(path: str | Path) -> tuple[np.ndarray, dict[str, Any]]:
    """Read ``(videos uint8 [N, T, H, W, 3], provenance dict)``; a clear error for a bad file."""
    path = Path(path)
    with _open(path) as handle:
        try:
            array = _dataset(handle, path)[()]
        except OSError as err:
            raise PipelineError(f"dataset '{DATASET}' cannot be read ({err})", path) from err
        provenance = _parse_provenance(handle.attrs.get("provenance"), path)
    _check_layout(array.dtype, array.shape, path)
    return array, provenance


def read_videos_header(path: str | Path) -> tuple[tuple[int, ...], dict[str, Any]]:
    """``(shape [N, T, H, W, 3], provenance)`` of a videos file, without reading its pixels."""
    path = Path(path)
    with _open(path) as handle:
        dataset = _dataset(handle, path)
        _check_layout(dataset.dtype, dataset.shape, path)
        return tuple(dataset.shape), _parse_provenance(handle.attrs.get("provenance"), path)


def read_video_rows(path: str | Path, start: int, stop: int) -> np.ndarray:
    """Videos ``start``..``stop - 1`` of a file, without reading the others (the report shows a few)."""
    path = Path(path)
    with _open(path) as handle:
        dataset = _dataset(handle, path)
        try:
            return dataset[start:stop]
        except OSError as err:
            raise PipelineError(f"videos {start}..{stop - 1} cannot be read ({err})", path) from err


def video_batches(path: str | Path, batch_size: int) -> Iterator[np.ndarray]:
    """The videos of a file in consecutive batches of ``batch_size`` (the last may be smaller).

    Reads one batch at a time: the thesis's 128 videos of 16 frames at 256x512 are 800 MB.
    """
    path = Path(path)
    with _open(path) as handle:
        dataset = _dataset(handle, path)
        for start in range(0, dataset.shape[0], batch_size):
            try:
                yield dataset[start:start + batch_size]
            except OSError as err:
                raise PipelineError(f"videos {start}.. cannot be read ({err})", path) from err


def _dataset(handle: h5py.File, path: Path) -> h5py.Dataset:
    if not isinstance(handle.get(DATASET), h5py.Dataset):
        raise PipelineError(f"no dataset '{DATASET}' in the file", path)
    return handle[DATASET]


def _parse_provenance(raw: Any, path: Path) -> dict[str, Any]:
    if raw is None:
        raise PipelineError("the videos file has no 'provenance' attribute", path)
    try:
        return json.loads(raw)
    except (TypeError, json.JSONDecodeError) as err:
        raise PipelineError(f"the 'provenance' attribute is not JSON ({err})", path) from err
