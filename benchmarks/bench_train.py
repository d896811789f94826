"""Training step time per variant and stage: the thesis's way (fp32, eager) against the fast path.

Five modes on a GPU, timed in one run and printed as ratios, per variant and per training stage
(the CRN's second stage at 512x1024 with its added module):

- ``fp32``: the thesis's arithmetic, eager, IEEE float32 (its V100s and the PyTorch of its day had
  no TF32, so TF32 is switched off);
- ``tf32``: eager with today's PyTorch defaults (cuDNN convolutions in TF32);
- ``fast``: bf16 autocast, ``torch.compile`` of the generator only (``train.compile_scope:
  generator``), fused Adam, cuDNN autotuning, through ``pipeline.train.loop``'s functions;
- ``fast_all``: the same with ``compile_scope: all`` (the encoder, criteria and discriminators
  compiled too), in torch.compile's ``default`` mode (the loop's default on fp32 GPUs);
- ``fast_graphs``: ``fast_all`` with ``train.compile_mode: reduce-overhead`` (each compiled graph
  replayed as a CUDA graph: the fast step is bound by launching kernels; cuDNN's autotuner off),
  what the loop does by default where it trains in bf16. A mode that fails is recorded as
  ``{mode}_error`` and the run goes on.

On the CPU the loop runs fp32 only (exact), timed at a small size; ``--compile-on-cpu`` adds the
two compiled modes there (still fp32), which shows they run but not what they gain on a GPU
(inductor's CPU code was slower than eager at 64x128: ``benchmarks/results/train_gpu.md``). There
each step time is also printed as a ratio to v02's (the plain weight-normed CRN, bench_models'
baseline) in the same mode and stage, timed in the same run: v02 is timed first when
``--variants`` leaves it out (printed, not written to ``--json``).

The study's GPU-days follow from the step times and the thesis's schedule: every stage's
optimiser steps (epochs x samples x frames stepped per sample: 808 windows of 6 frames for the
prior-frame variants, 2975 gtFine frames for the image variants) times its step time, beside
the thesis's 55.8 V100-days.

    python benchmarks/bench_train.py                 # CPU: every variant at 64x128, widths / 8
    python benchmarks/bench_train.py --full          # GPU: the thesis's sizes and widths
    python benchmarks/bench_train.py --full --warm-only --variants v01 v11   # fill the compile cache

``--warm-only`` runs the fast path once per configuration and times nothing: several such
processes in parallel fill TorchInductor's on-disk cache, so a timing run after them does not
spend its time compiling (benchmarks/gpu_train.sh does this).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from pipeline.config import DEFAULT_CONFIG, load_config
from pipeline.data.labels import num_channels
from pipeline.train.loop import build_models, compile_models, make_optimizers, move_models, set_up_device
from pipeline.train.schedule import StagePlan, optimizer_steps, plan_stages
from pipeline.train.settings import train_settings
from pipeline.train.step import random_window, train_window

# Thesis 5.2: 55.8 GPU-days on V100s for all 14 variants.
THESIS_GPU_DAYS = 55.8
# Thesis 4.5.1: the prior-frame variants' training set kept 808 sequences (config.yaml: subset);
# the image variants trained on the 2975 gtFine train frames (train.image_data: gtfine_train).
THESIS_TRAIN_SEQUENCES = 808
THESIS_TRAIN_IMAGES = 2975
SMALL = (64, 128)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


MODES = ("fp32", "tf32", "fast", "fast_all", "fast_graphs")
BASELINE = "v02"    # the CPU run's ratios: each step time against this variant's, same run
CPU_MODES = ("fp32", "fast", "fast_all")    # with --compile-on-cpu (no TF32, no CUDA graphs there)


def prepare(models, settings: dict, device: torch.device, mode: str):
    """Place the models and make the optimisers (and compile) as the training loop does, in ``mode``."""
    fast = mode.startswith("fast")
    train = dict(settings["train"], amp="auto" if fast else "off", compile="on" if fast else "off",
                 compile_scope="generator" if mode == "fast" else "all",
                 compile_mode="reduce-overhead" if mode == "fast_graphs" else "default")
    torch.backends.cudnn.allow_tf32 = mode != "fp32"
    set_up_device(train, device)
    move_models(models, device)
    compile_models(models, train, device)
    return make_optimizers(models, settings["entry"], train, device)


def time_step(models, optimizers, window: dict, repeats: int) -> float:
    """Seconds per optimiser step (one frame), after warm-up windows (and compilation)."""
    device = window["image"].device
    # CUDA-graph trees run a compiled graph once to warm up, record it on the next call and replay
    # it from the third: a one-frame warm-up timed the recording (v03 0.110 s against 0.035 s).
    for _ in range(3 if models.cuda_graphs else 1):
        train_window(models, optimizers, window)
    _sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        train_window(models, optimizers, window)
    _sync(device)
    stepped = window["image"].shape[1] - (1 if models.entry["flow"] else 0)
    return (time.perf_counter() - start) / (repeats * stepped)


def configurations(config: dict, variants: list[str], full: bool, stages: str):
    """(variant, settings, plan) for each training stage to time: every variant's first stage,
    then the second stages (so a deadline cuts those, which ``gpu_days`` can scale)."""
    found = []
    for name in variants:
        settings = train_settings(config, name)
        plans = plan_stages(settings["entry"], config["train"])
        for plan in plans if stages == "all" else plans[:1]:
            if not full:
                plan = StagePlan(plan.index, *SMALL, plan.epochs, None, plan.output_images, plan.decay)
            found.append((name, settings, plan))
    return sorted(found, key=lambda item: item[2].index)


def measure(name: str, settings: dict, plan: StagePlan, device, labels: int, args) -> dict:
    entry = settings["entry"]
    frames = (3 if entry["prior"] else 1) + (1 if entry["flow"] else 0)
    window = random_window(frames, plan.height, plan.width, labels, device)
    record = {"variant": name, "network": entry["network"], "stage": plan.index,
              "size": f"{plan.height}x{plan.width}",
              "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu"}
    torch.manual_seed(0)
    models = build_models(entry, settings, plan)
    on_cpu = CPU_MODES if args.compile_on_cpu else ("fp32",)
    modes = [m for m in MODES if device.type == "cuda" or m in on_cpu]
    modes = [m for m in modes if m.startswith("fast")] if args.warm_only else modes
    modes = [m for m in args.modes if m in modes] if args.modes else modes     # in the order asked
    for mode in modes:
        try:
            optimizers = prepare(models, settings, device, mode)
            if args.warm_only:
                train_window(models, optimizers, window)
                _sync(device)
            else:
                record[mode] = time_step(models, optimizers, window, args.repeats)
                # Printed as it comes: a run stopped at its time limit keeps what it measured.
                print(f"{name} stage {plan.index} {mode}: {record[mode]:.4f} s/step", flush=True)
            if args.profile and mode == modes[-1]:
                profile(models, optimizers, window, args.profile)
        except Exception as error:  # noqa: BLE001 -- one failing mode must not cost the others' timings
            record[f"{mode}_error"] = f"{type(error).__name__}: {error}"[:500]
            print(f"{name} stage {plan.index} {mode} failed: {record[f'{mode}_error']}", flush=True)
        optimizers = None
        if device.type == "cuda":
            record[f"{mode}_peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
            torch.cuda.reset_peak_memory_stats()
    return record


def profile(models, optimizers, window: dict, rows: int) -> None:
    """The kernels of one window, most device time first."""
    activities = [torch.profiler.ProfilerActivity.CPU]
    if window["image"].is_cuda:
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as prof:
        train_window(models, optimizers, window)
        _sync(window["image"].device)
    key = "self_cuda_time_total" if window["image"].is_cuda else "self_cpu_time_total"
    print(prof.key_averages().table(sort_by=key, row_limit=rows, max_name_column_width=60), flush=True)


def gpu_days(records: list[dict], config: dict, mode: str) -> tuple[float, list[str]]:
    """The study's GPU-days in ``mode`` from per-stage step times, and the stages estimated.

    A second stage that was not timed takes its first stage's time times the mean ratio of the
    second stages that were (same network); a stage with neither is left out and named.
    """
    timed = {(r["variant"], r["stage"]): r[mode] for r in records if mode in r}
    ratios = [timed[(v, 1)] / timed[(v, 0)] for v, stage in timed if stage == 1 and (v, 0) in timed]
    seconds, estimated = 0.0, []
    for name in sorted(config["variants"]):
        settings = train_settings(config, name)
        for plan in plan_stages(settings["entry"], config["train"]):
            step = timed.get((name, plan.index))
            if step is None and plan.index > 0 and ratios and (name, 0) in timed:
                step = timed[(name, 0)] * sum(ratios) / len(ratios)
                estimated.append(f"{name}/stage{plan.index} scaled")
            if step is None:
                estimated.append(f"{name}/stage{plan.index} left out")
                continue
            seconds += optimizer_steps(plan, settings["entry"], config["train"], _samples(settings["entry"], config)) * step
    return seconds / 86400, estimated


def _samples(entry: dict, config: dict) -> int:
    """Training samples an epoch in the thesis's study: windows of the 808 sequences, or frames."""
    if entry["prior"] or config["train"]["image_data"] == "train":
        return THESIS_TRAIN_SEQUENCES
    return THESIS_TRAIN_IMAGES


def report(records: list[dict], config: dict, device: str) -> None:
    modes = [m for m in MODES if any(m in r for r in records)]
    ratios = [(fast, base) for fast in modes if fast.startswith("fast") for base in ("fp32", "tf32") if base in modes]
    print("\nvariant net       stage size      " + "".join(f"{m + ' s/step':>14s}" for m in modes)
          + "".join(f"{f'{fast} vs {base}':>18s}" for fast, base in ratios)
          + ("".join(f"{f'{m} x {BASELINE}':>14s}" for m in modes) if device == "cpu" else ""))
    for r in records:
        line = f"{r['variant']}     {r['network']:9s} {r['stage']}     {r['size']:9s} "
        line += "".join(f"{r[m]:14.4f}" if m in r else f"{'-':>14s}" for m in modes)
        line += "".join(f"{r[base] / r[fast]:17.2f}x" if fast in r and base in r else f"{'-':>18s}"
                        for fast, base in ratios)
        if device == "cpu":
            line += "".join(_versus_baseline(records, r, m) for m in modes)
        print(line)
    if device == "cpu":
        return
    for mode in modes:
        days, estimated = gpu_days(records, config, mode)
        note = f" (not timed: {', '.join(estimated)})" if estimated else ""
        print(f"study GPU-days, {mode}: {days:.1f} on {device} (thesis: {THESIS_GPU_DAYS} on V100s){note}")


def _versus_baseline(records: list[dict], record: dict, mode: str) -> str:
    """``record``'s step time in ``mode`` over the baseline variant's at the same stage, or '-'."""
    base = next((r for r in records if r["variant"] == BASELINE and r["stage"] == record["stage"]), None)
    if base is None or mode not in base or mode not in record:
        return f"{'-':>14s}"
    return f"{record[mode] / base[mode]:14.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="the thesis's sizes and widths (a GPU)")
    parser.add_argument("--variants", nargs="*", help="default: all of config.yaml")
    parser.add_argument("--stages", choices=["first", "all"], help="default: all with --full, else first")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--modes", nargs="*", choices=MODES,
                        help="the modes to time, in this order (--profile profiles the last); default: all the device has")
    parser.add_argument("--warm-only", action="store_true", help="compile once per configuration, time nothing")
    parser.add_argument("--deadline", type=float, default=None, help="seconds; start no configuration after it")
    parser.add_argument("--json", type=Path, help="append one JSON line per configuration here")
    parser.add_argument("--compile-on-cpu", action="store_true",
                        help="on the CPU also time the compiled modes (fp32; not a guide to the GPU)")
    parser.add_argument("--profile", type=int, default=0, metavar="ROWS",
                        help="print the top kernels of one window in the last mode")
    parser.add_argument("--from-json", type=Path, help="print the table and GPU-days of an earlier --json run")
    args = parser.parse_args()
    if args.from_json:
        records = [json.loads(line) for line in args.from_json.read_text().splitlines() if line.strip()]
        report(records, load_config([DEFAULT_CONFIG]), device=records[0].get("device", "cpu"))
        return
    began = time.perf_counter()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    config = load_config([DEFAULT_CONFIG])
    config["weights"]["allow_random"] = True
    if not args.full:
        config["train"]["model_overrides"] = {"generator": {"width_divisor": 8}, "discriminator": {"width_divisor": 4}}
    labels = num_channels(config["labels"]["label_set"])
    print(f"device: {torch.cuda.get_device_name() if device.type == 'cuda' else 'cpu'}; torch {torch.__version__}; "
          f"{'thesis sizes and widths' if args.full else '64x128, widths / 8'}; random weights; "
          "seconds per optimiser step (one frame)", flush=True)
    records = []
    stages = args.stages or ("all" if args.full else "first")
    names = args.variants or sorted(config["variants"])
    # On the CPU the table's ratios are to the baseline variant's step time in this run.
    baseline_only = device.type == "cpu" and not args.warm_only and BASELINE not in names
    if baseline_only:
        names = [BASELINE, *names]
        print(f"{BASELINE} timed as the baseline of the ratios (not written to --json)", flush=True)
    for name, settings, plan in configurations(config, names, args.full, stages):
        if args.deadline and time.perf_counter() - began > args.deadline:
            print(f"deadline reached: {name} stage {plan.index} not run", flush=True)
            continue
        record = measure(name, settings, plan, device, labels, args)
        records.append(record)
        print(json.dumps(record), flush=True)
        if args.json and not (baseline_only and name == BASELINE):
            with args.json.open("a") as handle:
                handle.write(json.dumps(record) + "\n")
    if not args.warm_only:
        report(records, config, records[0]["device"] if records else "cpu")


if __name__ == "__main__":
    main()
