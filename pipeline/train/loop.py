"""The resumable training loop: stages, epochs, checkpoints on a timer and on SIGTERM.

A cluster job that hits its walltime gets SIGTERM: the loop finishes the window it is on,
saves the resume state (see ``state.py``) and exits with status 143, so Snakemake's retry
resubmits it and the new job continues exactly where this one stopped. The data order survives
too: an epoch's sample order is a pure function of (seed, stage, epoch) and a window's first
frame of (seed, stage, epoch, index) (``pack.dataset.window_start``). Nothing
finished is recomputed: a finished run's outputs are declared, the resume folder is not.

On a GPU: bf16 autocast where the GPU has bf16 hardware (compute capability 8.0 on; fp32 on older
ones such as Lengau's V100s, see ``choose_precision``), ``torch.compile`` of every network (or of
the generator: ``train.compile_scope``), replayed as CUDA graphs where the step runs in bf16
(``train.compile_mode``; cuDNN's autotuner is off under graphs), and fused Adam (``train.amp``,
``train.compile``: ``auto`` turns them on there). On the CPU: fp32, deterministic algorithms.

The checkpoint interval and the compile settings (``RUNTIME_KEYS``) come apart from the
settings (``runtime``): they are not in the resume fingerprint, so changing them neither retrains
nor blocks a resume.
"""

from __future__ import annotations

import csv
import hashlib
import math
import signal
import sys
import time
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from pipeline.cli import TERMINATED_EXIT      # 128 + SIGTERM: Snakemake sees a failure and retries
from pipeline.data.labels import num_channels
from pipeline.device import pick_device
from pipeline.errors import PipelineError
from pipeline.io import atomic_path, make_parent, write_json
from pipeline.models.build import (build_discriminators, build_feature_encoder, build_generator, build_losses,
                                   optimizer_settings)
from pipeline.models.crn import HEAD_PREFIXES
from pipeline.pack.dataset import FrameDataset, WindowDataset, expand
from pipeline.pack.schema import TRAINING_SPLITS
from pipeline.pack.verify import packed_header
from pipeline.provenance import code_version, provenance
from pipeline.train.events import EVENTS_DIR, ScalarLog, copy_events
from pipeline.train.log_columns import LOG_COLUMNS
from pipeline.train.schedule import StagePlan, plan_stages
from pipeline.train.settings import RUNTIME_DEFAULTS, split_runtime
from pipeline.train.state import (RESUME_NAME, History, Position, StopFlag, fingerprint, load_resume, restore_rng,
                                  save_resume, seed_rng)
from pipeline.train.checkpoint import save_trained
from pipeline.train.step import Models, Optimizers, train_window

__all__ = ["train_variant", "build_models", "move_models", "set_up_device", "compile_models", "make_optimizers",
           "fast_path", "choose_precision", "BF16_CAPABILITY", "data_identity",
           "make_loader", "TERMINATED_EXIT"]

LOG_NAME = "losses.csv"


def build_models(entry: Mapping[str, Any], settings: Mapping[str, Any], plan: StagePlan) -> Models:
    """Generator, encoder, discriminators and criteria of a variant at a stage's size."""
    overrides = settings["train"].get("model_overrides", {})
    labels = num_channels(settings["label_set"])
    return Models(
        entry=entry,
        generator=build_generator(entry, labels, plan.height, plan.width, stage_output_images=plan.output_images,
                                  **overrides.get("generator", {})),
        criteria=build_losses(entry, settings["losses"], settings["weights"]),
        encoder=build_feature_encoder(entry, **overrides.get("encoder", {})),
        discriminators=build_discriminators(entry, labels, **overrides.get("discriminator", {})),
    )


# bf16 tensor cores came with Ampere (8.0). A V100 (7.0) has none: torch.cuda.is_bf16_supported()
# may still answer True there (emulated), and autocast would run bf16 slower and coarser than fp32.
BF16_CAPABILITY = (8, 0)


def fast_path(train: Mapping, device: torch.device) -> bool:
    """Fused Adam and cuDNN's autotuned kernels (not under CUDA graphs: ``set_up_device``) on a GPU
    unless ``train.amp`` is off (the thesis's way); whether the step also runs in bf16 is
    ``choose_precision``'s answer."""
    return device.type == "cuda" and train.get("amp", "auto") in ("auto", "bf16")


def choose_precision(train: Mapping, device: torch.device) -> tuple[str, str]:
    """``("bf16" | "fp32", why)``: the step's arithmetic. ``train.amp: auto`` takes bf16 autocast
    only on a GPU of compute capability 8.0 or later, and fp32 (the thesis's arithmetic) on older
    ones; ``bf16`` forces it, ``off`` and the CPU are fp32. The reason goes into the checkpoint."""
    amp = train.get("amp", "auto")
    if device.type != "cuda":
        return "fp32", f"{device.type}: fp32 (deterministic)"
    if amp == "off":
        return "fp32", "train.amp: off"
    major, minor = torch.cuda.get_device_capability(device)
    capability = f"compute capability {major}.{minor}"
    has_bf16 = (major, minor) >= BF16_CAPABILITY
    if amp == "bf16":
        return "bf16", f"train.amp: bf16 on {capability}" + ("" if has_bf16 else " (no bf16 hardware: emulated)")
    if has_bf16:
        return "bf16", f"train.amp: auto, {capability} has bf16 hardware"
    return "fp32", (f"train.amp: auto, {capability} < {BF16_CAPABILITY[0]}.{BF16_CAPABILITY[1]} has no bf16 "
                    "hardware: fp32, the thesis's arithmetic")


def compile_mode(train: Mapping, device: torch.device) -> str | None:
    """The mode ``compile_models`` compiles in, or None where it does not compile (it does where
    ``train.compile`` is on, or auto on a GPU). ``train.compile_mode: auto`` takes CUDA graphs
    (``reduce-overhead``) where the step runs in bf16, and compile's ``default`` mode elsewhere."""
    train = {**RUNTIME_DEFAULTS, **train}
    if not (train["compile"] == "on" or (train["compile"] == "auto" and device.type == "cuda")):
        return None
    if train["compile_mode"] != "auto":
        return train["compile_mode"]
    # bf16 steps are bound by launching kernels, which graphs take off the host (H200: 1.2-1.6x
    # over default); fp32 GPUs such as Lengau's V100s are bound by arithmetic, and keep cuDNN's
    # autotuner, which graphs turn off (set_up_device). Neither was measured on a V100.
    return "reduce-overhead" if choose_precision(train, device)[0] == "bf16" else "default"


def uses_cuda_graphs(train: Mapping, device: torch.device) -> bool:
    """Whether ``compile_models`` compiles into CUDA graphs."""
    return device.type == "cuda" and compile_mode(train, device) == "reduce-overhead"


def set_up_device(train: Mapping, device: torch.device) -> None:
    """CPU: deterministic algorithms (resumes are exact). Fast path: cuDNN picks its fastest
    kernels once per input size, which is fixed within a stage, except under CUDA graphs."""
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
    # cuDNN's autotuner times its kernels the first time it meets a shape *and* memory alignment;
    # under CUDA graphs a new alignment can first come inside a capture, where nothing may be
    # timed, and the capture fails ("FIND was unable to find an engine"; seen on an H200 in a
    # discriminator's compiled backward). Graphs take cuDNN's heuristic choice instead.
    torch.backends.cudnn.benchmark = fast_path(train, device) and not uses_cuda_graphs(train, device)


def make_optimizers(models: Models, entry: Mapping, train: Mapping, device: torch.device) -> Optimizers:
    """Adam per the thesis's schedule; fused on the fast path (under bf16 autocast where
    ``choose_precision`` takes it), plain otherwise
    (the thesis's way, which ``benchmarks/bench_train.py`` compares against). ``train.grad_clip``
    clips the generator (not the encoder) and each discriminator on its own; the groups are the
    models' parameters now, so call this again whenever a module is replaced (growth)."""
    fast = fast_path(train, device)
    adam = partial(torch.optim.Adam, fused=True) if fast else torch.optim.Adam
    settings = optimizer_settings(entry, train)
    generator = adam(models.generator_parameters(), **settings["generator"])
    discriminator = None
    if models.discriminators is not None:
        discriminator = adam(models.discriminators.parameters(), **settings["discriminator"])
    bf16 = choose_precision(train, device)[0] == "bf16"
    autocast = partial(torch.autocast, "cuda", dtype=torch.bfloat16) if bf16 else None
    generator_clip, discriminator_clip = models.clip_groups()
    return Optimizers(generator, discriminator, train["grad_clip"], autocast,
                      generator_clip=generator_clip, discriminator_clip=discriminator_clip)


def _set_lr(optimizers: Optimizers, plan: StagePlan, epoch: int, train: Mapping, entry: Mapping) -> float:
    factor, base = plan.lr_factor(epoch), optimizer_settings(entry, train)
    generator_lr = base["generator"]["lr"] * factor
    for group in optimizers.generator.param_groups:
        group["lr"] = generator_lr
    if optimizers.discriminator is not None:
        # Thesis quirk (a setting): once decay starts the discriminator takes the generator's lr.
        follow = train["discriminator"].get("follow_generator_decay", True) and factor < 1.0
        for group in optimizers.discriminator.param_groups:
            group["lr"] = generator_lr if follow else base["discriminator"]["lr"] * factor
    return generator_lr


def _dataset(data_path: Path, entry: Mapping, train: Mapping, plan: StagePlan, label_set: str, on_cpu: bool):
    """Samples expand (one-hot, edges) in the loader on the CPU; on a GPU they travel compact
    (uint8 frames) and expand there, where a 512x1024 one-hot costs nothing to make."""
    resolution = (plan.height, plan.width)
    if entry["prior"]:
        window = train["window"] + (1 if entry["flow"] else 0)
        return WindowDataset(data_path, resolution, window=window, label_set=label_set, seed=train["seed"],
                             expand=on_cpu)
    return FrameDataset(data_path, resolution, label_set=label_set, frames="annotated", expand=on_cpu)


FRAME_KEYS = ("image", "labels", "label_ids", "instances", "edge", "flow", "flow_valid")


def _as_window(batch: dict) -> dict:
    """Frame samples get a time axis of 1, so one step function serves both datasets."""
    if batch["image"].dim() == 4:
        return {k: (v.unsqueeze(1) if k in FRAME_KEYS else v) for k, v in batch.items()}
    return batch


def _order(seed: int, stage: int, epoch: int, count: int) -> list[int]:
    """The epoch's sample order: a pure function of (seed, stage, epoch), so a resume sees it again."""
    return np.random.default_rng((seed, stage, epoch)).permutation(count).tolist()


def _to(batch: dict, device: torch.device) -> dict:
    return {k: (v.to(device, non_blocking=True) if torch.is_tensor(v) else v) for k, v in batch.items()}


def train_variant(variant: str, settings: Mapping[str, Any], data_path: str | Path, output_dir: str | Path,
                  resume_dir: str | Path, device: str = "auto", progress: bool | None = None,
                  runtime: Mapping[str, Any] | None = None) -> Path:
    """Train ``variant`` through its stages; returns the path of ``model.pt``.

    ``settings``: ``train_settings`` of the config, which the resume fingerprint holds.
    ``runtime``: how to run (``train_runtime``: checkpoint interval, compile), outside the
    fingerprint; keys missing there are taken from ``settings["train"]``, then the defaults."""
    settings, found_runtime = split_runtime(settings)
    runtime = {**RUNTIME_DEFAULTS, **found_runtime, **(runtime or {})}
    entry, train = settings["entry"], {**settings["train"], **runtime}
    data_path, output_dir, resume_dir = Path(data_path), Path(output_dir), Path(resume_dir)
    data_provenance, split = packed_header(data_path)      # a missing or corrupt file stops here, named
    check_training_split(variant, entry, train, data_path, split)
    make_parent(output_dir / "model.pt")     # not writable: said now, not when the run is done
    device = pick_device(device)
    set_up_device(train, device)
    precision, why = choose_precision(train, device)
    print(f"{variant}: {precision} ({why})", file=sys.stderr)
    code = code_version("pipeline.train")
    expected = fingerprint(variant, {**settings, "data": data_identity(data_provenance)}, code)
    state = load_resume(resume_dir, expected)
    if state is None:       # a fresh start logs afresh (a finished run of other settings left its log)
        (resume_dir / LOG_NAME).unlink(missing_ok=True)
    run = _Training(variant, settings, train, data_path, resume_dir, device, expected, state, progress)
    history = History(resume_dir, variant)
    history.begin(f"resumed at {_where(run.position)}" if state else "started")
    terminate = StopFlag()    # SIGTERM or Ctrl-C: the loop saves and exits after the current window
    try:
        run.all_stages(terminate)
    except BaseException as stop:
        history.stopped(stop, _where(run.position))
        raise
    finally:
        terminate.restore()
        run.log.close()
    elapsed = run.elapsed()
    model = _write_outputs(variant, settings, run.models, run.plans[-1], data_path, data_provenance, output_dir,
                           resume_dir, elapsed, code, run.position, _hardware(run.models, train, device, runtime))
    history.add(f"finished: {run.position.step} windows, {elapsed / 3600:.2f} h of training")
    return model


class _Training:
    """One attempt at training a variant: its models and optimisers, built afresh or restored from
    ``state`` (a resume.pt), the position in its stages and the loss log, and how it goes on: a
    stage's epochs window by window, the generator's growth between stages, and the saves (on the
    timer, on SIGTERM or Ctrl-C, after each stage) that a later attempt resumes from exactly."""

    def __init__(self, variant: str, settings: Mapping[str, Any], train: Mapping[str, Any], data_path: Path,
                 resume_dir: Path, device: torch.device, expected: dict, state: dict | None, progress: bool | None):
        self.variant, self.settings, self.train, self.entry = variant, settings, train, settings["entry"]
        self.data_path, self.resume_dir, self.device, self.expected = data_path, resume_dir, device, expected
        self.progress = progress
        self.plans = plan_stages(self.entry, train)
        self.position = state["position"] if state else Position()
        seed_rng(train["seed"])      # every generator resume.pt keeps; a resume then restores them
        self.models = build_models(self.entry, settings, self.plans[0])
        for plan in self.plans[1:self.position.stage + 1]:      # resumed in a later stage
            self.models.generator = _grow(self.models, plan, train, torch.device("cpu"))
        move_models(self.models, device)
        compile_models(self.models, train, device)
        self.optimizers = make_optimizers(self.models, self.entry, train, device)
        self.elapsed_before = 0.0
        if state:
            for name, module in self.models.trained().items():
                module.load_state_dict(state["modules"][name])
            for name, optimizer in self.optimizers.all().items():
                optimizer.load_state_dict(state["optimizers"][name])
            restore_rng(state["rng"])
            self.elapsed_before = state["extra"].get("elapsed", 0.0)
        self.log = _LossLog(resume_dir / LOG_NAME, state["extra"].get("log_rows", 0) if state else 0)
        self.started = self.last_save = time.monotonic()

    def elapsed(self) -> float:
        """Seconds of training over every attempt so far."""
        return self.elapsed_before + time.monotonic() - self.started

    def save(self) -> None:
        self.log.flush()
        save_resume(self.resume_dir, self.expected, self.position, self.models.trained(), self.optimizers.all(),
                    extra={"elapsed": self.elapsed(), "log_rows": self.log.rows},
                    finished=self.position.stage >= len(self.plans))
        self.last_save = time.monotonic()

    def all_stages(self, terminate: StopFlag) -> None:
        """Train the remaining stages, growing the generator between them; saved after each."""
        while self.position.stage < len(self.plans):
            self.stage(self.plans[self.position.stage], terminate)
            _next_stage(self.position)
            if self.position.stage < len(self.plans):
                self.grow(self.plans[self.position.stage])
            self.save()

    def stage(self, plan: StagePlan, terminate: StopFlag) -> None:
        """The stage's epochs from the saved position on, a window a step (``plan.epochs`` may be a
        fraction: the prior-frame variants' 60%, or a test's few samples)."""
        position, train = self.position, self.train
        dataset = _dataset(self.data_path, self.entry, train, plan, self.settings["label_set"],
                           self.device.type == "cpu")
        samples_total = max(1, math.ceil(plan.epochs * len(dataset)))
        epochs = math.ceil(samples_total / len(dataset))
        bar = tqdm(total=samples_total, initial=position.epoch * len(dataset) + position.sample,
                   desc=f"{self.variant} stage {plan.index} {plan.height}x{plan.width}",
                   disable=self.progress is False)
        while position.epoch < epochs and not _stage_done(plan, position):
            lr = _set_lr(self.optimizers, plan, position.epoch, train, self.entry)
            if hasattr(dataset, "set_epoch"):
                dataset.set_epoch(position.epoch, position.stage)
            in_epoch = min(len(dataset), samples_total - position.epoch * len(dataset))
            order = _order(train["seed"], position.stage, position.epoch, len(dataset))[position.sample:in_epoch]
            for sample in make_loader(dataset, order, self.device, train["seed"]):
                self.step(sample, plan, lr, dataset.expand)
                bar.update(1)
                self.save_if_due(terminate)
                if _stage_done(plan, position):
                    break
            else:
                position.epoch += 1
                position.sample = 0
        bar.close()

    def step(self, sample: dict, plan: StagePlan, lr: float, expanded: bool) -> None:
        """Train on one window (a frame for an image variant) and log its losses."""
        batch = _to(_batched(sample), self.device)
        if not expanded:
            batch = expand(batch, self.settings["label_set"])
        terms = train_window(self.models, self.optimizers, _as_window(batch))
        _check_finite(self.variant, terms, self.position, sample["snippet"], self.resume_dir, self.data_path)
        self.position.sample += 1
        self.position.step += 1
        self.position.stage_step += 1
        self.log.write(self.position, plan, lr, sample["snippet"], terms)

    def save_if_due(self, terminate: StopFlag) -> None:
        """Save every ``checkpoint_minutes``, and on SIGTERM or Ctrl-C save, then exit."""
        if terminate.requested or time.monotonic() - self.last_save > 60 * self.train["checkpoint_minutes"]:
            self.save()
            if terminate.requested:
                raise SystemExit(terminate.exit_code)

    def grow(self, plan: StagePlan) -> None:
        """The next stage's generator: one refinement module more, the trained ones carried over."""
        before_growth = self.models.named_generator_parameters()
        self.models.generator = _grow(self.models, plan, self.train, self.device)
        if self.models.cuda_graphs:
            # The first stage's CUDA graphs hold their memory pool while any of them can be
            # replayed; the kept modules compile again at the new size anyway (static shapes), so
            # drop them all now rather than carry the smaller size's pool through this stage.
            torch.compiler.reset()
            torch.cuda.empty_cache()
        compile_models(self.models, self.train, self.device, only=("generator",))
        self.optimizers = _regrow_optimizers(self.models, self.optimizers, before_growth, self.entry, self.train,
                                             self.device)


def check_training_split(variant: str, entry: Mapping, train: Mapping, data_path: Path, split: str) -> None:
    """Refuse a pack (``data_path``, holding ``split``) of held-out data (val, test, heldout: training
    on them would score a variant on its own training videos) and, for a prior-frame variant, the
    one-frame gtfine_train pack; an image variant on the training split train.image_data did not
    choose trains, said on stderr."""
    prior = bool(entry["prior"])
    wanted = "train" if prior else train["image_data"]
    if split not in TRAINING_SPLITS or (prior and split != wanted):
        needs = "train (the subset's snippets, for its windows)" if prior else f"{wanted} (train.image_data)"
        raise PipelineError(f"holds the {split!r} split; {variant} trains on {needs}", data_path)
    if split != wanted:
        print(f"{variant}: training on the {split} split of {data_path}, where train.image_data is {wanted}",
              file=sys.stderr)


def data_identity(data_provenance: str) -> dict:
    """Which packing of the data a run trains on, for its resume fingerprint: its provenance
    hashed. Snakemake reruns train when the file changes; the old run's state must not then hand
    back its weights (finished) or go on with the new data (killed)."""
    return {"pack_provenance_sha256": hashlib.sha256(data_provenance.encode()).hexdigest()[:16]}


def make_loader(dataset, order: list[int], device: torch.device, seed: int, workers: int | None = None
                ) -> DataLoader:
    """The samples ``order`` names, one at a time: on a GPU read ahead by 4 worker processes into
    pinned memory, on the CPU in this process (``workers`` sets the count)."""
    if workers is None:
        workers = 4 if device.type == "cuda" else 0
    # The loader's own generator: creating a loader must not draw from the global RNG, or a
    # resumed epoch (one more loader) would diverge from an unbroken one.
    return DataLoader(dataset, batch_size=None, sampler=order, num_workers=workers,
                      pin_memory=device.type == "cuda", generator=torch.Generator().manual_seed(seed),
                      worker_init_fn=ignore_job_signals if workers else None)


def ignore_job_signals(worker_id: int) -> None:  # noqa: ARG001 - DataLoader's worker_init_fn
    """At the walltime PBS and Slurm send SIGTERM to every process of the job. A DataLoader worker
    dies of it, and its death stops the loop with a RuntimeError before the main process can save:
    workers ignore SIGTERM and SIGINT, and end when the loader is done or the main process is gone."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _check_finite(variant: str, terms: Mapping[str, float], position: Position, snippet: str,
                  resume_dir: Path, data_path: Path) -> None:
    """Stop at a non-finite loss, before anything is saved: the step has already put NaN into the
    weights, and a save would hand them to every later attempt, to model.pt and to synthesis."""
    bad = {name: value for name, value in terms.items() if not math.isfinite(value)}
    if bad:
        raise PipelineError(
            f"{variant}: the loss is not finite at {_where(position)}, snippet {snippet} "
            f"({', '.join(f'{name} = {value}' for name, value in bad.items())}); nothing after the last save "
            f"was kept ({resume_dir / RESUME_NAME} if there is one: a rerun goes on from it and would reach this "
            "again): "
            f"check the data (python -m pipeline.pack --verify {data_path}) or lower the learning rate")


def _where(position: Position) -> str:
    return f"window {position.step} (stage {position.stage}, epoch {position.epoch}, sample {position.sample})"


def _batched(sample: dict) -> dict:
    """A DataLoader with batch_size=None yields single samples: add the batch axis (size 1)."""
    return {k: (v.unsqueeze(0) if k in FRAME_KEYS else v) for k, v in sample.items()}


def _stage_done(plan: StagePlan, position: Position) -> bool:
    return plan.max_steps is not None and position.stage_step >= plan.max_steps


def _next_stage(position: Position) -> None:
    position.stage += 1
    position.epoch = position.sample = position.stage_step = 0


def move_models(models: Models, device: torch.device) -> None:
    # Not channels-last: on an H200 it made the fast step slower (pix2pixHD 0.071 -> 0.103 s,
    # CRN 0.038 -> 0.045 s; cuDNN converted layouts around the uncompiled modules).
    for module in [models.generator, models.criteria, models.encoder, models.discriminators]:
        if module is not None:
            module.to(device)


def compile_models(models: Models, train: Mapping, device: torch.device, only: tuple[str, ...] | None = None,
                   **options: Any) -> None:
    """torch.compile, on a GPU, the modules of ``train.compile_scope`` (or ``only`` those of them)
    in ``compile_mode``'s mode (``options`` go to ``torch.compile`` too, but not a mode: the
    settings say it, and ``set_up_device`` reads them). In place (``Module.compile``): the
    objects, their parameters and their state_dict keys stay as they are, so optimisers and
    checkpoints see no wrapper."""
    mode = compile_mode(train, device)
    if mode is None:
        return
    train = {**RUNTIME_DEFAULTS, **train}
    modules = models.compilable(train["compile_scope"])
    # Dynamo keeps its graphs per code object: the image and temporal discriminators share one
    # forward, each called with and without grad and (under autocast) on fp32 and bf16 inputs,
    # which passes the default limit of 8, past which it silently runs eagerly.
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 32)
    # Static shapes: the CRN's second stage doubles the size, and dynamo's automatic dynamic
    # shapes would then recompile the modules kept from the first stage shape-generic (slower
    # kernels for the costliest stage); two sizes are two static compiles.
    options = {"dynamic": False, **options, "mode": mode}
    for name, module in modules.items():
        if only is None or name in only:
            module.compile(**options)
    models.compiled = tuple(modules)
    models.cuda_graphs = device.type == "cuda" and mode == "reduce-overhead"


def _grow(models: Models, plan: StagePlan, train: Mapping, device) -> torch.nn.Module:
    """The CRN's next stage: one refinement module more, trained modules carried over by index."""
    if not hasattr(models.generator, "grow"):
        raise PipelineError(f"{models.entry['network']} has a second stage in train.{models.entry['network']}.stages "
                            "but its generator cannot grow; only the CRN adds a refinement module")
    # The new module's initial weights depend on (seed, stage) only, not on the RNG's history.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(train["seed"] * 1000 + plan.index)
        return models.generator.grow(plan.output_images).to(device)


def _regrow_optimizers(models: Models, old: Optimizers, before_growth: dict[str, torch.nn.Parameter],
                       entry, train, device) -> Optimizers:
    """Fresh Adam for the grown generator (thesis), and clip groups holding its parameters (not
    the replaced generator's); keep the moments of carried-over parameters when
    ``train.keep_optimizer_state_on_grow``. ``before_growth``: the old generator's and encoder's
    parameters by name (``Models.named_generator_parameters``)."""
    new = make_optimizers(models, entry, train, device)
    if old.discriminator is not None:
        new.discriminator.load_state_dict(old.discriminator.state_dict())
    if train.get("keep_optimizer_state_on_grow"):
        for new_param, old_param in _carried_over(before_growth, models.named_generator_parameters()):
            if old_param in old.generator.state:
                new.generator.state[new_param] = {k: v.clone() if torch.is_tensor(v) else v
                                                  for k, v in old.generator.state[old_param].items()}
    return new


def _carried_over(before: dict[str, torch.nn.Parameter],
                  after: dict[str, torch.nn.Parameter]) -> list[tuple[torch.nn.Parameter, torch.nn.Parameter]]:
    """(grown, old) pairs of the parameters growth carried over: matched by name, not position
    (a twin CRN's new refine module comes before twin.*), with equal shapes, heads excepted
    (``CRN.load_grown_state`` starts them fresh)."""
    pairs = []
    for name, param in after.items():
        old_param = before.get(name)
        is_head = name.startswith("generator.") and name.removeprefix("generator.").startswith(HEAD_PREFIXES)
        if old_param is not None and old_param.shape == param.shape and not is_head:
            pairs.append((param, old_param))
    return pairs


class _LossLog:
    """losses.csv in the resume folder, and the same rows as TensorBoard scalars beside it
    (``events.py``): truncated (purged) to the saved row count on resume, so rows written after
    the last checkpoint by a killed job are not duplicated."""

    COLUMNS = list(LOG_COLUMNS)

    def __init__(self, path: Path, keep_rows: int):
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = path.read_text().splitlines(keepends=True) if path.is_file() else []
        header = lines[:1]
        path.write_text("".join(header + lines[1:keep_rows + 1]))
        self.path, self.rows = path, min(keep_rows, max(0, len(lines) - 1))
        self.names: list[str] | None = header[0].strip().split(",")[len(self.COLUMNS):] if header else None
        self.handle = path.open("a", newline="")
        self.scalars = ScalarLog(path.parent / EVENTS_DIR, self.rows)

    def write(self, position: Position, plan: StagePlan, lr: float, snippet: str, terms: dict) -> None:
        if self.names is None:
            self.names = sorted(terms)
            csv.writer(self.handle).writerow(self.COLUMNS + self.names)
        row = [position.step, plan.index, position.epoch, position.sample, f"{lr:.6g}", snippet]
        csv.writer(self.handle).writerow(row + [f"{terms[n]:.6g}" if n in terms else "" for n in self.names])
        self.handle.flush()      # a row per window: cheap, and a killed job's log shows how far it got
        self.rows += 1
        self.scalars.write(position.step, lr, terms)

    def flush(self) -> None:
        self.handle.flush()
        self.scalars.flush()

    def close(self) -> None:
        self.handle.close()
        self.scalars.close()


def _hardware(models: Models, train: Mapping, device: torch.device, runtime: Mapping) -> dict:
    """Where and how the last stage trained (a resumed run may have started elsewhere), with the
    precision ``choose_precision`` took and why, and the runtime settings (not in ``settings``)."""
    precision, why = choose_precision(train, device)
    return {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "precision": "bf16 autocast" if precision == "bf16" else "fp32", "precision_reason": why,
            "compiled": list(models.compiled), "cuda_graphs": models.cuda_graphs, "torch": torch.__version__,
            "runtime": dict(runtime)}


def _write_outputs(variant, settings, models: Models, plan: StagePlan, data_path: Path, data_provenance: str,
                   output_dir: Path, resume_dir: Path, elapsed: float, code: str, position: Position,
                   hardware: dict) -> Path:
    """model.pt, summary.json, the loss log and its TensorBoard events. ``steps`` in the summary
    and the provenance is ``Position.step``: the windows (samples) trained, all stages, not the
    optimiser steps."""
    record = provenance("train", settings, code, settings["train"]["seed"], variant=variant,
                        data=str(data_path), data_provenance=data_provenance,
                        backbone_weights=models.criteria.provenance(), elapsed_seconds=round(elapsed, 1),
                        steps=position.step, hardware=hardware)
    output_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(output_dir / LOG_NAME, suffix=".csv") as tmp:
        tmp.write_bytes((resume_dir / LOG_NAME).read_bytes())
    copy_events(resume_dir / EVENTS_DIR, output_dir / EVENTS_DIR)
    write_json(output_dir / "summary.json", {"variant": variant, "training_seconds": round(elapsed, 1),
                                             "steps": position.step, "provenance": record})
    target = output_dir / "model.pt"          # last: model.pt marks the run complete
    save_trained(target, variant, models, plan, settings, record)
    return target
