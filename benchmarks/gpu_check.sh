#!/usr/bin/env bash
# Check and time the Triton kernels on a machine with an NVIDIA GPU.
#
# Stages, run in the order given (default: env tests checks bench tune):
#   env     the GPU, driver, torch and Triton versions
#   tests   tests/test_triton_kernels.py on CUDA tensors (TRITON_INTERPRET=0)
#   checks  benchmarks/gpu_checks.py: relative error per dtype with poisoned outputs,
#           bit-identical gradients under deterministic algorithms, a tensor of > 2**31 elements
#   bench   benchmarks/bench_kernels.py on CUDA, markdown tables for benchmarks/RESULTS.md
#   tune    benchmarks/bench_kernels.py --tune: the kernels' tile sizes swept
#   suite   the whole test suite with TRITON_INTERPRET=0 (CPU tests, and the kernels on CUDA)
#
# Usage: bash benchmarks/gpu_check.sh [stage ...]
# Each stage writes $OUT/<stage>.log (OUT defaults to benchmarks/gpu_out) and has its own time
# limit; the script exits non-zero if any stage failed. PYTHON picks the interpreter (python3).
# Where one command may run 10 minutes at most, run two: "env tests checks", then "bench tune".
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

PYTHON=${PYTHON:-python3}
out=${OUT:-benchmarks/gpu_out}
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 TRITON_INTERPRET=0

# Compiling the kernel variants dominates the tests: spread them over processes when we can.
parallel=()
if "$PYTHON" -c "import xdist" 2>/dev/null; then
    parallel=(-n 8)
fi

stages=("$@")
[ ${#stages[@]} -gt 0 ] || stages=(env tests checks bench tune)
failed=()

run() {  # run NAME SECONDS COMMAND...: log to $out/NAME.log, note a failure
    local name=$1 limit=$2 started status
    shift 2
    started=$(date +%s)
    echo "=== $name: $*" | tee "$out/$name.log"
    timeout -k 10 "$limit" "$@" 2>&1 | tee -a "$out/$name.log"
    status=${PIPESTATUS[0]}
    echo "=== $name: exit status $status after $(($(date +%s) - started)) s" | tee -a "$out/$name.log"
    [ "$status" -eq 0 ] || failed+=("$name")
}

for stage in "${stages[@]}"; do
    case $stage in
        env)
            run env 60 bash -c "nvidia-smi; date -u; '$PYTHON' -c 'import sys, torch, triton; \
print(sys.version); print(\"torch\", torch.__version__, \"CUDA\", torch.version.cuda, \"triton\", triton.__version__); \
print(torch.cuda.get_device_name(0), torch.cuda.get_device_properties(0))'"
            ;;
        tests)
            run tests 300 "$PYTHON" -m pytest tests/test_triton_kernels.py -q -ra --durations=10 -p no:cacheprovider "${parallel[@]}"
            ;;
        checks)
            run checks 300 "$PYTHON" benchmarks/gpu_checks.py
            ;;
        bench)
            run bench 330 "$PYTHON" benchmarks/bench_kernels.py --device cuda --markdown
            ;;
        tune)
            run tune 240 "$PYTHON" benchmarks/bench_kernels.py --device cuda --tune --markdown
            ;;
        suite)
            run suite 540 "$PYTHON" -m pytest tests -q -ra -p no:cacheprovider "${parallel[@]}"
            ;;
        *)
            echo "unknown stage '$stage' (env, tests, checks, bench, tune, suite)"
            failed+=("$stage")
            ;;
    esac
done

echo "failed stages: ${failed[*]:-none}"
[ ${#failed[@]} -eq 0 ]
