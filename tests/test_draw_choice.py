"""fvd.draw_choice: held-out snippets, candidate draws, the FVD choice, and the graph with it on and off.

The chain runs as its rules run it on a tiny synthetic city with more val snippets than test
ones: candidate videos and the test videos in this (torch) process, the local random I3D, the
embeddings and the choice in a subprocess that never imports torch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from conftest import REPO, run_snakemake, truth_as_stage_outputs
from test_graph import job_counts
from pipeline.config import DEFAULT_CONFIG, load_config
from pipeline.data.fake_tree import make_fake_tree
from pipeline.data.subset import load_subset, select_subset, stage_settings, subset_snippets
from pipeline.errors import PipelineError
from pipeline.fvd.draws import choose_draw
from pipeline.fvd.embeddings import write_embeddings
from pipeline.fvd.videos import read_videos, write_video_stream, write_videos
from pipeline.io import write_json
from pipeline.models.encoder import choose_centres
from pipeline.synthesize.draws import DrawSeeding, draw_seed, read_draw_choice
from pipeline.synthesize.video import candidate_videos, real_videos, synthesize_videos
from pipeline.train.cluster import feature_bank
from pipeline.train.loop import train_variant
from pipeline.train.settings import train_settings

SUBSET_KEYS = {"root", "frames", "annotated_index", "splits", "test", "gtfine_train", "counts"}


@pytest.fixture(scope="module")
def val_tree(tmp_path_factory):
    return make_fake_tree(tmp_path_factory.mktemp("draw_tree") / "cityscapes",
                          {"train": {"aachen": 2}, "val": {"frankfurt": 60, "lindau": 8, "munster": 5}})


# --- held-out snippets -------------------------------------------------------------------------

def test_heldout_snippets_are_val_snippets_outside_the_test_set(val_tree):
    base = {"train_cities": None, "test_sequences": 16, "seed": 0}
    plain = select_subset(val_tree, base)
    subset = select_subset(val_tree, dict(base, heldout_sequences=12))
    assert subset["test"] == plain["test"]                 # the test set does not move
    assert len(subset["heldout"]) == 12 and not set(subset["heldout"]) & set(subset["test"])
    assert subset["counts"] == {"train": 2, "test": 16, "gtfine_train": 2, "heldout": 12}
    assert sorted(i for ids in subset["splits"]["heldout"].values() for i in ids) == sorted(subset["heldout"])
    city = sorted(subset["splits"]["heldout"])[0]
    snippet = subset_snippets(subset, "heldout", city)[0]
    assert snippet.split == "val" and snippet.frame_paths[0].is_file()
    assert select_subset(val_tree, dict(base, heldout_sequences=12))["heldout"] == subset["heldout"]
    assert select_subset(val_tree, dict(base, heldout_sequences=12, seed=1))["heldout"] != subset["heldout"]


def test_option_off_leaves_the_subset_and_its_settings_as_before(val_tree):
    config = load_config([DEFAULT_CONFIG])
    assert config["fvd"]["draw_choice"]["auto"] is False
    assert stage_settings(config) == config["subset"]       # the rule's params do not change
    settings = dict(stage_settings(config), train_cities=None, test_sequences=16)
    subset = select_subset(val_tree, settings)
    assert set(subset) == SUBSET_KEYS and set(subset["splits"]) == {"train", "val"}
    assert set(subset["counts"]) == {"train", "test", "gtfine_train"}
    config["fvd"]["draw_choice"]["auto"] = True
    assert stage_settings(config) == dict(config["subset"], heldout_sequences=16)


def test_too_few_val_snippets_outside_the_test_set_is_named(val_tree):
    with pytest.raises(PipelineError, match=r"gtFine/val: fvd.draw_choice.heldout_videos is 60 but split "
                                            r"'val' has only 57 snippets besides the test ones"):
        select_subset(val_tree, {"train_cities": None, "test_sequences": 16, "heldout_sequences": 60})


# --- seeding and the choice (NumPy) ------------------------------------------------------------

def test_a_run_draws_slot_zero_and_per_video_draws_take_the_index():
    assert draw_seed(7, 0, 3) == 7 * 1_000_003 + 3
    assert {DrawSeeding(7, candidate=2).seed_of(i) for i in (0, 1, 130)} == {draw_seed(7, 2, 0)}
    assert DrawSeeding(7, per_video=True).seed_of(130) == draw_seed(7, 0, 130)
    assert DrawSeeding(7, candidate=2, period=16, per_video=True).seed_of(130) == draw_seed(7, 2, 130 % 16)
    assert DrawSeeding.of({"draw_seed": 7, "seed": 1, "feature_draw": "video"}) == DrawSeeding(7, per_video=True)
    for seed in (0, 123_456):        # distinct in the 32 bits torch's generator keeps
        assert len({draw_seed(seed, c, slot) % 2**32 for c in range(4096) for slot in (0, 15, 2**20 - 1)}) == 3 * 4096
    big = 10**6                          # what torch made of the old formula's large seeds
    first = torch.randint(1000, (4,), generator=torch.Generator().manual_seed(big * 1_000_003 + 5))
    assert torch.equal(first, torch.randint(1000, (4,), generator=torch.Generator().manual_seed(draw_seed(big, 0, 5))))


def embeddings_pair(work: Path, offsets: list[float], count: int = 6, dims: int = 8):
    """Real held-out embeddings and candidates whose features sit ``offsets`` away from them."""
    rng = np.random.default_rng(0)
    record = {"i3d": {"sha256": "abc", "path": "i3d"}, "videos": {"shape": [count, 9, 16, 32, 3],
                                                                   "provenance": {"draw_seeding": {"seed": 0}}}}
    real = {crop: rng.normal(size=(count, dims)) for crop in ("left", "center")}
    candidates = {crop: np.concatenate([values + offset + 0.1 * rng.normal(size=values.shape)
                                        for offset in offsets]) for crop, values in real.items()}
    write_embeddings(work / "real.npz", real, record)
    write_embeddings(work / "candidates.npz", candidates, record)
    return work / "real.npz", work / "candidates.npz"


def test_the_chosen_draw_is_the_lowest_recorded_fvd_and_follows_the_inputs(tmp_path):
    real, candidates = embeddings_pair(tmp_path, [3.0, 1.5, 0.2, 2.0])
    settings = {"crops": ["left", "center"], "draw_seed": 0,
                "draw_choice": {"auto": True, "candidates": 4, "heldout_videos": 6}}
    choice = choose_draw(real, candidates, settings, "v04")
    fvds = [c["fvd"] for c in choice["candidates"]]
    assert choice["chosen"] == int(np.argmin(fvds)) == 2 and choice["fvd"] == min(fvds)
    assert all(c["fvd"] == pytest.approx(np.mean(list(c["crops"].values()))) for c in choice["candidates"])
    again = choose_draw(real, candidates, settings, "v04")
    assert [c["fvd"] for c in again["candidates"]] == fvds and again["chosen"] == choice["chosen"]
    write_json(tmp_path / "v04.json", choice)
    assert read_draw_choice(tmp_path / "v04.json", 0)["chosen"] == 2
    with pytest.raises(PipelineError, match="chosen with fvd.draw_seed 0, the settings say 3"):
        read_draw_choice(tmp_path / "v04.json", 3)
    with pytest.raises(PipelineError, match=r"candidates.npz: embeddings of \[24\] videos a crop; .* asks for 30"):
        choose_draw(real, candidates, dict(settings, draw_choice={"candidates": 5, "heldout_videos": 6}), "v04")


# --- the chain on a synthetic city -------------------------------------------------------------

@pytest.fixture(scope="module")
def draw_city(tmp_path_factory):
    """A synthetic city with 2 test and 2 held-out val snippets, packed from its truth, and a
    tiny trained feature-encoder variant (v04) with its cluster bank."""
    from pipeline.data.synthetic import generate
    from pipeline.pack.writer import PackInputs, pack

    work = tmp_path_factory.mktemp("draw_city")
    city = work / "city"
    generate(city, {"train": {"synthberg": 2}, "val": {"testfurt": 4}}, seed=0, height=32, width=64,
             frames=12, annotated=5)
    subset_path = work / "subset.json"
    write_json(subset_path, select_subset(city, {"train_cities": None, "test_sequences": 2, "seed": 0,
                                                 "heldout_sequences": 2}, 12, 5))
    settings = {"pack": {"resolutions": [[16, 32], [32, 64]], "compression": "lz4", "chunk_frames": 1},
                "label_set": "train19_other"}
    paths = {"subset": subset_path}
    for split in ("train", "val", "heldout"):
        outputs = truth_as_stage_outputs(city, subset_path, work, split)
        paths[split] = work / "data" / f"{split}.h5"
        pack(subset_path, split, PackInputs.from_paths(city, outputs["semantic"], outputs["instance"],
                                                       outputs["flow"]), paths[split], settings)
    config = load_config([DEFAULT_CONFIG])
    config["train"]["crn"]["stages"] = [{"height": 16, "width": 32, "epochs": 1, "max_steps": 1},
                                        {"height": 32, "width": 64, "epochs": 1, "max_steps": 1}]
    config["train"]["model_overrides"] = {"generator": {"width_divisor": 64}, "discriminator": {"width_divisor": 16},
                                          "encoder": {"width_divisor": 4}}
    config["weights"]["allow_random"] = True
    paths["model"] = train_variant("v04", train_settings(config, "v04"), paths["train"], work / "v04",
                                   work / "resume", "cpu", progress=False)
    bank = feature_bank(paths["model"], paths["train"], clusters=3, seed=0)
    # Centres spread 100x: an almost untrained generator then shows each draw in its pixels.
    bank["bank"] = {cls: centres * 100 for cls, centres in bank["bank"].items()}
    torch.save(bank, work / "clusters.pt")
    paths["clusters"] = work / "clusters.pt"
    return paths


@pytest.fixture(scope="module")
def draw_settings():
    fvd = load_config([DEFAULT_CONFIG])["fvd"]
    return dict(fvd, height=16, width=32, frames=9, batch_size=2, batches=1, start_frame=2,
                draw_choice={"auto": True, "candidates": 3, "heldout_videos": 2})


CHOOSE = r"""
import json, sys
from pathlib import Path
from pipeline.fvd import draws, embed, i3d

work, settings = Path(sys.argv[1]), json.loads(sys.argv[2])
i3d.main(["--output", str(work / "i3d"), "--width-multiplier", "0.0625", "--seed", "0"])
module = embed.load_i3d(work / "i3d")
for name in ("real", "v04"):
    embed.embed_file(work / f"{name}.h5", work / "i3d", work / f"{name}.npz", settings, module)
draws.main(["--real", str(work / "real.npz"), "--candidates", str(work / "v04.npz"), "--variant", "v04",
            "--output", str(work / "draws.json"), "--settings", json.dumps(settings)])
print("torch" in sys.modules)
"""


@pytest.mark.slow
@pytest.mark.tf
def test_held_out_candidates_are_scored_and_the_test_videos_use_the_chosen_set(draw_city, draw_settings, tmp_path):
    subset = load_subset(draw_city["subset"])
    count, stream, record = candidate_videos(draw_city["model"], draw_city["heldout"], draw_settings,
                                             draw_city["clusters"])
    write_video_stream(tmp_path / "v04.h5", stream, count, lambda: record)
    candidates, written = read_videos(tmp_path / "v04.h5")
    assert candidates.shape == (6, 9, 16, 32, 3) and written["snippets"] == subset["heldout"]
    bank = torch.load(draw_city["clusters"], weights_only=False)["bank"]
    expected = choose_centres(bank, torch.Generator().manual_seed(draw_seed(0, 2, 0)))
    # fvd.feature_draw: run: a candidate is one draw, which both held-out videos use
    assert written["feature_draws"][2 * 2] == written["feature_draws"][2 * 2 + 1] == as_lists(expected)
    assert written["draw_seeding"]["slot"] == "0: one draw for every video"
    assert np.abs(candidates[0].astype(int) - candidates[2]).mean() > 1     # another draw, another video
    _, again, _ = candidate_videos(draw_city["model"], draw_city["heldout"], draw_settings, draw_city["clusters"])
    assert np.array_equal(np.stack(list(again)), candidates)         # deterministic for the seed

    real, real_record = real_videos(draw_city["heldout"], draw_settings, heldout=True)
    write_videos(tmp_path / "real.h5", real, real_record)
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run([sys.executable, "-c", CHOOSE, str(tmp_path), json.dumps(draw_settings)],
                            capture_output=True, text=True, env=env, cwd=REPO, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "False"        # TensorFlow without torch
    choice = json.loads((tmp_path / "draws.json").read_text())
    fvds = [c["fvd"] for c in choice["candidates"]]
    assert len(fvds) == 3 and choice["chosen"] == int(np.argmin(fvds)) and choice["fvd"] == min(fvds)
    assert choice["heldout_snippets"] == subset["heldout"] and choice["i3d"]["kind"] == "local_random"

    chosen = read_draw_choice(tmp_path / "draws.json", draw_settings["draw_seed"])
    videos, result = synthesize_videos(draw_city["model"], draw_city["val"], draw_settings, draw_city["clusters"],
                                       draw_choice=chosen)
    test_record = result["record"]
    assert test_record["snippets"] == subset["test"] and not set(subset["test"]) & set(subset["heldout"])
    assert test_record["draw_choice"]["chosen"] == choice["chosen"]
    assert test_record["draw_choice"]["file"] == str(tmp_path / "draws.json")
    for draw in test_record["feature_draws"]:                        # every test video: the chosen draw
        assert draw == written["feature_draws"][choice["chosen"] * 2]


def test_per_video_draws_make_a_candidate_a_set_of_draws(draw_city, draw_settings):
    """fvd.feature_draw: video: candidate c draws for each held-out video (slot j), and test
    video i uses slot i mod H of the chosen set."""
    settings = dict(draw_settings, feature_draw="video")
    _, stream, record = candidate_videos(draw_city["model"], draw_city["heldout"], settings, draw_city["clusters"])
    list(stream)
    bank = torch.load(draw_city["clusters"], weights_only=False)["bank"]
    expected = choose_centres(bank, torch.Generator().manual_seed(draw_seed(0, 2, 1)))
    assert record["feature_draws"][2 * 2 + 1] == as_lists(expected) != record["feature_draws"][2 * 2]
    chosen = {"variant": "v04", "chosen": 1, "heldout_videos": 2, "file": "draws.json", "fvd": 1.0}
    _, result = synthesize_videos(draw_city["model"], draw_city["val"], settings, draw_city["clusters"],
                                  draw_choice=chosen)
    for index, draw in enumerate(result["record"]["feature_draws"]):
        assert draw == record["feature_draws"][1 * 2 + index % 2]
    assert result["record"]["draw_seeding"]["slot"] == "video index mod 2"


def as_lists(draw: dict) -> dict:
    return {str(k): v.tolist() for k, v in draw.items()}


@pytest.mark.parametrize("scope", ["run", "video"])
def test_without_the_option_the_test_draws_are_candidate_zeros(draw_city, draw_settings, scope):
    _, result = synthesize_videos(draw_city["model"], draw_city["val"], dict(draw_settings, feature_draw=scope),
                                  draw_city["clusters"])
    bank = torch.load(draw_city["clusters"], weights_only=False)["bank"]
    draws = result["record"]["feature_draws"]
    for index, draw in enumerate(draws):
        slot = index if scope == "video" else 0
        assert draw == as_lists(choose_centres(bank, torch.Generator().manual_seed(draw_seed(draw_settings["draw_seed"], 0, slot))))
    assert (draws[0] == draws[1]) == (scope == "run")
    assert "draw_choice" not in result["record"] and "draw_seeding" not in result["record"]
    with pytest.raises(PipelineError, match="a draw choice for variant 'v08'; variant 'v04' is another"):
        synthesize_videos(draw_city["model"], draw_city["val"], draw_settings, draw_city["clusters"],
                          draw_choice={"variant": "v08", "chosen": 0, "heldout_videos": 2, "file": "x.json"})


# --- the graph ---------------------------------------------------------------------------------

DRAW_RULES = ("draw_candidates", "real_heldout_videos", "embed_heldout_real", "embed_draw_candidates",
              "choose_draw")


def dry_run_counts(root: Path, work: Path, auto: bool) -> dict[str, int]:
    weights = work / "weights"
    (weights / "i3d").mkdir(parents=True)
    for name in ("deeplab.pt", "model_final_af9cf5.pkl", "flownet2.ckpt", "vgg19-dcbb9e9d.pth",
                 "mobilenet_v2-b0353104.pth"):
        (weights / name).touch()
    override = {
        "data": {"cityscapes_root": str(root)},
        "subset": {"train_cities": None, "test_sequences": 16},
        "labels": {"semantic": {"checkpoint": str(weights / "deeplab.pt")},
                   "instance": {"checkpoint": str(weights / "model_final_af9cf5.pkl")}},
        "flow": {"checkpoint": str(weights / "flownet2.ckpt")},
        # Snakemake refuses a study whose backbones have no file (train jobs would fail queued).
        "weights": {"vgg19": str(weights / "vgg19-dcbb9e9d.pth"),
                    "mobilenet_v2": str(weights / "mobilenet_v2-b0353104.pth")},
        "fvd": {"i3d": str(weights / "i3d"), "batches": 1, "draw_choice": {"auto": auto, "heldout_videos": 8}},
    }
    (work / "override.yaml").write_text(yaml.safe_dump(override))
    run_snakemake("select_subset", "--cores", "1", "-d", str(work), "--configfile", "override.yaml", cwd=work)
    return job_counts(run_snakemake("-n", "-d", str(work), "--configfile", "override.yaml", cwd=work).stdout)


@pytest.mark.slow
def test_dry_run_has_the_draw_rules_for_feature_encoder_variants_only_when_on(val_tree, tmp_path):
    config = load_config([DEFAULT_CONFIG])
    features = sum(entry["feature_encoder"] for entry in config["variants"].values())
    on = dry_run_counts(val_tree, tmp_path / "on", auto=True)
    for rule in ("draw_candidates", "embed_draw_candidates", "choose_draw"):
        assert on[rule] == features == 10, rule
    assert on["real_heldout_videos"] == on["embed_heldout_real"] == 1
    assert on["pack"] == 3 and on["synthesize"] == 14             # train, val and heldout packs
    off = dry_run_counts(val_tree, tmp_path / "off", auto=False)
    assert not set(DRAW_RULES) & set(off) and off["pack"] == 2 and off["synthesize"] == 14
    same = set(off) - {"pack", "label_semantic", "label_instance", "reference_flow"}   # held-out cities add jobs
    assert {rule: on[rule] for rule in same} == {rule: off[rule] for rule in same}
