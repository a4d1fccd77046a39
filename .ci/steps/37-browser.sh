#!/usr/bin/env bash
# The client in the browser (examples/browser, its own module): vet and
# static analysis for both builds, then TestBrowser, which compiles the
# app for GOOS=js GOARCH=wasm, serves the page and drives Debian's headless
# Chromium against mosquitto's WebSocket listener in a private network
# namespace. With CI set, a missing Chromium, mosquitto or namespace fails
# the test.
set -euo pipefail
missing=()
command -v mosquitto >/dev/null 2>&1 || missing+=(mosquitto)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v unshare >/dev/null 2>&1 || missing+=(util-linux)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# The library builds for the browser and for every other kind of target.
(cd "$(dirname "$0")/../.." &&
  for target in js/wasm wasip1/wasm windows/amd64 darwin/arm64 linux/arm freebsd/amd64; do
    GOOS=${target%/*} GOARCH=${target#*/} go build . ./packet
  done)
cd "$(dirname "$0")/../../examples/browser"
go mod download
go vet ./...
staticcheck ./...
GOOS=js GOARCH=wasm go vet ./app ./internal/...
GOOS=js GOARCH=wasm staticcheck ./app ./internal/...
go test -race -count=1 -v ./... 2>&1 | grep -v '^=== ' 
