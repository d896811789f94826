"""The embeddings file between the embed stage (TensorFlow) and the score stage (NumPy).

A ``.npz`` with one float32 array ``[N, 400]`` per crop, named by the crop (``left``,
``center``, ``right``), and ``provenance``: the embed stage's record as a JSON string (which
I3D, its width, the videos' own provenance). No pickles, so it loads with ``allow_pickle=False``.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import PipelineError
from pipeline.io import atomic_path

__all__ = ["write_embeddings", "read_embeddings"]

PROVENANCE_KEY = "provenance"


def write_embeddings(path: str | Path, per_crop: dict[str, np.ndarray], provenance: dict[str, Any]) -> None:
    """Write ``{crop: float32 [N, D]}`` and the provenance record to ``path`` atomically."""
    arrays = {name: np.asarray(values, dtype=np.float32) for name, values in per_crop.items()}
    if PROVENANCE_KEY in arrays:
        raise ValueError(f"'{PROVENANCE_KEY}' cannot be a crop name")
    with atomic_path(path, suffix=".npz") as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays, **{PROVENANCE_KEY: np.array(json.dumps(provenance, default=str))})


def read_embeddings(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read ``({crop: float32 [N, D]}, provenance)``; a clear error for a missing or bad file."""
    path = Path(path)
    if not path.is_file():
        raise PipelineError("embeddings file not found", path)
    try:
        with np.load(path, allow_pickle=False) as data:
            contents = {name: data[name] for name in data.files}
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise PipelineError(f"not a readable embeddings .npz ({err})", path) from err
    if PROVENANCE_KEY not in contents:
        raise PipelineError(f"no '{PROVENANCE_KEY}' entry: not written by pipeline.fvd.embed", path)
    try:
        provenance = json.loads(str(contents.pop(PROVENANCE_KEY)))
    except json.JSONDecodeError as err:
        raise PipelineError(f"the provenance entry is not JSON ({err})", path) from err
    for name, values in contents.items():
        if values.ndim != 2 or not np.all(np.isfinite(values)):
            raise PipelineError(f"crop '{name}' is not a finite [N, D] array (shape {list(values.shape)})", path)
    return contents, provenance
