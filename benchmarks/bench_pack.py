"""Benchmark of the packed data: codecs (size, read and write speed) and readers (samples/s).

Part 1, the layout: every codec of ``pipeline.pack.schema.CODECS`` on the four arrays of a
frame (RGB, label ids, instance ids, flow), chunked one frame a chunk, at 256x512 and 512x1024:
realistic random-textured frames (flat regions, shading, fine texture, sensor noise, drawn at
1024x2048 and shrunk as the pack does; PNG compresses them 2.4x, like Cityscapes' frames), and
the synthetic city at 256x512 (clean rendered frames, true labels and flow). Reads of 6-frame
windows at random starts compare one-frame chunks with 6-frame chunks.

Part 2, the readers, one frame a sample, one thread, files in the page cache, at each
resolution: the packed file through ``FrameDataset``; the same frames read from the PNG tree
as a PNG-based dataset would (``cv2.imread`` of the 1024x2048 frame and its label PNGs, resized
as the pack does, flow from the flow file); PNGs already stored at the training size (the
strongest PNG reader); and a plain in-memory copy of the packed arrays (the limit). "raw" is
the arrays alone, "sample" adds the float image, one-hot labels, edge map and float flow.
Goal: HDF5 at least 20x the PNG reader and within 3x of the memory copy.

Usage: ``python benchmarks/bench_pack.py [--quick]`` (about a minute on two cores).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import h5py
import numpy as np
import torch

from pipeline.pack.dataset import FrameDataset, PackedFile, compact_sample, expand
from pipeline.pack.example_tree import make_pack_tree
from pipeline.pack.resize import resize_flow, resize_image, resize_labels
from pipeline.pack.schema import ARRAYS, CODECS, codec_options
from pipeline.pack.writer import PackInputs, pack

RESOLUTIONS = [(256, 512), (512, 1024)]
NATIVE = (1024, 2048)
FLOW_SIZE = (512, 1024)


def best_rate(step: Callable[[int], object], count: int, seconds: float, rounds: int = 3) -> float:
    """Calls per second of ``step(i)`` over ``i`` in 0..count-1: the best of ``rounds`` timed runs."""
    step(0)
    best = 0.0
    for _ in range(rounds):
        calls, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds / rounds:
            step(calls % count)
            calls += 1
        best = max(best, calls / (time.perf_counter() - start))
    return best


# ---------------------------------------------------------------- part 1: codecs and chunks


def codec_table(arrays: dict[str, np.ndarray], folder: Path, label: str, seconds: float) -> list[dict]:
    """Size ratio per array and read/write time per frame for every codec."""
    frames = arrays["frames"].shape[0]
    rows = []
    for codec in CODECS:
        path = folder / f"{label}-{codec}.h5"
        start = time.perf_counter()
        with h5py.File(path, "w") as file:
            for name, array in arrays.items():
                file.create_dataset(name, data=array, chunks=(1, *array.shape[1:]), **codec_options(codec))
        write_ms = (time.perf_counter() - start) / frames * 1e3
        with h5py.File(path, "r") as file:
            datasets = {name: file[name] for name in arrays}
            ratios = {name: arrays[name].nbytes / max(d.id.get_storage_size(), 1)
                      for name, d in datasets.items()}
            stored = sum(d.id.get_storage_size() for d in datasets.values()) / frames / 2**20
            rate = best_rate(lambda i: [d[i] for d in datasets.values()], frames, seconds)
        rows.append({"data": label, "codec": codec, **ratios, "MiB/frame": stored,
                     "read ms": 1e3 / rate, "write ms": write_ms})
        path.unlink()
    return rows


def print_codec_table(rows: list[dict]) -> None:
    print(f"{'data':22s} {'codec':10s} {'frames':>7s} {'labels':>7s} {'inst':>7s} {'flow':>7s} "
          f"{'MiB/frame':>9s} {'read ms':>8s} {'write ms':>8s}")
    for row in rows:
        print(f"{row['data']:22s} {row['codec']:10s} {row['frames']:6.2f}x {row['labels']:6.1f}x "
              f"{row['instances']:6.1f}x {row['flow']:6.2f}x {row['MiB/frame']:9.3f} "
              f"{row['read ms']:8.2f} {row['write ms']:8.1f}")


def window_reads(arrays: dict[str, np.ndarray], folder: Path, codec: str, seconds: float) -> None:
    """6-frame windows at random starts: chunks of one frame against chunks of six."""
    frames = arrays["frames"].shape[0]
    window = min(6, frames - 1)
    starts = np.random.default_rng(0).integers(0, frames - window + 1, 64)
    for chunk in (1, window):
        path = folder / f"window-{chunk}.h5"
        with h5py.File(path, "w") as file:
            for name, array in arrays.items():
                file.create_dataset(name, data=array[None], chunks=(1, chunk, *array.shape[1:]),
                                    **codec_options(codec))
        with h5py.File(path, "r") as file:
            datasets = [file[name] for name in arrays]
            rate = best_rate(lambda i: [d[0, starts[i]:starts[i] + window] for d in datasets], 64, seconds)
        print(f"  {codec}, chunks of {chunk} frame(s): {1e3 / rate:6.2f} ms per {window}-frame window")
        path.unlink()


def textured_arrays(tree, size: tuple[int, int]) -> dict[str, np.ndarray]:
    """The tree's frames, labels, instances and flow resized as the pack does, stacked."""
    out: dict[str, list[np.ndarray]] = {name: [] for name in ARRAYS}
    for snippet in tree.snippets:
        with h5py.File(tree.flow_file(snippet)) as file:
            flow = file[f"flow/{snippet.id}"][()]
        for t, path in enumerate(snippet.frame_paths):
            out["frames"].append(resize_image(cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB), size))
            out["labels"].append(resize_labels(cv2.imread(str(tree.label_path(snippet, t, "labelIds")),
                                                          cv2.IMREAD_UNCHANGED), size))
            out["instances"].append(resize_labels(cv2.imread(str(tree.label_path(snippet, t, "instanceIds")),
                                                             cv2.IMREAD_UNCHANGED), size))
            out["flow"].append(np.zeros((*size, 2), np.float16) if t == 0
                               else resize_flow(flow[t - 1], size).astype(np.float16))
    return {name: np.stack(values) for name, values in out.items()}


def synthetic_arrays(folder: Path, size: tuple[int, int], frames: int) -> dict[str, np.ndarray]:
    from pipeline.data.synthetic import generate

    root = folder / "synthetic"
    generate(root, {"train": {"synthberg": 1}}, seed=0, height=size[0], width=size[1], frames=frames,
             annotated=frames // 2)
    truth_file = next((root / "truth").rglob("*.npz"))
    truth = np.load(truth_file)
    frame_dir = root / "leftImg8bit_sequence" / "train" / "synthberg"
    rgb = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in sorted(frame_dir.glob("*.png"))]
    return {"frames": np.stack(rgb), "labels": truth["labels"],
            "instances": truth["instances"].astype(np.uint16), "flow": truth["flow"].astype(np.float16)}


# ---------------------------------------------------------------- part 2: readers


class PngReader:
    """What a PNG-based dataset does per frame: decode the PNGs, resize, read the flow file."""

    def __init__(self, tree, size: tuple[int, int], pre_resized: Path | None = None):
        self.tree, self.size, self.pre_resized = tree, size, pre_resized
        self.items = [(s, t) for s in tree.snippets for t in range(s.frames)]
        self.flow_files = {p.stem: h5py.File(p, "r") for p in tree.flow}

    def paths(self, index: int) -> tuple[Path, Path, Path]:
        snippet, t = self.items[index]
        paths = (snippet.frame_paths[t], self.tree.label_path(snippet, t, "labelIds"),
                 self.tree.label_path(snippet, t, "instanceIds"))
        if self.pre_resized is not None:
            paths = tuple(self.pre_resized / p.name for p in paths)
        return paths

    def __call__(self, index: int) -> dict[str, np.ndarray]:
        snippet, t = self.items[index]
        frame_path, label_path, instance_path = self.paths(index)
        rgb = cv2.cvtColor(cv2.imread(str(frame_path)), cv2.COLOR_BGR2RGB)
        labels = cv2.imread(str(label_path), cv2.IMREAD_UNCHANGED)
        instances = cv2.imread(str(instance_path), cv2.IMREAD_UNCHANGED)
        flow = (np.zeros((*self.size, 2), np.float16) if t == 0 else resize_flow(
            self.flow_files[snippet.city][f"flow/{snippet.id}"][t - 1], self.size).astype(np.float16))
        return {"frames": resize_image(rgb, self.size), "labels": resize_labels(labels, self.size),
                "instances": resize_labels(instances, self.size), "flow": flow}

    def write_pre_resized(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        saved, self.pre_resized = self.pre_resized, None
        for index in range(len(self.items)):
            arrays = self(index)
            frame_path, label_path, instance_path = self.paths(index)
            cv2.imwrite(str(folder / frame_path.name), cv2.cvtColor(arrays["frames"], cv2.COLOR_RGB2BGR))
            cv2.imwrite(str(folder / label_path.name), arrays["labels"])
            cv2.imwrite(str(folder / instance_path.name), arrays["instances"])
        self.pre_resized = saved or folder


def recode(packed: Path, codec: str, output: Path) -> Path:
    """A copy of a packed file with every array stored under another codec."""
    with h5py.File(packed, "r") as source, h5py.File(output, "w") as target:
        target.attrs.update(dict(source.attrs))
        target.attrs["compression"] = codec
        for name in ("snippets", "flow_valid"):
            source.copy(source[name], target, name)
        for resolution in source.attrs["resolutions"]:
            group = f"{resolution[0]}x{resolution[1]}"
            for name in ARRAYS:
                data = source[f"{group}/{name}"]
                target.create_dataset(f"{group}/{name}", data=data[()], chunks=data.chunks,
                                      **codec_options(codec))
    return output


def reader_rates(tree, packed: dict[str, Path], size: tuple[int, int], folder: Path,
                 seconds: float) -> dict[str, float]:
    """Frames/s of each reader; ``packed`` maps codec -> file, the first being the chosen one."""
    chosen = next(iter(packed))
    png = PngReader(tree, size)
    small = PngReader(tree, size)
    small.write_pre_resized(folder / f"png-{size[0]}")
    in_memory = PackedFile(packed[chosen], size, in_memory=True)
    frames = in_memory.frames
    count = len(in_memory) * frames
    valid = in_memory.flow_valid
    window = min(6, frames)

    def frame_reader(source: PackedFile) -> Callable[[int], object]:
        return lambda i: source.read(i // frames, i % frames, i % frames + 1)

    def png_sample(reader: PngReader) -> Callable[[int], object]:
        return lambda i: expand(compact_sample(reader(i), valid[i // frames, i % frames]), "train19_other")

    readers: dict[str, Callable[[int], object]] = {
        "raw png (native PNGs)": png, "raw png (pre-resized)": small}
    for codec, path in packed.items():
        readers[f"raw hdf5 {codec}"] = frame_reader(PackedFile(path, size))
    readers["raw memory"] = frame_reader(in_memory)
    on_disk = PackedFile(packed[chosen], size)
    rates = {name: best_rate(step, count, seconds) for name, step in readers.items()}
    for name, source in ((f"raw hdf5 {chosen}", on_disk), ("raw memory", in_memory)):
        per_window = best_rate(lambda i: source.read(i % len(source), 0, window), len(source), seconds)
        rates[f"{name}, {window}-frame windows"] = per_window * window
    samples = {
        "sample png (native PNGs)": png_sample(png),
        "sample png (pre-resized)": png_sample(small),
        f"sample hdf5 {chosen}": FrameDataset(packed[chosen], size, frames="all").__getitem__,
        "sample memory": FrameDataset(packed[chosen], size, frames="all", in_memory=True).__getitem__,
    }
    rates |= {name: best_rate(step, count, seconds) for name, step in samples.items()}
    return rates


def print_reader_table(size: tuple[int, int], rates: dict[str, float], chosen: str) -> None:
    print(f"\nreaders at {size[0]}x{size[1]}, frames/s, one thread:")
    for name, rate in rates.items():
        print(f"  {name:40s} {rate:9.1f}")
    for level in ("raw", "sample"):
        hdf5 = rates[f"{level} hdf5 {chosen}"]
        native = hdf5 / rates[f"{level} png (native PNGs)"]
        print(f"  {level:6s} {chosen}: hdf5 / png native {native:6.1f}x   "
              f"hdf5 / png pre-resized {hdf5 / rates[f'{level} png (pre-resized)']:5.1f}x   "
              f"memory / hdf5 {rates[f'{level} memory'] / hdf5:5.2f}x")
    window = next(name for name in rates if name.startswith(f"raw hdf5 {chosen},"))
    memory = next(name for name in rates if name.startswith("raw memory,"))
    print(f"  raw, windows: memory / hdf5 {rates[memory] / rates[window]:5.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer frames, shorter timings")
    parser.add_argument("--compression", nargs="+", default=["blosc-lz4", "lz4", "none"],
                        help="codecs of the packed file in part 2, the chosen one first")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    frames, seconds = (4, 0.3) if args.quick else (6, 0.6)
    with tempfile.TemporaryDirectory(prefix="bench_pack_") as tmp:
        folder = Path(tmp)
        start = time.perf_counter()
        tree = make_pack_tree(folder / "tree", {"alpha": 2}, frames=frames, annotated_index=frames // 2,
                              size=NATIVE, flow_size=FLOW_SIZE, flow_dtype="float16")
        print(f"tree of 2 snippets x {frames} frames at {NATIVE[0]}x{NATIVE[1]} written in "
              f"{time.perf_counter() - start:.1f} s")
        rows = []
        for size in RESOLUTIONS:
            rows += codec_table(textured_arrays(tree, size), folder, f"textured {size[0]}x{size[1]}",
                                seconds / 2)
        rows += codec_table(synthetic_arrays(folder, RESOLUTIONS[0], frames), folder,
                            f"synthetic {RESOLUTIONS[0][0]}x{RESOLUTIONS[0][1]}", seconds / 2)
        print("\ncodecs, one frame a chunk (size: raw / stored; read: all four arrays of a frame):")
        print_codec_table(rows)
        print(f"\nwindows at {RESOLUTIONS[-1][0]}x{RESOLUTIONS[-1][1]} (textured):")
        window_reads(textured_arrays(tree, RESOLUTIONS[-1]), folder, args.compression[0], seconds / 2)
        inputs = PackInputs.from_paths(tree.root, tree.semantic, tree.instance, tree.flow)
        settings = {"pack": {"resolutions": [list(r) for r in RESOLUTIONS], "compression": "none",
                             "chunk_frames": 1}, "label_set": "train19_other"}
        plain = pack(tree.subset, "train", inputs, folder / "train.h5", settings, progress=False)
        packed = {codec: recode(plain, codec, folder / f"train-{codec}.h5") for codec in args.compression}
        for size in RESOLUTIONS:
            rates = reader_rates(tree, packed, size, folder, seconds)
            print_reader_table(size, rates, args.compression[0])
        print(f"\ntotal {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
