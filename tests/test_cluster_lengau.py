"""The lengau profile (PBS Pro through cluster-generic) without a PBS server.

* lengau/status.py on qstat -x -f outputs of every job state (tests/data/qstat/cases.yaml);
* the qsub line of each job from its properties (lengau/pbs.py: qsub_command);
* Snakemake itself driving the profile against a fake PBS written here (qsub, qstat, qdel on
  PATH): on the real graph every rule's job reaches qsub with its own queue, select statement
  and walltime; on a small workflow the jobs really run, a server without job history is
  answered from the exit marker, and a failed job is reported as failed;
* submit.py against that fake PBS: a job an earlier (crashed) Snakemake submitted and PBS still
  holds is followed, not submitted twice; a qsub refused for now is tried again, one refused for
  the request fails at once; a job a timed-out qsub queued all the same is found by its script
  and followed, and nothing is submitted while PBS cannot say; status.py says why a held job
  waits and stops without a qstat.
"""

from __future__ import annotations

import getpass
import json
import os
import re
import shlex
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from conftest import BIN, REPO
from pipeline.config import load_config
from pipeline.data.fake_tree import make_fake_tree

sys.path.insert(0, str(REPO / "lengau"))
import pbs  # noqa: E402  (the profile's module, beside its scripts)
import submit  # noqa: E402  (the profile's submit command, run in this process for its retry delays)

QSTAT_DATA = Path(__file__).parent / "data" / "qstat"
CASES = yaml.safe_load((QSTAT_DATA / "cases.yaml").read_text())


def write_site(path: Path, **changes) -> Path:
    site = {
        "project": "CSCI1166",
        "queues": {"gpu": {"name": "gpu_1", "max_walltime": "12:00:00"},
                   "cpu": {"name": "serial", "max_walltime": "48:00:00"}},
        # No PATH here: the job script itself puts the submitting environment (BIN) first on PATH.
        "setup": "export FROM_SITE_SETUP=yes\n",
        "log_dir": "logs/pbs",
        "unknown_job_grace_s": 300,
        "qstat_timeout_s": 10,
    }
    site.update(changes)
    path.write_text(yaml.safe_dump(site))
    return path


@pytest.fixture
def site(tmp_path) -> pbs.Site:
    return pbs.load_site(write_site(tmp_path / "site.yaml"), workdir=tmp_path)


def recorded(name: str) -> pbs.QstatResult:
    code, stream, _ = CASES[name]
    text = (QSTAT_DATA / name).read_text()
    return pbs.QstatResult(code, text if stream == "stdout" else "", text if stream == "stderr" else "")


# --- status -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(n for n, case in CASES.items() if case[2] != "unknown"))
def test_status_of_each_recorded_state(name, site, tmp_path):
    status, why = pbs.job_status("4012345.sched01", site, tmp_path, qstat=lambda *_: recorded(name))
    assert status == CASES[name][2]
    if status == "failed" and "walltime" in name:
        assert "walltime" in why or "SIGTERM" in why


def test_unknown_job_is_settled_by_its_exit_marker(site, tmp_path):
    unknown = lambda *_: recorded("unknown.txt")            # noqa: E731
    markers = pbs.exit_marker_dir(tmp_path)
    markers.mkdir(parents=True)
    (markers / "7.sched01").write_text("0\n")
    (markers / "8.sched01").write_text("1\n")
    assert pbs.job_status("7.sched01", site, tmp_path, qstat=unknown)[0] == "success"
    assert pbs.job_status("8.sched01", site, tmp_path, qstat=unknown)[0] == "failed"


def test_unknown_job_without_marker_fails_only_after_the_grace_period(site, tmp_path):
    clock = [1000.0]
    ask = lambda: pbs.job_status("9.sched01", site, tmp_path, qstat=lambda *_: recorded("unknown.txt"),  # noqa: E731
                                 now=lambda: clock[0])[0]
    assert ask() == "running"
    clock[0] += site.unknown_job_grace_s - 1
    assert ask() == "running"
    clock[0] += 2
    assert ask() == "failed"


def test_qstat_that_hangs_means_running(site, tmp_path):
    silent = pbs.QstatResult(None, "", "timed out after 10 s")
    assert pbs.job_status("1.sched01", site, tmp_path, qstat=lambda *_: silent)[0] == "running"


def test_exit_status_is_explained():
    assert "SIGTERM" in pbs.explain_exit(271)
    assert pbs.explain_exit(-29) == "walltime exceeded"
    assert pbs.explain_exit(3) == "exited 3"


def fake_qstat_bin(folder: Path, name: str) -> Path:
    """A qstat that replays one recorded output with its exit code."""
    code, stream, _ = CASES[name]
    folder.mkdir(exist_ok=True)
    script = folder / "qstat"
    redirect = "" if stream == "stdout" else " >&2"
    script.write_text(f"#!/bin/sh\ncat {QSTAT_DATA / name}{redirect}\nexit {code}\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return folder


@pytest.mark.parametrize("name", sorted(CASES))
def test_status_script_prints_exactly_one_word(name, tmp_path):
    """What Snakemake runs: `status.py 'ID'` in the workdir, one line on stdout, exit 0."""
    bin_dir = fake_qstat_bin(tmp_path / "bin", name)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{BIN}{os.pathsep}{os.environ['PATH']}",
               LENGAU_SITE=str(write_site(tmp_path / "site.yaml")))
    done = subprocess.run(f"{REPO / 'lengau' / 'status.py'} '4012345.sched01'", shell=True, cwd=tmp_path,
                          env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    expected = CASES[name][2]
    assert done.stdout == ("running\n" if expected == "unknown" else f"{expected}\n")


def test_a_held_job_is_running_and_says_why(site, tmp_path):
    """A held job (job_state H) never starts by itself: still "running" to Snakemake, but each poll
    says why on stderr; a queued one says nothing."""
    status, why = pbs.job_status("4012346.sched01", site, tmp_path, qstat=lambda *_: recorded("held.txt"))
    assert status == "running" and "Hold_Types = s" in why and "too many failed attempts to run" in why
    assert pbs.job_status("1.sched01", site, tmp_path, qstat=lambda *_: recorded("queued.txt")) == ("running", "")
    bin_dir = fake_qstat_bin(tmp_path / "bin", "held.txt")
    done = status_script("4012346.sched01", tmp_path, f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin")
    assert done.returncode == 0 and done.stdout == "running\n"
    assert "4012346.sched01: running: held by PBS (Hold_Types = s; comment = job held" in done.stderr


def test_the_status_script_stops_the_run_without_a_qstat(tmp_path):
    """No qstat on PATH (not a login node): no poll will ever answer, so status.py exits 1 with
    the reason, and Snakemake stops ("Failed to obtain job status"), instead of "running" forever."""
    done = status_script("4012345.sched01", tmp_path, f"/usr/bin{os.pathsep}/bin")
    assert done.returncode == 1 and done.stdout == "", done.stdout
    assert "qstat is not on PATH" in done.stderr and "login node" in done.stderr


def status_script(job_id: str, tmp_path: Path, path: str) -> subprocess.CompletedProcess:
    """status.py run as Snakemake runs it, in tmp_path, with PATH path (and this Python)."""
    env = dict(os.environ, PATH=path, LENGAU_SITE=str(write_site(tmp_path / "site.yaml")))
    return subprocess.run([sys.executable, str(REPO / "lengau" / "status.py"), job_id], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)


# --- the qsub line --------------------------------------------------------------------------

def properties(rule="train", threads=2, wildcards=None, **resources):
    return {"type": "single", "rule": rule, "wildcards": wildcards if wildcards is not None else {"variant": "v07"},
            "threads": threads, "resources": {"mem_mb": 16000, "runtime": 2880, "gpu": 1, **resources},
            "jobid": 12}


def test_gpu_job_goes_to_the_gpu_queue_with_walltime_capped(site):
    line = pbs.qsub_command(properties(), site, attempt=2)
    assert line[:3] == ["qsub", "-S", "/bin/bash"] and line[line.index("-N") + 1] == "train-v07"
    assert line[line.index("-P") + 1] == "CSCI1166"
    assert line[line.index("-q") + 1] == "gpu_1"
    selects = [line[i + 1] for i, arg in enumerate(line) if arg == "-l"]
    assert selects == ["select=1:ncpus=2:ngpus=1:mem=16000mb", "walltime=12:00:00"]   # 48 h asked, 12 h cap
    assert line[line.index("-o") + 1] == str(site.log_dir / "train-v07.attempt2.pbs.log")
    assert "-V" not in line and line[line.index("-j") + 1] == "oe"


def test_cpu_job_goes_to_the_cpu_queue_without_gpus(site):
    line = pbs.qsub_command(properties("pack", wildcards={"split": "train"}, gpu=0, runtime=240, mem_mb=8000), site)
    assert line[line.index("-q") + 1] == "serial"
    assert "select=1:ncpus=2:mem=8000mb" in line and "walltime=04:00:00" in line
    assert line[line.index("-N") + 1] == "pack-train"


def test_walltime_and_names():
    assert pbs.walltime(90, 12 * 3600) == "01:30:00"
    assert pbs.walltime(None, 12 * 3600) == "12:00:00"
    assert pbs.walltime(0.5, 3600) == "00:00:30"
    assert pbs.job_name({"rule": "label_semantic", "wildcards": {"split": "train", "city": "la/x y"}}) \
        == "label_semantic-train-la_x_y"
    assert pbs.job_name({"type": "group", "groupid": "3d1f"}) == "group-3d1f"


def test_the_job_script_sends_sigterm_before_the_walltime(tmp_path):
    """PBS's SIGKILL follows its walltime SIGTERM within seconds; the job script's timer sends the
    SIGTERM warn_before_walltime_s early, so a saving rule (here: 1 s to save) finishes and the
    job ends 143, as at walltime, long before its own 60 s of work."""
    site = pbs.load_site(write_site(tmp_path / "site.yaml", warn_before_walltime_s=2, setup="true"),
                         workdir=tmp_path)
    saver = tmp_path / "saver.py"
    saver.write_text(textwrap.dedent('''
        import pathlib, signal, sys, time

        def save(*_):
            time.sleep(1)
            pathlib.Path("saved").touch()
            sys.exit(143)

        signal.signal(signal.SIGTERM, save)
        time.sleep(60)
    '''))
    body = f"#!/bin/sh\n# properties = {{}}\ncd {tmp_path} && {sys.executable} {saver} && touch done\n"
    script = tmp_path / "job.sh"
    script.write_text(pbs.job_script(body, site, tmp_path, walltime_s=3))
    started = time.monotonic()
    job = subprocess.run(["bash", str(script)], env=dict(os.environ, PBS_JOBID="1.test"), start_new_session=True,
                         capture_output=True, text=True, timeout=60)
    assert time.monotonic() - started < 10, job.stderr
    assert job.returncode == 143 and (tmp_path / "saved").exists() and not (tmp_path / "done").exists()
    assert (pbs.exit_marker_dir(tmp_path) / "1.test").read_text().strip() == "143"
    # Without a walltime (or one shorter than the warning) there is no timer.
    assert "pkill -TERM" not in pbs.job_script(body, site, tmp_path)
    assert "pkill -TERM" not in pbs.job_script(body, site, tmp_path, walltime_s=2)


def test_a_job_without_memory_is_refused(site):
    job = properties()
    del job["resources"]["mem_mb"]
    with pytest.raises(ValueError, match="mem_mb"):
        pbs.qsub_command(job, site)


def test_site_file_errors_name_the_file(tmp_path):
    bad = write_site(tmp_path / "bad.yaml", project="")
    with pytest.raises(pbs.SiteError, match="bad.yaml.*project"):
        pbs.load_site(bad)
    typo = write_site(tmp_path / "typo.yaml", queue={"gpu": "gpu_1"})
    with pytest.raises(pbs.SiteError, match="typo.yaml: unknown setting"):
        pbs.load_site(typo)
    hms = write_site(tmp_path / "hms.yaml", queues={"gpu": {"name": "g", "max_walltime": "12h"},
                                                   "cpu": {"name": "c", "max_walltime": "1:00:00"}})
    with pytest.raises(pbs.SiteError, match="HH:MM:SS"):
        pbs.load_site(hms)
    blank = write_site(tmp_path / "blank.yaml", qstat_timeout_s=None)       # `qstat_timeout_s:` left empty
    with pytest.raises(pbs.SiteError, match="blank.yaml: qstat_timeout_s is None, not a number of seconds"):
        pbs.load_site(blank)


def test_the_site_files_timing_keys_are_optional(tmp_path):
    site_file = write_site(tmp_path / "site.yaml")
    bare = {key: value for key, value in yaml.safe_load(site_file.read_text()).items()
            if key not in ("unknown_job_grace_s", "qstat_timeout_s", "warn_before_walltime_s")}
    site_file.write_text(yaml.safe_dump(bare))
    site = pbs.load_site(site_file, workdir=tmp_path)
    assert (site.unknown_job_grace_s, site.qstat_timeout_s, site.warn_before_walltime_s) == (300, 60, 300)


def test_the_shipped_site_file_wants_a_project_code(tmp_path):
    shipped = yaml.safe_load((REPO / "lengau" / "site.yaml").read_text())
    with pytest.raises(pbs.SiteError, match="programme code"):
        pbs.load_site(REPO / "lengau" / "site.yaml", workdir=tmp_path)
    filled = tmp_path / "site.yaml"
    filled.write_text(yaml.safe_dump({**shipped, "project": "CSCI1166"}))
    site = pbs.load_site(filled, workdir=tmp_path)
    assert site.gpu == pbs.Queue("gpu_1", 12 * 3600) and site.log_dir == tmp_path / "logs" / "pbs"


# --- the job's Python environment ----------------------------------------------------------

def profile_settings(monkeypatch, site_file: Path) -> dict:
    """lengau/config.v8+.yaml as Snakemake reads it for `snakemake --profile lengau --cores 1` run
    from the repository root with LENGAU_SITE=site_file (the profile checks it, as it would submit)."""
    import yte

    monkeypatch.chdir(REPO)
    monkeypatch.setenv("LENGAU_SITE", str(site_file))
    monkeypatch.setattr(sys, "argv", ["snakemake", "--profile", "lengau", "--cores", "1"])
    with open(REPO / "lengau" / "config.v8+.yaml") as stream:
        return yte.process_yaml(stream, require_use_yte=True)


def test_the_profile_says_when_the_site_file_is_not_ready(tmp_path, monkeypatch, capsys):
    """Read as the run starts (a dry run too): the shipped placeholder project is said then, not
    at the first submission after the local rules have run; a filled-in site file says nothing."""
    profile_settings(monkeypatch, REPO / "lengau" / "site.yaml")
    assert "site.yaml: set project to your CHPC programme code" in capsys.readouterr().err
    filled = tmp_path / "site.yaml"
    filled.write_text(yaml.safe_dump({**yaml.safe_load((REPO / "lengau" / "site.yaml").read_text()),
                                      "project": "CSCI1166"}))
    profile_settings(monkeypatch, filled)
    assert "warning" not in capsys.readouterr().err
    malformed = tmp_path / "malformed.yaml"          # a warning too, not a stop at profile load
    malformed.write_text(yaml.safe_dump({**yaml.safe_load(filled.read_text()), "unknown_job_grace_s": "five minutes"}))
    profile_settings(monkeypatch, malformed)
    said = capsys.readouterr().err
    assert f"warning: {malformed}: unknown_job_grace_s is 'five minutes', not a number of seconds" in said


def test_a_relative_site_file_is_pinned_before_the_workdir_changes(tmp_path, monkeypatch, capsys):
    """`LENGAU_SITE=my-site.yaml snakemake --profile lengau -d WORK`: the profile checks the file
    from the launch directory and submit.py reads $LENGAU_SITE in WORK; both must mean one file."""
    site_file = tmp_path / "site.yaml"
    site_file.write_text(yaml.safe_dump({**yaml.safe_load((REPO / "lengau" / "site.yaml").read_text()),
                                         "project": "CSCI1166"}))
    profile_settings(monkeypatch, Path(os.path.relpath(site_file, REPO)))
    assert "warning" not in capsys.readouterr().err
    assert os.environ["LENGAU_SITE"] == str(site_file)


def test_a_job_runs_python_from_the_submitting_environment_whatever_the_workdir(tmp_path, monkeypatch):
    """`snakemake --profile lengau -d WORK` (the README's demo): submit.py runs in WORK, so PBS's
    $PBS_O_WORKDIR is WORK, which has no .venv. A job starts with a bare PATH; the rules' bare
    `python` must still be the environment snakemake runs in (here the test's), from the shipped
    site setup and the profile's submit command."""
    work = tmp_path / "work"
    work.mkdir()
    shipped = yaml.safe_load((REPO / "lengau" / "site.yaml").read_text())
    site_file = tmp_path / "site.yaml"
    site_file.write_text(yaml.safe_dump({**shipped, "project": "CSCI1166"}))
    submit_cmd = profile_settings(monkeypatch, site_file)["cluster-generic-submit-cmd"]
    fake_bin = tmp_path / "fake_bin"
    fake_bin.mkdir()
    (fake_bin / "qsub").write_text(f'#!/bin/sh\nfor last; do :; done\necho "$last" > {tmp_path}/submitted\necho 1.fake\n')
    (fake_bin / "qsub").chmod(0o755)
    props = properties("ok", wildcards={}, gpu=0, runtime=5, mem_mb=500)
    snakemake_job = tmp_path / "snakejob.ok.1.sh"       # what cluster-generic hands to submit.py
    snakemake_job.write_text(f"#!/bin/sh\n# properties = {json.dumps(props)}\n"
                             f"cd {work} && command -v python > python.txt && "
                             "python -c 'import os, sys; print(sys.prefix, os.environ[\"VIRTUAL_ENV\"])' > prefix.txt\n")
    env = dict(os.environ, PATH=f"{fake_bin}{os.pathsep}{BIN}{os.pathsep}/usr/bin:/bin", LENGAU_SITE=str(site_file))
    done = subprocess.run(f'{submit_cmd} "{snakemake_job}"', shell=True, cwd=work, env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout == "1.fake\n", done.stderr
    script = Path((tmp_path / "submitted").read_text().strip())
    assert script.parent == work / ".snakemake" / "lengau" / "scripts"
    home = tmp_path / "home"
    home.mkdir()
    job = subprocess.run(["bash", str(script)], cwd=home, capture_output=True, text=True, timeout=60,
                         env={"PATH": "/usr/bin:/bin", "HOME": str(home), "PBS_JOBID": "1.fake",
                              "PBS_O_WORKDIR": str(work)})
    assert job.returncode == 0, job.stdout + job.stderr
    assert Path((work / "python.txt").read_text().strip()).parent == BIN
    assert (work / "prefix.txt").read_text().split() == [sys.prefix, sys.prefix]


def test_the_environment_lines_quote_the_path_and_set_virtual_env_only_for_a_venv(tmp_path):
    venv = tmp_path / "a venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    lines = pbs.python_env_lines(venv / "bin" / "python3")
    assert lines[:2] == [f"export VIRTUAL_ENV='{venv}'", f"export PATH='{venv / 'bin'}':\"$PATH\""]
    path = subprocess.run(["bash", "-c", "\n".join([*lines, 'echo "$PATH"'])], env={"PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, check=True).stdout
    assert path == f"{venv / 'bin'}:/usr/bin:/bin\n"
    assert not any("VIRTUAL_ENV" in line for line in pbs.python_env_lines("/usr/bin/python3"))


# --- Snakemake driving the profile against a fake PBS ----------------------------------------

FAKE_PBS = r'''
"""A fake PBS for tests: qsub records and (FAKE_PBS_MODE=outputs) creates the job's outputs or
(run) runs the script in the background or (queue) leaves the job queued; qstat -x -f reports it
(several ids: each, Submit_arguments wrapped as PBS Pro wraps it); qselect lists the unfinished
jobs; qdel sends SIGTERM. Each line of $FAKE_PBS_DIR/qsub_refusals refuses one qsub call with that
message (a line "hang": qsub does not answer; "queue and hang": it queues the job, then does not
answer); every call is logged in qsub_calls (qselect: qselect_calls). While qstat_down exists,
qstat and qselect fail; a number N in lookup_failures fails the next N qselect calls."""
import fcntl, json, os, signal, subprocess, sys, time
from pathlib import Path

STATE = Path(os.environ["FAKE_PBS_DIR"])
JOBS = STATE / "jobs"


def new_id():
    JOBS.mkdir(parents=True, exist_ok=True)
    with open(STATE / "counter.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        counter = STATE / "counter"
        number = int(counter.read_text()) + 1 if counter.exists() else 1
        counter.write_text(str(number))
    return f"{number}.fakepbs"


def save(job_id, **record):
    path = JOBS / f"{job_id}.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data.update(record)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)


def refusal():
    """The first line of qsub_refusals, taken off it; "" when there is none."""
    path = STATE / "qsub_refusals"
    lines = path.read_text().splitlines() if path.exists() else []
    if lines:
        path.write_text("".join(f"{line}\n" for line in lines[1:]))
    return lines[0] if lines else ""


def qsub(args):
    STATE.mkdir(parents=True, exist_ok=True)
    with open(STATE / "qsub_calls", "a") as calls:
        calls.write(json.dumps(args) + "\n")
    message = refusal()
    if message == "queue and hang":           # the server queued it; the answer never came back
        queue(args)
        time.sleep(60)
    if message == "hang":
        time.sleep(60)
    if message:
        print(message, file=sys.stderr)
        sys.exit(38)
    print(queue(args))


def queue(args):
    script = Path(args[-1])
    text = script.read_text()
    job_id = new_id()
    save(job_id, id=job_id, argv=["qsub", *args], script=text, workdir=os.getcwd(), state="Q")
    if os.environ.get("FAKE_PBS_MODE") == "outputs":
        props = json.loads(next(l for l in text.splitlines() if l.startswith("# properties = "))[15:])
        benchmarks = json.loads(Path(os.environ["FAKE_PBS_BENCHMARKS"]).read_text())
        for output in props["output"] + [benchmarks[o] for o in props["output"] if o in benchmarks]:
            path = Path(output)
            if path.suffix:                   # a file; an output without a suffix is a directory()
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text("fake\n")
            else:
                path.mkdir(parents=True, exist_ok=True)
        save(job_id, state="F", exit=0)
    elif os.environ.get("FAKE_PBS_MODE") == "run":
        subprocess.Popen([sys.executable, __file__, "_run", job_id], start_new_session=True,
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return job_id


def run(job_id):
    job = json.loads((JOBS / f"{job_id}.json").read_text())
    argv = job["argv"]
    log = argv[argv.index("-o") + 1]
    home = STATE / "home"
    home.mkdir(exist_ok=True)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "PBS_JOBID": job_id, "PBS_O_WORKDIR": job["workdir"]}
    with open(log, "w") as out:
        child = subprocess.Popen(["bash", argv[-1]], cwd=home, env=env, stdout=out, stderr=subprocess.STDOUT,
                                 start_new_session=True)
        save(job_id, state="R", pid=child.pid)
        code = child.wait()
    try:                                  # like PBS's mom: what outlives the job script is killed
        os.killpg(child.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    save(job_id, state="F", exit=256 - code if code < 0 else code)   # 256 + signal, as PBS reports


def server_down(command):
    if (STATE / "qstat_down").exists():
        print(f"{command}: cannot connect to server sched01 (errno=111)", file=sys.stderr)
        sys.exit(1)


def qstat(args):
    server_down("qstat")
    code = 0
    for job_id in [arg for arg in args if not arg.startswith("-")]:
        path = JOBS / f"{job_id}.json"
        job = json.loads(path.read_text()) if path.exists() else None
        if job is None or (job["state"] == "F" and os.environ.get("FAKE_PBS_HISTORY") == "0"):
            print(f"qstat: Unknown Job Id {job_id}", file=sys.stderr)
            code = 153
            continue
        if job["state"] == "F" and "-x" not in args:
            print(f"qstat: {job_id} Job has finished, use -x or -H to obtain historical job information",
                  file=sys.stderr)
            code = 35
            continue
        print(f"Job Id: {job_id}\n    job_state = {job['state']}")
        if "exit" in job:
            print(f"    Exit_status = {job['exit']}")
        print(wrapped("Submit_arguments", " ".join(job["argv"][1:])) + "\n")
    sys.exit(code)


def wrapped(name, value):
    """An attribute as qstat -f prints a long one: a line break and a tab after the 78th column."""
    line, column = f"    {name} = ", len(name) + 7
    for char in value:
        line += char
        column += 1
        if column > 78:
            line, column = line + "\n\t", 8
    return line


def qselect(args):
    STATE.mkdir(parents=True, exist_ok=True)
    with open(STATE / "qselect_calls", "a") as calls:
        calls.write(json.dumps(args) + "\n")
    server_down("qselect")
    failures = STATE / "lookup_failures"
    if failures.exists() and int(failures.read_text() or 0) > 0:
        failures.write_text(str(int(failures.read_text()) - 1))
        print("qselect: cannot connect to server sched01 (errno=111)", file=sys.stderr)
        sys.exit(1)
    for path in sorted(JOBS.glob("*.json"), key=lambda path: int(path.name.split(".")[0])):
        if json.loads(path.read_text())["state"] != "F":
            print(path.name[:-len(".json")])


def qdel(args):
    for job_id in args:
        job = json.loads((JOBS / f"{job_id}.json").read_text())
        try:
            os.killpg(job["pid"], signal.SIGTERM)
        except ProcessLookupError:
            print(f"qdel: Job has finished {job_id}", file=sys.stderr)


if __name__ == "__main__":
    command, *rest = sys.argv[1:]
    {"qsub": qsub, "qstat": qstat, "qselect": qselect, "qdel": qdel, "_run": lambda a: run(a[0])}[command](rest)
'''


def fake_pbs(tmp_path: Path, mode: str, history: bool) -> dict[str, str]:
    """qsub, qstat, qselect, qdel on PATH; returns the environment Snakemake runs in."""
    bin_dir = tmp_path / "fakepbs_bin"
    bin_dir.mkdir()
    (bin_dir / "fakepbs.py").write_text(FAKE_PBS)
    for command in ("qsub", "qstat", "qselect", "qdel"):
        tool = bin_dir / command
        tool.write_text(f'#!/bin/sh\nexec {sys.executable} {bin_dir / "fakepbs.py"} {command} "$@"\n')
        tool.chmod(0o755)
    return dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{BIN}{os.pathsep}{os.environ['PATH']}",
                FAKE_PBS_DIR=str(tmp_path / "fakepbs"), FAKE_PBS_MODE=mode,
                FAKE_PBS_HISTORY="1" if history else "0", LENGAU_SITE=str(write_site(tmp_path / "site.yaml")))


def submissions(tmp_path: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((tmp_path / "fakepbs" / "jobs").glob("*.json"))]


def snakemake_lengau(*args: str, env: dict, workdir: Path, snakefile: Path = REPO / "Snakefile",
                     timeout: int = 300) -> subprocess.CompletedProcess:
    """`snakemake --profile lengau` from the repository root (where the profile is found by name)."""
    command = [str(BIN / "snakemake"), "--profile", "lengau", "-s", str(snakefile), "-d", str(workdir),
               "--seconds-between-status-checks", "1", "--max-status-checks-per-second", "100",
               "--latency-wait", "2", *args]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


VARIANTS = ("v01", "v04")        # a plain CRN and one with a feature encoder (cluster_features)


@pytest.fixture(scope="module")
def graph_workdir(tmp_path_factory) -> Path:
    """The demo study on a small Cityscapes-shaped tree, subset selected, as on a login node.

    Two variants instead of 14 keep the job count small; every rule is still in the graph.
    """
    work = tmp_path_factory.mktemp("lengau_graph")
    study = load_config([REPO / "config.yaml", REPO / "config" / "demo.yaml"])
    root = make_fake_tree(work / "cityscapes", {"train": {"aachen": 3, "bremen": 2}, "val": {"lindau": 4}})
    study["variants"] = {name: entry for name, entry in study["variants"].items() if name in VARIANTS}
    # Cityscapes' own snippets (30 frames, the gtFine frame the 20th), the demo's sizes otherwise.
    study["data"].update(source="cityscapes", cityscapes_root=str(root), frames_per_snippet=30, annotated_frame=19)
    study["subset"].update(train_cities=["aachen", "bremen"], test_sequences=4)
    study["fvd"].update(batches=1)          # one batch of 4 videos: the 4 test snippets
    (work / "study.yaml").write_text(yaml.safe_dump(study))
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    subprocess.run([str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "-d", str(work), "--cores", "1",
                    "results/data/subset.json", *graph_args(work)], cwd=work, env=env, check=True, capture_output=True)
    return work


def graph_args(workdir: Path) -> list[str]:
    # The whole config from study.yaml; only missing outputs make jobs, so code edits elsewhere
    # cannot rerun the selected subset.
    # Light rules run locally, for real: omit those that would read the fake PBS's placeholder
    # outputs (the FVD table and the pictures made from it, the loss curves, the timing chart).
    return ["--replace-workflow-config", "--configfile", str(workdir / "study.yaml"),
            "--rerun-triggers", "mtime", "--omit-from", "fvd_table", "report_losses", "report_timing"]


def dry_run_rules(workdir: Path, env: dict) -> tuple[dict[str, int], set[str], dict[str, str]]:
    """(rule -> job count, local rules, output -> its job's benchmark file) of `snakemake -n`."""
    done = snakemake_lengau("-n", *graph_args(workdir), env=env, workdir=workdir)
    assert done.returncode == 0, done.stdout + done.stderr
    table = done.stdout.split("Job stats:", 1)[1].split("\n\n", 1)[0]
    counts = {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M) if m[1] != "total"}
    local = set(re.findall(r"^localrule (\w+):", done.stdout, re.M))
    benchmarks = {}
    for block in re.split(r"^(?:local)?(?:rule|checkpoint) \w+:$", done.stdout, flags=re.M)[1:]:
        outputs = re.search(r"^    output: (.*)$", block, re.M)
        benchmark = re.search(r"^    benchmark: (.*)$", block, re.M)
        if outputs and benchmark:
            benchmarks.update({output: benchmark[1] for output in outputs[1].split(", ")})
    return counts, local, benchmarks


def test_every_rule_reaches_qsub_with_its_resources(graph_workdir, tmp_path):
    """The study graph through the profile: each job's qsub line, printed for the reader (-s)."""
    env = fake_pbs(tmp_path, mode="outputs", history=True)
    counts, local, benchmarks = dry_run_rules(graph_workdir, env)
    # The fake PBS writes each job's outputs and, as the job's Snakemake would, its benchmark.
    env["FAKE_PBS_BENCHMARKS"] = str(tmp_path / "benchmarks.json")
    Path(env["FAKE_PBS_BENCHMARKS"]).write_text(json.dumps(benchmarks))
    done = snakemake_lengau(*graph_args(graph_workdir), env=env, workdir=graph_workdir)
    jobs = submissions(tmp_path)
    submitted: dict[str, int] = {}
    for job in jobs:
        props = pbs.read_job_properties(job["script"])
        argv, resources = job["argv"], props["resources"]
        submitted[props["rule"]] = submitted.get(props["rule"], 0) + 1
        print(" ".join(argv[:-1]))
        gpu = int(resources.get("gpu") or 0)
        assert argv[argv.index("-q") + 1] == ("gpu_1" if gpu else "serial")
        gpus = f":ngpus={gpu}" if gpu else ""
        chunk = f"select=1:ncpus={props['threads']}{gpus}:mem={resources['mem_mb']}mb"
        cap = 12 * 60 if gpu else 48 * 60
        minutes = min(int(resources["runtime"]), cap)
        assert argv[argv.index(chunk) - 1] == "-l"
        assert f"walltime={minutes // 60:02d}:{minutes % 60:02d}:00" in argv
        assert argv[argv.index("-P") + 1] == "CSCI1166" and "-V" not in argv
        assert "FROM_SITE_SETUP=yes" in job["script"], props["rule"]
        assert "--attempt 1" in job["script"], (props["rule"], done.stdout[-5000:] + done.stderr[-5000:])
    remote = {rule: n for rule, n in counts.items() if rule not in local and rule != "all"}
    assert submitted == remote, done.stdout[-3000:] + done.stderr[-3000:]
    assert "reference_flow" in submitted and "pack" in submitted      # a GPU and a CPU rule at least


SMALL_WORKFLOW = textwrap.dedent('''
    rule all:
        input: "ok.txt", "failed.txt"

    rule ok:
        output: "ok.txt"
        log: "logs/ok.log"
        threads: 1
        resources: mem_mb=500, runtime=5
        shell: "echo site=$FROM_SITE_SETUP > {output}"

    rule fails:
        output: "failed.txt"
        log: "logs/fails.log"
        threads: 1
        resources: mem_mb=500, runtime=5, gpu=1
        shell: "exit 3"
''')


@pytest.mark.slow
def test_jobs_run_and_a_server_without_history_is_answered_from_the_marker(tmp_path):
    """Real job scripts run (in the background, like PBS); finished jobs vanish from qstat."""
    work = tmp_path / "work"
    work.mkdir()
    snakefile = work / "Snakefile"
    snakefile.write_text(SMALL_WORKFLOW)
    env = fake_pbs(tmp_path, mode="run", history=False)
    done = snakemake_lengau("--retries", "0", env=env, workdir=work, snakefile=snakefile, timeout=240)
    log = done.stdout + done.stderr
    assert done.returncode != 0                                  # `fails` failed and was reported so
    assert (work / "ok.txt").read_text() == "site=yes\n"         # the site setup ran before the job
    assert re.search(r"status\.py \d+\.fakepbs: success: unknown to qstat .*exit status from", log), log
    assert re.search(r"status\.py \d+\.fakepbs: failed: unknown to qstat", log), log
    by_rule = {pbs.read_job_properties(job["script"])["rule"]: job for job in submissions(tmp_path)}
    assert by_rule["fails"]["exit"] == 1 and by_rule["ok"]["exit"] == 0
    assert by_rule["fails"]["argv"][by_rule["fails"]["argv"].index("-q") + 1] == "gpu_1"
    pbs_log = Path(by_rule["ok"]["argv"][by_rule["ok"]["argv"].index("-o") + 1])
    assert pbs_log.parent == work / "logs" / "pbs" and pbs_log.exists()


def _default_sigint() -> None:
    """Ctrl-C as at a terminal: where the suite runs in the background of a non-interactive shell
    (`bash .ci/run &`), SIGINT is ignored and Snakemake, inheriting that, would never see it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.slow
def test_a_job_killed_like_at_walltime_fails_and_ctrl_c_cancels_the_rest(tmp_path):
    """qdel of one job (SIGTERM, as at walltime): the job script waits while the rule saves, leaves
    143 and qstat reports it, so Snakemake sees it fail. Ctrl-C then makes Snakemake qdel the other
    through cancel.sh."""
    work = tmp_path / "work"
    work.mkdir()
    snakefile = work / "Snakefile"
    snakefile.write_text(textwrap.dedent('''
        rule all:
            input: "a.txt", "b.txt"

        rule sleeper:
            output: "{name}.txt"
            log: "logs/{name}.log"
            resources: mem_mb=500, runtime=5
            shell: "python slow_saver.py {wildcards.name} && touch {output}"
    '''))
    (work / "slow_saver.py").write_text(textwrap.dedent('''
        import pathlib, signal, sys, time
        name = sys.argv[1]

        def save(*_):                      # like training: a resume file that takes a while to write
            time.sleep(3)
            pathlib.Path(f"{name}.saved").touch()
            sys.exit(143)

        signal.signal(signal.SIGTERM, save)
        pathlib.Path(f"{name}.started").touch()
        time.sleep(60)
    '''))
    env = fake_pbs(tmp_path, mode="run", history=True)
    console = tmp_path / "snakemake.out"
    with console.open("w") as out:
        process = subprocess.Popen(
            [str(BIN / "snakemake"), "--profile", "lengau", "-s", str(snakefile), "-d", str(work), "--retries", "0",
             "--seconds-between-status-checks", "6", "--latency-wait", "1"],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, preexec_fn=_default_sigint)
    try:
        for _ in range(1200):                              # both rules' shells are running
            if (work / "a.started").exists() and (work / "b.started").exists():
                break
            time.sleep(0.1)
        else:
            pytest.fail("the jobs never started")
        ids = {pbs.read_job_properties(job["script"])["wildcards"]["name"]: job["id"] for job in submissions(tmp_path)}
        subprocess.run(["qdel", ids["a"]], env=env, check=True)
        for _ in range(300):                               # Snakemake has seen it fail
            if any("Error in rule sleeper" in log.read_text() for log in (work / ".snakemake" / "log").glob("*.log")):
                break
            time.sleep(0.1)
        else:
            pytest.fail("Snakemake never reported the killed job")
        # Ctrl-C between two polls: during a poll Snakemake holds its job list aside and would
        # cancel nothing (a race in snakemake-interface-executor-plugins' RemoteExecutor).
        time.sleep(2)
        process.send_signal(signal.SIGINT)
        process.wait(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    output = console.read_text()
    assert process.returncode != 0
    assert re.search(rf"status\.py {re.escape(ids['a'])}: failed: Exit_status 143: .*SIGTERM", output), output
    markers = pbs.exit_marker_dir(work)
    assert (markers / ids["a"]).read_text().strip() == "143"
    for _ in range(100):                                   # cancel.sh's qdel runs in the background
        if (markers / ids["b"]).exists():
            break
        time.sleep(0.1)
    assert (markers / ids["b"]).is_file() and (markers / ids["b"]).read_text().strip() == "143", output
    # Both saved before their job scripts ended (the fake PBS, like PBS, then kills what is left).
    assert (work / "a.saved").exists() and (work / "b.saved").exists()


# --- submitting: a job PBS still holds is followed, a qsub PBS refuses for now is tried again ---

def snakemake_job(folder: Path, jobid: int, attempt: int = 1, variant: str = "v07") -> Path:
    """A job script as cluster-generic hands it to submit.py; its jobid differs from run to run."""
    props = {**properties(wildcards={"variant": variant}), "jobid": jobid,
             "output": [f"results/train/{variant}/model.pt", f"results/train/{variant}/losses.csv"]}
    script = folder / f"snakejob.train.{jobid}.sh"
    script.write_text(f"#!/bin/sh\n# properties = {json.dumps(props)}\n"
                      f"python -m snakemake --target-jobs 'train:variant={variant}' --attempt {attempt}\n")
    return script


def run_submit(script: Path, work: Path, env: dict) -> subprocess.CompletedProcess:
    """What cluster-generic runs: the profile's submit command in the workflow's directory."""
    return subprocess.run([sys.executable, str(REPO / "lengau" / "submit.py"), str(script)], cwd=work, env=env,
                          capture_output=True, text=True, timeout=60)


def finish_job(tmp_path: Path, job_id: str, exit_status: int) -> None:
    path = tmp_path / "fakepbs" / "jobs" / f"{job_id}.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "state": "F", "exit": exit_status}))


def test_a_job_pbs_still_holds_is_followed_not_submitted_twice(tmp_path):
    """The login node's Snakemake dies (kill -9, a dropped ssh) with train-v07 queued; the same
    command again (after --unlock) submits it again, under another Snakemake jobid. submit.py
    prints the queued job's id instead of submitting a second copy (two 12-hour jobs on one
    resume folder), and that Snakemake follows it. Once that job has finished (a retry after a
    walltime kill), or a server without job history has forgotten it, a new one goes out."""
    work = tmp_path / "work"
    work.mkdir()
    env = fake_pbs(tmp_path, mode="queue", history=True)
    first = run_submit(snakemake_job(tmp_path, jobid=3), work, env)
    assert first.returncode == 0 and first.stdout == "1.fakepbs\n", first.stderr
    again = run_submit(snakemake_job(tmp_path, jobid=8), work, env)
    assert again.returncode == 0 and again.stdout == "1.fakepbs\n", again.stderr
    assert "PBS job 1.fakepbs" in again.stderr and "instead of submitting a second copy" in again.stderr
    other = run_submit(snakemake_job(tmp_path, jobid=9, variant="v08"), work, env)
    assert other.stdout == "2.fakepbs\n", other.stderr          # another job of the workflow: its own
    finish_job(tmp_path, "1.fakepbs", 271)
    retry = run_submit(snakemake_job(tmp_path, jobid=8, attempt=2), work, env)
    assert retry.stdout == "3.fakepbs\n" and "following" not in retry.stderr, retry.stderr
    finish_job(tmp_path, "3.fakepbs", 0)
    env["FAKE_PBS_HISTORY"] = "0"                                # qstat: Unknown Job Id 3.fakepbs
    assert run_submit(snakemake_job(tmp_path, jobid=8, attempt=3), work, env).stdout == "4.fakepbs\n"
    assert len(submissions(tmp_path)) == 4
    records = sorted(path.name.split(".")[0] for path in (work / ".snakemake" / "lengau" / "ids").iterdir())
    assert records == ["train-v07", "train-v08"]


def submit_here(monkeypatch, capsys, env: dict, work: Path, script: Path) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of submit.py run in this process, so that its delays between
    tries can be cut to nothing."""
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(work)
    monkeypatch.setattr(submit, "RETRY_DELAYS_S", (0, 0, 0))
    code = submit.main([str(script)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def refuse_qsub(tmp_path: Path, *messages: str) -> None:
    """The next len(messages) qsub calls fail with these messages ("hang": qsub does not answer)."""
    (tmp_path / "fakepbs").mkdir(exist_ok=True)
    (tmp_path / "fakepbs" / "qsub_refusals").write_text("".join(f"{message}\n" for message in messages))


def qsub_calls(tmp_path: Path) -> int:
    calls = tmp_path / "fakepbs" / "qsub_calls"
    return len(calls.read_text().splitlines()) if calls.exists() else 0


PER_USER_LIMIT = "qsub: would exceed queue gpu_1's per-user limit of jobs in 'Q' state"


def test_a_qsub_refused_for_now_is_tried_again(tmp_path, monkeypatch, capsys):
    """A per-user limit, a server that does not answer or a qsub that hangs is not the job's
    fault: submit.py tries again (4 tries over ~2 minutes on Lengau) instead of failing the job
    and so burning its retries in seconds; after the last try the job fails."""
    work = tmp_path / "work"
    work.mkdir()
    env = fake_pbs(tmp_path, mode="queue", history=True)
    monkeypatch.setattr(submit, "QSUB_TIMEOUT_S", 1)
    refuse_qsub(tmp_path, PER_USER_LIMIT, "qsub: cannot connect to server sched01 (errno=111)", "hang")
    code, out, err = submit_here(monkeypatch, capsys, env, work, snakemake_job(tmp_path, jobid=1))
    assert (code, out, qsub_calls(tmp_path)) == (0, "1.fakepbs\n", 4), err
    assert "per-user limit" in err and "try 1 of 4" in err and "qsub did not answer in 1 s" in err
    refuse_qsub(tmp_path, *[PER_USER_LIMIT] * 4)
    code, out, err = submit_here(monkeypatch, capsys, env, work, snakemake_job(tmp_path, jobid=2, variant="v08"))
    assert (code != 0, out, qsub_calls(tmp_path)) == (True, "", 8) and "gave up after 4 tries" in err, err


def test_a_recorded_job_qstat_cannot_see_is_not_submitted_again(tmp_path, monkeypatch, capsys):
    """Whether PBS still holds the job submitted earlier is unknown while qstat does not answer:
    submit.py tries again and then fails the job rather than risk a second copy."""
    work = tmp_path / "work"
    work.mkdir()
    env = fake_pbs(tmp_path, mode="queue", history=True)
    assert submit_here(monkeypatch, capsys, env, work, snakemake_job(tmp_path, jobid=1))[:2] == (0, "1.fakepbs\n")
    (tmp_path / "fakepbs" / "qstat_down").touch()
    code, out, err = submit_here(monkeypatch, capsys, env, work, snakemake_job(tmp_path, jobid=5))
    assert (code, out, qsub_calls(tmp_path)) == (1, "", 1) and "qstat did not answer for 1.fakepbs" in err, err


def id_recorded(work: Path, variant: str) -> str:
    """The PBS id submit.py keeps for train-{variant} (pbs.id_record)."""
    [record] = (work / ".snakemake" / "lengau" / "ids").glob(f"train-{variant}.*")
    return record.read_text().strip()


def lookups(tmp_path: Path) -> list[list[str]]:
    """The argument lists of the qselect calls the fake PBS answered (or refused)."""
    calls = tmp_path / "fakepbs" / "qselect_calls"
    return [json.loads(line) for line in calls.read_text().splitlines()] if calls.exists() else []


def test_a_job_a_timed_out_qsub_queued_is_followed_not_submitted_again(tmp_path, monkeypatch, capsys):
    """qsub reaches the server, which queues train-v07, but its answer never comes back (a busy
    server, a dropped connection): qsub times out. Before trying again submit.py finds the job
    queued from this very job script (among the user's others) and follows it: one 12-hour
    training on the resume folder, not two."""
    work = tmp_path / "work"
    work.mkdir()
    env = fake_pbs(tmp_path, mode="queue", history=True)
    monkeypatch.setattr(submit, "QSUB_TIMEOUT_S", 1)
    for jobid, variant in ((1, "v08"), (2, "v09")):                   # the user's other jobs, queued
        submit_here(monkeypatch, capsys, env, work, snakemake_job(tmp_path, jobid=jobid, variant=variant))
    refuse_qsub(tmp_path, "queue and hang")
    code, out, err = submit_here(monkeypatch, capsys, env, work, snakemake_job(tmp_path, jobid=3))
    assert (code, out, qsub_calls(tmp_path)) == (0, "3.fakepbs\n", 3), err
    assert len(submissions(tmp_path)) == 3 and id_recorded(work, "v07") == "3.fakepbs"
    assert "qsub did not answer in 1 s" in err and "PBS job 3.fakepbs was queued from " in err
    assert "instead of submitting a second copy" in err
    assert lookups(tmp_path) == [["-u", getpass.getuser()]]           # asked once, after the timeout only


def test_a_timed_out_qsub_that_never_reached_the_server_is_submitted_again(tmp_path, monkeypatch, capsys):
    """qsub timed out before the server had the job: PBS holds none from its script (only the
    user's other job), so the next try submits it."""
    work = tmp_path / "work"
    work.mkdir()
    env = fake_pbs(tmp_path, mode="queue", history=True)
    monkeypatch.setattr(submit, "QSUB_TIMEOUT_S", 1)
    submit_here(monkeypatch, capsys, env, work, snakemake_job(tmp_path, jobid=1, variant="v08"))
    refuse_qsub(tmp_path, "hang")
    code, out, err = submit_here(monkeypatch, capsys, env, work, snakemake_job(tmp_path, jobid=2))
    assert (code, out, qsub_calls(tmp_path)) == (0, "2.fakepbs\n", 3), err
    assert len(submissions(tmp_path)) == 2 and id_recorded(work, "v07") == "2.fakepbs"
    assert len(lookups(tmp_path)) == 1 and "following" not in err


def test_no_qsub_while_pbs_cannot_say_what_a_timed_out_qsub_queued(tmp_path, monkeypatch, capsys):
    """After a qsub timed out, a lookup that fails (the server still busy) is no licence to
    submit: submit.py asks again at the next try and follows the job once PBS answers; if PBS
    never does, the job fails with a note to look for a copy in qstat -u $USER."""
    work = tmp_path / "work"
    work.mkdir()
    env = fake_pbs(tmp_path, mode="queue", history=True)
    monkeypatch.setattr(submit, "QSUB_TIMEOUT_S", 1)
    refuse_qsub(tmp_path, "queue and hang")
    (tmp_path / "fakepbs" / "lookup_failures").write_text("2")         # tries 2 and 3: no answer
    code, out, err = submit_here(monkeypatch, capsys, env, work, snakemake_job(tmp_path, jobid=1))
    assert (code, out, qsub_calls(tmp_path), len(lookups(tmp_path))) == (0, "1.fakepbs\n", 1, 3), err
    assert "try 3 of 4" in err and "not submitting again until they do" in err and "PBS job 1.fakepbs" in err
    refuse_qsub(tmp_path, "hang")
    (tmp_path / "fakepbs" / "qstat_down").touch()                      # and now it never answers
    code, out, err = submit_here(monkeypatch, capsys, env, work, snakemake_job(tmp_path, jobid=2, variant="v08"))
    assert (code, out, qsub_calls(tmp_path), len(lookups(tmp_path))) == (1, "", 2, 6), err
    assert "gave up after 4 tries" in err and "look for a copy in qstat -u $USER" in err


def test_a_job_is_found_by_the_exact_path_of_its_script(site):
    """Submit_arguments as qstat -f prints them: joined by spaces and broken after a space (the
    space kept), or as the JSDL elements some PBS Pro versions show; only the very script path matches."""
    script = "/mnt/lustre/users/jdoe/vidsynth/.snakemake/lengau/scripts/train-v07.attempt1.sh"
    arguments = pbs.parse_qstat(recorded("queued.txt").stdout)["Submit_arguments"]
    assert " -l walltime=12:00:00 -j oe " in arguments and pbs.submitted_with(arguments, script)
    assert not pbs.submitted_with(arguments, script.replace("attempt1", "attempt2"))
    assert not pbs.submitted_with(arguments, script.replace("/mnt/lustre", "/lustre"))   # a suffix of it
    jsdl = "".join(f"<jsdl-hpcpa:Argument>{arg}</jsdl-hpcpa:Argument>" for arg in ("-N", "x", "/a&amp;b/x.sh"))
    assert pbs.submitted_with(jsdl, "/a&b/x.sh") and not pbs.submitted_with(jsdl, "/b/x.sh")
    records = recorded("queued.txt").stdout.replace("4012345.sched01", "7.sched01") + recorded("held.txt").stdout

    def answers(*replies):
        calls = []

        def run(command, timeout_s):
            calls.append(command)
            return replies[len(calls) - 1]
        return run, calls

    gone = pbs.QstatResult(153, records, "qstat: Unknown Job Id 9.sched01\n")   # finished since qselect
    run, calls = answers(pbs.QstatResult(0, "7.sched01\n4012346.sched01\n9.sched01\n", ""), gone)
    assert pbs.jobs_from_script(script, site, run) == ["7.sched01"]
    assert calls[1] == ["qstat", "-f", "7.sched01", "4012346.sched01", "9.sched01"]
    assert pbs.jobs_from_script(script, site, answers(pbs.QstatResult(0, "", ""))[0]) == []
    assert pbs.jobs_from_script(script, site, answers(pbs.QstatResult(None, "", "timed out"))[0]) is None
    down = pbs.QstatResult(2, "", "qstat: cannot connect to server sched01 (errno=111)\n")
    assert pbs.jobs_from_script(script, site, answers(pbs.QstatResult(0, "7.sched01\n", ""), down)[0]) is None


def test_a_qsub_refused_for_the_request_fails_at_once(tmp_path, monkeypatch, capsys):
    """An unknown queue, a placeholder project code or a missing qsub: no later try helps, so the
    job fails at once with the reason; the failed qsub line is quoted as a shell would need it."""
    work = tmp_path / "my work"
    work.mkdir()
    env = fake_pbs(tmp_path, mode="queue", history=True)
    refuse_qsub(tmp_path, "qsub: Unknown queue")
    code, out, err = submit_here(monkeypatch, capsys, env, work, snakemake_job(tmp_path, jobid=1))
    assert (code != 0, out, qsub_calls(tmp_path)) == (True, "", 1) and "Unknown queue" in err
    script = work / ".snakemake" / "lengau" / "scripts" / "train-v07.attempt1.sh"
    assert "-P CSCI1166 -q gpu_1 " in err and f" {shlex.quote(str(script))}\n" in err
    placeholder = dict(env, LENGAU_SITE=str(write_site(tmp_path / "placeholder.yaml", project="CSCI0000")))
    code, out, err = submit_here(monkeypatch, capsys, placeholder, work, snakemake_job(tmp_path, jobid=2))
    assert (code, qsub_calls(tmp_path)) == (1, 1) and "programme code" in err
    no_qsub = dict(env, PATH=f"{BIN}{os.pathsep}/usr/bin{os.pathsep}/bin")
    code, out, err = submit_here(monkeypatch, capsys, no_qsub, work, snakemake_job(tmp_path, jobid=3))
    assert (code, qsub_calls(tmp_path)) == (1, 1) and "qsub is not on PATH" in err
