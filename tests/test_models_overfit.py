"""A small variant of each network overfits one short synthetic sequence (issue 7, "Done when").

The sequence is made here (3 frames, 32x64, 4 classes, one car moving 2 px right per frame, its
reference flow known exactly); the networks are the config's variants shrunk by
``width_divisor``, trained with their own criteria (random MobileNetV2 weights, as a demo)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml

from pipeline.models.build import (
    build_discriminators, build_feature_encoder, build_generator, build_losses, image_discriminator_input,
)
from pipeline.models.edges import edge_map
from pipeline.models.prior import PriorFrames, shift_prior

CONFIG = yaml.safe_load((Path(__file__).resolve().parents[1] / "config.yaml").read_text())
VARIANTS = {entry["index"]: entry for entry in CONFIG["variants"].values()}
RANDOM_WEIGHTS = {"allow_random": True}
HEIGHT, WIDTH, FRAMES, CLASSES, SPEED = 32, 64, 3, 4, 2
COLOURS = torch.tensor([[0.3, 0.5, 0.9], [0.4, 0.4, 0.4], [0.7, 0.5, 0.3], [0.9, 0.1, 0.1]])


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def synthetic_sequence() -> dict[str, torch.Tensor]:
    """frames [T, 3, H, W], labels [T, L, H, W], instances [T, H, W], flow [T, 2, H, W]."""
    ys, xs = torch.meshgrid(torch.arange(HEIGHT), torch.arange(WIDTH), indexing="ij")
    frames, labels, instances, flows = [], [], [], []
    for t in range(FRAMES):
        classes = torch.where(ys < HEIGHT // 3, 0, 1)  # sky over road
        classes = torch.where((xs < 16) & (ys < 24), 2, classes)  # a building
        car = (ys >= 14) & (ys < 30) & (xs >= 20 + SPEED * t) & (xs < 44 + SPEED * t)
        classes = torch.where(car, 3, classes)
        texture = 0.8 + 0.2 * torch.sin((xs - car * SPEED * t) / 3.0 + ys / 5.0)
        frames.append(COLOURS[classes].permute(2, 0, 1) * texture)
        labels.append(F.one_hot(classes, CLASSES).permute(2, 0, 1).float())
        instances.append(torch.where(car, 26000, classes + 7))
        flow = torch.zeros(2, HEIGHT, WIDTH)
        flow[0][car] = -float(SPEED)  # frame t at x is frame t-1 at x - 2
        flows.append(flow)
    return {"frames": torch.stack(frames), "labels": torch.stack(labels),
            "instances": torch.stack(instances), "flow": torch.stack(flows)}


def frame_inputs(entry: dict, data: dict, t: int, encoder) -> dict[str, torch.Tensor]:
    inputs = {"labels": data["labels"][t:t + 1]}
    if entry["edge"]:
        inputs["edge"] = edge_map(data["instances"][t:t + 1])
    if entry["feature_encoder"]:
        inputs["features"] = encoder(data["frames"][t:t + 1], data["instances"][t:t + 1])
    return inputs


def train_image_variant(index: int, steps: int, lr: float, width_divisor: int) -> list[float]:
    """Mean perceptual loss per pass over the sequence; one optimiser step per frame (thesis)."""
    torch.manual_seed(0)
    entry = VARIANTS[index]
    data = synthetic_sequence()
    generator = build_generator(entry, CLASSES, HEIGHT, WIDTH, width_divisor=width_divisor)
    encoder = build_feature_encoder(entry, width_divisor=2)
    criteria = build_losses(entry, CONFIG["losses"], RANDOM_WEIGHTS)
    parameters = list(generator.parameters()) + (list(encoder.parameters()) if encoder else [])
    optimiser = torch.optim.Adam(parameters, lr=lr, betas=(0.5, 0.999))
    discriminators = build_discriminators(entry, CLASSES, width_divisor=16)
    if discriminators is not None:
        d_optimiser = torch.optim.Adam(discriminators.parameters(), lr=lr, betas=(0.5, 0.999))
    history = []
    for _ in range(steps):
        total = 0.0
        for t in range(FRAMES):
            real = data["frames"][t:t + 1]
            inputs = frame_inputs(entry, data, t, encoder)
            image = generator(inputs)["image"]
            perceptual = criteria["perceptual"](image, real)
            loss = perceptual
            if discriminators is not None:
                fake_out = discriminators["image"](image_discriminator_input(entry, inputs, image))
                real_out = discriminators["image"](image_discriminator_input(entry, inputs, real))
                loss = loss + criteria["gan"](fake_out, True) + criteria["feature_matching"](fake_out, real_out)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            if discriminators is not None:
                inputs = {key: value.detach() for key, value in inputs.items()}
                fake_out = discriminators["image"](image_discriminator_input(entry, inputs, image.detach()))
                real_out = discriminators["image"](image_discriminator_input(entry, inputs, real))
                d_optimiser.zero_grad()
                criteria["gan"].discriminator(real_out, fake_out).backward()
                d_optimiser.step()
            total += perceptual.item()
        history.append(total / FRAMES)
    return history


def test_a_small_crn_overfits_the_sequence():
    history = train_image_variant(5, steps=20, lr=2e-3, width_divisor=16)  # ResNeXt, edge, features
    assert history[-1] < 0.4 * history[0], history


def test_a_small_pix2pixhd_with_its_discriminators_overfits_the_sequence():
    history = train_image_variant(11, steps=20, lr=2e-3, width_divisor=16)  # 2 scales, MobileNetV2
    assert min(history[-3:]) < 0.5 * history[0], history


def test_a_small_twin_crn_learns_flow_and_frames_from_its_own_priors():
    torch.manual_seed(0)
    entry = {**VARIANTS[9], "discriminator": 0}  # the flow path; the GAN parts are tested above
    data = synthetic_sequence()
    generator = build_generator(entry, CLASSES, HEIGHT, WIDTH, width_divisor=16)
    encoder = build_feature_encoder(entry, width_divisor=2)
    criteria = build_losses(entry, CONFIG["losses"], RANDOM_WEIGHTS)
    optimiser = torch.optim.Adam([*generator.parameters(), *encoder.parameters()], lr=3e-3)
    prior = PriorFrames(entry["prior"])
    perceptual_history, flow_history = [], []
    for _ in range(20):
        prior.reset(data["frames"][:1], data["labels"][:1])
        prior.push(data["frames"][0:1], data["labels"][0:1])  # frame 0 as a warm-up prior
        perceptual_total = flow_total = 0.0
        for t in range(1, FRAMES):
            real = data["frames"][t:t + 1]
            out = generator({**frame_inputs(entry, data, t, encoder), **prior.inputs()})
            perceptual = criteria["perceptual"](out["image"], real) + criteria["perceptual"](out["hallucinated"], real)
            flow = criteria["flow"](out["flow"], data["flow"][t:t + 1])
            warp = criteria["warp"](data["frames"][t - 1:t], real, out["flow"])
            optimiser.zero_grad()
            (perceptual + flow + warp).backward()
            optimiser.step()
            prior.push(out["image"], data["labels"][t:t + 1])
            perceptual_total += perceptual.item()
            flow_total += flow.item()
        perceptual_history.append(perceptual_total)
        flow_history.append(flow_total)
    assert torch.allclose(prior.inputs()["prior_images"][:, :3], shift_prior(out["image"].clamp(0, 1), "adj"))
    zero_flow = sum(criteria["flow"](torch.zeros(1, 2, HEIGHT, WIDTH), data["flow"][t:t + 1]).item()
                    for t in range(1, FRAMES))
    assert perceptual_history[-1] < 0.5 * perceptual_history[0], perceptual_history
    # Below what a zero flow scores: the flow head has learned the car's motion.
    assert min(flow_history[-3:]) < 0.6 * zero_flow, (zero_flow, flow_history)
