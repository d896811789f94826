"""reference_flow: the flow between every pair of consecutive frames of one split and city.

The thesis ran FlowNet2 inside every training step on the real frames (thesis-code.md section 6);
here it is computed once per city and stored. For each snippet, frames are resized (INTER_AREA)
to ``flow.height x flow.width``, the pairs (t-1, t) for t = 1..T-1 go through the backend in
batches of ``flow.batch_size`` (``--batch-size``), and the flows are written to
``results/flow/{split}/{city}.h5``:

- ``flow/{snippet_id}``: ``[T-1, H, W, 2]`` in pixels at the flow size, ``flow.dtype``; entry
  ``i`` warps frame ``i`` onto frame ``i + 1`` (:mod:`pipeline.flow.warp`'s convention; frame 0
  has none). Chunked one flow a chunk, gzip level 1 over byte shuffle (HDF5's built-in filters,
  so any h5py reads it without plugins).
- file attributes: ``convention``, ``backend``, ``weights_real``, ``height``, ``width``,
  ``dtype``, ``frames`` and ``provenance`` (JSON: settings, code version, packages, the
  backend's description with its checkpoint and hash).

Storage precision (``flow.dtype``, float16 by default): float16 keeps 11 significant bits, so
rounding moves a flow vector by at most ``2**-11`` of its length (0.016 px at 32 px, 0.03 px at
64 px). Measured on DIS flow of the synthetic city at 256x512 (``benchmarks/bench_flow.py``,
mean motion 5.4 px): mean rounding end-point error 9e-4 px (1.9e-4 of the mean flow length),
max 1.6e-2 px, at most 4.9e-4 of a vector's length. FlowNet2's own error is pixels and the flow
loss is an L1 on it, so this is nothing; and with gzip(1)+shuffle a pair takes 316 KiB instead
of 763 KiB (float32). float32 is there for a study that wants the backend's bits.

Usage: ``python -m pipeline.flow --subset results/data/subset/S.json --split S --city C
--frames-root ROOT --output results/flow/S/C.h5 --settings JSON --batch-size N`` (settings = config
``flow`` less ``batch_size``, which the rule passes as a resource: how the job runs, not the flow;
``pipeline.cli.read_batch_size``); the provenance records it.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from tqdm import tqdm

from pipeline.cli import (add_batch_size_argument, add_city_arguments, add_settings_arguments, read_batch_size,
                          read_settings, run_main)
from pipeline.data.cityscapes import Snippet, read_frame
from pipeline.data.subset import load_subset, subset_snippets
from pipeline.errors import PipelineError
from pipeline.flow.backends import CONVENTION, FlowBackend, make_backend
from pipeline.io import atomic_path, open_h5
from pipeline.pack.resize import resize_image
from pipeline.provenance import code_version, provenance

__all__ = ["load_frames", "snippet_flow", "write_city_flow", "reference_flow", "read_flow",
           "read_flow_attrs", "float16_rounding_error", "main"]

DTYPES = {"float16": np.float16, "float32": np.float32}


def load_frames(snippet: Snippet, height: int, width: int) -> np.ndarray:
    """The snippet's frames, RGB uint8 ``[T, height, width, 3]``, resized as the packed frames are."""
    return np.stack([resize_image(read_frame(path), (height, width)) for path in snippet.frame_paths])


def _batches(count: int, batch_size: int) -> Iterator[slice]:
    for start in range(0, count, batch_size):
        yield slice(start, min(start + batch_size, count))


def snippet_flow(backend: FlowBackend, frames: np.ndarray, batch_size: int | None,
                 progress: tqdm | None = None) -> np.ndarray:
    """Flow ``[T-1, H, W, 2]`` float32 of consecutive frames ``[T, H, W, 3]``: entry i is t = i+1.
    ``batch_size`` pairs go through the backend at once (None: all of them)."""
    flows = []
    for batch in _batches(len(frames) - 1, batch_size or max(len(frames) - 1, 1)):
        prev = frames[batch.start:batch.stop]
        nxt = frames[batch.start + 1:batch.stop + 1]
        flows.append(backend(prev, nxt))
        if progress is not None:
            progress.update(len(prev))
    height, width = frames.shape[1:3]
    return np.concatenate(flows) if flows else np.zeros((0, height, width, 2), np.float32)


def write_city_flow(snippets: Sequence[Snippet], backend: FlowBackend, settings: dict[str, Any],
                    output: str | Path, record: dict[str, Any], batch_size: int | None = None) -> None:
    """Compute every snippet's flow and write the city's HDF5 file atomically, ``batch_size`` pairs
    a backend call (None: the settings' ``batch_size``, else a snippet's pairs at once); the flow is
    the same whatever the batch."""
    height, width = int(settings["height"]), int(settings["width"])
    batch_size = _pairs_per_call(batch_size, settings)
    dtype_name = settings.get("dtype", "float16")
    if dtype_name not in DTYPES:
        raise PipelineError(f"flow.dtype must be one of {sorted(DTYPES)}, got {dtype_name!r}")
    total = sum(s.frames - 1 for s in snippets)
    with atomic_path(output, suffix=".h5") as tmp, h5py.File(tmp, "w") as file, \
            tqdm(total=total, unit="pair", desc=f"flow {Path(output).stem}", dynamic_ncols=True) as bar:
        _write_attrs(file, backend, height, width, dtype_name, snippets, record)
        group = file.create_group("flow")
        for snippet in snippets:
            flow = snippet_flow(backend, load_frames(snippet, height, width), batch_size, bar)
            dataset = group.create_dataset(
                snippet.id, data=flow.astype(DTYPES[dtype_name]), chunks=(1, height, width, 2),
                compression="gzip", compression_opts=1, shuffle=True)
            dataset.attrs["frame_numbers"] = np.asarray(snippet.frame_numbers[1:], dtype=np.int64)


def _write_attrs(file: h5py.File, backend: FlowBackend, height: int, width: int, dtype_name: str,
                 snippets: Sequence[Snippet], record: dict[str, Any]) -> None:
    file.attrs["convention"] = CONVENTION
    file.attrs["backend"] = backend.name
    file.attrs["weights_real"] = bool(backend.weights_real)
    file.attrs["height"] = height
    file.attrs["width"] = width
    file.attrs["dtype"] = dtype_name
    file.attrs["frames"] = snippets[0].frames if snippets else 0
    file.attrs["provenance"] = json.dumps(record, default=str)


def _pairs_per_call(batch_size: int | None, settings: dict[str, Any]) -> int | None:
    """The batch given, else the settings' own (a caller passing the whole flow section)."""
    return batch_size if batch_size is not None else settings.get("batch_size")


def reference_flow(subset_path: str | Path, split: str, city: str, output: str | Path,
                   settings: dict[str, Any], device: torch.device | str | None = None,
                   allow_random: bool = False, frames_root: str | Path | None = None,
                   batch_size: int | None = None) -> None:
    """The stage: flow for every snippet of ``split``/``city`` of the subset, into ``output``
    (frames from ``frames_root``, default the subset's root), ``batch_size`` pairs a backend call
    (None: the settings' ``batch_size``, else a snippet's pairs at once); the provenance records it."""
    batch_size = _pairs_per_call(batch_size, settings)
    snippets = subset_snippets(load_subset(subset_path, frames_root), split, city)
    backend = make_backend(settings, device=device, allow_random=allow_random)
    record = provenance("reference_flow", settings, code_version("pipeline.flow"), None,
                        split=split, city=city, subset=str(subset_path), backend=backend.describe(),
                        weights_real=backend.weights_real, batch_size=batch_size)
    write_city_flow(snippets, backend, settings, output, record, batch_size)


def _open(path: str | Path) -> h5py.File:
    return open_h5(path, "flow file", "run the reference_flow rule")


def read_flow(path: str | Path, snippet_id: str) -> np.ndarray:
    """The stored flow of one snippet, float32 ``[T-1, H, W, 2]`` (entry i: frame i -> i+1)."""
    with _open(path) as file:
        group = file.get("flow")
        if group is None or snippet_id not in group:
            held = 0 if group is None else len(group)
            raise PipelineError(f"no flow for snippet {snippet_id!r} (the file holds {held} snippets)", path)
        try:
            return np.asarray(group[snippet_id][()], dtype=np.float32)
        except (OSError, KeyError, ValueError) as err:
            raise PipelineError(f"flow of snippet {snippet_id!r} is unreadable ({err})", path) from err


def read_flow_attrs(path: str | Path) -> dict[str, Any]:
    """The file's attributes (convention, backend, weights_real, size, dtype, provenance)."""
    with _open(path) as file:
        attrs = {key: (value.item() if isinstance(value, np.generic) else value)
                 for key, value in file.attrs.items()}
    if "provenance" in attrs:
        attrs["provenance"] = json.loads(attrs["provenance"])
    return attrs


def float16_rounding_error(flow: np.ndarray) -> dict[str, float]:
    """The end-point error float16 storage adds to ``flow`` ``[..., 2]``, absolute and relative."""
    flow = np.asarray(flow, dtype=np.float32)
    rounded = flow.astype(np.float16).astype(np.float32)
    error = np.linalg.norm(rounded - flow, axis=-1)
    length = np.linalg.norm(flow, axis=-1)
    moving = length > 1e-3
    return {"mean_epe": float(error.mean()), "max_epe": float(error.max()),
            "mean_length": float(length.mean()),
            "mean_relative": float(error.mean() / max(length.mean(), 1e-12)),
            "max_relative": float((error[moving] / length[moving]).max()) if moving.any() else 0.0}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipeline.flow", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_city_arguments(parser)
    parser.add_argument("--output", required=True, help="results/flow/{split}/{city}.h5")
    add_batch_size_argument(parser, "frame pairs", "flow.batch_size")
    add_settings_arguments(parser)
    args = parser.parse_args(argv)
    settings = read_settings(args, lambda config: config["flow"])
    reference_flow(args.subset, args.split, args.city, args.output, settings, frames_root=args.frames_root,
                   batch_size=read_batch_size(args.batch_size, settings, "flow.batch_size"))


if __name__ == "__main__":
    run_main(main)
