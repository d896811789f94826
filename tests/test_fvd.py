"""FVD without TensorFlow: Fréchet distance, statistics, crops, files, score and table stages.

The TensorFlow parts (local I3D, preprocessing, embedding) are in test_fvd_tf.py, which runs
them in a subprocess.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from scipy import stats
import scipy.linalg

from pipeline.errors import PipelineError
from pipeline.fvd import score as score_stage
from pipeline.fvd import table as table_stage
from pipeline.fvd.crops import check_crop_names, crop_offset, crop_videos
from pipeline.fvd.embeddings import read_embeddings, write_embeddings
from pipeline.fvd.frechet import (
    feature_statistics,
    frechet_distance,
    frechet_distance_features,
    frechet_distance_from_grams,
)
from pipeline.fvd.protocol import (
    batch_fvds,
    bootstrap_fvds,
    bootstrap_indices,
    centred_interval,
    score_crops,
)
from pipeline.fvd.videos import read_videos, read_videos_header, video_batches, write_videos


def scipy_frechet(x: np.ndarray, y: np.ndarray) -> float:
    """An independent float64 Fréchet distance: np.cov and scipy.linalg.sqrtm of the product."""
    mu_x, mu_y = x.mean(axis=0), y.mean(axis=0)
    cov_x, cov_y = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    root = scipy.linalg.sqrtm(cov_x @ cov_y)
    return float(np.sum((mu_x - mu_y) ** 2) + np.trace(cov_x) + np.trace(cov_y) - 2 * np.trace(root).real)


# --- Fréchet distance --------------------------------------------------------------------------

@pytest.mark.parametrize("n, dim", [(600, 64), (128, 400), (16, 400)])
def test_frechet_distance_matches_scipy(n: int, dim: int) -> None:
    rng = np.random.default_rng(n + dim)
    real = rng.standard_normal((n, dim)) * rng.uniform(0.5, 2.0, dim)
    fake = rng.standard_normal((n, dim)) @ rng.normal(0, 0.1, (dim, dim)) + rng.standard_normal((n, dim)) + 0.3
    expected = scipy_frechet(real, fake)
    assert frechet_distance_features(real, fake) == pytest.approx(expected, rel=1e-6)
    # Both paths (covariance SVDs and the cross-Gram nuclear norm) agree with each other too.
    covariance_path = frechet_distance(*feature_statistics(real), *feature_statistics(fake))
    assert covariance_path == pytest.approx(expected, rel=1e-6)


def test_frechet_distance_of_a_set_with_itself_is_zero() -> None:
    features = np.random.default_rng(1).standard_normal((128, 400)) * 5 + 3
    assert abs(frechet_distance_features(features, features)) < 1e-8
    assert abs(frechet_distance(*feature_statistics(features), *feature_statistics(features))) < 1e-8
    # Shuffling the videos of one set changes nothing; the distance is symmetric.
    other = np.random.default_rng(2).standard_normal((128, 400))
    shuffled = features[np.random.default_rng(3).permutation(128)]
    assert frechet_distance_features(shuffled, other) == pytest.approx(frechet_distance_features(features, other))
    assert frechet_distance_features(other, features) == pytest.approx(frechet_distance_features(features, other))


def test_unbiased_covariance_and_constant_sets() -> None:
    features = np.arange(12, dtype=float).reshape(4, 3)
    _, cov = feature_statistics(features)
    assert cov[0, 0] == pytest.approx(np.var(features[:, 0], ddof=1))
    # Constant sets: no covariance, the distance is the squared distance of the two embeddings
    # (why the black/white reference example does not depend on the number of videos).
    black, white = np.tile([1.0, 2.0, 3.0], (16, 1)), np.tile([2.0, 0.0, 3.0], (16, 1))
    assert frechet_distance_features(black, white) == pytest.approx(5.0)
    assert batch_fvds(np.tile(black, (2, 1)), np.tile(white, (2, 1)), 16) == pytest.approx([5.0, 5.0])


def test_frechet_distance_rejects_bad_features() -> None:
    with pytest.raises(ValueError, match="NaN"):
        frechet_distance_features(np.full((4, 3), np.nan), np.zeros((4, 3)))
    with pytest.raises(ValueError, match="feature sizes"):
        frechet_distance_features(np.zeros((4, 3)), np.zeros((4, 2)))


# --- statistics -------------------------------------------------------------------------------

def test_batch_fvds_pair_real_and_synthesised_batches() -> None:
    rng = np.random.default_rng(4)
    real, fake = rng.standard_normal((48, 40)), rng.standard_normal((48, 40)) + 1
    values = batch_fvds(real, fake, 16)
    assert values.shape == (3,)
    assert values[1] == pytest.approx(scipy_frechet(real[16:32], fake[16:32]), rel=1e-6)
    with pytest.raises(ValueError, match="multiple"):
        batch_fvds(real[:40], fake[:40], 16)


def test_bootstrap_replicates_recompute_the_resampled_sets() -> None:
    rng = np.random.default_rng(5)
    real, fake = rng.standard_normal((32, 100)), rng.standard_normal((32, 100)) * 1.5
    indices = bootstrap_indices(32, 7, seed=3)
    values = bootstrap_fvds(real, fake, indices)
    for idx, value in zip(indices, values):
        assert value == pytest.approx(frechet_distance_features(real[idx], fake[idx]), rel=1e-8)
    # More videos than features: the covariance path gives the same replicates.
    wide_real, wide_fake = real[:, :20], fake[:, :20]
    direct = [frechet_distance_features(wide_real[idx], wide_fake[idx]) for idx in indices]
    assert bootstrap_fvds(wide_real, wide_fake, indices) == pytest.approx(direct, rel=1e-8)
    assert np.array_equal(indices, bootstrap_indices(32, 7, seed=3))
    assert not np.array_equal(indices, bootstrap_indices(32, 7, seed=4))


def test_frechet_distance_from_stacked_grams() -> None:
    rng = np.random.default_rng(6)
    x, y = rng.standard_normal((2, 10, 30)), rng.standard_normal((2, 10, 30)) + 0.5
    grams = (x @ x.transpose(0, 2, 1), y @ y.transpose(0, 2, 1), x @ y.transpose(0, 2, 1))
    values = frechet_distance_from_grams(*grams)
    assert values == pytest.approx([scipy_frechet(x[i], y[i]) for i in range(2)], rel=1e-6)


def test_centred_interval_is_the_spread_around_the_estimate() -> None:
    values = np.linspace(10.0, 20.0, 1001)  # mean 15, central 95% spans 10.25..19.75
    low, high = centred_interval(3.0, values)
    assert (low, high) == pytest.approx((3.0 - 4.75, 3.0 + 4.75))
    assert centred_interval(3.0, values, floor=0.0)[0] == 0.0


def test_score_crops_thesis_number_and_spread() -> None:
    rng = np.random.default_rng(7)
    real = {crop: rng.standard_normal((32, 50)) for crop in ("left", "right")}
    fake = {crop: rng.standard_normal((32, 50)) + shift for crop, shift in (("left", 0.2), ("right", 0.6))}
    result = score_crops(real, fake, ["left", "right"], batch_size=16, replicates=40, seed=0)
    per_batch = {crop: batch_fvds(real[crop], fake[crop], 16) for crop in real}
    assert result["fvd_thesis"] == pytest.approx(np.mean([per_batch["left"].mean(), per_batch["right"].mean()]))
    assert result["batch_crop_std"] == pytest.approx(np.std(np.concatenate(list(per_batch.values())), ddof=1))
    assert result["crop_std"] == pytest.approx(np.std([v.mean() for v in per_batch.values()], ddof=1))
    assert result["crops"]["left"]["pooled"] == pytest.approx(scipy_frechet(real["left"], fake["left"]), rel=1e-6)
    assert result["pooled_fvd"] == pytest.approx(np.mean([result["crops"][c]["pooled"] for c in real]))
    assert len(result["pooled_bootstrap"]) == 40
    low, high = result["pooled_ci"]
    assert low <= result["pooled_fvd"] <= high
    # The batch FVD at 16 videos is far more biased than the pooled FVD at 32.
    assert result["fvd_thesis"] > result["pooled_fvd"]
    assert json.loads(json.dumps(result)) == result  # JSON-ready
    again = score_crops(real, fake, ["left", "right"], batch_size=16, replicates=40, seed=0)
    assert again["pooled_bootstrap"] == result["pooled_bootstrap"]
    # Each crop's interval: its own replicates' central 95%, moved to centre on its own pooled FVD, floored at 0.
    tail = 100 * (1 - result["bootstrap"]["confidence"]) / 2
    for crop in real:
        figures = result["crops"][crop]
        replicates = np.asarray(figures["bootstrap"])
        low, high = np.percentile(replicates - replicates.mean() + figures["pooled"], [tail, 100 - tail])
        assert figures["pooled_ci"] == pytest.approx([max(low, 0.0), high], rel=1e-9)
    assert result["crops"]["left"]["pooled_ci"] != result["crops"]["right"]["pooled_ci"]


# --- crops ------------------------------------------------------------------------------------

def test_crops_on_videos_with_known_content() -> None:
    # Each column holds its own index: a crop's first and last columns say where it was cut.
    height, width = 4, 10
    columns = np.broadcast_to(np.arange(width, dtype=np.uint8)[None, None, None, :, None], (2, 3, height, width, 3))
    expected_first = {"left": 0, "center": 3, "right": 6}
    for name, first in expected_first.items():
        crop = crop_videos(columns, name)
        assert crop.shape == (2, 3, height, height, 3)
        assert crop[0, 0, 0, :, 0].tolist() == list(range(first, first + height))
        assert crop_offset(name, height, width) == first
    square = np.zeros((1, 1, 5, 5, 3), np.uint8)
    assert all(crop_videos(square, name).shape == square.shape for name in expected_first)
    with pytest.raises(ValueError, match="unknown crop"):
        crop_offset("top", 4, 10)
    with pytest.raises(ValueError, match="narrower"):
        crop_offset("left", 10, 4)
    with pytest.raises(ValueError, match="distinct"):
        check_crop_names(["left", "left"])


# --- files ------------------------------------------------------------------------------------

def test_videos_file_roundtrip_and_errors(tmp_path: Path) -> None:
    videos = np.random.default_rng(8).integers(0, 256, (3, 4, 6, 8, 3), dtype=np.uint8)
    path = tmp_path / "videos.h5"
    write_videos(path, videos, {"stage": "synthesize", "variant": "v01"})
    loaded, record = read_videos(path)
    assert np.array_equal(loaded, videos) and record["variant"] == "v01"
    assert read_videos_header(path) == ((3, 4, 6, 8, 3), record)
    assert np.array_equal(np.concatenate(list(video_batches(path, 2))), videos)
    assert not list(tmp_path.glob(".videos.h5*"))  # no temporary left behind
    with pytest.raises(PipelineError, match="not found"):
        read_videos(tmp_path / "missing.h5")
    (tmp_path / "corrupt.h5").write_bytes(b"not hdf5 at all")
    with pytest.raises(PipelineError, match="corrupt.h5.*HDF5"):
        read_videos(tmp_path / "corrupt.h5")
    with h5py.File(tmp_path / "empty.h5", "w") as handle:
        handle.create_dataset("other", data=np.zeros(3))
    with pytest.raises(PipelineError, match="no dataset 'videos'"):
        read_videos(tmp_path / "empty.h5")
    with pytest.raises(PipelineError, match="uint8"):
        write_videos(tmp_path / "float.h5", videos.astype(np.float32), {})
    assert not (tmp_path / "float.h5").exists()


def test_embeddings_file_roundtrip_and_errors(tmp_path: Path) -> None:
    per_crop = {"left": np.ones((4, 400)), "center": np.zeros((4, 400))}
    write_embeddings(tmp_path / "e.npz", per_crop, {"i3d": {"kind": "local_random"}})
    loaded, record = read_embeddings(tmp_path / "e.npz")
    assert set(loaded) == {"left", "center"} and loaded["left"].dtype == np.float32
    assert record["i3d"]["kind"] == "local_random"
    (tmp_path / "bad.npz").write_bytes(b"garbage")
    with pytest.raises(PipelineError, match="bad.npz"):
        read_embeddings(tmp_path / "bad.npz")
    np.savez(tmp_path / "plain.npz", left=np.ones((4, 400)))
    with pytest.raises(PipelineError, match="provenance"):
        read_embeddings(tmp_path / "plain.npz")


# --- score and table stages -------------------------------------------------------------------

SETTINGS = {"batch_size": 8, "batches": 2, "crops": ["left", "center"], "bootstrap": 50, "seed": 0}
I3D = {"kind": "local_random", "width_multiplier": 0.25, "seed": 0, "sha256": "abc", "path": "/i3d"}


SNIPPETS = [f"testfurt_000000_{i:06d}" for i in range(16)]


def write_set(path: Path, shift: float, seed: int, i3d: dict = I3D, frames: int = 16,
              snippets: list[str] = SNIPPETS, start_frame: int = 2, variant: str | None = None) -> Path:
    rng = np.random.default_rng(seed)
    per_crop = {crop: rng.standard_normal((16, 30)) + shift for crop in SETTINGS["crops"]}
    videos = {"snippets": snippets, "settings": {"start_frame": start_frame, "frames": frames}}
    if variant is not None:         # synthesised videos record their variant; real ones have none
        videos["variant"] = variant
    write_embeddings(path, per_crop, {"i3d": i3d, "videos": {"shape": [16, frames, 32, 64, 3], "provenance": videos}})
    return path


def test_score_stage_writes_all_figures(tmp_path: Path) -> None:
    real = write_set(tmp_path / "real.npz", 0.0, seed=1)
    fake = write_set(tmp_path / "fake.npz", 0.5, seed=2)
    output = tmp_path / "scores" / "v01.json"
    score_stage.main(["--real", str(real), "--fake", str(fake), "--output", str(output),
                      "--settings", json.dumps(SETTINGS)])
    result = json.loads(output.read_text())
    assert result["variant"] == "v01" and result["batches"] == 2 and result["num_videos"] == 16
    assert set(result["crops"]) == {"left", "center"} and len(result["crops"]["left"]["batch_fvd"]) == 2
    assert result["i3d"]["kind"] == "local_random" and result["provenance"]["stage"] == "fvd.score"


def test_score_stage_refuses_incomparable_sets(tmp_path: Path) -> None:
    real = write_set(tmp_path / "real.npz", 0.0, seed=1)
    other_i3d = write_set(tmp_path / "other.npz", 0.0, seed=2, i3d=dict(I3D, sha256="def"))
    with pytest.raises(PipelineError, match="other.npz.*another I3D"):
        score_stage.score_embeddings(real, other_i3d, SETTINGS)
    longer = write_set(tmp_path / "longer.npz", 0.0, seed=2, frames=24)
    with pytest.raises(PipelineError, match="longer.npz.*frames"):
        score_stage.score_embeddings(real, longer, SETTINGS)
    # Video i must show real video i's snippet from the same frame (batch b against batch b).
    shuffled = write_set(tmp_path / "shuffled.npz", 0.0, seed=2, snippets=SNIPPETS[::-1])
    with pytest.raises(PipelineError, match="shuffled.npz.*other test snippets.*video i must pair"):
        score_stage.score_embeddings(real, shuffled, SETTINGS)
    later = write_set(tmp_path / "later.npz", 0.0, seed=2, start_frame=3)
    with pytest.raises(PipelineError, match=r"later.npz.*another start frame \(3\) than the real videos \(2\)"):
        score_stage.score_embeddings(real, later, SETTINGS)
    with pytest.raises(PipelineError, match="3 batches of 8"):
        score_stage.score_embeddings(real, write_set(tmp_path / "f.npz", 0, 3), dict(SETTINGS, batches=3))


def test_score_stage_refuses_another_variants_embeddings(tmp_path: Path) -> None:
    """v07's embeddings scored as v09 would put v07's FVD in v09's row: the videos' provenance
    says whose they are. The --output stem stands in for a missing --variant, checked alike."""
    real = write_set(tmp_path / "real.npz", 0.0, seed=1)
    fake = write_set(tmp_path / "v07.npz", 0.5, seed=2, variant="v07")
    with pytest.raises(PipelineError, match=r"v07.npz: embeddings of variant 'v07' scored as variant 'v09'"):
        score_stage.main(["--real", str(real), "--fake", str(fake), "--output", str(tmp_path / "s" / "v09.json"),
                          "--variant", "v09", "--settings", json.dumps(SETTINGS)])
    with pytest.raises(PipelineError, match="scored as variant 'v09'"):
        score_stage.main(["--real", str(real), "--fake", str(fake), "--output", str(tmp_path / "s" / "v09.json"),
                          "--settings", json.dumps(SETTINGS)])
    assert not (tmp_path / "s").exists()
    score_stage.main(["--real", str(real), "--fake", str(fake), "--output", str(tmp_path / "s" / "v07.json"),
                      "--variant", "v07", "--settings", json.dumps(SETTINGS)])
    assert json.loads((tmp_path / "s" / "v07.json").read_text())["variant"] == "v07"


def make_scores(tmp_path: Path, shifts: dict[str, float]) -> list[Path]:
    real = write_set(tmp_path / "real.npz", 0.0, seed=1)
    paths = []
    for seed, (name, shift) in enumerate(shifts.items(), start=10):
        fake = write_set(tmp_path / f"{name}.npz", shift, seed=seed)
        paths.append(tmp_path / f"{name}.json")
        paths[-1].write_text(json.dumps(score_stage.score_embeddings(real, fake, SETTINGS, variant=name)))
    return paths


VARIANTS = {
    "v01": {"index": 1, "network": "crn", "norm": "layer", "edge": False, "prior": None, "thesis_fvd": 1885.1},
    "v02": {"index": 2, "network": "crn", "norm": "weight", "edge": False, "prior": None, "thesis_fvd": 1609.0},
    "v03": {"index": 3, "network": "crn", "norm": "weight", "edge": False, "prior": None, "thesis_fvd": 1488.2},
}


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_table_stage_rows_and_comparisons(tmp_path: Path) -> None:
    # v01 far from the real set, v02 close, v03 nearly as close as v02.
    scores = make_scores(tmp_path, {"v03": 0.25, "v01": 2.0, "v02": 0.2})
    (tmp_path / "warp.json").write_text(json.dumps({"variant": "v02", "warping_error": 0.0123}))
    (tmp_path / "v01").mkdir()
    (tmp_path / "v01" / "training.json").write_text(json.dumps({"training_seconds": 5400}))
    output = tmp_path / "results" / "fvd_table.csv"
    table_stage.main(["--scores", *map(str, scores), "--variants-settings", json.dumps(VARIANTS),
                      "--warping", str(tmp_path / "warp.json"), "--training", str(tmp_path / "v01" / "training.json"),
                      "--output", str(output), "--settings", json.dumps({"comparisons": [[1, 2], [2, 3], [1, 9]]})])
    rows = read_csv(output)
    assert [row["variant"] for row in rows] == ["v01", "v02", "v03"]
    first = rows[0]
    assert first["norm"] == "layer" and first["edge"] == "false" and first["prior"] == ""
    assert float(first["fvd"]) == pytest.approx(json.loads(scores[1].read_text())["fvd_thesis"], abs=1e-3)
    assert {"fvd_left", "fvd_center", "fvd_pooled_ci_low", "fvd_crop_std", "fvd_batch_crop_std"} <= set(first)
    assert first["training_hours"] == "1.500" and rows[1]["warping_error"] == "0.0123"
    assert first["warping_error"] == "" and first["thesis_fvd"] == "1885.100"
    assert "not comparable to published FVD" in first["i3d"]
    pairs = read_csv(tmp_path / "results" / "fvd_table_comparisons.csv")
    assert [pair["pair"] for pair in pairs] == ["1 vs 2", "2 vs 3"]  # 1 vs 9: no variant 9
    # A large improvement holds in every resample; two near-equal variants flip in some.
    assert float(pairs[0]["sign_kept_share_over_test_videos"]) == 1.0 and float(pairs[0]["pooled_change"]) < 0
    assert 0.0 < float(pairs[1]["sign_kept_share_over_test_videos"]) < 1.0
    assert pairs[0]["same_sign_as_thesis"] == "true" and pairs[0]["test_videos"] == "16"


def test_table_csv_names_the_weights_and_how_the_fvd_was_computed(tmp_path: Path) -> None:
    """What the report's red line says reaches the CSV too: a researcher may take only the CSV."""
    scores = make_scores(tmp_path, {"v01": 1.0, "v02": 0.5})
    trained = json.loads(scores[0].read_text())
    trained["provenance"]["fake_videos"]["model_provenance"] = {
        "stage": "train", "variant": "v01", "steps": 5, "backbone_weights": {"perceptual": "random"}}
    scores[0].write_text(json.dumps(trained))
    two = {name: VARIANTS[name] for name in ("v01", "v02")}
    table_stage.write_tables(scores, two, tmp_path / "t.csv", tmp_path / "c.csv")
    first, second = read_csv(tmp_path / "t.csv")
    assert "random perceptual backbone" in first["weights"] and "5 steps" in first["weights"]
    assert "narrow random I3D" in second["weights"] and "backbone" not in second["weights"]
    assert (first["videos"], first["batch_size"], first["frames"]) == ("16", "8", "16")
    published = dict(json.loads(scores[1].read_text()), i3d={"kind": "tfhub", "handle": "i3d-kinetics-400"})
    row, = table_stage.table_rows({"v02": VARIANTS["v02"]}, {"v02": (published, scores[1])}, {}, {})
    assert row["weights"] == "no random or self-trained weights"


def _score(fvd: float, pooled: float, replicates: list[float], batches: list[float] | None = None
           ) -> tuple[dict, Path]:
    """A scores record with what comparison_rows reads; replicate r of every variant is the same
    resample, batch k of every variant the same videos. One crop; ``batches`` average to ``fvd``."""
    batches = [fvd - 1.0, fvd + 1.0] if batches is None else batches
    assert np.mean(batches) == pytest.approx(fvd)
    return ({"fvd_thesis": fvd, "pooled_fvd": pooled, "pooled_bootstrap": replicates, "num_videos": 4,
             "crops": {"center": {"batch_fvd": batches}},
             "bootstrap": {"indices_sha256": "same", "confidence": 0.95}}, Path(f"{fvd}.json"))


def test_same_sign_as_thesis_reads_the_pooled_change_and_its_interval() -> None:
    variants = {"v01": {"index": 1, "thesis_fvd": 1885.1}, "v02": {"index": 2, "thesis_fvd": 1609.0},
                "v03": {"index": 3, "thesis_fvd": 1488.2}}
    base = [100.0, 101.0, 99.0, 100.5, 99.5]
    scores = {"v01": _score(100.0, 100.0, base),
              # The thesis protocol's FVD rose, the pooled FVD fell in every resample: the pooled change counts.
              "v02": _score(101.0, 95.0, [value - 5.0 for value in base]),
              # Pooled change -1, but the resamples straddle 0: the interval holds 0.
              "v03": _score(98.0, 94.0, [96.0, 93.0, 95.5, 92.0, 95.0])}
    rows = table_stage.comparison_rows(variants, scores, [(1, 2, ""), (2, 3, "")])
    assert rows[0]["fvd_change"] > 0 > rows[0]["pooled_change"] and rows[0]["same_sign_as_thesis"] == "true"
    assert rows[1]["pooled_change_ci_low"] < 0 < rows[1]["pooled_change_ci_high"]
    assert rows[1]["same_sign_as_thesis"] == "undetermined"
    assert rows[1]["test_videos"] == 4 and 0 < rows[1]["sign_kept_share_over_test_videos"] < 1
    flipped = dict(variants, v02=dict(variants["v02"], thesis_fvd=1900.0))
    assert table_stage.comparison_rows(flipped, scores, [(1, 2, "")])[0]["same_sign_as_thesis"] == "false"


def test_the_sign_share_counts_the_change_not_the_difference_of_the_two_biases() -> None:
    """Resampling repeats videos and shifts each variant's replicates up by its own bias: here b's
    by 10 more than a's, against a change of -1. Raw, every replicate change is positive (a
    share of 0 for the observed sign); centred on the change, as the interval is, the share is
    the spread's own."""
    variants = {"v01": {"index": 1}, "v02": {"index": 2}}
    spread = np.array([-2.0, -1.0, -0.5, 0.5, 1.0, 2.0, 3.0, -3.0])
    scores = {"v01": _score(50.0, 50.0, list(50.0 + 5.0 + spread)),
              "v02": _score(49.0, 49.0, list(49.0 + 15.0 + 0.5 * spread))}
    row, = table_stage.comparison_rows(variants, scores, [(1, 2, "")])
    assert row["pooled_change"] == -1.0
    centred_changes = -1.0 - 0.5 * spread
    assert row["sign_kept_share_over_test_videos"] == pytest.approx(np.mean(centred_changes < 0)) == 0.75
    assert row["pooled_change_ci_low"] < -1.0 < row["pooled_change_ci_high"]


def test_same_sign_as_thesis_protocol_reads_the_paired_batches() -> None:
    """The thesis measured in batches of 16: its change compared with the change by the same
    protocol, whose interval is a t interval over the paired batch differences."""
    variants = {"v01": {"index": 1, "thesis_fvd": 1885.1}, "v02": {"index": 2, "thesis_fvd": 1609.0},
                "v03": {"index": 3, "thesis_fvd": 1488.2}}
    replicates = [100.0, 101.0, 99.0]
    scores = {"v01": _score(100.0, 90.0, replicates, [98.0, 100.0, 102.0, 100.0]),
              # lower in every batch by 3 to 5: the protocol's change is -4, its interval below 0
              "v02": _score(96.0, 95.0, [value + 5.0 for value in replicates], [95.0, 95.0, 97.0, 97.0]),
              # batch differences from v02 straddle 0
              "v03": _score(95.5, 94.0, replicates, [99.0, 92.0, 99.0, 92.0])}
    first, second = table_stage.comparison_rows(variants, scores, [(1, 2, ""), (2, 3, "")])
    differences = np.array([-3.0, -5.0, -5.0, -3.0])
    half = stats.t.ppf(0.975, 3) * differences.std(ddof=1) / 2.0
    assert first["fvd_change"] == pytest.approx(-4.0)
    assert [first["fvd_change_ci_low"], first["fvd_change_ci_high"]] == pytest.approx([-4.0 - half, -4.0 + half])
    assert first["same_sign_as_thesis_protocol"] == "true" and first["same_sign_as_thesis"] == "false"
    assert second["same_sign_as_thesis_protocol"] == "undetermined"


def test_table_stage_errors_name_the_file(tmp_path: Path) -> None:
    scores = make_scores(tmp_path, {"v01": 1.0, "v02": 0.5})
    with pytest.raises(PipelineError, match="v03"):
        table_stage.write_tables(scores, VARIANTS, tmp_path / "t.csv", tmp_path / "c.csv")
    stray = tmp_path / "mystery.json"
    stray.write_text(json.dumps({"warping_error": 1.0}))
    with pytest.raises(PipelineError, match="mystery.json.*which variant"):
        table_stage.write_tables(scores, {k: VARIANTS[k] for k in ("v01", "v02")}, tmp_path / "t.csv",
                                 tmp_path / "c.csv", warping_paths=[stray])
    assert not (tmp_path / "t.csv").exists()
    other = json.loads(scores[1].read_text())
    scores[1].write_text(json.dumps(dict(other, i3d=dict(I3D, sha256="another"))))
    with pytest.raises(PipelineError, match="v02.json.*another I3D"):
        table_stage.write_tables(scores, {k: VARIANTS[k] for k in ("v01", "v02")}, tmp_path / "t.csv",
                                 tmp_path / "c.csv")
    other["bootstrap"]["indices_sha256"] = "different"
    scores[1].write_text(json.dumps(other))
    with pytest.raises(PipelineError, match="v02.json.*do not pair"):
        table_stage.write_tables(scores, {k: VARIANTS[k] for k in ("v01", "v02")}, tmp_path / "t.csv",
                                 tmp_path / "c.csv")
