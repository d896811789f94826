"""PBS Pro for Snakemake's cluster-generic executor: the qsub line, the job script, the status.

CHPC's Lengau runs PBS Pro (thesis 4.5.3: 12-hour GPU jobs, restarted by hand). This module
is shared by the profile's scripts (submit.py, status.py) and the tests; it needs only the
standard library and PyYAML, so it runs on a login node with any Python that has them.

Facts it relies on (OpenPBS man pages and source, restated in reference/snakemake-cluster.md section 6):
``-l select=1:ncpus=N:ngpus=G:mem=Mmb`` is one chunk (``mem`` inside select, ``ngpus`` a
Lengau-defined resource), ``-l walltime`` is job-wide, jobs start in $HOME, ``qstat -x -f ID``
shows finished jobs only when the server keeps history, ``Exit_status`` >= 256 is 256 + signal
(271: SIGTERM at walltime) and negative values are PBS-side (-29: walltime exceeded);
``qselect -u USER`` lists the ids of the user's unfinished jobs, and ``qstat -f``'s
``Submit_arguments`` is qsub's argument list, joined by spaces (some PBS Pro versions: as the
JSDL ``<jsdl-hpcpa:Argument>`` elements the server keeps), the job script's path last.
"""

from __future__ import annotations

import getpass
import hashlib
import html
import json
import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

__all__ = [
    "Queue", "Site", "SiteError", "site_file", "load_site", "read_job_properties", "job_attempt",
    "job_name", "walltime", "walltime_seconds", "job_walltime_s", "choose_queue", "qsub_command", "job_script",
    "parse_qstat", "parse_qstat_jobs", "state_of", "explain_exit", "QstatResult", "CommandMissing", "command_missing",
    "run_pbs_command", "run_qstat", "job_status", "state_held", "submitted_with", "jobs_from_script",
    "exit_marker_dir", "script_path", "python_env_lines", "job_key", "id_record",
]

HERE = Path(__file__).resolve().parent
SITE_ENV = "LENGAU_SITE"
PLACEHOLDER_PROJECT = "CSCI0000"       # what site.yaml ships with: no job goes out under it
SETTINGS = {"project", "queues", "setup", "log_dir", "unknown_job_grace_s", "qstat_timeout_s",
            "warn_before_walltime_s"}
REQUIRED = {"project", "queues", "setup", "log_dir"}
# job_state letters (qstat(1B)): F finished (and X, a finished subjob) are final; every other
# letter (Q H W T M S U B R E) is a job PBS still holds. E = exiting: Exit_status not final yet.
FINAL_STATES = frozenset("FX")
UNKNOWN_JOB = re.compile(r"unknown job id|job has finished", re.IGNORECASE)
JSDL_ARGUMENT = re.compile(r"<jsdl-hpcpa:Argument>(.*?)</jsdl-hpcpa:Argument>", re.DOTALL)


class SiteError(ValueError):
    """The site file is missing a setting or has a bad value; the message names the file."""


class CommandMissing(RuntimeError):
    """A PBS command (qsub, qstat) is not on PATH: not a login node, or a module not loaded."""


def command_missing(name: str) -> CommandMissing:
    return CommandMissing(f"{name} is not on PATH ({os.environ.get('PATH', '')}): run snakemake --profile "
                          f"lengau on a Lengau login node, where PBS's commands are")


@dataclass(frozen=True)
class Queue:
    name: str
    max_walltime_s: int


@dataclass(frozen=True)
class Site:
    """The settings a user edits in lengau/site.yaml, checked and with paths resolved."""

    project: str
    gpu: Queue
    cpu: Queue
    setup: str
    log_dir: Path                # absolute: PBS writes it from the compute node
    unknown_job_grace_s: float
    qstat_timeout_s: float
    warn_before_walltime_s: int = 300


def site_file() -> Path:
    """$LENGAU_SITE if set, else site.yaml beside this module."""
    return Path(os.environ.get(SITE_ENV) or HERE / "site.yaml")


def _hms_seconds(text: str, where: str) -> int:
    match = re.fullmatch(r"(\d+):([0-5]\d):([0-5]\d)", str(text).strip())
    if not match:
        raise SiteError(f"{where}: walltime {text!r} is not HH:MM:SS")
    hours, minutes, seconds = map(int, match.groups())
    return hours * 3600 + minutes * 60 + seconds


def load_site(path: str | Path | None = None, workdir: str | Path | None = None) -> Site:
    """Read and check the site file; ``log_dir`` is resolved against ``workdir`` (default: cwd)."""
    path = Path(path) if path is not None else site_file()
    raw = _read_site(path)
    if str(raw["project"] or "").strip() in ("", PLACEHOLDER_PROJECT):
        raise SiteError(f"{path}: set project to your CHPC programme code (qsub -P), "
                        f"not {raw['project']!r}")
    log_dir = Path(os.path.expandvars(str(raw["log_dir"])))
    return Site(
        project=str(raw["project"]).strip(),
        gpu=_queue(raw, "gpu", path),
        cpu=_queue(raw, "cpu", path),
        setup=str(raw["setup"] or ""),
        log_dir=log_dir if log_dir.is_absolute() else Path(workdir or Path.cwd()).resolve() / log_dir,
        unknown_job_grace_s=_number(raw, "unknown_job_grace_s", 300, float, path),
        qstat_timeout_s=_number(raw, "qstat_timeout_s", 60, float, path),
        warn_before_walltime_s=_number(raw, "warn_before_walltime_s", 300, int, path),
    )


def _number(raw: dict[str, Any], key: str, default: float, kind: Callable[[Any], Any], path: Path) -> Any:
    """A number of the site file, or a SiteError naming the file and the key."""
    try:
        return kind(raw.get(key, default))
    except (TypeError, ValueError):
        raise SiteError(f"{path}: {key} is {raw[key]!r}, not a number of seconds") from None


def _read_site(path: Path) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise SiteError(f"{path}: cannot read the site settings ({err})") from err
    if not isinstance(raw, dict):
        raise SiteError(f"{path}: expected a mapping of settings")
    missing, unknown = sorted(REQUIRED - raw.keys()), sorted(raw.keys() - SETTINGS)
    if missing:
        raise SiteError(f"{path}: missing setting(s) {', '.join(missing)}")
    if unknown:
        raise SiteError(f"{path}: unknown setting(s) {', '.join(unknown)}; allowed: {', '.join(sorted(SETTINGS))}")
    return raw


def _queue(raw: dict[str, Any], kind: str, path: Path) -> Queue:
    queues = raw["queues"] if isinstance(raw["queues"], dict) else {}
    entry = queues.get(kind)
    if not isinstance(entry, dict) or "name" not in entry or "max_walltime" not in entry:
        raise SiteError(f"{path}: queues.{kind} needs a name and a max_walltime")
    return Queue(str(entry["name"]), _hms_seconds(entry["max_walltime"], f"{path}: queues.{kind}"))


def read_job_properties(jobscript: str) -> dict[str, Any]:
    """The JSON on the ``# properties = `` line Snakemake writes into every job script."""
    for line in jobscript.splitlines():
        if line.startswith("# properties = "):
            return json.loads(line[len("# properties = "):])
    raise ValueError("no '# properties = ' line in the job script")


def job_attempt(jobscript: str) -> int:
    """Which attempt of the job this is (Snakemake passes ``--attempt N`` to the job)."""
    match = re.search(r"--attempt[ =](\d+)", jobscript)
    return int(match.group(1)) if match else 1


def job_name(job_properties: dict[str, Any]) -> str:
    """``rule-wildcard-values``, in the characters every PBS version accepts in -N."""
    if job_properties.get("type") == "group":
        parts = ["group", str(job_properties.get("groupid", "job"))]
    else:
        parts = [job_properties["rule"], *map(str, (job_properties.get("wildcards") or {}).values())]
    name = re.sub(r"[^A-Za-z0-9_-]+", "_", "-".join(parts))
    return name[:200] if name[:1].isalpha() else f"j{name}"[:200]


def walltime_seconds(runtime_minutes: Any, cap_s: int) -> int:
    """A rule's ``runtime`` (minutes) in seconds, never above the queue's cap; none: the cap."""
    try:
        seconds = int(round(float(runtime_minutes) * 60))
    except (TypeError, ValueError):
        seconds = cap_s
    return cap_s if seconds <= 0 else min(seconds, cap_s)


def walltime(runtime_minutes: Any, cap_s: int) -> str:
    """HH:MM:SS of :func:`walltime_seconds`."""
    return _hms(walltime_seconds(runtime_minutes, cap_s))


def _hms(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def job_walltime_s(job_properties: dict[str, Any], site: Site) -> int:
    """The walltime (seconds) a job is submitted with: its runtime, capped by its queue."""
    runtime = (job_properties.get("resources") or {}).get("runtime")
    return walltime_seconds(runtime, choose_queue(job_properties, site).max_walltime_s)


def choose_queue(job_properties: dict[str, Any], site: Site) -> Queue:
    """The GPU queue for a job that asks for GPUs (resources.gpu > 0), else the CPU queue."""
    return site.gpu if _gpus(job_properties) > 0 else site.cpu


def _gpus(job_properties: dict[str, Any]) -> int:
    return int((job_properties.get("resources") or {}).get("gpu") or 0)


def qsub_command(job_properties: dict[str, Any], site: Site, attempt: int = 1) -> list[str]:
    """The qsub argv for one Snakemake job, without the job script's path, which submit.py appends.

    No ``-V``: exporting the login environment breaks ``qstat -F json`` and leaks the login
    node's modules into the job; the job script's ``setup`` lines and the submitting Python's
    ``bin/`` (:func:`python_env_lines`) build the environment instead.
    """
    resources = job_properties.get("resources") or {}
    if "mem_mb" not in resources:
        raise ValueError(f"job {job_name(job_properties)}: resources.mem_mb is not set "
                         "(the profile's default-resources should give it)")
    queue = choose_queue(job_properties, site)
    chunk = f"select=1:ncpus={max(1, int(job_properties.get('threads') or 1))}"
    if _gpus(job_properties):
        chunk += f":ngpus={_gpus(job_properties)}"
    chunk += f":mem={int(resources['mem_mb'])}mb"
    name = job_name(job_properties)
    return [
        "qsub",
        "-S", "/bin/bash",           # PBS runs the script with the login shell unless told
        "-N", name,
        "-P", site.project,
        "-q", queue.name,
        "-l", chunk,
        "-l", f"walltime={_hms(job_walltime_s(job_properties, site))}",
        "-j", "oe",
        "-o", str(site.log_dir / f"{name}.attempt{attempt}.pbs.log"),
    ]


def exit_marker_dir(workdir: str | Path) -> Path:
    """Where job scripts leave their exit status, for servers that forget finished jobs."""
    return Path(workdir).resolve() / ".snakemake" / "lengau" / "exit"


def script_path(job_properties: dict[str, Any], workdir: str | Path, attempt: int = 1) -> Path:
    """Where submit.py keeps the script it submitted (PBS copies it; this copy is for people)."""
    scripts = Path(workdir).resolve() / ".snakemake" / "lengau" / "scripts"
    return scripts / f"{job_name(job_properties)}.attempt{attempt}.sh"


def job_key(job_properties: dict[str, Any]) -> str:
    """A file name for one job of the workflow that stays the same from one Snakemake run to the
    next (unlike Snakemake's jobid): its name and a hash of its output files, which no other job
    of the workflow has, or of its rule and wildcards for a job whose outputs Snakemake leaves
    out of the properties (over 100 of them) or that has none."""
    what = sorted(job_properties.get("output") or []) or [
        job_properties.get("rule") or job_properties.get("groupid"), job_properties.get("wildcards")]
    digest = hashlib.sha1(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]
    return f"{job_name(job_properties)}.{digest}"


def id_record(job_properties: dict[str, Any], workdir: str | Path) -> Path:
    """Where submit.py keeps the PBS id of the job it last submitted for this job of the workflow."""
    return Path(workdir).resolve() / ".snakemake" / "lengau" / "ids" / job_key(job_properties)


def python_env_lines(python: str | Path | None = None) -> list[str]:
    """Shell lines that put the ``bin/`` of ``python`` (default: this interpreter) first on PATH.

    The profile runs submit.py with the interpreter Snakemake runs with, so a job finds the rules'
    bare ``python`` (and ``snakemake``) in the environment the workflow was submitted from, wherever
    the working directory (``-d``) is: a job starts in $HOME with a bare PATH. A virtualenv is
    recognised by its pyvenv.cfg and also gets VIRTUAL_ENV, as its ``activate`` would set. The path
    is made absolute but not resolved: a venv's python is a symlink to the base interpreter.
    """
    bin_dir = Path(os.path.abspath(python or sys.executable)).parent
    lines = []
    if (bin_dir.parent / "pyvenv.cfg").is_file():
        lines.append(f"export VIRTUAL_ENV={shlex.quote(str(bin_dir.parent))}")
    lines += [f'export PATH={shlex.quote(str(bin_dir))}:"$PATH"', "unset PYTHONHOME", "hash -r"]
    return lines


def job_script(jobscript: str, site: Site, workdir: str | Path, walltime_s: int | None = None,
               python: str | Path | None = None) -> str:
    """The script PBS runs: site setup, the submitting Python environment, Snakemake's own job
    script, then the exit-status marker.

    The environment (:func:`python_env_lines` of ``python``, default this interpreter) comes after
    the site setup, so a ``module load`` there cannot put another Python ahead of it.

    Snakemake's script ends in ``exit 0 || exit 1``, so it runs in a background subshell and
    the marker is written after it. At walltime (or qdel) PBS sends SIGTERM to every process of
    the job and kills what is left once the job script ends; so on SIGTERM this script waits for
    the job's Python processes (training saving its resume state) before it ends. PBS's
    kill_delay, after which it sends SIGKILL, bounds that wait: seconds, too short to save a
    pix2pixHD's weights and Adam state on Lustre. So, given the job's ``walltime_s``, a timer
    sends the same SIGTERM ``site.warn_before_walltime_s`` earlier (Slurm's ``--signal=TERM@300``).
    """
    body = "\n".join(line for line in jobscript.splitlines() if not line.startswith("#!"))
    marker = shlex.quote(str(exit_marker_dir(workdir)))
    early = walltime_s - site.warn_before_walltime_s if walltime_s else 0
    timer = [f"# SIGTERM to the whole job {site.warn_before_walltime_s} s before its walltime, as PBS sends at it.",
             f'( sleep {early} && pkill -TERM -s "$$" ) &', "timer=$!"] if early > 0 else ["timer="]
    return "\n".join([
        "#!/bin/bash",
        "# Submitted by lengau/submit.py (the Snakemake lengau profile); options are on the qsub line.",
        f"exit_dir={marker}",
        "terminated=",
        "trap 'terminated=1' TERM",
        "# --- site setup (lengau/site.yaml: setup) ---",
        site.setup.rstrip("\n"),
        "# --- the Python environment snakemake was run with (lengau/submit.py's interpreter) ---",
        *python_env_lines(python),
        *timer,
        "# --- the Snakemake job ---",
        "(",
        body,
        ") &",
        'wait "$!"',
        "status=$?",
        'if [ -n "$terminated" ]; then',
        '    while pgrep -s "$$" python >/dev/null; do sleep 1; done',
        "    status=143",
        "fi",
        'if [ -n "$timer" ]; then pkill -P "$timer"; kill "$timer"; fi 2>/dev/null',
        'mkdir -p "$exit_dir" && echo "$status" > "$exit_dir/$PBS_JOBID"',
        'exit "$status"',
        "",
    ])


def parse_qstat(text: str) -> dict[str, str]:
    """``name = value`` attributes of one job in ``qstat -f`` text (continuation lines joined).

    PBS Pro continues long values on lines that start with a tab (Torque: 8 spaces); the text
    form is used because ``-F json`` can be invalid JSON (openpbs #2541, #1255). qstat breaks a
    value after a fixed number of characters, a space among them, so only the line break and
    that indent are taken out: a value keeps the spaces around a break (Submit_arguments).
    """
    attributes: dict[str, str] = {}
    last = None
    for line in text.splitlines():
        indent = next((prefix for prefix in ("\t", " " * 8) if line.startswith(prefix)), None)
        if indent and last is not None:
            attributes[last] += line[len(indent):]
            continue
        name, sep, value = line.lstrip().partition(" = ")
        if sep and name:
            attributes[name] = value
            last = name
    return attributes


def parse_qstat_jobs(text: str) -> dict[str, dict[str, str]]:
    """Each job's attributes (:func:`parse_qstat`) in ``qstat -f`` text of several jobs, by job id."""
    jobs: dict[str, list[str]] = {}
    lines: list[str] = []
    for line in text.splitlines():
        if line.startswith("Job Id:"):
            lines = jobs.setdefault(line.partition(":")[2].strip(), [])
        else:
            lines.append(line)
    return {job_id: parse_qstat("\n".join(lines)) for job_id, lines in jobs.items()}


def state_of(attributes: dict[str, str]) -> str | None:
    """running / success / failed from a job's attributes; None if Exit_status is missing at F."""
    state = attributes.get("job_state", "").strip()[:1]
    if state not in FINAL_STATES:
        return "running"
    try:
        exit_status = int(attributes["Exit_status"])
    except (KeyError, ValueError):
        return None
    return "success" if exit_status == 0 else "failed"


# Negative Exit_status values set by PBS itself (OpenPBS src/include/job.h), the ones a user meets.
PBS_EXIT_REASONS = {-29: "walltime exceeded", -27: "memory limit exceeded", -25: "cpu time exceeded",
                    -11: "job killed before it ran (server)", -3: "could not start the job"}


def explain_exit(exit_status: int) -> str:
    """What an Exit_status means: the script's own code, 256 + a signal, or a PBS error."""
    if exit_status >= 256:
        signal_number = exit_status - 256
        hint = " (SIGTERM: walltime or qdel)" if signal_number == 15 else ""
        return f"killed by signal {signal_number}{hint}"
    if exit_status < 0:
        return PBS_EXIT_REASONS.get(exit_status, "PBS could not run or finish the job")
    if exit_status == 143:
        return "exited 143 = 128 + SIGTERM: stopped by walltime or qdel"
    return "exited 0" if exit_status == 0 else f"exited {exit_status}"


@dataclass(frozen=True)
class QstatResult:
    returncode: int | None       # None: qstat did not answer (timeout, not found)
    stdout: str
    stderr: str


def run_pbs_command(command: list[str], timeout_s: float) -> QstatResult:
    """What a PBS client command (qstat, qselect) answered; returncode None when it did not.

    Raises :class:`CommandMissing` without the command: asking again would never help.
    """
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
    except FileNotFoundError:
        raise command_missing(command[0]) from None
    except (OSError, subprocess.TimeoutExpired) as err:
        return QstatResult(None, "", str(err))
    return QstatResult(done.returncode, done.stdout, done.stderr)


def run_qstat(job_id: str, timeout_s: float) -> QstatResult:
    """``qstat -x -f ID`` (one id: several give only the first job with -F json, openpbs #2672)."""
    return run_pbs_command(["qstat", "-x", "-f", job_id], timeout_s)


def _hold_note(attributes: dict[str, str]) -> str:
    """Why a held job will not start, from its attributes; "" for a job that is not held."""
    if attributes.get("job_state", "").strip()[:1] != "H":
        return ""
    details = "; ".join(f"{name} = {attributes[name]}" for name in ("Hold_Types", "comment") if name in attributes)
    return (f"held by PBS ({details or 'no Hold_Types given'}): it starts only once released "
            "(qrls for a user hold u; CHPC's support for o or s) or deleted (qdel)")


def state_held(job_id: str, site: Site, qstat: Callable[[str, float], QstatResult] = run_qstat) -> str | None:
    """The job_state letter of a job PBS still holds (queued, held, running, exiting...); "" for
    one that has finished or that qstat does not know; None when qstat gave no answer."""
    answer = qstat(job_id, site.qstat_timeout_s)
    if answer.returncode == 0:
        state = parse_qstat(answer.stdout).get("job_state", "").strip()[:1]
        if state:
            return "" if state in FINAL_STATES else state
    if answer.returncode is not None and UNKNOWN_JOB.search(f"{answer.stdout}\n{answer.stderr}"):
        return ""
    return None


def submitted_with(submit_arguments: str, script: str | Path) -> bool:
    """Whether a job's Submit_arguments end with exactly this job script's path (qsub's last
    argument): joined by spaces, as OpenPBS's qstat shows them, or as the XML-escaped JSDL
    elements the server keeps, which some PBS Pro versions show as they are."""
    encoded = JSDL_ARGUMENT.findall(submit_arguments)
    if encoded:
        return html.unescape(encoded[-1]) == str(script)
    return f" {submit_arguments}".endswith(f" {script}")


def jobs_from_script(script: str | Path, site: Site,
                     run: Callable[[list[str], float], QstatResult] = run_pbs_command) -> list[str] | None:
    """The ids of the user's jobs PBS still holds that were submitted with this job script; None
    when qselect or qstat gave no full answer (the server busy or down), which is not "none".

    Two calls: qselect lists the ids, and ``qstat -f`` of those ids gives their Submit_arguments.
    A job that finishes in between is unknown to qstat (or "has finished"), which then exits
    non-zero with the other records printed (it asks for each id on its own): that answer counts.
    """
    listed = run(["qselect", "-u", getpass.getuser()], site.qstat_timeout_s)
    if listed.returncode != 0:
        return None
    job_ids = listed.stdout.split()
    if not job_ids:
        return []
    records = run(["qstat", "-f", *job_ids], site.qstat_timeout_s)
    if records.returncode != 0 and not _only_unknown_jobs(records):
        return None
    return [job_id for job_id, attributes in parse_qstat_jobs(records.stdout).items()
            if submitted_with(attributes.get("Submit_arguments", ""), script)]


def _only_unknown_jobs(answer: QstatResult) -> bool:
    """Whether a failed qstat complained only of jobs it does not know (any more)."""
    complaints = answer.stderr.strip().splitlines()
    return answer.returncode is not None and bool(complaints) and all(map(UNKNOWN_JOB.search, complaints))


def _read_marker(path: Path) -> str | None:
    try:
        code = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    return "success" if code == 0 else "failed"


def job_status(job_id: str, site: Site, workdir: str | Path,
               qstat: Callable[[str, float], QstatResult] = run_qstat,
               now: Callable[[], float] = time.time) -> tuple[str, str]:
    """(running | success | failed, why) for one PBS job id; why is "" for a job PBS still holds,
    unless it is held (job_state H): that waits for a person, so it is said on every poll.

    qstat's answer wins when it has one. A job qstat does not know (no job history on the
    server) is settled by the exit marker its script left; without one it stays "running" for
    ``unknown_job_grace_s`` (a marker on a shared file system may lag) and then counts as failed.
    Any other qstat trouble is transient: "running", so Snakemake asks again instead of aborting.
    """
    marker = exit_marker_dir(workdir) / job_id
    answer = qstat(job_id, site.qstat_timeout_s)
    if answer.returncode == 0:
        attributes = parse_qstat(answer.stdout)
        if "job_state" in attributes:
            status = state_of(attributes)
            if status == "running":
                return status, _hold_note(attributes)
            if status is not None:
                code = int(attributes["Exit_status"])
                return status, f"Exit_status {code}: {explain_exit(code)}"
            return _read_marker(marker) or "failed", "finished without an Exit_status (deleted before it ran?)"
    output = f"{answer.stdout}\n{answer.stderr}".strip()
    if answer.returncode is None or not UNKNOWN_JOB.search(output):
        return "running", f"qstat trouble, asking again later: {output[-300:]}"
    status = _read_marker(marker)
    if status is not None:
        return status, f"unknown to qstat (no job history); exit status from {marker}"
    unknown_since = marker.parent.parent / "unknown" / job_id
    unknown_since.parent.mkdir(parents=True, exist_ok=True)
    if not unknown_since.exists():
        unknown_since.write_text(f"{now()}\n")
    waited = now() - float(unknown_since.read_text())
    if waited < site.unknown_job_grace_s:
        return "running", f"unknown to qstat for {waited:.0f} s and no exit marker yet"
    return "failed", f"unknown to qstat for {waited:.0f} s and no exit marker: killed or lost"
