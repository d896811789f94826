"""What each component of pipeline.models computes (issue 7): norms, edges, prior frames,
instance pooling and k-means, CRN layout and growth, twin merge, losses, weight loading."""

from __future__ import annotations

import dataclasses
import hashlib
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torch.overrides import TorchFunctionMode

from pipeline.errors import PipelineError
from pipeline.models.blocks import ResNeXtBlock
from pipeline.models import weights
from pipeline.models.crn import CRN, module_sizes, module_widths
from pipeline.models.discriminators import MultiscaleDiscriminator, PatchDiscriminator
from pipeline.models.edges import edge_map
from pipeline.models.encoder import (
    FeatureEncoder, choose_centres, cluster_features, instance_average, kmeans, paint_features,
    region_means,
)
from pipeline.models.inputs import InputSpec
from pipeline.models.losses import FeatureMatchingLoss, FlowLoss, LSGANLoss, WarpLoss, end_point_error
from pipeline.models.norms import conv_norm, make_norm
from pipeline.models.perceptual import IMAGENET_STD, Backbone, PerceptualLoss, load_backbone
from pipeline.models.pix2pixhd import GlobalGenerator
from pipeline.models.prior import PriorFrames, unshift_prior
from pipeline.models.twin import merge_with_prior


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # Small tensors: one thread is faster than two fighting other test processes for 2 cores.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def one_hot(classes: torch.Tensor, channels: int) -> torch.Tensor:
    return F.one_hot(classes, channels).permute(0, 3, 1, 2).float()


# --- norms -----------------------------------------------------------------------------------

def test_layer_norm_normalises_each_channel_over_the_plane_with_a_per_pixel_affine():
    norm = make_norm("layer", 5, (6, 8))
    x = torch.randn(2, 5, 6, 8) * 4 + 3
    y = norm(x)
    assert norm.weight.shape == (6, 8)
    assert torch.allclose(y.mean((2, 3)), torch.zeros(2, 5), atol=1e-5)
    assert torch.allclose(y.var((2, 3), unbiased=False), torch.ones(2, 5), atol=1e-3)


def test_group_norm_normalises_over_all_channels_together():
    norm = make_norm("group", 4)
    x = torch.randn(2, 4, 5, 5)
    x[:, 0] += 10  # one channel offset: per-sample stats over (C, H, W) keep it apart
    y = norm(x)
    assert torch.allclose(y.mean((1, 2, 3)), torch.zeros(2), atol=1e-5)
    assert y[:, 0].mean() > 1.0


def test_weight_norm_output_is_invariant_to_the_scale_of_v():
    block = conv_norm("weight", torch.nn.Conv2d(3, 4, 3, padding=1))
    x = torch.randn(1, 3, 6, 6)
    before = block(x)
    with torch.no_grad():
        block[0].parametrizations.weight.original1.mul_(7.0)  # v; g unchanged
    assert torch.allclose(block(x), before, atol=1e-5)


def test_instance_norm_has_no_parameters_and_unknown_norm_lists_allowed():
    assert not list(make_norm("instance", 4).parameters())
    with pytest.raises(ValueError, match="layer, group, weight, instance"):
        make_norm("batch", 4)


# --- edges -----------------------------------------------------------------------------------

def two_regions(height: int = 6, width: int = 8) -> torch.Tensor:
    ids = torch.full((height, width), 7)
    ids[:, width // 2:] = 26001
    return ids


def test_thesis_edges_mark_both_sides_of_a_boundary_and_clear_the_border():
    edges = edge_map(two_regions())
    assert edges.shape == (1, 6, 8)
    assert torch.equal(edges[0, 1:-1, 3:5], torch.ones(4, 2))
    assert edges[0].sum() == 8  # rows 1..4, columns 3 and 4; the border rows are cleared
    assert edges[0, 0].sum() == 0 and edges[0, -1].sum() == 0


def test_pix2pixhd_edges_include_the_border_rows():
    edges = edge_map(two_regions(), method="pix2pixhd")
    assert torch.equal(edges[0, :, 3:5], torch.ones(6, 2))
    assert edges.sum() == 12


def test_edge_map_takes_numpy_batches_and_adds_class_edges():
    instances = np.zeros((2, 1, 6, 8), dtype=np.int32)
    classes = np.zeros_like(instances)
    classes[1, 0, 3:] = 5
    edges = edge_map(instances, classes=classes)
    assert edges.shape == (2, 1, 6, 8) and edges.dtype == torch.float32
    assert edges[0].sum() == 0
    assert torch.equal(edges[1, 0, 2:4, 1:-1], torch.ones(2, 6))
    with pytest.raises(ValueError, match="thesis, pix2pixhd"):
        edge_map(instances, method="sobel")


# --- prior frames ----------------------------------------------------------------------------

def test_prior_frames_are_newest_first_with_mode_placeholders():
    image = torch.full((1, 3, 4, 4), 0.8)
    labels = torch.ones(1, 2, 4, 4)
    for mode, placeholder in (("ext", 0.0), ("adj", 0.5)):
        prior = PriorFrames(mode)
        prior.reset(image, labels)
        inputs = prior.inputs()
        assert inputs["prior_images"].shape == (1, 6, 4, 4) and inputs["prior_labels"].shape == (1, 4, 4, 4)
        assert torch.all(inputs["prior_images"] == 0) and torch.all(inputs["prior_labels"] == 0)
        assert torch.allclose(unshift_prior(inputs["prior_images"], mode), torch.tensor(placeholder))
        prior.push(image, labels)
        prior.push(image * 2, labels)  # clamped to 1
        newest, older = unshift_prior(prior.inputs()["prior_images"], mode).split(3, 1)
        assert torch.allclose(newest, torch.tensor(1.0)) and torch.allclose(older, torch.tensor(0.8))


# --- feature encoder, pooling, k-means ------------------------------------------------------

def test_instance_average_gives_one_value_per_instance_and_batch_element():
    instances = torch.tensor([[[1, 1, 2], [3, 3, 2]], [[1, 1, 1], [1, 1, 1]]])
    features = torch.arange(12, dtype=torch.float32).view(2, 1, 2, 3).requires_grad_()
    pooled = instance_average(features, instances)
    expected = torch.tensor([[[0.5, 0.5, 3.5], [3.5, 3.5, 3.5]], [[8.5] * 3] * 2])[:, None]
    assert torch.allclose(pooled, expected)
    pooled.sum().backward()
    assert torch.allclose(features.grad, torch.ones_like(features))


def test_instance_average_equals_a_loop_over_ids_and_refuses_ids_out_of_range():
    generator = torch.Generator().manual_seed(0)
    instances = torch.tensor([0, 7, 26001, 65535])[torch.randint(0, 4, (2, 9, 11), generator=generator)]
    features = torch.randn(2, 3, 9, 11, generator=generator, dtype=torch.float64)
    expected = torch.empty_like(features)
    for b in range(2):
        for value in instances[b].unique():
            mask = instances[b] == value
            expected[b][:, mask] = features[b][:, mask].mean(1, keepdim=True)
    assert torch.allclose(instance_average(features, instances[:, None]), expected)
    with pytest.raises(ValueError, match="65536"):
        instance_average(features, instances + 1)


class _IndexAddDtypes(TorchFunctionMode):
    """Records the dtype each ``index_add`` accumulates in."""

    def __init__(self):
        super().__init__()
        self.dtypes = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func is torch.Tensor.index_add:
            self.dtypes.append(args[0].dtype)
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("device", [
    "cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"))])
def test_instance_average_pools_bf16_features_in_float32_and_keeps_their_dtype(device):
    """Under bf16 autocast (the GPU path) the features arrive in bf16, and CUDA's index_add
    accumulates in the destination's dtype: summed and counted in bf16 a region stops growing
    past 256 pixels (here 1536 and 512). The CPU sums exactly either way, so there the test
    checks that the sums are taken in float32."""
    features = torch.rand(1, 3, 32, 64).bfloat16().to(device)
    instances = torch.zeros(1, 32, 64, dtype=torch.long, device=device)
    instances[:, :, 48:] = 26000
    with _IndexAddDtypes() as scatters:
        pooled = instance_average(features, instances)
    assert pooled.dtype == torch.bfloat16 and scatters.dtypes == [torch.float32]
    expected = instance_average(features.float(), instances)
    torch.testing.assert_close(pooled, expected.bfloat16())


def test_feature_encoder_output_is_constant_within_each_instance():
    encoder = FeatureEncoder(width_divisor=4)
    instances = torch.zeros(1, 32, 32, dtype=torch.long)
    instances[:, 8:20, 4:30] = 26000
    features = encoder(torch.rand(1, 3, 32, 32), instances)
    assert features.shape == (1, 3, 32, 32)
    for value in (0, 26000):
        inside = features[0][:, instances[0] == value]
        assert torch.allclose(inside, inside[:, :1].expand_as(inside))


def test_feature_encoder_takes_the_image_in_0_1_as_it_is():
    """The thesis kept images in [0, 1] with no [-1, 1] scaling (thesis-code.md 2): the encoder's
    first layer sees the image it is given."""
    encoder = FeatureEncoder(width_divisor=4)
    image = torch.rand(1, 3, 32, 32)
    seen = []
    encoder.body[0].register_forward_hook(lambda module, args, output: seen.append(args[0]))
    encoder(image, torch.zeros(1, 32, 32, dtype=torch.long))
    assert torch.equal(seen[0], image)


def test_kmeans_finds_separated_clusters_and_is_seeded():
    centres = torch.tensor([[0.0, 0.0], [5.0, 5.0], [-5.0, 5.0]])
    points = (centres[:, None] + 0.1 * torch.randn(3, 40, 2)).view(-1, 2)
    found = kmeans(points, 3, torch.Generator().manual_seed(1))
    matched = torch.cdist(centres, found).min(1).values
    assert torch.all(matched < 0.1)
    again = kmeans(points, 3, torch.Generator().manual_seed(1))
    assert torch.equal(found, again)
    assert kmeans(points[:2], 10, torch.Generator().manual_seed(0)).shape == (2, 2)


def test_feature_bank_collects_clusters_and_paints_by_class():
    labels_ids = torch.tensor([[[0, 0, 1, 1], [0, 0, 1, 1]]])
    instances = torch.tensor([[[7, 7, 26000, 26001], [7, 7, 26000, 26001]]])
    labels = one_hot(labels_ids, 3)
    features = torch.tensor([0.1, 0.2, 0.3, 0.4]).repeat(2, 1).view(1, 1, 2, 4).repeat(1, 3, 1, 1)
    means, classes = region_means(features, instances, labels)
    assert sorted(classes.tolist()) == [0, 1, 1]
    bank = cluster_features(means, classes, clusters=10, seed=0)
    assert bank[0].shape == (1, 3) and bank[1].shape == (2, 3)
    chosen = choose_centres(bank, torch.Generator().manual_seed(0))
    painted = paint_features(instances, labels, chosen)
    assert torch.allclose(painted[0, :, 0, 0], torch.full((3,), 0.15))
    assert torch.allclose(painted[0, :, :, 2:], chosen[1][:, None, None].expand(3, 2, 2))
    del chosen[1]
    assert torch.all(paint_features(instances, labels, chosen)[0, :, :, 2:] == 0)  # missing class -> 0


# --- CRN -------------------------------------------------------------------------------------

def test_crn_module_count_and_widths_follow_the_output_size():
    assert len(module_sizes(256, 512)) == 7 and len(module_sizes(512, 1024)) == 8
    assert module_sizes(256, 512)[0] == (4, 8) and module_sizes(256, 512)[-1] == (256, 512)
    assert module_widths(8) == [1024] * 5 + [512, 512, 128]
    with pytest.raises(ValueError):
        module_sizes(96, 192)


def test_crn_image_k_takes_channels_k_k_plus_K_and_2K_plus_k():
    crn = CRN(InputSpec(3), 16, 32, output_images=3, norm="weight", width_divisor=64)
    with torch.no_grad():
        crn.to_image.weight.zero_()
        crn.to_image.bias.copy_(torch.arange(9, dtype=torch.float32))
    out = crn({"labels": torch.zeros(1, 3, 16, 32)})
    assert out["images"].shape == (1, 3, 3, 16, 32)
    for k in range(3):
        for colour in range(3):
            assert torch.allclose(out["images"][0, k, colour], torch.tensor((colour * 3 + k + 1) / 2))
    assert torch.equal(out["image"], out["images"][:, 0])


def test_crn_output_is_x_plus_one_over_two_without_clamp():
    crn = CRN(InputSpec(2), 8, 16, norm="weight", width_divisor=64)
    with torch.no_grad():
        crn.to_image.weight.zero_()
        crn.to_image.bias.fill_(3.0)
    assert torch.allclose(crn({"labels": torch.zeros(1, 2, 8, 16)})["image"], torch.tensor(2.0))


def test_crn_grow_transfers_modules_by_index_and_starts_heads_fresh():
    small = CRN(InputSpec(3), 16, 32, output_images=9, norm="layer", width_divisor=32)
    grown = small.grow(output_images=3)
    assert len(grown.refine) == len(small.refine) + 1 and grown.output_images == 3
    report = grown.load_grown_state(small.state_dict())
    assert any(key.startswith("to_image") for key in report["dropped"])
    assert any(key.startswith("refine.2.") for key in report["transferred"])  # the old final module
    assert report["fresh"] and all(key.startswith(("refine.3.", "to_image")) for key in report["fresh"])
    for key, value in small.refine.state_dict().items():
        assert torch.equal(grown.refine.state_dict()[key], value)
    assert grown({"labels": torch.zeros(1, 3, 32, 64)})["images"].shape == (1, 3, 3, 32, 64)


def _processed(block: nn.Module, x: torch.Tensor, order: str) -> torch.Tensor:
    """One processing block by hand: its conv, its LayerNorm (if any) and LeakyReLU(0.2) in the
    thesis's ``RMBlock.forward`` order for ``relu_loc``."""
    conv = next(m for m in block.modules() if isinstance(m, nn.Conv2d))
    norm = next((m for m in block.modules() if isinstance(m, nn.LayerNorm)), nn.Identity())
    if order == "after":
        return F.leaky_relu(norm(conv(x)), 0.2)
    return conv(F.leaky_relu(norm(x), 0.2))


@pytest.mark.parametrize("residual, norm, order", [(False, "layer", "after"), (True, "weight", "before")])
def test_crn_processing_blocks_take_the_thesis_order_for_the_module_kind(residual, norm, order):
    """Refinement_Module.py runs the final module's processing RMBlocks with relu_loc="before"
    (norm, LeakyReLU, conv) after ResNeXt modules and "after" (conv, norm, LeakyReLU) after plain
    ones; the image head takes their output."""
    crn = CRN(InputSpec(3), 16, 32, norm=norm, residual=residual, width_divisor=16, processing_blocks=2)
    seen = {}
    crn.refine[-1].register_forward_hook(lambda module, args, out: seen.setdefault("final", out))
    crn.to_image.register_forward_pre_hook(lambda module, args: seen.setdefault("head", args[0]))
    with torch.no_grad():
        crn({"labels": one_hot(torch.randint(3, (1, 16, 32)), 3)})
        expected = seen["final"]
        for block in crn.process:
            expected = _processed(block, expected, order)
    assert len(crn.process) == 2
    assert torch.allclose(seen["head"], expected, atol=1e-6)


def test_twin_crn_processing_blocks_also_feed_the_flow_and_mask_heads():
    """CRN_Video_Network.py gives the final twin module the processing blocks too (its
    num_resnet_processing_rms): the flow and mask heads see the processed twin output."""
    crn = CRN(InputSpec(3, prior="adj"), 16, 32, norm="weight", residual=True, twin=True, width_divisor=16,
              processing_blocks=1)
    seen = {}
    crn.twin[-1].register_forward_hook(lambda module, args, out: seen.setdefault("twin", out))
    crn.heads.register_forward_pre_hook(lambda module, args: seen.setdefault("heads", args[0]))
    inputs = {"labels": one_hot(torch.randint(3, (1, 16, 32)), 3), "prior_labels": torch.zeros(1, 6, 16, 32),
              "prior_images": torch.rand(1, 6, 16, 32)}
    with torch.no_grad():
        crn(inputs)
        processing = [module for name, module in crn.named_children() if "process" in name and module is not crn.process]
        assert len(processing) == 1 and len(processing[0]) == 1   # one block on the twin's own chain
        expected = _processed(processing[0][0], seen["twin"], "before")
    assert not torch.allclose(seen["heads"], seen["twin"])
    assert torch.allclose(seen["heads"], expected, atol=1e-6)


def test_resnext_block_averages_input_and_residual():
    block = ResNeXtBlock(64)
    x = torch.randn(1, 64, 4, 4)
    assert torch.allclose(block(x), (block.body(x) + x) / 2)
    assert block.body[2].groups == 32  # cardinality 32 on C/2 = 32 channels


# --- twin merge ------------------------------------------------------------------------------

def test_zero_flow_and_mask_one_give_back_the_candidate_frame():
    candidate = torch.rand(1, 3, 8, 16)
    priors = torch.rand(1, 6, 8, 16) - 0.5
    zero = torch.zeros(1, 2, 8, 16)
    merged = merge_with_prior(candidate, zero, torch.ones(1, 1, 8, 16), priors, "adj")
    assert torch.allclose(merged["image"], candidate)
    merged = merge_with_prior(candidate, zero, torch.zeros(1, 1, 8, 16), priors, "adj")
    assert torch.allclose(merged["image"], priors[:, :3] + 0.5, atol=1e-6)  # the newest prior, unshifted


def test_twin_crn_with_zeroed_flow_head_and_saturated_mask_returns_its_candidate():
    crn = CRN(InputSpec(3, prior="ext"), 16, 32, norm="weight", twin=True, width_divisor=64)
    with torch.no_grad():
        for conv in (crn.heads.to_flow[1], crn.heads.to_mask[1]):
            conv.weight.zero_()
        crn.heads.to_flow[1].bias.zero_()
        crn.heads.to_mask[1].bias.fill_(50.0)
    inputs = {"labels": one_hot(torch.randint(3, (1, 16, 32)), 3), "prior_labels": torch.zeros(1, 6, 16, 32),
              "prior_images": torch.rand(1, 6, 16, 32)}
    out = crn(inputs)
    assert torch.all(out["flow"] == 0)
    assert torch.allclose(out["image"], out["hallucinated"], atol=1e-6)
    assert torch.allclose(out["warped"], inputs["prior_images"][:, :3], atol=1e-6)


# --- perceptual and diversity loss ----------------------------------------------------------

@pytest.fixture(scope="module")
def mobilenet_loss() -> PerceptualLoss:
    torch.manual_seed(0)
    return PerceptualLoss(load_backbone("mobilenet_v2", None, allow_random=True))


def test_perceptual_loss_is_zero_for_equal_images_and_grows_with_the_difference(mobilenet_loss):
    real = torch.rand(1, 3, 32, 64)
    noise = torch.randn_like(real)
    values = [float(mobilenet_loss(real + scale * noise, real)) for scale in (0.0, 0.05, 0.2, 0.5)]
    assert values[0] == 0.0
    assert values[1] < values[2] < values[3]


def test_perceptual_backbone_stays_frozen_in_eval_mode(mobilenet_loss):
    mobilenet_loss.train()
    assert not mobilenet_loss.backbone.training
    fake = torch.rand(1, 3, 32, 64, requires_grad=True)
    mobilenet_loss(fake, torch.rand(1, 3, 32, 64)).backward()
    assert fake.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in mobilenet_loss.backbone.parameters())


def test_diversity_loss_is_the_soft_minimum_over_images_per_class():
    errors = torch.tensor([[[1.0, 5.0], [3.0, 2.0]]])  # [B=1, K=2, L=2]
    expected = 0.999 * (1.0 + 2.0) + 0.001 * (2.0 + 3.5)
    assert torch.allclose(PerceptualLoss.diversity(errors), torch.tensor(expected))


def test_diversity_loss_picks_the_best_image_per_class(mobilenet_loss):
    real = torch.rand(1, 3, 32, 64)
    labels = one_hot((torch.arange(64) >= 32).long().expand(1, 32, 64), 2)
    noise = 0.5 * torch.randn(1, 3, 32, 64)
    left_good = real + noise * labels[:, 1:]  # right half noisy
    right_good = real + noise * labels[:, :1]  # left half noisy
    fakes = torch.stack([left_good, right_good], 1)
    errors = mobilenet_loss.class_errors(fakes, real, labels)
    assert errors[0, 0, 0] < errors[0, 1, 0] and errors[0, 1, 1] < errors[0, 0, 1]
    diverse = float(mobilenet_loss(fakes, real, labels))
    single = min(float(mobilenet_loss(left_good, real)), float(mobilenet_loss(right_good, real)))
    assert diverse < 0.7 * single  # each class takes its better image


def test_one_image_diversity_loss_equals_the_plain_perceptual_loss(mobilenet_loss):
    real, fake = torch.rand(1, 3, 32, 64), torch.rand(1, 3, 32, 64)
    labels = one_hot(torch.randint(4, (1, 32, 64)), 4)
    errors = mobilenet_loss.class_errors(fake[:, None], real, labels)
    assert torch.allclose(errors.sum(), mobilenet_loss.plain(fake, real), rtol=1e-4)


def _toy_loss(tap: nn.Module, pixel_divisor: float | None) -> PerceptualLoss:
    """A perceptual loss whose "backbone" is one known slice: checkable by hand."""
    return PerceptualLoss(Backbone("toy", nn.Sequential(tap), (1,), "none"), (1.0,), pixel_divisor)


def _zero_tap() -> nn.Module:
    conv = nn.Conv2d(3, 1, 1)
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


def test_the_pixel_term_compares_imagenet_normalised_images():
    """thesis-code.md 5: Perceptual_Loss normalised both images with ImageNet mean and std and took
    its pixel term on the normalised tensors: a shift d of channel c costs d / std_c, not d."""
    loss = _toy_loss(_zero_tap(), pixel_divisor=1.0)     # the tap is 0 for any input: pixel term only
    real = torch.rand(1, 3, 4, 8)
    shift = torch.tensor([0.1, 0.2, 0.3]).view(1, 3, 1, 1)
    expected = sum(d / s for d, s in zip((0.1, 0.2, 0.3), IMAGENET_STD)) / 3
    assert float(loss(real + shift, real)) == pytest.approx(expected, rel=1e-5)
    # The diversity loss's pixel term too (K = 2 images, one label channel covering everything).
    labels = torch.ones(1, 1, 4, 8)
    errors = loss.class_errors(torch.stack([real + shift, real], 1), real, labels)
    assert errors[0, :, 0].tolist() == pytest.approx([expected, 0.0], rel=1e-5)


def test_the_backbone_and_the_pixel_term_take_the_same_normalised_tensor():
    seen = []
    loss = _toy_loss(nn.Identity(), pixel_divisor=1.0)
    loss.backbone.slices[0].register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    real = torch.rand(1, 3, 4, 8)
    pairs = loss._features(real)
    assert torch.equal(seen[0], (real - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
                       / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
    assert pairs[0][0] is seen[0]


def test_diversity_masks_are_resized_nearest_to_each_tap():
    """thesis-code.md 5 (Perceptual_Loss.py): label masks reach a tap's size with mode "nearest",
    so a class on one pixel of each 2x2 block counts fully there (area would give it 1/4)."""
    loss = _toy_loss(nn.AvgPool2d(2), pixel_divisor=None)   # one tap at half resolution
    real = torch.rand(1, 3, 4, 4)
    fake = real + 0.3                                      # |difference| 0.3 / std_c everywhere
    labels = torch.zeros(1, 2, 4, 4)
    labels[:, 1, ::2, ::2] = 1.0                           # class 1 on the pixels nearest keeps
    labels[:, 0] = 1.0 - labels[:, 1]
    per_pixel = sum(0.3 / s for s in IMAGENET_STD) / 3
    errors = loss.class_errors(torch.stack([fake, real], 1), real, labels)
    # Nearest keeps pixels (0, 0), (0, 2), (2, 0), (2, 2): the half-size mask of class 1 is all ones.
    assert errors[0, 0].tolist() == pytest.approx([0.0, per_pixel], rel=1e-5, abs=1e-7)
    assert errors[0, 1].tolist() == pytest.approx([0.0, 0.0], abs=1e-7)


# --- backbone weights from torchvision files ------------------------------------------------

def _pin_to(monkeypatch, name: str, path) -> None:
    """Pin backbone ``name`` to the test's own file (its SHA-256 prefix) instead of torchvision's:
    these tests build random models in torchvision's format, not torchvision's released files."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    pin = weights.PINNED[name]
    monkeypatch.setitem(weights.PINNED, name, dataclasses.replace(pin, file=f"{name}-{digest[:8]}.pth"))


def test_pinned_files_are_torchvisions_imagenet1k_v1_releases():
    assert weights.PINNED["vgg19"].url == torchvision.models.VGG19_Weights.IMAGENET1K_V1.url
    assert weights.PINNED["mobilenet_v2"].url == torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V1.url
    assert (weights.PINNED["vgg19"].prefix, weights.PINNED["mobilenet_v2"].prefix) == ("dcbb9e9d", "b0353104")
    v2 = torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V2.url
    assert v2.endswith("-7ebf99e0.pth") and "IMAGENET1K_V2" in weights.OTHER_FILES["mobilenet_v2"]["7ebf99e0"]


def test_mobilenet_weights_load_from_a_torchvision_state_dict_file(tmp_path, monkeypatch):
    source = torchvision.models.mobilenet_v2(weights=None)
    path = tmp_path / "mobilenet_v2.pth"
    torch.save(source.state_dict(), path)
    _pin_to(monkeypatch, "mobilenet_v2", path)
    backbone = load_backbone("mobilenet_v2", path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert backbone.weights_source == f"path:{path.resolve()} sha256:{digest}"
    assert torch.equal(backbone.slices[0][0][0].weight, source.features[0][0].weight)
    assert torch.equal(backbone.slices[4][-1].conv[-1].running_var, source.features[16].conv[-1].running_var)


def test_vgg19_weights_load_from_a_torchvision_state_dict_file(tmp_path, monkeypatch):
    with torch.device("meta"):
        source = torchvision.models.vgg19(weights=None)
    source = source.to_empty(device="cpu")  # the file format matters here; cheap distinct values
    with torch.no_grad():
        for index, parameter in enumerate(source.parameters()):
            parameter.fill_(index / 100)
    path = tmp_path / "vgg19.pth"
    torch.save(source.state_dict(), path)
    _pin_to(monkeypatch, "vgg19", path)
    backbone = load_backbone("vgg19", path)
    assert backbone.weights_source.startswith(f"path:{path.resolve()} sha256:")
    assert torch.equal(backbone.slices[4][-2].weight, source.features[30].weight)  # conv5_2
    assert [tap.shape[1] for tap in backbone(torch.rand(1, 3, 32, 32))] == [64, 128, 256, 512, 512]


def test_a_weights_file_that_is_not_the_pinned_release_is_refused_naming_it(tmp_path, monkeypatch):
    """Only torchvision's IMAGENET1K_V1 files (the thesis's pretrained=True) load: a file of the
    right architecture with another SHA-256 is refused, even with allow_random."""
    path = tmp_path / "mobilenet_v2.pth"
    torch.save(torchvision.models.mobilenet_v2(weights=None).state_dict(), path)
    found = hashlib.sha256(path.read_bytes()).hexdigest()[:8]
    for allow_random in (False, True):
        with pytest.raises(PipelineError, match=rf"mobilenet_v2\.pth: .*mobilenet_v2-b0353104\.pth.*"
                                                rf"IMAGENET1K_V1.*prefix b0353104 expected, {found} found"):
            load_backbone("mobilenet_v2", path, allow_random=allow_random)
    # torchvision's V2 file (its name's hash is its own) is named as such.
    v2 = tmp_path / "mobilenet_v2-7ebf99e0.pth"
    path.rename(v2)
    monkeypatch.setattr(weights, "sha256_file", lambda _: "7ebf99e0" + "0" * 56)
    with pytest.raises(PipelineError, match=r"mobilenet_v2-7ebf99e0\.pth: .*prefix b0353104 expected, "
                                            r"7ebf99e0 found: .*IMAGENET1K_V2.*not the thesis's V1"):
        load_backbone("mobilenet_v2", v2)
    vgg = tmp_path / "vgg19-0123abcd.pth"
    monkeypatch.setattr(weights, "sha256_file", lambda _: "0123abcd" + "0" * 56)
    vgg.write_bytes(b"not read: refused by its hash first")
    with pytest.raises(PipelineError, match=r"vgg19-dcbb9e9d\.pth.*dcbb9e9d expected, 0123abcd found: "
                                            r"not a torchvision vgg19 file known here"):
        load_backbone("vgg19", vgg)


def test_bad_weight_files_raise_pipeline_errors_naming_the_file(tmp_path, monkeypatch):
    missing = tmp_path / "absent.pth"
    with pytest.raises(PipelineError, match="absent.pth"):
        load_backbone("mobilenet_v2", missing)
    wrong = tmp_path / "wrong.pth"
    torch.save(torchvision.models.mobilenet_v3_small(weights=None).state_dict(), wrong)
    _pin_to(monkeypatch, "mobilenet_v2", wrong)   # right hash, wrong architecture
    with pytest.raises(PipelineError, match="wrong.pth.*does not fit"):
        load_backbone("mobilenet_v2", wrong)
    misnamed = tmp_path / "mobilenet_v2-deadbeef.pth"
    torch.save(torchvision.models.mobilenet_v2(weights=None).state_dict(), misnamed)
    with pytest.raises(PipelineError, match="deadbeef.*corrupt or not the named one"):
        load_backbone("mobilenet_v2", misnamed)
    with pytest.raises(PipelineError, match="allow_random"):
        load_backbone("mobilenet_v2", None, allow_random=False)
    assert load_backbone("mobilenet_v2", None, allow_random=True).weights_source == "random"


# --- discriminators and GAN losses ----------------------------------------------------------

def test_patch_discriminator_returns_input_four_activations_and_prediction():
    scale = PatchDiscriminator(5, ndf=8)
    x = torch.randn(1, 5, 64, 64)
    outputs = scale(x)
    assert len(outputs) == 6 and outputs[0] is x
    assert [o.shape[1] for o in outputs[1:]] == [8, 16, 32, 64, 1]
    assert outputs[4].shape[-1] == 5  # thesis: the fourth conv keeps stride 2 (64 -> 33 -> 17 -> 9 -> 5)
    assert PatchDiscriminator(5, ndf=8, last_stride=1)(x)[4].shape[-1] == 10


def test_multiscale_discriminator_pools_the_input_for_each_further_scale():
    discriminator = MultiscaleDiscriminator(4, scales=2, ndf=4)
    x = torch.randn(1, 4, 32, 64)
    outputs = discriminator(x)
    pooled = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
    assert torch.equal(outputs[0][0], x) and torch.allclose(outputs[1][0], pooled)
    with pytest.raises(ValueError, match="takes 4 channels"):
        discriminator(torch.randn(1, 3, 32, 64))


# --- initialisation ------------------------------------------------------------------------

def _convs(module: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(name, m) for name, m in module.named_modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]


def _default_bound(conv: nn.Module) -> float:
    """PyTorch's default conv init draws weight and bias from U(-b, b), b = 1 / sqrt(fan_in)."""
    fan_in, _ = nn.init._calculate_fan_in_and_fan_out(conv.weight)
    return 1.0 / math.sqrt(fan_in)


def _initialised_networks(seed: int = 0) -> dict[str, nn.Module]:
    torch.manual_seed(seed)
    twin = InputSpec(3, prior="adj")
    return {
        "crn": CRN(twin, 16, 32, norm="weight", residual=True, twin=True, width_divisor=16, processing_blocks=1),
        "crn_layer": CRN(InputSpec(3), 16, 32, norm="layer", width_divisor=16),
        "pix2pixhd": GlobalGenerator(twin, ngf=16, downsamplings=2, blocks=2, twin=True),
        "encoder": FeatureEncoder(width_divisor=4),
        "discriminator": MultiscaleDiscriminator(7, scales=2, ndf=16),
    }


def test_conv_biases_keep_pytorch_default_init_except_the_crn_image_head():
    """Thesis ``Block.init_conv_weights(..., zero_bias=False)``: biases stay at PyTorch's default,
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)); only the CRN's 1x1 image head is zeroed (Xavier, zero bias).
    Seeded builds are identical."""
    networks = _initialised_networks()
    checked = 0
    for network, module in networks.items():
        for name, conv in _convs(module):
            if conv.bias is None:
                continue
            if name == "to_image" and network.startswith("crn"):
                assert torch.all(conv.bias == 0), (network, name)
                continue
            bound = _default_bound(conv)
            assert 0 < conv.bias.abs().max() <= bound, (network, name)
            checked += 1
    assert checked > 40
    again = _initialised_networks()
    for network, module in networks.items():
        for key, value in module.state_dict().items():
            assert torch.equal(value, again[network].state_dict()[key]), (network, key)


def test_discriminator_last_conv_and_crn_flow_heads_keep_pytorch_default_weights():
    """The thesis built the discriminator's final conv and the CRN's flow and mask convs as plain
    nn.Conv2d (never initialised): U(-b, b) weights, b = 1/sqrt(fan_in), here b < 0.02. Every
    other conv (and the pix2pixHD twin's heads, vid2vid's weights_init) is N(0, 0.02)."""
    torch.manual_seed(0)
    scale = PatchDiscriminator(24)                   # full width: the last conv has fan_in 512 * 16
    last = scale.stages[-1]
    assert isinstance(last, nn.Conv2d) and last.weight.abs().max() <= _default_bound(last) < 0.012
    for stage in scale.stages[1:-1]:
        assert stage[0].weight.std().item() == pytest.approx(0.02, rel=0.05)
    crn = CRN(InputSpec(3, prior="adj"), 16, 32, norm="weight", twin=True, width_divisor=16)  # 64 channels
    for conv in (crn.heads.to_flow[1], crn.heads.to_mask[1]):
        bound = _default_bound(conv)
        assert bound < 0.018 and conv.weight.abs().max() <= bound and 0 < conv.bias.abs().max() <= bound
    generator = GlobalGenerator(InputSpec(3, prior="adj"), ngf=64, downsamplings=1, blocks=2, twin=True)
    assert generator.heads.to_flow[1].weight.std().item() == pytest.approx(0.02, rel=0.1)


def test_lsgan_losses_vanish_for_perfect_predictions():
    gan = LSGANLoss()
    ones = [[torch.ones(1, 1, 3, 3)]] * 2
    zeros = [[torch.zeros(1, 1, 3, 3)]] * 2
    assert float(gan.discriminator(ones, zeros)) == 0.0
    assert float(gan(zeros, True)) == 1.0  # every patch of both scales off by 1: one MSE of 1
    assert float(gan.discriminator(zeros, ones)) == 1.0


def test_lsgan_loss_is_one_mse_over_the_patches_of_all_scales():
    """The thesis concatenated every scale's flattened prediction and took one MSE, so a scale
    weighs by its patch count (not a sum of per-scale means, which would give 1 + 4 = 5 here)."""
    gan = LSGANLoss(weight=2.0)
    full = [torch.zeros(1, 1, 2, 2)]           # 4 patches, each (0 - 1)^2 = 1 against "real"
    pooled = [torch.full((1, 1, 1, 1), 3.0)]   # 1 patch, (3 - 1)^2 = 4
    assert float(gan([full, pooled], True)) == pytest.approx(2.0 * (4 * 1 + 4) / 5)
    # Against "fake": (4 * 0 + 9) / 5; the discriminator halves real + fake.
    assert float(gan([full, pooled], False)) == pytest.approx(2.0 * 9 / 5)
    real = [[torch.ones(1, 1, 2, 2)], [torch.full((1, 1, 1, 1), 0.5)]]   # (4 * 0 + 0.25) / 5
    assert float(gan.discriminator(real, [full, pooled])) == pytest.approx(0.5 * 2.0 * (0.25 / 5 + 9 / 5))


def test_feature_matching_weights_and_the_raw_input_term():
    real = [[torch.zeros(1, 1, 2, 2)] * 5 + [torch.zeros(1, 1, 1, 1)]]
    fake = [[torch.ones(1, 1, 2, 2)] + [torch.zeros(1, 1, 2, 2)] * 4 + [torch.ones(1, 1, 1, 1)]]
    thesis = FeatureMatchingLoss(scales=1, weight=10.0)
    assert thesis.term_weight() == pytest.approx(8.0)
    assert FeatureMatchingLoss(scales=2, weight=10.0).term_weight() == pytest.approx(2.0)
    assert float(thesis(fake, real)) == pytest.approx(8.0)  # only the raw input differs
    assert float(FeatureMatchingLoss(1, 10.0, style="pix2pixhd")(fake, real)) == 0.0


def test_flow_loss_is_l1_and_epe_is_euclidean():
    flow = torch.zeros(1, 2, 4, 4)
    reference = torch.stack([torch.full((4, 4), 3.0), torch.full((4, 4), 4.0)])[None]
    assert float(end_point_error(flow, reference)) == pytest.approx(5.0)
    assert float(FlowLoss(10.0)(flow, reference)) == pytest.approx(35.0)


def test_warp_loss_is_smaller_for_the_true_flow():
    previous = torch.rand(1, 3, 8, 16)
    current = torch.roll(previous, 2, dims=3)  # content moved 2 px right: u = -2
    true_flow = torch.zeros(1, 2, 8, 16)
    true_flow[:, 0] = -2.0
    loss = WarpLoss(1.0)
    assert float(loss(previous, current, true_flow)) < 0.3 * float(loss(previous, current, torch.zeros_like(true_flow)))
