#!/bin/sh
# cluster-generic-cancel-cmd of the lengau profile: Snakemake runs it without a shell, with PBS
# job ids as its arguments, when a run is interrupted (Ctrl-C), and gives it 2 seconds. qdel on
# a busy server can take longer, so it runs on in the background, logged beside the exit markers.
# qdel sends SIGTERM first: a training job saves its resume state before it goes.
mkdir -p .snakemake/lengau
nohup qdel "$@" >> .snakemake/lengau/qdel.log 2>&1 &
