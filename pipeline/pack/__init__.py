"""pack: the HDF5 writer, verifier and reader, and the training datasets (one file per split).

:mod:`~pipeline.pack.schema` is the file's layout, :mod:`~pipeline.pack.writer` what is packed
from the label and flow stages, :mod:`~pipeline.pack.verify` the check, and
:mod:`~pipeline.pack.dataset` the torch datasets. ``python -m pipeline.pack`` runs the stage.

Layout, chosen by measurement (``benchmarks/bench_pack.py``; one thread of a shared 2-core
machine under a load of about 8, so absolute times are slow and ratios are what to read):

Chunks: one frame a chunk (``pack.chunk_frames: 1``). Training reads one frame (image
variants) or a window of consecutive frames at a random start (video variants); with one-frame
chunks either reads exactly what it uses, while 6-frame chunks make a random 6-frame window
straddle two chunks and decode twice the data: 15.5 ms against 29.2 ms a window at 512x1024.

Codec (size: raw / stored per array; MiB a frame for all four arrays; read: the four arrays of
one frame; "textured": photo-like frames drawn at 1024x2048 and shrunk, PNG stores them 2.4x
smaller, as Cityscapes' frames; "synthetic": the synthetic city's rendered frames and truth)::

    data               codec       frames  labels   inst   flow  MiB/frame  read ms
    textured 256x512   none         1.00x     1x      1x  1.00x     1.250     0.15
    textured 256x512   lzf          1.10x    25x     38x  1.20x     0.769     2.44
    textured 256x512   gzip         1.28x    46x     63x  1.38x     0.662     5.90
    textured 256x512   lz4          1.03x   101x    183x  1.20x     0.782     0.31
    textured 256x512   blosc-lz4    1.01x   100x    122x  1.72x     0.666     0.40
    textured 256x512   zstd         1.13x    82x    279x  1.35x     0.706     1.40
    textured 256x512   blosc-zstd   1.19x    76x    117x  1.95x     0.575     1.40
    textured 512x1024  none         1.00x     1x      1x  1.00x     5.000     0.92
    textured 512x1024  lzf          1.09x    39x     58x  1.21x     3.053    19.38
    textured 512x1024  gzip         1.34x    69x     89x  1.41x     2.556    31.35
    textured 512x1024  lz4          1.02x   203x    233x  1.21x     3.132     1.49
    textured 512x1024  blosc-lz4    1.00x   195x    202x  1.91x     2.548     2.12
    textured 512x1024  zstd         1.16x   129x    634x  1.39x     2.736     7.47
    textured 512x1024  blosc-zstd   1.27x   124x    181x  2.14x     2.131     7.26
    synthetic 256x512  none         1.00x     1x      1x  1.00x     1.250     0.24
    synthetic 256x512  lz4          2.58x    15x     20x  1.22x     0.576     0.49
    synthetic 256x512  blosc-lz4    2.21x    15x     18x  2.02x     0.440     0.51
    synthetic 256x512  zstd         3.60x    55x     68x  1.38x     0.473     1.93
    synthetic 256x512  blosc-zstd   3.86x    52x     62x  2.22x     0.329     1.64

Choice: ``blosc-lz4`` (``pack.compression``), the smallest file among the codecs that read as
fast as a memory-bound loader needs. Frames, most of the bytes, hardly compress with any fast
codec; labels and instances shrink 100-200x with any; flow (float16) shrinks 1.9x only with
blosc's byte shuffle, which puts blosc-lz4 15-19% under lz4 (24% on the synthetic city) for
reads 1.0-1.4x as long. blosc-zstd saves another 14-25% but reads 3.2-3.5x slower; gzip saves
at most 8% and lzf nothing, both reading 6-15x slower. For the thesis's 808 train snippets at
both resolutions that is about 76 GiB on photo-like frames (lz4 93, none 148).

Readers (frames/s, same run; "raw": the stored arrays; "sample": with float image, one-hot,
edge map, float flow; PNG: cv2.imread of the 1024x2048 frame and its label PNGs, resized)::

                                      256x512   512x1024
    raw png (native PNGs)                 7.2        7.2
    raw png (pre-resized to the size)    62.2       22.7
    raw hdf5 blosc-lz4                 1331.7      382.0
    raw hdf5 lz4 / none          1619 / 2338   598 / 1056
    raw memory copy                   12109.3     2193.4
    sample png (native PNGs)              7.6        6.9
    sample hdf5 blosc-lz4               167.3       47.5
    sample memory copy                  253.3       39.3

HDF5 against the PNG tree: 185x and 53x raw, 22x and 6.9x as samples (the one-hot, 40 MB a
frame at 512x1024, then dominates both). Against the memory copy: 1.5x and 0.8x as samples,
9x and 5.7x raw (a bare copy is 0.1-0.5 ms; h5py's per-read cost and the decompression are the
rest). A trainer that collates compact samples (``expand=False``) and expands them on the GPU
(:func:`~pipeline.pack.dataset.expand`) gets the raw rates.
"""

from __future__ import annotations

from typing import Any

__all__ = ["pack", "PackInputs", "verify", "FrameDataset", "WindowDataset", "expand"]

_EXPORTS = {"pack": "writer", "PackInputs": "writer", "verify": "verify",
            "FrameDataset": "dataset", "WindowDataset": "dataset", "expand": "dataset"}


def __getattr__(name: str) -> Any:
    # Lazy: the CLI and the verifier need no torch; the datasets do.
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(f"pipeline.pack.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'pipeline.pack' has no attribute {name!r}")
