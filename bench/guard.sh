#!/usr/bin/env bash
# Tenant-guard overhead on a warm Load (issue 18): runs access's
# BenchmarkWarmLoad several times (each run: one client whose access manager
# changes every load, in a random order per iteration: no guard, a guard with
# a cached positive decision, a guard with audit log and counters, no guard
# again as the control) and prints the median over runs of each per-run
# median.
#
#   bench/guard.sh               # 5 runs of 3000 iterations
#   RUNS=9 ITER=5000 bench/guard.sh
#
# Target: guard-overhead-µs <= 20. control-overhead-µs shows how finely this
# machine can measure at all.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${RUNS:-5}"
iter="${ITER:-3000}"
out="$(mktemp)"
trap 'rm -f "$out"' EXIT
go test -run '^$' -bench '^BenchmarkWarmLoad$' -benchtime "${iter}x" -count "$runs" ./access | tee "$out" >&2
awk '
/^BenchmarkWarmLoad/ {
  for (i = 5; i < NF; i += 2) { v[$(i+1)] = v[$(i+1)] " " $i }
}
END {
  printf "%-22s %12s   (median of %s runs; per run: median of the iterations)\n", "metric", "µs", '"$runs"'
  n = split("allow-all-µs guard-µs audited-µs guard-overhead-µs audited-overhead-µs control-overhead-µs", names, " ")
  for (k = 1; k <= n; k++) {
    m = split(substr(v[names[k]], 2), xs, " ")
    # insertion sort, then the middle value
    for (i = 2; i <= m; i++) { x = xs[i]; j = i - 1; while (j > 0 && xs[j] + 0 > x + 0) { xs[j+1] = xs[j]; j-- } xs[j+1] = x }
    printf "%-22s %12.1f\n", names[k], xs[int((m + 1) / 2)]
  }
}' "$out"
