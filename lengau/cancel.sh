#!/bin/sh
# cluster-generic-cancel-cmd of the lengau profile: Snakemake runs it without a shell, with PBS
# job ids as its arguments, when a run is interrupted (Ctrl-C), and gives it 2 seconds. qdel on
# a busy server can take longer, so it runs on in the background, logged beside the exit markers.
# qdel sends SIGTERM first, then SIGKILL after PBS's kill_delay, which may be shorter than a
# training save: a Ctrl-C'd job may then resume from its previous save. Not `qsig -s TERM` and a
# later qdel: qsig(1B) signals only the job's session leader, whose trap (pbs.job_script) would
# wait for a training that never got the signal; unchecked on Lengau, so left as it is.
mkdir -p .snakemake/lengau
nohup qdel "$@" >> .snakemake/lengau/qdel.log 2>&1 &
