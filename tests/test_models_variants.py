"""The 14 variants of table 5.1 as configuration (issue 7): channel arithmetic, parameter counts
(exact against the thesis's code for the CRN; loosely against the thesis text's ~90 M / ~60 M and
upstream pix2pixHD's ~182 M), and a forward and backward pass of every variant at a small size."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml

from pipeline.errors import PipelineError
from pipeline.models.build import (
    build_discriminators, build_feature_encoder, build_generator, build_losses, image_discriminator_input,
    input_channels, optimizer_settings, temporal_discriminator_input,
)
from pipeline.models.crn import CRN

CONFIG = yaml.safe_load((Path(__file__).resolve().parents[1] / "config.yaml").read_text())
VARIANTS = CONFIG["variants"]
LABELS = 20  # the thesis's train19_other set
SMALL = (32, 64)
RANDOM_WEIGHTS = {"vgg19": None, "mobilenet_v2": None, "allow_random": True}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # Small tensors: one thread is faster than two fighting other test processes for 2 cores.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def meta_generator(entry: dict, height: int, width: int, labels: int = LABELS) -> torch.nn.Module:
    with torch.device("meta"):  # full size without allocating the weights
        return build_generator(entry, labels, height, width)


def small_inputs(entry: dict, batch: int = 1) -> dict[str, torch.Tensor]:
    height, width = SMALL
    labels = F.one_hot(torch.randint(LABELS, (batch, height, width)), LABELS).permute(0, 3, 1, 2).float()
    inputs = {"labels": labels}
    if entry["edge"]:
        inputs["edge"] = (torch.rand(batch, 1, height, width) > 0.9).float()
    if entry["feature_encoder"]:
        inputs["features"] = torch.rand(batch, 3, height, width) * 2 - 1
    if entry["prior"]:
        inputs["prior_labels"] = torch.cat([labels, labels], 1)
        inputs["prior_images"] = torch.rand(batch, 6, height, width) - 0.5
    return inputs


def test_config_holds_the_fourteen_rows_of_table_5_1():
    assert sorted(entry["index"] for entry in VARIANTS.values()) == list(range(1, 15))


@pytest.mark.parametrize("index, expected", [
    (1, dict(generator=20, image_discriminator=0, temporal_discriminator=0)),
    (4, dict(generator=24, generator_main=24, image_discriminator=0)),
    (6, dict(generator=24, image_discriminator=24)),
    (7, dict(generator=66, prior_labels=40, prior_images=6)),
    (8, dict(generator=70, image_discriminator=70)),  # the image discriminator also sees the priors
    (9, dict(generator=70, generator_main=64, generator_twin=6, image_discriminator=24,
             temporal_discriminator=13)),
    (10, dict(generator=24, image_discriminator=24)),
    (14, dict(generator_main=64, generator_twin=6, image_discriminator=24, temporal_discriminator=13)),
])
def test_input_channels(index, expected):
    entry = next(e for e in VARIANTS.values() if e["index"] == index)
    channels = input_channels(entry, LABELS)
    assert {key: channels[key] for key in expected} == expected


# Loose ranges around the only figures the thesis text gives (ch. 4.5.2, "Adding residual blocks
# to the CRN"): a CRN of ~90 M parameters, ~60 M with ResNeXt modules. The thesis reports no count
# for pix2pixHD: the ~182 M range is upstream pix2pixHD's global generator (Wang et al. 2018's
# code), the network v10-v14 re-create. Prior frames add 46 input channels to every CRN module
# (~2.5 M more, variant 7).
THESIS_TEXT_COUNTS = {("crn", False): (88e6, 102e6), ("crn", True): (55e6, 63e6)}
UPSTREAM_PIX2PIXHD_COUNT = (181e6, 184e6)

# Exact counts of the thesis's own code: CRN_Video_Network.CRNVideo (Swidilator/CRN, HEAD) built
# at 256x512 with 20 labels, 1024 inner channels, num_prior_frames 2 for prior variants, norm
# "half" for "layer", and CRN_NUM_RESNET_PROCESSING_RMS 0 (the study's value) or 1.
THESIS_CODE_CRN_COUNTS = {
    "v01": (98_562_203, 101_184_155),
    "v02": (97_863_171, 100_223_491),
    "v03": (97_863_171, 100_223_491),
    "v04": (98_084_355, 100_444_675),
    "v05": (58_572_291, 60_932_611),
    "v06": (58_572_291, 60_932_611),
    "v07": (100_406_787, 102_767_107),
    "v08": (61_128_195, 63_488_515),
    "v09": (118_434_822, 123_155_462),
}


def test_every_crn_variant_has_an_exact_count_from_the_thesis_code():
    assert sorted(THESIS_CODE_CRN_COUNTS) == sorted(n for n, e in VARIANTS.items() if e["network"] == "crn")


@pytest.mark.parametrize("processing_blocks", [0, 1])
@pytest.mark.parametrize("name", sorted(THESIS_CODE_CRN_COUNTS))
def test_crn_parameter_counts_at_256x512_equal_the_thesis_code(name, processing_blocks):
    """With one processing block a twin has one on each chain (CRN_Video_Network.py gives both
    final modules the count): 2 x 2,360,320 more for v09, 2,360,320 for the others."""
    with torch.device("meta"):
        generator = build_generator(VARIANTS[name], LABELS, 256, 512, processing_blocks=processing_blocks)
    assert count(generator) == THESIS_CODE_CRN_COUNTS[name][processing_blocks]


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_parameter_counts_at_256x512_are_near_the_thesis_text_or_upstream_pix2pixhd(name):
    entry = VARIANTS[name]
    generator = meta_generator(entry, 256, 512)
    params = count(generator)
    if entry["twin"]:
        # A twin is about two networks; the CRN twin's second chain has no semantic input.
        single = count(meta_generator({**entry, "twin": False, "flow": False}, 256, 512))
        assert 1.8 * single < params < 2.05 * single
        return
    if entry["network"] == "pix2pixhd":
        low, high = UPSTREAM_PIX2PIXHD_COUNT
    else:
        low, high = THESIS_TEXT_COUNTS[(entry["network"], bool(entry["residual"]))]
    assert low < params < high, f"{name}: {params / 1e6:.1f} M"


def test_pix2pixhd_has_182m_parameters_with_39_input_channels():
    # 39 = pix2pixHD's 35 label ids + edge + 3 feature channels (Wang et al. 2018).
    entry = {**VARIANTS["v10"]}
    assert input_channels(entry, 35)["generator"] == 39
    assert abs(count(meta_generator(entry, 512, 1024, labels=35)) - 182.5e6) < 0.3e6


@pytest.mark.parametrize("name", [n for n in sorted(VARIANTS) if VARIANTS[n]["network"] == "crn"])
def test_crn_variants_build_at_512x1024_and_grow_from_256x512(name):
    entry = VARIANTS[name]
    large = meta_generator(entry, 512, 1024)
    assert len(large.refine) == 8
    with torch.device("meta"):
        grown = meta_generator(entry, 256, 512).grow(entry.get("output_images_stage2"))
    assert isinstance(grown, CRN) and count(grown) == count(meta_generator(
        {**entry, "output_images": grown.output_images}, 512, 1024))


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_every_variant_runs_forward_and_backward_at_a_small_size(name):
    torch.manual_seed(0)
    entry = VARIANTS[name]
    generator = build_generator(entry, LABELS, *SMALL, width_divisor=16)
    inputs = small_inputs(entry)
    outputs = generator(inputs)
    k = entry["output_images"]
    expected = {"image"} | ({"images"} if k > 1 else set())
    expected |= {"hallucinated", "flow", "mask", "warped"} if entry["twin"] else set()
    assert set(outputs) == expected
    assert outputs["image"].shape == (1, 3, *SMALL)
    if k > 1:
        assert outputs["images"].shape == (1, k, 3, *SMALL)
    loss = sum(value.square().mean() for value in outputs.values())
    discriminators = build_discriminators(entry, LABELS, width_divisor=16)
    if discriminators is not None:
        scores = discriminators["image"](image_discriminator_input(entry, inputs, outputs["image"]))
        assert len(scores) == entry["discriminator"]
        loss = loss + sum(scale[-1].mean() for scale in scores)
        if entry["flow"]:
            temporal = temporal_discriminator_input(outputs["image"], inputs["prior_images"],
                                                    outputs["flow"], torch.zeros_like(outputs["flow"]))
            loss = loss + sum(scale[-1].mean() for scale in discriminators["temporal"](temporal))
    loss.backward()
    assert torch.isfinite(loss)
    missing = [n for n, p in generator.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, f"no gradient for {missing[:5]}"
    if discriminators is not None:
        assert all(p.grad is not None for p in discriminators.parameters())


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_variant_losses_and_optimisers_are_named_by_the_entry(name):
    entry = VARIANTS[name]
    criteria = build_losses(entry, CONFIG["losses"], RANDOM_WEIGHTS)
    expected = set()
    if entry["perceptual"]:
        expected.add("perceptual")
    if entry["discriminator"]:
        expected |= {"gan", "feature_matching"}
        if entry["flow"]:
            expected |= {"temporal_gan", "temporal_feature_matching"}
    if entry["flow"]:
        expected |= {"flow", "warp"}
    assert set(criteria) == expected
    if entry["perceptual"]:
        assert criteria.provenance() == {"perceptual": "random"}
    settings = optimizer_settings(entry, CONFIG["train"])
    assert settings["generator"]["lr"] == CONFIG["train"][entry["network"]]["lr"]
    assert ("discriminator" in settings) == (entry["discriminator"] > 0)
    assert (build_feature_encoder(entry) is not None) == entry["feature_encoder"]


def test_a_fifteenth_variant_is_only_a_config_entry():
    entry = {"index": 15, "network": "crn", "output_images": 1, "norm": "group", "perceptual": "vgg19",
             "edge": True, "feature_encoder": False, "residual": False, "discriminator": 2, "prior": "ext",
             "twin": False, "flow": False, "thesis_fvd": None}
    generator = build_generator(entry, LABELS, *SMALL, width_divisor=32)
    outputs = generator(small_inputs(entry))
    assert outputs["image"].shape == (1, 3, *SMALL)
    assert input_channels(entry, LABELS)["image_discriminator"] == 20 + 1 + 3 + 40 + 6


def test_a_contradictory_entry_stops_naming_it():
    with pytest.raises(PipelineError, match="index 7.*flow = true needs prior frames"):
        build_generator({**VARIANTS["v07"], "prior": None, "twin": True, "flow": True}, LABELS, *SMALL)


def test_unknown_names_raise_value_errors_listing_the_allowed_ones():
    entry = copy.deepcopy(VARIANTS["v02"])
    with pytest.raises(ValueError, match="crn, pix2pixhd"):
        build_generator({**entry, "network": "unet"}, LABELS, *SMALL)
    with pytest.raises(ValueError, match="layer, group, weight, instance"):
        build_generator({**entry, "norm": "batch"}, LABELS, *SMALL)
    with pytest.raises(ValueError, match="vgg19, mobilenet_v2"):
        build_losses({**entry, "perceptual": "resnet50"}, CONFIG["losses"], RANDOM_WEIGHTS)
    with pytest.raises(ValueError, match="allowed: width_divisor"):
        build_generator(entry, LABELS, *SMALL, ngf=8)
    with pytest.raises(ValueError, match="null, ext, adj"):
        build_generator({**entry, "prior": "real"}, LABELS, *SMALL)


def test_builders_print_nothing_and_return_cpu_modules(capsys):
    entry = VARIANTS["v09"]
    modules = [build_generator(entry, LABELS, *SMALL, width_divisor=16),
               build_discriminators(entry, LABELS, width_divisor=16), build_feature_encoder(entry),
               build_losses(entry, CONFIG["losses"], RANDOM_WEIGHTS)]
    assert capsys.readouterr() == ("", "")
    assert all(t.device.type == "cpu" for m in modules for t in [*m.parameters(), *m.buffers()])
