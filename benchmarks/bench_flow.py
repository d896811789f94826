"""Reference flow on the CPU at 256x512: pairs/s and memory of each backend, quality, storage.

- speed: DIS (baseline) and FlowNet2 (ptlflow, random weights: same arithmetic as real ones)
  on consecutive frames of the synthetic city, each backend in a fresh process so its memory
  is its own: ``model`` = resident memory the built backend adds, ``peak`` = the highest
  resident memory during the timed pairs above the process before the backend was built
  (Linux VmHWM, reset through /proc/self/clear_refs after building);
- quality: EPE and warping error of the DIS presets against the synthetic city's true flow;
- storage: the end-point error float16 adds, and bytes a pair for float16/float32 with and
  without gzip(1)+shuffle.

Usage: ``.venv/bin/python benchmarks/bench_flow.py [--flownet2-pairs 2] [--dis-pairs 14]``
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

HEIGHT, WIDTH = 256, 512
FRAMES, ANNOTATED = 16, 8


def make_city(root: Path) -> Path:
    from pipeline.data.synthetic import generate

    generate(root, {"train": {"synthberg": 1}}, seed=0, height=HEIGHT, width=WIDTH,
             frames=FRAMES, annotated=ANNOTATED)
    return root


def city_frames(root: Path) -> np.ndarray:
    from pipeline.data.cityscapes import find_snippets, read_frame

    snippet = find_snippets(root, "train", "synthberg", FRAMES, ANNOTATED)[0]
    return np.stack([read_frame(path) for path in snippet.frame_paths])


def _rss_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def measure(name: str, frames_file: str, pairs: int, queue: multiprocessing.Queue) -> None:
    """In a fresh process: build the backend, warm up on one pair, time ``pairs`` pairs one by one."""
    from pipeline.flow.backends import make_backend

    frames = np.load(frames_file)
    before = _rss_kb("VmRSS")
    start = time.perf_counter()
    backend = make_backend({"backend": name, "checkpoint": None}, device="cpu", allow_random=True)
    build_s = time.perf_counter() - start
    built = _rss_kb("VmRSS")
    backend(frames[:1], frames[1:2])                  # warm-up (allocators, lazy init)
    exact = _reset_peak()
    start = time.perf_counter()
    for t in range(1, pairs + 1):
        backend(frames[t - 1:t], frames[t:t + 1])
    seconds = time.perf_counter() - start
    peak = _rss_kb("VmHWM")
    queue.put({"backend": name, "pairs": pairs, "pairs_per_s": pairs / seconds, "build_s": build_s,
               "model_mb": (built - before) / 1024, "peak_mb": (peak - before) / 1024,
               "peak_exact": exact, "weights_real": backend.weights_real})


def run_isolated(name: str, frames_file: Path, pairs: int) -> dict:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=measure, args=(name, str(frames_file), pairs, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def quality(root: Path) -> list[tuple[str, dict]]:
    from pipeline.flow.backends import DISBackend
    from pipeline.flow.quality import evaluate_on_truth

    return [(preset, evaluate_on_truth(DISBackend(preset), root, "train", "synthberg",
                                       frames=FRAMES, annotated_index=ANNOTATED))
            for preset in ("ultrafast", "fast", "medium")]


def storage(flow: np.ndarray, folder: Path) -> dict[str, float]:
    """Bytes a pair in HDF5, chunked one flow a chunk, per dtype and filter."""
    sizes = {}
    for dtype in ("float16", "float32"):
        for label, options in (("none", {}), ("gzip1+shuffle",
                                              {"compression": "gzip", "compression_opts": 1, "shuffle": True})):
            path = folder / f"{dtype}-{label}.h5"
            with h5py.File(path, "w") as file:
                file.create_dataset("f", data=flow.astype(dtype), chunks=(1, *flow.shape[1:]), **options)
            sizes[f"{dtype} {label}"] = path.stat().st_size / len(flow)
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--flownet2-pairs", type=int, default=2)
    parser.add_argument("--dis-pairs", type=int, default=FRAMES - 2)
    args = parser.parse_args()
    from pipeline.flow.backends import DISBackend
    from pipeline.flow.stage import float16_rounding_error

    with tempfile.TemporaryDirectory() as tmp:
        root = make_city(Path(tmp) / "city")
        frames = city_frames(root)
        frames_file = Path(tmp) / "frames.npy"
        np.save(frames_file, frames)
        dis = run_isolated("dis", frames_file, min(args.dis_pairs, FRAMES - 2))
        flownet2 = run_isolated("flownet2", frames_file, min(args.flownet2_pairs, FRAMES - 2))
        presets = quality(root)
        flow = DISBackend()(frames[:-1], frames[1:])
        rounding = float16_rounding_error(flow)
        sizes = storage(flow, Path(tmp))

    print(f"reference flow at {HEIGHT}x{WIDTH}, CPU, batch 1, synthetic city (seed 0)")
    for result in (dis, flownet2):
        ratio = result["pairs_per_s"] / dis["pairs_per_s"]
        weights = "real" if result["backend"] == "dis" else "random"
        print(f"  {result['backend']:9s} {result['pairs_per_s']:8.3f} pairs/s  ({ratio:7.4f} x DIS, "
              f"{result['pairs']} pairs)  build {result['build_s']:5.1f} s  model {result['model_mb']:7.1f} MB  "
              f"peak {result['peak_mb']:7.1f} MB{'' if result['peak_exact'] else ' (lifetime peak)'}  "
              f"weights {weights}")
    print("quality of DIS against the true flow (valid pixels; warp error: mean |RGB| in [0, 1])")
    for preset, result in presets:
        print(f"  {preset:9s} EPE {result['epe']:.3f} px (true motion {result['true_length']:.2f} px)  "
              f"warp error {result['warp_error']:.4f} vs zero flow {result['warp_error_zero']:.4f} "
              f"(ratio {result['warp_ratio']:.3f}; true flow {result['warp_error_true']:.4f})  "
              f"{result['pairs']} pairs")
    print(f"float16 storage of DIS flow: mean EPE {rounding['mean_epe']:.2e} px, max {rounding['max_epe']:.2e} px, "
          f"mean/mean length {rounding['mean_relative']:.2e}, max relative {rounding['max_relative']:.2e}")
    print("bytes a pair: " + ", ".join(f"{key} {value / 1024:.0f} KiB" for key, value in sizes.items()))


if __name__ == "__main__":
    main()
