#!/usr/bin/env bash
# Builds the cargo-fuzz (libFuzzer) targets in fuzz/ and runs each one for a bounded time.
#
#   scripts/fuzz.sh [seconds-per-target] [target...]     (default: 60 s, every target)
#
# Seeds come from fuzz/corpus/<target>/ (kept small, committed); what the fuzzer learns goes
# to $FUZZ_WORK/<target>/ (default target/fuzz-work, not committed). A crash stops the run
# with exit status 1 and leaves its input under fuzz/artifacts/<target>/; reproduce it with
#   cargo +nightly fuzz run <target> fuzz/artifacts/<target>/<file>
# Needs a nightly toolchain (cargo +nightly) and cargo-fuzz (installed here when missing).
# Without nightly the script says so and exits 0, unless FUZZ_REQUIRED=1.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
secs=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(machine capi)
tdir=${FUZZ_TARGET_DIR:-$root/target/fuzz}
work=${FUZZ_WORK:-$root/target/fuzz-work}

if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz.sh: no nightly toolchain (cargo +nightly); libFuzzer needs it. Skipped."
  [ "${FUZZ_REQUIRED:-0}" = 1 ] && exit 1
  exit 0
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz.sh: installing cargo-fuzz"
  cargo install cargo-fuzz --locked --quiet
fi

cd "$root/fuzz"
echo "fuzz.sh: building ${targets[*]} (target dir $tdir)"
for t in "${targets[@]}"; do
  cargo +nightly fuzz build --target-dir "$tdir" "$t"
done

status=0
for t in "${targets[@]}"; do
  mkdir -p "$work/$t"
  log="$work/$t.log"
  echo "fuzz.sh: $t for ${secs}s"
  set +e
  cargo +nightly fuzz run --target-dir "$tdir" "$t" "$work/$t" "corpus/$t" -- \
    -max_total_time="$secs" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 -max_len=4096 \
    >"$log" 2>&1
  rc=$?
  set -e
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo "?")
  if [ $rc -eq 0 ]; then
    echo "fuzz.sh: $t: $execs executions ($rate/s), coverage $cov edges, no failure"
  else
    echo "fuzz.sh: $t: FAILED after $execs executions (exit $rc); log $log"
    grep -E 'panicked|ERROR:|SUMMARY|Test unit written' "$log" | head -20 || true
    status=1
  fi
done
exit $status
