#!/usr/bin/env bash
# The training benchmark on one GPU within a fixed time: fill TorchInductor's on-disk cache with
# several compiling processes at once, then time every variant and stage in one process.
#   bash benchmarks/gpu_train.sh OUTDIR [SECONDS]   (default 540: the whole script's budget; PYTHON=python3)
set -uo pipefail
out=${1:?usage: gpu_train.sh OUTDIR [SECONDS]}
budget=${2:-540}
mkdir -p "$out"
start=$SECONDS
python=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export TORCHINDUCTOR_CACHE_DIR=${TORCHINDUCTOR_CACHE_DIR:-/tmp/inductor-cache}
export TORCHINDUCTOR_FX_GRAPH_CACHE=1 TORCHINDUCTOR_AUTOGRAD_CACHE=1
nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.max.sm --format=csv | tee "$out/gpu.txt"

# Five groups of about equal compile work (the CRN variants compile two stages).
groups=("v01 v11 v02" "v09 v03 v10" "v14 v04 v12" "v05 v06 v13" "v07 v08")
warm=$(( budget * 2 / 5 ))
for i in "${!groups[@]}"; do
    TORCHINDUCTOR_COMPILE_THREADS=3 timeout "$warm" "$python" benchmarks/bench_train.py --full --warm-only \
        --variants ${groups[$i]} >"$out/warm_$i.log" 2>&1 &
done
wait
echo "cache filled in $(( SECONDS - start )) s"

left=$(( budget - (SECONDS - start) ))
timeout "$left" "$python" benchmarks/bench_train.py --full --repeats 3 --deadline $(( left - 70 )) \
    --json "$out/train.jsonl" --variants v01 v11 v09 v14 v03 v10 v02 v04 v05 v06 v07 v08 v12 v13 \
    2>&1 | tee "$out/bench_train.log"
