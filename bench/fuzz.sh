#!/usr/bin/env bash
# Runs every fuzz target of the project for a while each.
#   bench/fuzz.sh            60 s per target
#   bench/fuzz.sh 10m        ten minutes per target
#   FUZZ_ONLY=Manifest bench/fuzz.sh 30s   only targets whose name matches
# CI runs the same list for a few seconds each (.ci/run). A failing input is
# written to the package's testdata/fuzz/<Target>/; commit it: it becomes a
# regression seed that every plain `go test` runs.
set -euo pipefail
cd "$(dirname "$0")/.."
time_per=${1:-60s}

# Every `func FuzzX(f *testing.F)` in the module, as "package target" lines.
targets() {
  grep -rl --include='*_test.go' -E '^func Fuzz[A-Za-z0-9_]*\(f \*testing\.F\)' . |
    while read -r file; do
      dir=$(dirname "$file")
      grep -oE '^func Fuzz[A-Za-z0-9_]*' "$file" | sed 's/^func //' | while read -r t; do echo "$dir $t"; done
    done | sort
}

fail=0
while read -r dir target; do
  [[ -n "${FUZZ_ONLY:-}" && "$target" != *"$FUZZ_ONLY"* ]] && continue
  printf '%-40s %-22s ' "$dir" "$target"
  if out=$(go test -run='^$' -fuzz="^${target}\$" -fuzztime="$time_per" "$dir" 2>&1); then
    echo "ok   $(echo "$out" | grep -oE 'execs: [0-9]+' | tail -1)"
  else
    echo "FAIL"
    echo "$out" | tail -20
    fail=1
  fi
done < <(targets)
exit $fail
