"""Test videos: counts, warm-up, seeded feature draws, and the warping error."""

from __future__ import annotations

import json
import re
import shutil

import h5py
import numpy as np
import pytest
import torch

from pipeline.config import DEFAULT_CONFIG, load_config
from pipeline.errors import PipelineError
from pipeline.fvd import SYNTH_KEYS, synthesis_settings
from pipeline.fvd.videos import read_videos
from pipeline.io import write_json
from pipeline.pack.dataset import WindowDataset
from pipeline.synthesize.video import real_videos, synthesize_videos, to_score_size
from pipeline.synthesize import __main__ as synthesize_stage
from pipeline.synthesize import video as video_module
from pipeline.synthesize.warping import (OCCLUSION_THRESHOLD, non_occluded, warping_error, warping_figures,
                                         warping_summary)
from pipeline.train.cluster import feature_bank
from pipeline.train.loop import train_variant
from pipeline.train.settings import train_settings


@pytest.fixture(scope="module")
def fvd_settings():
    config = load_config([DEFAULT_CONFIG])
    return dict(config["fvd"], height=16, width=32, frames=4, batch_size=2, batches=1, start_frame=2,
                warmup_frames=2)


@pytest.fixture(scope="module")
def trained(packed_city, tmp_path_factory):
    config = load_config([DEFAULT_CONFIG])
    config["train"]["crn"]["stages"] = [{"height": 16, "width": 32, "epochs": 1, "max_steps": 1},
                                        {"height": 32, "width": 64, "epochs": 1, "max_steps": 1}]
    config["train"]["model_overrides"] = {"generator": {"width_divisor": 64}, "discriminator": {"width_divisor": 16},
                                          "encoder": {"width_divisor": 4}}
    config["train"]["window"] = 2
    config["weights"]["allow_random"] = True
    work = tmp_path_factory.mktemp("trained")
    models = {}
    for variant in ("v02", "v08"):
        models[variant] = train_variant(variant, train_settings(config, variant), packed_city["train"],
                                        work / variant, work / "resume" / variant, "cpu", progress=False)
    bank = feature_bank(models["v08"], packed_city["train"], clusters=3, seed=0)
    torch.save(bank, work / "clusters.pt")
    models["clusters"] = work / "clusters.pt"
    return models


def test_real_videos_are_the_packed_frames_from_the_start_frame(packed_city, fvd_settings):
    videos, record = real_videos(packed_city["val"], fvd_settings)
    assert videos.shape == (2, 4, 16, 32, 3) and videos.dtype == np.uint8
    packed = WindowDataset(packed_city["val"], (16, 32), window=4, start=2, expand=False)
    assert np.array_equal(videos[1], packed[1]["image"].numpy())
    assert record["snippets"] == packed.packed.snippets[:2]


def test_real_frames_at_the_model_size_resize_to_the_real_videos(packed_city, fvd_settings):
    """A generator that reproduced the real frames at its size (32x64) would give exactly the
    real videos at the scoring size (16x32): synthesised frames are resized as the packed ones."""
    videos, _ = real_videos(packed_city["val"], fvd_settings)
    at_model_size = WindowDataset(packed_city["val"], (32, 64), window=4, start=2, expand=False)
    for index, video in enumerate(videos):
        frames = at_model_size[index]["image"].permute(0, 3, 1, 2).float() / 255.0
        resized = to_score_size(frames, (16, 32))
        as_uint8 = (resized * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
        assert np.abs(as_uint8.astype(int) - video.astype(int)).max() <= 1


def test_prior_variants_warm_up_and_feature_draws_follow_the_seed(packed_city, trained, fvd_settings):
    first, result = synthesize_videos(trained["v08"], packed_city["val"], fvd_settings, trained["clusters"])
    again, repeat = synthesize_videos(trained["v08"], packed_city["val"], fvd_settings, trained["clusters"])
    assert first.shape == (2, 4, 16, 32, 3)
    assert result["record"]["first_synthesised_frame"] == 0 and result["record"]["warmup_frames"] == 2
    assert result["record"]["features"] == "cluster draw"
    assert np.array_equal(first, again) and result["record"]["feature_draws"] == repeat["record"]["feature_draws"]
    other, changed = synthesize_videos(trained["v08"], packed_city["val"], dict(fvd_settings, draw_seed=5),
                                       trained["clusters"])
    assert changed["record"]["feature_draws"] != result["record"]["feature_draws"]
    draws = result["record"]["feature_draws"]
    assert len(draws) == 2 and draws[0] == draws[1]              # fvd.feature_draw: run, one for all videos
    image_variant, plain = synthesize_videos(trained["v02"], packed_city["val"], fvd_settings)
    assert plain["record"]["first_synthesised_frame"] == 2 and plain["record"]["features"] is None
    assert all(np.isfinite([video["error"] for video in plain["warping"]]))


def test_a_variant_is_given_only_the_fvd_settings_it_reads(packed_city, trained, fvd_settings):
    """synthesis_settings (the synthesize job's --settings): an image variant without an encoder
    gets neither warm-up nor draw settings, and makes the same videos from them; a change to
    those then resynthesises only the variants that read them."""
    config = load_config([DEFAULT_CONFIG])
    config["fvd"] = dict(fvd_settings)
    narrow = synthesis_settings(config, "v02")
    assert set(fvd_settings) - set(narrow) >= {"warmup_frames", "draw_seed", "feature_draw"}
    assert set(synthesis_settings(config, "v08")) == set(SYNTH_KEYS)
    assert set(SYNTH_KEYS) - set(synthesis_settings(config, "v07")) == {"draw_seed", "feature_draw"}
    full, _ = synthesize_videos(trained["v02"], packed_city["val"], fvd_settings)
    videos, _ = synthesize_videos(trained["v02"], packed_city["val"], narrow)
    assert np.array_equal(full, videos)


def test_too_few_test_snippets_is_named(packed_city, trained, fvd_settings):
    with pytest.raises(PipelineError, match="needs 8 test videos .* has 2 snippets"):
        synthesize_videos(trained["v02"], packed_city["val"], dict(fvd_settings, batches=4))


def test_warping_error_separates_consistent_from_flickering_video(packed_city):
    real = WindowDataset(packed_city["val"], (32, 64), window=6, start=1)[0]
    mask = non_occluded(real["image"], real["flow"])
    assert mask.float().mean() > 0.5                        # the true flow explains most pixels
    consistent = warping_error(real["image"], real["flow"], mask)
    # The error is linear in the video: the same motion at half the contrast, half the error.
    assert warping_error(real["image"] * 0.5, real["flow"], mask) == pytest.approx(consistent / 2, rel=1e-4)
    frozen = real["image"][:1].expand_as(real["image"])      # right colours, no motion
    flicker = real["image"].clone()
    flicker[1::2] = 1.0 - flicker[1::2]
    assert 2 * consistent < warping_error(frozen, real["flow"], mask)
    assert 5 * consistent < warping_error(flicker, real["flow"], mask)


def test_real_videos_own_warping_error_is_the_reference():
    """The real video's own error under the mask is the level a perfect synthesis would reach: 0
    for a static scene along zero flow, the flicker for real light that flickers below the
    occlusion threshold; above it the mask keeps no pixel to compare."""
    frame = 0.2 + 0.6 * torch.rand(1, 3, 16, 32, generator=torch.Generator().manual_seed(0))
    static, still = frame.expand(4, -1, -1, -1), torch.zeros(4, 2, 16, 32)
    flickering = static.clone()
    flickering[1::2] = 1.0 - flickering[1::2]
    figures = warping_figures(flickering, static, still)
    assert figures["real_error"] == pytest.approx(0.0, abs=1e-6) and figures["mask_kept_share"] == 1.0
    assert figures["error"] > 0.1
    assert warping_figures(static, static, still)["error"] == pytest.approx(0.0, abs=1e-6)
    slight = static.clone()
    slight[1::2] += 0.6 * OCCLUSION_THRESHOLD
    figures = warping_figures(static, slight, still)
    assert figures["real_error"] == pytest.approx(0.6 * OCCLUSION_THRESHOLD, rel=1e-3)
    assert figures["mask_kept_share"] == 1.0 and figures["error"] == pytest.approx(0.0, abs=1e-6)
    strong = static.clone()
    strong[1::2] += 2 * OCCLUSION_THRESHOLD
    figures = warping_figures(static, strong, still)
    assert figures["mask_kept_share"] == 0.0 and np.isnan(figures["real_error"])


def test_warping_json_carries_the_real_level_and_provenance(packed_city, trained, fvd_settings, tmp_path):
    output = tmp_path / "warping" / "v02.json"
    synthesize_stage.main(["--model", str(trained["v02"]), "--data", str(packed_city["val"]), "--device", "cpu",
                           "--output", str(tmp_path / "v02.h5"), "--warping", str(output),
                           "--settings", json.dumps(fvd_settings)])
    record = json.loads(output.read_text())
    assert record["variant"] == "v02" and len(record["per_video"]) == len(record["real_per_video"]) == 2
    assert 0.0 <= record["real_warping_error"] < OCCLUSION_THRESHOLD       # the mask keeps only such pixels
    assert 0.0 < record["mask_kept_share"] <= 1.0 and record["occlusion_threshold"] == OCCLUSION_THRESHOLD
    made = record["provenance"]
    assert made["stage"] == "synthesize" and made["code_version"] and made["settings"]["frames"] == 4
    assert made["model_provenance"]["variant"] == "v02"        # the weights behind it, for the report's notes


def test_warping_json_measures_the_written_videos(packed_city, trained, fvd_settings, tmp_path):
    """Each video's warping error is that of the synthesised video written beside it, against the
    real video's flow and mask, recomputed here from the written uint8 frames; the variant's error
    is their mean, its spread the sample std (N - 1); an untrained model's is not the real level."""
    output, videos_path = tmp_path / "v02.json", tmp_path / "v02.h5"
    _run_stage(trained, packed_city, fvd_settings, videos_path, output)
    record = json.loads(output.read_text())
    videos, _ = read_videos(videos_path)
    reference = WindowDataset(packed_city["val"], (16, 32), window=4, start=2)
    expected = []
    for index, video in enumerate(videos):
        real = reference[index]
        frames = torch.from_numpy(video).permute(0, 3, 1, 2).float() / 255.0
        expected.append(warping_figures(frames, real["image"], real["flow"]))
    errors = np.array([figures["error"] for figures in expected])
    real_errors = np.array([figures["real_error"] for figures in expected])
    # Rounding to uint8 moves a pixel by <= 0.5 / 255, a warped one too, so their difference by <= 1 / 255.
    rounding = 1 / 255
    assert np.all(np.abs(errors - real_errors) > 2 * rounding)      # this untrained model is not the real level
    assert record["per_video"] == pytest.approx(errors.tolist(), abs=rounding)
    assert record["real_per_video"] == pytest.approx(real_errors.tolist(), rel=1e-6)
    assert record["mask_kept_share"] == pytest.approx(np.mean([f["mask_kept_share"] for f in expected]))
    assert record["warping_error"] == pytest.approx(np.mean(record["per_video"]), rel=1e-9)
    assert record["warping_error_std"] == pytest.approx(np.std(record["per_video"], ddof=1), rel=1e-9)
    assert record["real_warping_error"] == pytest.approx(real_errors.mean(), rel=1e-6)


def test_training_data_and_what_is_no_pack_are_refused(packed_city, trained, fvd_settings, tmp_path):
    """FVD and the warping error score videos of data no variant trained on: a training pack is
    refused (as training refuses held-out ones), for the real videos and a variant's alike; so are
    an HDF5 file that is no pack and a folder, each named."""
    with h5py.File(tmp_path / "flow.h5", "w") as flow:
        flow["flow"] = np.zeros((1, 2, 2, 2), np.float16)
    gtfine = tmp_path / "gtfine_train.h5"                 # the image variants' training pack
    shutil.copy(packed_city["train"], gtfine)
    with h5py.File(gtfine, "a") as pack:
        pack.attrs["split"] = "gtfine_train"
    variant = ["--model", str(trained["v02"]), "--warping", str(tmp_path / "v02.json")]
    for data, problem in ((packed_city["train"], "holds the 'train' split, training data: synthesis takes the test"),
                          (gtfine, "holds the 'gtfine_train' split, training data"),
                          (tmp_path / "flow.h5", "not a packed file: it records no split"),
                          (packed_city["train"].parent, "a folder, not a packed file")):
        for mode in (["--real"], variant):
            with pytest.raises(PipelineError, match=problem) as error:
                synthesize_stage.main([*mode, "--data", str(data), "--output", str(tmp_path / "v.h5"),
                                       "--device", "cpu", "--settings", json.dumps(fvd_settings)])
            assert error.value.path == data
    assert not (tmp_path / "v.h5").exists() and not (tmp_path / "v02.json").exists()


def _run_stage(trained, packed_city, fvd_settings, output, warping, *extra: str) -> None:
    synthesize_stage.main(["--model", str(trained["v02"]), "--data", str(packed_city["val"]), "--device", "cpu",
                           "--output", str(output), "--warping", str(warping),
                           "--settings", json.dumps(fvd_settings), *extra])


def test_no_output_appears_unless_both_are_written(packed_city, trained, fvd_settings, tmp_path, monkeypatch):
    """The videos and their warping JSON appear together or not at all: an unwritable videos path
    leaves no JSON, and a failed videos write (a full disk) leaves the old pair as it was."""
    warping = tmp_path / "warping" / "v02.json"
    (tmp_path / "blocker").write_text("a file where the videos' folder should be")
    with pytest.raises(PipelineError, match=r"v02.h5: cannot be written: .*blocker is a file, not a folder"):
        _run_stage(trained, packed_city, fvd_settings, tmp_path / "blocker" / "v02.h5", warping)
    assert not warping.exists() and not list(warping.parent.iterdir())      # no JSON, no temporary
    videos = tmp_path / "v02.h5"
    videos.write_bytes(b"old videos")
    warping.write_text('{"old": true}')

    def disk_full(path, *args, **kwargs):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(synthesize_stage, "write_videos", disk_full)
    with pytest.raises(PipelineError, match=r"v02.h5: not written: no space left .*No space left on device"):
        _run_stage(trained, packed_city, fvd_settings, videos, warping)
    assert videos.read_bytes() == b"old videos" and warping.read_text() == '{"old": true}'
    assert sorted(path.name for path in tmp_path.rglob("*")) == ["blocker", "v02.h5", "v02.json", "warping"]


def _diverged(model_path, tmp_path, module: str = "generator"):
    """A copy of a trained model with one NaN weight in ``module``, as a diverged run saves it; and its name."""
    checkpoint = torch.load(model_path, map_location="cpu", weights_only=False)
    name = next(key for key, value in checkpoint[module].items() if value.is_floating_point())
    checkpoint[module][name] = checkpoint[module][name].clone()
    checkpoint[module][name].view(-1)[0] = float("nan")
    torch.save(checkpoint, tmp_path / f"diverged_{module}.pt")
    return tmp_path / f"diverged_{module}.pt", f"{module}.{name}"


def test_a_model_with_non_finite_weights_is_refused(packed_city, trained, fvd_settings, tmp_path):
    """A diverged run's NaN weights would give all-black videos and a NaN warping error that FVD
    then scores as if valid: synthesis names the model file and the first non-finite tensor."""
    for variant, module in (("v02", "generator"), ("v08", "encoder")):
        path, name = _diverged(trained[variant], tmp_path, module)
        with pytest.raises(PipelineError, match=rf"{path.name}: non-finite weights in {re.escape(name)}"):
            synthesize_videos(path, packed_city["val"], fvd_settings, trained["clusters"])


def test_non_finite_frames_are_refused(packed_city, trained, fvd_settings, monkeypatch):
    def nan_frames(models, entry, sample, chosen):
        return torch.full((fvd_settings["frames"], 3, 32, 64), float("nan"))

    monkeypatch.setattr(video_module, "_synthesize", nan_frames)
    with pytest.raises(PipelineError, match=r"model.pt: video 0 has non-finite pixels"):
        synthesize_videos(trained["v02"], packed_city["val"], fvd_settings)


def test_a_bad_clusters_file_is_named(packed_city, trained, fvd_settings, tmp_path):
    """--clusters must be the cluster bank of the model's own variant, readable."""
    garbage = tmp_path / "bad.pt"
    garbage.write_bytes(b"not a torch file at all")
    with pytest.raises(PipelineError, match="bad.pt: not a readable feature cluster bank"):
        synthesize_videos(trained["v08"], packed_city["val"], fvd_settings, garbage)
    with pytest.raises(PipelineError, match="model.pt: not a feature cluster bank"):
        synthesize_videos(trained["v08"], packed_city["val"], fvd_settings, trained["v08"])
    other = torch.load(trained["clusters"], weights_only=False)
    torch.save(dict(other, variant="v05"), tmp_path / "v05_clusters.pt")
    with pytest.raises(PipelineError, match="v05_clusters.pt: the cluster bank of variant 'v05', the model is 'v08'"):
        synthesize_videos(trained["v08"], packed_city["val"], fvd_settings, tmp_path / "v05_clusters.pt")


def test_warping_json_is_strict_json_with_null_for_unmeasured(packed_city, trained, fvd_settings, tmp_path):
    """An error no pixel could measure is null, not a bare NaN token other JSON readers reject."""
    nan = float("nan")
    figures = [{"error": nan, "real_error": nan, "mask_kept_share": 0.0}] * 2
    summary = warping_summary("v02", figures, {"stage": "synthesize"})
    write_json(tmp_path / "unmeasured.json", summary)

    def refuse(token):
        raise ValueError(f"bare {token} in the JSON")

    strict = json.loads((tmp_path / "unmeasured.json").read_text(), parse_constant=refuse)
    assert strict["warping_error"] is None and strict["per_video"] == [None, None]
    assert strict["real_warping_error"] is None and strict["mask_kept_share"] == 0.0
    output = tmp_path / "v02.json"
    _run_stage(trained, packed_city, fvd_settings, tmp_path / "v02.h5", output)
    measured = json.loads(output.read_text(), parse_constant=refuse)
    assert all(isinstance(value, float) for value in measured["per_video"])
