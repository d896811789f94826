"""The config schema's one home: load, merge, validate (defaults filled in) and check consistency.

config.yaml is the study; override files (config/demo.yaml) are merged over it key by key, the
way Snakemake merges ``--configfile``s. Validation uses ``workflow/schemas/config.schema.yaml``
(the same file ``common.smk`` gives ``snakemake.utils.validate``); errors name the key. After the
schema, :func:`check_variant` rejects contradictory variants and :func:`check_consistency` what
one section requires of another (the test videos fit in a snippet, every size read is packed, ...).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, MutableMapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from pipeline.errors import PipelineError

__all__ = ["SCHEMA_PATH", "I3D_MIN_FRAMES", "RESERVED_VARIANT_NAMES", "BOOLEAN_CHOICES", "load_config",
           "read_config_file", "key_sources", "command_line_values", "merge", "validate", "check_variant",
           "check_consistency", "check_section_values", "variant_entry", "backbone_file", "instance_checkpoint",
           "i3d_module", "section"]

REPO_ROOT = Path(__file__).resolve().parents[1]
SCHEMA_PATH = REPO_ROOT / "workflow" / "schemas" / "config.schema.yaml"
DEFAULT_CONFIG = REPO_ROOT / "config.yaml"
# Frames a video needs for the I3D embedding: time is halved three times, then pooled over 2
# frames VALID (pipeline.fvd.embed.MIN_FRAMES, which imports TensorFlow, hence written again here;
# tests/test_config.py reads it there and compares).
I3D_MIN_FRAMES = 9
# The synthetic city's smallest frame side (pipeline.data.synthetic checks it when drawing).
SYNTHETIC_MIN_SIZE = 16
# Names a variant cannot have: its outputs (results/videos/{variant}.h5, results/fvd/embeddings/
# {variant}.npz, logs/embed/{variant}.log) would be those of the real test videos, or clash with the
# folders of fvd.draw_choice's held-out videos and embeddings (the held-out split's name).
RESERVED_VARIANT_NAMES = {
    "real": "results/videos/real.h5 and results/fvd/embeddings/real.npz hold the real test videos "
            "and their embeddings",
    "heldout": "results/videos/heldout/ and results/fvd/embeddings/heldout/ hold fvd.draw_choice's "
               "held-out videos and embeddings (heldout is the held-out split's name)",
}
# Enum keys whose values YAML 1.1 reads as booleans when left bare (`compile: off` is False,
# `amp: on` is True): the boolean stands for this value, so downstream code sees the strings.
BOOLEAN_CHOICES: dict[tuple[str, ...], dict[bool, str]] = {
    ("train", "amp"): {True: "bf16", False: "off"},
    ("train", "compile"): {True: "on", False: "off"},
}


def merge(base: Mapping, override: Mapping) -> dict:
    """Deep-merge ``override`` into a copy of ``base`` (mappings recurse, everything else replaces)."""
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def load_config(paths: Iterable[str | Path] = (DEFAULT_CONFIG,)) -> dict:
    """Read, merge in order, validate and check the given YAML files (an error names the file
    that set each key it names)."""
    config: dict = {}
    layers = []
    for path in paths:
        loaded = read_config_file(path)
        config = merge(config, loaded)
        layers.append((str(path), loaded))
    return validate(config, key_sources(layers))


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key twice in one mapping: YAML keeps the last silently, so a
    copied ``v14:`` line left unrenamed would replace the thesis's v14 with the new entry."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice in one mapping (first on line {seen[key] + 1}); "
                    "YAML would keep only the last", key_node.start_mark)
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep)


def read_config_file(path: str | Path) -> dict:
    """One config file's mapping (empty for an empty file); a missing or malformed file is named."""
    path = Path(path)
    if not path.is_file():
        raise PipelineError("config file not found", path)
    try:
        loaded = yaml.load(path.read_text(), Loader=_UniqueKeyLoader) or {}
    except yaml.YAMLError as err:
        raise PipelineError(f"not valid YAML: {err}", path) from err
    if not isinstance(loaded, Mapping):
        raise PipelineError("a config file must hold a mapping of sections", path)
    return loaded


def key_sources(layers: Iterable[tuple[str, Mapping]]) -> dict[tuple[str, ...], str]:
    """Key path -> the source that set it, for ``layers`` of (name, mapping) merged in order (a
    later one wins): what :func:`validate` names in its messages. ``load_config`` passes its files;
    common.smk Snakemake's (the Snakefile's configfile, each --configfile, then --config)."""
    sources: dict[tuple[str, ...], str] = {}
    for name, mapping in layers:
        sources.update(_key_paths(mapping, name))
    return sources


def command_line_values(node: Any) -> Any:
    """Snakemake's ``--config`` values as a config file would give them: Snakemake reads a nested
    value (``train={retries: 7}``) as YAML of strings only, so each string leaf that YAML reads as a
    number, a boolean or null becomes that (``'7'`` 7, ``'true'`` True, ``'null'`` None); other
    strings stay as they are. Returns a copy. (Quoting is gone by then: ``{seed: '7'}`` is 7 too.)"""
    if isinstance(node, Mapping):
        return {key: command_line_values(value) for key, value in node.items()}
    if isinstance(node, list):
        return [command_line_values(value) for value in node]
    if isinstance(node, str):
        try:
            value = yaml.safe_load(node)
        except yaml.YAMLError:
            return node
        if value is None or isinstance(value, (bool, int, float)):
            return value
    return node


def _key_paths(node: Mapping, source: str, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], str]:
    """Every key path of a loaded file (mappings walked into) -> the file: merged in order, the
    last file holding a path is the one whose value the merged config has there."""
    paths = {}
    for key, value in node.items():
        paths[prefix + (str(key),)] = source
        if isinstance(value, Mapping):
            paths.update(_key_paths(value, source, prefix + (str(key),)))
    return paths


def _schema() -> dict:
    return yaml.safe_load(SCHEMA_PATH.read_text())


_NO_DEFAULT = object()


def _default_of(subschema: Mapping, root: Mapping):
    """A property's default: its own, else that of the local definition it refers to
    (``seed: {$ref: "#/definitions/seed"}`` takes the seed definition's 0)."""
    if "default" in subschema:
        return subschema["default"]
    reference = subschema.get("$ref", "")
    if reference.startswith("#/definitions/"):
        return root["definitions"][reference.rsplit("/", 1)[1]].get("default", _NO_DEFAULT)
    return _NO_DEFAULT


def _with_defaults(validator_class, root: Mapping):
    """A validator for the schema ``root`` that fills ``default`` values in, recursing into
    defaults it just filled, and takes only ints as integers."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                default = _default_of(subschema, root)
                if default is not _NO_DEFAULT and name not in instance:
                    instance[name] = copy.deepcopy(default)
        yield from validate_properties(validator, properties, instance, schema)

    # Strict integers: JSON Schema counts 1.0 as an integer, which passes here and breaks where a
    # stage sizes a tensor or a range by it.
    strict = validator_class.TYPE_CHECKER.redefine(
        "integer", lambda checker, value: isinstance(value, int) and not isinstance(value, bool))
    return jsonschema.validators.extend(validator_class, {"properties": set_defaults}, type_checker=strict)


def validate(config: Mapping, sources: Mapping[tuple[str, ...], str] | None = None) -> dict:
    """Validate a merged config against the schema, fill defaults, check variants and the
    consistency of its sections (:func:`check_consistency`); return it. A bare YAML ``on``/``off``
    (a boolean) of a key in ``BOOLEAN_CHOICES`` becomes its string first. ``sources``: key path ->
    the file that set it, for the messages (:func:`key_sources`)."""
    config = copy.deepcopy(dict(config))
    _refuse_non_string_variant_names(config, sources)
    _booleans_as_choices(config)
    schema = _schema()
    validator = _with_defaults(jsonschema.Draft202012Validator, schema)(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        raise PipelineError("invalid config:\n" + "\n".join(_describe(err, sources) for err in errors))
    for name, entry in config["variants"].items():
        check_variant(name, entry, sources)
    check_consistency(config, sources)
    return config


def check_section_values(values: Mapping[str, Any], section: str, what: str) -> dict:
    """``values``, keys of the config's ``section`` that reach a stage apart from its settings
    (training's ``--runtime``), checked as a config's: a bare boolean of a ``BOOLEAN_CHOICES`` key
    becomes its string, and each value must match the schema's definition of its key. Returns them;
    an error names ``what`` and each bad key."""
    checked = {section: copy.deepcopy(dict(values))}
    _booleans_as_choices(checked)
    schema = _schema()
    known = schema["properties"][section]["properties"]
    only = {**schema, "required": [], "properties": {section: {
        "type": "object", "properties": {key: known[key] for key in values if key in known}}}}
    validator = _with_defaults(jsonschema.Draft202012Validator, only)(only)
    errors = sorted(validator.iter_errors(checked), key=lambda e: list(e.absolute_path))
    if errors:
        raise PipelineError(f"{what}: " + "; ".join(_describe(error, None).strip() for error in errors))
    return checked[section]


def _refuse_non_string_variant_names(config: Mapping, sources: Mapping[tuple[str, ...], str] | None) -> None:
    """A variant name YAML read as something other than a string (``15:`` is a number) is refused:
    names are output paths and sort together."""
    variants = config.get("variants")
    if not isinstance(variants, Mapping):
        return                                  # the schema names it
    bad = [name for name in variants if not isinstance(name, str)]
    if bad:
        raise PipelineError("invalid config: " + "; ".join(
            f"variant name {name}{_set_by(sources, ('variants', str(name)))}: write it as a string such as "
            f"v{name} (YAML reads {name} as a {'boolean' if isinstance(name, bool) else 'number'})"
            for name in bad))


def _booleans_as_choices(config: dict) -> None:
    """Replace, in place, a boolean at a ``BOOLEAN_CHOICES`` key by the enum value it stands for."""
    for path, choices in BOOLEAN_CHOICES.items():
        node: Any = config
        for key in path[:-1]:
            node = node.get(key) if isinstance(node, Mapping) else None
        if isinstance(node, MutableMapping) and isinstance(node.get(path[-1]), bool):
            node[path[-1]] = choices[node[path[-1]]]


def _source_of(sources: Mapping[tuple[str, ...], str], path: tuple) -> str:
    """The source that set the key at ``path``, ``default`` where none did. An item of a list (an
    int in ``path``, as in jsonschema's paths) was set with the list: the list's source."""
    cut = next((at for at, part in enumerate(path) if isinstance(part, int)), len(path))
    return sources.get(tuple(str(part) for part in path[:cut]), "default")


def _set_by(sources: Mapping[tuple[str, ...], str] | None, path: tuple) -> str:
    """`` (source)`` of the key at ``path`` for a message; nothing without ``sources``."""
    return "" if sources is None else f" ({_source_of(sources, path)})"


def _describe(error: jsonschema.ValidationError, sources: Mapping[tuple[str, ...], str] | None) -> str:
    path = tuple(error.absolute_path)
    key = ".".join(str(part) for part in path) or "(top level)"
    where = ""
    if sources is not None:
        if error.validator == "additionalProperties" and isinstance(error.instance, Mapping):
            # The unknown keys' files: the mapping holding them may come from several.
            known = error.schema.get("properties", {})
            where = ", ".join(f"{'.'.join(str(part) for part in path + (name,))} in "
                              f"{_source_of(sources, path + (str(name),))}"
                              for name in error.instance if name not in known)
            where = f" ({where})" if where else ""
        elif path:
            where = _set_by(sources, path)
    return f"  config key {key}{where}: {error.message}"


def check_variant(name: str, entry: Mapping[str, Any],
                  sources: Mapping[tuple[str, ...], str] | None = None) -> None:
    """Reject contradictory variant entries and reserved names, naming the entry, each key with its
    value and (with ``sources``) the file that set it, and the conflict. Everything the generator,
    its second CRN stage and the losses would refuse once a job runs is refused here."""
    def key(name_of_key: str) -> str:
        value = entry.get(name_of_key)
        shown = yaml.safe_dump(value).split("\n", 1)[0] if isinstance(value, bool) or value is None else value
        return f"{name_of_key} = {shown}{_set_by(sources, ('variants', name, name_of_key))}"

    crn, pix2pixhd = entry["network"] == "crn", entry["network"] == "pix2pixhd"
    stage2 = entry.get("output_images_stage2")
    problems = []
    if name in RESERVED_VARIANT_NAMES:
        problems.append(f"the name {name!r} is reserved ({RESERVED_VARIANT_NAMES[name]}; a variant of that "
                        "name would write to the same paths): rename the variant")
    if entry["flow"] and entry["prior"] is None:
        problems.append(f"{key('flow')} needs prior frames, but {key('prior')} (prior: ext or adj)")
    if entry["twin"] and not entry["flow"]:
        problems.append(f"a twin network ({key('twin')}) needs {key('flow')}: its second half predicts flow and mask")
    if entry["perceptual"] is None and entry["discriminator"] == 0:
        problems.append(f"{key('perceptual')} and {key('discriminator')}: no loss trains the image (the flow "
                        "loss trains only a twin's flow); give it a perceptual backbone or a discriminator")
    for images in ("output_images", "output_images_stage2"):
        if (entry.get(images) or 1) == 1:
            continue
        if entry["discriminator"] > 0:
            problems.append(f"{key(images)} with {key('discriminator')}: discriminators need one image (the "
                            "diversity loss picks among K)")
        if entry["twin"]:
            problems.append(f"{key(images)} with {key('twin')}: a twin network synthesises one image")
    if pix2pixhd:
        if entry["output_images"] > 1 or stage2 is not None:
            problems.append(f"{key('output_images')}, {key('output_images_stage2')}: pix2pixhd synthesises one "
                            "image in its one stage (output_images 1, output_images_stage2 null)")
        if entry["norm"] != "instance":
            problems.append(f"{key('norm')}: pix2pixhd's generator uses instance norm")
        if not entry["residual"]:
            problems.append(f"{key('residual')}: pix2pixhd's residual blocks are built in (residual: true), "
                            "so false would train the same network under another row")
    if crn and entry["residual"] and entry["norm"] != "weight":
        problems.append(f"{key('residual')} with {key('norm')}: ResNeXt refinement modules are weight-normed "
                        "(norm: weight)")
    if crn and entry["twin"] and not entry["residual"]:
        # The thesis code turns on complex_input_mode for every twin (Refinement_Module.py):
        # plain twin modules sum per-group entries, add a conv of the previous features and a
        # third conv (rm_block_3). Only its ResNeXt twin (v09) is ported; no table 5.1 row uses
        # a plain one.
        problems.append(f"{key('twin')} with {key('residual')}: a twin CRN needs ResNeXt modules (residual: "
                        "true): the thesis's twin CRN modules are the ResNeXt ones, and its plain-module twin "
                        "path (summed per-group entries, a conv of the previous features, a third conv "
                        "rm_block_3) is not ported")
    if problems:
        raise PipelineError(f"variant {name!r} in config: " + "; ".join(problems))


class _Keys:
    """Names config keys in messages: ``fvd.frames = 16 (config/demo.yaml)``."""

    def __init__(self, config: Mapping, sources: Mapping[tuple[str, ...], str] | None):
        self.config, self.sources = config, sources

    def value(self, path: str) -> Any:
        node: Any = self.config
        for key in path.split("."):
            node = node[key]
        return node

    def source(self, path: str) -> str:
        return _set_by(self.sources, tuple(path.split(".")))

    def __call__(self, path: str, shown: Any = None) -> str:
        value = self.value(path) if shown is None else shown
        if isinstance(value, bool) or value is None:
            value = yaml.safe_dump(value).split("\n", 1)[0]     # true, false, null as in the file
        return f"{path} = {value}{self.source(path)}"


def _size(height: int, width: int) -> str:
    return f"{height}x{width}"


def check_consistency(config: Mapping, sources: Mapping[tuple[str, ...], str] | None = None) -> None:
    """Reject a config whose sections contradict each other (each section valid on its own).

    Every rule is a constraint a stage enforces when it runs (hours into a cluster run), checked
    here instead; each message names the keys, their values and, where ``sources`` tell, the file
    that set them. The rules:

    - data.annotated_frame is a frame of the snippet (< data.frames_per_snippet); on Cityscapes
      the snippets are its own: 30 frames, the gtFine frame the 20th (index 19).
    - The test videos fit in a snippet: fvd.start_frame + fvd.frames <= data.frames_per_snippet
      (pipeline.synthesize: real and synthesised videos are those frames of one snippet).
    - With prior-frame variants, fvd.warmup_frames <= fvd.start_frame: they synthesise the
      warm-up frames before the start frame (so warm-up + frames fit in the snippet too).
    - Training windows fit in a snippet: train.window (+1 for a flow variant) <=
      data.frames_per_snippet, for the prior-frame variants that train on windows.
    - fvd.batches x fvd.batch_size test videos <= subset.test_sequences (one video a snippet).
    - data.source synthetic: frames of 16x16 at least; the test split of data.synthetic.cities
      has subset.test_sequences snippets (plus fvd.draw_choice.heldout_videos with
      fvd.draw_choice.auto); subset.train_cities are cities of its train split.
    - pix2pixHD trains in one stage, and each CRN stage is twice the size of the one before (a
      refinement module more): what the training loop's growth can do.
    - Every size a stage reads from the packed files is packed (pack.resolutions): each training
      stage of a network some variant uses (synthesis reads the last one's) and fvd.height x width.
    - fvd.width >= fvd.height: FVD scores square crops of side fvd.height.
    - fvd.i3d (the real I3D) needs fvd.frames >= 9. The schema allows 2 so that tests can run the
      graph with a few frames short of embedding; a plan that embeds them stops in i3d_module.
    - Every variant has its own index (a row of table 5.1): the FVD table and fvd.comparisons pick
      variants by it, and of two with one index one would silently stand for both.
    - Every index in fvd.comparisons is a variant's (the table would drop the pair, noted only
      in its log).
    """
    keys = _Keys(config, sources)
    problems = _snippet_problems(config, keys)
    if config["data"]["source"] == "synthetic":
        problems += _synthetic_problems(config, keys)
    packed = [tuple(size) for size in config["pack"]["resolutions"]]
    problems += _packed_stage_problems(config, packed, keys)
    problems += _stage_problems(config["train"], config["variants"], keys)
    problems += _fvd_problems(config["fvd"], packed, keys)
    problems += _index_problems(config["variants"], config["fvd"], keys)
    if problems:
        raise PipelineError("inconsistent config:\n" + "\n".join(f"  - {problem}" for problem in problems))


def _snippet_problems(config: Mapping, keys: _Keys) -> list[str]:
    """What must fit in a snippet: its annotated frame, the test videos with the prior-frame
    variants' warm-up, the training windows; and the test videos in the test snippets."""
    data, subset, fvd, train = config["data"], config["subset"], config["fvd"], config["train"]
    snippet = data["frames_per_snippet"]
    variants = config["variants"]
    prior = sorted(name for name, entry in variants.items() if entry["prior"])
    problems = []
    if data["source"] == "cityscapes" and (snippet, data["annotated_frame"]) != (30, 19):
        problems.append(f"{keys('data.frames_per_snippet')} and {keys('data.annotated_frame')} with "
                        f"{keys('data.source')}: Cityscapes snippets are 30 frames with the gtFine frame at "
                        "index 19 (leftImg8bit_sequence holds exactly those; shorter videos are fvd.frames)")
    if data["annotated_frame"] >= snippet:
        problems.append(f"{keys('data.annotated_frame')} is not a frame of a snippet of "
                        f"{keys('data.frames_per_snippet')} (frames 0..{snippet - 1}): it is the snippet's "
                        "gtFine frame")

    end = fvd["start_frame"] + fvd["frames"]
    if end > snippet:
        problems.append(f"{keys('fvd.start_frame')} + {keys('fvd.frames')} = frame {end}, past the end of a "
                        f"snippet of {keys('data.frames_per_snippet')}: every test video, real or synthesised, "
                        "is frames start_frame..start_frame + frames - 1 of one snippet")
    if prior and fvd["warmup_frames"] > fvd["start_frame"]:
        problems.append(f"{keys('fvd.warmup_frames')} > {keys('fvd.start_frame')}: the prior-frame variants "
                        f"({', '.join(prior)}) synthesise the warm-up frames before the start frame, from frame "
                        "start_frame - warmup_frames of the snippet (warm-up + frames must fit in it too)")

    windows = {name: train["window"] + (1 if variants[name]["flow"] else 0) for name in prior}
    too_long = sorted(name for name, length in windows.items() if length > snippet)
    if too_long:
        flow = sorted(name for name in too_long if variants[name]["flow"])
        plus = f" (+1 for the flow variants {', '.join(flow)})" if flow else ""
        problems.append(f"{keys('train.window')}{plus} = {max(windows.values())} frames, more than a snippet of "
                        f"{keys('data.frames_per_snippet')}: the prior-frame variants ({', '.join(too_long)}) "
                        "train on windows of consecutive frames of one snippet")

    videos = fvd["batches"] * fvd["batch_size"]
    if videos > subset["test_sequences"]:
        problems.append(f"{keys('fvd.batches')} x {keys('fvd.batch_size')} = {videos} test videos, more than "
                        f"{keys('subset.test_sequences')} test snippets (one video a snippet)")
    return problems


def _packed_stage_problems(config: Mapping, packed: list[tuple[int, int]], keys: _Keys) -> list[str]:
    """Each training stage of a network some variant uses reads the packed frames at its size."""
    variants, train = config["variants"], config["train"]
    problems = []
    for network in sorted({entry["network"] for entry in variants.values()}):
        for index, stage in enumerate(train[network]["stages"]):
            if (stage["height"], stage["width"]) not in packed:
                users = sorted(name for name, entry in variants.items() if entry["network"] == network)
                problems.append(f"train.{network}.stages[{index}] = {_size(stage['height'], stage['width'])}"
                                f"{keys.source(f'train.{network}.stages')} is not a size {_shown(packed, keys)} "
                                f"packs: training {', '.join(users)} reads the packed frames at each stage's size "
                                "(synthesis at the last one's)")
    return problems


def _fvd_problems(fvd: Mapping, packed: list[tuple[int, int]], keys: _Keys) -> list[str]:
    """The scoring size is packed and no taller than wide; the real I3D gets enough frames."""
    problems = []
    if (fvd["height"], fvd["width"]) not in packed:
        problems.append(f"{keys('fvd.height')} x {keys('fvd.width')} is not a size {_shown(packed, keys)} packs: "
                        "the real test videos are read from the packed test split at the scoring size")
    if fvd["width"] < fvd["height"]:
        problems.append(f"{keys('fvd.width')} < {keys('fvd.height')}: FVD scores square crops of side "
                        "fvd.height (fvd.crops), which need frames at least as wide as tall")
    if fvd["i3d"] and fvd["frames"] < I3D_MIN_FRAMES:
        problems.append(f"{keys('fvd.frames')} with the real I3D ({keys('fvd.i3d')}): the I3D embedding needs "
                        f"at least {I3D_MIN_FRAMES} frames a video (it halves time three times, then pools 2)")
    return problems


def _index_problems(variants: Mapping, fvd: Mapping, keys: _Keys) -> list[str]:
    """Every variant its own index (a row of table 5.1), and fvd.comparisons only variants' indices."""
    problems = []
    by_index: dict[int, list[str]] = {}
    for name, entry in sorted(variants.items()):
        by_index.setdefault(entry["index"], []).append(name)
    for index, names in sorted(by_index.items()):
        if len(names) > 1:
            problems.append(f"{' and '.join(keys(f'variants.{name}.index') for name in names)}: variants "
                            f"{', '.join(names)} share index {index}, a row of table 5.1 (the FVD table and "
                            "fvd.comparisons pick variants by index, so one would stand for the others); "
                            "give each its own")
    compared = sorted({index for pair in fvd["comparisons"] or [] for index in pair} - set(by_index))
    if compared:
        problems.append(f"{keys('fvd.comparisons')} names {', '.join(map(str, compared))}, not the index of a "
                        f"variant (the variants' indices: {', '.join(map(str, sorted(by_index)))}): each pair is "
                        "two variants.<name>.index values")
    return problems


def _shown(packed: list[tuple[int, int]], keys: _Keys) -> str:
    return keys("pack.resolutions", "[" + ", ".join(_size(*size) for size in packed) + "]")


def _stage_problems(train: Mapping, variants: Mapping, keys: _Keys) -> list[str]:
    """What the training stages of the networks in use must be: pix2pixHD trains in one stage (its
    generator cannot grow), and each CRN stage adds one refinement module, which doubles the size."""
    problems = []
    users = {network: sorted(name for name, entry in variants.items() if entry["network"] == network)
             for network in ("crn", "pix2pixhd")}
    stages = train["pix2pixhd"]["stages"]
    if users["pix2pixhd"] and len(stages) != 1:
        problems.append(f"train.pix2pixhd.stages{keys.source('train.pix2pixhd.stages')} has {len(stages)} stages, "
                        f"but pix2pixHD ({', '.join(users['pix2pixhd'])}) trains in one: its generator cannot "
                        "grow (only the CRN adds a refinement module)")
    stages = train["crn"]["stages"]
    for index in range(1, len(stages) if users["crn"] else 0):
        before, after = stages[index - 1], stages[index]
        if (after["height"], after["width"]) != (2 * before["height"], 2 * before["width"]):
            problems.append(f"train.crn.stages[{index}] = {_size(after['height'], after['width'])}"
                            f"{keys.source('train.crn.stages')} after {_size(before['height'], before['width'])}: "
                            f"each CRN stage adds a refinement module, which doubles the size (here "
                            f"{_size(2 * before['height'], 2 * before['width'])}; {', '.join(users['crn'])})")
    return problems


def variant_entry(config: Mapping, variant: str, sources: Mapping[tuple[str, ...], str] | None = None
                  ) -> Mapping[str, Any]:
    """``variants.<variant>`` of the config; a name it lacks (a target such as
    results/train/v99/model.pt, a --variant) is refused naming the files that set the variants and
    the names they hold."""
    if variant in config["variants"]:
        return config["variants"][variant]
    # The files that set an entry, in merge order.
    files = list(dict.fromkeys(source for key, source in (sources or {}).items()
                               if len(key) == 2 and key[0] == "variants"))
    where = f" ({', '.join(files)})" if files else ""
    raise PipelineError(f"variant {variant!r} is not one of the config's variants{where}: "
                        f"{', '.join(sorted(config['variants']))}; add an entry under variants: for it "
                        "(config.yaml's comment above variants: lists the components)")


def backbone_file(config: Mapping, variant: str, sources: Mapping[tuple[str, ...], str] | None = None) -> str | None:
    """The perceptual backbone file ``variant`` trains with: ``weights.<backbone>``, or None (no
    perceptual loss, or random weights under ``weights.allow_random``). A backbone without its file
    and random weights not allowed is refused, naming the key, the file that set it and every
    variant of that backbone. The train rule's input function calls this, so Snakemake stops while
    planning a train job, not in a job that queued for a GPU, and plans other targets as before
    (config.yaml ships without the site's files)."""
    backbone = variant_entry(config, variant, sources)["perceptual"]
    path = config["weights"].get(backbone) if backbone else None
    keys = _Keys(config, sources)
    users = sorted(name for name, entry in config["variants"].items() if entry["perceptual"] == backbone)
    if path and not Path(path).is_file():
        raise PipelineError(f"{keys(f'weights.{backbone}')} is not a file, but variants {', '.join(users)} use "
                            f"the {backbone} perceptual backbone: set weights.{backbone} to the path of "
                            "torchvision's file (README; pipeline/models/weights.py PINNED), or to null with "
                            "weights.allow_random: true for random weights (demo only)")
    if path or not backbone or config["weights"]["allow_random"]:
        return path or None
    raise PipelineError(f"{keys(f'weights.{backbone}')} names no file, but variants {', '.join(users)} use the "
                        f"{backbone} perceptual backbone and {keys('weights.allow_random')}: set "
                        f"weights.{backbone} to torchvision's file (README; pipeline/models/weights.py PINNED), "
                        "or weights.allow_random: true for random weights (demo only)")


def instance_checkpoint(config: Mapping, sources: Mapping[tuple[str, ...], str] | None = None) -> str | None:
    """``labels.instance.checkpoint``, or None where the workflow fits one (the torchvision
    backend). The detectron2 backend without one is refused, naming the keys and their files: the
    label_instance rule's input function calls this, so only a plan that labels instances stops."""
    instance = config["labels"]["instance"]
    if instance["checkpoint"] or instance["backend"] == "torchvision":
        return instance["checkpoint"] or None
    keys = _Keys(config, sources)
    raise PipelineError(f"{keys('labels.instance.checkpoint')} names no file, but "
                        f"{keys('labels.instance.backend')} labels instances with a trained model: set "
                        "labels.instance.checkpoint to detectron2's model_final_af9cf5.pkl (README), or "
                        "labels.instance.backend: torchvision, which the workflow fits (fit_instances)")


def i3d_module(config: Mapping, sources: Mapping[tuple[str, ...], str] | None = None) -> str | None:
    """``fvd.i3d``, or None where the workflow builds a random-weight I3D (fvd.local_i3d_width).
    Neither set, or videos too short for either I3D, is refused, naming the keys and their files:
    the embed rules' input function calls this, so only a plan that embeds videos stops."""
    fvd = config["fvd"]
    keys = _Keys(config, sources)
    if fvd["frames"] < I3D_MIN_FRAMES:      # with the real I3D check_consistency has refused it already
        raise PipelineError(f"{keys('fvd.frames')}: embedding the test videos needs at least {I3D_MIN_FRAMES} "
                            "frames a video, with the local random I3D too (it halves time three times, then "
                            "pools 2); fewer frames serve only plans that never embed")
    if fvd["i3d"] or fvd["local_i3d_width"]:
        return fvd["i3d"] or None
    raise PipelineError(f"{keys('fvd.i3d')} names no I3D and {keys('fvd.local_i3d_width')}: set fvd.i3d to the "
                        "local directory of the TF-Hub module deepmind/i3d-kinetics-400/1 (README), or "
                        "fvd.local_i3d_width (e.g. 0.25) for a random-weight I3D (demo only: FVD not comparable)")


def _synthetic_problems(config: Mapping, keys: _Keys) -> list[str]:
    """What the synthetic city (data.source synthetic) must hold for the subset to be drawn."""
    problems = []
    data = config["data"]
    if min(data["frame_height"], data["frame_width"]) < SYNTHETIC_MIN_SIZE:
        problems.append(f"{keys('data.frame_height')} x {keys('data.frame_width')}: the synthetic city is drawn at "
                        f"{SYNTHETIC_MIN_SIZE}x{SYNTHETIC_MIN_SIZE} at least ({keys('data.source')})")
    cities = data["synthetic"]["cities"]
    subset, choice = config["subset"], config["fvd"]["draw_choice"]
    split = subset["test_split"]
    wanted, what = subset["test_sequences"], keys("subset.test_sequences")
    if choice["auto"]:
        wanted += choice["heldout_videos"]
        what += (f" + {keys('fvd.draw_choice.heldout_videos')} held-out snippets "
                 f"({keys('fvd.draw_choice.auto')}) = {wanted}")
    held = cities.get(split, {})
    if sum(held.values()) < wanted:
        listed = ", ".join(f"{city} {count}" for city, count in sorted(held.items())) or "no city"
        problems.append(f"{what} snippets of split {split!r} ({keys('subset.test_split')}), but "
                        f"data.synthetic.cities.{split}{keys.source(f'data.synthetic.cities.{split}')} has "
                        f"{sum(held.values())} ({listed}) with {keys('data.source')}")
    if subset["train_cities"] is not None:
        unknown = sorted(set(subset["train_cities"]) - set(cities.get("train", {})))
        if unknown:
            problems.append(f"{keys('subset.train_cities')} names {', '.join(unknown)}, not a city of "
                            f"data.synthetic.cities.train{keys.source('data.synthetic.cities.train')} "
                            f"({', '.join(sorted(cities.get('train', {}))) or 'none'}) with {keys('data.source')}")
    return problems


def section(config: Mapping, *keys: str) -> Any:
    """A config section by path, as a deep copy (what a rule passes to its stage)."""
    node: Any = config
    for key in keys:
        node = node[key]
    return copy.deepcopy(node)
