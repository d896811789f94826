"""One training step per frame, the same for every variant (thesis-code.md sections 6 and 7).

A variant is a set of components, so the step is one function: which loss terms it computes
follows from which criteria and discriminators the builders made. Per frame of a window:

1. The feature encoder (if any) pools the real frame's features over its instances.
2. The generator sees labels, edge, features and the last two *generated* frames (detached,
   placeholders at the window start: no teacher forcing, one-step truncation, as the thesis).
3. Generator losses: perceptual (diversity over K images; for twin variants also on the
   hallucinated frame), image GAN and feature matching, temporal GAN and feature matching,
   flow (L1 against the reference, on every trained frame: flow variants load one frame more,
   so the first trained frame has its reference flow) and warp (the real previous frame warped
   by the generated flow against the real frame; skipped at the first trained frame, while the
   prior is a placeholder). One Adam step after clipping the gradient norm of the generator's
   parameters (not the feature encoder's, which shares the optimiser: the thesis clipped
   ``generator.parameters()`` only).
4. Discriminator losses on the real frame (with real priors) and the detached fake; one step,
   each discriminator's gradient norm clipped on its own (image, temporal), as the thesis did.

A window logs each term's mean over the frames that computed it (warp: one frame fewer).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from pipeline.models.build import image_discriminator_input, temporal_discriminator_input
from pipeline.models.edges import edge_map
from pipeline.models.losses import end_point_error
from pipeline.models.prior import PriorFrames

__all__ = ["Models", "Optimizers", "train_window", "random_window"]


@dataclass
class Models:
    """Everything a variant trains, plus its criteria (not trained)."""

    entry: Mapping[str, Any]
    generator: nn.Module
    criteria: nn.ModuleDict
    encoder: nn.Module | None = None
    discriminators: nn.ModuleDict | None = None
    compiled: tuple[str, ...] = ()   # the modules torch.compile'd in place (loop.compile_models)
    cuda_graphs: bool = False        # compiled with mode="reduce-overhead" on a GPU

    def compilable(self, scope: str) -> dict[str, nn.Module]:
        """The modules a ``train.compile_scope`` covers: the generator, or every module of the
        step (generator, encoder, criteria with the perceptual network, discriminators)."""
        found = {"generator": self.generator}
        if scope == "all":
            if self.encoder is not None:
                found["encoder"] = self.encoder
            found.update({f"criterion.{name}": module for name, module in self.criteria.items()})
            found.update({f"discriminator.{name}": module for name, module in (self.discriminators or {}).items()})
        return found

    def trained(self) -> dict[str, nn.Module]:
        modules = {"generator": self.generator}
        if self.encoder is not None:
            modules["encoder"] = self.encoder
        if self.discriminators is not None:
            modules["discriminators"] = self.discriminators
        return modules

    def generator_parameters(self) -> list[nn.Parameter]:
        return list(self.named_generator_parameters().values())

    def clip_groups(self) -> tuple[tuple[tuple[nn.Parameter, ...], ...], tuple[tuple[nn.Parameter, ...], ...]]:
        """(generator groups, discriminator groups): the parameters whose gradient norm is
        clipped together, per optimiser (thesis-code.md §4, §7). The generator alone (the
        encoder, in the same optimiser, is not clipped); each discriminator on its own, all of
        its scales together."""
        def trainable(module: nn.Module) -> tuple[nn.Parameter, ...]:
            return tuple(p for p in module.parameters() if p.requires_grad)
        generator = (trainable(self.generator),)
        discriminators = tuple(trainable(d) for d in (self.discriminators or {}).values())
        return generator, discriminators

    def named_generator_parameters(self) -> dict[str, nn.Parameter]:
        """The generator optimiser's parameters, in its order, as ``generator.<name>`` and
        ``encoder.<name>`` (names survive growth and in-place compiling; positions do not)."""
        named = {f"generator.{name}": param for name, param in self.generator.named_parameters()}
        if self.encoder is not None:
            named.update({f"encoder.{name}": param for name, param in self.encoder.named_parameters()})
        return named


@dataclass
class Optimizers:
    """The optimisers, and what each step clips: ``grad_clip`` applies to each tuple of
    ``generator_clip`` / ``discriminator_clip`` on its own (``Models.clip_groups``, fixed when
    the optimisers are made, so the per-frame step does no lookup)."""

    generator: torch.optim.Optimizer
    discriminator: torch.optim.Optimizer | None = None
    grad_clip: float | None = None      # no clipping; train.grad_clip says (make_optimizers)
    autocast: Any = field(default=None, repr=False)   # a context factory (bf16 on GPU) or None
    generator_clip: tuple[tuple[nn.Parameter, ...], ...] = field(default=(), repr=False)
    discriminator_clip: tuple[tuple[nn.Parameter, ...], ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        if self.grad_clip and (not self.generator_clip or (self.discriminator is not None
                                                           and not self.discriminator_clip)):
            raise ValueError("grad_clip needs the parameter groups to clip (Models.clip_groups)")

    def all(self) -> dict[str, torch.optim.Optimizer]:
        found = {"generator": self.generator}
        if self.discriminator is not None:
            found["discriminator"] = self.discriminator
        return found


def _frame(window: Mapping[str, torch.Tensor], t: int) -> dict[str, torch.Tensor]:
    return {key: window[key][:, t] for key in ("image", "labels", "edge", "instances", "flow")}


def _step(optimizer: torch.optim.Optimizer, loss: torch.Tensor, clip: float | None,
          groups: tuple[tuple[nn.Parameter, ...], ...]) -> None:
    """Backward into this optimiser's parameters only, clip the gradient norm of each group of
    parameters on its own, one step.

    The generator's loss also reaches the discriminators (through the fake frame's score): their
    gradients from it were computed, then dropped by their own step. ``inputs`` skips that work
    where autograd runs eagerly. No gradient outlives its step either: under CUDA graphs a
    gradient is a graph output that the next frame's replay overwrites (pytorch/pytorch#169545);
    so every step also begins with none, and needs no zeroing first."""
    loss.backward(inputs=[parameter for group in optimizer.param_groups for parameter in group["params"]
                          if parameter.requires_grad])
    if clip:
        for parameters in groups:
            torch.nn.utils.clip_grad_norm_(parameters, clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def train_window(models: Models, optimizers: Optimizers, window: Mapping[str, torch.Tensor]) -> dict[str, float]:
    """Train on every frame of a window ``[B, T, ...]``; each named loss's mean over the frames
    that computed it."""
    entry = models.entry
    mode = entry["prior"]
    frames = window["image"].shape[1]
    # Flow variants load one frame more: frame 0 only gives the real previous frame of frame 1.
    first = 1 if entry["flow"] else 0
    fake_priors = PriorFrames(mode) if mode else None
    real_priors = PriorFrames(mode) if mode else None
    if mode:
        fake_priors.reset(window["image"][:, 0], window["labels"][:, 0])
        real_priors.reset(window["image"][:, 0], window["labels"][:, 0])
    logged: list[tuple[list[str], torch.Tensor]] = []
    for t in range(first, frames):
        frame = _frame(window, t)
        previous = _frame(window, t - 1) if t > 0 else None
        logged.append(_train_frame(models, optimizers, frame, previous, fake_priors, real_priors, t > first))
        if mode:
            real_priors.push(frame["image"], frame["labels"])
    return _frame_means(logged)


def _frame_means(logged: list[tuple[list[str], torch.Tensor]]) -> dict[str, float]:
    """Each term's mean over the frames that computed it, with one device-to-host copy a window:
    a copy a frame would make the host wait for the GPU before queueing the next frame's work."""
    numbers = iter(torch.cat([values for _, values in logged]).tolist())
    totals: dict[str, float] = {}
    counts: dict[str, int] = {}
    for names, _ in logged:
        for name in names:
            totals[name] = totals.get(name, 0.0) + next(numbers)
            counts[name] = counts.get(name, 0) + 1
    return {name: total / counts[name] for name, total in totals.items()}


def _generator_inputs(models: Models, frame: Mapping[str, torch.Tensor], priors: PriorFrames | None) -> dict:
    inputs = {"labels": frame["labels"]}
    if models.entry["edge"]:
        inputs["edge"] = frame["edge"]
    if models.encoder is not None:
        inputs["features"] = models.encoder(frame["image"], frame["instances"])
    if priors is not None:
        inputs.update(priors.inputs())
    return inputs


def _train_frame(models: Models, optimizers: Optimizers, frame: dict, previous: dict | None,
                 fake_priors: PriorFrames | None, real_priors: PriorFrames | None,
                 has_prior: bool) -> tuple[list[str], torch.Tensor]:
    criteria = models.criteria
    autocast = optimizers.autocast or contextlib.nullcontext
    real = frame["image"]
    if models.cuda_graphs:
        # A frame is one generation of the CUDA-graph trees: the graphs' outputs may be reused
        # from here on, so nothing of an earlier frame's outputs is kept (the prior is a copy).
        torch.compiler.cudagraph_mark_step_begin()
    with autocast():
        inputs = _generator_inputs(models, frame, fake_priors)
        output = models.generator(inputs)
        fake = output["images"] if "images" in output else output["image"]
        terms: dict[str, torch.Tensor] = {}
        if "perceptual" in criteria:
            terms["perceptual"] = criteria["perceptual"](fake, real, frame["labels"])
            if "hallucinated" in output:
                terms["perceptual_hallucinated"] = criteria["perceptual"](output["hallucinated"], real)
        if "flow" in output:
            terms["flow"] = criteria["flow"](output["flow"], frame["flow"])
            if has_prior:   # the thesis skipped warp (only) while the prior was a placeholder
                terms["warp"] = criteria["warp"](previous["image"], real, output["flow"])
        discriminator_inputs = None
        if models.discriminators is not None:
            discriminator_inputs = _discriminator_inputs(models, inputs, frame, output["image"], real_priors,
                                                         fake_priors, previous)
            terms.update(_generator_gan_terms(models, discriminator_inputs))
        loss = sum(terms.values())
    _step(optimizers.generator, loss, optimizers.grad_clip, optimizers.generator_clip)
    logged = {**terms, "generator": loss}
    if "flow" in output:
        logged["flow_epe"] = end_point_error(output["flow"].detach().float(), frame["flow"])
    if discriminator_inputs is not None:
        logged["discriminator"] = _discriminator_step(models, optimizers, discriminator_inputs, autocast)
    if fake_priors is not None:
        fake_priors.push(output["image"], frame["labels"])
    # The frame's terms stacked into a new tensor now: a CUDA graph's replay in the next frame
    # reuses its outputs' memory, and the values are read when the window ends.
    return list(logged), torch.stack([value.detach().float() for value in logged.values()])


def _discriminator_inputs(models: Models, inputs: dict, frame: dict, fake: torch.Tensor,
                          real_priors: PriorFrames | None, fake_priors: PriorFrames | None,
                          previous: dict | None) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """(real, fake) input pairs per discriminator; real priors go with the real frame."""
    entry = models.entry
    real_inputs = dict(inputs)
    if real_priors is not None:
        real_inputs.update(real_priors.inputs())
    pairs = {"image": (image_discriminator_input(entry, real_inputs, frame["image"]),
                       image_discriminator_input(entry, inputs, fake))}
    if "temporal" in models.discriminators:
        # vid2vid mode: the *real* flows go with the real and the fake frames alike.
        prior_flow = previous["flow"] if previous is not None else torch.zeros_like(frame["flow"])
        pairs["temporal"] = (
            temporal_discriminator_input(frame["image"], real_priors.inputs()["prior_images"], frame["flow"], prior_flow),
            temporal_discriminator_input(fake, fake_priors.inputs()["prior_images"], frame["flow"], prior_flow),
        )
    return pairs


def _generator_gan_terms(models: Models, pairs: dict) -> dict[str, torch.Tensor]:
    terms = {}
    for name, (real_input, fake_input) in pairs.items():
        prefix = "" if name == "image" else f"{name}_"
        discriminator = models.discriminators[name]
        fake_outputs = discriminator(fake_input)
        with torch.no_grad():
            real_outputs = discriminator(real_input)
        terms[f"{prefix}gan"] = models.criteria[f"{prefix}gan"](fake_outputs, True)
        terms[f"{prefix}feature_matching"] = models.criteria[f"{prefix}feature_matching"](fake_outputs, real_outputs)
    return terms


def _discriminator_step(models: Models, optimizers: Optimizers, pairs: dict, autocast) -> torch.Tensor:
    with autocast():
        loss = 0.0
        for name, (real_input, fake_input) in pairs.items():
            prefix = "" if name == "image" else f"{name}_"
            discriminator = models.discriminators[name]
            loss = loss + models.criteria[f"{prefix}gan"].discriminator(
                discriminator(real_input), discriminator(fake_input.detach()))
    _step(optimizers.discriminator, loss, optimizers.grad_clip, optimizers.discriminator_clip)
    return loss.detach()


def random_window(frames: int, height: int, width: int, labels: int, device: str | torch.device = "cpu") -> dict:
    """A window [1, T, ...] of seeded random inputs in the format ``train_window`` takes (for
    benchmarks and tests; the training loop reads windows from the packed HDF5)."""
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, labels, (1, frames, height, width), generator=generator)
    one_hot = torch.nn.functional.one_hot(ids, labels).permute(0, 1, 4, 2, 3).float()
    instances = (ids * 1000).to(torch.int32)
    return {
        "image": torch.rand(1, frames, 3, height, width, generator=generator).to(device),
        "labels": one_hot.to(device),
        "instances": instances.to(device),
        "edge": edge_map(instances.flatten(0, 1)).view(1, frames, 1, height, width).to(device),
        "flow": torch.randn(1, frames, 2, height, width, generator=generator).to(device),
    }
