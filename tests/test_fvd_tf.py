"""FVD's TensorFlow parts, run in subprocesses (TensorFlow 2.21 and torch's triton crash together).

One subprocess script builds a narrow local I3D through the builder's CLI, loads it through the
same ``hub.load`` path as the real module, and checks preprocessing, crops, batching and the embed
stage; it prints its measurements as JSON for the tests below. The reference example (all-black
against all-white videos, FVD about 131) runs only where the real TF-Hub module is configured.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.tf

CHECKS = textwrap.dedent(r"""
    import json, sys
    from pathlib import Path
    import numpy as np
    import tensorflow as tf
    from pipeline.fvd import embed as embed_stage, i3d as i3d_stage
    from pipeline.fvd.crops import crop_videos
    from pipeline.fvd.embeddings import read_embeddings
    from pipeline.fvd.videos import write_videos

    work = Path(sys.argv[1])
    out = {}
    i3d_stage.main(["--output", str(work / "i3d"), "--width-multiplier", "0.0625", "--seed", "0"])
    out["files"] = sorted(p.name for p in (work / "i3d").iterdir())
    out["describe"] = embed_stage.identify_i3d(work / "i3d")
    embed = embed_stage.load_i3d(work / "i3d")
    signature = embed.module.signatures["default"]
    spec = signature.structured_input_signature[1]["rgb_input"]
    out["input_spec"] = [spec.shape.as_list(), spec.dtype.name]
    out["output_spec"] = signature.structured_outputs["default"].shape.as_list()

    rng = np.random.default_rng(0)
    frames = tf.constant(rng.uniform(-1, 1, (5, 16, 224, 224, 3)).astype(np.float32))
    whole = embed(frames).numpy()
    pieces = np.concatenate([embed(frames[i:i + 2]).numpy() for i in range(0, 5, 2)])
    single = np.concatenate([embed(frames[i:i + 1]).numpy() for i in range(5)])
    out["embedding_shape"] = list(whole.shape)
    out["batching_max_diff"] = float(max(np.abs(whole - pieces).max(), np.abs(whole - single).max()))
    out["embedding_scale"] = float(np.abs(whole).max())
    out["spread_across_videos"] = float(whole.std(axis=0).mean())
    out["lengths"] = {length: list(embed(tf.zeros((1, length, 224, 224, 3))).shape) for length in (9, 15, 40)}
    try:
        embed_stage.embed_videos(np.zeros((1, 8, 224, 224, 3), np.uint8), embed, "center")
        out["eight_frames"] = "accepted"
    except ValueError as err:
        out["eight_frames"] = str(err)
    same_seed = i3d_stage.build_local_i3d(0.0625, seed=0).logits(frames[:1]).numpy()
    other_seed = i3d_stage.build_local_i3d(0.0625, seed=1).logits(frames[:1]).numpy()
    out["same_seed_diff"] = float(np.abs(same_seed - whole[:1]).max())
    out["other_seed_diff"] = float(np.abs(other_seed - whole[:1]).max())

    # An interrupted copy: the variables' data cut in half (TF's reader fails with IndexError).
    import shutil
    shutil.copytree(work / "i3d", work / "cut_i3d")
    data = work / "cut_i3d" / "variables" / "variables.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[:data.stat().st_size // 2])
    try:
        embed_stage.load_i3d(work / "cut_i3d")
        out["truncated"] = "accepted"
    except Exception as err:
        out["truncated"] = f"{type(err).__name__}: {err}"

    # Resize of known content: a horizontal ramp 8 wide, TF1 legacy bilinear to 224.
    ramp = np.tile(np.arange(0, 256, 32, dtype=np.uint8)[None, None, None, :, None], (1, 1, 8, 1, 3))
    resized = embed_stage.preprocess(ramp).numpy()[0, 0, 0, :, 0]
    source = np.arange(224) * (8 / 224)                   # legacy: x * in / out
    left = np.floor(source).astype(int)
    right = np.minimum(left + 1, 7)
    legacy = (32 * left + (source - left) * 32 * (right - left)) * 2 / 255 - 1
    half = np.clip((np.arange(224) + 0.5) * (8 / 224) - 0.5, 0, 7) * 32 * 2 / 255 - 1
    out["resize_vs_legacy"] = float(np.abs(resized - legacy).max())
    out["resize_vs_half_pixel"] = float(np.abs(resized - half).max())
    native = rng.integers(0, 256, (1, 2, 224, 224, 3), dtype=np.uint8)
    out["identity_at_224"] = float(np.abs(embed_stage.preprocess(native).numpy() - (native * 2.0 / 255 - 1)).max())
    out["extremes"] = [float(embed_stage.preprocess(np.zeros((1, 1, 4, 4, 3), np.uint8)).numpy().min()),
                       float(embed_stage.preprocess(np.full((1, 1, 4, 4, 3), 255, np.uint8)).numpy().max())]
    try:
        embed_stage.preprocess(np.full((1, 1, 4, 4, 3), 1000.0, np.float32))
        out["range_check"] = "accepted"
    except ValueError as err:
        out["range_check"] = str(err)

    # The embed stage on videos of known content: left half black, right half white, 32x64.
    videos = np.zeros((4, 16, 32, 64, 3), np.uint8)
    videos[..., 32:, :] = 255
    videos[1:, :, :4] = rng.integers(0, 256, (3, 16, 4, 64, 3), dtype=np.uint8)  # videos differ
    write_videos(work / "videos.h5", videos, {"stage": "test"})
    settings = {"frames": 16, "height": 32, "width": 64, "batch_size": 3, "crops": ["left", "center", "right"]}
    embed_stage.main(["--videos", str(work / "videos.h5"), "--i3d", str(work / "i3d"),
                      "--output", str(work / "e.npz"), "--settings", json.dumps(settings)])
    per_crop, record = read_embeddings(work / "e.npz")
    out["crops"] = {name: list(values.shape) for name, values in per_crop.items()}
    black = embed(embed_stage.preprocess(np.zeros((1, 16, 32, 32, 3), np.uint8))).numpy()[0]
    white = embed(embed_stage.preprocess(np.full((1, 16, 32, 32, 3), 255, np.uint8))).numpy()[0]
    out["left_first_vs_black"] = float(np.abs(per_crop["left"][0] - black).max())
    out["right_first_vs_white"] = float(np.abs(per_crop["right"][0] - white).max())
    out["black_vs_white"] = float(np.abs(black - white).max())
    direct = embed_stage.embed_videos(videos, embed, "center", batch_size=4)
    out["center_vs_direct"] = float(np.abs(per_crop["center"] - direct).max())
    out["record_i3d"] = record["i3d"]["kind"]
    try:
        embed_stage.main(["--videos", str(work / "videos.h5"), "--i3d", str(work / "i3d"), "--output",
                          str(work / "x.npz"), "--settings", json.dumps(dict(settings, frames=15))])
    except Exception as err:
        out["wrong_frames"] = str(err)

    # The real module's format: a TF1 Hub module (tags [], tfhub_module.pb, signature 'default').
    tf1 = work / "tf1_module"
    weights = rng.normal(size=(3, 400)).astype(np.float32)
    graph = tf.Graph()
    with graph.as_default():
        frames_in = tf.compat.v1.placeholder(tf.float32, [None, None, 224, 224, 3], name="input_frames")
        kernel = tf.compat.v1.get_variable("w", initializer=tf.constant(weights))
        per_frame = tf.tensordot(tf.reduce_mean(frames_in, axis=[2, 3]), kernel, 1)
        logits = tf.reduce_mean(per_frame, axis=1, name="Mean")
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            builder = tf.compat.v1.saved_model.Builder(str(tf1))
            signature_def = tf.compat.v1.saved_model.predict_signature_def({"rgb_input": frames_in},
                                                                           {"default": logits})
            builder.add_meta_graph_and_variables(session, [], signature_def_map={"default": signature_def})
            builder.save()
    (tf1 / "tfhub_module.pb").write_bytes(bytes([8, 3]))
    out["tf1_describe"] = embed_stage.identify_i3d(tf1)["kind"]
    tf1_embed = embed_stage.load_i3d(tf1)
    expected = frames.numpy().mean(axis=(2, 3)) @ weights
    out["tf1_vs_numpy"] = float(np.abs(tf1_embed(frames).numpy() - expected.mean(axis=1)).max())
    print("RESULT" + json.dumps(out))
""")

REFERENCE_EXAMPLE = textwrap.dedent(r"""
    import sys
    import numpy as np
    from pipeline.fvd.embed import embed_videos, load_i3d
    from pipeline.fvd.frechet import frechet_distance_features
    embed = load_i3d(sys.argv[1])
    # google-research frechet_video_distance example.py: 16 videos of 15 frames, 64x64.
    black = np.zeros((16, 15, 64, 64, 3), np.uint8)
    white = np.full((16, 15, 64, 64, 3), 255, np.uint8)
    fvd = frechet_distance_features(embed_videos(black, embed, "center"), embed_videos(white, embed, "center"))
    print(f"RESULT{fvd}")
""")


def run_tf(script: str, *args: str, timeout: int = 300) -> str:
    """Run a Python script in a fresh interpreter (TensorFlow only there); return its RESULT payload."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="", PYTHONPATH=str(REPO))
    result = subprocess.run([sys.executable, "-c", script, *args], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=timeout)
    if result.returncode != 0:
        raise AssertionError(f"TensorFlow subprocess failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}")
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT")]
    assert lines, f"no RESULT line:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return lines[-1][len("RESULT"):]


@pytest.fixture(scope="module")
def checks(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return json.loads(run_tf(CHECKS, str(tmp_path_factory.mktemp("fvd_tf"))))


def test_local_i3d_has_the_tfhub_signature(checks: dict) -> None:
    assert "saved_model.pb" in checks["files"] and "local_i3d.json" in checks["files"]
    assert "tfhub_module.pb" not in checks["files"]  # it would make hub.load ask for TF1 tags
    assert checks["describe"]["kind"] == "local_random" and checks["describe"]["width_multiplier"] == 0.0625
    assert checks["input_spec"] == [[None, None, 224, 224, 3], "float32"]
    assert checks["output_spec"] == [None, 400]
    assert checks["embedding_shape"] == [5, 400]


def test_local_i3d_computes_a_seeded_inception_3d(checks: dict) -> None:
    # Frames are free (time strides 2, 2, 2 and a VALID pool of 2: at least 9 frames).
    assert all(shape == [1, 400] for shape in checks["lengths"].values())
    assert "at least 9" in checks["eight_frames"]
    assert checks["same_seed_diff"] < 1e-5 < checks["other_seed_diff"]
    # Calibrated batch-norm statistics keep the random logits finite and varied across videos.
    assert 0 < checks["embedding_scale"] < 1e3 and checks["spread_across_videos"] > 1e-3


def test_embeddings_do_not_depend_on_batching(checks: dict) -> None:
    assert checks["batching_max_diff"] < 1e-4 * max(1.0, checks["embedding_scale"])


def test_preprocessing_matches_the_reference(checks: dict) -> None:
    assert checks["resize_vs_legacy"] < 1e-5  # TF1 resize_bilinear, both flags False
    assert checks["resize_vs_half_pixel"] > 0.05  # ... and not TF2's tf.image.resize
    assert checks["identity_at_224"] < 1e-6
    assert checks["extremes"] == [-1.0, 1.0]
    assert "outside [-1, 1]" in checks["range_check"]


def test_a_truncated_module_is_named(checks: dict) -> None:
    assert checks["truncated"].startswith("PipelineError: ") and "cut_i3d: " in checks["truncated"]
    assert "truncated or corrupt" in checks["truncated"]


def test_tf1_hub_format_loads_through_the_same_path(checks: dict) -> None:
    # A module in the real I3D's format (TF1 Hub, empty tag set) is found and called the same way.
    assert checks["tf1_describe"] == "tfhub"
    assert checks["tf1_vs_numpy"] < 1e-4


def test_embed_stage_cuts_the_square_crops(checks: dict) -> None:
    assert checks["crops"] == {"left": [4, 400], "center": [4, 400], "right": [4, 400]}
    assert checks["black_vs_white"] > 1e-3
    assert checks["left_first_vs_black"] < 1e-5 and checks["right_first_vs_white"] < 1e-5
    assert checks["center_vs_direct"] < 1e-4 * max(1.0, checks["embedding_scale"])
    assert checks["record_i3d"] == "local_random"
    assert "videos.h5" in checks["wrong_frames"] and "[16, 32, 64]" in checks["wrong_frames"]


def configured_i3d() -> tuple[Path | None, str]:
    """The real I3D module directory: FVD_I3D, else config.yaml's fvd.i3d; and where it came from."""
    if os.environ.get("FVD_I3D"):
        return Path(os.environ["FVD_I3D"]), "FVD_I3D"
    from pipeline.config import load_config

    configured = load_config()["fvd"]["i3d"]
    return (Path(configured) if configured else None), "config.yaml fvd.i3d"


def test_reference_example_black_against_white_is_about_131() -> None:
    directory, source = configured_i3d()
    if directory is None or not directory.is_dir():
        pytest.skip(f"the TF-Hub I3D module is not available ({source} = {directory}); "
                    "the reference example needs the real weights")
    fvd = float(run_tf(REFERENCE_EXAMPLE, str(directory)))
    assert fvd == pytest.approx(131, rel=0.03)
