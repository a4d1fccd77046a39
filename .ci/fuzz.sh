#!/usr/bin/env bash
# Runs every fuzz target of the module and of the modules nested in it, one
# after another, each for a fixed budget, and fails if any target fails or
# overruns.
#
#   FUZZTIME     fuzzing budget per target, as for -fuzztime (default 20s)
#   FUZZ_MARGIN  seconds a target may take beyond its budget, for building
#                its instrumented test binary and stopping (default 90)
#
# The targets are found in the test files of the packages of every module
# (each directory with a go.mod), so a new one is fuzzed without editing
# this script. `go test -fuzz` takes one package and one target per
# run. A failing input is written to testdata/fuzz/<target>/ in the target's
# package, from where `go test -run=<target>/<name>` replays it.
set -euo pipefail
cd "$(dirname "$0")/.."

fuzztime="${FUZZTIME:-20s}"
margin="${FUZZ_MARGIN:-90}"
if [[ "$fuzztime" =~ ^([0-9]+)s$ ]]; then
  budget="${BASH_REMATCH[1]}"
elif [[ "$fuzztime" =~ ^([0-9]+)m$ ]]; then
  budget=$(( BASH_REMATCH[1] * 60 ))
else
  echo "FUZZTIME must be whole seconds or minutes, such as 20s or 2m"; exit 2
fi
limit=$(( budget + margin ))

targets=()
for mod in $(git ls-files 'go.mod' '*/go.mod' | xargs -n1 dirname); do
  while read -r pkg dir files; do
    for f in $files; do
      for name in $(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' "$dir/$f"); do
        targets+=("$mod $pkg $name")
      done
    done
  done < <(cd "$mod" && go list -f '{{.ImportPath}} {{.Dir}} {{join .TestGoFiles " "}} {{join .XTestGoFiles " "}}' ./...)
done
if [ "${#targets[@]}" -eq 0 ]; then
  echo "no fuzz targets found"; exit 1
fi

failed=()
for t in "${targets[@]}"; do
  read -r mod pkg name <<<"$t"
  printf '\n--- fuzz %s %s for %s (stopped after %d s)\n' "$pkg" "$name" "$fuzztime" "$limit"
  start=$SECONDS
  status=0
  (cd "$mod" && timeout --kill-after=10 "$limit" \
    go test -run='^$' -fuzz="^${name}\$" -fuzztime="$fuzztime" "$pkg") || status=$?
  took=$(( SECONDS - start ))
  if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
    echo "FAIL: $name ($pkg) overran: still running after $limit s"
    failed+=("$name (overran)")
  elif [ "$status" -ne 0 ]; then
    echo "FAIL: $name ($pkg) failed after $took s (exit status $status)"
    failed+=("$name")
  else
    echo "ok: $name ($pkg) in $took s"
  fi
done

if [ "${#failed[@]}" -ne 0 ]; then
  printf '\nfuzzing failed: %s\n' "${failed[*]}"
  exit 1
fi
printf '\nall %d fuzz targets passed\n' "${#targets[@]}"
