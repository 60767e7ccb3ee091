#!/usr/bin/env bash
# Check and time the Triton kernels on a machine with an NVIDIA GPU.
#
# Usage: bash benchmarks/gpu_check.sh [--dry-run] [--out DIR] [stage ...]
#
# Stages (time limit in seconds), run in the order given; with none, "quick":
#   env        20  the GPU, driver, torch and Triton versions
#   tests     180  tests/test_triton_kernels.py and tests/kernels/ on CUDA tensors (TRITON_INTERPRET=0), -x
#   checks     90  benchmarks/gpu_checks.py: relative error per dtype with poisoned outputs,
#                  bit-identical gradients under deterministic algorithms, a tensor of > 2**31 elements
#   bench4     90  benchmarks/bench_kernels.py --gpu-quick: float16 and float32 x NCHW and
#                  channels_last, 2x2 windows, forward and forward+backward, against max_pool and
#                  the copy bandwidth (markdown tables)
#   report    150  benchmarks/kernel_report.py: every kernel variant compiled for sm_90 (no GPU needed)
#   bench     330  the full benchmark (every case, against max_pool, avg_pool and the naive composition)
#   tune      240  bench_kernels.py --tune: the kernels' tile sizes swept
#   suite     540  the whole test suite with TRITON_INTERPRET=0 (CPU tests, and the kernels on CUDA)
# Presets: quick = env tests checks bench4 (limits 380 s in all, one command on a short lease);
#          full = env tests checks bench tune.
#
# --dry-run runs the CPU half on a machine without a GPU: env without nvidia-smi, the same tests
# and checks through the Triton interpreter on CPU tensors, and bench4 compiling its kernels for
# sm_90 instead of timing them; "quick" then adds "report", so every kernel is compiled.
#
# Each stage writes DIR/<stage>.log (all output) and DIR/<stage>.out (standard output: the tables
# for bench4, report and bench), and DIR/summary.txt lists every stage's status, time and limit.
# DIR is --out, else $OUT, else benchmarks/gpu_out. The script exits non-zero if any stage
# failed. PYTHON picks the interpreter (python3).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

PYTHON=${PYTHON:-python3}
out=${OUT:-benchmarks/gpu_out}
dry_run=0
requested=()
while [ $# -gt 0 ]; do
    case $1 in
        --dry-run) dry_run=1 ;;
        --out) out=$2; shift ;;
        *) requested+=("$1") ;;
    esac
    shift
done
[ ${#requested[@]} -gt 0 ] || requested=(quick)
stages=()
for stage in "${requested[@]}"; do
    case $stage in
        quick) stages+=(env tests checks bench4); [ $dry_run -eq 0 ] || stages+=(report) ;;
        full) stages+=(env tests checks bench tune) ;;
        *) stages+=("$stage") ;;
    esac
done
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 TRITON_DEFAULT_FP_FUSION=1
# Kernels run compiled on the GPU; a dry run takes them through the interpreter on CPU tensors.
kernels_mode=0
[ $dry_run -eq 1 ] && kernels_mode=1

# Compiling the kernel variants dominates the tests: spread them over processes when we can.
parallel=()
if [ $dry_run -eq 0 ] && "$PYTHON" -c "import xdist" 2>/dev/null; then
    parallel=(-n 8)
fi

failed=()
: > "$out/summary.txt"
total_limit=0

run() {  # run NAME SECONDS COMMAND...: standard output to $out/NAME.out, everything to $out/NAME.log
    local name=$1 limit=$2 started status
    shift 2
    started=$(date +%s)
    total_limit=$((total_limit + limit))
    echo "=== $name (limit $limit s): $*" | tee "$out/$name.log"
    timeout -k 10 "$limit" "$@" 2> >(tee -a "$out/$name.log" >&2) | tee "$out/$name.out" | tee -a "$out/$name.log"
    status=${PIPESTATUS[0]}
    [ -z "${!:-}" ] || wait "$!" 2>/dev/null  # the standard error's tee
    local seconds=$(($(date +%s) - started))
    echo "=== $name: exit status $status after $seconds s" | tee -a "$out/$name.log"
    printf '%-8s %-6s %4d s of %4d s\n' "$name" "$([ "$status" -eq 0 ] && echo ok || echo FAILED)" "$seconds" "$limit" \
        >> "$out/summary.txt"
    [ "$status" -eq 0 ] || failed+=("$name")
}

for stage in "${stages[@]}"; do
    case $stage in
        env)
            versions="import sys, torch, triton; print(sys.version); \
print('torch', torch.__version__, 'CUDA', torch.version.cuda, 'triton', triton.__version__); \
print(torch.cuda.get_device_name(0), torch.cuda.get_device_properties(0)) if torch.cuda.is_available() else print('no CUDA device')"
            if [ $dry_run -eq 1 ]; then
                run env 20 bash -c "echo 'dry run: no GPU'; date -u; nproc; '$PYTHON' -c \"$versions\""
            else
                run env 20 bash -c "nvidia-smi; date -u; '$PYTHON' -c \"$versions\""
            fi
            ;;
        tests)
            run tests 180 env TRITON_INTERPRET=$kernels_mode "$PYTHON" -m pytest tests/test_triton_kernels.py tests/kernels \
                -q -x -ra --durations=10 -p no:cacheprovider "${parallel[@]}"
            ;;
        checks)
            if [ $dry_run -eq 1 ]; then
                run checks 90 env TRITON_INTERPRET=1 "$PYTHON" benchmarks/gpu_checks.py --device cpu --small
            else
                run checks 90 env TRITON_INTERPRET=0 "$PYTHON" benchmarks/gpu_checks.py
            fi
            ;;
        bench4)
            if [ $dry_run -eq 1 ]; then
                run bench4 90 env TRITON_INTERPRET=0 "$PYTHON" benchmarks/bench_kernels.py --gpu-quick --dry-run --markdown
            else
                run bench4 90 env TRITON_INTERPRET=0 "$PYTHON" benchmarks/bench_kernels.py --device cuda --gpu-quick --markdown
            fi
            ;;
        report)
            run report 150 env TRITON_INTERPRET=0 "$PYTHON" benchmarks/kernel_report.py --markdown
            ;;
        bench)
            run bench 330 env TRITON_INTERPRET=0 "$PYTHON" benchmarks/bench_kernels.py --device cuda --markdown
            ;;
        tune)
            run tune 240 env TRITON_INTERPRET=0 "$PYTHON" benchmarks/bench_kernels.py --device cuda --tune --markdown
            ;;
        suite)
            run suite 540 env TRITON_INTERPRET=$kernels_mode "$PYTHON" -m pytest tests -q -ra -p no:cacheprovider "${parallel[@]}"
            ;;
        *)
            echo "unknown stage '$stage' (env, tests, checks, bench4, report, bench, tune, suite; quick, full)"
            failed+=("$stage")
            ;;
    esac
done

echo "limits: $total_limit s in all" >> "$out/summary.txt"
echo "failed stages: ${failed[*]:-none}" >> "$out/summary.txt"
cat "$out/summary.txt"
[ ${#failed[@]} -eq 0 ]
