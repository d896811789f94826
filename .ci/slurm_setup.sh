#!/usr/bin/env bash
# Install what tests/test_cluster_slurm.py needs: Slurm (slurmctld, slurmd, the client commands)
# and munge, from the distribution's packages (Debian/Ubuntu: Slurm 22.05 on Debian 12). The test
# starts and stops its own one-node cluster in a temporary folder (its own munge key, socket,
# slurm.conf and ports); nothing is configured or started here. Needs root (or sudo) and apt-get.
set -euo pipefail

if command -v slurmctld >/dev/null 2>&1 && command -v slurmd >/dev/null 2>&1 \
        && command -v munged >/dev/null 2>&1 && command -v sbatch >/dev/null 2>&1; then
    echo "slurm_setup: Slurm and munge are already installed"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "slurm_setup: no apt-get here; install slurm-wlm and munge by hand (the Slurm test skips without them)" >&2
    exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
        echo "slurm_setup: not root and no sudo; the Slurm test will skip" >&2
        exit 0
    fi
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
# Whatever services the packages start, the test runs its own daemons (own key, socket, ports).
$sudo apt-get install -y -q slurm-wlm munge
