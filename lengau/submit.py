#!/usr/bin/env python3
"""cluster-generic-submit-cmd of the lengau profile: submit one Snakemake job script with qsub.

Snakemake calls ``submit.py JOBSCRIPT`` in the workflow's directory, with its own interpreter
(the profile's submit command); this writes the PBS job script (site setup + that interpreter's
bin/ first on PATH + Snakemake's script + exit marker, see pbs.job_script) under
.snakemake/lengau/scripts/, runs the qsub line of pbs.qsub_command and prints the job id qsub
printed, which Snakemake passes to status.py and cancel.sh. A qsub error exits non-zero with
qsub's message, and Snakemake reports the job as failed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pbs  # noqa: E402  (beside this script, not an installed package)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: submit.py JOBSCRIPT (called by Snakemake's cluster-generic executor)", file=sys.stderr)
        return 2
    jobscript = Path(argv[0]).read_text()
    workdir = Path.cwd()
    try:
        site = pbs.load_site(workdir=workdir)
    except pbs.SiteError as err:
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
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0 or not done.stdout.strip():
        print(f"qsub failed ({done.returncode}): {' '.join(command)}\n{done.stdout}{done.stderr}", file=sys.stderr)
        return done.returncode or 1
    print(done.stdout.strip().splitlines()[0])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
