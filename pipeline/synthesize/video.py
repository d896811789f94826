"""Synthesise a variant's test videos and extract the real ones (see the package docstring)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from pipeline.errors import PipelineError
from pipeline.models.encoder import choose_centres, paint_features
from pipeline.models.prior import PriorFrames
from pipeline.pack.dataset import WindowDataset
from pipeline.pack.resize import resize_image
from pipeline.synthesize.draws import DrawSeeding
from pipeline.synthesize.warping import warping_figures
from pipeline.train.checkpoint import load_trained

__all__ = ["video_count", "to_score_size", "real_videos", "synthesize_videos", "candidate_videos"]


def video_count(settings: Mapping[str, Any], available: int, path: Path) -> int:
    wanted = settings["batches"] * settings["batch_size"]
    if available < wanted:
        raise PipelineError(f"fvd needs {wanted} test videos (batches x batch_size) but the packed file has "
                            f"{available} snippets; raise subset.test_sequences", path)
    return wanted


def _heldout_count(settings: Mapping[str, Any], available: int, path: Path) -> int:
    wanted = settings["draw_choice"]["heldout_videos"]
    if available < wanted:
        raise PipelineError(f"fvd.draw_choice.heldout_videos is {wanted} but the packed held-out file has "
                            f"{available} snippets", path)
    return wanted


def to_score_size(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Frames [T, 3, H, W] in [0, 1] at ``size``, resized as the packed real frames were
    (``pack.resize.resize_image``: an area average when shrinking). Area averages compose over
    the 2x steps between packed sizes, so a generator that reproduced the real frames at its size
    gives the real videos at the scoring size; a different resampler (bilinear, say) would blur
    every variant against the real videos and add to every FVD."""
    if tuple(frames.shape[-2:]) == tuple(size):
        return frames
    images = frames.float().permute(0, 2, 3, 1).cpu().numpy()
    resized = np.stack([resize_image(image, size) for image in images])
    return torch.from_numpy(resized).permute(0, 3, 1, 2)


def _to_uint8(frames: torch.Tensor) -> np.ndarray:
    """[T, 3, H, W] in [0, 1] -> [T, H, W, 3] uint8."""
    return (frames.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def real_videos(data_path: str | Path, settings: Mapping[str, Any], heldout: bool = False) -> tuple[np.ndarray, dict]:
    """The real test videos at the scoring size, from the same start frame as every variant
    (``heldout``: the real held-out videos of the draw choice)."""
    dataset = WindowDataset(data_path, (settings["height"], settings["width"]), window=settings["frames"],
                            start=settings["start_frame"], expand=False)
    count = (_heldout_count if heldout else video_count)(settings, len(dataset), Path(data_path))
    videos = np.stack([dataset[i]["image"].numpy() for i in range(count)])
    return videos, {"snippets": dataset.packed.snippets[:count]}


class _Synthesizer:
    """A trained variant and the packed inputs it synthesises from."""

    def __init__(self, model_path: str | Path, data_path: str | Path, settings: Mapping[str, Any],
                 clusters_path: str | Path | None, device: str):
        self.models, self.checkpoint = load_trained(model_path, device)
        _check_finite(self.models, model_path)
        self.model_path, self.entry, self.device = Path(model_path), self.checkpoint["entry"], device
        self.warmup = settings["warmup_frames"] if self.entry["prior"] else 0
        self.start = settings["start_frame"] - self.warmup
        if self.start < 0:
            raise PipelineError(f"fvd.start_frame {settings['start_frame']} leaves no room for "
                                f"{self.warmup} warm-up frames of variant {self.variant!r}")
        self.model_size = (self.checkpoint["height"], self.checkpoint["width"])
        self.score_size = (settings["height"], settings["width"])
        self.inputs = WindowDataset(data_path, self.model_size, window=settings["frames"] + self.warmup,
                                    start=self.start, label_set=self.checkpoint["label_set"])
        self.bank = _bank(clusters_path, self.models, self.variant)

    @property
    def variant(self) -> str:
        return self.checkpoint["variant"]

    def video(self, index: int, draws: DrawSeeding | None) -> tuple[torch.Tensor, dict | None]:
        """Video ``index`` [T, 3, H, W] at the scoring size, and its feature draw (or None)."""
        sample = {k: (v.to(self.device) if torch.is_tensor(v) else v) for k, v in self.inputs[index].items()}
        chosen = None
        if self.bank is not None:
            chosen = choose_centres(self.bank, torch.Generator().manual_seed(draws.seed_of(index)))
        frames = _synthesize(self.models, self.entry, sample, chosen)[self.warmup:]
        frames = to_score_size(frames, self.score_size)
        if not torch.isfinite(frames).all():    # uint8 would make NaN black, and FVD would score it as valid
            raise PipelineError(f"video {index} has non-finite pixels (a model that diverges on these inputs?)",
                                self.model_path)
        draw = None if chosen is None else {str(cls): centre.tolist() for cls, centre in chosen.items()}
        return frames, draw

    def record(self, count: int) -> dict[str, Any]:
        features = "cluster draw" if self.bank is not None else ("encoded real frame" if self.models.encoder else None)
        return {"variant": self.variant, "model_provenance": self.checkpoint["provenance"],
                "first_synthesised_frame": self.start, "warmup_frames": self.warmup,
                "model_size": list(self.model_size),
                "features": features, "snippets": self.inputs.packed.snippets[:count]}


@torch.inference_mode()
def synthesize_videos(model_path: str | Path, data_path: str | Path, settings: Mapping[str, Any],
                      clusters_path: str | Path | None = None, device: str = "cpu",
                      draw_choice: Mapping[str, Any] | None = None) -> tuple[np.ndarray, dict]:
    """uint8 videos [N, T, H, W, 3] at the scoring size, a record of how they were made, and the
    warping figures of each video (:func:`warping_figures`). ``draw_choice``: the chosen draw
    (:func:`read_draw_choice`) of a feature-encoder variant with ``fvd.draw_choice.auto``; without
    it, candidate 0's draw (``fvd.feature_draw``: one for every video, or one a video)."""
    run = _Synthesizer(model_path, data_path, settings, clusters_path, device)
    reference = WindowDataset(data_path, run.score_size, window=settings["frames"], start=settings["start_frame"],
                              label_set=run.checkpoint["label_set"])
    count = video_count(settings, len(run.inputs), Path(data_path))
    if draw_choice and (draw_choice["variant"] != run.variant or run.bank is None):
        raise PipelineError(f"a draw choice for variant {draw_choice['variant']!r}; variant {run.variant!r} "
                            f"{'draws no cluster features' if run.bank is None else 'is another'}",
                            draw_choice.get("file"))
    draws = None            # only a variant with a cluster bank draws (and is given fvd.draw_seed)
    if run.bank is not None:
        draws = (DrawSeeding.of(settings, draw_choice["chosen"], draw_choice["heldout_videos"])
                 if draw_choice else DrawSeeding.of(settings))
    videos, warping, feature_draws = [], [], []
    for index in tqdm(range(count), desc=f"synthesize {run.variant}", unit="video"):
        frames, draw = run.video(index, draws)
        videos.append(_to_uint8(frames))
        if draw is not None:
            feature_draws.append(draw)
        real = reference[index]
        warping.append(warping_figures(frames.float().cpu().clamp(0, 1), real["image"], real["flow"]))
    record = dict(run.record(count), feature_draws=feature_draws)
    if draw_choice:     # without the option the record stays as it always was
        record["draw_seeding"] = draws.describe()
        record["draw_choice"] = {key: draw_choice.get(key) for key in ("file", "chosen", "fvd", "heldout_videos")}
    return np.stack(videos), {"record": record, "warping": warping}


def candidate_videos(model_path: str | Path, data_path: str | Path, settings: Mapping[str, Any],
                     clusters_path: str | Path, device: str = "cpu") -> tuple[int, Iterator[np.ndarray], dict]:
    """The held-out videos under every candidate draw set of ``fvd.draw_choice`` (package docstring).

    Returns ``(count, videos, record)``: ``videos`` yields uint8 [T, H, W, 3] candidate-major
    (video ``c * H + j`` is held-out video ``j`` under candidate ``c``), one at a time since the
    thesis's 50 x 16 videos do not fit in memory; ``record["feature_draws"]`` fills as it runs.
    """
    run = _Synthesizer(model_path, data_path, settings, clusters_path, device)
    if run.bank is None:
        raise PipelineError(f"variant {run.variant!r} draws no cluster features (feature encoder and "
                            "--clusters needed): it has no draw to choose", model_path)
    choice = settings["draw_choice"]
    heldout = _heldout_count(settings, len(run.inputs), Path(data_path))
    record = dict(run.record(heldout), candidates=choice["candidates"], heldout_videos=heldout,
                  layout="candidate-major: video c * heldout_videos + j is held-out video j under candidate c",
                  draw_seeding=dict(DrawSeeding.of(settings, period=heldout).describe(), candidate="c"),
                  feature_draws=[])

    @torch.inference_mode()
    def videos() -> Iterator[np.ndarray]:
        with tqdm(total=choice["candidates"] * heldout, desc=f"draw candidates {run.variant}", unit="video") as bar:
            for candidate in range(choice["candidates"]):
                draws = DrawSeeding.of(settings, candidate, heldout)
                for index in range(heldout):
                    frames, draw = run.video(index, draws)
                    record["feature_draws"].append(draw)
                    bar.update()
                    yield _to_uint8(frames)

    return choice["candidates"] * heldout, videos(), record


def _check_finite(models, model_path: str | Path) -> None:
    """Refuse a diverged run's weights: NaN would synthesise black videos with a NaN warping error,
    which the FVD stage would score as if they were the variant's."""
    for module in ("generator", "encoder"):
        if getattr(models, module) is None:
            continue
        for name, tensor in getattr(models, module).state_dict().items():    # buffers too: batch-norm statistics
            if tensor.is_floating_point() and not torch.isfinite(tensor).all():
                raise PipelineError(f"non-finite weights in {module}.{name} (a diverged training run?)", model_path)


def _bank(clusters_path: str | Path | None, models, variant: str) -> dict | None:
    """The per-class k-means bank of ``clusters_path`` (pipeline.train.cluster), made for ``variant``."""
    if models.encoder is None or clusters_path is None:
        return None
    path = Path(clusters_path)
    if not path.is_file():
        raise PipelineError("feature cluster bank not found (run the cluster_features rule)", path)
    try:
        clusters = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # noqa: BLE001 - torch.load fails with pickle's, zip's and its own errors alike
        raise PipelineError(f"not a readable feature cluster bank ({err.__class__.__name__}: {err})", path) from err
    if not isinstance(clusters, dict) or "bank" not in clusters:
        raise PipelineError("not a feature cluster bank (no 'bank'; written by pipeline.train.cluster)", path)
    # Another variant's centres live in another encoder's feature space: they would paint nonsense.
    if clusters.get("variant") not in (None, variant):
        raise PipelineError(f"the cluster bank of variant {clusters['variant']!r}, the model is {variant!r}", path)
    return clusters["bank"]


def _synthesize(models, entry, sample: dict, chosen: dict | None) -> torch.Tensor:
    """Frames [T, 3, H, W] of one video; prior variants feed back their own frames."""
    priors = PriorFrames(entry["prior"]) if entry["prior"] else None
    image, labels = sample["image"][:, None], sample["labels"][:, None]    # [T, 1, ...]
    if priors is not None:
        priors.reset(image[0], labels[0])
    outputs = []
    for t in range(image.shape[0]):
        inputs = {"labels": labels[t]}
        if entry["edge"]:
            inputs["edge"] = sample["edge"][t][None]
        if models.encoder is not None:
            instances = sample["instances"][t][None]
            inputs["features"] = (paint_features(instances, labels[t], chosen) if chosen is not None
                                  else models.encoder(image[t], instances))
        if priors is not None:
            inputs.update(priors.inputs())
        frame = models.generator(inputs)["image"]
        if priors is not None:
            priors.push(frame, labels[t])
        outputs.append(frame)
    return torch.cat(outputs)
