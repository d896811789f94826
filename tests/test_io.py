"""Atomic outputs (``pipeline.io``) under kills: SIGTERM, an earlier SIGKILLed run, a replaced directory."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pipeline.cli import run_main
from pipeline.io import atomic_dir, atomic_path

# A stage-like entry: ``run_main(main)`` whose ``main`` is mid-write inside atomic_path/atomic_dir
# when the test sends SIGTERM. It touches ``ready`` once it is writing.
STAGE = textwrap.dedent("""
    import signal, sys, time
    from pathlib import Path
    from pipeline.cli import run_main
    from pipeline.io import atomic_dir, atomic_path

    def write_forever(ready, tmp):
        with open(tmp, "wb") as file:
            Path(ready).touch()
            while True:
                file.write(b"x" * 65536)
                file.flush()
                time.sleep(0.01)

    def main(argv):
        kind, target, ready = argv
        if kind == "file":
            with atomic_path(target, suffix=".h5") as tmp:
                write_forever(ready, tmp)
        elif kind == "dir":
            with atomic_dir(target) as tmp:
                (tmp / "which").write_text("new")
                write_forever(ready, tmp / "frames.bin")
        else:   # "own": the stage handles SIGTERM itself (as the training loop does), then restores
            requested = []
            previous = signal.signal(signal.SIGTERM, lambda signum, frame: requested.append(signum))
            with atomic_path(Path(target) / "saved.pt") as tmp:
                tmp.write_text("saved")
                Path(ready + ".1").touch()
                while not requested:
                    time.sleep(0.01)
            signal.signal(signal.SIGTERM, previous)
            with atomic_path(Path(target) / "out.h5") as tmp:
                write_forever(ready + ".2", tmp)

    run_main(main, sys.argv[1:])
""")


def start_stage(tmp_path: Path, *args: str) -> subprocess.Popen:
    script = tmp_path / "stage.py"
    script.write_text(STAGE)
    repo = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=f"{repo}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    return subprocess.Popen([sys.executable, str(script), *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(path: Path, process: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        if process.poll() is not None:
            raise AssertionError(f"the stage ended early ({process.returncode}): {process.communicate()[1]}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"the stage never wrote {path}")
        time.sleep(0.02)
    time.sleep(0.1)      # well inside the write


def terminate(process: subprocess.Popen) -> tuple[int, str]:
    process.send_signal(signal.SIGTERM)
    try:
        _, err = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    return process.returncode, err


def hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_sigterm_mid_write_removes_the_temporary_and_fails(tmp_path):
    out = tmp_path / "results" / "train.h5"
    process = start_stage(tmp_path, "file", str(out), str(tmp_path / "ready"))
    wait_for(tmp_path / "ready", process)
    assert hidden(out.parent), "the temporary should exist mid-write"
    status, err = terminate(process)
    assert status == 143, err
    assert not out.exists()
    assert list(out.parent.iterdir()) == []


def test_sigterm_mid_directory_write_keeps_the_old_directory(tmp_path):
    out = tmp_path / "results" / "labels"
    out.mkdir(parents=True)
    (out / "which").write_text("old")
    process = start_stage(tmp_path, "dir", str(out), str(tmp_path / "ready"))
    wait_for(tmp_path / "ready", process)
    status, err = terminate(process)
    assert status == 143, err
    assert (out / "which").read_text() == "old" and sorted(os.listdir(out)) == ["which"]
    assert hidden(out.parent) == []


def test_a_stages_own_sigterm_handler_wins_and_run_mains_returns_after_it(tmp_path):
    """The training loop's pattern: its handler saves and goes on; once it restores the previous
    handler, SIGTERM again exits 143 with the temporaries removed."""
    out = tmp_path / "results"
    ready = tmp_path / "ready"
    process = start_stage(tmp_path, "own", str(out), str(ready))
    wait_for(Path(f"{ready}.1"), process)
    process.send_signal(signal.SIGTERM)                  # the stage's own handler: it finishes saved.pt
    wait_for(Path(f"{ready}.2"), process)
    status, err = terminate(process)                     # run_main's handler again
    assert status == 143, err
    assert (out / "saved.pt").read_text() == "saved"
    assert sorted(os.listdir(out)) == ["saved.pt"]


def test_run_main_leaves_an_existing_handler_and_restores_the_default():
    """Guard (passes with the old code too): run_main never replaces a handler already there."""
    seen = []

    def main(argv):  # noqa: ARG001
        seen.append(signal.getsignal(signal.SIGTERM))

    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    run_main(main, [])
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    own = lambda signum, frame: None  # noqa: E731
    previous = signal.signal(signal.SIGTERM, own)
    try:
        run_main(main, [])
        assert seen[-1] is own and signal.getsignal(signal.SIGTERM) is own
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_a_stale_temporary_of_an_earlier_killed_run_is_removed(tmp_path):
    out = tmp_path / "out.h5"
    stale = tmp_path / ".out.h5.yw2cddvr.h5"             # what a SIGKILLed pack stage leaves
    stale.write_bytes(b"half a pack")
    others = [".out.h5.yw2cddvr.h5.bak", ".out.h5.toolongname.h5", "out.h5.yw2cddvr.h5",
              ".other.h5.yw2cddvr.h5", ".out.h5.yw2cddvr.json", ".xout.h5.yw2cddvr.h5"]
    for name in others:
        (tmp_path / name).write_text("not ours")
    with atomic_path(out, suffix=".h5") as tmp:
        tmp.write_text("whole")
    assert out.read_text() == "whole"
    assert not stale.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*others, "out.h5"])


def test_a_stale_temporary_directory_of_an_earlier_killed_run_is_removed(tmp_path):
    out = tmp_path / "labels"
    stale = tmp_path / ".labels.k3j_9x0a"
    (stale / "sub").mkdir(parents=True)
    (stale / "sub" / "frame.png").write_text("half a city")
    (tmp_path / ".labels.k3j_9x0a.h5").write_text("not ours")
    with atomic_dir(out) as tmp:
        (tmp / "which").write_text("new")
    assert (out / "which").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".labels.k3j_9x0a.h5", "labels"]


def _content(folder: Path) -> str | None:
    try:
        return (folder / "which").read_text()
    except (FileNotFoundError, NotADirectoryError):
        return None


def test_atomic_dir_replacing_holds_old_or_new_at_every_step(tmp_path, monkeypatch):
    out = tmp_path / "labels"
    out.mkdir()
    (out / "which").write_text("old")
    (out / "old_only.png").write_text("old")
    steps = []

    def check(step):
        here = _content(out)
        aside = [_content(p) for p in tmp_path.iterdir() if p.name.startswith(".")]
        steps.append((step, here))
        assert here in ("old", "new") or "old" in aside, f"after {step}: neither the old nor the new at {out}"

    real_replace, real_rmtree = os.replace, shutil.rmtree

    def replace(src, dst):
        real_replace(src, dst)
        check(f"replace {Path(src).name} -> {Path(dst).name}")

    def rmtree(path, *args, **kwargs):
        real_rmtree(path, *args, **kwargs)
        check(f"rmtree {Path(path).name}")

    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(shutil, "rmtree", rmtree)
    with atomic_dir(out) as tmp:
        (tmp / "which").write_text("new")
    assert steps, "no file-system step observed"
    assert sorted(os.listdir(out)) == ["which"] and _content(out) == "new"
    assert hidden(tmp_path) == []


def test_atomic_dir_killed_between_the_renames_puts_the_old_one_back(tmp_path, monkeypatch):
    out = tmp_path / "labels"
    out.mkdir()
    (out / "which").write_text("old")
    real_replace = os.replace

    def replace(src, dst):               # SIGTERM's SystemExit just as the new one would go in
        if Path(dst) == out and Path(src).name.startswith(".labels.") and not Path(src).name.endswith(".old"):
            raise SystemExit(143)
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(SystemExit), atomic_dir(out) as tmp:
        (tmp / "which").write_text("new")
    assert _content(out) == "old"
    assert hidden(tmp_path) == []


def test_an_old_directory_stranded_aside_by_sigkill_is_put_back(tmp_path):
    out = tmp_path / "labels"
    for name, which in ((".labels.ab12cd34.old", "old"), (".labels.ab12cd34", "new")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "which").write_text(which)
    with pytest.raises(RuntimeError), atomic_dir(out):
        raise RuntimeError("this run fails too")
    assert _content(out) == "old"
    assert hidden(tmp_path) == []


def test_the_file_is_fsynced_before_the_rename(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}"))),
                                                  real_fsync(fd))[-1])
    monkeypatch.setattr(os, "replace", lambda src, dst: (events.append(("replace", str(src))),
                                                         real_replace(src, dst))[-1])
    with atomic_path(tmp_path / "out.pt", suffix=".pt") as tmp:
        tmp.write_text("weights")
    assert ("fsync", str(tmp)) in events
    assert events.index(("fsync", str(tmp))) < events.index(("replace", str(tmp)))


def test_a_binary_file_read_as_json_is_named(tmp_path):
    """A subset or record path given an HDF5 file (say) stops naming it, not with a decode traceback."""
    from pipeline.errors import PipelineError
    from pipeline.io import read_json
    binary = tmp_path / "train.h5"
    binary.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(range(256)))
    with pytest.raises(PipelineError, match=rf"^{binary}: not valid JSON"):
        read_json(binary)


def test_open_h5_names_a_missing_file_its_maker_and_a_file_cut_short(tmp_path):
    """Every HDF5 reader (flow, packed, videos, report provenance) opens through open_h5."""
    import h5py
    import numpy as np

    from pipeline.errors import PipelineError
    from pipeline.io import open_h5
    whole = tmp_path / "train.h5"
    with h5py.File(whole, "w") as file:
        file.create_dataset("x", data=np.arange(100_000))
    with open_h5(whole) as file:
        assert int(file["x"][-1]) == 99_999
    with pytest.raises(PipelineError, match=rf"^{tmp_path}/gone.h5: flow file not found \(run the flow rule\)$"):
        open_h5(tmp_path / "gone.h5", "flow file", "run the flow rule")
    cut = tmp_path / "cut.h5"
    cut.write_bytes(whole.read_bytes()[:1000])
    with pytest.raises(PipelineError, match=rf"^{cut}: not a readable HDF5 file \(truncated or corrupt\?\)"):
        open_h5(cut)


def test_a_full_disk_and_a_file_in_the_way_are_named_and_the_old_output_kept(tmp_path, monkeypatch):
    """No space (errno ENOSPC, h5py's message, or torch.save's bare iostream error on a disk left
    with nothing free) and a file where the output's folder should be: one line naming the target."""
    import errno
    import shutil

    from pipeline import io
    from pipeline.errors import PipelineError
    target = tmp_path / "train.h5"
    target.write_text("old")
    failures = [OSError(errno.ENOSPC, "No space left on device"),
                OSError("Can't write data (file write failed: errno = 28, error message = 'No space left on device')")]
    for failure in failures:
        with pytest.raises(PipelineError, match=rf"^{target}: not written: no space left on the disk"):
            with atomic_path(target) as tmp:
                tmp.write_text("new")
                raise failure
    monkeypatch.setattr(io.shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(100, 100, 0))
    with pytest.raises(PipelineError, match=r"no space left .*RuntimeError: basic_ios::clear: iostream error"):
        with atomic_dir(tmp_path / "labels"):
            raise RuntimeError("basic_ios::clear: iostream error")
    monkeypatch.undo()
    with pytest.raises(RuntimeError, match="unrelated"):       # other failures pass through as they were
        with atomic_path(target):
            raise RuntimeError("unrelated")
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["train.h5"]
    in_the_way = tmp_path / "results"
    in_the_way.write_text("a file")
    with pytest.raises(PipelineError, match=rf"^{in_the_way}/videos/v01.h5: cannot be written: {in_the_way} is a file"):
        with atomic_path(in_the_way / "videos" / "v01.h5"):
            pass


def test_only_write_errors_are_taken_for_a_full_disk_and_inner_errors_name_the_output(tmp_path, monkeypatch):
    """On a nearly full disk a labeller's CUDA out-of-memory inside an atomic_dir is still itself;
    an inner atomic write's error (synthesis writes its videos into a temporary) names the output,
    not the temporary already gone."""
    import errno
    import shutil

    from pipeline import io
    from pipeline.errors import PipelineError
    monkeypatch.setattr(io.shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(100, 100, 0))
    with pytest.raises(RuntimeError, match="CUDA out of memory"):
        with atomic_dir(tmp_path / "labels"):
            raise RuntimeError("CUDA out of memory")
    monkeypatch.undo()
    videos = tmp_path / "v02.h5"
    with pytest.raises(PipelineError, match=rf"^{videos}: not written: no space left") as raised:
        with atomic_path(videos, suffix=".h5") as outer_tmp:
            with atomic_path(outer_tmp):
                raise OSError(errno.ENOSPC, "No space left on device")
    assert raised.value.path == videos and sorted(tmp_path.iterdir()) == []
