"""The label fits survive a walltime kill: SIGTERM (or a crash after a timed save) and a
resubmitted job end with the unbroken run's weights, optimiser, RNG states and losses; a resume
folder of another fit, settings or frames, or a corrupt one, is refused naming the file and keys.

SIGTERM is sent in-process at a chosen step (from the lr schedule, which every step calls once),
so where the fit stops is deterministic."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.cli import TERMINATED_EXIT, run_main
from pipeline.data.subset import select_subset
from pipeline.errors import PipelineError
from pipeline.io import write_json
from pipeline.labels import fit_instances, fit_segmenter, resume
from pipeline.labels.checkpoint import read_checkpoint
from pipeline.labels.gtfine import annotated_frames
from pipeline.labels.runtime import EpochBatches
from tests.conftest import write_snippet
from tests.test_train import assert_identical

ENCODER = "resnet18"
# 3 frames in batches of 2: the batches span epochs, so a kill after step 1 leaves part of the
# second epoch's permutation pending, which the resume must take up.
SEGMENTER = {"encoder": ENCODER, "encoder_depth": 4, "input_height": 32, "input_width": 48,
             "fit": {"epochs": 3, "batch_size": 2, "lr": 0.01, "crop_height": 32, "crop_width": 32,
                     "scale_min": 0.8, "scale_max": 1.2, "dice_weight": 0.0, "optimizer": "sgd",
                     "class_weight_power": 0.5, "amp": False, "seed": 0}}
INSTANCE = {"min_size": 32, "max_size": 64,
            "fit": {"epochs": 2, "batch_size": 2, "lr": 0.001, "rois_per_image": 32, "amp": False, "seed": 0}}
KILL_STEP = 1


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def subset(tmp_path_factory) -> Path:
    """Three train snippets of one city (so three annotated frames) and the subset file."""
    work = tmp_path_factory.mktemp("city")
    root = work / "cityscapes"
    for seq in range(3):
        write_snippet(root, "train", "alpha", seq, 19, size=(24, 40))
    write_snippet(root, "val", "gamma", 0, 19, size=(24, 40))
    write_json(work / "subset.json", select_subset(root, {"train_cities": None, "test_split": "val",
                                                          "test_sequences": 1}))
    return work / "subset.json"


def sigterm_at(monkeypatch, step: int) -> None:
    """SIGTERM to this process while the fit (either: they share ``run_fit``) sets the lr of
    ``step``: the fit finishes the step, saves and exits 143."""
    schedule = resume.warmup_poly_lr

    def schedule_then_signal(at: int, *args, **kwargs) -> float:
        if at == step:
            # Only where the fit handles it: the default action would end pytest.
            assert signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, signal.SIG_IGN)
            os.kill(os.getpid(), signal.SIGTERM)
        return schedule(at, *args, **kwargs)

    monkeypatch.setattr(resume, "warmup_poly_lr", schedule_then_signal)


def crash_at(monkeypatch, step: int) -> None:
    """A crash (no SIGTERM, no save: a lost node) as the fit begins ``step``."""
    schedule = resume.warmup_poly_lr

    def schedule_or_crash(at: int, *args, **kwargs) -> float:
        if at == step:
            raise RuntimeError("node lost")
        return schedule(at, *args, **kwargs)

    monkeypatch.setattr(resume, "warmup_poly_lr", schedule_or_crash)


def saved_state(folder: Path) -> dict:
    """resume.pt less the seconds spent, which differ from run to run."""
    state = torch.load(folder / "resume.pt", map_location="cpu", weights_only=False)
    assert state["extra"].pop("elapsed") >= 0
    return state


def segmenter_main(subset: Path, output: Path, *extra: str) -> None:
    fit_segmenter.main(["--subset", str(subset), "--output", str(output),
                        "--settings", json.dumps({"semantic": SEGMENTER}), *extra])


def test_fit_segmenter_killed_by_sigterm_resumes_to_the_unbroken_weights(subset: Path, tmp_path: Path,
                                                                         monkeypatch):
    """Through the command, as the rule runs it: killed after step 1 of 5, resubmitted, the
    checkpoint has the unbroken run's weights and summary, and the last resume state its
    optimiser moments, RNG states, batch position and losses."""
    segmenter_main(subset, tmp_path / "whole.pt", "--resume", str(tmp_path / "whole"))
    with monkeypatch.context() as patch:
        sigterm_at(patch, KILL_STEP)
        with pytest.raises(SystemExit) as stopped:
            segmenter_main(subset, tmp_path / "broken.pt", "--resume", str(tmp_path / "broken"))
    assert stopped.value.code == TERMINATED_EXIT and not (tmp_path / "broken.pt").exists()
    killed = saved_state(tmp_path / "broken")
    assert killed["position"]["step"] == KILL_STEP + 1 and killed["position"]["pending"]   # mid-epoch
    assert len(killed["extra"]["losses"]) == KILL_STEP + 1
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL      # the fit's handler came out again

    segmenter_main(subset, tmp_path / "broken.pt", "--resume", str(tmp_path / "broken"))
    (weights, meta), (found_weights, found_meta) = (read_checkpoint(tmp_path / name) for name in ("whole.pt",
                                                                                                "broken.pt"))
    assert_identical(weights, found_weights, "weights")
    for key in ("steps", "train_frames", "final_loss"):
        assert found_meta["fit"][key] == meta["fit"][key], key
    assert meta["fit"]["steps"] == 5
    assert_identical(saved_state(tmp_path / "whole"), saved_state(tmp_path / "broken"), "resume.pt")
    events = [line.split(": ", 1)[1] for line in (tmp_path / "broken" / "history.log").read_text().splitlines()]
    assert events == ["started", f"SIGTERM: saved at step {KILL_STEP + 1}; a resubmitted job goes on from there",
                      f"resumed at step {KILL_STEP + 1}", "finished: 5 steps"]


def test_fit_segmenter_resumes_from_its_last_timed_save_after_a_crash(subset: Path, tmp_path: Path, monkeypatch):
    """Without SIGTERM (a lost node) the state saved on the timer is where the next job goes on
    from; the interval (0: every step) changes nothing in the weights."""
    frames = annotated_frames(subset)
    size = (SEGMENTER["input_height"], SEGMENTER["input_width"])

    def fit(folder: Path | None, minutes: float = 30.0) -> torch.nn.Module:
        return fit_segmenter.fit_segmenter(frames, ENCODER, size, SEGMENTER["fit"], depth=4, resume_dir=folder,
                                           checkpoint_minutes=minutes)[0]

    whole = fit(None)
    with monkeypatch.context() as patch:
        crash_at(patch, 3)
        with pytest.raises(RuntimeError, match="node lost"):
            fit(tmp_path / "resume", minutes=0)
    assert saved_state(tmp_path / "resume")["position"]["step"] == 3
    assert_identical(whole.state_dict(), fit(tmp_path / "resume").state_dict(), "weights")


def test_fit_instances_killed_by_sigterm_resumes_to_the_unbroken_weights(subset: Path, tmp_path: Path,
                                                                         monkeypatch):
    """Mask R-CNN draws its RoI samples from torch's RNG: the resume restores it too."""
    frames = annotated_frames(subset)
    whole, summary = fit_instances.fit_instances(frames, INSTANCE, resume_dir=tmp_path / "whole")
    with monkeypatch.context() as patch:
        sigterm_at(patch, KILL_STEP)
        with pytest.raises(SystemExit) as stopped:
            fit_instances.fit_instances(frames, INSTANCE, resume_dir=tmp_path / "broken")
    assert stopped.value.code == TERMINATED_EXIT
    assert saved_state(tmp_path / "broken")["position"]["step"] == KILL_STEP + 1
    resumed, resumed_summary = fit_instances.fit_instances(frames, INSTANCE, resume_dir=tmp_path / "broken")
    assert summary["steps"] == 3 and resumed_summary["final_loss"] == summary["final_loss"]
    assert_identical(whole.state_dict(), resumed.state_dict(), "weights")
    assert_identical(saved_state(tmp_path / "whole"), saved_state(tmp_path / "broken"), "resume.pt")


TWO_STEPS = dict(SEGMENTER["fit"], epochs=1.0)     # three frames, batches of 2: two steps


@pytest.fixture
def killed_resume(subset: Path, tmp_path: Path, monkeypatch) -> Path:
    """The resume folder of a two-step segmenter fit (lr 0.01, three frames) killed after step 1."""
    with monkeypatch.context() as patch:
        sigterm_at(patch, 0)
        with pytest.raises(SystemExit):
            fit_segmenter.fit_segmenter(annotated_frames(subset), ENCODER, (32, 48), TWO_STEPS, depth=4,
                                        resume_dir=tmp_path / "resume")
    return tmp_path / "resume"


def test_a_resume_folder_of_other_settings_frames_or_fit_is_refused_until_it_finished(subset: Path, killed_resume,
                                                                                       capsys):
    """A killed fit's state is refused to another fit, settings or frames (its steps are not
    thrown away unasked); once finished, its outputs made, it gives way to other settings, which
    is how Snakemake reruns a fit after a change."""
    frames = annotated_frames(subset)
    name = r"resume[/\\]resume\.pt: resume file belongs to another run"
    with pytest.raises(PipelineError, match=name + r" \(fit\.lr: saved 0\.01, now 0\.02\)"):
        fit_segmenter.fit_segmenter(frames, ENCODER, (32, 48), dict(TWO_STEPS, lr=0.02), depth=4,
                                    resume_dir=killed_resume)
    with pytest.raises(PipelineError, match=name + r" \(frames\.count: saved 3, now 2; frames\.sha256: saved"):
        fit_segmenter.fit_segmenter(frames[:2], ENCODER, (32, 48), TWO_STEPS, depth=4, resume_dir=killed_resume)
    with pytest.raises(PipelineError, match=name + r" \(variant: saved 'fit_segmenter', now 'fit_instances'"):
        fit_instances.fit_instances(frames, INSTANCE, resume_dir=killed_resume)

    finished, summary = fit_segmenter.fit_segmenter(frames, ENCODER, (32, 48), TWO_STEPS, depth=4,
                                                    resume_dir=killed_resume)
    assert summary["steps"] == 2
    # The same settings again: the finished state is taken up, with nothing left to fit.
    again, _ = fit_segmenter.fit_segmenter(frames, ENCODER, (32, 48), TWO_STEPS, depth=4, resume_dir=killed_resume)
    assert_identical(finished.state_dict(), again.state_dict(), "weights")
    capsys.readouterr()
    other, _ = fit_segmenter.fit_segmenter(frames, ENCODER, (32, 48), dict(TWO_STEPS, lr=0.02), depth=4,
                                           resume_dir=killed_resume)
    assert "fit.lr: saved 0.01, now 0.02) is replaced: starting afresh" in capsys.readouterr().err
    fresh, _ = fit_segmenter.fit_segmenter(frames, ENCODER, (32, 48), dict(TWO_STEPS, lr=0.02), depth=4)
    assert_identical(fresh.state_dict(), other.state_dict(), "weights")


def test_a_corrupt_resume_file_is_refused_naming_it(subset: Path, tmp_path: Path, capsys):
    (tmp_path / "resume").mkdir()
    (tmp_path / "resume" / "resume.pt").write_bytes(b"half a checkpoint")
    with pytest.raises(SystemExit) as stopped:
        run_main(fit_segmenter.main, ["--subset", str(subset), "--output", str(tmp_path / "seg.pt"),
                                      "--settings", json.dumps({"semantic": SEGMENTER}),
                                      "--resume", str(tmp_path / "resume")])
    assert stopped.value.code == 1 and not (tmp_path / "seg.pt").exists()
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith(f"error: {tmp_path / 'resume' / 'resume.pt'}: resume file is corrupt"), error
    assert "delete it to start over" in error


def test_epoch_batches_go_on_from_their_saved_state():
    """The pending indices and the generator's state are all the batches hold between steps;
    each epoch is a permutation, and batches run on across epochs."""
    whole = EpochBatches(5, 3, np.random.default_rng(7))
    expected = [next(whole) for _ in range(6)]
    first = EpochBatches(5, 3, np.random.default_rng(7))
    head = [next(first) for _ in range(2)]
    pending, state = list(first.pending), first.rng.bit_generator.state
    second = EpochBatches(5, 3, np.random.default_rng(0))
    second.pending, second.rng.bit_generator.state = pending, state
    assert head + [next(second) for _ in range(4)] == expected
    flat = sum(expected, [])
    assert all(sorted(flat[start:start + 5]) == list(range(5)) for start in (0, 5, 10))


def test_the_fits_save_as_often_as_training_by_default():
    from pipeline.labels.resume import DEFAULT_CHECKPOINT_MINUTES
    from pipeline.train.settings import RUNTIME_DEFAULTS

    assert DEFAULT_CHECKPOINT_MINUTES == RUNTIME_DEFAULTS["checkpoint_minutes"]
