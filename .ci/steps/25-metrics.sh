#!/usr/bin/env bash
# examples/metrics: the Prometheus exporter example, its own module (it
# depends on client_golang). Its tests run against a mosquitto they start.
set -euo pipefail
if ! command -v mosquitto >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq mosquitto >/dev/null
fi
cd "$(dirname "$0")/../../examples/metrics"
go vet ./...
staticcheck ./...
go test -race -count=1 ./...
