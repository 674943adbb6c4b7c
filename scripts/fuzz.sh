#!/usr/bin/env bash
# Builds the libFuzzer targets (the separate package Benchmarks/Fuzz, every module instrumented with
# `--sanitize fuzzer`) and runs each for a while from its seed corpus (Benchmarks/Fuzz/corpus/TARGET).
# Prints executions, corpus size and findings per target; exits 1 when any target crashed, timed out
# or ran out of memory (the inputs are kept in the work folder and named in the output).
#
#   scripts/fuzz.sh                         # every target, 10 s each
#   scripts/fuzz.sh --seconds 600 json      # a longer run of one target
#   scripts/fuzz.sh --work /var/tmp/fuzz    # keep the grown corpora between runs
#   scripts/fuzz.sh --no-build json         # run the binary as it is (no rebuild after source changes)
#   scripts/fuzz.sh --cache /var/cache/image-builder/fuzz
#                                           # build in a copy of the sources kept there, so the next
#                                           # run (from any clone) recompiles only what changed
#   scripts/fuzz.sh --list
set -euo pipefail
cd "$(dirname "$0")/.."

all=(watch-stream json kubeconfig exec-credential imagespec operator-config registry-manifest
     www-authenticate docker-config image-reference)
seconds=10
work=""
max_len=16384
targets=()
rebuild=1
cache=""
usage() { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; }
while (($#)); do
    case "$1" in
        --seconds) seconds=${2:?--seconds needs a number}; shift 2 ;;
        --seconds=*) seconds=${1#*=}; shift ;;
        --work) work=${2:?--work needs a folder}; shift 2 ;;
        --work=*) work=${1#*=}; shift ;;
        --max-len) max_len=${2:?--max-len needs a number}; shift 2 ;;
        --no-build) rebuild=0; shift ;;
        --cache) cache=${2:?--cache needs a folder}; shift 2 ;;
        --cache=*) cache=${1#*=}; shift ;;
        --list) printf '%s\n' "${all[@]}"; exit 0 ;;
        -h|--help) usage; exit 0 ;;
        -*) echo "fuzz.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
        *) targets+=("$1"); shift ;;
    esac
done
[[ "$seconds" =~ ^[0-9]+$ && "$seconds" -gt 0 ]] || { echo "fuzz.sh: --seconds: a positive whole number, not \"$seconds\"" >&2; exit 2; }
((${#targets[@]})) || targets=("${all[@]}")
for target in "${targets[@]}"; do
    [[ " ${all[*]} " == *" $target "* ]] || { echo "fuzz.sh: unknown target \"$target\" (see --list)" >&2; exit 2; }
done

package=Benchmarks/Fuzz
if [[ -n "$cache" ]]; then
    # SwiftPM keys its build on absolute paths and modification times: a fresh clone elsewhere would
    # rebuild everything. The copy at a fixed path is updated by content (-c), so files that did not
    # change keep their old times and their compiled objects stay valid.
    mkdir -p "$cache/source"
    rsync -rc --delete --exclude .git --exclude .build --exclude .swiftpm ./ "$cache/source/"
    package="$cache/source/Benchmarks/Fuzz"
fi
build=(swift build -c release --package-path "$package" --sanitize fuzzer)
if ((rebuild)); then "${build[@]}"; fi
binary="$("${build[@]}" --show-bin-path)/image-builder-fuzz"
if [[ -z "$work" ]]; then work=$(mktemp -d "${TMPDIR:-/tmp}/image-builder-fuzz.XXXXXX"); fi
mkdir -p "$work"

failed=0
printf '%-18s %12s %10s %8s %9s\n' target executions "exec/s" corpus findings
for target in "${targets[@]}"; do
    dir="$work/$target"
    mkdir -p "$dir/corpus" "$dir/findings"
    # New inputs go to the first folder (the work corpus); the seeds in the repository stay as they are.
    status=0
    # Swift's own backtracer would take the trap before libFuzzer can keep the input.
    SWIFT_BACKTRACE=enable=no FUZZ_TARGET="$target" "$binary" -max_total_time="$seconds" -max_len="$max_len" -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$dir/findings/" \
        "$dir/corpus" "Benchmarks/Fuzz/corpus/$target" >"$dir/log" 2>&1 || status=$?
    executions=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$dir/log" | tail -1)
    corpus=$(find "$dir/corpus" -type f | wc -l)
    findings=$(find "$dir/findings" -type f | wc -l)
    printf '%-18s %12s %10s %8s %9s\n' "$target" "${executions:-?}" "${rate:-?}" "$corpus" "$findings"
    if ((status != 0 || findings > 0)); then
        failed=1
        echo "  $target: libFuzzer exited with status $status; log $dir/log" >&2
        find "$dir/findings" -type f -printf '  finding: %p\n' >&2
        grep -m1 -A3 'property failed\|Fatal error\|ERROR: libFuzzer\|==ERROR' "$dir/log" | sed 's/^/    /' >&2 || true
        echo "  reproduce: FUZZ_TARGET=$target $binary FILE" >&2
    fi
done
echo "work folder (grown corpora, logs, findings): $work"
exit "$failed"
