#!/usr/bin/env bash
# The mqtt command-line tool (cmd/mqtt, its own module). Its tests run the
# real mosquitto_pub and mosquitto_sub against a mosquitto they start, and
# build the binary to run it in a pseudo-terminal.
set -euo pipefail
if ! command -v mosquitto_pub >/dev/null 2>&1 || ! command -v mosquitto >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq mosquitto mosquitto-clients >/dev/null
fi
cd cmd/mqtt
go vet ./...
staticcheck ./...
go test -race -count=1 ./...
