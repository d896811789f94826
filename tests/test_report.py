"""The report (issue 11): the picture rules on a small finished workdir, then Snakemake's report
opened in headless Chromium.

The workdir holds what the graph would have made, in the graph's formats, at tiny sizes: a
synthetic city, its subset, label folders (the truth with a known corruption, so the measured
mIoU is known), DIS flow, the packed test split, real videos cut from it, 14 variants' videos
(the real ones altered), warping and FVD JSONs (FVD from random embeddings by the real protocol),
the FVD table, training summaries, loss logs and benchmark files. The report rules then run
with Snakemake (only they may run: the stages' outputs are given), `snakemake --report` builds
the HTML, and Chromium loads it through the DevTools protocol, which reports console errors and
uncaught exceptions.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import cv2
import imageio.v2 as imageio
import numpy as np
import pytest
import yaml

from pipeline.data.subset import load_subset, select_subset, subset_snippets, write_parts
from pipeline.flow.backends import make_backend
from pipeline.flow.stage import write_city_flow
from pipeline.fvd.protocol import score_crops
from pipeline.fvd.table import write_tables
from pipeline.fvd.videos import read_videos, write_videos
from pipeline.io import write_json
from pipeline.labels.frames import city_frames, write_label_png
from pipeline.labels.quality import read_truth
from pipeline.pack.writer import PackInputs, pack
from pipeline.provenance import provenance
from pipeline.report import figures, flow_quality, fvd_chart, label_quality, losses, strip, timing, video, warping
from pipeline.report.provenance import notes_line, weight_notes
from pipeline.synthesize.video import real_videos

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SIZE = (32, 64)                     # frames, packed labels and flow, and the scored videos
FRAMES, ANNOTATED, VIDEO_FRAMES, START = 8, 4, 4, 2
REPORT_RULES = ["report_fvd_table", "report_fvd_chart", "report_warping", "report_strip", "report_video",
                "report_losses", "report_timing", "report_label_quality", "report_flow_quality"]
SHOWN = ["v01", "v12"]              # variants whose strip, video and losses the test builds
TEST_CONFIG = {
    "data": {"source": "synthetic", "frame_height": SIZE[0], "frame_width": SIZE[1],
             "frames_per_snippet": FRAMES, "annotated_frame": ANNOTATED,
             "synthetic": {"seed": 0, "cities": {"train": {"alpha": 1}, "val": {"beta": 2, "gamma": 2}}}},
    "subset": {"train_cities": None, "test_sequences": 4},
    "labels": {"instance": {"backend": "torchvision"}},
    "flow": {"backend": "dis", "height": SIZE[0], "width": SIZE[1]},
    "pack": {"resolutions": [list(SIZE)]},
    # Not run here, but consistent: the one packed size is every training stage's.
    "train": {"crn": {"stages": [{"height": SIZE[0], "width": SIZE[1], "epochs": 1}]},
              "pix2pixhd": {"stages": [{"height": SIZE[0], "width": SIZE[1], "epochs": 1}]}},
    "weights": {"allow_random": True},
    "fvd": {"local_i3d_width": 0.25, "height": SIZE[0], "width": SIZE[1], "frames": VIDEO_FRAMES,
            "batch_size": 2, "batches": 2, "bootstrap": 50, "start_frame": START, "warmup_frames": 2},
}
CORRUPTED_FRAME = 1                 # this frame of every snippet gets wrong semantic labels
RANDOM_I3D = {"kind": "local_random", "width_multiplier": 0.25, "seed": 0, "sha256": "0" * 64, "path": "i3d"}


def _variants() -> dict:
    return yaml.safe_load((REPO / "config.yaml").read_text())["variants"]


# ---- the finished workdir ---------------------------------------------------------------------


def _labels(work: Path, subset_path: Path) -> None:
    """Label folders in the label stages' layout: the truth, with one frame a snippet corrupted."""
    subset = load_subset(subset_path)
    for split, cities in subset["splits"].items():
        for city in cities:
            snippets = subset_snippets(subset, split, city)
            for kind in ("semantic", "instance"):
                folder = work / "results" / "labels" / kind / split / city
                folder.mkdir(parents=True)
                write_json(folder / "provenance.json", {
                    "stage": f"label_{kind}", "weights": {"path": "results/models/x.pt", "self_trained": True}})
            truths = {snippet.id: read_truth(snippet.root, snippet) for snippet in snippets}
            for frame in city_frames(snippets):
                labels, instances = (t[frame.index] for t in truths[frame.snippet.id])
                if frame.index == CORRUPTED_FRAME:
                    labels = np.where(labels == 7, 8, labels).astype(np.uint8)     # road labelled sidewalk
                write_label_png(work / "results/labels/semantic" / split / city / frame.output_name("labelIds"),
                                labels.astype(np.uint8))
                write_label_png(work / "results/labels/instance" / split / city / frame.output_name("instanceIds"),
                                instances.astype(np.uint16))


def _flow(work: Path, subset_path: Path) -> None:
    subset = load_subset(subset_path)
    settings = {"backend": "dis", "height": SIZE[0], "width": SIZE[1], "dtype": "float16", "batch_size": 4}
    backend = make_backend(settings)
    for split, cities in subset["splits"].items():
        for city in cities:
            record = provenance("reference_flow", settings, "test", None, backend=backend.describe(),
                                weights_real=True)
            write_city_flow(subset_snippets(subset, split, city), backend, settings,
                            work / "results/flow" / split / f"{city}.h5", record)


def _variant_videos(real: np.ndarray, index: int) -> np.ndarray:
    """The real videos, blurred and shifted in colour by the variant index (a distinct set each)."""
    blurred = np.stack([cv2.GaussianBlur(frame, (0, 0), 0.5 + 0.2 * index)
                        for frame in real.reshape(-1, *real.shape[2:])]).reshape(real.shape)
    return np.clip(blurred.astype(np.int16) + 4 * index, 0, 255).astype(np.uint8)


def _train_record(variant: str, steps: int) -> dict:
    return provenance("train", {}, "test", 0, variant=variant, steps=steps,
                      backbone_weights={"perceptual": "random"}, data_provenance=json.dumps(
                          {"inputs": {"semantic": {"beta": {"stage": "label_semantic",
                                                            "weights": {"self_trained": True}}}}}))


def _variant_outputs(work: Path, name: str, entry: dict, real: np.ndarray, real_embeddings: dict) -> dict:
    """Videos, warping JSON, training summary, loss log, embeddings-based scores of one variant."""
    results, index = work / "results", entry["index"]
    steps = 5 if entry["network"] == "crn" else 3
    record = _train_record(name, steps)
    write_videos(results / "videos" / f"{name}.h5", _variant_videos(real, index),
                 provenance("synthesize", {}, "test", 0, variant=name, model_provenance=record))
    rng = np.random.default_rng(index)
    per_video = rng.uniform(0.01, 0.05, len(real)).tolist()
    write_json(results / "fvd/warping" / f"{name}.json", {
        "variant": name, "warping_error": float(np.mean(per_video)), "warping_error_std": float(np.std(per_video, ddof=1)),
        "per_video": per_video, "real_warping_error": 0.02, "mask_kept_share": 0.9})
    write_json(results / "train" / name / "summary.json",
               {"variant": name, "training_seconds": 30.0 + index, "steps": steps, "provenance": record})
    names = ["feature_matching", "gan", "perceptual"]
    rows = ["step,stage,epoch,sample,lr,snippet," + ",".join(names)]
    for step in range(1, steps + 1):
        stage = 0 if step <= 3 else 1
        rows.append(f"{step},{stage},0,{step - 1},0.0001,beta_000000_000204," +
                    ",".join(f"{(k + 1) * 10.0 / step:.4g}" for k in range(len(names))))
    (results / "train" / name / "losses.csv").write_text("\n".join(rows) + "\n")
    fake = {crop: values + rng.normal(0.3 * index / 14, 1.0, values.shape) for crop, values in real_embeddings.items()}
    score = {"variant": name, **score_crops(real_embeddings, fake, list(fake), 2, 50, 0), "i3d": RANDOM_I3D,
             "provenance": provenance("fvd.score", {}, "test", 0, fake_videos={"model_provenance": record})}
    path = results / "fvd/scores" / f"{name}.json"
    write_json(path, score)
    return {"scores": path, "warping": results / "fvd/warping" / f"{name}.json",
            "training": results / "train" / name / "summary.json"}


# Benchmark files under results/timing, at the workflow's benchmark: paths: (the rule, seconds).
# Rules share folders: embed/heldout/ holds two rules' files, pack/ two more.
BENCHMARKS = {"synthetic_city.tsv": ("synthetic_city", 12.5), "reference_flow/val/beta.tsv": ("reference_flow", 40.0),
              "reference_flow/val/gamma.tsv": ("reference_flow", 20.0), "train/v01.tsv": ("train", 95.0),
              "embed/v01.tsv": ("embed", 7.0), "embed/heldout/real.tsv": ("embed_heldout_real", 3.0),
              "embed/heldout/v01.tsv": ("embed_draw_candidates", 5.0), "pack/val.tsv": ("pack", 9.0),
              "pack/gtfine_train.tsv": ("pack_gtfine", 11.0)}


def _benchmarks(root: Path, files: dict[str, tuple[str, float]] = BENCHMARKS) -> dict[str, float]:
    """Snakemake benchmark files under ``root``; returns each rule's total seconds."""
    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    totals: dict[str, float] = {}
    for name, (rule, seconds) in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(header + f"{seconds}\t0:00:{int(seconds):02d}\t100\t200\t90\t95\t1\t1\t50\t{seconds}\n")
        totals[rule] = totals.get(rule, 0.0) + seconds
    return totals


def make_workdir(work: Path) -> dict:
    """Every input of the report rules, in the graph's formats; returns what the test checks."""
    from pipeline.data.synthetic import generate

    results = work / "results"
    config = TEST_CONFIG
    root = results / "synthetic_city"
    generate(root, config["data"]["synthetic"]["cities"], 0, *SIZE, frames=FRAMES, annotated=ANNOTATED)
    subset_path = results / "data/subset.json"
    subset_settings = {"train_cities": None, "test_sequences": 4, "seed": 0, "test_split": "val"}
    subset = select_subset(root.resolve(), subset_settings, FRAMES, ANNOTATED)
    write_json(subset_path, subset)
    # The checkpoint's other outputs: without them Snakemake counts select_subset as not run and
    # the report rules' city lists stay unresolved.
    write_parts(subset, subset_settings, [results / "data/subset" / f"{part}.json"
                                          for part in ("train", "val", "gtfine_train")])
    _labels(work, subset_path)
    _flow(work, subset_path)
    subset = load_subset(subset_path)
    cities = sorted(subset["splits"]["val"])
    inputs = PackInputs.from_paths(root, [results / "labels/semantic/val" / c for c in cities],
                                   [results / "labels/instance/val" / c for c in cities],
                                   [results / "flow/val" / f"{c}.h5" for c in cities])
    pack(subset_path, "val", inputs, results / "data/val.h5",
         {"pack": {"resolutions": [list(SIZE)], "compression": "lz4"}, "label_set": "train19_other"}, progress=False)
    fvd_settings = {"height": SIZE[0], "width": SIZE[1], "frames": VIDEO_FRAMES, "start_frame": START,
                    "batch_size": 2, "batches": 2}
    real, record = real_videos(results / "data/val.h5", fvd_settings)
    write_videos(results / "videos/real.h5", real, provenance("real_videos", fvd_settings, "test", None, **record))
    rng = np.random.default_rng(0)
    real_embeddings = {crop: rng.normal(0.0, 1.0, (len(real), 6)) for crop in ("left", "center", "right")}
    variants = _variants()
    paths = {name: _variant_outputs(work, name, entry, real, real_embeddings) for name, entry in variants.items()}
    write_tables([p["scores"] for p in paths.values()], variants, results / "fvd_table.csv",
                 results / "fvd_comparisons.csv", {}, [p["warping"] for p in paths.values()],
                 [p["training"] for p in paths.values()])
    (work / "test.yaml").write_text(yaml.safe_dump(config))
    return {"real": real, "variants": variants, "timing": _benchmarks(results / "timing")}


# ---- running the rules and the report ---------------------------------------------------------


def _targets() -> list[str]:
    pictures = ["fvd_table.html", "fvd.png", "warping.png", "timing.png", "label_quality.png", "flow_quality.png"]
    for name in SHOWN:
        pictures += [f"strips/{name}.png", f"videos/{name}.html", f"losses/{name}.png"]
    return [f"results/report/{picture}" for picture in pictures]


def _snakemake(work: Path, *arguments: str) -> subprocess.CompletedProcess:
    """Snakemake on the project's Snakefile in ``work``; only the report rules may run (the
    stages' outputs are given, without Snakemake's records of how they were made)."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    command = [*SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(work), "--configfile", str(work / "test.yaml"),
               "--cores", "2", "--allowed-rules", *REPORT_RULES, *arguments, "--", *_targets()]
    done = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    return done


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    work = tmp_path_factory.mktemp("report")
    facts = make_workdir(work)
    _snakemake(work)
    _snakemake(work, "--report", str(work / "report.html"))
    return {"work": work, "results": work / "results", "report": work / "report.html", **facts}


def _report_results(report: Path) -> dict:
    """The ``results`` object Snakemake's report embeds: path -> entry with its data URI."""
    text = report.read_text(encoding="utf-8")
    match = re.search(r"var results = (\{.*?\});\s*</script>", text, re.S)
    assert match, "no results in the report"
    return json.loads(match.group(1))


def _picture(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None, path
    return image[..., ::-1]


# ---- the pictures -------------------------------------------------------------------------------

STRIP_SCALE = 4                      # 32-pixel frames shown 128 high
VIDEO_SCALE = 6                      # ... and 192 high in the videos


def _expected_sizes() -> dict[str, tuple[int, int]]:
    """(height, width) of every picture the test builds."""
    def hw(size):
        return size[1], size[0]

    rows, columns = len(strip.ROWS), VIDEO_FRAMES
    strip_size = (strip.HEADER_LINES * strip.LINE_HEIGHT + rows * SIZE[0] * STRIP_SCALE + (rows - 1) * strip.GAP,
                  strip.MARGIN + columns * SIZE[1] * STRIP_SCALE + (columns - 1) * strip.GAP)
    sizes = {"fvd.png": hw(fvd_chart.SIZE), "warping.png": hw(warping.SIZE), "timing.png": hw(timing.SIZE),
             "label_quality.png": hw(label_quality.SIZE), "flow_quality.png": hw(flow_quality.SIZE)}
    for name in SHOWN:
        sizes[f"strips/{name}.png"] = strip_size
        sizes[f"losses/{name}.png"] = hw(losses.SIZE)
    return sizes


def test_pictures_have_content_and_their_size(built):
    for name, size in _expected_sizes().items():
        picture = _picture(built["results"] / "report" / name)
        assert picture.shape == (*size, 3), name
        assert picture.std() > 10, f"{name} is blank"
        colours = np.unique(picture.reshape(-1, 3).astype(np.int32) @ np.array([1 << 16, 1 << 8, 1]))
        assert len(colours) > 50, f"{name} has hardly any content"


def test_strip_shows_the_real_and_synthesised_frames_labels_and_flow(built):
    """Each row holds what it names: the frames of video 0, the packed labels, a flow picture."""
    real = built["real"][0]
    fake, _ = read_videos(built["results"] / "videos/v12.h5")
    picture = _picture(built["results"] / "report/strips/v12.png")
    top = strip.HEADER_LINES * strip.LINE_HEIGHT
    cell_h, cell_w = SIZE[0] * STRIP_SCALE, SIZE[1] * STRIP_SCALE

    def cell(row: int, column: int) -> np.ndarray:
        y, x = top + row * (cell_h + strip.GAP), strip.MARGIN + column * (cell_w + strip.GAP)
        return picture[y:y + cell_h, x:x + cell_w]

    for column, t in enumerate(strip.strip_columns(VIDEO_FRAMES, 4)):
        np.testing.assert_array_equal(cell(0, column), figures.upscale(real[t], STRIP_SCALE))
        np.testing.assert_array_equal(cell(1, column), figures.upscale(fake[0, t], STRIP_SCALE))
    from pipeline.data.labels import colorize
    from pipeline.pack.dataset import PackedFile

    packed = PackedFile(built["results"] / "data/val.h5", SIZE)
    snippet = packed.snippets.index(read_videos(built["results"] / "videos/real.h5")[1]["snippets"][0])
    labels = packed.read(snippet, START, START + VIDEO_FRAMES)["labels"]
    np.testing.assert_array_equal(cell(2, 0), figures.upscale(colorize(labels[0]), STRIP_SCALE))
    assert cell(3, 0).std() > 0                     # motion in the synthetic city: not a white panel


def test_videos_play_beside_the_real_ones(built):
    count = 4
    for name in SHOWN:
        reader = imageio.get_reader(built["results"] / "report/videos" / f"{name}.mp4", format="FFMPEG")
        try:
            meta = reader.get_meta_data()
            assert meta["codec"] == "h264" and meta["pix_fmt"].startswith("yuv420p")
            assert reader.count_frames() == count * VIDEO_FRAMES
            header = video.HEADER_LINES * video.LINE_HEIGHT
            assert meta["size"] == (2 * SIZE[1] * VIDEO_SCALE + video.GAP, header + SIZE[0] * VIDEO_SCALE)
            frame = reader.get_data(VIDEO_FRAMES + 1)          # video 1, frame 1
        finally:
            reader.close()
        fake, _ = read_videos(built["results"] / "videos" / f"{name}.h5")
        width = SIZE[1] * VIDEO_SCALE
        left = frame[header:, :width].astype(float)
        right = frame[header:, width + video.GAP:].astype(float)
        expected_left = figures.upscale(built["real"][1, 1], VIDEO_SCALE)
        expected_right = figures.upscale(fake[1, 1], VIDEO_SCALE)
        assert np.abs(left - expected_left).mean() < 4            # H.264 at crf 18: close, not exact
        assert np.abs(right - expected_right).mean() < 4
        assert np.abs(right - expected_left).mean() > np.abs(right - expected_right).mean()
        page = (built["results"] / "report/videos" / f"{name}.html").read_text()
        assert "data:video/mp4;base64," in page and "random perceptual backbone" in page


def test_quality_on_the_synthetic_city(built):
    """The labels are the truth but for one frame a snippet with road called sidewalk; DIS tracks
    the synthetic city's motion."""
    labels = json.loads((built["results"] / "report/label_quality.json").read_text())
    snippets = 5
    assert labels["frames"] == snippets * FRAMES
    assert labels["instance_match_share"] == 1.0
    road, sidewalk, sky = labels["class_iou"]["7"], labels["class_iou"]["8"], labels["class_iou"]["23"]
    assert road < 1.0 and sidewalk < 1.0 and sky == 1.0
    assert 0.5 < labels["miou"] < 1.0
    assert "self-trained semantic labeller" in labels["weights"]
    flow = json.loads((built["results"] / "report/flow_quality.json").read_text())
    assert flow["pairs"] == snippets * (FRAMES - 1)
    assert flow["epe"] < flow["zero_flow_epe"]
    assert flow["backends"] == ["dis"]


def test_titles_name_the_weights(built):
    """The weights notes reach the pictures' inputs: the I3D for the FVD, the rest everywhere."""
    page = (built["results"] / "report/fvd_table.html").read_text()
    assert "narrow random I3D (width 0.25)" in page and "<table>" in page
    log = (built["work"] / "logs/report/fvd_chart.log").read_text()
    assert "Traceback" not in log


def test_timing_reads_the_benchmark_files(built):
    """Each file counts for the rule that writes it, by the workflow's own benchmark: patterns,
    which the rule passes (its picture's provenance holds them)."""
    patterns = json.loads(_png_record(built["results"] / "report/timing.png")["arguments"]["benchmarks"])
    stages = timing.stage_times(built["results"] / "timing", patterns)
    assert {rule: entry["seconds"] for rule, entry in stages.items()} == pytest.approx(built["timing"])
    assert stages["reference_flow"]["jobs"] == 2 and stages["reference_flow"]["longest"] == 40.0


def _png_record(path: Path) -> dict:
    from PIL import Image

    with Image.open(path) as image:
        return json.loads(image.text[figures.PROVENANCE_KEY])


def _page_record(path: Path) -> dict:
    found = re.search(r"<script type='application/json' id='provenance'>(.*?)</script>", path.read_text(), re.S)
    assert found, f"{path} has no provenance"
    return json.loads(found.group(1))


def test_pictures_and_pages_carry_their_provenance(built):
    """Each PNG holds its record in a text chunk, each page in a JSON element: the report
    module, its code version and the arguments naming its inputs."""
    records = {name: _png_record(built["results"] / "report" / name) for name in _expected_sizes()}
    records.update({name: _page_record(built["results"] / "report" / name)
                    for name in ["fvd_table.html", *(f"videos/{variant}.html" for variant in SHOWN)]})
    for name, record in records.items():
        assert record["stage"].startswith("report.") and re.fullmatch("[0-9a-f]{12}", record["code_version"]), name
        outputs = [record["arguments"].get(key) for key in ("output", "page")]
        assert f"results/report/{name}" in outputs, name
    assert records["strips/v12.png"]["arguments"]["videos"] == "results/videos/v12.h5"


def test_report_embeds_every_picture(built):
    """The report holds each rule output byte for byte, in its category."""
    results = _report_results(built["report"])
    expected = [*_expected_sizes(), "fvd_table.html", *(f"videos/{name}.{ext}" for name in SHOWN
                                                         for ext in ("html", "mp4"))]
    assert sorted(results) == sorted(f"results/report/{name}" for name in expected)
    for path, entry in results.items():
        data = base64.b64decode(entry["data_uri"].split("base64,", 1)[1])
        assert hashlib.sha256(data).digest() == hashlib.sha256((built["work"] / path).read_bytes()).digest(), path
        assert entry["caption"].strip(), f"{path} has no caption"


def test_a_change_reruns_only_the_pictures_that_show_it(built):
    """New losses of one variant: its loss curves are redrawn, nothing else."""
    losses_csv = built["results"] / "train/v12/losses.csv"
    original = losses_csv.read_text()
    try:
        losses_csv.write_text(original + "4,0,1,0,0.0002,beta_000000_000204,1.0,2.0,3.0\n")
        done = _snakemake(built["work"], "--dry-run")
    finally:
        losses_csv.write_text(original)
    jobs = re.findall(r"^rule (report_\w+):", done.stdout, re.M)
    assert jobs == ["report_losses"], done.stdout[-2000:]
    assert "wildcards: variant=v12" in done.stdout


# ---- headless Chromium --------------------------------------------------------------------------


class DevTools:
    """A minimal client of Chromium's DevTools protocol: JSON messages over a websocket (RFC 6455),
    standard library only. Events received while waiting for a reply are kept in ``events``."""

    def __init__(self, url: str, timeout: float = 60.0):
        host, rest = url.removeprefix("ws://").split("/", 1)
        hostname, port = host.rsplit(":", 1)
        self.socket = socket.create_connection((hostname, int(port)), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.socket.sendall((f"GET /{rest} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                             f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self._read()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        assert b" 101 " in head.split(b"\r\n")[0], head
        self.last_id, self.events = 0, []

    def _read(self) -> bytes:
        chunk = self.socket.recv(1 << 16)
        if not chunk:
            raise ConnectionError("Chromium closed the DevTools connection")
        return chunk

    def _take(self, count: int) -> bytes:
        while len(self.buffer) < count:
            self.buffer += self._read()
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data

    def _send(self, opcode: int, payload: bytes) -> None:
        size = len(payload)
        length = (bytes([0x80 | size]) if size < 126 else bytes([0x80 | 126]) + struct.pack(">H", size)
                  if size < 1 << 16 else bytes([0x80 | 127]) + struct.pack(">Q", size))
        mask = os.urandom(4)          # a client masks every frame
        masked = (np.frombuffer(payload, np.uint8) ^ np.resize(np.frombuffer(mask, np.uint8), size)).tobytes()
        self.socket.sendall(bytes([0x80 | opcode]) + length + mask + masked)

    def _message(self) -> dict:
        parts = []
        while True:
            first, second = self._take(2)
            size = second & 0x7F
            if size == 126:
                size = struct.unpack(">H", self._take(2))[0]
            elif size == 127:
                size = struct.unpack(">Q", self._take(8))[0]
            opcode, payload = first & 0x0F, self._take(size)
            if opcode == 0x9:                          # ping
                self._send(0xA, payload)
                continue
            if opcode == 0x8:
                raise ConnectionError("Chromium closed the DevTools connection")
            parts.append(payload)
            if first & 0x80:
                return json.loads(b"".join(parts))

    def call(self, method: str, **params) -> dict:
        self.last_id += 1
        self._send(0x1, json.dumps({"id": self.last_id, "method": method, "params": params}).encode())
        while True:
            message = self._message()
            if message.get("id") == self.last_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def evaluate(self, expression: str):
        """The value of a JavaScript expression (a promise is awaited); a thrown error fails."""
        reply = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        assert "exceptionDetails" not in reply, reply["exceptionDetails"]
        return reply["result"].get("value")

    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions and browser log errors seen so far."""
        found = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.exceptionThrown":
                found.append(json.dumps(params["exceptionDetails"])[:500])
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                found.append(json.dumps(params.get("args"))[:500])
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                found.append(json.dumps(params["entry"])[:500])
        return found


@pytest.fixture
def chromium(tmp_path):
    """Headless Chromium (Debian's package) with a fresh profile; yields a DevTools client of its page."""
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    profile = tmp_path / "profile"
    process = subprocess.Popen(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
         "--remote-debugging-port=0", "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = profile / "DevToolsActivePort"     # Chromium writes the port it chose here
        deadline = time.monotonic() + 30
        while not (port_file.is_file() and port_file.read_text().strip()):
            assert process.poll() is None and time.monotonic() < deadline, "chromium did not start"
            time.sleep(0.05)
        connection = http.client.HTTPConnection("127.0.0.1", int(port_file.read_text().split()[0]), timeout=30)
        connection.request("GET", "/json/list")
        page = next(t for t in json.loads(connection.getresponse().read()) if t["type"] == "page")
        client = DevTools(page["webSocketDebuggerUrl"])
        for domain in ("Runtime", "Log", "Page"):
            client.call(f"{domain}.enable")
        yield client
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# Walk the report as a reader would: every category and subcategory, every result's view button;
# an image must decode, an HTML result must open in a frame, an MP4 is a download link. Then play
# the video embedded in each video page. Returns {path: what was seen}.
WALK = r"""(async () => {
  const sleep = ms => new Promise(resolve => setTimeout(resolve, ms));
  const until = async (test, what) => {
    for (let i = 0; i < 200; i++) { const value = test(); if (value) return value; await sleep(25); }
    throw new Error('timed out waiting for ' + what);
  };
  const link = text => [...document.querySelectorAll('#app a')].find(a => a.innerText.trim() === text);
  const pathOf = uri => Object.keys(results).find(path => results[path].data_uri === uri);
  const seen = {};
  for (const [category, subcategories] of Object.entries(categories)) {
    for (const subcategory of Object.keys(subcategories)) {
      if (link('Results')) {
        link('Results').click();
        await until(() => !link('Results'), 'the list of categories');
      }
      (await until(() => link(category), category)).click();
      // A category with one subcategory lists its results at once.
      const next = await until(() => link(subcategory) || document.querySelector('nav table tbody tr'), subcategory);
      if (next.tagName === 'A') next.click();
      const rows = await until(() => document.querySelectorAll('nav table tbody tr').length
                                     && document.querySelectorAll('nav table tbody tr'), 'rows');
      for (let i = 0; i < rows.length; i++) {
        const eye = document.querySelectorAll('nav table tbody tr')[i].querySelector('a[iconname=eye]');
        if (eye.hasAttribute('download')) {
          seen[pathOf(eye.getAttribute('href'))] = {download: eye.getAttribute('href').split(';')[0]};
          continue;
        }
        const before = new Set([...document.querySelectorAll('#app img, #app iframe')].map(e => e.src));
        eye.click();
        const shown = await until(() => [...document.querySelectorAll('#app img, #app iframe')]
                                        .find(e => !before.has(e.src) && pathOf(e.src)), 'view ' + i);
        if (shown.tagName === 'IMG') {
          await shown.decode();
          seen[pathOf(shown.src)] = {image: [shown.naturalWidth, shown.naturalHeight]};
        } else {
          seen[pathOf(shown.src)] = {frame: true};
        }
      }
    }
  }
  for (const [path, entry] of Object.entries(results)) {
    if (entry.mime_type !== 'text/html') continue;
    const bytes = Uint8Array.from(atob(entry.data_uri.split('base64,')[1]), c => c.charCodeAt(0));
    const page = new DOMParser().parseFromString(new TextDecoder().decode(bytes), 'text/html');
    const source = page.querySelector('video');
    if (!source) { seen[path].tables = page.querySelectorAll('table').length; continue; }
    const player = document.createElement('video');
    player.muted = true;
    await new Promise((played, failed) => {
      player.onloadeddata = played;
      player.onerror = () => failed(new Error(path + ': video error ' + player.error.code));
      player.src = source.getAttribute('src');
    });
    seen[path].video = [player.videoWidth, player.videoHeight, player.duration];
  }
  return JSON.stringify(seen);
})()"""


def test_report_opens_in_chromium(built, chromium):
    chromium.call("Page.navigate", url=built["report"].as_uri())
    deadline = time.monotonic() + 60
    while "2. Variants" not in (chromium.evaluate("document.getElementById('app')?.innerText || ''") or ""):
        assert time.monotonic() < deadline, "the report did not render"
        time.sleep(0.1)
    seen = json.loads(chromium.evaluate(WALK))
    assert chromium.errors() == []
    sizes = _expected_sizes()
    assert sorted(seen) == sorted(_report_results(built["report"]))
    for name, (height, width) in sizes.items():
        assert seen[f"results/report/{name}"] == {"image": [width, height]}, name
    assert seen["results/report/fvd_table.html"] == {"frame": True, "tables": 2}
    header = video.HEADER_LINES * video.LINE_HEIGHT
    for name in SHOWN:
        assert seen[f"results/report/videos/{name}.mp4"] == {"download": "data:video/mp4"}
        page = seen[f"results/report/videos/{name}.html"]
        assert page["frame"] is True
        assert page["video"][:2] == [2 * SIZE[1] * VIDEO_SCALE + video.GAP, header + SIZE[0] * VIDEO_SCALE]
        assert page["video"][2] == pytest.approx(4 * VIDEO_FRAMES / video.FPS, abs=0.1)


# ---- small parts ---------------------------------------------------------------------------------


def test_weight_notes_read_nested_provenance():
    labeller = {"stage": "label_semantic", "weights": {"path": "m.pt", "self_trained": True}}
    videos = {"stage": "synthesize", "model_provenance": {
        "stage": "train", "variant": "v03", "steps": 7, "backbone_weights": {"perceptual": "random"},
        "data_provenance": json.dumps({"inputs": {"semantic": {"a": labeller}},
                                       "flow": {"stage": "reference_flow", "weights_real": False}})}}
    notes = weight_notes([{"i3d": RANDOM_I3D}, videos])
    assert notes == ["narrow random I3D (width 0.25): FVD not comparable to published", "random perceptual backbone",
                     "self-trained semantic labeller", "random-weight flow network",
                     "generators trained here (7 steps)"]
    real = {"stage": "train", "backbone_weights": {"perceptual": "path:vgg.pth sha256:ab"},
            "i3d": {"kind": "tfhub"}}
    assert weight_notes([real]) == []
    assert notes_line([]) == "Weights: no random or self-trained weights"


def test_weight_notes_name_each_network_once():
    """A packed file's record holds its inputs' records and a summary of them (``labellers``, as
    pipeline.pack.writer writes it): a random-weight FlowNet2 is one note, not two names."""
    flow = {"stage": "reference_flow", "backend": "flownet2", "weights_real": False}
    semantic = {"stage": "label_semantic", "backend": "deeplabv3plus", "weights_real": False}
    summary = {"flow": {"backend": "flownet2", "weights_real": False},
               "semantic": {"backend": "deeplabv3plus", "weights_real": False}}
    pack = {"stage": "pack", "inputs": {"flow": {"beta": flow}, "semantic": {"beta": semantic}}, "labellers": summary}
    assert weight_notes([pack]) == ["random-weight flow network", "random-weight semantic labeller"]
    assert weight_notes([{"stage": "pack", "labellers": summary}]) == ["random-weight flow network",
                                                                         "random-weight semantic labeller"]


def test_loss_columns_have_one_home_the_report_reads_without_torch():
    """The columns the training loop writes before the loss terms are the ones the report skips,
    from one torch-free module: the report neither imports training nor copies its list."""
    from pipeline.train.log_columns import LOG_COLUMNS
    from pipeline.train.loop import _LossLog

    assert _LossLog.COLUMNS == list(LOG_COLUMNS) and losses.LOG_COLUMNS is LOG_COLUMNS
    check = "import sys, pipeline.report.losses; print(sorted({'torch', 'tensorflow'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", check], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "[]", done.stderr[-2000:]


def test_the_strip_and_the_video_read_only_the_videos_they_show(tmp_path, monkeypatch):
    """A study's videos file holds 128 videos (800 MB, the rules ask for 2 GB): the strip reads
    its one video and the MP4 its first --count from each set, not the whole files."""
    import h5py

    shape = (6, 4, 8, 16, 3)
    fake = np.random.default_rng(0).integers(0, 255, shape, dtype=np.uint8)
    real = fake[::-1].copy()
    write_videos(tmp_path / "v01.h5", fake, {"variant": "v01"})
    write_videos(tmp_path / "real.h5", real, {"stage": "real_videos"})
    videos_read = []
    read = h5py.Dataset.__getitem__

    def counting(dataset, key):
        array = read(dataset, key)
        if dataset.name == "/videos":
            videos_read.append(np.asarray(array).size // int(np.prod(shape[1:])))
        return array

    monkeypatch.setattr(h5py.Dataset, "__getitem__", counting)
    labels, flow = np.zeros(shape[1:4], np.uint8), np.zeros((*shape[1:4], 2), np.float32)
    monkeypatch.setattr(strip, "packed_frames", lambda *args: (labels, flow, "a_000000_000001", 0))
    sets = ["--videos", str(tmp_path / "v01.h5"), "--real", str(tmp_path / "real.h5")]
    strip.main([*sets, "--data", "unused.h5", "--video", "3", "--output", str(tmp_path / "strip.png")])
    assert videos_read == [1, 1]
    picture, scale = _picture(tmp_path / "strip.png"), figures.display_scale(shape[2])
    top, height, width = strip.HEADER_LINES * strip.LINE_HEIGHT, shape[2] * scale, shape[3] * scale
    np.testing.assert_array_equal(picture[top:top + height, strip.MARGIN:strip.MARGIN + width],
                                  figures.upscale(real[3, 0], scale))           # the video asked for
    videos_read.clear()
    video.main([*sets, "--count", "2", "--output", str(tmp_path / "v.mp4"), "--page", str(tmp_path / "v.html")])
    assert videos_read == [2, 2]
    assert "Test videos 0 to 1" in (tmp_path / "v.html").read_text()
    from pipeline.errors import PipelineError

    with pytest.raises(PipelineError, match="holds 6 videos"):
        strip.paired_videos(tmp_path / "v01.h5", tmp_path / "real.h5", slice(6, 7))


def test_provenance_survives_in_png_and_html(tmp_path):
    """The record round-trips through both writers; text that would end the page's script element
    is escaped (JSON reads it back unchanged)."""
    record = {"stage": "report.strip", "arguments": {"output": "</script><b>x</b>"}}
    figures.write_png(tmp_path / "a.png", np.zeros((4, 6, 3), np.uint8), record)
    assert _png_record(tmp_path / "a.png") == record
    fig, _ = figures.figure(60, 40)
    figures.save_figure(fig, tmp_path / "b.png", record)
    assert _png_record(tmp_path / "b.png") == record
    page = tmp_path / "page.html"
    page.write_text(f"<html><body>{figures.provenance_html(record)}</body></html>")
    assert _page_record(page) == record


def test_warping_picture_draws_the_real_videos_level(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    drawn = []
    monkeypatch.setattr(warping, "save_figure", lambda fig, path, record: drawn.append(fig))
    order = [{"variant": "v01", "index": "1", "network": "crn"}, {"variant": "v11", "index": "11", "network": "pix2pixhd"}]
    records = {name: {"warping_error": error, "warping_error_std": 0.0, "per_video": [error],
                      "real_warping_error": 0.007, "mask_kept_share": 0.87}
               for name, error in (("v01", 0.0004), ("v11", 0.06))}
    old = {name: {key: record[key] for key in ("warping_error", "per_video")} for name, record in records.items()}
    for given in (records, old):
        warping.draw_warping(order, given, "Weights: x", tmp_path / "warping.png", record={})
    dashed = [[line for line in fig.axes[0].get_lines() if line.get_linestyle() == "--"] for fig in drawn]
    assert len(dashed[0]) == 1 and set(dashed[0][0].get_ydata()) == {0.007} and "87%" in dashed[0][0].get_label()
    assert dashed[1] == []                      # JSONs written before the real level was recorded
    for fig in drawn:
        plt.close(fig)


def test_an_unmeasured_warping_error_written_as_null_is_drawn_n_a_and_left_blank_in_the_table(tmp_path, drawn):
    """Synthesis writes null for a figure it could not measure (strict JSON has no NaN); the
    picture reads it as NaN ("n/a", no bar) and the table leaves the cell blank."""
    from pipeline.fvd import table as table_stage
    from pipeline.io import write_json
    from pipeline.synthesize.warping import warping_summary
    unmeasured = {"error": float("nan"), "real_error": float("nan"), "mask_kept_share": 0.0}
    write_json(tmp_path / "v01.json", warping_summary("v01", [unmeasured, unmeasured], {}))
    write_json(tmp_path / "v11.json", warping_summary("v11", [dict(unmeasured, error=0.05, real_error=0.01)] * 2, {}))
    assert json.loads((tmp_path / "v01.json").read_text())["warping_error"] is None
    records = warping.read_warping([tmp_path / "v01.json", tmp_path / "v11.json"])
    assert np.isnan(records["v01"]["warping_error"]) and np.isnan(records["v01"]["per_video"]).all()
    order = [{"variant": "v01", "index": "1", "network": "crn"}, {"variant": "v11", "index": "11", "network": "pix2pixhd"}]
    warping.draw_warping(order, records, "Weights: x", tmp_path / "warping.png", record={})
    assert any(text.get_text() == "n/a" for text in drawn[-1].axes[0].texts)
    found = {name: (json.loads((tmp_path / f"{name}.json").read_text()), tmp_path / f"{name}.json")
             for name in ("v01", "v11")}
    assert np.isnan(table_stage._optional_number(found, "v01", ["warping_error"]))
    assert table_stage._optional_number(found, "v11", ["warping_error"]) == pytest.approx(0.05)

def test_bad_inputs_name_the_file(tmp_path):
    from pipeline.errors import PipelineError

    write_videos(tmp_path / "a.h5", np.zeros((2, 3, 8, 8, 3), np.uint8), {"variant": "v01"})
    write_videos(tmp_path / "real.h5", np.zeros((2, 4, 8, 8, 3), np.uint8), {})
    with pytest.raises(PipelineError, match="do not pair") as error:
        strip.paired_videos(tmp_path / "a.h5", tmp_path / "real.h5", slice(0, 1))
    assert error.value.path == tmp_path / "a.h5"
    (tmp_path / "losses.csv").write_text("step,stage,epoch,sample,lr,snippet\n1,0,0,0,0.1,x\n")
    with pytest.raises(PipelineError, match="no loss columns"):
        losses.loss_series(tmp_path / "losses.csv")
    (tmp_path / "b.tsv").write_text("x\ty\n1\t2\n")
    with pytest.raises(PipelineError, match="benchmark"):
        timing.benchmark_seconds(tmp_path / "b.tsv")
    # An FVD table with no rows (or not the table) is refused by the page and the chart alike,
    # rather than drawn as an empty page.
    from pipeline.report import table

    (tmp_path / "fvd_table.csv").write_text(",".join(fvd_chart.TABLE_COLUMNS) + "\n")
    (tmp_path / "other.csv").write_text("variant,fvd\nv01,1.0\n")
    for csv_file, problem in (("fvd_table.csv", "FVD table has no rows"), ("other.csv", "FVD table lacks columns")):
        for draw in (lambda out: table.main(["--table", str(tmp_path / csv_file), "--output", str(out)]),
                     lambda out: fvd_chart.main(["--table", str(tmp_path / csv_file), "--output", str(out)])):
            with pytest.raises(PipelineError, match=problem) as error:
                draw(tmp_path / "page")
            assert error.value.path == tmp_path / csv_file and not (tmp_path / "page").exists()


# ---- what the pictures show (drawn in memory, no workdir) -------------------------------------


@pytest.fixture
def drawn(monkeypatch):
    """The figures the picture modules would save, kept open and drawn (so their layout is done)."""
    import matplotlib.pyplot as plt

    kept = []

    def keep(fig, path, record):
        fig.canvas.draw()
        kept.append(fig)

    for module in (losses, fvd_chart, label_quality, flow_quality, timing, warping):
        monkeypatch.setattr(module, "save_figure", keep)
    yield kept
    for fig in kept:
        plt.close(fig)


def _suptitle(fig) -> str:
    return fig.get_suptitle()


def test_loss_panel_titles_clear_the_row_above(drawn):
    """Eleven loss terms (a flow variant's log), four rows: no panel title runs into the step
    labels of the panel above it, and each panel says what its y axis holds."""
    steps = np.arange(1.0, 6.0)
    terms = {f"term_{k}": np.linspace(1.0, 2.0, 5) + k for k in range(11)}
    losses.draw_losses(steps, np.array([0, 0, 0, 1, 1.0]), terms, "v09: training losses", "Weights: x", "unused",
                       record={})
    fig = drawn[0]
    renderer = fig.canvas.get_renderer()
    panels = [axis for axis in fig.axes if axis.get_visible()]
    assert len(panels) == 11
    titles = [axis.title.get_window_extent(renderer) for axis in panels]
    below = [text.get_window_extent(renderer) for axis in panels
             for text in [axis.xaxis.label, *axis.get_xticklabels()] if text.get_text()]
    suptitle = fig._suptitle.get_window_extent(renderer)
    assert not [(t, b) for t in titles for b in [*below, suptitle] if t.overlaps(b)]
    assert all("loss" in axis.get_ylabel() for axis in panels)


def test_loss_curves_carry_a_rolling_mean_within_each_stage(drawn):
    """A long noisy log: the logged values faint, a rolling mean solid over them, and the mean does
    not blur the jump where a new CRN stage starts."""
    rng = np.random.default_rng(0)
    steps = np.arange(1.0, 401.0)
    stages = (steps > 200).astype(float)
    level = np.where(stages == 0, 1.0, 3.0)
    values = level + rng.normal(0.0, 0.3, len(steps))
    losses.draw_losses(steps, stages, {"gan": values}, "v01", "Weights: x", "unused", record={})
    curves = [line for line in drawn[0].axes[0].lines if len(line.get_xdata()) == len(steps)]
    raw, mean = curves
    assert raw.get_alpha() < 0.5 and (mean.get_alpha() or 1.0) == 1.0
    smoothed = np.asarray(mean.get_ydata())
    assert np.std(smoothed - level) < 0.3 * np.std(values - level)          # the noise averaged out
    assert smoothed[199] == pytest.approx(1.0, abs=0.15) and smoothed[200] == pytest.approx(3.0, abs=0.15)
    window = losses.smoothing_window(len(steps))
    assert window > 1 and f"mean over {window}" in _suptitle(drawn[0])


def _flow_example() -> dict:
    flow = np.zeros((8, 16, 2), np.float32)
    flow[..., 0] = 1.0
    return {"frame": np.zeros((8, 16, 3), np.uint8), "truth": flow, "computed": flow * 0.9,
            "valid": np.ones((8, 16), bool), "name": np.array("a_000000_000001, frame 3 -> 4")}


def test_flow_quality_title_names_the_backend(drawn):
    result = {"cities": {"val/a": {"epe": 0.1, "zero_flow_epe": 1.0, "pairs": 7}}, "epe": 0.1,
              "zero_flow_epe": 1.0, "pairs": 7}
    flow_quality.draw_flow_quality(result, _flow_example(), ["dis"], "Weights: none", "unused", record={})
    flow_quality.draw_flow_quality(result, _flow_example(), ["flownet2"], "Weights: none", "unused", record={})
    assert "DIS" in _suptitle(drawn[0]).split("\n")[0]
    assert "FlowNet2" in _suptitle(drawn[1]).split("\n")[0]


def _fvd_rows(thesis: list[float]) -> list[dict]:
    return [{"variant": f"v{k + 1:02d}", "index": str(k + 1), "network": "crn", "fvd": 10.0 * k + 3,
             "fvd_pooled": 10.0 * k, "fvd_pooled_ci_low": 10.0 * k - 4, "fvd_pooled_ci_high": 10.0 * k + 4,
             "thesis_fvd": value} for k, value in enumerate(thesis)]


def test_fvd_chart_gives_the_rank_agreement_with_the_thesis(drawn):
    for thesis in ([100.0, 200.0, 300.0, 400.0], [400.0, 300.0, 200.0, 100.0], [400.0, 300.0, 200.0, float("nan")]):
        fvd_chart.draw_fvd_chart(_fvd_rows(thesis), "Weights: x", "unused", record={})
    same, reversed_, partial = (_suptitle(fig).split("\n")[0] for fig in drawn)
    assert "Kendall's tau 1.00" in same and "4 variants" in same
    assert "Kendall's tau -1.00" in reversed_
    assert "Kendall's tau -1.00" in partial and "3 variants" in partial      # the thesis lacks one


def test_fvd_chart_keeps_the_batch_mean_dots_off_the_pooled_interval(drawn):
    """The whisker is the pooled FVD's interval, drawn at its bar's centre; the batch-mean dot
    sits beside the bar, not inside it, and each panel names its y axis."""
    fvd_chart.draw_fvd_chart(_fvd_rows([100.0, 200.0, 300.0]), "Weights: x", "unused", record={})
    ours, thesis = drawn[0].axes
    bars = [(patch.get_x(), patch.get_x() + patch.get_width()) for patch in ours.patches]
    dots = next(line for line in ours.lines if "batch mean" in line.get_label())
    assert len(bars) == len(dots.get_xdata()) == 3
    assert all(not left <= x <= right for (left, right), x in zip(bars, dots.get_xdata()))
    labels = [text.get_text() for text in ours.get_legend().get_texts()]
    assert any("interval" in label and "pooled" in label for label in labels)
    assert "FVD" in ours.get_ylabel() and "FVD" in thesis.get_ylabel()


def test_fvd_chart_draws_no_whisker_where_there_is_no_interval(drawn):
    """fvd.bootstrap: 0 leaves the table's interval empty: a zero-length whisker would read as an
    exact value. Such a bar says "no interval"; with none anywhere the legend says so too."""
    from matplotlib.container import ErrorbarContainer

    nan = float("nan")
    some = _fvd_rows([100.0, 200.0, 300.0])
    for row in some[1:]:
        row.update(fvd_pooled_ci_low=nan, fvd_pooled_ci_high=nan)
    none = [dict(row, fvd_pooled_ci_low=nan, fvd_pooled_ci_high=nan) for row in some]
    for rows in (some, none):
        fvd_chart.draw_fvd_chart(rows, "Weights: x", "unused", record={})
    (with_some, *_), (with_none, *_) = (fig.axes for fig in drawn)
    whiskers = [c for c in with_some.containers if isinstance(c, ErrorbarContainer)]
    assert len(whiskers) == 1 and len(whiskers[0].lines[2][0].get_segments()) == 1
    assert [text.get_text() for text in with_some.texts] == ["no interval", "no interval"]
    assert not [c for c in with_none.containers if isinstance(c, ErrorbarContainer)]
    legend = [text.get_text() for text in with_none.get_legend().get_texts()]
    assert not any("interval of" in label for label in legend) and any("no bootstrap interval" in label
                                                                       for label in legend)


def test_missing_values_are_written_na_not_left_as_gaps(drawn):
    """A variant without an FVD, and warping errors that could not be measured (no pixel kept):
    "n/a" where the bar or dot would be, and no real-videos level drawn from NaN."""
    nan = float("nan")
    rows = _fvd_rows([100.0, 200.0, 300.0])
    rows[0].update(fvd=nan, fvd_pooled=nan, fvd_pooled_ci_low=nan, fvd_pooled_ci_high=nan)
    fvd_chart.draw_fvd_chart(rows, "Weights: x", "unused", record={})
    ours = drawn[0].axes[0]
    marks = sorted((text.get_text(), text.xy[0]) for text in ours.texts)
    assert marks == [("n/a", 0.0), ("n/a", fvd_chart.DOT_OFFSET)]
    assert ours.get_xlim()[0] < -fvd_chart.BAR_WIDTH / 2                   # the missing bar keeps its place
    order = [{"variant": name, "index": str(k + 1), "network": "crn"} for k, name in enumerate(("v01", "v02"))]
    unmeasured = {"warping_error": nan, "warping_error_std": nan, "per_video": [nan, nan], "real_warping_error": nan,
                  "mask_kept_share": 0.0}
    warping.draw_warping(order, {row["variant"]: unmeasured for row in order}, "Weights: x", "unused", record={})
    axis = drawn[1].axes[0]
    texts = [text.get_text() for text in axis.texts]
    assert texts.count("n/a") == 2 and "real videos' level: n/a (the mask kept 0% of pixels)" in texts
    assert axis.get_legend() is None and not [line for line in axis.lines if line.get_linestyle() == "--"]


def test_timing_counts_each_benchmark_file_for_its_rule(tmp_path):
    """Rules share benchmark folders (embed/heldout/ holds embed_heldout_real's file and
    embed_draw_candidates' ones, pack/ pack_gtfine's): each file counts for the rule whose pattern
    it matches, the most specific; a file no pattern names, for its first folder."""
    patterns = {"embed": "results/timing/embed/{variant}.tsv",
                "embed_heldout_real": "results/timing/embed/heldout/real.tsv",
                "embed_draw_candidates": "results/timing/embed/heldout/{variant}.tsv",
                "pack": "results/timing/pack/{split}.tsv", "pack_gtfine": "results/timing/pack/gtfine_train.tsv",
                "synthetic_city": "results/timing/synthetic_city.tsv"}
    files = {name: entry for name, entry in BENCHMARKS.items() if entry[0] in patterns}
    files["old/v01.tsv"] = ("old", 1.0)                    # a renamed benchmark line's leftover
    expected = _benchmarks(tmp_path / "results/timing", files)
    stages = timing.stage_times(tmp_path / "results/timing", patterns)
    assert {rule: entry["seconds"] for rule, entry in stages.items()} == pytest.approx(expected)
    assert len(expected) == 7 and all(entry["jobs"] == 1 for entry in stages.values())


def _strip_inputs(columns: int = 4, size: tuple[int, int] = (8, 16)):
    rng = np.random.default_rng(0)
    real = rng.integers(0, 255, (columns, *size, 3), dtype=np.uint8)
    flow = np.zeros((columns, *size, 2), np.float32)
    flow[columns - 1, 2, 3] = (1.2, 1.6)                    # the longest flow shown: 2 px
    return real, real[::-1].copy(), np.full((columns, *size), 7, np.uint8), flow


def test_strip_flow_row_has_a_colour_key_and_its_radius():
    """The flow row's name panel holds a colour wheel (many hues); the header gives the radius."""
    import cv2

    real, fake, labels, flow = _strip_inputs()
    picture = strip.strip_picture(real, fake, labels, flow, [0, 1, 2, 3], "v01: test video 0", "Weights: x")
    cell_h = 8 * figures.display_scale(8)
    top = strip.HEADER_LINES * strip.LINE_HEIGHT + (len(strip.ROWS) - 1) * (cell_h + strip.GAP)
    key = picture[top:top + cell_h, :strip.MARGIN]
    hsv = cv2.cvtColor(np.ascontiguousarray(key), cv2.COLOR_RGB2HSV)
    hues = hsv[..., 0][hsv[..., 1] > 100]                   # saturated pixels: the wheel's outer part
    assert len(np.unique(hues // 15)) >= 8                  # OpenCV hue 0..179: most of the 12 bins
    assert "max |flow| = 2.00 px" in strip.flow_scale_line(2.0, 8, 16)
    line = 2 * strip.LINE_HEIGHT                            # below the heading and one line of notes
    np.testing.assert_array_equal(picture[line:line + strip.LINE_HEIGHT],
                                  figures.text_bar(picture.shape[1], [strip.flow_scale_line(2.0, 8, 16)],
                                                   strip.LINE_HEIGHT))


def test_label_quality_axes_are_shares_up_to_one(drawn):
    result = {"cities": {"val/a": {"miou": 0.9, "instance_match_share": 1.0, "frames": 4, "frames_skipped": 0}},
              "miou": 0.9, "instance_match_share": 1.0, "frames": 4, "frames_skipped": 0,
              "class_iou": {7: 0.8, 23: 1.0}}
    label_quality.draw_label_quality(result, "Weights: x", "unused", record={})
    per_city, per_class = drawn[0].axes
    for axis in (per_city, per_class):
        assert axis.get_ylim()[1] <= 1.05 and "IoU" in axis.get_ylabel()


def test_timing_counts_in_hours_for_long_runs_and_colours_training_by_network(drawn):
    long_stages = {"train": {"seconds": 5 * 3600.0, "jobs": 2, "longest": 3 * 3600.0}}
    training = {"v01": 2 * 86400.0, "v10": 86400.0}
    summaries = [{"variant": "v01", "provenance": {"settings": {"entry": {"network": "crn"}}}},
                 {"variant": "v10", "provenance": {"settings": {"entry": {"network": "pix2pixhd"}}}}]
    networks = timing.training_networks(summaries)
    assert networks == {"v01": "crn", "v10": "pix2pixhd"}
    timing.draw_timing(long_stages, training, "Weights: x", "unused", networks, record={})
    timing.draw_timing({"train": {"seconds": 600.0, "jobs": 1, "longest": 600.0}}, {"v01": 1800.0, "v10": 60.0},
                       "Weights: x", "unused", {}, record={})
    import matplotlib.colors

    (stages_h, training_h), (stages_min, training_min) = (fig.axes for fig in drawn)
    assert "hours" in stages_h.get_xlabel() and "hours" in training_h.get_ylabel()
    assert [bar.get_height() for bar in training_h.patches] == pytest.approx([48.0, 24.0])
    assert stages_h.patches[0].get_width() == pytest.approx(5.0)
    assert "minutes" in stages_min.get_xlabel() and "minutes" in training_min.get_ylabel()
    assert [bar.get_height() for bar in training_min.patches] == pytest.approx([30.0, 1.0])
    colours = [matplotlib.colors.to_hex(bar.get_facecolor()) for bar in training_h.patches]
    assert colours == [figures.NETWORK_COLOURS["crn"], figures.NETWORK_COLOURS["pix2pixhd"]]
    assert len({matplotlib.colors.to_hex(bar.get_facecolor()) for bar in training_min.patches}) == 1


def test_short_durations_count_in_seconds_not_as_zero_minutes():
    """A demo run's stages take seconds: "0.0 min" said nothing; seconds below two minutes."""
    assert timing.time_unit(30.0)[1:] == ("s", "seconds")
    assert timing.time_unit(600.0)[1:] == ("min", "minutes")
    assert timing.time_unit(5 * 3600.0)[1:] == ("h", "hours")
    assert losses.duration({"training_seconds": 2.4}) == "2.4 s"
    assert losses.duration({"training_seconds": 1800.0}) == "30.0 min"
    assert losses.duration({}) == "time unknown"


def test_stage_longest_job_is_written_in_its_own_unit(drawn):
    timing.draw_timing({"train": {"seconds": 600.0, "jobs": 100, "longest": 6.0}}, {"v01": 60.0},
                       "Weights: x", "unused", {}, record={})
    stages_axis, training_axis = drawn[0].axes
    assert [text.get_text() for text in stages_axis.texts] == [" 100 job(s), longest 6.0 s"]
    assert "seconds" in training_axis.get_ylabel()


def test_warping_axis_is_logarithmic_for_a_wide_spread(drawn):
    """One flickering variant 350 times the others: on a linear axis the others vanish below the
    real level; a log axis shows them, and the title does not call the lowest bar the best."""
    order = [{"variant": f"v0{k}", "index": str(k), "network": "crn"} for k in (1, 2, 3)]
    records = {name: {"warping_error": error, "warping_error_std": 0.8 * error, "per_video": [error],
                      "real_warping_error": 0.008, "mask_kept_share": 0.9}
               for name, error in (("v01", 0.14), ("v02", 0.0004), ("v03", 0.001))}
    warping.draw_warping(order, records, "Weights: x", "unused", record={})
    records["v01"] = {**records["v01"], "warping_error": 0.002, "per_video": [0.002]}
    warping.draw_warping(order, records, "Weights: x", "unused", record={})
    wide, narrow = (fig.axes[0] for fig in drawn)
    assert wide.get_yscale() == "log" and narrow.get_yscale() == "linear" and narrow.get_ylim()[0] == 0
    assert wide.get_ylim()[0] > 0
    assert "lower: more temporally consistent" not in _suptitle(drawn[0])
    assert "real-videos level is best" in _suptitle(drawn[0])
    assert not warping.log_scale([0.0, 0.5]) and not warping.log_scale([float("nan")])


def test_non_network_bars_avoid_the_network_colours(drawn):
    """Blue and orange mean CRN and pix2pixHD in every picture: the label and flow bars are neither."""
    import matplotlib.colors

    result = {"cities": {"train/a": {"miou": 0.9, "instance_match_share": 0.5, "frames": 4, "frames_skipped": 0},
                         "val/b": {"miou": 0.8, "instance_match_share": 0.4, "frames": 4, "frames_skipped": 0}},
              "miou": 0.85, "instance_match_share": 0.45, "frames": 8, "frames_skipped": 0, "class_iou": {7: 0.8}}
    label_quality.draw_label_quality(result, "Weights: x", "unused", record={})
    per_city = drawn[0].axes[0]
    network = {matplotlib.colors.to_hex(colour) for colour in figures.NETWORK_COLOURS.values()}
    network |= {matplotlib.colors.to_hex(f"C{k}") for k in (0, 1)}
    used = {matplotlib.colors.to_hex(bar.get_facecolor()) for bar in per_city.patches}
    assert len(used) == 2 and not used & network
    assert "own training scenes" in per_city.get_title()
    flow_quality.draw_flow_quality({"cities": {"val/b": {"epe": 1.0, "zero_flow_epe": 4.0}}, "epe": 1.0,
                                    "zero_flow_epe": 4.0, "pairs": 3}, _flow_example(), ["dis"], "Weights: x",
                                   "unused", record={})
    bars = next(axis for axis in drawn[1].axes if axis.get_ylabel().startswith("end-point"))
    assert not {matplotlib.colors.to_hex(bar.get_facecolor()) for bar in bars.patches} & network


def test_flow_error_colourbar_is_as_tall_as_its_image(drawn):
    result = {"cities": {"val/a": {"epe": 0.1, "zero_flow_epe": 1.0}}, "epe": 0.1, "zero_flow_epe": 1.0, "pairs": 7}
    flow_quality.draw_flow_quality(result, _flow_example(), ["dis"], "Weights: x", "unused", record={})
    error = next(axis for axis in drawn[0].axes if axis.get_title().startswith("EPE"))
    image = error.get_window_extent()
    (bar,) = [axis.get_window_extent() for axis in drawn[0].axes if axis.get_label() == "<colorbar>"] or \
        [axis.get_window_extent() for axis in error.child_axes]
    assert bar.height == pytest.approx(image.height, abs=1) and bar.x0 >= image.x1


def test_loss_lines_take_their_network_colour(drawn):
    import matplotlib.colors

    steps = np.arange(1.0, 6.0)
    for network in ("crn", "pix2pixhd"):
        losses.draw_losses(steps, np.zeros(5), {"gan": steps}, "v", "Weights: x", "unused", network, record={})
    for fig, network in zip(drawn, ("crn", "pix2pixhd")):
        assert {matplotlib.colors.to_hex(line.get_color()) for line in fig.axes[0].lines} == {
            figures.NETWORK_COLOURS[network]}
