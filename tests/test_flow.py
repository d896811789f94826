"""Reference flow: the warp, the colour code, DIS and FlowNet2 backends, the stage, quality."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
import torch

from pipeline.errors import PipelineError
from pipeline.flow.backends import DISBackend, FlowNet2Backend, check_checkpoint, make_backend
from pipeline.flow.colour import colour_wheel, flow_to_colour
from pipeline.flow.pictures import flow_strip
from pipeline.flow.quality import end_point_error, warp_error
from pipeline.flow.stage import float16_rounding_error, main, read_flow, read_flow_attrs
from pipeline.flow.warp import warp

SHIFT = (-2, 1)   # true flow (u, v) of the shifted test frames: frame_t(x) = frame_{t-1}(x + u)


def texture(height: int = 96, width: int = 224, seed: int = 0) -> np.ndarray:
    """A smooth random RGB texture, uint8: trackable by any flow method."""
    noise = np.random.default_rng(seed).uniform(0, 255, (height, width, 3)).astype(np.float32)
    smooth = cv2.GaussianBlur(noise, (0, 0), 2.0)
    return ((smooth - smooth.min()) / np.ptp(smooth) * 255).astype(np.uint8)


def shifted_frames(count: int, height: int, width: int, scale: int = 1) -> np.ndarray:
    """Frames cut from one texture, each moved so that the true flow is ``SHIFT * scale`` px."""
    tex = texture(height + 2 * count * scale + 16, width + 2 * count * scale + 16)
    u, v = SHIFT[0] * scale, SHIFT[1] * scale
    x0, y0 = 8 + count * scale, 8
    # frame_t(y, x) = tex(y0 + t v + y, x0 + t u + x) = frame_{t-1}(y + v, x + u)
    return np.stack([tex[y0 + t * v:y0 + t * v + height, x0 + t * u:x0 + t * u + width]
                     for t in range(count)])


# --- the warp ---------------------------------------------------------------------------------

def test_warp_integer_shift_moves_interior_pixels_exactly():
    image = torch.rand(2, 3, 20, 30, generator=torch.Generator().manual_seed(0))
    flow = torch.zeros(2, 2, 20, 30)
    flow[:, 0], flow[:, 1] = 3.0, -2.0
    warped = warp(image, flow)
    # warped(y, x) = image(y - 2, x + 3) where that is inside the image
    torch.testing.assert_close(warped[:, :, 2:, :-3], image[:, :, :-2, 3:], atol=1e-5, rtol=0)
    # zero padding (up to float rounding of the grid at the image edge)
    assert warped[:, :, :2].abs().max() < 1e-5 and warped[:, :, :, -3:].abs().max() < 1e-5


def test_warp_fractional_shift_interpolates_linearly_with_align_corners_true():
    # On a linear ramp bilinear sampling is exact: image(x + 0.25) = ramp value at x + 0.25.
    # With align_corners=False the same flow would sample (W / (W - 1)) off and fail this.
    width = 40
    ramp = torch.arange(width, dtype=torch.float32).expand(1, 1, 8, width).contiguous()
    flow = torch.zeros(1, 2, 8, width)
    flow[:, 0] = 0.25
    warped = warp(ramp, flow)
    torch.testing.assert_close(warped[..., :-1], ramp[..., :-1] + 0.25, atol=1e-4, rtol=0)


def test_warp_with_true_flow_reconstructs_next_frame():
    frames = shifted_frames(2, 32, 48).astype(np.float32) / 255.0
    image = torch.from_numpy(frames[:1]).permute(0, 3, 1, 2)
    flow = torch.tensor(SHIFT, dtype=torch.float32).view(1, 2, 1, 1).expand(1, 2, 32, 48)
    warped = warp(image, flow).permute(0, 2, 3, 1).numpy()[0]
    np.testing.assert_allclose(warped[:-1, 2:], frames[1, :-1, 2:], atol=1e-5)


def test_warp_of_a_bf16_image_builds_its_grid_in_float32():
    """bf16 cannot hold pixel coordinates such as 1021 (its integers step by 4 past 512), so a
    grid built in the image's dtype samples the wrong pixels; a zero flow must give the image."""
    image = torch.rand(1, 3, 4, 1024, generator=torch.Generator().manual_seed(0)).bfloat16()
    warped = warp(image, torch.zeros(1, 2, 4, 1024, dtype=torch.bfloat16))
    assert warped.dtype == torch.bfloat16
    torch.testing.assert_close(warped, image)


def test_warp_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="flow"):
        warp(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError, match="differ"):
        warp(torch.zeros(1, 3, 8, 8), torch.zeros(1, 2, 8, 9))


# --- the colour code --------------------------------------------------------------------------

def test_colour_wheel_anchors_and_directions():
    wheel = colour_wheel()
    assert wheel.shape == (55, 3)
    np.testing.assert_array_equal(wheel[[0, 15, 21, 25, 36, 49]],
                                  [[255, 0, 0], [255, 255, 0], [0, 255, 0], [0, 255, 255],
                                   [0, 0, 255], [255, 0, 255]])
    flow = np.array([[[1, 0], [0, 0], [-1, 0], [0, -1], [0.5, 0], [4, 0]]], np.float32)
    colour = flow_to_colour(flow, max_radius=1.0)[0]
    np.testing.assert_array_equal(colour[0], [255, 0, 0])          # right: red
    np.testing.assert_array_equal(colour[1], [255, 255, 255])      # zero: white
    assert colour[2, 2] == 255 and colour[2, 0] == 0               # left: blue-cyan
    assert colour[3, 2] == 255 and colour[3, 1] == 0               # up: violet
    np.testing.assert_array_equal(colour[4], [255, 127, 127])      # half length: half saturated
    np.testing.assert_array_equal(colour[5], [191, 0, 0])          # beyond the radius: darkened


def test_colour_agrees_with_ptlflow_inside_the_unit_circle():
    from ptlflow.utils.flow_utils import flow_to_rgb

    flow = np.random.default_rng(1).normal(size=(30, 40, 2)).astype(np.float32) * 3
    ours = flow_to_colour(flow, max_radius=20.0).astype(int)
    theirs = flow_to_rgb(flow, flow_max_radius=20.0).astype(int)
    assert np.abs(ours - theirs).max() <= 1


# --- DIS --------------------------------------------------------------------------------------

def test_dis_recovers_a_known_shift_in_our_convention_and_is_deterministic():
    frames = shifted_frames(3, 48, 96)
    backend = DISBackend()
    flow = backend(frames[:-1], frames[1:])
    assert flow.shape == (2, 48, 96, 2) and flow.dtype == np.float32
    interior = flow[:, 8:-8, 8:-8]
    np.testing.assert_allclose(np.median(interior, axis=(0, 1, 2)), SHIFT, atol=0.05)
    assert np.abs(interior - np.array(SHIFT)).mean() < 0.1
    np.testing.assert_array_equal(flow, backend(frames[:-1], frames[1:]))
    assert warp_error(frames[:-1], frames[1:], flow) < 0.5 * warp_error(frames[:-1], frames[1:], 0 * flow)


def test_backend_rejects_bad_inputs():
    frames = shifted_frames(2, 16, 16)
    with pytest.raises(ValueError, match="uint8"):
        DISBackend()(frames[:1].astype(np.float32), frames[1:])
    with pytest.raises(ValueError, match="differ"):
        DISBackend()(frames[:1], frames[1:, :8])
    with pytest.raises(PipelineError, match="unknown flow.backend"):
        make_backend({"backend": "raft"})


# --- FlowNet2 through ptlflow -----------------------------------------------------------------

@pytest.fixture(scope="module")
def flownet2_checkpoint(tmp_path_factory) -> tuple[Path, torch.nn.Module]:
    """A FlowNet2 with random weights (seed 7) saved in ptlflow's format, and the model itself."""
    import ptlflow

    torch.manual_seed(7)
    model = ptlflow.get_model("flownet2").eval()
    path = tmp_path_factory.mktemp("ckpt") / "flownet2-random.ckpt"
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": {}}, path)
    return path, model


@pytest.mark.slow
def test_flownet2_loads_a_ptlflow_checkpoint_and_feeds_frames_t_then_t_minus_1(flownet2_checkpoint):
    path, model = flownet2_checkpoint
    torch.manual_seed(123)   # a different init: only loading can make the outputs agree
    backend = make_backend({"backend": "flownet2", "checkpoint": str(path)}, device="cpu")
    assert backend.weights_real and backend.describe()["weights"] == str(path)
    assert len(backend.describe()["weights_sha256"]) == 64
    frames = shifted_frames(2, 64, 64)
    flow = backend(frames[:1], frames[1:])
    assert flow.shape == (1, 64, 64, 2) and flow.dtype == np.float32 and np.isfinite(flow).all()

    def direct(first: np.ndarray, second: np.ndarray) -> np.ndarray:
        # ptlflow's documented input: BGR in [0, 1], {'images': [B, 2, 3, H, W]}
        pair = np.stack([first, second])[None, ..., ::-1].astype(np.float32) / 255.0
        with torch.inference_mode():
            out = model({"images": torch.from_numpy(pair.copy()).permute(0, 1, 4, 2, 3)})["flows"]
        return out[:, 0].permute(0, 2, 3, 1).numpy()

    np.testing.assert_allclose(flow, direct(frames[1], frames[0]), atol=1e-4, rtol=1e-4)
    assert np.abs(flow - direct(frames[0], frames[1])).max() > 1e-3   # the order matters


def test_flownet2_without_checkpoint_needs_explicit_random_weights():
    with pytest.raises(PipelineError, match="flow.checkpoint is not set"):
        make_backend({"backend": "flownet2", "checkpoint": None})


def test_flownet2_missing_checkpoint_names_the_file(tmp_path):
    missing = tmp_path / "flownet2.ckpt"
    with pytest.raises(PipelineError, match="not found") as err:
        FlowNet2Backend(missing)
    assert str(missing) in str(err.value)


def test_flownet2_checkpoint_that_does_not_fit_names_file_and_mismatch(tmp_path):
    path = tmp_path / "other.ckpt"
    torch.save({"state_dict": {"flownetc.conv1.0.weight": torch.zeros(64, 3, 3, 3),
                               "head.weight": torch.zeros(2)}}, path)
    with pytest.raises(PipelineError) as err:
        FlowNet2Backend(path)
    message = str(err.value)
    assert str(path) in message
    assert "missing keys" in message and "unexpected keys (1): head.weight" in message
    assert "flownetc.conv1.0.weight (64, 3, 3, 3) != (64, 3, 7, 7)" in message

    raw = tmp_path / "raw.pth"
    torch.save({"flownetc.conv1.0.weight": torch.zeros(1)}, raw)   # a bare state dict
    with pytest.raises(PipelineError, match="expected a dict with 'state_dict'"):
        check_checkpoint(raw, {})
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(PipelineError, match="not a readable torch checkpoint"):
        check_checkpoint(garbage, {})


# --- the stage --------------------------------------------------------------------------------

def write_tree(root: Path, frames: int, height: int, width: int, snippets: int = 2) -> Path:
    """A tiny Cityscapes-layout city whose frames move by SHIFT * 2 px, and its subset.json."""
    folder = root / "leftImg8bit_sequence" / "train" / "testcity"
    folder.mkdir(parents=True)
    ids = []
    for seq in range(snippets):
        annotated = frames - 1
        for t, frame in enumerate(shifted_frames(frames, height, width, scale=2)):
            name = f"testcity_{seq:06d}_{t:06d}_leftImg8bit.png"
            cv2.imwrite(str(folder / name), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        ids.append(f"testcity_{seq:06d}_{annotated:06d}")
    subset = {"root": str(root), "frames": frames, "annotated_index": frames - 1,
              "splits": {"train": {"testcity": ids}}, "test": []}
    path = root / "subset.json"
    path.write_text(json.dumps(subset))
    return path


def test_stage_writes_every_pair_at_the_flow_size_and_reads_back(tmp_path):
    subset = write_tree(tmp_path / "city", frames=4, height=96, width=192)
    output = tmp_path / "flow" / "train" / "testcity.h5"
    settings = {"backend": "dis", "checkpoint": None, "height": 48, "width": 96, "dtype": "float16"}
    main(["--subset", str(subset), "--split", "train", "--city", "testcity",
          "--output", str(output), "--settings", json.dumps(settings), "--batch-size", "2"])
    with h5py.File(output) as file:
        assert sorted(file["flow"]) == ["testcity_000000_000003", "testcity_000001_000003"]
        assert file["flow/testcity_000000_000003"].dtype == np.float16
    flow = read_flow(output, "testcity_000000_000003")
    assert flow.shape == (3, 48, 96, 2) and flow.dtype == np.float32
    # frames resized 2x down: the 2 * SHIFT px motion is SHIFT px at the flow size
    np.testing.assert_allclose(np.median(flow[:, 8:-8, 8:-8], axis=(0, 1, 2)), SHIFT, atol=0.1)
    attrs = read_flow_attrs(output)
    assert attrs["backend"] == "dis" and attrs["weights_real"] is True
    assert attrs["height"] == 48 and attrs["dtype"] == "float16" and "frame t-1 onto frame t" in attrs["convention"]
    assert attrs["provenance"]["settings"] == settings and attrs["provenance"]["backend"]["preset"] == "medium"
    assert attrs["provenance"]["batch_size"] == 2
    assert not list(output.parent.glob(".*"))   # no temporary left behind


def test_the_batch_size_changes_no_flow_and_is_recorded(tmp_path):
    """flow.batch_size reaches the job as --batch-size (the rule's resource), not in its --settings:
    any batch writes the same flow, and the provenance records the one used; a hand run with
    --config takes the merged config's, and one with neither is refused."""
    import yaml
    from pipeline.config import DEFAULT_CONFIG

    subset = write_tree(tmp_path / "city", frames=5, height=32, width=64, snippets=1)
    settings = {"backend": "dis", "checkpoint": None, "height": 32, "width": 64, "dtype": "float32"}
    city = ["--subset", str(subset), "--split", "train", "--city", "testcity"]
    flows = {}
    for batch_size in (1, 3):                   # 4 pairs: 3 gives a last batch of 1
        output = tmp_path / f"flow{batch_size}.h5"
        main([*city, "--output", str(output), "--settings", json.dumps(settings), "--batch-size", str(batch_size)])
        flows[batch_size] = read_flow(output, "testcity_000000_000004")
        assert read_flow_attrs(output)["provenance"]["batch_size"] == batch_size
    assert flows[1].shape == (4, 32, 64, 2) and np.abs(flows[1]).max() > 0
    assert np.array_equal(flows[1], flows[3])

    override = tmp_path / "override.yaml"
    override.write_text(yaml.safe_dump({"flow": {**settings, "batch_size": 2}}))
    main([*city, "--output", str(tmp_path / "config.h5"), "--config", str(DEFAULT_CONFIG), str(override)])
    assert read_flow_attrs(tmp_path / "config.h5")["provenance"]["batch_size"] == 2
    with pytest.raises(PipelineError, match=r"no batch size: give --batch-size \(the rule passes flow.batch_size\)"):
        main([*city, "--output", str(tmp_path / "none.h5"), "--settings", json.dumps(settings)])
    with pytest.raises(PipelineError, match="must be a positive integer, got 0"):
        main([*city, "--output", str(tmp_path / "none.h5"), "--settings", json.dumps(settings), "--batch-size", "0"])
    assert not (tmp_path / "none.h5").exists()


def test_read_flow_names_the_file_for_missing_snippets_and_corrupt_files(tmp_path):
    subset = write_tree(tmp_path / "city", frames=2, height=32, width=64, snippets=1)
    output = tmp_path / "c.h5"
    main(["--subset", str(subset), "--split", "train", "--city", "testcity", "--output", str(output),
          "--settings", json.dumps({"backend": "dis", "height": 32, "width": 64, "dtype": "float32"}),
          "--batch-size", "1"])
    with pytest.raises(PipelineError, match="no flow for snippet 'testcity_000009_000001'") as err:
        read_flow(output, "testcity_000009_000001")
    assert str(output) in str(err.value)
    corrupt = tmp_path / "corrupt.h5"
    corrupt.write_bytes(output.read_bytes()[:200])
    with pytest.raises(PipelineError, match="not a readable HDF5") as err:
        read_flow(corrupt, "testcity_000000_000001")
    assert str(corrupt) in str(err.value)
    with pytest.raises(PipelineError, match="not found"):
        read_flow(tmp_path / "absent.h5", "x")


def test_stage_failure_leaves_no_output(tmp_path):
    subset = write_tree(tmp_path / "city", frames=3, height=32, width=64, snippets=1)
    missing = next((tmp_path / "city").rglob("*_000002_leftImg8bit.png"))
    missing.unlink()
    output = tmp_path / "out.h5"
    with pytest.raises(PipelineError, match="unreadable image") as err:
        main(["--subset", str(subset), "--split", "train", "--city", "testcity", "--output", str(output),
              "--settings", json.dumps({"backend": "dis", "height": 32, "width": 64}), "--batch-size", "2"])
    assert str(missing) in str(err.value)
    assert not output.exists() and not list(tmp_path.glob(".out.h5*"))


def test_cli_reports_bad_input_on_one_line(tmp_path):
    import subprocess
    import sys

    missing = tmp_path / "subset.json"
    result = subprocess.run([sys.executable, "-m", "pipeline.flow", "--subset", str(missing), "--split",
                             "train", "--city", "x", "--output", str(tmp_path / "x.h5"),
                             "--settings", json.dumps({"backend": "dis", "height": 8, "width": 8}),
                             "--batch-size", "2"],
                            capture_output=True, text=True)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.strip().splitlines()[-1] == f"error: {missing}: file not found"


def test_float16_rounding_error_is_below_its_bound():
    flow = np.random.default_rng(2).normal(size=(64, 64, 2)).astype(np.float32) * 20
    error = float16_rounding_error(flow)
    assert 0 < error["max_relative"] <= 2.0 ** -11 * np.sqrt(2)
    assert error["mean_epe"] < 1e-3 * error["mean_length"]


# --- pictures and measures --------------------------------------------------------------------

def test_flow_strip_writes_four_panels(tmp_path):
    frames = shifted_frames(2, 32, 48)
    flow = np.broadcast_to(np.array(SHIFT, np.float32), (32, 48, 2)).copy()
    strip = flow_strip(frames[0], frames[1], flow, tmp_path / "strip.png")
    assert strip.shape == (32, 4 * 48 + 3 * 4, 3)
    written = cv2.cvtColor(cv2.imread(str(tmp_path / "strip.png")), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(written, strip)
    warped_panel = strip[:, 3 * (48 + 4):]
    assert np.abs(warped_panel[:-1, 2:].astype(int) - frames[1, :-1, 2:]).max() <= 1


def test_end_point_error_on_valid_pixels():
    truth = np.zeros((4, 4, 2))
    flow = truth.copy()
    flow[0, 0] = (3, 4)
    valid = np.ones((4, 4), bool)
    assert end_point_error(flow, truth, valid) == pytest.approx(5 / 16)
    valid[0, 0] = False
    assert end_point_error(flow, truth, valid) == 0.0


# --- quality on the synthetic city, whose true motion is known --------------------------------

@pytest.fixture(scope="module")
def synthetic_city(tmp_path_factory) -> Path:
    synthetic = pytest.importorskip("pipeline.data.synthetic")
    root = tmp_path_factory.mktemp("synthetic") / "city"
    synthetic.generate(root, {"train": {"synthberg": 1}}, seed=0, height=128, width=256,
                       frames=6, annotated=3)
    return root


def test_dis_tracks_the_synthetic_city_motion(synthetic_city):
    from pipeline.flow.quality import evaluate_on_truth

    result = evaluate_on_truth(DISBackend(), synthetic_city, "train", "synthberg", frames=6,
                               annotated_index=3)
    assert result["pairs"] == 5
    assert result["true_length"] > 1.5                   # the scene really moves
    # measured: EPE 0.54 px of 3.0 px mean motion, warp error 0.21 x that of zero flow
    assert result["epe"] < 1.0 and result["epe"] < 0.35 * result["true_length"]
    assert result["warp_error"] < 0.5 * result["warp_error_zero"]
    assert result["warp_error_true"] < 0.3 * result["warp_error_zero"]   # the truth and warp agree


def test_each_flow_is_scored_against_the_truth_of_its_own_frame_pair(synthetic_city, tmp_path):
    """Flow ``t - 1`` of the backend (frames t-1 -> t) is compared with the truth ``flow[t]``: with a
    hand-made truth whose motion changes every frame, a backend that returns exactly it has EPE 0,
    and the mean true length is that of frames 1..T-1 (an off-by-one pairing would give neither)."""
    from pipeline.flow.backends import FlowBackend
    from pipeline.flow.quality import evaluate_on_truth

    root = tmp_path / "city"
    shutil.copytree(synthetic_city, root)
    (truth_path,) = (root / "truth").rglob("*.npz")
    with np.load(truth_path) as stored:
        truth = dict(stored)
    frames, height, width = truth["flow"].shape[:3]
    steps = np.arange(frames, dtype=np.float32)
    truth["flow"] = np.broadcast_to(np.stack([steps, -steps / 2], -1)[:, None, None], truth["flow"].shape).copy()
    truth["valid"] = np.ones((frames, height, width), bool)
    truth["valid"][:, :8] = False
    truth["flow"][:, :8] = 1e3                          # invalid pixels: never measured
    np.savez(truth_path, **truth)

    class Exact(FlowBackend):
        name = "exact"

        def compute(self, prev_rgb, next_rgb):
            assert len(prev_rgb) == frames - 1
            return truth["flow"][1:]

        def describe(self):
            return {"backend": self.name}

    result = evaluate_on_truth(Exact(), root, "train", "synthberg", frames=frames, annotated_index=3)
    assert result["pairs"] == frames - 1
    assert result["epe"] == 0.0
    assert result["true_length"] == pytest.approx(np.hypot(1, 0.5) * steps[1:].mean(), rel=1e-6)
    assert result["warp_error"] == pytest.approx(result["warp_error_true"], rel=1e-9)
