#!/usr/bin/env bash
# bench/: vet, static analysis, its tests (sink flood window, workloads on
# the sink), build, and a short smoke run of a few workloads against the
# in-process sink (the full comparison is run by hand,
# see bench/README.md).
set -euo pipefail
cd "$(dirname "$0")/../../bench"
go vet ./...
staticcheck ./...
go test -race -count=1 ./...
go build -o "${TMPDIR:-/tmp}/mqtt-bench" .
bin="${TMPDIR:-/tmp}/mqtt-bench"
for w in pub-qos1 recv-qos1 lat-qos1; do
  for c in ours raw; do
    timeout 60 "$bin" -workload "$w" -client "$c" -target sink -n 2000
  done
done
timeout 60 "$bin" -compare -workload pub-qos0 -target sink -n 2000 -clients ours,paho,pahov5,raw
# The routes through mosquitto, briefly, with the broker's CPU per message.
for w in e2e-qos0 e2e-cpu; do
  timeout 60 "$bin" -workload "$w" -client ours -n 40000 | tee "${TMPDIR:-/tmp}/mqtt-bench.out"
  grep -q 'broker CPU' "${TMPDIR:-/tmp}/mqtt-bench.out"
done
