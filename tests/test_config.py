"""The config schema: the study validates, defaults are filled, bad keys and values are named."""

from __future__ import annotations

import copy
import re

import pytest
import yaml
from snakemake.utils import validate as snakemake_validate

from pipeline.config import (
    DEFAULT_CONFIG,
    I3D_MIN_FRAMES,
    REPO_ROOT,
    SCHEMA_PATH,
    backbone_file,
    check_consistency,
    command_line_values,
    i3d_module,
    key_sources,
    load_config,
    merge,
    validate,
)
from pipeline.errors import PipelineError

DEMO = REPO_ROOT / "config" / "demo.yaml"


@pytest.fixture(scope="module")
def study() -> dict:
    return load_config([DEFAULT_CONFIG])


def test_study_config_has_the_fourteen_variants_of_table_5_1(study):
    indices = sorted(entry["index"] for entry in study["variants"].values())
    assert indices == list(range(1, 15))
    networks = [study["variants"][f"v{i:02d}"]["network"] for i in range(1, 15)]
    assert networks == ["crn"] * 9 + ["pix2pixhd"] * 5
    assert study["subset"]["train_cities"] == ["aachen", "bremen", "hanover", "zurich"]
    fvd = study["fvd"]
    assert (len(fvd["crops"]), fvd["frames"], fvd["batch_size"], fvd["batches"], fvd["warmup_frames"]) == (3, 16, 16, 8, 2)


def test_defaults_are_filled_in(study):
    raw = yaml.safe_load(DEFAULT_CONFIG.read_text())
    del raw["pack"]["chunk_frames"]
    del raw["labels"]["semantic"]["fit"]
    config = validate(raw)
    assert config["pack"]["chunk_frames"] == 1
    assert config["labels"]["semantic"]["fit"]["epochs"] == 200   # nested default filled too


@pytest.mark.parametrize(
    "path, value, named",
    [
        (("data", "sourc"), "synthetic", "config key data: Additional properties"),
        (("variants", "v03", "norm"), "batch", "config key variants.v03.norm"),
        (("fvd", "batches"), 0, "config key fvd.batches"),
        (("labels", "semantic", "input_height"), 100, "config key labels.semantic.input_height"),
        (("flow", "backend"), "raft", "config key flow.backend"),
    ],
)
def test_bad_key_or_value_is_named(study, path, value, named):
    config = copy.deepcopy(study)
    node = config
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(PipelineError, match=named.replace(".", r"\.")):
        validate(config)


def test_contradictory_variant_is_named(study, tmp_path):
    config = copy.deepcopy(study)
    config["variants"]["mine"] = dict(config["variants"]["v02"], flow=True, index=15)
    with pytest.raises(PipelineError, match=r"variant 'mine'.*flow = true needs prior frames, but prior = null"):
        validate(config)
    config["variants"]["mine"] = dict(config["variants"]["v06"], output_images=3, index=15)
    with pytest.raises(PipelineError, match=r"variant 'mine'.*output_images = 3 with discriminator = 1: "
                                            "discriminators need one image"):
        validate(config)
    # Each key is named with the file that set it.
    (tmp_path / "mine.yaml").write_text("variants:\n  v15: {index: 15, network: crn, output_images: 1, norm: weight, "
                                        "perceptual: vgg19, edge: false, feature_encoder: false, residual: false, "
                                        "discriminator: 0, prior: null, twin: false, flow: true}\n")
    with pytest.raises(PipelineError, match=re.escape(f"flow = true ({tmp_path / 'mine.yaml'}) needs prior frames, "
                                                      f"but prior = null ({tmp_path / 'mine.yaml'})")):
        load_config([DEFAULT_CONFIG, tmp_path / "mine.yaml"])


@pytest.mark.parametrize(
    "base, change, named",
    [
        # What the second CRN stage would refuse after the first had trained (days of jobs).
        ("v09", {"output_images_stage2": 3}, "output_images_stage2 = 3 with twin = true: a twin network "
                                             "synthesises one image"),
        ("v06", {"output_images_stage2": 3}, "output_images_stage2 = 3 with discriminator = 1"),
        # Nothing to train the image with: the first step would call backward on 0.
        ("v03", {"perceptual": None}, "perceptual = null and discriminator = 0: no loss trains the image"),
        # pix2pixHD has its residual blocks and one stage whatever the entry says.
        ("v11", {"residual": False}, "residual = false: pix2pixhd's residual blocks are built in"),
        ("v11", {"output_images_stage2": 1}, "output_images_stage2 = 1: pix2pixhd synthesises one image in its "
                                             "one stage"),
    ],
    ids=["twin-stage2-images", "discriminator-stage2-images", "no-loss", "pix2pixhd-residual",
         "pix2pixhd-stage2-images"],
)
def test_an_entry_that_would_fail_in_training_is_refused(study, base, change, named):
    config = copy.deepcopy(study)
    config["variants"]["mine"] = dict(config["variants"][base], index=15, **change)
    with pytest.raises(PipelineError, match=re.escape(named)):
        validate(config)


def test_training_stages_are_what_the_loop_can_grow(study):
    """pix2pixHD cannot grow; a CRN stage adds a module, doubling the size."""
    sizes = {"pack": {"resolutions": [[16, 32], [64, 128], [256, 512], [512, 1024]]}}
    crn = [{"height": 16, "width": 32, "epochs": 1}, {"height": 64, "width": 128, "epochs": 1}]
    with pytest.raises(PipelineError, match=re.escape("train.crn.stages[1] = 64x128 after 16x32: each CRN stage "
                                                      "adds a refinement module, which doubles the size (here 32x64")):
        validate(merge(study, dict(sizes, train={"crn": {"stages": crn}})))
    twice = [{"height": 512, "width": 1024, "epochs": 1}] * 2
    with pytest.raises(PipelineError, match=r"train.pix2pixhd.stages has 2 stages, but pix2pixHD \(v10, .*\) "
                                            "trains in one"):
        validate(merge(study, {"train": {"pix2pixhd": {"stages": twice}}}))
    # Without pix2pixHD variants its stages are not read.
    crn_only = {name: entry for name, entry in study["variants"].items() if entry["network"] == "crn"}
    validate(dict(merge(study, {"train": {"pix2pixhd": {"stages": twice}}}), variants=crn_only))


def test_a_whole_float_is_not_an_integer(study):
    config = copy.deepcopy(study)
    config["variants"]["v03"]["output_images"] = 1.0
    with pytest.raises(PipelineError, match=r"variants.v03.output_images: 1.0 is not of type 'integer'"):
        validate(config)


def test_a_key_twice_in_a_config_file_is_refused(tmp_path):
    """YAML keeps the last of two equal keys: a copied v14 line left unrenamed would silently
    replace the thesis's v14."""
    text = DEFAULT_CONFIG.read_text()
    row = next(line for line in text.splitlines() if line.startswith("  v14:"))
    (tmp_path / "config.yaml").write_text(text.replace(row, row.replace("index: 14", "index: 15") + "\n" + row))
    with pytest.raises(PipelineError, match=r"config.yaml: not valid YAML: key 'v14' appears twice in one mapping "
                                            r"\(first on line \d+\)"):
        load_config([tmp_path / "config.yaml"])


def test_a_twin_crn_without_resnext_modules_is_rejected(study):
    """The thesis code builds plain twin modules differently (complex_input_mode: summed entries,
    a conv of the previous features, rm_block_3); only its ResNeXt twin (v09) is ported."""
    config = copy.deepcopy(study)
    config["variants"]["mine"] = dict(config["variants"]["v09"], residual=False, index=15)
    with pytest.raises(PipelineError, match="variant 'mine'.*twin CRN needs ResNeXt modules "
                                            r"\(residual: true\).*plain-module twin path.*not ported"):
        validate(config)
    # The ResNeXt twin and a twin pix2pixHD stay valid.
    config["variants"]["mine"] = dict(config["variants"]["v09"], index=15)
    validate(config)
    config["variants"]["mine"] = dict(config["variants"]["v14"], index=15)
    validate(config)


def test_a_fifteenth_variant_is_just_an_entry(study):
    config = copy.deepcopy(study)
    config["variants"]["v15"] = dict(config["variants"]["v08"], index=15, perceptual="vgg19")
    assert validate(config)["variants"]["v15"]["perceptual"] == "vgg19"


def test_demo_overrides_only_keys_the_study_has(study):
    demo = yaml.safe_load(DEMO.read_text())

    def leaves(node, prefix=()):
        for key, value in node.items():
            if isinstance(value, dict) and key not in ("cities", "variants"):
                yield from leaves(value, prefix + (key,))
            else:
                yield prefix + (key,)

    merged = load_config([DEFAULT_CONFIG, DEMO])
    assert merged["data"]["source"] == "synthetic"
    assert merged["variants"] == study["variants"] or "variants" in demo
    # Every demo key is one the study has (with the schema's defaults), except the network
    # shrinking of train.model_overrides, which the study leaves empty on purpose.
    unknown = []
    for path in leaves(demo):
        node = study
        for key in path:
            if not isinstance(node, dict) or key not in node:
                unknown.append(".".join(path))
                break
            node = node[key]
    assert [path for path in unknown if not path.startswith("train.model_overrides.")] == []


def test_snakemake_validate_accepts_the_same_schema(study):
    config = copy.deepcopy(study)
    snakemake_validate(config, str(SCHEMA_PATH))


def test_merge_recurses_into_mappings_only():
    merged = merge({"a": {"b": 1, "c": [1, 2]}, "d": 1}, {"a": {"c": [3]}, "e": 2})
    assert merged == {"a": {"b": 1, "c": [3]}, "d": 1, "e": 2}


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(PipelineError, match="config file not found"):
        load_config([tmp_path / "nope.yaml"])


# --- consistency across sections ------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_raw() -> dict:
    """config.yaml with demo.yaml merged over it, before validation (changes merge over it)."""
    return merge(yaml.safe_load(DEFAULT_CONFIG.read_text()), yaml.safe_load(DEMO.read_text()))


def test_the_study_and_the_demo_are_consistent(study):
    check_consistency(study)
    check_consistency(load_config([DEFAULT_CONFIG, DEMO]))
    # The study with its cluster paths set, as on Lengau: the real I3D and 16 frames.
    check_consistency(merge(study, {"fvd": {"i3d": "/models/i3d"}}))


# Each rule: a change to the demo that breaks it (and only it), and what the message names.
RULES = [
    ("annotated-frame", {"data": {"annotated_frame": 12}},
     r"data\.annotated_frame = 12 is not a frame of a snippet of data\.frames_per_snippet = 12"),
    ("video-past-snippet", {"fvd": {"start_frame": 3}},
     r"fvd\.start_frame = 3 \+ fvd\.frames = 10 = frame 13, past the end of a snippet of "
     r"data\.frames_per_snippet = 12"),
    ("warmup-before-start", {"fvd": {"warmup_frames": 3}},
     r"fvd\.warmup_frames = 3 > fvd\.start_frame = 2: the prior-frame variants \(v07, v08, v09, v12, v13, v14\)"),
    ("window-past-snippet", {"train": {"window": 12}},
     r"train\.window = 12 \(\+1 for the flow variants v09, v14\) = 13 frames, more than a snippet of "
     r"data\.frames_per_snippet = 12: the prior-frame variants \(v09, v14\)"),
    ("videos-past-test-snippets", {"fvd": {"batches": 3}},
     r"fvd\.batches = 3 x fvd\.batch_size = 4 = 12 test videos, more than subset\.test_sequences = 8"),
    ("synthetic-test-split", {"subset": {"test_sequences": 12}, "fvd": {"batches": 3}},
     r"subset\.test_sequences = 12 snippets of split 'val' .*data\.synthetic\.cities\.val has 8 "
     r"\(lindwurm 4, testfurt 4\) with data\.source = synthetic"),
    ("synthetic-heldout", {"fvd": {"draw_choice": {"auto": True}}},
     r"subset\.test_sequences = 8 \+ fvd\.draw_choice\.heldout_videos = 4 held-out snippets "
     r"\(fvd\.draw_choice\.auto = true\) = 12 snippets of split 'val'"),
    ("synthetic-train-cities", {"subset": {"train_cities": ["pixelstadt", "atlantis"]}},
     r"subset\.train_cities = \['pixelstadt', 'atlantis'\] names atlantis, not a city of "
     r"data\.synthetic\.cities\.train"),
    ("synthetic-frame-size", {"data": {"frame_height": 8}},
     r"data\.frame_height = 8 x data\.frame_width = 256: the synthetic city is drawn at 16x16 at least"),
    ("stage-not-packed", {"train": {"crn": {"stages": [{"height": 32, "width": 64, "epochs": 1}]}}},
     r"train\.crn\.stages\[0\] = 32x64 is not a size pack\.resolutions = \[64x128, 128x256\] packs: training v01"),
    ("fvd-size-not-packed", {"fvd": {"height": 32, "width": 64}},
     r"fvd\.height = 32 x fvd\.width = 64 is not a size pack\.resolutions = \[64x128, 128x256\] packs"),
    ("fvd-crops", {"pack": {"resolutions": [[64, 128], [128, 256], [128, 64]]}, "fvd": {"height": 128, "width": 64}},
     r"fvd\.width = 64 < fvd\.height = 128: FVD scores square crops"),
    ("cityscapes-snippets", {"data": {"source": "cityscapes", "frames_per_snippet": 20, "annotated_frame": 19},
                             "subset": {"train_cities": ["aachen"]}},
     r"data\.frames_per_snippet = 20 and data\.annotated_frame = 19 with data\.source = cityscapes: Cityscapes "
     r"snippets are 30 frames with the gtFine frame at index 19"),
    ("real-i3d-frames", {"fvd": {"i3d": "/models/i3d", "frames": 8}},
     r"fvd\.frames = 8 with the real I3D \(fvd\.i3d = /models/i3d\): the I3D embedding needs at least 9 frames"),
    ("comparison-index", {"fvd": {"comparisons": [[3, 16], [2, 3]]}},
     r"fvd\.comparisons = \[\[3, 16\], \[2, 3\]\] names 16, not the index of a variant \(the variants' "
     r"indices: 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14\): each pair is two variants\.<name>\.index values"),
]


@pytest.mark.parametrize("change, named", [rule[1:] for rule in RULES], ids=[rule[0] for rule in RULES])
def test_each_consistency_rule_rejects_a_config_that_breaks_it(demo_raw, change, named):
    with pytest.raises(PipelineError, match="inconsistent config") as caught:
        validate(merge(demo_raw, change))
    message = str(caught.value)
    assert re.search(named, message), message
    assert message.count("\n  - ") == 1, message          # this rule alone


@pytest.mark.parametrize(
    "change",
    [
        {"train": {"window": 11}},                                  # 11 + 1 = 12 frames for the flow variants
        {"pack": {"resolutions": [[64, 128], [128, 256], [256, 512]]}},     # a size nothing reads
        {"data": {"synthetic": {"cities": {"val": {"heldorf": 4}}}}, "fvd": {"draw_choice": {"auto": True}}},
        {"fvd": {"start_frame": 0, "frames": 12, "warmup_frames": 0}},
        {"fvd": {"comparisons": [[1, 14]]}},
    ],
    ids=["window-fills-snippet", "extra-size", "heldout-city", "whole-snippet", "comparison"],
)
def test_consistent_changes_pass(demo_raw, change):
    validate(merge(demo_raw, change))


def test_rules_apply_only_where_a_stage_reads_the_keys(demo_raw):
    # Without prior-frame variants neither the warm-up nor the training window is read ...
    config = copy.deepcopy(demo_raw)
    config["variants"] = {name: entry for name, entry in config["variants"].items() if not entry["prior"]}
    validate(merge(config, {"fvd": {"warmup_frames": 5}, "train": {"window": 20}}))
    # ... nor, without a pix2pixHD variant, its schedule.
    config["variants"] = {name: entry for name, entry in config["variants"].items() if entry["network"] == "crn"}
    validate(merge(config, {"train": {"pix2pixhd": {"stages": [{"height": 99, "width": 99, "epochs": 1}]}}}))
    # Cityscapes: the snippets on disk are not in the config, so the counts are not checked here.
    cityscapes = {"source": "cityscapes", "frames_per_snippet": 30, "annotated_frame": 19}
    validate(merge(demo_raw, {"data": cityscapes, "subset": {"train_cities": ["aachen"]}}))


def test_a_consistency_error_names_the_file_of_each_key(tmp_path):
    override = tmp_path / "mine.yaml"
    override.write_text(yaml.safe_dump({"fvd": {"frames": 11}}))
    with pytest.raises(PipelineError) as caught:
        load_config([DEFAULT_CONFIG, DEMO, override])
    message = str(caught.value)
    assert f"fvd.start_frame = 2 ({DEFAULT_CONFIG})" in message
    assert f"fvd.frames = 11 ({override})" in message
    assert f"data.frames_per_snippet = 12 ({DEMO})" in message
    # A key no file sets is the schema's default; Snakemake's merge does not tell the files.
    config = merge(yaml.safe_load(DEFAULT_CONFIG.read_text()), {"fvd": {"start_frame": 20}})
    del config["fvd"]["frames"]
    with pytest.raises(PipelineError, match=r"fvd\.start_frame = 20 \+ fvd\.frames = 16 = frame 36"):
        validate(config)
    with pytest.raises(PipelineError, match=r"fvd\.frames = 16 \(default\)"):
        validate(config, {("fvd", "start_frame"): "mine.yaml"})


def test_a_plan_that_embeds_videos_too_short_for_the_i3d_stops(tmp_path):
    """fvd.frames below 9 passes validation (tests run the graph without embedding) but stops the
    embed rules' input function, with the local random I3D too, naming the key and its file."""
    study_raw = yaml.safe_load(DEFAULT_CONFIG.read_text())
    mine = {"fvd": {"frames": 8, "local_i3d_width": 0.25}}
    sources = key_sources([(str(DEFAULT_CONFIG), study_raw), (str(tmp_path / "mine.yaml"), mine)])
    config = validate(merge(study_raw, mine), sources)
    with pytest.raises(PipelineError, match=re.escape(f"fvd.frames = 8 ({tmp_path / 'mine.yaml'}): embedding the "
                                                      "test videos needs at least 9 frames")):
        i3d_module(config, sources)
    assert i3d_module(merge(config, {"fvd": {"frames": 9}}), sources) is None      # the local I3D's


def test_i3d_min_frames_is_the_embed_stages():
    embed = (REPO_ROOT / "pipeline" / "fvd" / "embed.py").read_text()     # imports TensorFlow: read it
    assert re.search(r"^MIN_FRAMES = (\d+)$", embed, re.M)[1] == str(I3D_MIN_FRAMES)


# --- what only the workflow needs, YAML's booleans, variant indices and names ------------------------


def test_a_backbone_without_its_file_is_refused_for_the_train_jobs_that_need_it(tmp_path):
    """backbone_file (the train rule's input function): a variant's perceptual backbone without its
    file, and allow_random false, is refused naming the key, the files that set it and the
    variants of that backbone, instead of each train job failing after queueing for a GPU."""
    study_raw = yaml.safe_load(DEFAULT_CONFIG.read_text())
    mobilenet = tmp_path / "mobilenet_v2-b0353104.pth"
    mobilenet.touch()
    mine = {"weights": {"mobilenet_v2": str(mobilenet)}}
    sources = key_sources([(str(DEFAULT_CONFIG), study_raw), (str(tmp_path / "mine.yaml"), mine)])
    config = validate(merge(study_raw, mine), sources)     # the config itself is valid: other targets plan
    with pytest.raises(PipelineError) as caught:
        backbone_file(config, "v02", sources)
    assert (f"weights.vgg19 = null ({DEFAULT_CONFIG}) names no file, but variants v01, v02 use the vgg19 "
            f"perceptual backbone and weights.allow_random = false ({DEFAULT_CONFIG})") in str(caught.value)
    assert backbone_file(config, "v03", sources) == str(mobilenet)
    assert backbone_file(config, "v10", sources) is None                     # no perceptual loss
    assert backbone_file(merge(config, {"weights": {"allow_random": True}}), "v02") is None


@pytest.mark.parametrize("text, amp, compile_", [
    ("amp: on\n  compile: off", "bf16", "off"),
    ("amp: off\n  compile: on", "off", "on"),
    ("amp: false\n  compile: true", "off", "on"),
    ("amp: auto\n  compile: auto", "auto", "auto"),
])
def test_bare_on_and_off_are_read_as_the_enum_values(tmp_path, text, amp, compile_):
    """YAML 1.1 reads a bare on/off as true/false: train.amp and train.compile take them as the
    strings they stand for, so the stages still see strings."""
    override = tmp_path / "mine.yaml"
    override.write_text(f"train:\n  {text}\n")
    config = load_config([DEFAULT_CONFIG, override])
    assert (config["train"]["amp"], config["train"]["compile"]) == (amp, compile_)
    snakemake_validate(copy.deepcopy(config), str(SCHEMA_PATH))      # what common.smk checks next


def test_other_values_of_amp_and_compile_are_still_refused(study):
    for key, value in (("compile", "maybe"), ("amp", "fp16"), ("compile", 1)):
        config = merge(study, {"train": {key: value}})
        with pytest.raises(PipelineError, match=rf"config key train\.{key}"):
            validate(config)


def test_a_duplicate_variant_index_names_both_variants(tmp_path):
    """fvd.comparisons and the FVD table pick variants by index: two with one index are refused."""
    study_raw = yaml.safe_load(DEFAULT_CONFIG.read_text())
    override = tmp_path / "mine.yaml"
    override.write_text(yaml.safe_dump({"variants": {"v15": dict(study_raw["variants"]["v08"], index=2)}}))
    with pytest.raises(PipelineError, match="inconsistent config") as caught:
        load_config([DEFAULT_CONFIG, override])
    message = str(caught.value)
    assert (f"variants.v02.index = 2 ({DEFAULT_CONFIG}) and variants.v15.index = 2 ({override}): variants "
            "v02, v15 share index 2") in message, message
    assert message.count("\n  - ") == 1, message
    validate(merge(study_raw, {"variants": {"v15": dict(study_raw["variants"]["v08"], index=15)}}))


@pytest.mark.parametrize("name, clash", [("real", "results/videos/real.h5"),
                                         ("heldout", "results/videos/heldout/")])
def test_variant_names_of_outputs_are_reserved(study, name, clash):
    """A variant named real or heldout would share output files or folders with the real and the
    held-out videos (an AmbiguousRuleException in Snakemake): a config error naming it instead."""
    config = copy.deepcopy(study)
    config["variants"][name] = dict(config["variants"]["v02"], index=15)
    with pytest.raises(PipelineError, match=rf"variant '{name}' in config: the name '{name}' is reserved") as caught:
        validate(config)
    assert clash in str(caught.value)
    config["variants"][f"{name}2"] = config["variants"].pop(name)
    validate(config)


def test_a_schema_error_names_the_file_that_set_the_key(tmp_path):
    override = tmp_path / "mine.yaml"
    override.write_text(yaml.safe_dump({"fvd": {"frames": 1}, "data": {"sourc": "synthetic"}}))
    with pytest.raises(PipelineError, match="invalid config") as caught:
        load_config([DEFAULT_CONFIG, override])
    message = str(caught.value)
    assert f"config key fvd.frames ({override}): 1 is less than the minimum of 2" in message, message
    assert f"config key data (data.sourc in {override}): Additional properties" in message, message
    # Without the files (a merged mapping), as before.
    with pytest.raises(PipelineError, match=r"config key fvd\.frames: 1 is less"):
        validate(merge(yaml.safe_load(DEFAULT_CONFIG.read_text()), {"fvd": {"frames": 1}}))


def test_a_backbone_file_named_but_missing_is_refused(tmp_path):
    """weights.<backbone> naming a path that is not a file stops planning the train jobs that load
    it, naming the key, its file and the variants (with allow_random too: the path would be read)."""
    study_raw = yaml.safe_load(DEFAULT_CONFIG.read_text())
    mine = {"weights": {"vgg19": "/nonexistent.pth", "allow_random": True}}
    sources = key_sources([(str(DEFAULT_CONFIG), study_raw), (str(tmp_path / "mine.yaml"), mine)])
    config = validate(merge(study_raw, mine), sources)
    with pytest.raises(PipelineError) as caught:
        backbone_file(config, "v01", sources)
    assert (f"weights.vgg19 = /nonexistent.pth ({tmp_path / 'mine.yaml'}) is not a file, but variants v01, v02 "
            "use the vgg19 perceptual backbone: set weights.vgg19 to the path of torchvision's file") \
        in str(caught.value), caught.value
    assert backbone_file(config, "v03", sources) is None                     # mobilenet_v2: random weights
    (tmp_path / "vgg19.pth").touch()
    assert backbone_file(merge(config, {"weights": {"vgg19": str(tmp_path / "vgg19.pth")}}), "v01") \
        == str(tmp_path / "vgg19.pth")


def test_a_bare_number_variant_name_is_refused_naming_its_file(tmp_path):
    """YAML reads `15:` as a number: named as a config error, not a TypeError sorting the names."""
    study_raw = yaml.safe_load(DEFAULT_CONFIG.read_text())
    override = tmp_path / "mine.yaml"
    override.write_text(yaml.safe_dump({"variants": {15: dict(study_raw["variants"]["v08"], index=15)}}))
    with pytest.raises(PipelineError) as caught:
        load_config([DEFAULT_CONFIG, override])
    assert (f"variant name 15 ({override}): write it as a string such as v15 (YAML reads 15 as a number)"
            in str(caught.value)), caught.value


def test_an_error_in_a_list_names_the_file_that_set_the_list(tmp_path):
    """Lists are set whole: an item's error names the file of the nearest key (the list)."""
    override = tmp_path / "mine.yaml"
    override.write_text(yaml.safe_dump({"fvd": {"crops": ["left", "centre"]},
                                        "pack": {"resolutions": [[64, 128], [128, 0]]},
                                        "train": {"crn": {"stages": [{"height": 64, "width": 128}]}}}))
    with pytest.raises(PipelineError, match="invalid config") as caught:
        load_config([DEFAULT_CONFIG, override])
    message = str(caught.value)
    for key in ("fvd.crops.1", "pack.resolutions.1.1", "train.crn.stages.0"):
        assert f"config key {key} ({override}): " in message, message
    assert "(default)" not in message, message


def test_command_line_values_are_read_as_a_config_file_reads_them():
    """Snakemake hands nested --config values over as strings (YAML's BaseLoader): numbers,
    booleans and nulls are read again; other strings, keys and the structure stay."""
    given = {"train": {"retries": "7", "lr": "2.0e-4", "amp": "off"}, "weights": {"allow_random": "true"},
             "fvd": {"comparisons": [["3", "16"]], "i3d": "null", "bootstrap": 500, "crops": ["left"]},
             "data": {"cityscapes_root": "/data/run #2", "day": "2024-01-01"}, "labels": {"x": ""}}
    assert command_line_values(given) == {
        "train": {"retries": 7, "lr": 2.0e-4, "amp": False}, "weights": {"allow_random": True},
        "fvd": {"comparisons": [[3, 16]], "i3d": None, "bootstrap": 500, "crops": ["left"]},
        "data": {"cityscapes_root": "/data/run #2", "day": "2024-01-01"}, "labels": {"x": None}}
    assert given["train"]["retries"] == "7"                                   # a copy
