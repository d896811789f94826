#!/usr/bin/env python3
"""cluster-generic-status-cmd of the lengau profile: print running, success or failed for a job.

Snakemake calls ``status.py 'JOBID'`` every few seconds in the workflow's directory and
aborts the whole run on any other output or a non-zero exit, so this prints one of the three
words and exits 0; why a job ended (or why qstat could not say, or why a held job waits) goes to
stderr. The one exception is a missing qstat: no later poll can answer, so it exits 1 and
Snakemake stops, saying so. The rules (qstat -x -f, walltime kills, the exit marker for servers
without history) are pbs.job_status.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pbs  # noqa: E402  (beside this script, not an installed package)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: status.py JOBID (called by Snakemake's cluster-generic executor)", file=sys.stderr)
        return 2
    workdir = Path.cwd()
    try:
        site = pbs.load_site(workdir=workdir)
    except pbs.SiteError as err:              # edited mid-run: keep the run alive until it is fixed
        print("running")
        print(f"lengau/status.py {argv[0]}: cannot check the job: {err}", file=sys.stderr)
        return 0
    try:
        status, why = pbs.job_status(argv[0], site, workdir)
    except pbs.CommandMissing as err:     # "running" would be said forever: stop the run instead
        print(f"lengau/status.py {argv[0]}: {err}", file=sys.stderr)
        return 1
    print(status)
    if why:                       # a queued or running job says nothing: Snakemake asks every few seconds
        print(f"lengau/status.py {argv[0]}: {status}: {why}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
