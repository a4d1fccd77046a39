#!/usr/bin/env bash
# Connection scale: 10,000 connections of this client in one process against
# mosquitto instances on loopback (connect, subscribe and exchange one QoS 1
# message each, disconnect). Fails when any connection fails or anything is
# left open. About 10 s; the 100,000-connection run is done by hand (see
# bench/README.md, "Connection scale").
set -euo pipefail
if ! command -v mosquitto >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq mosquitto >/dev/null
fi
cd "$(dirname "$0")/../../bench"
bin="${TMPDIR:-/tmp}/mqtt-bench-conns"
go build -o "$bin" .
out=$(timeout 120 "$bin" scale -client ours -n 10000 -brokers 2)
echo "$out"
# Nothing may be left behind: goroutines, files in the client, files in the brokers.
if ! grep -q '"left":\[{"goroutines":0,"files":0,"broker_files":0,' <<<"$out"; then
  echo "connections left something behind"; exit 1
fi
