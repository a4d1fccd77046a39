#!/usr/bin/env bash
# scram/: the SCRAM authenticators on github.com/xdg-go/scram, their own
# module. Its tests run the client against the scripted broker and the
# in-process SCRAM server; its fuzz target runs with the others
# (../fuzz.sh).
set -euo pipefail
cd "$(dirname "$0")/../../scram"
go vet ./...
staticcheck ./...
go test -race -count=1 ./...
