#!/usr/bin/env bash
# The training benchmark on one GPU within a fixed time: fill TorchInductor's on-disk cache with
# several compiling processes at once, then time every variant and stage in one process.
#   bash benchmarks/gpu_train.sh OUTDIR [SECONDS [VARIANT...]]
# SECONDS: the whole script's budget (default 540); VARIANTS: default all, in an order that times
# the most telling ones first. PYTHON names the interpreter (default python3); STAGES=first times
# the first stage only; MODES (e.g. "fp32 fast_all") limits the modes timed; BENCH_ARGS go to the
# timing run (e.g. --profile 12); TESTS, a command (e.g. the GPU tests) run beside the compiling
# processes, within their time, so it never shares the GPU with the timing (its output: tests.log);
# WARM_S: that time (default two fifths of SECONDS).
set -uo pipefail
out=${1:?usage: gpu_train.sh OUTDIR [SECONDS [VARIANT...]]}
budget=${2:-540}
shift $(( $# < 2 ? $# : 2 ))
order=("$@")
mkdir -p "$out"
start=$SECONDS
python=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export TORCHINDUCTOR_CACHE_DIR=${TORCHINDUCTOR_CACHE_DIR:-/tmp/inductor-cache}
export TORCHINDUCTOR_FX_GRAPH_CACHE=1 TORCHINDUCTOR_AUTOGRAD_CACHE=1
nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.max.sm --format=csv | tee "$out/gpu.txt"

# Compiling processes: five groups of about equal work (CRN variants compile two stages), or one
# per variant asked for.
if (( ${#order[@]} )); then
    groups=("${order[@]}")
else
    groups=("v01 v11 v02" "v09 v03 v10" "v14 v04 v12" "v05 v06 v13" "v07 v08")
    order=(v01 v11 v09 v14 v03 v10 v02 v04 v05 v06 v07 v08 v12 v13)
fi
warm=${WARM_S:-$(( budget * 2 / 5 ))}
for i in "${!groups[@]}"; do
    TORCHINDUCTOR_COMPILE_THREADS=3 timeout -k 5 "$warm" "$python" benchmarks/bench_train.py --full --warm-only --stages "${STAGES:-all}" \
        ${MODES:+--modes $MODES} --variants ${groups[$i]} >"$out/warm_$i.log" 2>&1 &
done
if [[ -n ${TESTS:-} ]]; then
    # -k: training saves and exits at the next window on SIGTERM, a test then fails and pytest
    # goes on to the next one; the kill ends the lot.
    timeout -k 5 "$warm" bash -c "$TESTS" >"$out/tests.log" 2>&1 &
fi
wait
echo "cache filled in $(( SECONDS - start )) s"

left=$(( budget - (SECONDS - start) ))
timeout -k 5 "$left" "$python" benchmarks/bench_train.py --full --stages "${STAGES:-all}" --repeats 3 --deadline $(( left - 70 )) \
    --json "$out/train.jsonl" --variants "${order[@]}" ${MODES:+--modes $MODES} ${BENCH_ARGS:-} 2>&1 | tee "$out/bench_train.log"
