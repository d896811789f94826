"""What training leaves beside its weights, and what a resume checks: TensorBoard events of the
loss log, the data's identity in the resume fingerprint, and DataLoader workers that outlive a
job-wide SIGTERM."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import pytest
import torch

from conftest import REPO, make_packed_city
from pipeline.config import DEFAULT_CONFIG, load_config, merge
from pipeline.errors import PipelineError
from pipeline.train.events import EVENTS_DIR, ScalarLog
from pipeline.train.loop import TERMINATED_EXIT, train_variant
from pipeline.train.settings import train_settings
from pipeline.train.state import RESUME_NAME

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402  (after events)

TINY = {"train": {"crn": {"stages": [{"height": 16, "width": 32, "epochs": 1}, {"height": 32, "width": 64, "epochs": 1}]},
                  "model_overrides": {"generator": {"width_divisor": 64}}},
        "weights": {"allow_random": True}}


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    return make_packed_city(tmp_path_factory.mktemp("records_city"), train=3, val=1)


@pytest.fixture(scope="module")
def settings():
    return train_settings(merge(load_config([DEFAULT_CONFIG]), TINY), "v02")


def scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar series in ``folder`` as TensorBoard reads it (purges applied)."""
    events = EventAccumulator(str(folder))
    events.Reload()
    return {tag: [(event.step, event.value) for event in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def train(settings, data, work: Path):
    return train_variant("v02", settings, data, work / "out", work / "resume", "cpu", progress=False)


def test_events_hold_the_loss_logs_rows(settings, packed, tmp_path):
    train(settings, packed["train"], tmp_path)
    with open(tmp_path / "out" / "losses.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    series = scalars(tmp_path / "out" / EVENTS_DIR)
    terms = [name for name in rows[0] if name not in ("step", "stage", "epoch", "sample", "lr", "snippet")]
    assert terms and set(series) == {"lr"} | {f"loss/{name}" for name in terms}
    assert len(rows) == 2 * 3                      # two stages of one epoch over 3 snippets
    for name in ["lr", *terms]:
        logged = series[name if name == "lr" else f"loss/{name}"]
        assert [step for step, _ in logged] == [int(row["step"]) for row in rows]
        assert [value for _, value in logged] == pytest.approx([float(row[name]) for row in rows], rel=1e-5)


def test_a_resumed_log_drops_what_was_logged_after_the_last_save(tmp_path):
    """A job killed outright (SIGKILL, a node lost) after its save at window 3 had logged 4 and
    5; the resumed job logs 4 to 6 again: TensorBoard shows each window once, the second time's."""
    first = ScalarLog(tmp_path, 0)
    for step in range(1, 6):
        first.write(step, 0.1, {"perceptual": float(step)})
    first.close()
    resumed = ScalarLog(tmp_path, 3)
    for step in range(4, 7):
        resumed.write(step, 0.1, {"perceptual": 10.0 * step})
    resumed.close()
    assert scalars(tmp_path)["loss/perceptual"] == [(1, 1.0), (2, 2.0), (3, 3.0), (4, 40.0), (5, 50.0), (6, 60.0)]
    ScalarLog(tmp_path, 0).close()                 # a fresh start: the old run's events are gone
    assert scalars(tmp_path) == {}


def test_the_events_writer_keeps_tensorflow_out_of_training():
    """TensorFlow is installed here (the FVD stages): TensorBoard would load it into the training
    process (seconds, and a crash beside triton) but for the switch in pipeline.train.events."""
    script = textwrap.dedent("""
        import sys, tempfile
        from pipeline.train.events import ScalarLog
        log = ScalarLog(__import__("pathlib").Path(tempfile.mkdtemp()), 0)
        log.write(1, 0.1, {"gan": 1.0})
        log.close()
        print("tensorflow" in sys.modules)
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_new_data_is_not_trained_on_with_the_old_runs_state(settings, packed, tmp_path):
    """The packed file changes (labels redone, repacked) and Snakemake reruns train: a finished
    run's state gives way (it would hand back the old weights), a killed run's is refused (it
    would go on with the new data)."""
    data = tmp_path / "train.h5"
    data.write_bytes(packed["train"].read_bytes())
    train(settings, data, tmp_path)
    with h5py.File(data, "r+") as packed_file:            # what a repack changes: its provenance
        packed_file.attrs["provenance"] = packed_file.attrs["provenance"].replace('"created": "', '"created": "0')
    state_file = tmp_path / "resume" / RESUME_NAME
    state = torch.load(state_file, weights_only=False)
    state["finished"] = False                             # as a run killed mid-way leaves it
    torch.save(state, state_file)
    with pytest.raises(PipelineError, match=r"data\.pack_provenance_sha256: saved '[0-9a-f]{16}', now"):
        train(settings, data, tmp_path)
    state["finished"] = True
    torch.save(state, state_file)
    train(settings, data, tmp_path)                       # afresh, on the new data
    assert torch.load(state_file, weights_only=False)["fingerprint"]["settings"]["data.pack_provenance_sha256"] \
        != state["fingerprint"]["settings"]["data.pack_provenance_sha256"]


def test_loader_workers_outlive_a_sigterm_sent_to_the_whole_job(tmp_path):
    """PBS and Slurm signal every process of a job at the walltime: the loop must still see its
    flag and save, not die of a worker killed by the same SIGTERM."""
    script = textwrap.dedent("""
        import sys, time, torch
        from pipeline.train.loop import make_loader
        from pipeline.train.state import StopFlag

        class Slow(torch.utils.data.Dataset):
            def __len__(self):
                return 1000
            def __getitem__(self, index):
                time.sleep(0.05)
                return torch.tensor(index)

        flag = StopFlag()
        for number, sample in enumerate(make_loader(Slow(), list(range(1000)), torch.device("cpu"), 0, workers=2)):
            if number == 0:
                print("reading", flush=True)
            if flag.requested:
                print("saved", flush=True)
                sys.exit(143)
    """)
    process = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    assert process.stdout.readline().strip() == "reading"
    os.killpg(process.pid, signal.SIGTERM)                # the main process and both workers
    out, err = process.communicate(timeout=60)
    assert process.returncode == TERMINATED_EXIT, err
    assert out.strip() == "saved"


def test_ctrl_c_saves_like_sigterm_and_a_second_one_interrupts_at_once(packed, tmp_path):
    """A local run's Ctrl-C (SIGINT) saves at the next window and exits 130, where it lost up to
    checkpoint_minutes of training; a second Ctrl-C still interrupts at once."""
    import json
    import time

    from pipeline.cli import INTERRUPTED_EXIT
    from pipeline.train.state import StopFlag
    # A first stage of minutes, so that the Ctrl-C lands in it however loaded the machine.
    long = merge(TINY, {"train": {"crn": {"stages": [{"height": 16, "width": 32, "epochs": 2000},
                                                     {"height": 32, "width": 64, "epochs": 1}]}}})
    settings = train_settings(merge(load_config([DEFAULT_CONFIG]), long), "v02")
    command = [sys.executable, "-m", "pipeline.train", "--variant", "v02", "--data", str(packed["train"]),
               "--output", str(tmp_path / "out"), "--resume", str(tmp_path / "resume"), "--device", "cpu",
               "--settings", json.dumps(settings)]
    # As from a terminal: a test run started in the background (as CI may be) ignores SIGINT,
    # which a child inherits, and StopFlag then leaves it ignored.
    process = subprocess.Popen(command, cwd=REPO, env=dict(os.environ, OMP_NUM_THREADS="1"),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    history = tmp_path / "resume" / "history.log"
    try:
        while process.poll() is None and not history.is_file():     # written as the loop starts
            time.sleep(0.02)
        time.sleep(1.0)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == INTERRUPTED_EXIT, err
    saved = torch.load(tmp_path / "resume" / RESUME_NAME, weights_only=False)
    assert not saved["finished"] and saved["position"]["step"] >= 1
    assert "Ctrl-C (SIGINT): saved at window" in (tmp_path / "resume" / "history.log").read_text()

    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)   # as from a terminal (see above)
    flag = StopFlag()
    try:
        os.kill(os.getpid(), signal.SIGINT)
        assert flag.requested and flag.exit_code == INTERRUPTED_EXIT
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    finally:
        flag.restore()
        signal.signal(signal.SIGINT, inherited)


def test_a_loss_gone_non_finite_stops_training_before_anything_is_saved(packed, tmp_path):
    """A NaN in the packed flow (pack refuses one; a file edited or damaged after packing does
    not) makes a flow variant's loss NaN: training stops there, naming the window and the terms,
    and saves neither a resume state nor model.pt holding NaN weights."""
    import shutil

    import numpy as np
    data = tmp_path / "train.h5"
    shutil.copy(packed["train"], data)
    with h5py.File(data, "r+") as file:
        flow = file["16x32/flow"]
        values = flow[()]
        values[:, 1:, 3, 4, 0] = np.nan          # one pixel of every frame's flow: whatever windows are drawn
        flow[()] = values
    v09 = train_settings(merge(load_config([DEFAULT_CONFIG]), TINY), "v09")
    with pytest.raises(PipelineError, match=r"v09: the loss is not finite at window \d+ .*= nan") as stopped:
        train_variant("v09", v09, data, tmp_path / "out", tmp_path / "resume", "cpu", progress=False)
    assert "pipeline.pack --verify" in str(stopped.value)
    assert not (tmp_path / "resume" / RESUME_NAME).exists() and not (tmp_path / "out" / "model.pt").exists()
    assert "stopped at window" in (tmp_path / "resume" / "history.log").read_text()


def test_a_pack_of_held_out_data_is_refused_before_training(packed, tmp_path):
    """Training v02 or v07 on the val pack (the test videos) would score them on their own
    training data: refused, naming the file and the split it holds, before any state is made."""
    config = merge(load_config([DEFAULT_CONFIG]), TINY)
    for variant, needs in (("v02", r"gtfine_train \(train\.image_data\)"), ("v07", r"train \(the subset's snippets")):
        with pytest.raises(PipelineError, match=rf"^{packed['val']}: holds the 'val' split; {variant} trains on {needs}"):
            train_variant(variant, train_settings(config, variant), packed["val"], tmp_path / "out", tmp_path / "resume",
                          "cpu", progress=False)
    assert not (tmp_path / "resume").exists()


def test_a_file_that_is_not_a_trained_model_is_named(tmp_path):
    """synthesize and cluster_features load model.pt: a resume state or a bare state dict given in
    its place is named with what it lacks, not a KeyError."""
    from pipeline.train.checkpoint import load_trained
    torch.save({"fingerprint": {}, "modules": {}, "position": {}}, tmp_path / "resume.pt")
    torch.save(torch.nn.Linear(2, 2).state_dict(), tmp_path / "weights.pt")
    with pytest.raises(PipelineError, match=r"resume.pt: not a trained model of pipeline.train: no variant, entry.*"
                                            r"a resume state: the finished model is results/train/\{variant\}/model.pt"):
        load_trained(tmp_path / "resume.pt")
    with pytest.raises(PipelineError, match=r"weights.pt: not a trained model of pipeline.train: no variant"):
        load_trained(tmp_path / "weights.pt")


def test_an_output_folder_that_cannot_exist_is_named_before_training(settings, packed, tmp_path):
    """A file where the output folder should be was found only when the finished run wrote model.pt."""
    (tmp_path / "results").write_text("a file")
    with pytest.raises(PipelineError, match=r"out/model.pt: cannot be written: .*/results is a file, not a folder"):
        train_variant("v02", settings, packed["train"], tmp_path / "results" / "out", tmp_path / "resume", "cpu",
                      progress=False)
    assert not (tmp_path / "resume").exists()


def test_a_job_started_with_sigint_ignored_keeps_ignoring_it():
    """A job started in the background (``cmd &``) inherits SIGINT ignored: the terminal's Ctrl-C
    is not for it, and StopFlag leaves it so (SIGTERM still saves)."""
    script = textwrap.dedent("""
        import os, signal
        from pipeline.train.state import StopFlag
        flag = StopFlag()
        os.kill(os.getpid(), signal.SIGINT)
        print(flag.requested, flush=True)
        os.kill(os.getpid(), signal.SIGTERM)
        print(flag.requested, flag.exit_code, flush=True)
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    assert result.stdout.split() == ["False", "True", str(TERMINATED_EXIT)], result.stderr
