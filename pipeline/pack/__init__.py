"""pack: the HDF5 writer, verifier and reader, and the training datasets (one file per split).

:mod:`~pipeline.pack.schema` is the file's layout, :mod:`~pipeline.pack.writer` what is packed
from the label and flow stages, :mod:`~pipeline.pack.verify` the check, and
:mod:`~pipeline.pack.dataset` the torch datasets. ``python -m pipeline.pack`` runs the stage.

Layout, chosen by measurement (``benchmarks/bench_pack.py``: one thread of a 2-core machine shared
with other jobs, load 4 to 6, so absolute times are slow; ratios are within one run, the readers
taking turns).

Chunks: one frame a chunk (``pack.chunk_frames: 1``). Training reads one frame (image variants)
or a window of consecutive frames at a random start (video variants); with one-frame chunks
either reads exactly what it uses. A 6-frame window at a random start straddles two 6-frame
chunks: with compressed arrays that decodes twice the data (11.6 against 19.5 ms a window at
512x1024, all blosc-lz4); with the raw frames and flow chosen below it costs little more (5.0
against 5.5 ms), as HDF5 reads part of an unfiltered chunk directly.

Codecs, each array on its own (raw size / stored size, ms to read that array of one frame;
"textured": photo-like frames drawn at 1024x2048 and shrunk, which PNG stores 2.4x smaller, as
Cityscapes' frames; "synthetic": the synthetic city's rendered frames and truth)::

    data               codec           frames           labels        instances             flow
    textured 256x512   none          1.00x 0.050ms    1.00x 0.018ms    1.00x 0.034ms    1.00x 0.064ms
    textured 256x512   lzf           1.10x 1.670ms   24.46x 0.262ms   38.25x 0.395ms    1.20x 1.058ms
    textured 256x512   gzip          1.28x 2.573ms   45.57x 0.115ms   63.44x 0.215ms    1.38x 2.866ms
    textured 256x512   lz4           1.03x 0.116ms  101.28x 0.017ms  183.25x 0.023ms    1.20x 0.087ms
    textured 256x512   blosc-lz4     1.01x 0.062ms  100.11x 0.016ms  122.08x 0.035ms    1.72x 0.166ms
    textured 256x512   zstd          1.13x 0.536ms   82.01x 0.057ms  279.45x 0.055ms    1.35x 0.543ms
    textured 256x512   blosc-zstd    1.19x 0.597ms   75.97x 0.073ms  117.32x 0.130ms    1.95x 0.392ms
    textured 512x1024  none          1.00x 0.149ms    1.00x 0.055ms    1.00x 0.126ms    1.00x 0.157ms
    textured 512x1024  lzf           1.09x 6.872ms   38.77x 0.916ms   57.46x 1.385ms    1.21x 5.348ms
    textured 512x1024  gzip          1.34x 8.927ms   68.76x 0.342ms   88.59x 0.669ms    1.41x 8.733ms
    textured 512x1024  lz4           1.02x 0.438ms  203.32x 0.048ms  232.69x 0.095ms    1.21x 0.281ms
    textured 512x1024  blosc-lz4     1.00x 0.292ms  195.40x 0.055ms  202.20x 0.129ms    1.91x 0.671ms
    textured 512x1024  zstd          1.16x 2.266ms  128.80x 0.156ms  633.71x 0.113ms    1.39x 2.331ms
    textured 512x1024  blosc-zstd    1.27x 3.021ms  123.57x 0.170ms  180.70x 0.375ms    2.14x 1.223ms
    synthetic 256x512  none          1.00x 0.035ms    1.00x 0.015ms    1.00x 0.026ms    1.00x 0.045ms
    synthetic 256x512  lz4           2.58x 0.207ms   14.66x 0.010ms   20.25x 0.033ms    1.22x 0.064ms
    synthetic 256x512  blosc-lz4     2.21x 0.158ms   14.55x 0.008ms   17.82x 0.051ms    2.02x 0.188ms
    synthetic 256x512  zstd          3.60x 0.547ms   54.59x 0.008ms   67.67x 0.061ms    1.38x 0.466ms

Layouts (``pack.compression``: one codec for all, or one per array): MiB a frame and ms to read
its four arrays, summed from the table; the study's size for 808 snippets of 30 frames at both
sizes (textured)::

    layout                            textured 256x512   textured 512x1024   study
    blosc-lz4 (all)                   0.666 MiB 0.28 ms   2.548 MiB 1.15 ms   76 GiB
    lz4 (all)                         0.782 MiB 0.24 ms   3.132 MiB 0.86 ms   93 GiB
    none (all)                        1.250 MiB 0.17 ms   5.000 MiB 0.49 ms  148 GiB
    ids lz4, frames and flow none     0.878 MiB 0.15 ms   3.507 MiB 0.45 ms  104 GiB   <- chosen
    ids lz4, flow blosc-lz4           0.668 MiB 0.26 ms   2.554 MiB 0.96 ms   76 GiB

Readers, samples/s in one thread (windows: frames/s), 72 frames repeated from 12 so that the
arrays outgrow the CPU's 32 MB cache, as the study's do, read in a shuffled order. "png": a
dataset over the PNG tree the label stages wrote (the 1024x2048 frame and label PNGs decoded and
resized, the flow from the flow stage's file); "memory": the same datasets over an in-memory copy.
"compact" is what training reads on a GPU (ids, expanded on the device), "expanded" what it
reads on a CPU (float image, one-hot, edge map, float flow)::

                        png   hdf5 chosen  blosc-lz4    none   memory   hdf5/png  memory/hdf5
    256x512  raw       14.5       6473.7     3405.8   5294.2  15991.5     447x      2.47x
             compact   13.3       5120.4     2759.6   4510.1  10737.6     384x      2.10x
             expanded  14.8        509.1      396.2    489.5    595.7      34x      1.17x
             window    15.3       4201.6     2416.5   3758.0  10822.1     275x      2.58x
    512x1024 raw       16.6       2326.3      814.6   1894.3   3788.8     140x      1.63x
             compact   16.5       1888.1      769.1   1372.2   3206.1     114x      1.70x
             expanded  13.1         91.7       82.7     88.6     95.1     7.0x      1.04x
             window    14.8       1040.8      578.6    861.5   1355.5      70x      1.30x

HDF5's chunk cache (h5py's 1 MiB default, or none) made no difference the runs could tell apart
(0.23-0.26 ms a compact 256x512 sample either way). The expansion on a CPU allocates its float
tensors through numpy, which asks for huge pages, and the edge map computes in int32 where ids
allow: against the plain torch expansion it did before, 1.4 against 2.0 ms a frame at 256x512,
6.2 against 11.5 ms at 512x1024, 57 against 92 ms a 6-frame window (best of interleaved runs;
means alike), the same tensors. Tried and not kept, no faster within the noise: ``read_direct``
into preallocated arrays (slower than slicing), ``read_direct_chunk`` (as fast as slicing for
raw chunks; compressed ones would need a decompressor the environment lacks), plain ``pread`` of
raw chunks at their offsets (1.8 against 2.0x memory), the latest file format's chunk index,
two blosc threads on two shared cores (slower); a one-hot by scatter, take or per-channel loops.

Choice: frames and flow stored raw, label and instance ids lz4 (the default of
``pack.compression``). Frames, most of the bytes, hardly compress with any fast codec (1.00-1.03x
on photo-like frames) and read 1.2-2.9x faster raw; ids shrink 100-230x with lz4 and read as fast
as raw or faster; flow (float16) halves only with blosc's byte shuffle, which reads 2.6-4.3x
slower. With every array blosc-lz4 the file is 27% smaller, but raw, compact and window samples
read 2.3-4.7x slower than from memory (3.9-4.7x at 256x512; the goal is within 3x); chosen,
1.3-2.6x. The goals (20x the PNG reader, within 3x of memory) are met for every kind at both
sizes but one: expanded samples at 512x1024 reach 7.0x the PNG reader, not 20x. The expansion
bounds them, not the file: allocating and filling the sample's 55 MB of float tensors (a 40 MB
one-hot) alone runs 165/s, 12.6x the PNG reader, and the memory copy is no faster (1.04x). A CPU
trains far slower than that at 512x1024; on a GPU training reads compact samples (114x).
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
