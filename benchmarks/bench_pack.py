"""Benchmark of the packed data: its layout (each array's codec, the chunks) and its readers.

Part 1, the layout. Every codec of ``pipeline.pack.schema.CODECS`` on each of the four arrays of
a frame (RGB, label ids, instance ids, flow), one frame a chunk, at 256x512 and 512x1024:
realistic random-textured frames (flat regions, shading, fine texture, sensor noise, drawn at
1024x2048 and shrunk as the pack does; PNG compresses them 2.4x, like Cityscapes' frames), and
the synthetic city at 256x512 (clean rendered frames, true labels and flow). Per array: the size
ratio and the time to read that array of one frame; per layout (``pack.compression``: one codec
for every array, or one per array) the sums, and the study's size (808 snippets of 30 frames at
both sizes). Then 6-frame windows at random starts with one-frame chunks against six-frame ones.

Part 2, the readers: samples/s in one thread, files in the page cache, at each size. Sources:

- ``png``: a dataset over the tree the earlier stages wrote: decode the 1024x2048 frame and the
  label and instance PNGs of the label stages, read the flow from the flow stage's file (gzip and
  shuffle, 512x1024), resize all as the pack does. It yields exactly the packed samples (checked);
- ``hdf5 LAYOUT``: the packed file through ``FrameDataset`` / ``WindowDataset``, one per layout;
- ``memory``: the same datasets over an in-memory copy of the packed arrays (the limit).

Sample kinds, all one frame a sample but the last:

- ``raw``: the stored arrays alone (numpy);
- ``compact``: what training reads on a GPU (``expand=False``: uint8 image, label and instance
  ids, float16 flow), expanded there by ``pipeline.pack.dataset.expand``;
- ``expanded``: what training reads on a CPU (float image, one-hot labels, edge map, float flow);
- ``compact window``: 6-frame windows of the video variants, counted in frames/s.

Beside them, the time to allocate and fill an expanded sample's float tensors, which bounds any
expanded reader; and where a GPU is present, the median time to copy a compact sample onto it and
expand it there, against copying an expanded one. The readers (and in part 1 the codecs) take
turns, round-robin, the best of several rounds, so a load that changes during the run slows all
alike; ratios are within one run. Goals (issue 6), each kind: hdf5 at least 20x the PNG reader
and within 3x of memory.

Usage: ``python benchmarks/bench_pack.py [--quick] [--layouts NAME ...]`` (about 2.5 minutes on
two busy cores; ``--quick``, readers only and shorter, under one).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import cv2
import h5py
import numpy as np
import torch

from pipeline.config import load_config
from pipeline.pack.dataset import FrameDataset, WindowDataset, expand
from pipeline.pack.example_tree import PackTree, make_pack_tree
from pipeline.pack.resize import resize_flow, resize_image, resize_labels
from pipeline.pack.schema import ARRAYS, CODECS, array_codecs, codec_options
from pipeline.pack.writer import PackInputs, pack

RESOLUTIONS = [(256, 512), (512, 1024)]
NATIVE = (1024, 2048)
FLOW_SIZE = (512, 1024)
STUDY_FRAMES = 808 * 30
WINDOW = 6
# The packed snippets are repeated so that the arrays (90 MB at 256x512) outgrow the CPU's last
# cache level (32 MB here), as the study's do; a memory copy that fits it reads from the cache.
COPIES = 6
GOAL_PNG, GOAL_MEMORY = 20.0, 3.0

# Candidate values of pack.compression: one codec for every array, or one per array.
LAYOUTS: dict[str, str | dict[str, str]] = {
    "blosc-lz4": "blosc-lz4",
    "lz4": "lz4",
    "none": "none",
    "ids-lz4": {"frames": "none", "labels": "lz4", "instances": "lz4", "flow": "none"},
    "ids-lz4,flow-blosc": {"frames": "none", "labels": "lz4", "instances": "lz4", "flow": "blosc-lz4"},
}


def turn_rates(steps: Mapping[Any, tuple[Callable[[int], object], int, int]], seconds: float,
               rounds: int = 3) -> dict[Any, float]:
    """Items per second of each ``name -> (step, count, items per call)``: the steps take turns for
    ``rounds`` rounds of ``seconds / rounds`` each (at least one call), the best round counts."""
    for step, _, _ in steps.values():
        step(0)                                        # open files, warm caches
    best = dict.fromkeys(steps, 0.0)
    calls = dict.fromkeys(steps, 0)
    for _ in range(rounds):
        for name, (step, count, items) in steps.items():
            done, start = 0, time.perf_counter()
            while done == 0 or time.perf_counter() - start < seconds / rounds:
                step(calls[name] % count)
                calls[name] += 1
                done += 1
            best[name] = max(best[name], done * items / (time.perf_counter() - start))
    return best


# ---------------------------------------------------------------- part 1: codecs and chunks


def codec_table(arrays: dict[str, np.ndarray], folder: Path, label: str, seconds: float,
                rounds: int) -> list[dict]:
    """Per codec and array: size ratio (raw / stored), MiB a frame stored, ms to read one frame
    (every codec's file open at once, the reads taking turns)."""
    frames = arrays["frames"].shape[0]
    rows, files, steps = [], [], {}
    for codec in CODECS:
        path = folder / f"{label}-{codec}.h5"
        start = time.perf_counter()
        with h5py.File(path, "w") as file:
            for name, array in arrays.items():
                file.create_dataset(name, data=array, chunks=(1, *array.shape[1:]), **codec_options(codec))
        row: dict = {"data": label, "codec": codec, "write ms": (time.perf_counter() - start) / frames * 1e3}
        files.append(h5py.File(path, "r"))
        for name in arrays:
            dataset = files[-1][name]
            stored = max(dataset.id.get_storage_size(), 1)
            row[name] = {"ratio": arrays[name].nbytes / stored, "MiB": stored / frames / 2**20}
            steps[codec, name] = (lambda i, dataset=dataset: dataset[i], frames, 1)
        rows.append(row)
    rates = turn_rates(steps, seconds, rounds)
    for row in rows:
        for name in arrays:
            row[name]["ms"] = 1e3 / rates[row["codec"], name]
    for file in files:
        path = Path(file.filename)
        file.close()
        path.unlink()
    return rows


def print_codec_table(rows: list[dict]) -> None:
    print("\ncodecs, one frame a chunk: size raw/stored, ms to read one frame's array")
    print(f"{'data':18s} {'codec':10s}" + "".join(f"{name:>17s}" for name in ARRAYS)
          + f" {'MiB/frame':>9s} {'read ms':>8s} {'write ms':>8s}")
    for row in rows:
        cells = "".join(f"{row[n]['ratio']:8.2f}x {row[n]['ms']:6.3f}ms" for n in ARRAYS)
        mib = sum(row[n]["MiB"] for n in ARRAYS)
        read = sum(row[n]["ms"] for n in ARRAYS)
        print(f"{row['data']:18s} {row['codec']:10s}{cells} {mib:9.3f} {read:8.3f} {row['write ms']:8.1f}")


def print_layout_table(rows: list[dict]) -> None:
    """Each layout's size and read time, summed from its arrays' rows of the codec table."""
    by_codec = {(row["data"], row["codec"]): row for row in rows}
    datas = list(dict.fromkeys(row["data"] for row in rows))
    textured = [d for d in datas if d.startswith("textured")]
    print("\nlayouts (pack.compression): MiB a frame / ms to read a frame's four arrays; study size "
          f"({STUDY_FRAMES} frames at {' and '.join(d.split()[1] for d in textured)}, textured)")
    print(f"{'layout':20s}" + "".join(f"{d:>28s}" for d in datas) + f" {'study GiB':>10s}")
    for name, compression in LAYOUTS.items():
        codecs = array_codecs(compression)
        cells, study = "", 0.0
        for data in datas:
            mib = sum(by_codec[data, codec][array]["MiB"] for array, codec in codecs.items())
            read = sum(by_codec[data, codec][array]["ms"] for array, codec in codecs.items())
            cells += f"{mib:16.3f} MiB {read:6.3f}ms"
            study += mib * STUDY_FRAMES / 1024 if data in textured else 0.0
        print(f"{name:20s}{cells} {study:10.1f}")


def window_reads(arrays: dict[str, np.ndarray], folder: Path, compression, seconds: float, rounds: int) -> None:
    """6-frame windows at random starts: chunks of one frame against chunks of six (taking turns)."""
    frames = arrays["frames"].shape[0]
    window = min(WINDOW, frames - 1)
    starts = np.random.default_rng(0).integers(0, frames - window + 1, 64)
    codecs = array_codecs(compression)
    files, steps = [], {}
    for chunk in (1, window):
        path = folder / f"window-{chunk}.h5"
        with h5py.File(path, "w") as file:
            for name, array in arrays.items():
                file.create_dataset(name, data=array[None], chunks=(1, chunk, *array.shape[1:]),
                                    **codec_options(codecs[name]))
        files.append(h5py.File(path, "r"))
        datasets = [files[-1][name] for name in arrays]
        steps[chunk] = (lambda i, datasets=datasets: [d[0, starts[i]:starts[i] + window] for d in datasets],
                        len(starts), 1)
    rates = turn_rates(steps, seconds, rounds)
    for chunk, rate in rates.items():
        print(f"  chunks of {chunk} frame(s): {1e3 / rate:6.2f} ms per {window}-frame window")
    for file in files:
        path = Path(file.filename)
        file.close()
        path.unlink()


def textured_arrays(tree: PackTree, size: tuple[int, int]) -> dict[str, np.ndarray]:
    """The tree's frames, labels, instances and flow resized as the pack does, stacked."""
    reader = PngTree(tree, size)
    per_snippet = [reader.read(index, 0, reader.frames) for index in range(len(reader))]
    return {name: np.concatenate([arrays[name] for arrays in per_snippet]) for name in ARRAYS}


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


class PngTree:
    """``PackedFile``'s reading side over the PNG tree, as a PNG-based dataset would read it:
    per frame, decode the frame and the two label PNGs, take the flow from the flow stage's
    file (kept open, one per city), resize as the pack does."""

    def __init__(self, tree: PackTree, size: tuple[int, int]):
        self.tree, self.size = tree, size
        self.snippets = [s.id for s in tree.snippets]
        self.cities = [s.city for s in tree.snippets]
        self.frames = tree.snippets[0].frames
        self.annotated_index = tree.snippets[0].annotated_index
        self.label_set = "train19_other"
        self.flow_valid = np.ones((len(self.snippets), self.frames), dtype=bool)
        self.flow_valid[:, 0] = False
        self._flow_files = {path.stem: h5py.File(path, "r") for path in tree.flow}

    def __len__(self) -> int:
        return len(self.snippets)

    def read(self, snippet: int, first: int, stop: int) -> dict[str, np.ndarray]:
        frames = [self._frame(snippet, t) for t in range(first, stop)]
        return {name: np.stack([f[name] for f in frames]) for name in ARRAYS}

    def _frame(self, index: int, t: int) -> dict[str, np.ndarray]:
        snippet = self.tree.snippets[index]
        rgb = cv2.cvtColor(cv2.imread(str(snippet.frame_paths[t])), cv2.COLOR_BGR2RGB)
        labels = cv2.imread(str(self.tree.label_path(snippet, t, "labelIds")), cv2.IMREAD_UNCHANGED)
        instances = cv2.imread(str(self.tree.label_path(snippet, t, "instanceIds")), cv2.IMREAD_UNCHANGED)
        if t == 0:
            flow = np.zeros((*self.size, 2), np.float16)
        else:
            source = self._flow_files[snippet.city][f"flow/{snippet.id}"][t - 1]
            flow = resize_flow(source, self.size).astype(np.float16)
        return {"frames": resize_image(rgb, self.size), "labels": resize_labels(labels, self.size),
                "instances": resize_labels(instances, self.size), "flow": flow}


def png_datasets(tree: PackTree, size: tuple[int, int], expand: bool) -> tuple[FrameDataset, WindowDataset]:
    """The training datasets with the PNG tree in place of the packed file: the same sample code."""
    source = PngTree(tree, size)
    frames = FrameDataset.__new__(FrameDataset)
    windows = WindowDataset.__new__(WindowDataset)
    for dataset in (frames, windows):
        dataset.packed, dataset.label_set, dataset.expand = source, source.label_set, expand
    frames.frames = "all"
    windows.window, windows.seed, windows.start, windows.epoch = WINDOW, 0, None, 0
    return frames, windows


def recode(packed: Path, compression, output: Path, copies: int = 1) -> Path:
    """A copy of a packed file with its arrays stored under another layout, its snippets repeated
    ``copies`` times (a file, and an in-memory copy, larger than the CPU's caches, as the study's)."""
    codecs = array_codecs(compression)
    with h5py.File(packed, "r") as source, h5py.File(output, "w") as target:
        target.attrs.update(dict(source.attrs))
        target.attrs["compression"] = json.dumps(codecs)
        target.attrs["snippet_count"] = source.attrs["snippet_count"] * copies
        ids = [f"{name.decode()}-{copy}" for copy in range(copies) for name in source["snippets/id"][()]]
        target.create_dataset("snippets/id", data=np.array(ids, dtype=object), dtype=h5py.string_dtype())
        target.create_dataset("snippets/city", data=np.tile(source["snippets/city"][()], copies),
                              dtype=h5py.string_dtype())
        target.create_dataset("flow_valid", data=np.tile(source["flow_valid"][()], (copies, 1)))
        for resolution in source.attrs["resolutions"]:
            group = f"{resolution[0]}x{resolution[1]}"
            for name in ARRAYS:
                data = source[f"{group}/{name}"]
                tiled = np.tile(data[()], (copies,) + (1,) * (data.ndim - 1))
                target.create_dataset(f"{group}/{name}", data=tiled, chunks=data.chunks,
                                      **codec_options(codecs[name]))
    return output


def reader_steps(name: str, compact: FrameDataset, expanded: FrameDataset, windows: WindowDataset
                 ) -> dict[str, tuple[Callable[[int], object], int, int]]:
    """The four sample kinds of one source: ``kind source -> (step, count, frames per call)``."""
    packed, per_snippet = compact.packed, compact.packed.frames
    order = np.random.default_rng(0).permutation(len(compact))       # training's order: shuffled
    window_order = np.random.default_rng(1).permutation(len(windows))

    def raw(i: int) -> object:
        snippet, frame = divmod(int(order[i]), per_snippet)
        return packed.read(snippet, frame, frame + 1)

    def window(i: int) -> object:
        windows.set_epoch(i // len(windows))              # new starts every round of snippets
        return windows[int(window_order[i % len(windows)])]

    return {
        f"raw {name}": (raw, len(compact), 1),
        f"compact {name}": (lambda i: compact[int(order[i])], len(compact), 1),
        f"expanded {name}": (lambda i: expanded[int(order[i])], len(expanded), 1),
        f"compact window {name}": (window, 64 * len(windows), windows.window),
    }


def check_same_samples(png: FrameDataset, hdf5: FrameDataset) -> None:
    """The PNG reader and the packed file give the same compact samples (like with like)."""
    for index in (0, len(png) - 1):
        one, two = png[index], hdf5[index]
        for key, value in one.items():
            # The packed copies' snippet ids end in "-{copy}".
            expected = two[key].rsplit("-", 1)[0] if key == "snippet" else two[key]
            same = torch.equal(value, expected) if torch.is_tensor(value) else value == expected
            if not same:
                raise AssertionError(f"png and hdf5 samples differ at {index}, {key}")


def reader_rates(tree: PackTree, packed: dict[str, Path], size: tuple[int, int], seconds: float,
                 rounds: int) -> dict[str, float]:
    """Items/s of every kind and source; ``packed`` maps layout -> file, the first the chosen one."""
    chosen = next(iter(packed))
    png_compact, png_windows = png_datasets(tree, size, expand=False)
    png_expanded, _ = png_datasets(tree, size, expand=True)
    check_same_samples(png_compact, FrameDataset(packed[chosen], size, frames="all", expand=False))
    steps = reader_steps("png", png_compact, png_expanded, png_windows)
    sources = {f"hdf5 {layout}": (path, False) for layout, path in packed.items()}
    sources["memory"] = (packed[chosen], True)
    for name, (path, in_memory) in sources.items():
        compact, expanded = (FrameDataset(path, size, frames="all", expand=expand, in_memory=in_memory)
                             for expand in (False, True))
        windows = WindowDataset(path, size, window=WINDOW, expand=False, in_memory=in_memory)
        steps |= reader_steps(name, compact, expanded, windows)
    sizes = [v.numel() for v in png_expanded[0].values() if torch.is_tensor(v) and v.is_floating_point()]
    steps["expanded floor"] = (lambda i: [np.empty(n, np.float32).fill(1.0) for n in sizes], 1, 1)
    return turn_rates(steps, seconds, rounds) | {"expanded MB": sum(sizes) * 4 / 1e6}


KINDS = ("raw", "compact", "expanded", "compact window")


def print_reader_table(size: tuple[int, int], rates: dict[str, float], layouts: list[str]) -> list[str]:
    """The rates by kind and source, with the ratios to the goals; returns the goals missed."""
    sources = ["png", *(f"hdf5 {layout}" for layout in layouts), "memory"]
    width = max(24, *(len(s) + 2 for s in sources))
    print(f"\nreaders at {size[0]}x{size[1]}, samples/s (windows: frames/s), one thread:")
    print(f"  {'kind':16s}" + "".join(f"{s:>{width}s}" for s in sources))
    for kind in KINDS:
        print(f"  {kind:16s}" + "".join(f"{rates[f'{kind} {s}']:{width}.1f}" for s in sources))
    print(f"  {'ratios':16s}{'hdf5/png memory/hdf5':>{width}s}" + "".join(f"{s:>{width}s}" for s in sources[1:-1]))
    missed = []
    for kind in KINDS:
        cells = ""
        for layout in layouts:
            hdf5 = rates[f"{kind} hdf5 {layout}"]
            over_png, under_memory = hdf5 / rates[f"{kind} png"], rates[f"{kind} memory"] / hdf5
            marks = ("" if over_png >= GOAL_PNG else "!") + ("" if under_memory <= GOAL_MEMORY else "!")
            cells += f"{over_png:{width - 10}.1f}x {under_memory:5.2f}x{marks:2s}"
            if layout == layouts[0] and marks:
                missed.append(f"{size[0]}x{size[1]} {kind}: hdf5/png {over_png:.1f}x, memory/hdf5 "
                              f"{under_memory:.2f}x")
        print(f"  {kind:16s}{'':{width}s}{cells}")
    floor = rates["expanded floor"]
    print(f"  an expanded sample's float tensors are {rates['expanded MB']:.0f} MB: allocating and "
          f"filling them alone runs {floor:.1f}/s, {floor / rates['expanded png']:.1f}x png")
    return missed


def gpu_expand_times(path: Path, size: tuple[int, int], repeats: int = 30) -> dict[str, float]:
    """Median ms on the GPU, for a frame and a window: copying the compact sample in,
    expanding it there, and copying an expanded sample in instead (what a CPU loader would ship)."""
    device = torch.device("cuda")
    times = {}
    for kind, dataset in (("frame", FrameDataset(path, size, frames="all", expand=False)),
                          (f"{WINDOW}-frame window", WindowDataset(path, size, window=WINDOW, expand=False))):
        compact = {k: v.pin_memory() for k, v in dataset[0].items() if torch.is_tensor(v)}
        expanded = {k: v.pin_memory() for k, v in expand(compact, dataset.label_set).items()}
        on_device = {k: v.to(device) for k, v in compact.items()}
        steps = {"copy compact": lambda: {k: v.to(device, non_blocking=True) for k, v in compact.items()},
                 "expand": lambda: expand(on_device, dataset.label_set),
                 "copy expanded": lambda: {k: v.to(device, non_blocking=True) for k, v in expanded.items()}}
        for name, step in steps.items():
            samples = []
            for _ in range(repeats + 3):
                start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                step()
                stop.record()
                torch.cuda.synchronize()
                samples.append(start.elapsed_time(stop))
            times[f"{kind}: {name}"] = float(np.median(samples[3:]))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer frames, shorter timings, no part 1")
    config_layout = load_config()["pack"]["compression"]
    default = [n for n, v in LAYOUTS.items() if v == config_layout] or ["blosc-lz4"]
    parser.add_argument("--layouts", nargs="+", choices=list(LAYOUTS),
                        default=[*default, *(n for n in ("blosc-lz4", "none") if n not in default)],
                        help="layouts of the packed file in part 2, the chosen one first "
                             f"(default: config.yaml's, {default[0]}, then blosc-lz4 and none)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    frames, seconds, rounds = (6, 0.4, 3) if args.quick else (6, 1.5, 10)
    with tempfile.TemporaryDirectory(prefix="bench_pack_") as tmp:
        folder = Path(tmp)
        start = time.perf_counter()
        tree = make_pack_tree(folder / "tree", {"alpha": 2}, frames=frames, annotated_index=frames // 2,
                              size=NATIVE, flow_size=FLOW_SIZE, flow_dtype="float16")
        print(f"tree of 2 snippets x {frames} frames at {NATIVE[0]}x{NATIVE[1]} written in "
              f"{time.perf_counter() - start:.1f} s")
        if not args.quick:
            rows = []
            for size in RESOLUTIONS:
                rows += codec_table(textured_arrays(tree, size), folder, f"textured {size[0]}x{size[1]}",
                                    seconds / 5, rounds)
            rows += codec_table(synthetic_arrays(folder, RESOLUTIONS[0], frames), folder,
                                f"synthetic {RESOLUTIONS[0][0]}x{RESOLUTIONS[0][1]}", seconds / 5, rounds)
            print_codec_table(rows)
            print_layout_table(rows)
            for layout in dict.fromkeys([args.layouts[0], "blosc-lz4"]):
                print(f"\nwindows at {RESOLUTIONS[-1][0]}x{RESOLUTIONS[-1][1]} (textured, {layout}):")
                window_reads(textured_arrays(tree, RESOLUTIONS[-1]), folder, LAYOUTS[layout], seconds, rounds)
        inputs = PackInputs.from_paths(tree.root, tree.semantic, tree.instance, tree.flow)
        settings = {"pack": {"resolutions": [list(r) for r in RESOLUTIONS], "compression": "none",
                             "chunk_frames": 1}, "label_set": "train19_other"}
        plain = pack(tree.subset, "train", inputs, folder / "train.h5", settings, progress=False)
        packed = {layout: recode(plain, LAYOUTS[layout], folder / f"train-{layout}.h5", COPIES)
                  for layout in args.layouts}
        missed = []
        for size in RESOLUTIONS:
            rates = reader_rates(tree, packed, size, seconds, rounds)
            missed += print_reader_table(size, rates, args.layouts)
        print(f"\ngoals (hdf5 >= {GOAL_PNG:.0f}x png, memory <= {GOAL_MEMORY:.0f}x hdf5) for "
              f"{args.layouts[0]}: " + ("all met" if not missed else "missed: " + "; ".join(missed)))
        if torch.cuda.is_available():
            print(f"\non the GPU ({torch.cuda.get_device_name()}), {args.layouts[0]}, median ms:")
            for size in RESOLUTIONS:
                times = gpu_expand_times(packed[args.layouts[0]], size)
                print(f"  {size[0]}x{size[1]}: " + ", ".join(f"{k} {v:.3f}" for k, v in times.items()))
        print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
