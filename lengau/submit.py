#!/usr/bin/env python3
"""cluster-generic-submit-cmd of the lengau profile: submit one Snakemake job script with qsub.

Snakemake calls ``submit.py JOBSCRIPT`` in the workflow's directory, with its own interpreter
(the profile's submit command); this writes the PBS job script (site setup + that interpreter's
bin/ first on PATH + Snakemake's script + exit marker, see pbs.job_script) under
.snakemake/lengau/scripts/, runs the qsub line of pbs.qsub_command and prints the job id qsub
printed, which Snakemake passes to status.py and cancel.sh.

A job of the workflow that an earlier Snakemake submitted and PBS still holds (that Snakemake
died: a dropped ssh, kill -9) is not submitted again: its id, kept in .snakemake/lengau/ids/
(pbs.id_record), is printed instead, and this Snakemake follows it. Snakemake itself cannot:
the job's own Snakemake clears the job id it leaves in .snakemake/incomplete/ once it starts.

A qsub that PBS refuses for now (a per-user limit on queued jobs, a server that does not
answer) is tried again a few times over about two minutes; one it refuses for the request
itself (an unknown queue, a request over the queue's limits) or a missing qsub exits non-zero
at once with qsub's message, and Snakemake reports the job as failed.

A qsub that timed out may have reached the server and queued the job all the same. So every
try after one asks PBS first (pbs.jobs_from_script: qselect -u $USER, then qstat -f) for a job
submitted with this very job script, and follows it if there is one, instead of queueing a
second copy (two trainings on one resume folder). While PBS cannot say, nothing is submitted:
the try counts as refused for now, and after the last one the job fails with a note to look
for a copy in qstat -u $USER.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pbs  # noqa: E402  (beside this script, not an installed package)

RETRY_DELAYS_S = (15, 30, 60)       # seconds before each new try: 4 tries over ~2 minutes
QSUB_TIMEOUT_S = 60                 # per qsub call; a PBS client gives up on a dead server sooner
# PBS Pro's refusals of the request itself, which no later try changes: fix lengau/site.yaml
# (queue names, walltime caps) or the rule's resources. Any other refusal is tried again.
BAD_REQUEST = re.compile(r"unknown (queue|resource)|illegal|invalid|violates|not authori[sz]ed|unauthori[sz]ed"
                         r"|bad uid|usage:", re.IGNORECASE)


class Refused(Exception):
    """Trying again cannot help: the job fails now."""


class TryLater(Exception):
    """PBS may take the job in a while (per-user limit, server busy or unreachable)."""


class QsubTimedOut(TryLater):
    """qsub did not answer: the server may have queued the job all the same."""


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: submit.py JOBSCRIPT (called by Snakemake's cluster-generic executor)", file=sys.stderr)
        return 2
    jobscript = Path(argv[0]).read_text()
    workdir = Path.cwd()
    try:
        site = pbs.load_site(workdir=workdir)
    except pbs.SiteError as err:          # the placeholder project code among them: no retry
        print(f"lengau/submit.py: {err}", file=sys.stderr)
        return 1
    properties = pbs.read_job_properties(jobscript)
    attempt = pbs.job_attempt(jobscript)
    script = pbs.script_path(properties, workdir, attempt)
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(pbs.job_script(jobscript, site, workdir, pbs.job_walltime_s(properties, site)))
    site.log_dir.mkdir(parents=True, exist_ok=True)          # PBS does not create it
    pbs.exit_marker_dir(workdir).mkdir(parents=True, exist_ok=True)
    command = [*pbs.qsub_command(properties, site, attempt), str(script)]
    record = pbs.id_record(properties, workdir)
    tries = len(RETRY_DELAYS_S) + 1
    maybe_queued = False           # a qsub timed out: from then on PBS is asked before each qsub
    for number, delay in enumerate([*RETRY_DELAYS_S, None], start=1):
        try:
            job_id = (followed_job(record, site)
                      or (maybe_queued and job_queued_by_timed_out_qsub(script, site))
                      or run_qsub(command))
        except Refused as err:
            print(f"lengau/submit.py: {err}", file=sys.stderr)
            return 1
        except TryLater as err:
            maybe_queued = maybe_queued or isinstance(err, QsubTimedOut)
            if delay is None:
                print(f"lengau/submit.py: {err}\ngave up after {tries} tries", file=sys.stderr)
                if maybe_queued:
                    print(f"a qsub that timed out may have queued the job all the same: look for a copy in "
                          f"qstat -u $USER (qstat -f ID shows its Submit_arguments, ending in {script}) and qdel "
                          f"it before running the workflow again", file=sys.stderr)
                return 1
            print(f"lengau/submit.py: {err}\ntry {number} of {tries}; again in {delay} s", file=sys.stderr)
            time.sleep(delay)
            continue
        write_record(record, job_id)
        print(job_id)
        return 0
    return 1                                                  # not reached: the last try returns


def followed_job(record: Path, site: pbs.Site) -> str | None:
    """The recorded PBS id of this job of the workflow if PBS still holds that job, else None."""
    try:
        job_id = record.read_text().strip()
    except FileNotFoundError:
        return None
    try:
        state = pbs.state_held(job_id, site)
    except pbs.CommandMissing as err:
        raise Refused(err) from None
    if state is None:              # following a job PBS may still hold beats submitting it twice
        raise TryLater(f"qstat did not answer for {job_id}, submitted earlier for this job")
    if not state:
        return None                # finished (a retry) or forgotten by PBS: submit afresh
    print(f"lengau/submit.py: PBS job {job_id} for these outputs, submitted by an earlier run, is still in "
          f"state {state}: following it instead of submitting a second copy (qdel {job_id} to start afresh)",
          file=sys.stderr)
    return job_id


def job_queued_by_timed_out_qsub(script: Path, site: pbs.Site) -> str | None:
    """The id of a job PBS holds that was submitted with this job script, else None: what a
    timed-out qsub queued after all (or an earlier Snakemake's qsub of the same job and attempt).

    :class:`TryLater` while PBS cannot say: a qsub then might queue a second copy.
    """
    try:
        job_ids = pbs.jobs_from_script(script, site)
    except pbs.CommandMissing as err:
        raise Refused(err) from None
    if job_ids is None:
        raise TryLater(f"a qsub timed out, and qselect/qstat did not say whether it queued the job from {script}; "
                       "not submitting again until they do")
    if not job_ids:
        return None                # the timed-out qsub never reached the server: submit
    others = f" (PBS holds {', '.join(job_ids[1:])} from it too: qdel them)" if job_ids[1:] else ""
    print(f"lengau/submit.py: PBS job {job_ids[0]} was queued from {script} by a qsub that timed out: "
          f"following it instead of submitting a second copy{others}", file=sys.stderr)
    return job_ids[0]


def run_qsub(command: list[str]) -> str:
    """The job id qsub printed; :class:`TryLater` or :class:`Refused` when it printed none.

    A qsub that timed out (:class:`QsubTimedOut`) may still have reached the server and queued
    the job: before trying again, main asks PBS for it (:func:`job_queued_by_timed_out_qsub`).
    """
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=QSUB_TIMEOUT_S)
    except FileNotFoundError:
        raise Refused(pbs.command_missing("qsub")) from None
    except subprocess.TimeoutExpired:
        raise QsubTimedOut(f"qsub did not answer in {QSUB_TIMEOUT_S} s: {shlex.join(command)}") from None
    if done.returncode == 0 and done.stdout.strip():
        return done.stdout.strip().splitlines()[0]
    message = f"qsub failed ({done.returncode}): {shlex.join(command)}\n{done.stdout}{done.stderr}".rstrip()
    if done.returncode == 0 or BAD_REQUEST.search(done.stdout + done.stderr):
        raise Refused(message)    # exit 0 without an id: it may have submitted; do not risk a copy
    raise TryLater(message)


def write_record(record: Path, job_id: str) -> None:
    record.parent.mkdir(parents=True, exist_ok=True)
    partial = record.with_name(f"{record.name}.{os.getpid()}.tmp")
    partial.write_text(f"{job_id}\n")
    partial.replace(record)        # a reader sees the old id or the new one, never half of one


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
