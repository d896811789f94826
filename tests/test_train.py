"""Training: schedules, exact resume after SIGTERM (in both CRN stages), clear errors."""

from __future__ import annotations

import copy
import json
import math
import os
import signal
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import yaml
from torch import nn

from conftest import make_packed_city
from pipeline.config import DEFAULT_CONFIG, SCHEMA_PATH, load_config, merge
from pipeline.data.labels import num_channels
from pipeline.errors import PipelineError
from pipeline.models.prior import shift_prior
from pipeline.train.loop import (TERMINATED_EXIT, _grow, _hardware, _regrow_optimizers, build_models,
                                 check_training_split, choose_precision, compile_models, make_optimizers,
                                 set_up_device, train_variant, uses_cuda_graphs)
from pipeline.train.checkpoint import load_trained
from pipeline.train.schedule import lr_factor, optimizer_steps, plan_stages, uses_decay
from pipeline.train.settings import RUNTIME_DEFAULTS, train_runtime, train_settings
from pipeline.train.step import random_window, train_window


@pytest.fixture(scope="module")
def study():
    return load_config([DEFAULT_CONFIG])


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    return make_packed_city(tmp_path_factory.mktemp("train_city"), train=4, val=2)


def tiny_override(crn_epochs=(3, 1)) -> dict:
    """The study at a tiny size: an override of config.yaml (a mapping, or a file's content)."""
    return {"train": {"crn": {"stages": [{"height": 16, "width": 32, "epochs": crn_epochs[0]},
                                         {"height": 32, "width": 64, "epochs": crn_epochs[1]}]},
                      "pix2pixhd": {"stages": [{"height": 32, "width": 64, "epochs": 2}]},
                      "window": 3,
                      "model_overrides": {"generator": {"width_divisor": 64},
                                          "discriminator": {"width_divisor": 16},
                                          "encoder": {"width_divisor": 4}}},
            "weights": {"allow_random": True}}


def tiny(study: dict, variant: str, crn_epochs=(3, 1)) -> dict:
    return train_settings(merge(study, tiny_override(crn_epochs)), variant)


def test_thesis_schedules(study):
    train = study["train"]
    v01, v07, v10, v14 = (study["variants"][v] for v in ("v01", "v07", "v10", "v14"))
    assert [(p.height, p.epochs, p.output_images) for p in plan_stages(v01, train)] == [(256, 200, 9), (512, 50, 3)]
    assert [p.epochs for p in plan_stages(v07, train)] == [120, 30]
    assert [(p.height, p.epochs) for p in plan_stages(v10, train)] == [(512, 200)]
    assert [p.epochs for p in plan_stages(v14, train)] == [120]
    assert not uses_decay(v01) and not uses_decay(v07) and uses_decay(study["variants"]["v04"]) and uses_decay(v10)
    # pix2pixHD: constant for 100 epochs, then linear towards (never reaching) zero.
    assert lr_factor(99, 200) == 1.0 and lr_factor(100, 200) == pytest.approx(1 - 1 / 101)
    assert 0 < lr_factor(199, 200) < 0.011


def test_optimizer_steps_follow_the_schedule(study):
    train = study["train"]
    v01, v07 = study["variants"]["v01"], study["variants"]["v07"]
    first, second = plan_stages(v01, train)
    assert optimizer_steps(first, v01, train, 808) == 200 * 808
    assert optimizer_steps(second, v01, train, 808) == 50 * 808
    # Prior-frame variants: 60% of the epochs, one step per frame of a 6-frame window.
    assert optimizer_steps(plan_stages(v07, train)[0], v07, train, 808) == 120 * 808 * 6
    capped = type(first)(0, 16, 32, 200, 5, 1, False)
    assert optimizer_steps(capped, v07, train, 808) == 5 * 6


class Recorded(nn.Module):
    """A criterion that keeps the value of every call."""

    def __init__(self, criterion: nn.Module):
        super().__init__()
        self.criterion, self.values, self.args = criterion, [], []

    def forward(self, *args):
        value = self.criterion(*args)
        self.values.append(float(value.detach()))
        self.args.append([arg.detach().clone() for arg in args])
        return value


def tiny_models(study: dict, variant: str):
    settings = tiny(study, variant)
    plans = plan_stages(settings["entry"], settings["train"])
    torch.manual_seed(0)
    models = build_models(settings["entry"], settings, plans[0])
    return settings, plans, models


def test_flow_loss_on_every_trained_frame_and_warp_loss_after_the_first(study):
    """thesis-code.md 6: only the warp loss waits for a real prior; the first trained frame has a
    reference flow (flow variants load one frame more). Each logged term is the mean over the
    frames that computed it."""
    settings, plans, models = tiny_models(study, "v09")
    for name in ("flow", "warp"):
        models.criteria[name] = Recorded(models.criteria[name])
    optimizers = make_optimizers(models, settings["entry"], settings["train"], torch.device("cpu"))
    window = random_window(4, plans[0].height, plans[0].width, num_channels(settings["label_set"]))
    terms = train_window(models, optimizers, window)
    flows, warps = models.criteria["flow"].values, models.criteria["warp"].values
    assert len(flows) == 3 and len(warps) == 2        # frames 1, 2, 3 trained; warp from frame 2
    assert terms["flow"] == pytest.approx(sum(flows) / 3, rel=1e-6)
    assert terms["warp"] == pytest.approx(sum(warps) / 2, rel=1e-6)
    assert "flow_epe" in terms
    # flow[t] warps frame t-1 onto frame t: the warp loss takes the previous real frame, then the
    # current one; the flow loss frame t's own reference flow.
    for t, (previous, current, _) in zip((2, 3), models.criteria["warp"].args):
        assert torch.equal(previous, window["image"][:, t - 1]) and torch.equal(current, window["image"][:, t])
    for t, (_, reference) in zip((1, 2, 3), models.criteria["flow"].args):
        assert torch.equal(reference, window["flow"][:, t])


def test_the_encoder_sees_the_image_in_0_1(study):
    """One home for the encoder's input range: the step hands it the [0, 1] frame (the thesis's)."""
    settings, plans, models = tiny_models(study, "v04")
    seen = []
    models.encoder.register_forward_pre_hook(lambda module, args: seen.append(args[0].clone()))
    optimizers = make_optimizers(models, settings["entry"], settings["train"], torch.device("cpu"))
    window = random_window(1, plans[0].height, plans[0].width, num_channels(settings["label_set"]))
    train_window(models, optimizers, window)
    assert torch.equal(seen[0], window["image"][:, 0])


def test_kept_optimizer_state_follows_each_parameter_through_growth(study):
    """``train.keep_optimizer_state_on_grow``: the grown twin CRN inserts refine.N before twin.*,
    so matching by position pairs the wrong tensors. Every carried-over parameter keeps its own
    Adam moments; the new modules and the heads (which start fresh) get none."""
    settings, plans, models = tiny_models(study, "v09")
    train = dict(settings["train"], keep_optimizer_state_on_grow=True)
    cpu = torch.device("cpu")
    optimizers = make_optimizers(models, settings["entry"], train, cpu)
    train_window(models, optimizers, random_window(2, plans[0].height, plans[0].width,
                                                   num_channels(settings["label_set"])))
    old = models.named_generator_parameters()
    old_moments = {name: optimizers.generator.state[param]["exp_avg"] for name, param in old.items()
                   if param in optimizers.generator.state}
    models.generator = _grow(models, plans[1], train, cpu)
    grown = _regrow_optimizers(models, optimizers, old, settings["entry"], train, cpu)
    last = len(models.generator.refine) - 1
    fresh = (f"generator.refine.{last}.", f"generator.twin.{last}.", "generator.to_image.", "generator.heads.")
    carried = 0
    for name, param in models.named_generator_parameters().items():
        state = grown.generator.state.get(param)
        if name.startswith(fresh):
            assert not state, name
        else:
            assert torch.equal(state["exp_avg"], old_moments[name]), name
            carried += 1
    assert carried and any(name.startswith("generator.twin.0.") for name in old_moments)
    assert any(name.startswith("encoder.") for name in old_moments)


def record_step_gradients(optimizers) -> dict[nn.Parameter, torch.Tensor]:
    """Each parameter's gradient as its optimiser steps with it (a step leaves none behind)."""
    seen = {}

    def record(optimizer, args, kwargs):  # noqa: ARG001 - Optimizer.register_step_pre_hook's call
        seen.update({p: p.grad.clone() for group in optimizer.param_groups for p in group["params"]
                     if p.grad is not None})

    for optimizer in optimizers.all().values():
        optimizer.register_step_pre_hook(record)
    return seen


def _gradients(networks: dict[str, nn.Module], stepped: dict[nn.Parameter, torch.Tensor]
               ) -> dict[str, list[torch.Tensor]]:
    return {name: [stepped[p] for p in module.parameters() if p in stepped] for name, module in networks.items()}


def _norm(gradients: list[torch.Tensor]) -> float:
    return float(torch.linalg.vector_norm(torch.cat([g.flatten() for g in gradients])))


def _trained_networks(models) -> dict[str, nn.Module]:
    networks = {"generator": models.generator, "encoder": models.encoder}
    networks.update({f"discriminator.{name}": module for name, module in models.discriminators.items()})
    return networks


def test_gradient_norms_are_clipped_per_network_and_the_encoder_is_not(study):
    """thesis-code.md 4, 7 (Video_Framework.py): clip_grad_norm_(generator.parameters(), 30),
    then each discriminator's own parameters: the encoder, in the generator's optimiser, is not
    clipped, and the image (both scales together) and temporal discriminators are clipped apart.
    One trained frame of v14 with and without a clip: the gradients each step took."""
    clip = 1e-3
    found = {}
    for grad_clip in (None, clip):
        settings, plans, models = tiny_models(study, "v14")
        train = dict(settings["train"], grad_clip=grad_clip)
        optimizers = make_optimizers(models, settings["entry"], train, torch.device("cpu"))
        window = random_window(2, plans[0].height, plans[0].width, num_channels(settings["label_set"]))
        stepped = record_step_gradients(optimizers)
        train_window(models, optimizers, window)   # a flow variant: frame 1 is the one trained
        found[grad_clip] = _gradients(_trained_networks(models), stepped)
    free, clipped = found[None], found[clip]
    assert set(free) == {"generator", "encoder", "discriminator.image", "discriminator.temporal"}
    for name, gradients in free.items():
        norm = _norm(gradients)
        assert norm > 10 * clip, name
        scale = 1.0 if name == "encoder" else clip / (norm + 1e-6)
        for before, after in zip(gradients, clipped[name]):
            torch.testing.assert_close(after, before * scale, rtol=1e-5, atol=1e-12)
        if name != "encoder":
            assert _norm(clipped[name]) == pytest.approx(clip, rel=1e-4), name


def test_growth_clips_the_grown_generator(study):
    """The CRN's second stage replaces the generator; the rebuilt optimisers clip its parameters
    (clip groups taken from the replaced one would leave the grown generator unclipped)."""
    clip = 1e-3
    settings, plans, models = tiny_models(study, "v09")
    train = dict(settings["train"], grad_clip=clip)
    cpu = torch.device("cpu")
    optimizers = make_optimizers(models, settings["entry"], train, cpu)
    before_growth = models.named_generator_parameters()
    models.generator = _grow(models, plans[1], train, cpu)
    optimizers = _regrow_optimizers(models, optimizers, before_growth, settings["entry"], train, cpu)
    stepped = record_step_gradients(optimizers)
    train_window(models, optimizers, random_window(2, plans[1].height, plans[1].width,
                                                   num_channels(settings["label_set"])))
    gradients = _gradients(_trained_networks(models), stepped)
    assert _norm(gradients["generator"]) == pytest.approx(clip, rel=1e-4)
    assert _norm(gradients["discriminator.image"]) == pytest.approx(clip, rel=1e-4)


@pytest.mark.parametrize("variant", ["v09", "v14"])
def test_compiling_every_network_trains_as_the_eager_step(study, variant):
    """``compile_scope: all`` compiles, in place, the generator, encoder, criteria and
    discriminators (here with dynamo's eager backend, so the test needs no compiler): a window of
    the twin, flow and prior variants of both networks trains to the same losses and weights."""
    settings = tiny(study, variant)
    train = dict(settings["train"], compile="on", compile_scope="all")
    plan = plan_stages(settings["entry"], train)[0]
    window = random_window(4, plan.height, plan.width, num_channels(settings["label_set"]), "cpu")
    results = []
    for compiled in (False, True):
        torch.manual_seed(0)
        models = build_models(settings["entry"], settings, plan)
        if compiled:
            compile_models(models, train, torch.device("cpu"), backend="eager")
        optimizers = make_optimizers(models, settings["entry"], train, torch.device("cpu"))
        results.append((train_window(models, optimizers, window), models.generator.state_dict(), models.compiled))
    (eager_terms, eager_weights, none), (terms, weights, compiled) = results
    assert none == () and set(compiled) >= {"generator", "encoder", "criterion.perceptual", "criterion.gan",
                                            "discriminator.image", "discriminator.temporal"}
    assert terms.keys() == eager_terms.keys() and "temporal_gan" in terms
    for name in terms:
        assert terms[name] == pytest.approx(eager_terms[name], rel=1e-5, abs=1e-6), name
    for key in weights:
        torch.testing.assert_close(weights[key], eager_weights[key], rtol=1e-5, atol=1e-6)
    # In place: the state_dict keys carry no wrapper's prefix, so checkpoints load either way.
    assert weights.keys() == eager_weights.keys()


@pytest.mark.parametrize("variant", ["v07", "v14"])
def test_compiled_windows_after_the_first_reuse_its_graphs(study, variant):
    """A recompile per window would cost the fast path its speed (the prior variants once did, on
    bf16 priors) and, past dynamo's limit, silently run eagerly. Under bf16 autocast (here the
    CPU's, with dynamo's eager backend) the generator has one graph and the second window runs
    on the first window's graphs."""
    torch._dynamo.reset()          # graphs are kept per code object: forget other tests' models
    settings = tiny(study, variant)
    train = dict(settings["train"], compile="on", compile_scope="all")
    plan = plan_stages(settings["entry"], train)[0]
    window = random_window(4, plan.height, plan.width, num_channels(settings["label_set"]), "cpu")
    models = build_models(settings["entry"], settings, plan)
    compile_models(models, train, torch.device("cpu"), backend="eager")
    optimizers = make_optimizers(models, settings["entry"], train, torch.device("cpu"))
    optimizers.autocast = partial(torch.autocast, "cpu", dtype=torch.bfloat16)
    train_window(models, optimizers, window)
    with torch.compiler.set_stance("fail_on_recompile"):
        terms = train_window(models, optimizers, window)
    assert terms and all(math.isfinite(value) for value in terms.values())
    generator_graphs = torch._dynamo.eval_frame._debug_get_cache_entry_list(type(models.generator).forward.__code__)
    assert len(generator_graphs) == 1


def test_growth_under_cuda_graphs_drops_the_first_stages_graphs(study, packed, tmp_path, monkeypatch):
    """The CRN's second stage compiles every module again at its size (static shapes); under CUDA
    graphs the first stage's graphs, and the memory pool they hold, are dropped at growth, not
    carried through the costliest stage. On the CPU (dynamo's eager backend, graphs faked) this
    checks the compile caches are reset once, at growth, and training goes on; not the memory."""
    import pipeline.train.loop as loop

    def compile_as_if_into_graphs(models, train, device, **options):
        compile_models(models, train, device, backend="eager", **options)
        models.cuda_graphs = True

    resets = []
    monkeypatch.setattr(loop, "compile_models", compile_as_if_into_graphs)
    monkeypatch.setattr(torch.compiler, "reset", lambda reset=torch.compiler.reset: resets.append(1) or reset())
    settings = tiny(study, "v03", crn_epochs=(1, 1))
    settings["train"] = dict(settings["train"], compile="on")
    path = train_variant("v03", settings, packed["train"], tmp_path / "out", tmp_path / "resume", "cpu",
                         progress=False)
    assert resets == [1]
    rows = (tmp_path / "out" / "losses.csv").read_text().splitlines()[1:]
    assert {row.split(",")[1] for row in rows} == {"0", "1"} and load_trained(path)[1]["height"] == 32


@pytest.mark.parametrize("variant", ["v06", "v14"])
def test_no_gradient_outlives_its_step(study, variant):
    """The generator's backward also reaches the discriminators (through the fake frame's score).
    Under CUDA graphs a gradient is a graph output that the next frame's replay overwrites: added
    to a discriminator gradient kept from the frame before, it is an error on a GPU
    (pytorch/pytorch#169545), or wrong memory once replayed. After a window no parameter holds one."""
    settings, plans, models = tiny_models(study, variant)
    entry = settings["entry"]
    optimizers = make_optimizers(models, entry, settings["train"], torch.device("cpu"))
    frames = (3 if entry["prior"] else 1) + (1 if entry["flow"] else 0)
    before = copy_parameters(models.discriminators)
    # The generator's backward puts nothing into the discriminators (their own step would drop it).
    reached = []
    optimizers.generator.register_step_pre_hook(lambda optimizer, args, kwargs: reached.extend(
        parameter.grad is not None for parameter in models.discriminators.parameters()))
    train_window(models, optimizers, random_window(frames, plans[0].height, plans[0].width,
                                                   num_channels(settings["label_set"])))
    assert reached and not any(reached)
    assert any(not torch.equal(old, new) for old, new in zip(before, copy_parameters(models.discriminators)))
    held = [name for name, optimizer in optimizers.all().items()
            for group in optimizer.param_groups for parameter in group["params"] if parameter.grad is not None]
    assert not held


def copy_parameters(module: nn.Module) -> list[torch.Tensor]:
    return [parameter.detach().clone() for parameter in module.parameters()]


def test_a_new_size_compiles_static_graphs_not_shape_generic_ones(study):
    """The CRN's second stage doubles the size. The modules kept from the first stage (criteria,
    discriminators) must compile again for the new size, not shape-generic, as dynamo's automatic
    dynamic shapes would (their kernels are slower on a GPU, in the costliest stage)."""
    torch._dynamo.reset()
    symbolic = []

    def record(graph, example_inputs, **options):  # noqa: ARG001 - torch.compile passes its mode
        values = [node.meta.get("example_value") for node in graph.graph.find_nodes(op="placeholder")]
        symbolic.append(any(isinstance(value, torch.SymInt) or (isinstance(value, torch.Tensor) and any(
            isinstance(size, torch.SymInt) for size in value.shape)) for value in values))
        return graph.forward

    settings = tiny(study, "v11")
    train = dict(settings["train"], compile="on", compile_scope="all")
    plan = plan_stages(settings["entry"], train)[0]
    models = build_models(settings["entry"], settings, plan)
    compile_models(models, train, torch.device("cpu"), backend=record)
    optimizers = make_optimizers(models, settings["entry"], train, torch.device("cpu"))
    for scale in (1, 2):
        train_window(models, optimizers, random_window(1, plan.height * scale, plan.width * scale,
                                                       num_channels(settings["label_set"])))
    assert len(symbolic) > 4 and not any(symbolic)


@pytest.mark.parametrize("capability, train, graphs", [
    ((9, 0), {}, True),                                         # H100, bf16: graphs by default
    ((7, 0), {}, False),                                        # V100 (Lengau), fp32: default mode
    ((7, 0), {"compile_mode": "reduce-overhead"}, True),        # asked for
    ((9, 0), {"compile_mode": "default"}, False),
    ((9, 0), {"compile_mode": "max-autotune-no-cudagraphs"}, False),
    ((9, 0), {"compile": "off"}, False),                        # eager: graphs need compile
])
def test_cuda_graphs_where_the_step_runs_in_bf16_and_no_cudnn_autotuner_under_them(
        capability, train, graphs, monkeypatch):
    """``compile_mode: auto`` replays graphs where bf16 makes the step launch-bound. Under graphs
    cuDNN's autotuner is off: it may meet a new memory alignment inside a capture and fail it
    (seen on an H200: "FIND was unable to find an engine"). No GPU is touched: the capability is
    faked, and the choice is made from it and the device's type."""
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", graphs)
    gpu = torch.device("cuda")
    assert uses_cuda_graphs(train, gpu) is graphs
    set_up_device(train, gpu)
    assert torch.backends.cudnn.benchmark is not graphs
    set_up_device({**train, "amp": "off"}, gpu)                 # the thesis's way: never tuned
    assert torch.backends.cudnn.benchmark is False
    assert uses_cuda_graphs({**train, "compile_mode": "auto", "amp": "off"}, gpu) is False
    assert uses_cuda_graphs({**train, "compile": "on"}, torch.device("cpu")) is False


def discriminator_feed(study, variant: str, discriminator: str, frames: int):
    """One window of ``variant`` trained: its settings, the window, every generated image and every
    input of ``discriminator`` (models.discriminators[...]), in call order."""
    settings = tiny(study, variant)
    plan = plan_stages(settings["entry"], settings["train"])[0]
    window = random_window(frames, plan.height, plan.width, num_channels(settings["label_set"]))
    torch.manual_seed(0)
    models = build_models(settings["entry"], settings, plan)
    optimizers = make_optimizers(models, settings["entry"], settings["train"], torch.device("cpu"))
    generated, seen = [], []
    models.generator.register_forward_hook(lambda module, args, output: generated.append(output["image"].detach()))
    models.discriminators[discriminator].register_forward_pre_hook(lambda module, args: seen.append(args[0].detach()))
    train_window(models, optimizers, window)
    return settings, window, generated, seen


def adj_priors(frames):
    """The prior inputs of ``frames`` in the "adj" mode, newest first: each shifted by -0.5."""
    return torch.cat([shift_prior(frame.clamp(0, 1), "adj") for frame in frames], 1)

def test_the_discriminators_see_real_priors_with_real_frames_and_generated_ones_with_fakes(study):
    """No teacher forcing (thesis-code.md 6): the generator and the fake branch get the last two
    *generated* frames as priors, the real branch the last two real frames; newest first."""
    settings, window, generated, seen = discriminator_feed(study, "v08", "image", frames=3)
    assert len(generated) == 3 and len(seen) == 4 * 3     # per frame: G on fake and real, D on real and fake
    frame = 2
    fake_for_generator, real_for_generator, real_for_step, fake_for_step = seen[4 * frame: 4 * frame + 4]
    real = window["image"][:, frame]
    assert torch.equal(real_for_step, real_for_generator)
    labels = num_channels(settings["label_set"])      # input: labels, edge, image, prior labels, prior images
    assert torch.equal(real_for_step[:, labels + 1: labels + 4], real)
    assert torch.equal(real_for_step[:, -6:], adj_priors([window["image"][:, 1], window["image"][:, 0]]))
    assert torch.equal(fake_for_step, fake_for_generator)
    assert torch.equal(fake_for_step[:, -6:], adj_priors([generated[1], generated[0]]))
    assert not torch.equal(fake_for_step[:, -6:], real_for_step[:, -6:])


def test_the_temporal_discriminator_sees_generated_priors_with_fakes_and_reference_flows_with_both(study):
    """vid2vid mode (v14): the temporal discriminator's fake input holds the last two *generated*
    frames, its real input the last two real ones, and both the reference flows of frames t and
    t-1 (build.temporal_discriminator_input: image, prior images, flow, prior flow)."""
    _, window, generated, seen = discriminator_feed(study, "v14", "temporal", frames=4)
    assert len(generated) == 3 and len(seen) == 4 * 3     # frames 1-3: G on fake and real, D on real and fake
    t = 3                                                 # the third trained frame: priors from frames 2 and 1
    fake_for_generator, real_for_generator, real_for_step, fake_for_step = seen[4 * (t - 1): 4 * t]
    assert torch.equal(real_for_step, real_for_generator) and torch.equal(fake_for_step, fake_for_generator)
    assert torch.equal(real_for_step[:, :3], window["image"][:, t])
    assert torch.equal(real_for_step[:, 3:9], adj_priors([window["image"][:, 2], window["image"][:, 1]]))
    assert torch.equal(fake_for_step[:, 3:9], adj_priors([generated[1], generated[0]]))
    for given in (real_for_step, fake_for_step):
        assert torch.equal(given[:, 9:11], window["flow"][:, t]) and torch.equal(given[:, 11:13], window["flow"][:, t - 1])

def run_training(variant: str, settings: dict | list[str], packed: dict, work: Path,
                 kill_when=None) -> subprocess.CompletedProcess:
    """Train in a subprocess; ``kill_when(rows)`` decides from the loss log when to send SIGTERM.
    ``settings``: what ``--settings`` passes, or the command's own arguments for them."""
    command = [sys.executable, "-m", "pipeline.train", "--variant", variant, "--data", str(packed["train"]),
               "--output", str(work / "out"), "--resume", str(work / "resume"), "--device", "cpu",
               *(settings if isinstance(settings, list) else ["--settings", json.dumps(settings)])]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = work / "resume" / "losses.csv"
    killed = False
    while process.poll() is None:
        if kill_when is not None and not killed and log.is_file():
            rows = [line.split(",") for line in log.read_text().splitlines()[1:]]
            if kill_when(rows):
                process.send_signal(signal.SIGTERM)
                killed = True
        time.sleep(0.02)
    out, err = process.communicate()
    return subprocess.CompletedProcess(command, process.returncode, out, err)


def finished_run(work: Path) -> dict:
    """Everything a finished run leaves that determines how training would continue, exactly.

    - ``model``: model.pt less its provenance (which records dates and seconds): the generator
      and encoder weights, sizes, entry.
    - ``resume``: the resume.pt the loop saves after its last stage, less the seconds elapsed
      and the code version (a hash of the source files, which an edit of the work tree between
      the runs would change): every trained module (the discriminators too, buffers included),
      every optimiser's state dict (Adam's moments and step counts per parameter; the param
      groups with their learning rates, betas and parameter order), the loop position, the
      python, numpy and torch RNG states, the rest of the fingerprint and the logged row count.
    - ``log``: the loss log's rows, every column as written.
    - ``steps``: the windows trained, as the summary records them.
    """
    model = torch.load(work / "out" / "model.pt", map_location="cpu", weights_only=False)
    resume = torch.load(work / "resume" / "resume.pt", map_location="cpu", weights_only=False)
    steps = json.loads((work / "out" / "summary.json").read_text())["steps"]
    assert model.pop("provenance")["steps"] == steps
    assert resume["extra"].pop("elapsed") > 0 and resume["fingerprint"].pop("code_version")
    return {"model": model, "resume": resume, "steps": steps,
            "log": (work / "out" / "losses.csv").read_text().splitlines()}


def assert_identical(expected, found, where: str = "") -> None:
    """Exact equality through dicts, lists and tuples down to tensors, arrays and numbers:
    the same keys, types, dtypes, shapes and values (no tolerance)."""
    assert type(found) is type(expected), f"{where}: {type(expected).__name__} vs {type(found).__name__}"
    if torch.is_tensor(expected):
        assert (expected.dtype, expected.shape) == (found.dtype, found.shape), where
        assert torch.equal(expected, found), where
    elif isinstance(expected, np.ndarray):
        assert expected.dtype == found.dtype and np.array_equal(expected, found), where
    elif isinstance(expected, dict):
        assert list(expected) == list(found), where
        for key in expected:
            assert_identical(expected[key], found[key], f"{where}.{key}")
    elif isinstance(expected, (list, tuple)):
        assert len(expected) == len(found), where
        for index, (a, b) in enumerate(zip(expected, found)):
            assert_identical(a, b, f"{where}[{index}]")
    else:
        assert expected == found, f"{where}: {expected!r} vs {found!r}"


@pytest.mark.slow
@pytest.mark.parametrize("variant, kill_stage", [
    ("v07", 0),   # CRN with adjacent prior frames; no encoder, no discriminator, constant lr
    ("v06", 1),   # CRN killed after growing: feature encoder, edge map, discriminator, decaying lr
    ("v14", 0),   # pix2pixHD twin: flow and warp losses, image and temporal discriminators, the
                  # extra flow frame; killed in epoch 0, the resumed job goes on into the decay
])
def test_sigterm_and_resume_give_the_uninterrupted_state(study, packed, tmp_path, variant, kill_stage):
    """A job killed mid-epoch and resubmitted ends where an unbroken run ends: the same weights
    (generator, encoder, discriminators), optimiser states (moments, step counts, learning
    rates), RNG states and position, and the same loss log, row for row and column for column."""
    settings = tiny(study, variant)
    whole = run_training(variant, settings, packed, tmp_path / "whole")
    assert whole.returncode == 0, whole.stderr

    def in_stage(rows):   # mid-epoch of the chosen stage: some of its windows done
        return sum(1 for row in rows if row[1] == str(kill_stage)) >= 2

    first = run_training(variant, settings, packed, tmp_path / "broken", kill_when=in_stage)
    assert first.returncode == TERMINATED_EXIT, first.stderr
    assert not (tmp_path / "broken" / "out" / "model.pt").exists()
    resumed = run_training(variant, settings, packed, tmp_path / "broken")
    assert resumed.returncode == 0, resumed.stderr
    expected, found = finished_run(tmp_path / "whole"), finished_run(tmp_path / "broken")

    # Not vacuous: every trained module and optimiser is there, and each optimiser has stepped.
    entry = settings["entry"]
    trained = {"generator"} | ({"encoder"} if entry["feature_encoder"] else set())
    trained |= {"discriminators"} if entry["discriminator"] else set()
    assert set(expected["resume"]["modules"]) == trained
    assert set(expected["resume"]["optimizers"]) == ({"generator", "discriminator"} if entry["discriminator"]
                                                     else {"generator"})
    for optimizer in expected["resume"]["optimizers"].values():
        assert optimizer["state"] and all(state["step"] > 0 for state in optimizer["state"].values())
    if entry["discriminator"] > 1:
        assert {"image", "temporal"} <= {key.split(".")[0] for key in expected["resume"]["modules"]["discriminators"]}
    if entry["flow"]:
        assert {"flow", "warp", "temporal_gan"} <= set(expected["log"][0].split(","))
    assert len(expected["log"]) == expected["steps"] + 1

    assert_identical(expected["model"], found["model"], "model.pt")
    assert_identical(expected["resume"], found["resume"], "resume.pt")
    assert found["log"] == expected["log"]
    assert found["steps"] == expected["steps"]

    # Snakemake deletes the job's log before each attempt: the attempts add up in history.log,
    # which the resubmitted job's log shows first.
    history = (tmp_path / "broken" / "resume" / "history.log").read_text()
    events = [line.split(": ", 1)[1] for line in history.splitlines()]
    killed_at = events[1].removeprefix("SIGTERM: saved at ").split(";")[0]
    assert [events[0], events[2], events[3].split(":")[0]] == ["started", f"resumed at {killed_at}", "finished"], events
    assert f"(stage {kill_stage}," in killed_at and "earlier attempts" in resumed.stderr


def test_outputs_record_provenance_and_reload(study, packed, tmp_path):
    settings = tiny(study, "v11")
    path = train_variant("v11", settings, packed["train"], tmp_path / "out", tmp_path / "resume", "cpu", progress=False)
    models, checkpoint = load_trained(path)
    assert "random" in checkpoint["provenance"]["backbone_weights"]["perceptual"]
    assert checkpoint["provenance"]["hardware"] == {
        "device": "cpu", "precision": "fp32", "precision_reason": "cpu: fp32 (deterministic)", "compiled": [],
        "cuda_graphs": False, "torch": torch.__version__,
        "runtime": {"checkpoint_minutes": 30, "compile": "auto", "compile_scope": "all",
                    "compile_mode": "auto"}}
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["training_seconds"] > 0 and summary["steps"] == 2 * 4
    header = (tmp_path / "out" / "losses.csv").read_text().splitlines()[0].split(",")
    assert {"gan", "feature_matching", "perceptual", "discriminator"} <= set(header)
    labels = torch.zeros(1, 20, 32, 64)
    labels[:, 0] = 1
    inputs = {"labels": labels, "edge": torch.zeros(1, 1, 32, 64), "features": torch.zeros(1, 3, 32, 64)}
    assert models.generator(inputs)["image"].shape == (1, 3, 32, 64)


def test_a_finished_runs_folder_gives_way_to_other_settings(study, packed, tmp_path, capsys):
    """After a change to what v02 computes Snakemake reruns its train job, which finds the finished
    run's resume folder: it starts afresh (a killed run's folder is refused instead, as above), and
    its loss log holds only its own rows."""
    def train(settings):
        return train_variant("v02", settings, packed["train"], tmp_path / "out", tmp_path / "resume", "cpu",
                             progress=False)

    train(tiny(study, "v02", crn_epochs=(1, 1)))
    other = tiny(merge(study, {"train": {"crn": {"lr": 2e-4}}}), "v02", crn_epochs=(1, 1))
    capsys.readouterr()
    train(other)
    assert "train.crn.lr: saved 0.0001, now 0.0002) is replaced: starting afresh" in capsys.readouterr().err
    fresh = train_variant("v02", other, packed["train"], tmp_path / "fresh", tmp_path / "fresh_resume", "cpu",
                          progress=False)
    assert_identical(torch.load(fresh, weights_only=False)["generator"],
                     torch.load(tmp_path / "out" / "model.pt", weights_only=False)["generator"], "generator")
    assert (tmp_path / "out" / "losses.csv").read_text() == (tmp_path / "fresh" / "losses.csv").read_text()


def test_bad_inputs_are_named(study, packed, tmp_path):
    settings = tiny(study, "v02")
    with pytest.raises(PipelineError, match="missing.h5"):
        train_variant("v02", settings, tmp_path / "missing.h5", tmp_path / "o", tmp_path / "r", "cpu")
    corrupt = tmp_path / "corrupt.h5"
    corrupt.write_bytes(packed["train"].read_bytes()[:5000])
    with pytest.raises(PipelineError, match="corrupt.h5"):
        train_variant("v02", settings, corrupt, tmp_path / "o", tmp_path / "r", "cpu")
    # A flow file, or the folder of the packs, given for the pack: said so, not "the None split".
    with h5py.File(tmp_path / "flow.h5", "w") as flow:
        flow["flow"] = np.zeros((1, 2, 2, 2), np.float16)
    for data, problem in ((tmp_path / "flow.h5", "not a packed file: it records no split"),
                          (packed["train"].parent, "a folder, not a packed file")):
        with pytest.raises(PipelineError, match=problem) as error:
            train_variant("v02", settings, data, tmp_path / "o", tmp_path / "r", "cpu")
        assert error.value.path == data
    with pytest.raises(PipelineError, match="variant 'v99' is not one of the config's variants"):
        train_settings(study, "v99")


def test_a_resume_follows_what_training_computes_not_how_it_runs(study, packed, tmp_path):
    """A job killed after a checkpoint resumes after a change to how it runs (the checkpoint
    interval, torch.compile) or to the table's columns, by hand (``--config``) as the rule runs it
    (``--settings``, ``--runtime``); after a change to what it computes it is refused, naming each
    differing key with its saved and its new value."""
    resume = tmp_path / "resume"

    def config_files(name: str, *changes: dict) -> list[str]:
        # By hand the whole config is checked: the tiny stages' sizes must be packed, and scored.
        override = merge(tiny_override(crn_epochs=(1, 1)),
                         {"pack": {"resolutions": [[16, 32], [32, 64]]}, "fvd": {"height": 16, "width": 32}})
        for change in changes:
            override = merge(override, change)
        (tmp_path / name).write_text(yaml.safe_dump(override))
        return [str(DEFAULT_CONFIG), str(tmp_path / name)]

    killed = run_training("v02", ["--config", *config_files("started.yaml")], packed, tmp_path,
                          kill_when=lambda rows: len(rows) >= 1)
    assert killed.returncode == TERMINATED_EXIT and (resume / "resume.pt").is_file(), killed.stderr

    # What it computes: refused, named.
    lr = load_config(config_files("lr.yaml", {"train": {"crn": {"lr": 2.0e-4}}}))
    with pytest.raises(PipelineError, match=r"another run \(train\.crn\.lr: saved 0\.0001, now 0\.0002\)"):
        train_variant("v02", train_settings(lr, "v02"), packed["train"], tmp_path / "out", resume, "cpu")
    with pytest.raises(PipelineError, match=r"train\.crn\.stages: saved .*'epochs': 1.*now .*'epochs': 2"):
        train_variant("v02", tiny(study, "v02", crn_epochs=(2, 1)), packed["train"], tmp_path / "out", resume, "cpu")
    with pytest.raises(PipelineError, match="variant: saved 'v02', now 'v03'"):
        train_variant("v03", tiny(study, "v03", crn_epochs=(1, 1)), packed["train"], tmp_path / "out", resume, "cpu")

    # How it runs, and v02's column of the table: resumed, with the new checkpoint interval.
    how = config_files("how.yaml", {"train": {"checkpoint_minutes": 7, "compile_mode": "default",
                                              "compile_scope": "generator"},
                                    "variants": {"v02": {"thesis_fvd": 1234.5}}})
    resumed = run_training("v02", ["--config", *how], packed, tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    hardware = torch.load(tmp_path / "out" / "model.pt", weights_only=False)["provenance"]["hardware"]
    assert hardware["runtime"]["checkpoint_minutes"] == 7
    rows = (tmp_path / "out" / "losses.csv").read_text().splitlines()[1:]
    assert len(rows) == json.loads((tmp_path / "out" / "summary.json").read_text())["steps"] > 1

    # The rule's way to the same run: the resume file (now of the finished run) is accepted.
    config = load_config(how)
    again = run_training("v02", ["--settings", json.dumps(train_settings(config, "v02")),
                                 "--runtime", json.dumps(dict(train_runtime(config), checkpoint_minutes=3))],
                         packed, tmp_path)
    assert again.returncode == 0, again.stderr
    assert torch.load(tmp_path / "out" / "model.pt", weights_only=False)["provenance"]["hardware"]["runtime"][
        "checkpoint_minutes"] == 3


# A V100 may answer True to torch.cuda.is_bf16_supported() (bf16 emulated): the choice must not rely on it.
@pytest.mark.parametrize("capability, amp, expected", [
    ((7, 0), "auto", "fp32"),      # V100 (Lengau)
    ((7, 5), "auto", "fp32"),      # T4
    ((8, 0), "auto", "bf16"),      # A100
    ((9, 0), "auto", "bf16"),      # H100
    ((7, 0), "bf16", "bf16"),      # asked for: forced, emulated
    ((9, 0), "off", "fp32"),
])
def test_auto_precision_takes_bf16_only_where_the_gpu_has_it(study, monkeypatch, capability, amp, expected):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "a GPU")
    train = {"amp": amp}
    gpu = torch.device("cuda")
    precision, why = choose_precision(train, gpu)
    assert precision == expected
    if amp != "off":
        assert f"compute capability {capability[0]}.{capability[1]}" in why
    if (amp, expected) == ("auto", "fp32"):
        assert "no bf16 hardware" in why
    # The optimisers autocast to bf16 exactly then; the checkpoint records the choice and why.
    settings, plans, models = tiny_models(study, "v02")
    optimizers = make_optimizers(models, settings["entry"], dict(settings["train"], **train), gpu)
    assert (optimizers.autocast is not None) == (expected == "bf16")
    hardware = _hardware(models, train, gpu, {})
    assert hardware["precision"] == ("bf16 autocast" if expected == "bf16" else "fp32")
    assert hardware["precision_reason"] == why
    assert choose_precision({"amp": "bf16"}, torch.device("cpu"))[0] == "fp32"


CRN = {f"v{index:02d}" for index in range(1, 10)}
PIX2PIXHD = {f"v{index:02d}" for index in range(10, 15)}
WITH_DISCRIMINATOR = {"v06", "v08", "v09"} | PIX2PIXHD
PRIOR = {"v07", "v08", "v09", "v12", "v13", "v14"}


@pytest.mark.parametrize("change, retrained", [
    ({"train": {"checkpoint_minutes": 5}}, set()),
    ({"train": {"compile": "off", "compile_scope": "generator", "compile_mode": "default"}}, set()),
    ({"variants": {"v02": {"thesis_fvd": 1.0}}}, set()),
    ({"variants": {"v02": {"index": 20}}}, set()),
    ({"train": {"crn": {"lr": 2.0e-4}}}, CRN),
    ({"train": {"pix2pixhd": {"betas": [0.9, 0.999]}}}, PIX2PIXHD),
    ({"train": {"discriminator": {"lr": 2.0e-4}}}, WITH_DISCRIMINATOR),
    ({"train": {"window": 4}}, PRIOR),
    ({"train": {"prior_epoch_fraction": 0.5}}, PRIOR),
    ({"train": {"image_data": "train"}}, set(CRN | PIX2PIXHD) - PRIOR),
    ({"train": {"keep_optimizer_state_on_grow": True}}, CRN),       # only the CRN has two stages
    ({"train": {"model_overrides": {"discriminator": {"width_divisor": 2}}}}, WITH_DISCRIMINATOR),
    ({"train": {"model_overrides": {"encoder": {"width_divisor": 2}}}}, {"v04", "v05", "v06", "v08", "v09"} | PIX2PIXHD),
    ({"losses": {"flow": 5.0, "warp": 5.0}}, {"v09", "v14"}),
    ({"losses": {"feature_matching": 5.0}}, WITH_DISCRIMINATOR),
    ({"losses": {"perceptual": 2.0}}, set(CRN | PIX2PIXHD) - {"v10"}),
    ({"weights": {"vgg19": "/weights/vgg19-dcbb9e9d.pth"}}, {"v01", "v02"}),
    ({"train": {"amp": "off"}}, CRN | PIX2PIXHD),       # numerics: bf16 or fp32
    ({"train": {"seed": 1}}, CRN | PIX2PIXHD),
    ({"variants": {"v02": {"norm": "layer"}}}, {"v02"}),
], ids=["checkpoint_minutes", "compile", "thesis_fvd", "index", "crn.lr", "pix2pixhd.betas", "discriminator.lr",
        "window", "prior_epoch_fraction", "image_data", "keep_optimizer_state", "discriminator_overrides",
        "encoder_overrides", "flow_losses", "feature_matching", "perceptual", "vgg19_file", "amp", "seed", "v02"])
def test_training_settings_hold_only_what_changes_the_variant(study, change, retrained):
    """What the train rule passes and the resume fingerprints: a change reaches exactly the
    variants whose training reads it (tests/test_rerun.py checks the rule reruns just those)."""
    changed = merge(study, change)
    assert {variant for variant in study["variants"]
            if train_settings(study, variant) != train_settings(changed, variant)} == retrained


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (the fast path: bf16, compile, fused Adam)")
@pytest.mark.parametrize("variant, scope, mode", [("v06", "generator", "default"), ("v14", "generator", "default"),
                                                 ("v07", "all", "reduce-overhead"), ("v14", "all", "reduce-overhead"),
                                                 ("v09", "all", "reduce-overhead"), ("v07", "all", "auto")])
def test_the_fast_path_trains_on_a_gpu(study, packed, tmp_path, variant, scope, mode):
    """Both CRN stages (the grown generator is compiled again) and the twin pix2pixHD with flow,
    through bf16 autocast (from compute capability 8.0), torch.compile and fused Adam, also with every network compiled into
    CUDA graphs: finite losses, a checkpoint that loads."""
    settings = tiny(study, variant)
    settings["train"] = dict(settings["train"], compile_scope=scope, compile_mode=mode)
    path = train_variant(variant, settings, packed["train"], tmp_path / "out", tmp_path / "resume", "cuda",
                         progress=False)
    models, checkpoint = load_trained(path)
    bf16 = torch.cuda.get_device_capability() >= (8, 0)        # a V100 (7.0) trains in fp32
    assert checkpoint["provenance"]["hardware"]["precision"] == ("bf16 autocast" if bf16 else "fp32")
    assert checkpoint["provenance"]["hardware"]["compiled"]
    assert checkpoint["provenance"]["hardware"]["cuda_graphs"] == (mode == "reduce-overhead" or (mode == "auto"
                                                                                              and bf16))
    rows = (tmp_path / "out" / "losses.csv").read_text().splitlines()
    header, values = rows[0].split(","), [row.split(",") for row in rows[1:]]
    generator = header.index("generator")
    assert len(values) > 2 and all(math.isfinite(float(row[generator])) for row in values)
    assert {row[1] for row in values} == ({"0", "1"} if settings["entry"]["network"] == "crn" else {"0"})


@pytest.mark.parametrize("variant, image_data, split, refused", [
    ("v02", "gtfine_train", "gtfine_train", False),     # the default: all 2975 annotated frames
    ("v02", "gtfine_train", "train", False),            # the other training split: said on stderr
    ("v02", "train", "train", False),
    ("v02", "gtfine_train", "val", True),               # held out: FVD would score training videos
    ("v07", "gtfine_train", "train", False),            # windows of the subset's snippets
    ("v07", "gtfine_train", "gtfine_train", True),      # one frame a sample: no window
    ("v07", "train", "test", True),
])
def test_each_variant_trains_only_on_its_training_splits(study, variant, image_data, split, refused, capsys):
    entry = study["variants"][variant]
    check = partial(check_training_split, variant, entry, {"image_data": image_data}, Path("x.h5"), split)
    if refused:
        with pytest.raises(PipelineError, match=f"holds the '{split}' split; {variant} trains on"):
            check()
    else:
        check()
        assert (f"training on the {split} split" in capsys.readouterr().err) == (split != image_data
                                                                                and not entry["prior"])


def test_training_settings_are_a_copy_of_the_config(study):
    """A stage or test that edits a variant's settings must not edit the config, and so every other
    variant's settings made from it afterwards."""
    before = copy.deepcopy(study)
    settings = train_settings(study, "v02")
    settings["train"]["crn"]["stages"][1].pop("epochs")
    settings["losses"].clear()
    assert study == before


def test_the_runtime_defaults_are_the_schemas():
    """Settings built by hand without the runtime keys get RUNTIME_DEFAULTS: the schema's."""
    schema = yaml.safe_load(SCHEMA_PATH.read_text())["properties"]["train"]["properties"]
    assert RUNTIME_DEFAULTS == {key: schema[key]["default"] for key in RUNTIME_DEFAULTS}
